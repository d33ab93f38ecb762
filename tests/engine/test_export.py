"""Export: the adapter is what vLLM loads; the merged model is full precision and, loaded with
plain transformers, answers as the engine does."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.inference import inference_precision
from engine.quantize import quantize_int8
from tests.conftest import ENGINE_KEY, wait_for_job
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
    # Plain transformers in fp32 answers like the engine (which answers in int8 on a CPU) ...
    assert greedy(merged, tokenizer) == engine
    # ... and the same weights quantized as the engine quantizes them answer exactly as it does.
    if inference_precision("auto", "cpu") == "int8":
        assert greedy(quantize_int8(merged), tokenizer) == engine

    base = httpx.get(
        f"{engine_url}/models/smollm2-135m-instruct/export",
        headers={"Authorization": f"Bearer {ENGINE_KEY}"},
    )
    assert base.status_code == 400 and base.json()["error"]["message"]
