"""Fetching a tuned model's export from the local engine (its own `/models/{id}/export`)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx

from bot.settings import Settings

FORMATS = ("adapter", "merged")


class ExportError(Exception):
    """The engine refused or failed the export; the message says why, for people."""


async def download(settings: Settings, model: str, fmt: str, target: Path) -> Path:
    """Stream the ZIP to `target`; raise ExportError with the engine's own reason."""
    base = settings.local_engine_url.rstrip("/")
    key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else "local"
    url = f"{base}/models/{model}/export"
    try:
        async with (
            httpx.AsyncClient(timeout=600) as http,
            http.stream(
                "GET", url, params={"format": fmt}, headers={"Authorization": f"Bearer {key}"}
            ) as resp,
        ):
            if resp.status_code != 200:
                body = await resp.aread()
                raise ExportError(_reason(body, resp.status_code))
            with open(target, "wb") as out:
                async for chunk in resp.aiter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise ExportError(
            f"can't reach the local engine ({type(exc).__name__}); start it with `tuneup engine`"
        ) from None
    return target


def _reason(body: bytes, status: int) -> str:
    try:
        import json

        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"the engine answered {status}"


def unpack(archive: Path, out_dir: Path) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if not n.startswith(("/", "..")) and ".." not in n]
        for name in names:
            z.extract(name, out_dir)
    return names
