"""The engine driven only through the official openai SDK in strict mode."""

from __future__ import annotations

import json
import time

import openai
import pytest
from openai import OpenAI

from tests.conftest import wait_for_job


def chat_rows(n: int) -> bytes:
    rows = []
    for i in range(n):
        colour = ["red", "blue", "green"][i % 3]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Item {i}: colour?"},
                    {"role": "assistant", "content": colour},
                ]
            }
        )
    return "\n".join(json.dumps(r) for r in rows).encode()


@pytest.fixture(scope="module")
def finished_job(openai_client: OpenAI):  # type: ignore[no-untyped-def]
    f = openai_client.files.create(file=("train.jsonl", chat_rows(12)), purpose="fine-tune")
    v = openai_client.files.create(file=("valid.jsonl", chat_rows(6)), purpose="fine-tune")
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=f.id,
        validation_file=v.id,
        suffix="e2e",
        seed=3,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
        },
        metadata={"team": "t1"},
    )
    assert job.status == "validating_files"
    return wait_for_job(openai_client, job.id)


def test_job_trains_and_reports_like_openai(openai_client: OpenAI, finished_job) -> None:  # type: ignore[no-untyped-def]
    job = finished_job
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:smollm2-135m-instruct:local:e2e:{job.id[-8:]}"
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 4
    events = openai_client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in reversed(events)]
    assert messages[0].startswith("Created fine-tuning job")
    assert "Files validated, moving job to queued state" in messages
    assert messages[-1] == "The job has successfully completed"
    metrics = [e for e in events if e.type == "metrics" and e.data and "total_steps" in e.data]
    assert metrics and metrics[0].data["total_steps"] == 6
    assert {
        "train_loss",
        "train_mean_token_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
    } <= set(metrics[0].data)
    # newest-first pagination with after
    first = openai_client.fine_tuning.jobs.list_events(job.id, limit=2)
    second = openai_client.fine_tuning.jobs.list_events(job.id, limit=2, after=first.data[-1].id)
    assert second.data[0].id == events[2].id


def test_checkpoints_result_file_and_inference(openai_client: OpenAI, finished_job) -> None:  # type: ignore[no-untyped-def]
    job = finished_job
    ckpts = openai_client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in ckpts] == [6, 3]
    assert ckpts[1].fine_tuned_model_checkpoint.endswith(":ckpt-step-3")
    assert ckpts[1].metrics.train_loss is not None
    csv_text = openai_client.files.content(job.result_files[0]).text
    assert (
        csv_text.splitlines()[0]
        == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    )
    assert len(csv_text.splitlines()) == 7
    for model in (job.fine_tuned_model, ckpts[1].fine_tuned_model_checkpoint):
        r = openai_client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Item 40: colour?"}],
            max_tokens=5,
            logprobs=True,
            top_logprobs=2,
        )
        assert r.choices[0].message.content
        assert r.usage and r.usage.completion_tokens >= 1
        assert r.choices[0].logprobs and len(r.choices[0].logprobs.content[0].top_logprobs) == 2
    stream = openai_client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    listed = [m.id for m in openai_client.models.list().data]
    assert "smollm2-135m-instruct" in listed and job.fine_tuned_model in listed
    jobs = openai_client.fine_tuning.jobs.list(metadata={"team": "t1"}).data
    assert [j.id for j in jobs] == [job.id]


def _first_loss(client: OpenAI, job_id: str) -> float:
    events = client.fine_tuning.jobs.list_events(job_id, limit=100).data
    steps = [e.data for e in events if isinstance(e.data, dict) and e.data.get("step") == 1]
    return float(steps[0]["train_loss"])


def test_continuing_from_a_tuned_model_starts_where_it_ended(
    openai_client: OpenAI, finished_job
) -> None:  # type: ignore[no-untyped-def]
    f = openai_client.files.create(file=("more.jsonl", chat_rows(8)), purpose="fine-tune")
    job = openai_client.fine_tuning.jobs.create(
        model=finished_job.fine_tuned_model,
        training_file=f.id,
        suffix="more",
        hyperparameters={"n_epochs": 1, "batch_size": 4},
    )
    done = wait_for_job(openai_client, job.id)
    assert done.status == "succeeded", done.error
    assert done.model == finished_job.fine_tuned_model
    assert done.fine_tuned_model.startswith("ft:smollm2-135m-instruct:local:more:")
    # the same kind of data: a fresh adapter starts high, the tuned one starts already low
    assert _first_loss(openai_client, job.id) < 0.5 * _first_loss(openai_client, finished_job.id)


def test_cancel_and_delete(openai_client: OpenAI, finished_job) -> None:  # type: ignore[no-untyped-def]
    f = openai_client.files.create(file=("t.jsonl", chat_rows(40)), purpose="fine-tune")
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=f.id,
        hyperparameters={"n_epochs": 20, "batch_size": 1},
    )
    deadline = time.monotonic() + 120
    while (
        openai_client.fine_tuning.jobs.retrieve(job.id).status != "running"
        and time.monotonic() < deadline
    ):
        time.sleep(0.3)
    cancelled = openai_client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    time.sleep(3)
    after = openai_client.fine_tuning.jobs.retrieve(job.id)
    assert after.status == "cancelled" and after.fine_tuned_model is None
    assert openai_client.fine_tuning.jobs.checkpoints.list(job.id).data == []
    with pytest.raises(openai.BadRequestError):
        openai_client.fine_tuning.jobs.cancel(job.id)

    deleted = openai_client.models.delete(finished_job.fine_tuned_model)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve(finished_job.fine_tuned_model)


def test_errors_have_openai_shape(openai_client: OpenAI, engine_url: str) -> None:
    bad = OpenAI(
        base_url=engine_url, api_key="wrong", max_retries=0, _strict_response_validation=True
    )
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.NotFoundError) as nf:
        openai_client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert nf.value.code == "fine_tuning_job_not_found"
    with pytest.raises(openai.BadRequestError) as br:
        openai_client.fine_tuning.jobs.create(model="no-such-model", training_file="file-x")
    assert br.value.param == "model"
    with pytest.raises(openai.BadRequestError) as method:
        openai_client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct", training_file="file-x", method={"type": "reinforcement"}
        )
    assert method.value.param == "method.type"


def test_bad_file_fails_the_job_with_a_line_number(openai_client: OpenAI) -> None:
    content = chat_rows(3) + b'\n{"messages": [{"role": "user", "content": "no answer"}]}\n'
    f = openai_client.files.create(file=("bad.jsonl", content), purpose="fine-tune")
    job = openai_client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id)
    done = wait_for_job(openai_client, job.id)
    assert done.status == "failed"
    assert done.error and done.error.param == "training_file"
    assert done.error.message.startswith("Line 4:")
    assert "assistant" in done.error.message
