"""The Discord side of ChatAdapter: post and edit by channel and message id, open job threads."""

from __future__ import annotations

import logging

import aiohttp
import discord

from adapters.discord_adapter.render import to_parts
from bot.types import DM_PREFIX, MessageRef, PlatformError, Reply, Target

log = logging.getLogger("tuneup.discord")


def platform_error(exc: Exception) -> PlatformError:
    """discord.py already waits out rate limits; what reaches here is retried by the outbox."""
    if isinstance(exc, discord.NotFound):
        return PlatformError(f"Discord: {exc.text or 'not found'}", permanent=True)
    if isinstance(exc, discord.RateLimited):
        return PlatformError("Discord rate limit", retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        return PlatformError(f"Discord error {exc.status}: {exc.text or ''}".strip())
    return PlatformError(f"Discord unreachable: {type(exc).__name__}")


ERRORS = (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, TimeoutError)


class DiscordSender:
    platform = "discord"

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    def _channel(self, channel_id: str, guild: str | None) -> discord.PartialMessageable:
        # Ids stored on the job, never interaction tokens (those expire after 15 minutes).
        guild_id = int(guild) if guild and guild.isdigit() else None
        return self.client.get_partial_messageable(int(channel_id), guild_id=guild_id)

    async def post(self, target: Target, reply: Reply) -> MessageRef:
        channel: discord.abc.Messageable
        if target.channel.startswith(DM_PREFIX):  # the owner's DMs (notify=dm)
            try:
                user = discord.Object(int(target.channel[len(DM_PREFIX) :]))
                channel = await self.client.create_dm(user)  # type: ignore[arg-type]
            except ERRORS as exc:
                raise platform_error(exc) from None
        else:
            channel = self._channel(target.thread or target.channel, target.workspace)
        try:
            message = await channel.send(**to_parts(reply).message_kwargs())
        except ERRORS as exc:
            raise platform_error(exc) from None
        return MessageRef(
            channel=str(message.channel.id),
            id=str(message.id),
            thread=target.thread,
            guild=target.workspace,
        )

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        parts = to_parts(reply)
        try:
            await (
                self._channel(ref.channel, getattr(ref, "guild", None))
                .get_partial_message(int(ref.id))
                .edit(content=parts.content, embeds=parts.embeds)
            )
        except ERRORS as exc:
            raise platform_error(exc) from None

    async def open_thread(self, ref: MessageRef, name: str) -> str | None:
        if ref.thread:
            return ref.thread
        message = self._channel(ref.channel, getattr(ref, "guild", None)).get_partial_message(
            int(ref.id)
        )
        try:
            thread = await message.create_thread(name=name[:100], auto_archive_duration=1440)
        except ERRORS as exc:
            log.warning("could not open a thread: %s", platform_error(exc))
            return None
        return str(thread.id)
