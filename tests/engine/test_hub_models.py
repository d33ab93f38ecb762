"""Hugging Face Hub ids as base models: HF_HUB_OFFLINE is respected, and an unreachable Hub or an
unknown model is one clear sentence, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.basemodels import UnknownBaseModel, is_hub_id, resolve_base_dir
from engine.settings import EngineSettings


def settings(**kw: object) -> EngineSettings:
    return EngineSettings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_what_counts_as_a_hub_id() -> None:
    s = settings()
    assert is_hub_id(s, "Qwen/Qwen2.5-0.5B-Instruct")
    assert not is_hub_id(s, "smollm2-135m-instruct")
    assert not is_hub_id(s, "ft:smollm2-135m-instruct:local::abc")
    assert not is_hub_id(settings(hub_models=False), "Qwen/Qwen2.5-0.5B-Instruct")


def test_offline_and_not_cached_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UnknownBaseModel, match="HF_HUB_OFFLINE is set") as caught:
        resolve_base_dir(settings(), "acme/never-downloaded")
    assert "hf download acme/never-downloaded" in str(caught.value)


def test_an_unreachable_hub_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    nowhere = settings(hub_endpoint="http://127.0.0.1:9")
    with pytest.raises(UnknownBaseModel, match="can't reach the Hugging Face Hub"):
        resolve_base_dir(nowhere, "acme/some-model")
