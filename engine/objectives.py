"""What a training step minimises: supervised fine-tuning, or DPO on preference pairs.

The loop in `trainer.train` is the same for both; an objective says how long each item is (for
length bucketing), what one batch's loss is, and how to score the validation items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from engine.data import IGNORE, Example, Pair
from engine.packing import collate_packed, pack_groups

EVAL_BATCH = 16


@dataclass
class BatchResult:
    loss: torch.Tensor
    correct: int  # SFT: tokens predicted right; DPO: pairs whose preferred answer wins
    count: int
    tokens: int


def collate(examples: list[Example], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return {
        "input_ids": ids.to(device),
        "labels": labels.to(device),
        "attention_mask": mask.to(device),
    }


def _causal_lm(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _hidden(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The last hidden states; through DDP when training is distributed (`trainer.data_parallel`).

    A packed batch carries `position_ids` and no padding mask: each example attends to itself.
    """
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    backbone = model.__dict__.get("_tuneup_backbone")
    if backbone is not None:
        return backbone(**inputs)
    return _causal_lm(model).model(**inputs, use_cache=False).last_hidden_state


def _labelled_logits(
    model: Any, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits only where a label exists: (logits, gold ids, row of each position)."""
    lm = _causal_lm(model)
    hidden = _hidden(model, batch)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = lm.lm_head(hidden[:, :-1][keep]).float()
    rows = keep.nonzero()[:, 0]
    return logits, targets[keep], rows


def masked_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """Mean cross-entropy over labelled tokens; returns (loss, n_correct, n_labelled)."""
    logits, gold, _ = _labelled_logits(model, batch)
    loss = F.cross_entropy(logits, gold)
    correct = int((logits.argmax(-1) == gold).sum())
    return loss, correct, int(gold.numel())


def sequence_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row, the summed log-probability of its labelled tokens."""
    logits, gold, rows = _labelled_logits(model, batch)
    token_logps = torch.log_softmax(logits, dim=-1).gather(1, gold[:, None])[:, 0]
    n_rows = batch["input_ids"].shape[0]
    return torch.zeros(n_rows, device=token_logps.device).index_add(0, rows, token_logps)


@dataclass
class Supervised:
    examples: list[Example]
    pad_id: int
    device: str
    valid: list[Example] = field(default_factory=list)
    packing: bool = False  # several short examples per row, none seeing another
    pack_len: int = 1024
    attention: str = "sdpa"  # the model's attention implementation (for the packed mask)

    def __len__(self) -> int:
        return len(self.examples)

    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.examples]

    def weight(self, ids: list[int]) -> int:
        """Labelled tokens: what the loss is a mean over (accumulation and ranks weigh by it)."""
        return sum(self._trained(self.examples[i]) for i in ids)

    def _trained(self, example: Example) -> int:
        # The first token has no prediction before it (and a packed row never trains on it).
        return sum(1 for label in example.labels[1:] if label != IGNORE)

    def batch_loss(self, model: Any, ids: list[int]) -> BatchResult:
        chosen = [self.examples[i] for i in ids]
        if self.packing:
            lengths = [len(e.input_ids) for e in chosen]
            rows = pack_groups(lengths, list(range(len(chosen))), self.pack_len)
            grouped = [[chosen[i] for i in row] for row in rows]
            batch = collate_packed(grouped, self.pad_id, self.device, self.attention)
            tokens = sum(lengths)
        else:
            batch = collate(chosen, self.pad_id, self.device)
            tokens = int(batch["attention_mask"].sum())
        loss, correct, count = masked_loss(model, batch)
        return BatchResult(loss, correct, count, tokens)

    @torch.no_grad()
    def evaluate(self, model: Any, limit: int) -> tuple[float, float]:
        """(mean loss per labelled token, token accuracy) on the validation examples."""
        total_loss, correct, count = 0.0, 0, 0
        ordered = sorted(self.valid[:limit], key=lambda e: len(e.input_ids))
        for start in range(0, len(ordered), EVAL_BATCH):
            batch = collate(ordered[start : start + EVAL_BATCH], self.pad_id, self.device)
            loss, ok, n = masked_loss(model, batch)
            total_loss += float(loss) * n
            correct += ok
            count += n
        return total_loss / max(1, count), correct / max(1, count)


@dataclass
class Preference:
    """DPO: raise the preferred answer's likelihood over the other one, relative to the base."""

    pairs: list[Pair]
    pad_id: int
    device: str
    beta: float = 0.1
    valid: list[Pair] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def weight(self, ids: list[int]) -> int:
        return len(ids)  # the DPO loss is a mean over pairs

    def lengths(self) -> list[int]:
        return [max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in self.pairs]

    def _margins(self, model: Any, pairs: list[Pair]) -> tuple[torch.Tensor, int]:
        examples = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        batch = collate(examples, self.pad_id, self.device)
        policy = sequence_logps(model, batch)
        with torch.no_grad(), model.disable_adapter():
            reference = sequence_logps(model, batch)
        n = len(pairs)
        ratios = policy - reference
        return self.beta * (ratios[:n] - ratios[n:]), int(batch["attention_mask"].sum())

    def batch_loss(self, model: Any, ids: list[int]) -> BatchResult:
        margins, tokens = self._margins(model, [self.pairs[i] for i in ids])
        loss = -F.logsigmoid(margins).mean()
        return BatchResult(loss, int((margins > 0).sum()), len(ids), tokens)

    @torch.no_grad()
    def evaluate(self, model: Any, limit: int) -> tuple[float, float]:
        """(mean DPO loss, share of pairs where the preferred answer wins) on validation pairs."""
        total, wins, count = 0.0, 0, 0
        items = self.valid[:limit]
        for start in range(0, len(items), EVAL_BATCH // 2):
            chunk = items[start : start + EVAL_BATCH // 2]
            margins, _ = self._margins(model, chunk)
            total += float(-F.logsigmoid(margins).sum())
            wins += int((margins > 0).sum())
            count += len(chunk)
        return total / max(1, count), wins / max(1, count)
