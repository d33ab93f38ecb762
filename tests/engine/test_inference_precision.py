"""TUNEUP_ENGINE_INFERENCE_PRECISION=bf16: the model answers from bf16 weights (half the bytes to
read per token, which is what bounds decoding on a CPU), and still answers correctly."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.generation import encode_prompt, greedy_batch
from engine.inference import ModelPool
from engine.settings import DEFAULT_BASE_MODEL, EngineSettings
from engine.store import Store
from tests.conftest import model_cache


def test_bf16_inference_answers_the_obvious_question(tmp_path: Path) -> None:
    settings = EngineSettings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        model_cache_dir=Path(model_cache()),
        inference_precision="bf16",
    )
    pool = ModelPool(settings, Store(tmp_path / "engine.sqlite3"))
    model, tokenizer = pool.get(DEFAULT_BASE_MODEL)
    assert next(model.parameters()).dtype == torch.bfloat16
    prompt = encode_prompt(
        tokenizer, [{"role": "user", "content": "What is the capital of France?"}]
    )
    (answer,) = greedy_batch(model, tokenizer, [prompt], 12)
    assert "Paris" in answer, answer
