"""Export: the adapter is what vLLM loads; the merged model is full precision. Loaded with plain
transformers it answers exactly as the engine does once quantized the way the engine answers on a
CPU (int8), and it has exactly the logits of an engine answering in fp32."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.generation import encode_prompt
from engine.inference import inference_precision
from engine.quantize import quantize_int8
from tests.conftest import (
    ENGINE_KEY,
    engine_client,
    free_port,
    start_engine,
    stop_engine,
    wait_for_job,
)
from tests.engine.test_api_e2e import chat_rows

PROMPT = "Ticket: the invoice is wrong\nCategory:"


def export(engine_url: str, model: str, fmt: str) -> zipfile.ZipFile:
    response = httpx.get(
        f"{engine_url}/models/{model}/export",
        params={"format": fmt},
        headers={"Authorization": f"Bearer {ENGINE_KEY}"},
        timeout=600,
    )
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


def greedy(model: torch.nn.Module, tokenizer: AutoTokenizer) -> str:
    ids = tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)
    out = model.generate(
        **ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.eos_token_id
    )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_adapter_and_merged_exports(openai_client: OpenAI, engine_url: str, tmp_path: Path) -> None:
    upload = openai_client.files.create(file=("c.jsonl", chat_rows(12)), purpose="fine-tune")
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=upload.id, hyperparameters={"n_epochs": 1}
    )
    model = wait_for_job(openai_client, job.id).fine_tuned_model
    adapter = export(engine_url, model, "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(adapter.namelist())
    assert json.loads(adapter.read("adapter_config.json"))["peft_type"] == "LORA"

    export(engine_url, model, "merged").extractall(tmp_path / "merged")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in merged.parameters())  # full precision
    engine = (
        openai_client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0)
        .choices[0]
        .text
    )
    # The engine answers in int8 on a CPU: the exported weights, quantized as the engine
    # quantizes them, answer exactly as it does. (Plain fp32 can part ways where two tokens
    # nearly tie; the fp32 engine below has exactly its logits, and test_inference_precision
    # measures how often int8 and fp32 pick the same token.)
    expected = merged if inference_precision("auto", "cpu") != "int8" else quantize_int8(merged)
    assert greedy(expected, tokenizer) == engine

    base = httpx.get(
        f"{engine_url}/models/smollm2-135m-instruct/export",
        headers={"Authorization": f"Bearer {ENGINE_KEY}"},
    )
    assert base.status_code == 400 and base.json()["error"]["message"]


@pytest.fixture(scope="module")
def fp32_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An engine that answers in fp32, as an fp32 load of its exports does."""
    data = tmp_path_factory.mktemp("fp32-engine") / "data"
    data.mkdir()
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEUP_ENGINE_INFERENCE_PRECISION", "fp32")
        proc = start_engine(data, port)
    try:
        yield port
    finally:
        stop_engine(proc)


def test_an_fp32_engine_and_its_merged_export_have_the_same_logits(
    fp32_engine: int, tmp_path: Path
) -> None:
    client = engine_client(fp32_engine)
    upload = client.files.create(file=("c.jsonl", chat_rows(12)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=upload.id, hyperparameters={"n_epochs": 1}
    )
    model = wait_for_job(client, job.id).fine_tuned_model or ""
    export(f"http://127.0.0.1:{fp32_engine}/v1", model, "merged").extractall(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32)

    messages = [{"role": "user", "content": "Item 3: colour?"}]
    answer = client.chat.completions.create(
        model=model, messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=5
    )
    content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
    ids = torch.tensor([encode_prompt(tokenizer, messages)])
    out = merged.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=6,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.eos_token_id,
    )
    assert content and len(out.scores) >= len(content)
    for position, engine_token in enumerate(content):
        logp = torch.log_softmax(out.scores[position][0].float(), dim=-1)
        theirs = torch.topk(logp, 5).values.tolist()
        ours = [alt.logprob for alt in engine_token.top_logprobs]
        assert ours == pytest.approx(theirs, abs=1e-4), position
