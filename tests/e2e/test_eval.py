"""/eval end to end: a tuned classifier must beat its base on held-out tickets, measurably."""

from __future__ import annotations

import asyncio
import io
import json
import random
from pathlib import Path

from sqlmodel import select

from adapters.console_adapter import ConsoleAdapter
from bot.core import BotCore
from storage.models import EvalRun
from tests.conftest import Progress
from tests.e2e.test_console_e2e import run, settings_for, wait_done
from tests.engine.test_training_helps import TEST_T, TRAIN_T, make_rows

MARGIN = 0.3  # tuned accuracy minus base accuracy, at least


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def wait_eval(core: BotCore, eval_id: int) -> EvalRun:
    progress = Progress()
    while True:
        await core.notifier.deliver_pending()
        with core.ctx.session() as s:
            found = s.get(EvalRun, eval_id)
            assert found is not None
            if found.status != "running":
                await asyncio.sleep(0.2)
                await core.notifier.deliver_pending()
                return found
        progress.saw(len(core.ctx.background))
        assert not (problem := progress.stalled()), problem
        await asyncio.sleep(0.3)


async def test_eval_shows_the_tuned_model_beats_its_base(tmp_path: Path, engine_url: str) -> None:
    rng = random.Random(0)
    core = BotCore(settings_for(tmp_path, engine_url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    try:
        held_out = write(tmp_path / "held_out.jsonl", make_rows(TEST_T, slice(4, 6), rng))
        train = write(tmp_path / "tickets.jsonl", make_rows(TRAIN_T, slice(0, 4), rng))
        await run(core, adapter, f"/validate {held_out}")  # dataset 1 (and its split, 2 and 3)
        await run(core, adapter, f"/validate {train}")
        with core.ctx.session() as s:
            from storage import repo

            train_id = repo.latest_dataset(s, "console", "local", "console").id
        started = await run(
            core, adapter, f"/finetune dataset={train_id} epochs=3 batch=6 validation=1"
        )
        assert started.job_id, started.plain()
        await wait_done(core)
        with core.ctx.session() as s:  # the comparison that follows a job with a validation set
            after = s.exec(select(EvalRun).where(EvalRun.kind == "after_job")).one()
        after = await wait_eval(core, after.id)
        assert after.status == "succeeded" and after.models[1] == "smollm2-135m-instruct"
        assert any(r.text.startswith(f"🧪 eval {after.id} done") for _, r in adapter.posted)

        reply = await run(core, adapter, "/eval")  # defaults: newest tuned vs base, validation set
        assert reply.eval_id, reply.plain()
        finished = await wait_eval(core, reply.eval_id)
        assert finished.status == "succeeded", finished.error
        tuned, base = finished.models
        accuracy = {m: finished.metrics[m]["accuracy"] for m in (tuned, base)}
        print("eval accuracy", accuracy)
        assert accuracy[tuned] >= accuracy[base] + MARGIN, accuracy
        result = next(
            r for _, r in adapter.posted if r.text.startswith(f"🧪 eval {reply.eval_id} done")
        )
        names = {f.name for f in result.files}
        assert {f"eval-{reply.eval_id}.png", f"eval-{reply.eval_id}-confusion.png"} <= names
        rows = json.loads(next(f.data for f in result.files if f.name.endswith(".json")))
        assert len(rows) == 12 and {"input", "reference", tuned, base} <= set(rows[0])
        # one progress message: the command's own reply, edited in place
        progress_refs = {
            ref.id for ref, r in adapter.edits if r.text.startswith(f"🧪 eval {reply.eval_id}:")
        }
        assert len(progress_refs) == 1

        listed = await run(core, adapter, "/eval list")
        assert f"eval {reply.eval_id}" in listed.plain()
        shown = await run(core, adapter, f"/eval show {reply.eval_id}")
        assert "accuracy" in shown.plain() and shown.files
        with core.ctx.session() as s:
            assert len(list(s.exec(select(EvalRun)))) == 2
    finally:
        await core.stop()
