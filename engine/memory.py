"""Memory planning: a job's peak memory, estimated before it starts, so a job that cannot fit is
refused with the setting that would fit instead of dying halfway with an out-of-memory error.

The estimate adds: base weights (4-bit NF4 for QLoRA), LoRA weights with their fp32 gradients and
AdamW moments, activations kept for the backward pass (per layer and token: the attention and
SwiGLU MLP inputs and outputs; with gradient checkpointing only each layer's input plus one
layer's worth), and the LM-head logits, which the engine computes only for labelled tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GiB = 2**30
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
NF4_BYTES = 0.55  # 4-bit weights plus their quantization constants
CUDA_CONTEXT = 600 * 2**20  # what the CUDA runtime and allocator hold before any tensor


@dataclass(frozen=True)
class Shape:
    """What memory depends on, read from a model's config."""

    n_params: int
    hidden: int
    intermediate: int
    layers: int
    vocab: int
    kv_hidden: int

    @classmethod
    def of(cls, config: Any, n_params: int) -> Shape:
        hidden = int(config.hidden_size)
        heads = int(getattr(config, "num_attention_heads", 1) or 1)
        kv_heads = int(getattr(config, "num_key_value_heads", heads) or heads)
        head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
        return cls(
            n_params=n_params,
            hidden=hidden,
            intermediate=int(getattr(config, "intermediate_size", 4 * hidden)),
            layers=int(config.num_hidden_layers),
            vocab=int(config.vocab_size),
            kv_hidden=kv_heads * head_dim,
        )


@dataclass(frozen=True)
class Estimate:
    weights: int
    trainable: int  # LoRA weights + gradients + AdamW moments
    activations: int
    logits: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.trainable + self.activations + self.logits + self.overhead

    def text(self) -> str:
        parts = {
            "weights": self.weights,
            "LoRA+optimizer": self.trainable,
            "activations": self.activations,
            "logits": self.logits,
        }
        shown = ", ".join(f"{k} {v / GiB:.2f}" for k, v in parts.items())
        return f"~{self.total / GiB:.2f} GiB ({shown} GiB)"


def lora_params(shape: Shape, rank: int) -> int:
    """LoRA on q,k,v,o and the three MLP projections: rank × (in + out) per matrix."""
    attention = 2 * (shape.hidden + shape.hidden) + 2 * (shape.hidden + shape.kv_hidden)
    mlp = 3 * (shape.hidden + shape.intermediate)
    return rank * (attention + mlp) * shape.layers


def estimate(
    shape: Shape,
    *,
    rank: int,
    tokens_per_step: int,
    labelled_per_step: int,
    precision: str = "fp32",
    qlora: bool = False,
    gradient_checkpointing: bool = False,
    cuda: bool = False,
    shards: int = 1,
) -> Estimate:
    """Peak bytes of one training step on one device (`tokens_per_step` = micro-batch rows ×
    row length); `shards`: FSDP ranks the layers' weights and optimizer state are split over."""
    width = BYTES[precision]
    weights = int(shape.n_params * (NF4_BYTES if qlora else width) / shards)
    trainable = lora_params(shape, rank) * (4 + 4 + 8) // shards
    per_token_layer = 10 * shape.hidden + 2 * shape.kv_hidden + 4 * shape.intermediate
    if gradient_checkpointing:
        kept = shape.hidden * shape.layers + per_token_layer
    else:
        kept = per_token_layer * shape.layers
    activations = int(tokens_per_step * kept * width)
    logits = labelled_per_step * shape.vocab * 4 * 3  # fp32 logits, softmax, their gradient
    return Estimate(weights, trainable, activations, logits, CUDA_CONTEXT if cuda else 0)


def advice(
    shape: Shape, available: int, batch: int, seq_len: int, qlora_possible: bool, **kw: Any
) -> str | None:
    """None when the job fits `available` bytes; else what was estimated and what would fit."""
    need = estimate(shape, tokens_per_step=batch * seq_len, labelled_per_step=batch * seq_len, **kw)
    if need.total <= available:
        return None
    tries: list[tuple[str, dict[str, Any], int]] = []
    if not kw.get("gradient_checkpointing"):
        tries.append(
            ("TUNEUP_ENGINE_GRADIENT_CHECKPOINTING=on", {"gradient_checkpointing": True}, batch)
        )
    if not kw.get("qlora") and qlora_possible:
        qlora = {"qlora": True, "gradient_checkpointing": True}
        tries.append(("qlora (hyperparameter `qlora: true`)", qlora, batch))
    for smaller in (batch // 2, batch // 4, 1):
        if 0 < smaller < batch:
            tries.append((f"batch_size {smaller}", {}, smaller))
    for label, change, b in tries:
        option = {**kw, **change}
        fits = estimate(shape, tokens_per_step=b * seq_len, labelled_per_step=b * seq_len, **option)
        if fits.total <= available:
            return (
                f"this job needs {need.text()}, more than the {available / GiB:.1f} GiB "
                f"available; use {label} (~{fits.total / GiB:.2f} GiB)"
            )
    return (
        f"this job needs {need.text()}, more than the {available / GiB:.1f} GiB available, and "
        "no setting here makes it fit: use a smaller base model or a shorter max_seq_len"
    )
