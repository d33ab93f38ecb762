"""One engine job as one torch.distributed run: TUNEUP_ENGINE_NPROC=2 on the CPU (gloo) trains
the job through torchrun; events, checkpoints and the model are written once, by rank 0."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import (
    ENGINE_KEY,
    Progress,
    engine_client,
    free_port,
    start_engine,
    stop_engine,
    wait_for_job,
)
from tests.engine.test_api_e2e import chat_rows
from tests.engine.tiny_models import build


def two_rank_engine(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, int]:
    """An engine training a tiny Llama as 2-rank jobs; `env`: more TUNEUP_ENGINE_* settings."""
    data = tmp_path / "engine"
    data.mkdir()
    port = free_port()
    model_dir = build("llama", tmp_path / "tiny-llama")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEUP_ENGINE_BASE_MODELS", f'{{"tiny-llama": "{model_dir}"}}')
        patch.setenv("TUNEUP_ENGINE_NPROC", "2")
        for name, value in env.items():
            patch.setenv(f"TUNEUP_ENGINE_{name}", value)
        return start_engine(data, port), port


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_train_one_job_and_report_it_once(tmp_path: Path, strategy: str) -> None:
    proc, port = two_rank_engine(tmp_path, DISTRIBUTED=strategy)
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


@pytest.mark.slow
def test_a_paused_fsdp_job_resumes_from_its_gathered_checkpoint(tmp_path: Path) -> None:
    proc, port = two_rank_engine(tmp_path, DISTRIBUTED="fsdp")
    try:
        # not strict: OpenAI's SDK types lack the `paused` status the engine (and OpenAI) answer
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=ENGINE_KEY, max_retries=0)
        upload = client.files.create(file=("train.jsonl", chat_rows(64)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="tiny-llama",
            training_file=upload.id,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 6, "batch_size": 4}},
            },
        )
        progress = Progress()
        while not client.fine_tuning.jobs.checkpoints.list(job.id).data:  # epoch 1 saved
            status = client.fine_tuning.jobs.retrieve(job.id).status
            assert status in ("validating_files", "queued", "running"), status
            progress.saw(len(client.fine_tuning.jobs.list_events(job.id, limit=100).data))
            assert not (problem := progress.stalled()), problem
            time.sleep(0.2)
        client.fine_tuning.jobs.pause(job.id)
        # the pause lands at the next step; the trainer then frees the queue
        while client.fine_tuning.jobs.list(limit=1).data[0].status == "running":
            progress.saw(len(client.fine_tuning.jobs.list_events(job.id, limit=100).data))
            assert not (problem := progress.stalled()), problem
            time.sleep(0.2)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
        client.fine_tuning.jobs.resume(job.id)
        done = wait_for_job(client, job.id)
        assert done.status == "succeeded", done.error
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=500).data]
        assert any(m.startswith("Fine-tuning job resumed from step") for m in events), events[:5]
        assert any(m.startswith("Resuming from checkpoint at step") for m in events)
        final = [m for m in events if m.startswith("Step 96/96")]
        assert len(final) == 1, final  # reported once, by rank 0
    finally:
        stop_engine(proc)


def test_a_job_failing_on_every_rank_fails_once_with_rank_0s_reason(tmp_path: Path) -> None:
    """Each rank leaves with an error as soon as its run fails (so torchrun stops the others);
    the job keeps the reason rank 0 wrote, not the launcher's exit code."""
    proc, port = two_rank_engine(tmp_path, MEMORY_LIMIT_GB="0.001")  # no plan fits: refused
    try:
        client = engine_client(port)
        upload = client.files.create(file=("train.jsonl", chat_rows(8)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny-llama", training_file=upload.id)
        done = wait_for_job(client, job.id)
        assert done.status == "failed" and done.error is not None
        assert done.error.code == "insufficient_memory", done.error
        assert "exit code" not in done.error.message
        failures = [
            e
            for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data
            if e.message.startswith("Job failed")
        ]
        assert len(failures) == 1  # written once, by rank 0
    finally:
        stop_engine(proc)
