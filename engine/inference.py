"""Loads base models and fine-tuned adapters on demand, keeping a small LRU in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from engine.basemodels import base_model_names, load_base
from engine.settings import EngineSettings
from engine.store import Store


class ModelNotFound(LookupError):
    pass


class ModelPool:
    def __init__(self, settings: EngineSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._loaded: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        # One generation at a time: torch already uses every core for a single request.
        self.run_lock = threading.Lock()

    def resolve(self, model_id: str) -> tuple[str, Path | None]:
        """Map a model id to (base model name, adapter directory or None)."""
        if model_id in base_model_names(self.settings):
            return model_id, None
        found = self.store.get_model(model_id)
        if found:
            return found[1], found[2]
        ckpt = self.store.checkpoint_by_model(model_id)
        if ckpt:
            internal = self.store.get_internal(ckpt[0]["fine_tuning_job_id"])
            return internal["base_model"], ckpt[1]
        raise ModelNotFound(model_id)

    def get(self, model_id: str) -> tuple[Any, Any]:
        base, adapter = self.resolve(model_id)
        with self._lock:
            if model_id in self._loaded:
                self._loaded.move_to_end(model_id)
                return self._loaded[model_id]
            model, tokenizer = load_base(self.settings, base)
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            if self.settings.inference_precision == "bf16":
                import torch

                # Decoding a small model on a CPU is bound by reading its weights: half the bytes
                model = model.to(torch.bfloat16)
            model.eval()
            model.config.use_cache = True
            self._loaded[model_id] = (model, tokenizer)
            while len(self._loaded) > max(1, self.settings.max_loaded_models):
                self._loaded.popitem(last=False)
            return model, tokenizer

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._loaded.pop(model_id, None)

    def loaded(self) -> list[str]:
        return list(self._loaded)
