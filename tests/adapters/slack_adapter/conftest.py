from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from adapters.slack_adapter.app import SlackBot
from adapters.slack_adapter.run import serve_http
from bot.core import BotCore
from bot.settings import Settings
from tests.conftest import ENGINE_KEY
from tests.fakes.slack_api import BOT_TOKEN, SlackApiFake

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FORM = "application/x-www-form-urlencoded"


@dataclass
class SlackEnv:
    fake: SlackApiFake
    bot: SlackBot
    core: BotCore
    url: str
    http: aiohttp.ClientSession

    async def post(
        self, body: str, content_type: str, ts: int | None = None
    ) -> aiohttp.ClientResponse:
        headers = signed_headers(body, content_type, ts)
        async with self.http.post(self.url, data=body, headers=headers) as resp:
            await resp.read()
            return resp

    async def slash(
        self, command: str, text: str = "", user: str = "U1", channel: str = "C1"
    ) -> aiohttp.ClientResponse:
        return await self.post(self.slash_body(command, text, user, channel), FORM)

    def slash_body(
        self, command: str, text: str = "", user: str = "U1", channel: str = "C1"
    ) -> str:
        """A slash command payload; every invocation gets its own trigger_id, as on Slack."""
        return urlencode(
            {
                "token": "legacy",
                "team_id": "T1",
                "team_domain": "fake",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": self.fake.users.get(user, {}).get("name", user),
                "command": command,
                "text": text,
                "api_app_id": "A1",
                "response_url": f"{self.fake.base}hooks/commands/T1/{time.monotonic_ns()}",
                "trigger_id": f"{time.monotonic_ns()}.1.trigger",
            }
        )

    async def event(self, event: dict[str, Any], event_id: str) -> aiohttp.ClientResponse:
        payload = {
            "token": "x",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": "T1", "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}
            ],
            "event": event,
        }
        return await self.post(json.dumps(payload), "application/json")

    async def click(
        self,
        button: dict[str, Any],
        message_ts: str,
        user: str = "U1",
        thread_ts: str | None = None,
    ) -> aiohttp.ClientResponse:
        message = {"type": "message", "ts": message_ts, "text": "", "user": "UBOT"}
        if thread_ts:
            message["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "team": {"id": "T1", "domain": "fake"},
            "user": {"id": user, "username": user, "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": "C1"},
            "trigger_id": f"{time.monotonic_ns()}.2.trigger",
            "channel": {"id": "C1", "name": "general"},
            "message": message,
            "response_url": f"{self.fake.base}hooks/actions/T1/{time.monotonic_ns()}",
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": "b1",
                    "type": "button",
                    "value": button["value"],
                    "action_ts": str(time.time()),
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")


def signed_headers(body: str, content_type: str, ts: int | None = None) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(
            timestamp=stamp, body=body
        ),
    }


async def wait_for(predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Wait for a state; the limit is generous because a busy machine is slow, not broken."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def buttons_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.fixture
async def slack_env(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SlackEnv]:
    engine_url = (
        request.getfixturevalue("engine_url")
        if "engine_url" in request.fixturenames
        else "http://127.0.0.1:9/v1"  # nothing listens: tests that need no engine
    )
    fake = await SlackApiFake().start()
    settings = Settings(
        data_dir=tmp_path,
        engine_url=engine_url,
        engine_api_key=ENGINE_KEY,
        engine_autostart=False,
        progress_min_interval_seconds=0,
        max_upload_mb=1,
    )
    core = BotCore(settings)
    bot = SlackBot(
        core,
        token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        api_url=fake.base + "api/",
        file_hosts=["127.0.0.1"],
        admin_groups=["SADMINS"],
    )
    runner = await serve_http(bot, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield SlackEnv(fake, bot, core, f"http://127.0.0.1:{port}/slack/events", http)
    await runner.cleanup()
    await bot.drain(timeout=5)
    await core.stop()
    await fake.stop()
