"""How a job trains on this machine: precision, attention kernel, gradient checkpointing,
accumulation, packing, fused AdamW, Liger kernels and QLoRA. Each is chosen automatically from
the device and the memory estimate, and each has an engine setting (and some a hyperparameter)
that overrides it. A job that cannot fit is refused before it starts, saying what would fit.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from typing import Any

from engine import memory
from engine.settings import EngineSettings

LIGER_FAMILIES = {
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3",
    "phi3",
}


class DoesNotFit(Exception):
    """The job's estimated peak memory exceeds what the device has; the message says what fits."""


@dataclass
class Plan:
    device: str
    precision: str  # fp32 | bf16 | fp16
    attention: str  # sdpa | flash_attention_2 | eager
    gradient_checkpointing: bool
    grad_accum: int
    packing: bool
    fused_adamw: bool
    liger: bool
    qlora: bool
    estimate_bytes: int = 0
    available_bytes: int = 0
    processes: int = 1  # ranks of a distributed job (each estimate is per rank)
    strategy: str = "single"  # single | ddp | fsdp

    def describe(self) -> str:
        on = [
            name
            for name, used in (
                ("gradient checkpointing", self.gradient_checkpointing),
                ("packing", self.packing),
                ("fused AdamW", self.fused_adamw),
                ("Liger kernels", self.liger),
                ("QLoRA (4-bit NF4 base)", self.qlora),
            )
            if used
        ]
        accum = f", accumulation ×{self.grad_accum}" if self.grad_accum > 1 else ""
        extras = f", {', '.join(on)}" if on else ""
        need = self.estimate_bytes / memory.GiB
        ranks = f"{self.processes} processes (DDP), " if self.processes > 1 else ""
        if self.processes > 1:
            ranks = f"{self.processes} processes ({self.strategy.upper()}), "
        return (
            f"{ranks}{self.device}, {self.precision}, {self.attention}{accum}{extras}; "
            f"estimated peak memory {need:.2f} GiB of {self.available_bytes / memory.GiB:.1f} GiB"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_memory(settings: EngineSettings, device: str) -> int:
    """Bytes the job may use: the setting, else free GPU memory, else available RAM."""
    if settings.memory_limit_gb:
        return int(settings.memory_limit_gb * memory.GiB)
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 8 * memory.GiB


def _precision(settings: EngineSettings, cuda: bool) -> str:
    if settings.precision != "auto":
        return settings.precision
    if not cuda:
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _attention(settings: EngineSettings, cuda: bool) -> str:
    if settings.attention != "auto":
        return settings.attention
    return "flash_attention_2" if cuda and installed("flash_attn") else "sdpa"


def _qlora(settings: EngineSettings, hyper: dict[str, Any]) -> bool:
    wanted = bool(hyper.get("qlora", settings.qlora))
    if wanted and not installed("bitsandbytes"):
        raise DoesNotFit(
            "QLoRA (a 4-bit base model) needs the bitsandbytes package, which this engine lacks: "
            "pip install bitsandbytes (it also runs on a CPU), or train without qlora"
        )
    return wanted


def make_plan(
    settings: EngineSettings,
    device: str,
    shape: memory.Shape,
    model_type: str,
    hyper: dict[str, Any],
    batch: int,
    seq_len: int,
    processes: int = 1,
) -> Plan:
    cuda = device.startswith("cuda")
    plan = Plan(
        device=device,
        precision=_precision(settings, cuda),
        attention=_attention(settings, cuda),
        gradient_checkpointing=settings.gradient_checkpointing == "on",
        grad_accum=int(hyper.get("gradient_accumulation_steps") or 1),
        packing=bool(
            hyper.get("packing", settings.packing == "on" or (settings.packing == "auto" and cuda))
        ),
        fused_adamw=cuda,
        liger=settings.liger != "off"
        and cuda
        and installed("liger_kernel")
        and model_type in LIGER_FAMILIES,
        qlora=_qlora(settings, hyper),
        available_bytes=available_memory(settings, device),
        processes=processes,
        strategy=_strategy(settings, processes),
    )
    _fit(plan, settings, shape, batch, seq_len)
    return plan


def _strategy(settings: EngineSettings, processes: int) -> str:
    if processes <= 1:
        return "single"
    return "fsdp" if settings.distributed == "fsdp" else "ddp"


def _accumulate_until_fits(
    plan: Plan,
    settings: EngineSettings,
    shape: memory.Shape,
    batch: int,
    seq_len: int,
    budget: float,
) -> None:
    plan.estimate_bytes = _estimate(plan, settings, shape, batch, seq_len)
    while plan.estimate_bytes > budget and plan.grad_accum < batch:
        plan.grad_accum *= 2
        plan.estimate_bytes = _estimate(plan, settings, shape, batch, seq_len)


def _estimate(
    plan: Plan, settings: EngineSettings, shape: memory.Shape, batch: int, seq_len: int
) -> int:
    rows = max(1, batch // plan.grad_accum)
    return memory.estimate(
        shape,
        rank=settings.lora_rank,
        tokens_per_step=rows * seq_len,
        labelled_per_step=rows * seq_len,
        precision=plan.precision,
        qlora=plan.qlora,
        gradient_checkpointing=plan.gradient_checkpointing,
        cuda=plan.device.startswith("cuda"),
        shards=plan.processes if plan.strategy == "fsdp" else 1,
    ).total


def _fit(
    plan: Plan, settings: EngineSettings, shape: memory.Shape, batch: int, seq_len: int
) -> None:
    """Turn on checkpointing, then accumulate over smaller micro-batches, then (with several
    ranks) shard the model, until the job fits."""
    budget = plan.available_bytes * 0.9
    start = plan.grad_accum
    plan.estimate_bytes = _estimate(plan, settings, shape, batch, seq_len)
    if plan.estimate_bytes > budget and settings.gradient_checkpointing == "auto":
        plan.gradient_checkpointing = True
    _accumulate_until_fits(plan, settings, shape, batch, seq_len, budget)
    if plan.estimate_bytes > budget and plan.strategy == "ddp" and settings.distributed == "auto":
        plan.strategy, plan.grad_accum = "fsdp", start
        _accumulate_until_fits(plan, settings, shape, batch, seq_len, budget)
    if plan.estimate_bytes > budget:
        advice = memory.advice(
            shape,
            int(budget),
            1,
            seq_len,
            rank=settings.lora_rank,
            precision=plan.precision,
            qlora=plan.qlora,
            gradient_checkpointing=plan.gradient_checkpointing,
            cuda=plan.device.startswith("cuda"),
            qlora_possible=installed("bitsandbytes"),
        )
        raise DoesNotFit(advice or "this job does not fit in memory")
