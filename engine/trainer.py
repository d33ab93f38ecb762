"""The LoRA training loop.

Speed on CPU comes from three choices a stock `Trainer` run does not make:
- length bucketing, so batches carry almost no padding;
- logits only where a label exists (the 49k-wide LM head is the costliest matmul);
- one fused step per batch with no per-token Python work.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.objectives import BatchResult

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Cancelled(Exception):
    pass


def auto_epochs(n_examples: int) -> int:
    """The OpenAI cookbook's default-epochs rule."""
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(25, MIN_TARGET_EXAMPLES // max(1, n_examples))
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(1, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def auto_batch_size(n_examples: int) -> int:
    return min(8, max(1, n_examples // 8))


@dataclass
class TrainConfig:
    n_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    start_epoch: int = 0
    eval_every: int = 0
    max_eval_examples: int = 64


@dataclass
class StepStats:
    step: int
    total_steps: int
    epoch: int
    train_loss: float
    train_accuracy: float
    tokens: int
    valid_loss: float | None = None
    valid_accuracy: float | None = None


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return math.ceil(n_examples / batch_size)


def bucketed_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort by length inside windows of 64 batches, then shuffle the batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 64
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def add_lora(model: Any, rank: int, alpha: int, adapter_dir: str | None = None) -> Any:
    """Wrap a causal LM with fresh LoRA weights, or with trainable weights from an adapter."""
    from peft import LoraConfig, PeftModel, get_peft_model

    model.config.use_cache = False
    if adapter_dir:
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


class Objective(Protocol):
    valid: list[Any]

    def __len__(self) -> int: ...

    def lengths(self) -> list[int]: ...

    def batch_loss(self, model: Any, ids: list[int]) -> BatchResult: ...

    def evaluate(self, model: Any, limit: int) -> tuple[float, float]: ...


def evaluate(model: Any, objective: Objective, limit: int) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    try:
        return objective.evaluate(model, limit)
    finally:
        if was_training:
            model.train()


def train(
    model: Any,
    objective: Objective,
    config: TrainConfig,
    *,
    on_step: Callable[[StepStats], None] | None = None,
    on_epoch_end: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StepStats | None:
    """Run LoRA training; callbacks report progress, save checkpoints and allow cancelling."""
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    per_epoch = steps_per_epoch(len(objective), config.batch_size)
    total = per_epoch * config.n_epochs
    warmup = max(1, total // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.1, 1 - (step - warmup) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    for _ in range(config.start_epoch * per_epoch):
        scheduler.step()
    lengths = objective.lengths()
    model.train()
    step = config.start_epoch * per_epoch
    last: StepStats | None = None
    for epoch in range(config.start_epoch, config.n_epochs):
        for batch_ids in bucketed_batches(lengths, config.batch_size, config.seed + epoch):
            if should_stop and should_stop():
                raise Cancelled()
            result = objective.batch_loss(model, batch_ids)
            result.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last = StepStats(
                step=step,
                total_steps=total,
                epoch=epoch + 1,
                train_loss=float(result.loss),
                train_accuracy=result.correct / max(1, result.count),
                tokens=result.tokens,
            )
            is_eval_step = config.eval_every and step % config.eval_every == 0
            if objective.valid and (is_eval_step or step == total):
                last.valid_loss, last.valid_accuracy = evaluate(
                    model, objective, config.max_eval_examples
                )
            if on_step:
                on_step(last)
        if on_epoch_end:
            on_epoch_end(epoch + 1, step)
    return last
