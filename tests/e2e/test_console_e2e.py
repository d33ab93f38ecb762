"""The whole story through the console adapter, against the real engine and real SQLite."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from adapters.console_adapter import ConsoleAdapter
from adapters.demo import sample_dataset
from bot.core import BotCore
from bot.settings import Settings
from bot.types import Target
from storage import repo
from storage.models import Job, Outbox
from tests.conftest import ENGINE_KEY, ROOT, STALL_SECONDS


def settings_for(tmp: Path, engine_url: str) -> Settings:
    return Settings(
        data_dir=tmp,
        engine_url=engine_url,
        engine_api_key=ENGINE_KEY,
        engine_autostart=False,
        progress_min_interval_seconds=0,
    )


async def run(core: BotCore, adapter: ConsoleAdapter, line: str):  # type: ignore[no-untyped-def]
    reply = await core.handle(adapter.parse(line))
    await adapter.post(Target(platform="console", workspace="local", channel="console"), reply)
    return reply


async def wait_done(core: BotCore) -> None:
    assert await core.poll_until_idle(STALL_SECONDS, interval=0.5), "the job stopped moving"


async def test_console_story(tmp_path: Path, engine_url: str) -> None:
    core = BotCore(settings_for(tmp_path, engine_url))
    out = io.StringIO()
    adapter = ConsoleAdapter(tmp_path / "out", stream=out)
    core.register(adapter)
    try:
        data = sample_dataset(tmp_path / "reviews.jsonl", n=24)
        report = await run(core, adapter, f"/validate {data}")
        assert report.text.startswith(("✅", "⚠️")) and any(
            f.name.endswith(".report.json") for f in report.files
        )
        started = await run(core, adapter, "/finetune epochs=2 batch=4 suffix=console")
        assert "Started job 1" in started.text
        # an identical upload is reused, not uploaded again
        with core.ctx.session() as s:
            dataset = repo.latest_dataset(s, "console", "local", "console")
            assert list(dataset.provider_files) == ["local"]
        await wait_done(core)
        texts = [r.text for _, r in adapter.posted]
        summary = next(r for _, r in adapter.posted if "finished" in r.text)
        assert summary.files and summary.files[0].data.startswith(b"\x89PNG")
        assert (tmp_path / "out" / summary.files[0].name).exists()
        # one progress message, edited in place
        progress_posts = [
            t
            for t in texts
            if " · queued · " in t or " · running · " in t or " · validating_files · " in t
        ]
        assert len(progress_posts) == 1 and adapter.edits
        assert {ref.id for ref, _ in adapter.edits} == {
            adapter.posted[[r.text for _, r in adapter.posted].index(progress_posts[0])][0].id
        }
        assert any("/12" in r.text or "12/12" in r.text for _, r in adapter.edits)
        answer = await run(core, adapter, '/ask-model "Review: I enjoy the kettle. Sentiment?"')
        assert answer.sections, answer.text
        assert answer.sections[0].title.startswith("`ft:smollm2-135m-instruct:local:console:")
        assert answer.sections[0].text
        status = await run(core, adapter, "/status 1")
        assert "succeeded" in status.plain()
        models = (await run(core, adapter, "/models")).plain()
        assert "the local engine: reachable; can tune" in models, models
        assert "`smollm2-135m-instruct` (135M params, 8,192 context, trains on cpu)" in models
        assert "Traceback" not in out.getvalue()
    finally:
        await core.stop()


CRASHER = """
import asyncio, os, signal, sys
from bot.core import BotCore
from bot.settings import Settings
from tests.e2e.test_console_e2e import settings_for
from pathlib import Path

async def main():
    core = BotCore(settings_for(Path(sys.argv[1]), sys.argv[2]))
    await core.poller.cycle(deliver=False)   # state + outbox committed
    os.kill(os.getpid(), signal.SIGKILL)      # dies before posting anything

asyncio.run(main())
"""


async def test_kill_between_polling_and_posting_loses_and_repeats_nothing(
    tmp_path: Path, engine_url: str
) -> None:
    settings = settings_for(tmp_path, engine_url)
    core = BotCore(settings)
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    data = sample_dataset(tmp_path / "reviews.jsonl", n=12)
    await run(core, adapter, f"/finetune {data} epochs=1 batch=4")
    await core.stop()
    # Wait for the job to finish at the engine, without polling it from the bot.
    from openai import OpenAI

    client = OpenAI(base_url=engine_url, api_key=ENGINE_KEY)
    from tests.conftest import wait_for_job

    remote_id = client.fine_tuning.jobs.list(limit=1).data[0].id
    assert wait_for_job(client, remote_id).status == "succeeded"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(tmp_path), engine_url], env=env, cwd=ROOT
    )
    assert proc.returncode == -9
    restarted = BotCore(settings)
    adapter2 = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    restarted.register(adapter2)
    try:
        with restarted.ctx.session() as s:
            pending = [r.key for r in s.exec(select(Outbox).where(Outbox.delivered_at.is_(None)))]
        assert any(k.endswith(":summary") for k in pending)
        await restarted.poller.cycle()  # nothing new at the provider: must not enqueue again
        await restarted.poller.cycle()
        summaries = [r for _, r in adapter2.posted if "finished" in r.text]
        assert len(summaries) == 1
        with restarted.ctx.session() as s:
            assert repo.pending_count(s) == 0
            rows = list(s.exec(select(Outbox)))
            assert len({r.key for r in rows}) == len(rows)
    finally:
        await restarted.stop()


async def test_preference_file_trains_with_dpo(tmp_path: Path, engine_url: str) -> None:
    from tests.engine.test_dpo import TOPICS, preference_rows

    core = BotCore(settings_for(tmp_path, engine_url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    try:
        data = tmp_path / "prefs.jsonl"
        data.write_bytes(preference_rows(TOPICS[:10]))
        report = await run(core, adapter, f"/validate {data}")
        fields = dict(report.sections[0].fields)
        assert fields["Format"] == "preference (DPO)" and int(fields["Examples"]) == 10
        assert int(fields["Trained tokens"].lstrip("~").replace(",", "")) > 0
        started = await run(core, adapter, "/finetune epochs=1 batch=4")
        assert "DPO on preference pairs" in started.text
        await wait_done(core)
        with core.ctx.session() as s:
            job = s.get(Job, 1)
            assert job.status == "succeeded" and job.fine_tuned_model
        remote = await core.providers.get("local").client.fine_tuning.jobs.retrieve(
            job.provider_job_id
        )
        assert remote.method.type == "dpo"
        summary = next(r for _, r in adapter.posted if "finished" in r.text)
        assert ("Method", "DPO (preference pairs)") in summary.sections[0].fields
    finally:
        await core.stop()
