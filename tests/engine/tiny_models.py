"""Tiny, randomly initialised causal LMs of each supported family, built from their config
classes (no downloads), with the bundled SmolLM2 tokenizer and each family's own chat template
(simplified from the families' published templates, keeping their distinctive markers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    Qwen2Config,
)

from engine.basemodels import resolve_base_dir
from engine.settings import DEFAULT_BASE_MODEL, EngineSettings
from tests.conftest import model_cache

_LOOP = "{% for m in messages %}"
TEMPLATES = {
    # Llama 3: header ids and <|eot_id|>
    "llama": "{{ bos_token }}" + _LOOP + "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
    # Qwen2: ChatML
    "qwen2": _LOOP + "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    # Gemma 2: turns, and the assistant is the "model"
    "gemma2": "{{ bos_token }}" + _LOOP + "<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    # Mistral: [INST] ... [/INST]
    "mistral": "{{ bos_token }}" + _LOOP + "{% if m['role'] == 'user' %}[INST] {{ m['content'] }}"
    " [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}",
    # Phi-3: <|user|> / <|assistant|> / <|end|>
    "phi3": _LOOP + "<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
}
MARKERS = {
    "llama": "<|start_header_id|>assistant",
    "qwen2": "<|im_start|>assistant",
    "gemma2": "<start_of_turn>model",
    "mistral": "[INST]",
    "phi3": "<|assistant|>",
}
CONFIGS: dict[str, tuple[type, dict[str, Any]]] = {
    "llama": (LlamaConfig, {}),
    "qwen2": (Qwen2Config, {}),
    "gemma2": (Gemma2Config, {"head_dim": 16, "query_pre_attn_scalar": 16}),
    "mistral": (MistralConfig, {"sliding_window": None}),
    "phi3": (Phi3Config, {"pad_token_id": 0}),
}
FAMILIES = tuple(CONFIGS)


def smollm2_dir() -> Path:
    return resolve_base_dir(EngineSettings(model_cache_dir=Path(model_cache())), DEFAULT_BASE_MODEL)


def tiny_config(family: str, vocab: int, **overrides: Any) -> Any:
    cls, extra = CONFIGS[family]
    shape = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    return cls(**{**shape, **extra, **overrides})


def build(family: str, dest: Path, seed: int = 0, **overrides: Any) -> Path:
    """Save a tiny `family` model (random weights, SmolLM2 tokenizer, own template) in `dest`."""
    if (dest / "config.json").exists():
        return dest
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    tokenizer.chat_template = TEMPLATES[family]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, len(tokenizer), **overrides))
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def base_models_env(root: Path) -> str:
    """TUNEUP_ENGINE_BASE_MODELS for one tiny model of every family."""
    return json.dumps({f"tiny-{f}": str(build(f, root / f)) for f in FAMILIES})
