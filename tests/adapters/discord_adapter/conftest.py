from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.discord_adapter.client import TuneupDiscord
from bot.core import BotCore
from bot.settings import Settings
from tests.conftest import ENGINE_KEY
from tests.fakes.discord_api import ADMIN_ROLE, BOT_TOKEN, CHANNEL_ID, DiscordFake


@dataclass
class DiscordEnv:
    fake: DiscordFake
    client: TuneupDiscord
    core: BotCore


@pytest.fixture
async def discord_env(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DiscordEnv]:
    engine_url = (
        request.getfixturevalue("engine_url")
        if "engine_url" in request.fixturenames
        else "http://127.0.0.1:9/v1"  # nothing listens: tests that need no engine
    )
    fake = await DiscordFake().start()
    fake.patch(monkeypatch)
    settings = Settings(
        data_dir=tmp_path,
        engine_url=engine_url,
        engine_api_key=ENGINE_KEY,
        engine_autostart=False,
        progress_min_interval_seconds=0,
        max_upload_mb=1,
    )
    core = BotCore(settings)
    client = TuneupDiscord(
        core,
        file_hosts=["127.0.0.1"],
        admin_roles=[ADMIN_ROLE],
        upload_channels=[CHANNEL_ID],
        guild_ready_timeout=0.05,
    )
    task = asyncio.create_task(client.start(BOT_TOKEN))
    await asyncio.wait_for(client.wait_until_ready(), 15)
    yield DiscordEnv(fake, client, core)
    await client.close()
    task.cancel()
    await core.stop()
    await fake.stop()
