"""Export a tuned model to be served elsewhere.

- `adapter`: the PEFT LoRA adapter as trained (`adapter_config.json`, `adapter_model.safetensors`),
  ready for vLLM's `--lora-modules` or its runtime `load_lora_adapter`, next to the base model.
- `merged`: the adapter merged into its base, saved with `save_pretrained` (safetensors) and the
  tokenizer: a plain Hugging Face model directory any server loads.
Both come as one ZIP archive (stored, not compressed: weights don't compress).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

FORMATS = ("adapter", "merged")


def zip_dir(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source).as_posix())
    return target


def export_adapter(adapter_dir: Path, work: Path) -> Path:
    wanted = [
        p for p in adapter_dir.iterdir() if p.name.startswith("adapter_") or p.suffix == ".json"
    ]
    staging = work / "adapter"
    staging.mkdir()
    for path in wanted:
        (staging / path.name).write_bytes(path.read_bytes())
    return zip_dir(staging, work / "adapter.zip")


def export_merged(model: Any, tokenizer: Any, work: Path) -> Path:
    staging = work / "merged"
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    return zip_dir(staging, work / "merged.zip")


def new_workdir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="export-", dir=root))
