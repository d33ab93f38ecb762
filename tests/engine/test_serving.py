"""TUNEUP_ENGINE_SERVE_URL: a job that succeeds gets its adapter loaded into a vLLM or SGLang
server at runtime, and chat for the tuned model is answered by that server (strict local fakes of
each server; the engine itself is real)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import engine_client, free_port, start_engine, stop_engine, wait_for_job
from tests.engine.test_api_e2e import chat_rows
from tests.engine.tiny_models import build
from tests.fakes.http_fake import HttpFake
from tests.fakes.sglang_server import FakeSGLang
from tests.fakes.vllm_server import FakeVLLM


def serve(fake: HttpFake) -> Iterator[HttpFake]:
    """A fake in its own thread and loop: the test drives the engine with the sync SDK."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(30)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def vllm() -> Iterator[HttpFake]:
    yield from serve(FakeVLLM(base_model="tiny-llama"))


@pytest.fixture
def sglang() -> Iterator[HttpFake]:
    yield from serve(FakeSGLang(base_model="/models/tiny-llama"))


def engine_serving_to(fake: HttpFake, tmp_path: Path) -> tuple[subprocess.Popen, OpenAI]:
    data = tmp_path / "engine"
    data.mkdir()
    model_dir = build("llama", tmp_path / "tiny-llama")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEUP_ENGINE_BASE_MODELS", json.dumps({"tiny-llama": str(model_dir)}))
        patch.setenv("TUNEUP_SERVE_URL", fake.url)
        patch.setenv("TUNEUP_ENGINE_SERVE_API_KEY", fake.key)
        port = free_port()
        return start_engine(data, port), engine_client(port)


def tune(client: OpenAI) -> tuple[str, str]:
    upload = client.files.create(file=("train.jsonl", chat_rows(8)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-llama", training_file=upload.id)
    done = wait_for_job(client, job.id)
    assert done.status == "succeeded", done.error
    return job.id, done.fine_tuned_model or ""


def ask(client: OpenAI, model: str) -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Item 1: colour?"}], max_tokens=8
    )
    return answer.choices[0].message.content or ""


def events(client: OpenAI, job_id: str) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data]


def test_a_tuned_adapter_is_served_by_vllm(tmp_path: Path, vllm: FakeVLLM) -> None:
    proc, client = engine_serving_to(vllm, tmp_path)
    try:
        job_id, tuned = tune(client)
        assert tuned in vllm.adapters
        assert (Path(vllm.adapters[tuned]) / "adapter_model.safetensors").exists()
        assert ask(client, tuned) == vllm.answer and vllm.asked == [tuned]
        assert ask(client, "tiny-llama") != vllm.answer  # only the tuned model is forwarded
        assert any("Adapter loaded into vLLM" in m for m in events(client, job_id))
    finally:
        stop_engine(proc)


def test_a_tuned_adapter_is_served_by_sglang(tmp_path: Path, sglang: FakeSGLang) -> None:
    """SGLang has no /v1/load_lora_adapter; its OpenAI API names an adapter `base:adapter`."""
    proc, client = engine_serving_to(sglang, tmp_path)
    try:
        job_id, tuned = tune(client)
        (name,) = sglang.adapters  # a name without ':' so `base:adapter` splits one way only
        assert ":" not in name and (Path(sglang.adapters[name]) / "adapter_config.json").exists()
        assert ask(client, tuned) == sglang.answer
        assert sglang.asked == [f"/models/tiny-llama:{name}"]
        assert ("POST", "/v1/load_lora_adapter") in sglang.requests  # vLLM's path, tried first
        assert any("Adapter loaded into SGLang" in m for m in events(client, job_id))
    finally:
        stop_engine(proc)
