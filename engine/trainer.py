"""The LoRA training loop.

Speed on CPU comes from three choices a stock `Trainer` run does not make:
- length bucketing (or packing), so batches carry almost no padding;
- logits only where a label exists (the 49k-wide LM head is the costliest matmul);
- one fused step per batch with no per-token Python work.

For bigger models on GPUs the same loop adds gradient accumulation (token-weighted, so it equals
the larger batch), gradient checkpointing, fused AdamW, and data parallelism through
`torch.distributed` (DDP, launched by torchrun): each rank takes its share of every global batch,
DDP averages the gradients, and only rank 0 reports steps and saves checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.objectives import BatchResult

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
# Llama/Qwen/Gemma/Mistral names, and Phi-3's fused projections.
LORA_TARGETS = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "qkv_proj",
    "gate_up_proj",
]


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
    batch_size: int  # the global batch: all ranks and all accumulation steps together
    learning_rate: float
    seed: int
    start_epoch: int = 0
    eval_every: int = 0
    max_eval_examples: int = 64
    grad_accum: int = 1
    fused_adamw: bool = False
    strategy: str = "ddp"  # with several ranks: "ddp" (replicas) or "fsdp" (sharded layers)


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
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=[t for t in LORA_TARGETS if t in names],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each layer in the backward pass instead of keeping its activations."""
    kwargs = {"use_reentrant": False}
    # transformers 5 renamed it; both names take the same arguments
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()


class Objective(Protocol):
    valid: list[Any]

    def __len__(self) -> int: ...

    def lengths(self) -> list[int]: ...

    def weight(self, ids: list[int]) -> int: ...

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


def world() -> tuple[int, int]:
    """(rank, world size) of this process in a torch.distributed run; (0, 1) alone."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Backbone(torch.nn.Module):
    """The transformer body under the LM head: what DDP wraps (every LoRA weight lives here)."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.body = body

    def forward(self, **inputs: Any) -> torch.Tensor:
        return self.body(**inputs, use_cache=False).last_hidden_state


def shard_layers(model: Any) -> None:
    """FSDP (PyTorch's `fully_shard`) on each decoder layer: the layers hold nearly all the
    weights, while embeddings (often tied to the LM head) and the head stay whole."""
    from torch.distributed.fsdp import fully_shard

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    for layer in lm.model.layers:
        fully_shard(layer)


@contextlib.contextmanager
def data_parallel(model: Any, strategy: str = "ddp") -> Iterator[Any]:
    """Under torch.distributed, route the objectives' forward passes through DDP, or shard the
    layers with FSDP (which cannot be undone: a sharded model is only saved, through
    `save_adapter`, or rebuilt from `full_lora_state`)."""
    if world()[1] == 1:
        yield None
        return
    if strategy == "fsdp":
        shard_layers(model)
        yield None
        return
    from torch.nn.parallel import DistributedDataParallel

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    ddp = DistributedDataParallel(Backbone(lm.model), broadcast_buffers=False)
    model.__dict__["_tuneup_backbone"] = ddp  # kept out of state_dict: adapters save as before
    try:
        yield ddp
    finally:
        model.__dict__.pop("_tuneup_backbone", None)


def _optimizer(params: list[Any], config: TrainConfig) -> torch.optim.Optimizer:
    fused = {"fused": True} if config.fused_adamw else {}
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0, **fused)


def _schedule(total: int) -> Callable[[int], float]:
    warmup = max(1, total // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.1, 1 - (step - warmup) / max(1, total - warmup))

    return factor


def _micro_batches(batch: list[int], rank: int, size: int, accum: int) -> list[list[int]]:
    share = batch[rank::size]
    chunk = max(1, math.ceil(len(share) / accum))
    return [share[i : i + chunk] for i in range(0, len(share), chunk)]


def _stop_everywhere(should_stop: Callable[[], bool] | None) -> bool:
    """Rank 0 decides (it reads the job's state); every rank stops at the same step."""
    rank, size = world()
    stop = bool(should_stop and rank == 0 and should_stop())
    if size > 1:
        flag = torch.tensor([1.0 if stop else 0.0])
        torch.distributed.broadcast(flag, 0)
        stop = bool(flag.item())
    return stop


def _step(
    model: Any, ddp: Any, objective: Objective, batch: list[int], config: TrainConfig
) -> tuple[float, int, int, int]:
    """Forward and backward over one global batch; (loss, correct, count, tokens) for it all."""
    rank, size = world()
    micro = _micro_batches(batch, rank, size, config.grad_accum)
    total_weight = max(1, objective.weight(batch))
    sums = torch.zeros(4)
    for i, ids in enumerate(micro):
        last = i == len(micro) - 1
        sync = contextlib.nullcontext() if ddp is None or last else ddp.no_sync()
        with sync:
            result = objective.batch_loss(model, ids)
            share = objective.weight(ids) / total_weight
            # DDP averages over ranks; the shares already sum to 1 over every rank's batches.
            (result.loss * share * size).backward()
        sums += torch.tensor(
            [float(result.loss.detach()) * share, result.correct, result.count, result.tokens]
        )
    if size > 1:
        torch.distributed.all_reduce(sums)
    loss, correct, count, tokens = sums.tolist()
    return loss, int(correct), int(count), int(tokens)


def train(
    model: Any,
    objective: Objective,
    config: TrainConfig,
    *,
    on_step: Callable[[StepStats], None] | None = None,
    on_epoch_end: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StepStats | None:
    """Run LoRA training; callbacks (rank 0 only) report progress, save checkpoints and allow
    cancelling. Under FSDP the full LoRA weights are gathered for each save (`save_adapter`)."""
    torch.manual_seed(config.seed)
    rank = world()[0]
    model.train()
    last: StepStats | None = None
    with data_parallel(model, config.strategy) as ddp:
        # after sharding: FSDP replaces the parameters the optimizer must hold
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _optimizer(params, config)
        per_epoch = steps_per_epoch(len(objective), config.batch_size)
        total = per_epoch * config.n_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total))
        for _ in range(config.start_epoch * per_epoch):
            scheduler.step()
        step = config.start_epoch * per_epoch
        for epoch in range(config.start_epoch, config.n_epochs):
            for batch in bucketed_batches(
                objective.lengths(), config.batch_size, config.seed + epoch
            ):
                if _stop_everywhere(should_stop):
                    raise Cancelled()
                loss, correct, count, tokens = _step(model, ddp, objective, batch, config)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last = StepStats(step, total, epoch + 1, loss, correct / max(1, count), tokens)
                is_eval_step = config.eval_every and step % config.eval_every == 0
                if objective.valid and (is_eval_step or step == total):
                    # every rank: under FSDP a forward pass needs all of them
                    last.valid_loss, last.valid_accuracy = evaluate(
                        model, objective, config.max_eval_examples
                    )
                if on_step and rank == 0:
                    on_step(last)
            _gather_for_saving(model, config.strategy)
            if on_epoch_end and rank == 0:
                on_epoch_end(epoch + 1, step)
    return last


def _gather_for_saving(model: Any, strategy: str) -> None:
    """Under FSDP: every rank joins in gathering the LoRA weights; rank 0 keeps them."""
    if strategy != "fsdp" or world()[1] == 1:
        return
    full: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            value = param.full_tensor() if hasattr(param, "full_tensor") else param
            full[name] = value.detach().cpu()
    if world()[0] == 0:
        model.__dict__["_tuneup_full_lora"] = full


def full_lora_state(model: Any) -> dict[str, torch.Tensor] | None:
    """The gathered LoRA weights of a sharded model (rank 0, after an epoch), else None."""
    return model.__dict__.get("_tuneup_full_lora")


def save_adapter(model: Any, path: Any) -> None:
    """Save the PEFT adapter; a sharded model saves the weights gathered for it."""
    state = full_lora_state(model)
    if state is None:
        model.save_pretrained(path)
    else:
        model.save_pretrained(path, state_dict=state)
