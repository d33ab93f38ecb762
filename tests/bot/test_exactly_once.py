"""Money is spent once: a lost create answer, a crash before the commit, a replayed command.

Each test drives `/finetune` through the console against the real engine, and counts the jobs the
engine holds for the command's idempotency key: exactly one, adopted by tuneup.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from openai import OpenAI
from sqlmodel import select

from adapters.console_adapter import ConsoleAdapter
from adapters.demo import sample_dataset
from bot import lifecycle
from bot.core import BotCore
from storage.models import Job, Outbox
from tests.conftest import ENGINE_KEY, ROOT
from tests.e2e.test_console_e2e import run, settings_for
from tests.fakes.flaky_provider import FlakyProvider


def engine_jobs_with_key(engine_url: str, key: str) -> list:
    client = OpenAI(base_url=engine_url, api_key=ENGINE_KEY, max_retries=0)
    jobs = client.fine_tuning.jobs.list(metadata={lifecycle.KEY_FIELD: key}, limit=100).data
    for job in jobs:  # the test only needs the count: stop them training
        if job.status not in ("succeeded", "failed", "cancelled"):
            client.fine_tuning.jobs.cancel(job.id)
    return jobs


def only_job(core: BotCore) -> Job:
    with core.ctx.session() as s:
        jobs = list(s.exec(select(Job)))
    assert len(jobs) == 1, jobs
    return jobs[0]


async def test_lost_create_answer_adopts_the_one_job(tmp_path: Path, engine_url: str) -> None:
    proxy = await FlakyProvider(engine_url).start()
    proxy.lose_create_answers = 1
    core = BotCore(settings_for(tmp_path, proxy.url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    try:
        data = sample_dataset(tmp_path / "reviews.jsonl", n=12)
        started = await run(core, adapter, f"/finetune {data} epochs=1 batch=4")
        assert started.text.startswith("🚀 Started job 1 (ftjob-"), started.text
        assert proxy.creates == 1  # the SDK did not retry the create blindly
        job = only_job(core)
        assert job.provider_job_id and job.status != lifecycle.PENDING
        remote = engine_jobs_with_key(engine_url, job.idempotency_key)
        assert [r.id for r in remote] == [job.provider_job_id]
    finally:
        await core.stop()
        await proxy.stop()


async def test_replayed_command_starts_nothing_twice(tmp_path: Path, engine_url: str) -> None:
    core = BotCore(settings_for(tmp_path, engine_url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    try:
        data = sample_dataset(tmp_path / "reviews.jsonl", n=12)
        await run(core, adapter, f"/validate {data}")
        replies = []
        for _ in range(2):  # the same platform action delivered twice
            cmd = adapter.parse("/finetune epochs=1 batch=4")
            cmd.event_id = "Ev-replayed"
            replies.append(await core.handle(cmd))
        assert replies[0].text.startswith("🚀 Started job 1")
        assert "already started by this command" in replies[1].text
        job = only_job(core)
        assert len(engine_jobs_with_key(engine_url, job.idempotency_key)) == 1
    finally:
        await core.stop()


CRASH_AFTER_CREATE = """
import asyncio, os, signal, sys
from pathlib import Path
from adapters.console_adapter import ConsoleAdapter
from bot import lifecycle
from bot.core import BotCore
from tests.e2e.test_console_e2e import settings_for

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the provider made the job; nothing is committed

lifecycle.adopt = die

async def main():
    core = BotCore(settings_for(Path(sys.argv[1]), sys.argv[2]))
    adapter = ConsoleAdapter(Path(sys.argv[1]) / "out")
    await core.handle(adapter.parse(f"/finetune {sys.argv[3]} epochs=1 batch=4"))

asyncio.run(main())
"""


async def test_crash_between_create_and_commit_is_adopted_once(
    tmp_path: Path, engine_url: str
) -> None:
    data = sample_dataset(tmp_path / "reviews.jsonl", n=12)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_CREATE, str(tmp_path), engine_url, str(data)],
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == -9
    core = BotCore(settings_for(tmp_path, engine_url))
    try:
        job = only_job(core)
        assert job.status == lifecycle.PENDING and job.provider_job_id is None
        await core.start(start_engine=False, schedule=False)  # start-up reconciles
        job = only_job(core)
        remote = engine_jobs_with_key(engine_url, job.idempotency_key)
        assert [r.id for r in remote] == [job.provider_job_id]
        assert job.status != lifecycle.PENDING
        with core.ctx.session() as s:
            notices = [r.key for r in s.exec(select(Outbox))]
        assert notices == [f"job:{job.id}:lifecycle:{job.status}"]
        # a second start-up (or poll cycle) adopts nothing more
        assert await lifecycle.reconcile_pending(core.db, core.providers, force=True) == 0
    finally:
        await core.stop()
