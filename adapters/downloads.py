"""Attachment downloads: only from the platform's own hosts, size-capped while streaming."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import aiohttp

from bot.context import UserError

MAX_REDIRECTS = 3


def host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """https on a listed host (or a subdomain of one); plain http only for a listed loopback host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    listed = any(host == h.lower() or host.endswith("." + h.lower()) for h in hosts)
    if not listed:
        return False
    if parts.scheme == "https":
        return True
    try:
        return parts.scheme == "http" and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def download(
    url: str,
    *,
    hosts: Iterable[str],
    max_bytes: int,
    headers: dict[str, str] | None = None,
    html_means: str = "the platform answered with a web page instead of the file.",
    name: str = "the file",
) -> bytes:
    """Fetch `url`; credentials in `headers` are only ever sent to the allowed hosts."""
    hosts = list(hosts)
    timeout = aiohttp.ClientTimeout(total=120, sock_connect=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(MAX_REDIRECTS + 1):
            if not host_allowed(url, hosts):
                host = urlsplit(url).hostname or url
                raise UserError(
                    f"Refused to download `{name}` from {host}: files are only fetched from "
                    f"{', '.join(hosts)}. Upload the file to the chat itself."
                )
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = urljoin(url, resp.headers["Location"])
                    continue
                if resp.status != 200:
                    raise UserError(
                        f"Downloading `{name}` failed (HTTP {resp.status}). Upload it again."
                    )
                if resp.content_type == "text/html":
                    raise UserError(f"Could not download `{name}`: {html_means}")
                return await _read_capped(resp, max_bytes, name)
    raise UserError(f"Downloading `{name}` was redirected too many times.")


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, name: str) -> bytes:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise UserError(_too_big(name, max_bytes))
    chunks, total = [], 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > max_bytes:
            raise UserError(_too_big(name, max_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(name: str, max_bytes: int) -> str:
    return (
        f"`{name}` is larger than the {max_bytes / 2**20:.0f} MB limit. "
        "Split it or raise TUNEUP_MAX_UPLOAD_MB."
    )
