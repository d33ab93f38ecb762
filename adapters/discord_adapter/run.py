"""`tuneup discord`: the bot, the poller and the notifier in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from adapters.discord_adapter.client import TuneupDiscord
from adapters.health import serve_health
from bot.core import BotCore
from bot.settings import Settings

log = logging.getLogger("tuneup.discord")


class DiscordSetupError(Exception):
    pass


async def run_discord(settings: Settings) -> None:
    if settings.discord_token is None:
        raise DiscordSetupError(
            "TUNEUP_DISCORD_TOKEN is not set. Create an application at "
            "https://discord.com/developers/applications, add a bot, and copy its token."
        )
    core = BotCore(settings)
    client = TuneupDiscord(
        core,
        guilds=settings.discord_guilds,
        file_hosts=settings.discord_file_hosts,
        admin_roles=settings.discord_admin_roles,
        upload_channels=settings.discord_upload_channels,
    )
    await core.start()
    health = await serve_health(
        core,
        lambda: client.is_ready() and not client.is_closed(),
        settings.health_host,
        settings.health_port,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop taking commands, close the gateway
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, lambda: loop.create_task(client.close()))
    try:
        async with client:
            await client.start(settings.discord_token.get_secret_value())
    finally:
        if health is not None:
            await health.cleanup()
        await core.stop()
