"""The memory estimate against measured peak memory (CPU), and a job that cannot fit refused
with the setting that would fit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine import memory
from engine import plan as plan_module
from engine.plan import DoesNotFit, make_plan
from engine.settings import EngineSettings
from tests.conftest import ROOT

# Llama-3.2-1B's shape (its config.json), for planning only.
LLAMA_1B = memory.Shape(
    n_params=1_235_814_400, hidden=2048, intermediate=8192, layers=16, vocab=128256, kv_hidden=512
)
# Llama-3.1-8B's shape (its config.json).
LLAMA_8B = memory.Shape(
    n_params=8_030_261_248, hidden=4096, intermediate=14336, layers=32, vocab=128256, kv_hidden=1024
)


@pytest.mark.parametrize("checkpointing", ["off", "on"])
def test_the_estimate_is_close_to_measured_peak_memory(checkpointing: str) -> None:
    probe = [sys.executable, "-m", "tests.engine.memory_probe", "8", "256", checkpointing]
    out = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = figures["estimated"] / figures["measured"]
    print(
        f"memory estimate (checkpointing {checkpointing}): {figures['text']}; measured "
        f"{figures['measured'] / memory.GiB:.2f} GiB; estimate/measured {ratio:.2f}"
    )
    assert 0.5 <= ratio <= 2.0, figures


def test_checkpointing_and_qlora_lower_the_estimate() -> None:
    args = dict(rank=16, tokens_per_step=8 * 2048, labelled_per_step=8 * 2048, cuda=True)
    full = memory.estimate(LLAMA_1B, precision="bf16", **args)
    saved = memory.estimate(LLAMA_1B, precision="bf16", gradient_checkpointing=True, **args)
    small = memory.estimate(
        LLAMA_1B, precision="bf16", qlora=True, gradient_checkpointing=True, **args
    )
    assert full.activations > 5 * saved.activations
    assert small.weights < full.weights / 3
    assert small.total < saved.total < full.total


def test_a_job_that_cannot_fit_gets_accumulation_or_a_clear_refusal() -> None:
    tight = EngineSettings(memory_limit_gb=10, precision="bf16", _env_file=None)  # type: ignore[call-arg]
    plan = make_plan(tight, "cpu", LLAMA_1B, "llama", {}, batch=16, seq_len=2048)
    assert plan.gradient_checkpointing and plan.grad_accum > 1  # the batch is kept, in steps
    assert plan.estimate_bytes <= 8 * memory.GiB
    tiny = EngineSettings(memory_limit_gb=1, precision="bf16", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(DoesNotFit, match="more than the 0.9 GiB available"):
        make_plan(tiny, "cpu", LLAMA_1B, "llama", {}, batch=16, seq_len=2048)
    manual = EngineSettings(  # type: ignore[call-arg]
        memory_limit_gb=12, precision="bf16", gradient_checkpointing="off", _env_file=None
    )
    plan = make_plan(manual, "cpu", LLAMA_1B, "llama", {}, batch=16, seq_len=2048)
    assert not plan.gradient_checkpointing and plan.grad_accum == 16
    refused = EngineSettings(  # type: ignore[call-arg]
        memory_limit_gb=8, precision="bf16", gradient_checkpointing="off", _env_file=None
    )
    with pytest.raises(DoesNotFit, match="use TUNEUP_ENGINE_GRADIENT_CHECKPOINTING=on"):
        make_plan(refused, "cpu", LLAMA_1B, "llama", {}, batch=16, seq_len=2048)


def test_qlora_without_bitsandbytes_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "installed", lambda package: package != "bitsandbytes")
    settings = EngineSettings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(DoesNotFit, match="QLoRA .* needs the bitsandbytes package"):
        make_plan(settings, "cpu", LLAMA_1B, "llama", {"qlora": True}, batch=4, seq_len=512)


def test_qlora_is_advised_only_where_bitsandbytes_can_run_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tight = EngineSettings(memory_limit_gb=10, precision="bf16", _env_file=None)  # type: ignore[call-arg]
    args = (LLAMA_8B, "llama", {}, 1, 2048)
    with pytest.raises(DoesNotFit, match="use qlora"):
        make_plan(tight, "cpu", *args)
    monkeypatch.setattr(plan_module, "installed", lambda package: package != "bitsandbytes")
    with pytest.raises(DoesNotFit) as refused:
        make_plan(tight, "cpu", *args)
    assert "qlora" not in str(refused.value)


def test_several_ranks_shard_the_model_when_a_replica_would_not_fit() -> None:
    settings = EngineSettings(memory_limit_gb=5, precision="bf16", _env_file=None)  # type: ignore[call-arg]
    replica = EngineSettings(  # type: ignore[call-arg]
        memory_limit_gb=5, precision="bf16", distributed="ddp", _env_file=None
    )
    args = (LLAMA_1B, "llama", {}, 8, 2048)
    with pytest.raises(DoesNotFit):
        make_plan(replica, "cpu", *args, processes=4)  # a whole copy per rank does not fit
    plan = make_plan(settings, "cpu", *args, processes=4)
    assert plan.strategy == "fsdp" and plan.estimate_bytes <= 5 * memory.GiB
    assert "4 processes (FSDP)" in plan.describe()
    roomy = EngineSettings(memory_limit_gb=64, precision="bf16", _env_file=None)  # type: ignore[call-arg]
    assert make_plan(roomy, "cpu", *args, processes=4).strategy == "ddp"
