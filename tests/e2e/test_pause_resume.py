"""/pause stops a job at its next step keeping its checkpoint; /resume continues the curve."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from openai import OpenAI

from adapters.console_adapter import ConsoleAdapter
from adapters.demo import sample_dataset
from bot.core import BotCore
from storage.models import Job
from tests.conftest import ENGINE_KEY, Progress
from tests.e2e.test_console_e2e import run, settings_for, wait_done


async def wait_job(core: BotCore, done: object) -> Job:
    progress = Progress()
    while True:
        await core.poller.cycle()
        with core.ctx.session() as s:
            job = s.get(Job, 1)
        if done(job):  # type: ignore[operator]
            return job
        progress.saw((job.status, job.step))
        assert not (problem := progress.stalled()), problem
        await asyncio.sleep(0.3)


async def test_pause_keeps_the_checkpoint_and_resume_continues(
    tmp_path: Path, engine_url: str
) -> None:
    core = BotCore(settings_for(tmp_path, engine_url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    client = OpenAI(base_url=engine_url, api_key=ENGINE_KEY, max_retries=0)
    try:
        data = sample_dataset(tmp_path / "reviews.jsonl", n=24)
        await run(core, adapter, f"/finetune {data} epochs=3 batch=4")  # 6 steps an epoch
        await wait_job(core, lambda j: (j.step or 0) >= 7)  # past the first epoch's checkpoint
        paused = await run(core, adapter, "/pause 1")
        assert paused.text.startswith("⏸️ Pausing job 1"), paused.text
        job = await wait_job(core, lambda j: j.status == "paused")
        remote = job.provider_job_id
        assert client.fine_tuning.jobs.checkpoints.list(remote).data  # kept for resuming
        resumed = await run(core, adapter, "/resume 1")
        assert resumed.text.startswith("▶️ Resuming job 1"), resumed.text
        await wait_done(core)
        with core.ctx.session() as s:
            job = s.get(Job, 1)
        events = [e.message for e in client.fine_tuning.jobs.list_events(remote, limit=200).data]
        assert job.status == "succeeded" and job.step == 18, (job.error, events[:12])
        steps = [p[0] for p in job.metrics["points"]]
        assert steps == sorted(set(steps)) and steps[-1] == 18  # one curve, no step twice
        messages = [e.message for e in client.fine_tuning.jobs.list_events(remote, limit=200).data]
        assert any(m.startswith("Fine-tuning job resumed from step") for m in messages)
    finally:
        await core.stop()
