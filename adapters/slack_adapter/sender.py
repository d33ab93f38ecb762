"""The Slack side of ChatAdapter: post, edit in place, upload files, open threads."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_adapter.blocks import to_blocks
from bot.types import DM_PREFIX, FileOut, MessageRef, PlatformError, Reply, Target

MARKER_EVENT = "tuneup_notification"

log = logging.getLogger("tuneup.slack")
# Errors that no retry can fix; anything else (outages, rate limits, auth being repaired) is retried.
PERMANENT = {"channel_not_found", "is_archived", "invalid_blocks", "msg_too_long", "no_text"}


def platform_error(exc: Exception) -> PlatformError:
    """Map a Slack Web API or transport failure to a PlatformError the outbox understands."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        code = response.get("error") if isinstance(response.data, dict) else None
        if response.status_code == 429:
            retry_after = float(response.headers.get("Retry-After", 1) or 1)
            return PlatformError("Slack rate limit", retry_after=retry_after)
        return PlatformError(
            f"Slack error: {code or response.status_code}", permanent=code in PERMANENT
        )
    return PlatformError(f"Slack unreachable: {type(exc).__name__}")


class SlackSender:
    platform = "slack"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        # Only file uploads retry in place: a message is posted before its files, and the outbox
        # must not post that message twice because an upload hit a rate limit.
        self.upload_client = AsyncWebClient(
            token=client.token,
            base_url=client.base_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )

    async def _open_dm(self, target: Target) -> Target:
        """`@U123` means the user's DM with the app: conversations.open gives its channel."""
        if not target.channel.startswith(DM_PREFIX):
            return target
        try:
            resp = await self.client.conversations_open(users=target.channel[len(DM_PREFIX) :])
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise platform_error(exc) from None
        return target.model_copy(update={"channel": resp["channel"]["id"], "thread": None})

    async def post(self, target: Target, reply: Reply) -> MessageRef:
        target = await self._open_dm(target)
        text, blocks, overflow = to_blocks(reply)
        extra: dict[str, Any] = {}
        if reply.marker:
            # Message metadata: stored with the message, shown to nobody (api.slack.com/metadata).
            extra["metadata"] = {
                "event_type": MARKER_EVENT,
                "event_payload": {"marker": reply.marker},
            }
        try:
            resp = await self.client.chat_postMessage(
                channel=target.channel,
                thread_ts=target.thread,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise platform_error(exc) from None
        ref = MessageRef(channel=resp["channel"], id=resp["ts"], thread=target.thread)
        files = reply.files + ([overflow] if overflow else [])
        if files:
            await self.upload(ref.channel, target.thread or ref.id, files)
        return ref

    async def attach(
        self, ref: MessageRef, target: Target, files: list[FileOut], *, retry: bool
    ) -> None:
        """Upload a posted message's files into its thread; a retry skips those already there."""
        thread = (None if target.channel.startswith(DM_PREFIX) else target.thread) or ref.id
        if retry:
            present = await self._names_in_thread(ref.channel, thread)
            files = [f for f in files if f.name not in present]
        if files:
            await self.upload(ref.channel, thread, files)

    async def _names_in_thread(self, channel: str, thread: str) -> set[str]:
        messages = await self._thread_messages(channel, thread)
        return {f.get("name") for m in messages for f in m.get("files") or []}

    async def _thread_messages(self, channel: str, thread: str | None) -> list[dict[str, Any]]:
        try:
            if thread:
                resp = await self.client.conversations_replies(
                    channel=channel, ts=thread, include_all_metadata=True, limit=200
                )
            else:
                resp = await self.client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=100
                )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise platform_error(exc) from None
        return list(resp.get("messages") or [])

    async def find_posted(self, target: Target, marker: str) -> MessageRef | None:
        """The bot's message carrying `marker`, if an earlier attempt posted it."""
        target = await self._open_dm(target)
        for message in await self._thread_messages(target.channel, target.thread):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("marker") == marker:
                return MessageRef(channel=target.channel, id=message["ts"], thread=target.thread)
        return None

    async def upload(self, channel: str, thread: str | None, files: list[FileOut]) -> None:
        uploads: list[dict[str, Any]] = [
            {"content": f.data, "filename": f.name, "title": f.name} for f in files
        ]
        try:
            await self.upload_client.files_upload_v2(
                channel=channel, thread_ts=thread, file_uploads=uploads
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # The message itself is already posted; say what is missing instead of failing it.
            log.warning("uploading %s failed: %s", [f.name for f in files], platform_error(exc))
            await self._note_missing(channel, thread, files)

    async def _note_missing(self, channel: str, thread: str | None, files: list[FileOut]) -> None:
        names = ", ".join(f"`{f.name}`" for f in files)
        try:
            await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread,
                text=f"⚠️ Could not attach {names}. Check that the app has the `files:write` scope.",
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.warning("could not report the failed upload either")

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        text, blocks, _ = to_blocks(reply)
        try:
            await self.client.chat_update(channel=ref.channel, ts=ref.id, text=text, blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise platform_error(exc) from None

    async def open_thread(self, ref: MessageRef, name: str) -> str | None:
        return ref.thread or ref.id  # a Slack thread is keyed by its parent message's ts

    async def post_ephemeral(
        self, channel: str, user: str, reply: Reply, thread: str | None = None
    ) -> None:
        text, blocks, _ = to_blocks(reply)
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=blocks, thread_ts=thread
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise platform_error(exc) from None
