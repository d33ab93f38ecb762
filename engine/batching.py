"""Greedy requests to one model that arrive together run as one batch (continuous-batching lite).

/eval sends a few rows at a time; on a CPU, one forward pass over 16 left-padded prompts costs
little more than over one, so requests that queue while a batch runs go out together next.
Only plain greedy requests are batched (no sampling, streaming, logprobs or minimum length);
each keeps its own token budget, end-of-text and stop strings.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.generation import Generated, apply_stop, decode_row

MAX_BATCH = 16


@dataclass
class Pending:
    ids: list[int]
    max_new: int
    stop: list[str]
    gone: threading.Event
    future: asyncio.Future[Generated] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batcher:
    def __init__(self, call: Callable[..., Awaitable[Any]], max_time: float) -> None:
        self.call = call  # runs a function on the engine's torch thread
        self.max_time = max_time
        self.queues: dict[str, list[Pending]] = defaultdict(list)
        self.draining: set[str] = set()

    async def generate(
        self, model_id: str, loaded: Callable[[], tuple[Any, Any]], pending: Pending
    ) -> Generated:
        self.queues[model_id].append(pending)
        if model_id not in self.draining:
            self.draining.add(model_id)
            asyncio.get_running_loop().create_task(self._drain(model_id, loaded))
        return await pending.future

    async def _drain(self, model_id: str, loaded: Callable[[], tuple[Any, Any]]) -> None:
        try:
            queue = self.queues[model_id]
            while queue:
                await asyncio.sleep(0.005)  # let requests sent together arrive together
                batch, queue[:] = queue[:MAX_BATCH], queue[MAX_BATCH:]
                live = [p for p in batch if not p.gone.is_set()]
                for p in batch:
                    if p.gone.is_set():
                        p.future.set_result(Generated("", [], len(p.ids), "stop"))
                if not live:
                    continue
                try:
                    results = await self.call(self._run, loaded, live)
                except Exception as exc:  # every request of a failed batch gets the error
                    for p in live:
                        p.future.set_exception(exc)
                    continue
                for p, result in zip(live, results, strict=True):
                    p.future.set_result(result)
        finally:
            self.draining.discard(model_id)

    def _run(self, loaded: Callable[[], tuple[Any, Any]], batch: list[Pending]) -> list[Generated]:
        import torch

        model, tokenizer = loaded()
        pad = tokenizer.pad_token_id or tokenizer.eos_token_id
        width = max(len(p.ids) for p in batch)
        device = next(model.parameters()).device
        ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in batch], device=device)
        mask = torch.tensor(
            [[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in batch], device=device
        )
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max(p.max_new for p in batch),
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                max_time=self.max_time,
            )
        results = []
        for p, row in zip(batch, out[:, width:].tolist(), strict=True):
            tokens, finish = decode_row(row[: p.max_new], tokenizer.eos_token_id)
            text, stopped = apply_stop(tokenizer.decode(tokens, skip_special_tokens=True), p.stop)
            results.append(Generated(text, tokens, len(p.ids), "stop" if stopped else finish))
        return results
