"""`tuneup slack`: Socket Mode when an app-level token is set, otherwise the HTTP endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from adapters.health import serve_health
from adapters.slack_adapter.app import SlackBot
from bot.core import BotCore
from bot.settings import Settings

log = logging.getLogger("tuneup.slack")
EVENTS_PATH = "/slack/events"


class SlackSetupError(Exception):
    pass


def check_settings(settings: Settings, *, socket_mode: bool) -> None:
    if settings.slack_bot_token is None:
        raise SlackSetupError(
            "TUNEUP_SLACK_BOT_TOKEN is not set. Create the app from adapters/slack_manifest.yml, "
            "install it, and copy the Bot User OAuth Token (xoxb-…)."
        )
    if not socket_mode and settings.slack_signing_secret is None:
        raise SlackSetupError(
            "HTTP mode needs TUNEUP_SLACK_SIGNING_SECRET (Basic Information → Signing Secret), "
            "or set TUNEUP_SLACK_APP_TOKEN (xapp-…) to use Socket Mode."
        )


def build_bot(core: BotCore, settings: Settings, *, socket_mode: bool) -> SlackBot:
    check_settings(settings, socket_mode=socket_mode)
    assert settings.slack_bot_token is not None
    secret = settings.slack_signing_secret
    return SlackBot(
        core,
        token=settings.slack_bot_token.get_secret_value(),
        signing_secret=None if socket_mode else secret.get_secret_value() if secret else None,
        api_url=settings.slack_api_url,
        file_hosts=settings.slack_file_hosts,
        admin_groups=settings.slack_admin_groups,
    )


def http_app(bot: SlackBot) -> web.Application:
    app = bot.app.web_app(path=EVENTS_PATH)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", health)
    return app


async def serve_http(bot: SlackBot, host: str, port: int) -> web.AppRunner:
    """Serve the events endpoint; `runner.addresses` tells the bound port (port 0 picks one)."""
    runner = web.AppRunner(http_app(bot), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_slack(settings: Settings) -> None:
    socket_mode = settings.slack_app_token is not None
    check_settings(settings, socket_mode=socket_mode)
    core = BotCore(settings)
    bot = build_bot(core, settings, socket_mode=socket_mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await core.start()
    connected = {"up": not socket_mode}  # HTTP mode is up while it listens
    health = await serve_health(
        core, lambda: connected["up"], settings.health_host, settings.health_port
    )
    try:
        if socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert settings.slack_app_token is not None
            handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token.get_secret_value())
            await handler.connect_async()
            connected["up"] = True
            log.info("tuneup is connected to Slack (Socket Mode)")
            await stop.wait()
            await handler.close_async()
        else:
            runner = await serve_http(bot, settings.slack_host, settings.slack_port)
            log.info(
                "tuneup listens for Slack on http://%s:%s%s",
                settings.slack_host,
                settings.slack_port,
                EVENTS_PATH,
            )
            await stop.wait()
            await runner.cleanup()
    finally:
        connected["up"] = False
        if health is not None:
            await health.cleanup()
        await bot.drain()
        await core.stop()
