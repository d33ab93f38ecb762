"""What /validate says is what /finetune uploads: the fixed file, the split, the applied offers."""

from __future__ import annotations

import io
import json
from pathlib import Path

from openai import OpenAI
from sqlmodel import select

from adapters.console_adapter import ConsoleAdapter
from bot.core import BotCore
from storage.models import Dataset, Job
from tests.conftest import ENGINE_KEY
from tests.e2e.test_console_e2e import run, settings_for

LABELS = ["positive", "negative", "mixed"]


def classification_file(path: Path) -> Path:
    rows = [
        {
            "prompt": f"Classify this product review carefully: review {i}",
            "completion": LABELS[i % 3],
            "id": i,
        }
        for i in range(60)
    ]
    rows.append(dict(rows[4]))  # a duplicate
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_finetune_trains_on_the_fixed_split_and_validates_on_its_other_half(
    tmp_path: Path, engine_url: str
) -> None:
    core = BotCore(settings_for(tmp_path, engine_url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    client = OpenAI(base_url=engine_url, api_key=ENGINE_KEY, max_retries=0)
    try:
        report = await run(
            core, adapter, f"/validate {classification_file(tmp_path / 'reviews.jsonl')}"
        )
        assert "Held-out split" in report.plain()
        names = {f.name for f in report.files}
        assert {
            "reviews.fixed.jsonl",
            "reviews_prepared_train.jsonl",
            "reviews_prepared_valid.jsonl",
        } <= names
        offer = next(b for b in report.buttons if b.label == "Apply: remove common prefix")
        applied = await run(core, adapter, offer.command)
        assert "with prefix applied" in applied.text
        with core.ctx.session() as s:
            parent = s.exec(select(Dataset).where(Dataset.id == 4)).one()  # 1-3: first upload
            train, valid = (s.get(Dataset, parent.split[h]) for h in ("train", "valid"))
        split_button = next(b for b in applied.buttons if b.label == "Fine-tune on the split")
        assert split_button.command == f"/finetune dataset={train.id}"
        started = await run(core, adapter, f"{split_button.command} epochs=1 batch=8")
        assert "reviews_prepared_train.jsonl" in started.plain(), started.plain()
        with core.ctx.session() as s:
            job = s.exec(select(Job)).one()
        remote = client.fine_tuning.jobs.retrieve(job.provider_job_id)
        uploaded_train = client.files.content(remote.training_file).read()
        uploaded_valid = client.files.content(remote.validation_file).read()
        client.fine_tuning.jobs.cancel(remote.id)
        assert uploaded_train == Path(train.path).read_bytes()
        assert uploaded_valid == Path(valid.path).read_bytes()
        rows = [json.loads(x) for x in uploaded_train.splitlines() + uploaded_valid.splitlines()]
        assert len(rows) == 60  # the duplicate is gone, as the report said
        assert all(set(r) == {"prompt", "completion"} for r in rows)  # so is `id`
        # the applied offer removed the common prefix; the separator and leading space are there
        assert all(r["prompt"].endswith(" ->") and r["completion"].startswith(" ") for r in rows)
        assert not any("Classify" in r["prompt"] for r in rows)
    finally:
        await core.stop()
