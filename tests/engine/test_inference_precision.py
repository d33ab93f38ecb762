"""How the engine answers on a CPU: int8 weight-only by default (a quarter of fp32's bytes to read
per token, which is what bounds decoding on a CPU), bf16 or fp32 on request; each still answers
correctly, and int8 picks the same next token as fp32 almost everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engine.generation import encode_prompt, generate, greedy_batch
from engine.inference import ModelPool, inference_precision
from engine.quantize import Int8WeightOnlyLinear, count_int8_layers, int8_kernel_available
from engine.settings import DEFAULT_BASE_MODEL, EngineSettings
from engine.store import Store
from tests.conftest import model_cache

QUESTIONS = [
    "Write a short poem about the sea.",
    "Explain photosynthesis in one sentence.",
    "Give me a tip for better sleep.",
    "What is machine learning?",
]


def pool_with(tmp_path: Path, precision: str) -> ModelPool:
    settings = EngineSettings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / precision,
        model_cache_dir=Path(model_cache()),
        inference_precision=precision,
    )
    return ModelPool(settings, Store(tmp_path / f"{precision}.sqlite3"))


def paris(model: Any, tokenizer: Any) -> str:
    prompt = encode_prompt(
        tokenizer, [{"role": "user", "content": "What is the capital of France?"}]
    )
    (answer,) = greedy_batch(model, tokenizer, [prompt], 12)
    return answer


def test_auto_means_int8_on_a_cpu_and_as_loaded_on_a_gpu() -> None:
    assert inference_precision("auto", "cpu") == ("int8" if int8_kernel_available() else "fp32")
    assert inference_precision("fp32", "cpu") == "fp32"
    assert inference_precision("auto", "cuda:0") == "as loaded"


def test_bf16_inference_answers_the_obvious_question(tmp_path: Path) -> None:
    model, tokenizer = pool_with(tmp_path, "bf16").get(DEFAULT_BASE_MODEL)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert "Paris" in paris(model, tokenizer)


@pytest.mark.skipif(not int8_kernel_available(), reason="this torch has no int8 CPU kernel")
def test_int8_default_answers_and_agrees_with_fp32(tmp_path: Path) -> None:
    int8, tokenizer = pool_with(tmp_path, "auto").get(DEFAULT_BASE_MODEL)
    fp32, _ = pool_with(tmp_path, "fp32").get(DEFAULT_BASE_MODEL)
    linears = sum(isinstance(m, torch.nn.Linear) for m in fp32.modules())
    assert count_int8_layers(fp32) == 0
    assert count_int8_layers(int8) == linears  # the output head too
    assert int8.lm_head.weight_int8.dtype == torch.int8
    assert "Paris" in paris(int8, tokenizer)

    same = total = 0
    with torch.no_grad():
        for question in QUESTIONS:
            ids = encode_prompt(tokenizer, [{"role": "user", "content": question}])
            reference = generate(fp32, tokenizer, ids, max_new_tokens=32, min_new_tokens=32)
            sequence = torch.tensor([ids + reference.token_ids])
            expected = fp32(sequence).logits[0, len(ids) - 1 : -1].argmax(-1)
            got = int8(sequence).logits[0, len(ids) - 1 : -1].float().argmax(-1)
            same += int((got == expected).sum())
            total += len(expected)
    print(f"int8 picks fp32's next token at {same}/{total} positions ({same / total:.1%})")
    assert same / total >= 0.9


@pytest.mark.skipif(not int8_kernel_available(), reason="this torch has no int8 CPU kernel")
def test_int8_linear_matches_its_float_layer_within_quantization_error() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True)
    quantized = Int8WeightOnlyLinear(linear)
    x = torch.randn(3, 5, 64)
    expected = linear(x)
    got = quantized(x).float()
    assert got.shape == expected.shape
    relative = (got - expected).norm() / expected.norm()
    assert relative < 0.02, relative
