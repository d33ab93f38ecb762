"""kill -9 the engine mid-training: the next engine resumes the job from its last checkpoint."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import engine_client, free_port, start_engine, stop_engine, wait_for_job
from tests.engine.test_api_e2e import chat_rows


def client_for(port: int) -> OpenAI:
    return engine_client(port)


@pytest.mark.slow
def test_killed_engine_resumes_from_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "engine"
    data.mkdir()
    port = free_port()
    first = start_engine(data, port)
    try:
        client = client_for(port)
        upload = client.files.create(file=("train.jsonl", chat_rows(12)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct",
            training_file=upload.id,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 4, "batch_size": 4}},
            },
        )
        deadline = time.monotonic() + 240
        while not client.fine_tuning.jobs.checkpoints.list(job.id).data:
            assert time.monotonic() < deadline, "no checkpoint appeared"
            assert client.fine_tuning.jobs.retrieve(job.id).status in (
                "validating_files",
                "queued",
                "running",
            )
            time.sleep(0.2)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # no clean shutdown
        first.wait()
    second = start_engine(data, port)
    try:
        client = client_for(port)
        done = wait_for_job(client, job.id)
        assert done.status == "succeeded", done.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        resumed = [m for m in messages if m.startswith("Engine restarted; job re-queued from step")]
        assert len(resumed) == 1
        resumed_at = int(resumed[0].rsplit(" ", 1)[1])
        assert resumed_at >= 3  # one epoch of 12 examples in batches of 4
        steps = sorted(c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data)
        assert steps[-1] == 12 and steps[0] >= resumed_at
        answer = client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=[{"role": "user", "content": "Item 3: colour?"}],
            max_tokens=3,
        )
        assert answer.choices[0].message.content
    finally:
        stop_engine(second)
