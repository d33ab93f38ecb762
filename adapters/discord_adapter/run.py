"""`tuneup discord`: the bot, the poller and the notifier in one process."""

from __future__ import annotations

import logging

from adapters.discord_adapter.client import TuneupDiscord
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
    try:
        async with client:
            await client.start(settings.discord_token.get_secret_value())
    finally:
        await core.stop()
