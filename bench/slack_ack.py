"""Slash-command ack latency of the HTTP-mode Slack app under load.

Fires N signed slash commands, C at a time, at the real AsyncApp served over HTTP in its own
process (as in production), with the strict fake Slack Web API (in this process, playing Slack)
answering the work done after each ack. Prints ack latency p50/p99 and
checks every command's real reply arrived afterwards. Target: p99 < 100 ms on 2 cores.

    .venv/bin/python bench/slack_ack.py [--n 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.slack_adapter.app import SlackBot  # noqa: E402
from adapters.slack_adapter.run import serve_http  # noqa: E402
from bot.core import BotCore  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.adapters.slack_adapter.conftest import SIGNING_SECRET, signed_headers  # noqa: E402
from tests.fakes.slack_api import BOT_TOKEN, SlackApiFake  # noqa: E402

# Commands whose work needs no engine: the bench measures the chat side only.
COMMANDS = [("/status", ""), ("/help", "finetune"), ("/cancel", "3"), ("/status", "7")]


def serve_app(api_base: str, port: int, data_dir: str) -> None:
    """The app process: BotCore + SlackBot over HTTP, as `tuneup slack` runs it."""

    async def run() -> None:
        settings = Settings(
            data_dir=Path(data_dir), engine_url="http://127.0.0.1:9/v1", engine_autostart=False
        )
        core = BotCore(settings)
        bot = SlackBot(core, token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=api_base)
        await serve_http(bot, "127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url.replace("/slack/events", "/healthz")) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the app did not start")


async def main(n: int, concurrency: int) -> int:
    fake = await SlackApiFake().start()
    for i in range(7):
        fake.users[f"U{i}"] = {"id": f"U{i}", "name": f"user{i}", "is_admin": False}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        ctx = multiprocessing.get_context()
        app_process = ctx.Process(
            target=serve_app, args=(fake.base + "api/", port, tmp), daemon=True
        )
        app_process.start()
        url = f"http://127.0.0.1:{port}/slack/events"
        await wait_up(url)
        sem = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        statuses: list[int] = []

        async def fire(http: aiohttp.ClientSession, i: int) -> None:
            command, text = COMMANDS[i % len(COMMANDS)]
            body = urlencode(
                {
                    "team_id": "T1",
                    "channel_id": "C1",
                    "user_id": f"U{i % 7}",
                    "command": command,
                    "text": text,
                    "response_url": f"{fake.base}hooks/{i}",
                    "trigger_id": str(i),
                }
            )
            headers = signed_headers(body, "application/x-www-form-urlencoded")
            async with sem:
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses.append(resp.status)

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            await fire(http, 0)  # warm up (auth.test, first DB connection)
            while not fake.hooks:
                await asyncio.sleep(0.01)
            latencies.clear()
            statuses.clear()
            hooks_before = len(fake.hooks)
            wall = time.perf_counter()
            await asyncio.gather(*(fire(http, i) for i in range(n)))
            acked = time.perf_counter() - wall
            deadline = time.monotonic() + 60
            while len(fake.hooks) - hooks_before < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            done = time.perf_counter() - wall
        replies = len(fake.hooks) - hooks_before
        q = statistics.quantiles(latencies, n=100)
        print(f"slack ack latency, {n} signed slash commands, {concurrency} at a time")
        print(f"  status 200: {statuses.count(200)}/{n}")
        print(
            f"  p50 {q[49]:.1f} ms   p90 {q[89]:.1f} ms   p99 {q[98]:.1f} ms   max {max(latencies):.1f} ms"
        )
        print(
            f"  all acked in {acked:.2f} s; replies delivered afterwards: {replies}/{n} in {done:.2f} s"
        )
        print(f"  target p99 < 100 ms: {'met' if q[98] < 100 else 'NOT met'}")
        app_process.terminate()
        app_process.join(10)
    await fake.stop()
    return 0 if replies == n and statuses.count(200) == n else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.n, args.concurrency)))
