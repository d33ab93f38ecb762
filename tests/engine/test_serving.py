"""TUNEUP_ENGINE_SERVE_URL: a job that succeeds gets its adapter loaded into a vLLM server at
runtime, and chat for the tuned model is answered by that server (a strict local fake of vLLM's
OpenAI server; the engine itself is real)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import engine_client, free_port, start_engine, stop_engine, wait_for_job
from tests.engine.test_api_e2e import chat_rows
from tests.engine.tiny_models import build
from tests.fakes.vllm_server import FakeVLLM


@pytest.fixture
def vllm() -> Iterator[FakeVLLM]:
    """The fake in its own thread and loop: the test drives the engine with the sync SDK."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeVLLM(base_model="tiny-llama")
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(30)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)


def test_a_tuned_adapter_is_served_by_vllm(tmp_path: Path, vllm: FakeVLLM) -> None:
    data = tmp_path / "engine"
    data.mkdir()
    port = free_port()
    model_dir = build("llama", tmp_path / "tiny-llama")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEUP_ENGINE_BASE_MODELS", json.dumps({"tiny-llama": str(model_dir)}))
        patch.setenv("TUNEUP_SERVE_URL", vllm.url)
        patch.setenv("TUNEUP_ENGINE_SERVE_API_KEY", FakeVLLM.key)
        proc = start_engine(data, port)
    try:
        client = engine_client(port)
        upload = client.files.create(file=("train.jsonl", chat_rows(8)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny-llama", training_file=upload.id)
        done = wait_for_job(client, job.id)
        assert done.status == "succeeded", done.error
        tuned = done.fine_tuned_model or ""
        assert tuned in vllm.adapters
        assert (Path(vllm.adapters[tuned]) / "adapter_model.safetensors").exists()
        answer = client.chat.completions.create(
            model=tuned, messages=[{"role": "user", "content": "Item 1: colour?"}], max_tokens=8
        )
        assert answer.choices[0].message.content == vllm.answer and vllm.asked == [tuned]
        base = client.chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert base.choices[0].message.content != vllm.answer  # only the tuned model is forwarded
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        assert any("Adapter loaded into the serving engine" in m for m in events)
    finally:
        stop_engine(proc)
