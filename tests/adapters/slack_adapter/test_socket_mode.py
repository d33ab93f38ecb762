"""Socket Mode: the real AsyncSocketModeHandler connects through apps.connections.open."""

from __future__ import annotations

import time
from pathlib import Path

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from adapters.slack_adapter.app import SlackBot
from bot.core import BotCore
from bot.settings import Settings
from tests.adapters.slack_adapter.conftest import wait_for
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiFake


async def test_slash_command_over_socket_mode(tmp_path: Path) -> None:
    fake = await SlackApiFake().start()
    core = BotCore(
        Settings(data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_autostart=False)
    )
    bot = SlackBot(core, token=BOT_TOKEN, signing_secret=None, api_url=fake.base + "api/")
    handler = AsyncSocketModeHandler(bot.app, APP_TOKEN)
    try:
        await handler.connect_async()
        await wait_for(lambda: fake.socket is not None)
        command = {
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": "U1",
            "command": "/status",
            "text": "9",
            "response_url": f"{fake.base}hooks/sm/{time.monotonic_ns()}",
            "trigger_id": "1",
        }
        await fake.push("slash_commands", command, "env-1")
        acks = await wait_for(lambda: fake.socket_acks)
        assert acks[0]["envelope_id"] == "env-1"
        reply = await wait_for(lambda: fake.hooks)
        assert "No job `9`" in reply[0]["text"]
        opened = fake.method_calls("apps.connections.open")
        assert len(opened) == 1 and fake.errors == []
    finally:
        await handler.close_async()
        await bot.drain(timeout=5)
        await core.stop()
        await fake.stop()
