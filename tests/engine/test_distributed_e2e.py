"""One engine job as one torch.distributed run: TUNEUP_ENGINE_NPROC=2 on the CPU (gloo) trains
the job through torchrun; events, checkpoints and the model are written once, by rank 0."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import engine_client, free_port, start_engine, stop_engine, wait_for_job
from tests.engine.test_api_e2e import chat_rows
from tests.engine.tiny_models import build


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_train_one_job_and_report_it_once(tmp_path: Path, strategy: str) -> None:
    data = tmp_path / "engine"
    data.mkdir()
    port = free_port()
    model_dir = build("llama", tmp_path / "tiny-llama")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEUP_ENGINE_BASE_MODELS", f'{{"tiny-llama": "{model_dir}"}}')
        patch.setenv("TUNEUP_ENGINE_NPROC", "2")
        patch.setenv("TUNEUP_ENGINE_DISTRIBUTED", strategy)
        proc = start_engine(data, port)
    try:
        client = engine_client(port)
        upload = client.files.create(file=("train.jsonl", chat_rows(16)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="tiny-llama",
            training_file=upload.id,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 8}},
            },
        )
        done = wait_for_job(client, job.id)
        assert done.status == "succeeded", done.error
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        steps = Counter(m.split(":")[0] for m in events if m.startswith("Step "))
        assert steps and set(steps.values()) == {1}, steps  # each step reported once
        plans = [m for m in events if m.startswith("Training plan:")]
        assert len(plans) == 1 and f"2 processes ({strategy.upper()})" in plans[0], plans
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert sorted(c.step_number for c in checkpoints) == [2, 4]  # epoch 1, and the model
        answer = client.chat.completions.create(
            model=done.fine_tuned_model or "",
            messages=[{"role": "user", "content": "Item 1: colour?"}],
            max_tokens=4,
        )
        assert isinstance(answer.choices[0].message.content, str)
    finally:
        stop_engine(proc)
