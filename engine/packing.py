"""Packing: several short examples share one row, each attending only to itself.

Position ids restart at 0 for every example. FlashAttention reads them as varlen boundaries;
for SDPA and eager attention the engine passes the block-diagonal causal mask itself (with
transformers 5.24, position ids alone did not keep a packed example from seeing the one before
it; `tests/engine/test_scale_training.py` checks this). Fewer, fuller rows mean less padding.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.data import IGNORE


def pack_groups(lengths: list[int], order: list[int], max_len: int) -> list[list[int]]:
    """First-fit of examples (in `order`) into rows of at most `max_len` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        size = lengths[index]
        slot = next((r for r, free in enumerate(room) if free >= size), None)
        if slot is None:
            rows.append([index])
            room.append(max_len - size)
        else:
            rows[slot].append(index)
            room[slot] -= size
    return rows


def block_causal_mask(positions: torch.Tensor, attention: str) -> torch.Tensor | None:
    """(rows, 1, width, width): a token sees earlier tokens of its own example only."""
    if attention.startswith("flash"):
        return None  # varlen from the position ids
    segment = (torch.diff(positions, prepend=positions[:, :1] - 1, dim=-1) != 1).cumsum(-1)
    width = positions.shape[1]
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool, device=positions.device))
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal
    if attention == "sdpa":
        return allowed[:, None]
    blocked = torch.zeros(allowed.shape, dtype=torch.float32, device=positions.device)
    return blocked.masked_fill(~allowed, torch.finfo(torch.float32).min)[:, None]


def collate_packed(
    rows: list[list[Any]], pad_id: int, device: str, attention: str = "sdpa"
) -> dict[str, torch.Tensor]:
    """`rows`: lists of examples (with input_ids and labels) to put side by side in one row."""
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for example in row:
            n = len(example.input_ids)
            ids[r, at : at + n] = torch.tensor(example.input_ids)
            labels[r, at : at + n] = torch.tensor(example.labels)
            # The first label of an example would be predicted from the previous example's
            # last token: never train on that boundary.
            labels[r, at] = IGNORE
            positions[r, at : at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)  # the padding is its own segment
    batch = {
        "input_ids": ids.to(device),
        "labels": labels.to(device),
        "position_ids": positions.to(device),
    }
    mask = block_causal_mask(batch["position_ids"], attention)
    if mask is not None:
        batch["attention_mask"] = mask
    return batch
