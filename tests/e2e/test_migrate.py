"""/migrate end to end: a second engine plays the expiring provider with a team's old fine-tune."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from sqlmodel import select

from adapters.console_adapter import ConsoleAdapter
from bot import migration
from bot.core import BotCore
from bot.settings import Settings
from bot.types import Command
from storage.models import Dataset, EvalRun, Job
from tests.conftest import ENGINE_KEY, free_port, start_engine, stop_engine, wait_for_job
from tests.e2e.test_console_e2e import run, wait_done
from tests.e2e.test_eval import wait_eval
from tests.engine.test_training_helps import TRAIN_T, make_rows


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Another engine, with a fine-tune made outside tuneup: the model a team must move off."""
    data = tmp_path_factory.mktemp("legacy") / "data"
    data.mkdir()
    port = free_port()
    proc = start_engine(data, port)
    url = f"http://127.0.0.1:{port}/v1"
    client = OpenAI(base_url=url, api_key=ENGINE_KEY, max_retries=0)
    rows = make_rows(TRAIN_T, slice(0, 4), random.Random(0))
    upload = client.files.create(
        file=("tickets.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()),
        purpose="fine-tune",
    )
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=upload.id,
        suffix="support",
        hyperparameters={"n_epochs": 3, "batch_size": 6},
    )
    done = wait_for_job(client, job.id)
    assert done.status == "succeeded"
    yield url, done.fine_tuned_model
    stop_engine(proc)


async def test_migrate_lists_moves_and_reports_parity(
    tmp_path: Path, engine_url: str, legacy: tuple[str, str]
) -> None:
    legacy_url, old_model = legacy
    settings = Settings(
        data_dir=tmp_path,
        engine_url=engine_url,
        engine_api_key=ENGINE_KEY,
        engine_autostart=False,
        progress_min_interval_seconds=0,
        providers={"legacy": {"base_url": legacy_url, "api_key": ENGINE_KEY}},
    )
    core = BotCore(settings)
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    qualified = f"legacy/{old_model}"
    try:
        listing = await run(core, adapter, "/migrate")
        assert qualified in listing.plain() and "no announced date" in listing.plain()
        assert "no training data here" in listing.plain()

        started = await run(core, adapter, f"/migrate {qualified}")
        assert started.job_id, started.plain()
        assert f"replaces `{qualified}`" in started.text and "epochs" not in started.text
        with core.ctx.session() as s:
            fetched = s.exec(select(Dataset).where(Dataset.filename.contains("training"))).first()
            job = s.get(Job, started.job_id)
        assert fetched is not None and fetched.split  # the legacy engine's own training file
        assert job.validation_file_id and job.metrics["migrated_from"] == qualified
        await wait_done(core)
        with core.ctx.session() as s:
            parity = s.exec(select(EvalRun).where(EvalRun.kind == "migration")).one()
        parity = await wait_eval(core, parity.id)
        assert parity.status == "succeeded" and parity.models[1] == qualified
        report = next(
            r for _, r in adapter.posted if r.text.startswith(f"🧪 eval {parity.id} done")
        )
        section = next(s for s in report.sections if s.title == "Parity")
        assert f"agrees with `{qualified}` on" in section.text
        print("parity", parity.metrics)
        for model in parity.models:
            assert "accuracy" in parity.metrics[model]

        owner = Command("console", "local", "console", "you", "migrate")
        distilled = await migration.distill(core.ctx, owner, qualified, fetched)
        rows = [json.loads(x) for x in Path(distilled.path).read_text().splitlines()]
        assert rows and all(
            r["completion"].startswith(" ") for r in rows
        )  # the old model's answers
    finally:
        await core.stop()
