"""DPO on preference data through the API: the tuned model prefers what the file prefers."""

from __future__ import annotations

import json

import pytest
from openai import OpenAI

from tests.conftest import wait_for_job
from tests.engine.test_api_e2e import chat_rows

TOPICS = [
    "the weather",
    "lunch",
    "a new laptop",
    "the weekend",
    "a book",
    "the train",
    "coffee",
    "a movie",
    "the garden",
    "music",
    "a walk",
    "the news",
]


def preference_rows(topics: list[str]) -> bytes:
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"Can you tell me about {t}?"}]},
            "preferred_output": [{"role": "assistant", "content": "Sure! Happy to help."}],
            "non_preferred_output": [{"role": "assistant", "content": "No. Ask someone else."}],
        }
        for t in topics
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


def metric_events(client: OpenAI, job_id: str) -> list[dict]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=100).data
    return sorted(
        (e.data for e in events if isinstance(e.data, dict) and "train_loss" in e.data),
        key=lambda d: d["step"],
    )


@pytest.mark.slow
def test_dpo_job_learns_the_preference(openai_client: OpenAI) -> None:
    train = openai_client.files.create(
        file=("prefs.jsonl", preference_rows(TOPICS)), purpose="fine-tune"
    )
    valid = openai_client.files.create(
        file=("prefs-valid.jsonl", preference_rows(["the sea", "dinner", "a song", "chess"])),
        purpose="fine-tune",
    )
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=train.id,
        validation_file=valid.id,
        method={
            "type": "dpo",
            "dpo": {"hyperparameters": {"n_epochs": 3, "batch_size": 4, "beta": 0.1}},
        },
    )
    done = wait_for_job(openai_client, job.id)
    assert done.status == "succeeded", done.error
    assert done.method.type == "dpo" and done.method.dpo.hyperparameters.beta == 0.1
    steps = metric_events(openai_client, job.id)
    # At the first step the policy is the base model, so the DPO loss is exactly ln 2.
    assert steps[0]["step"] == 1 and abs(steps[0]["train_loss"] - 0.6931) < 0.01
    final = steps[-1]
    # On held-out prompts the preferred answer now wins, by a clear margin.
    assert final["valid_mean_token_accuracy"] >= 0.75
    assert final["valid_loss"] < 0.6


def test_method_and_data_must_match(openai_client: OpenAI) -> None:
    prefs = openai_client.files.create(
        file=("p.jsonl", preference_rows(TOPICS)), purpose="fine-tune"
    )
    chat = openai_client.files.create(file=("c.jsonl", chat_rows(12)), purpose="fine-tune")
    sft_on_prefs = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=prefs.id
    )
    dpo_on_chat = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=chat.id, method={"type": "dpo"}
    )
    failed = wait_for_job(openai_client, sft_on_prefs.id)
    assert failed.status == "failed" and "method type `dpo`" in failed.error.message
    assert failed.error.param == "training_file" and "Line 1" in failed.error.message
    failed = wait_for_job(openai_client, dpo_on_chat.id)
    assert failed.status == "failed" and "needs preference examples" in failed.error.message
