"""Local Hugging Face model directories of each family as engine base models, end to end through
the real engine and the official openai SDK: /models describes them, a job trains with the
engine's plan (packing and accumulation as hyperparameters, QLoRA on a 4-bit base), and the tuned
model answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import engine_client, free_port, start_engine, stop_engine, wait_for_job
from tests.engine.test_api_e2e import chat_rows
from tests.engine.tiny_models import FAMILIES, base_models_env


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    root = tmp_path_factory.mktemp("families")
    data = root / "engine"
    data.mkdir()
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEUP_ENGINE_BASE_MODELS", base_models_env(root / "models"))
        proc = start_engine(data, port)
    try:
        yield engine_client(port)
    finally:
        stop_engine(proc)


def test_models_describe_each_local_base_model(client: OpenAI) -> None:
    listed = {m.id: m for m in client.models.list().data}
    for family in FAMILIES:
        details = (listed[f"tiny-{family}"].model_extra or {})["tuneup"]
        assert details["parameters"] > 1_000_000 and details["context_length"] == 1024
        assert details["device"] == "cpu" and details["family"] == family


@pytest.mark.parametrize("family", ["qwen2", "phi3"])
def test_a_family_trains_with_packing_and_accumulation_and_answers(
    client: OpenAI, family: str
) -> None:
    upload = client.files.create(file=("train.jsonl", chat_rows(16)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=f"tiny-{family}",
        training_file=upload.id,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": 2,
                    "batch_size": 8,
                    "packing": True,
                    "gradient_accumulation_steps": 2,
                }
            },
        },
    )
    done = wait_for_job(client, job.id)
    assert done.status == "succeeded", done.error
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    plan = next(m for m in messages if m.startswith("Training plan:"))
    assert "accumulation ×2" in plan and "packing" in plan and "estimated peak memory" in plan
    answer = client.chat.completions.create(
        model=done.fine_tuned_model or "",
        messages=[{"role": "user", "content": "Item 1: colour?"}],
        max_tokens=4,
    )
    assert isinstance(answer.choices[0].message.content, str)


def test_a_qlora_job_trains_on_a_4bit_base_and_answers(client: OpenAI) -> None:
    """bitsandbytes runs NF4 on a CPU too, so the QLoRA path is exercised here, not only on GPUs."""
    upload = client.files.create(file=("train.jsonl", chat_rows(16)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny-llama",
        training_file=upload.id,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"qlora": True, "n_epochs": 2, "batch_size": 4}},
        },
    )
    done = wait_for_job(client, job.id)
    assert done.status == "succeeded", done.error
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    plan = next(e.message for e in events if e.message.startswith("Training plan:"))
    assert "QLoRA (4-bit NF4 base)" in plan
    losses = [e.data["train_loss"] for e in reversed(events) if e.type == "metrics" and e.data]
    assert len(losses) >= 8 and losses[-1] < losses[0], losses  # 2 epochs of 4 steps, learning
    answer = client.chat.completions.create(
        model=done.fine_tuned_model or "",
        messages=[{"role": "user", "content": "Item 1: colour?"}],
        max_tokens=4,
    )
    assert isinstance(answer.choices[0].message.content, str)


def test_a_bad_engine_hyperparameter_is_refused_at_create(client: OpenAI) -> None:
    import openai

    upload = client.files.create(file=("train.jsonl", chat_rows(8)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(
            model="tiny-llama",
            training_file=upload.id,
            hyperparameters={"packing": "yes"},  # type: ignore[typeddict-unknown-key]
        )
    assert "packing must be true or false" in str(caught.value)


def test_tiny_models_are_real_directories(tmp_path: Path) -> None:
    models = json.loads(base_models_env(tmp_path))
    assert set(models) == {f"tiny-{f}" for f in FAMILIES}
    assert all((Path(p) / "tokenizer_config.json").exists() for p in models.values())
