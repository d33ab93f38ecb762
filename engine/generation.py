"""Greedy/sampled generation shared by the inference API and the classification metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Generated:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str
    # Per generated token: (logprob, [(token_id, logprob), ...] top alternatives)
    logprobs: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)


def encode_prompt(tokenizer: Any, prompt: str | list[dict[str, str]]) -> list[int]:
    if isinstance(prompt, list):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    else:
        text = prompt
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def decode_row(new: list[int], eos: int | None) -> tuple[list[int], str]:
    """Generated ids up to end-of-text, and why generation finished."""
    if eos is not None and eos in new:
        return new[: new.index(eos)], "stop"
    return new, "length"


def apply_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    return _apply_stop(text, stop)


def _apply_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    cut = [text.index(s) for s in stop if s and s in text]
    return (text[: min(cut)], True) if cut else (text, False)


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: list[str] | None = None,
    top_logprobs: int = 0,
    want_logprobs: bool = False,
    seed: int | None = None,
    min_new_tokens: int = 0,
    should_stop: Callable[[], bool] | None = None,
    max_time: float | None = None,
) -> Generated:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Flag(StoppingCriteria):
        def __call__(self, *_: Any, **__: Any) -> bool:
            return bool(should_stop and should_stop())

    device = next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(seed)
    sample = temperature > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sample,
        "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "return_dict_in_generate": True,
        "output_scores": want_logprobs,
        "stopping_criteria": StoppingCriteriaList([_Flag()]),
    }
    if max_time:
        kwargs["max_time"] = max_time
    if min_new_tokens:
        kwargs["min_new_tokens"] = min(min_new_tokens, max_new_tokens)
    if sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    ids = torch.tensor([prompt_ids], device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    new = out.sequences[0, len(prompt_ids) :].tolist()
    finish = "length"
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
        finish = "stop"
    text = tokenizer.decode(new, skip_special_tokens=True)
    text, stopped = _apply_stop(text, stop or [])
    if stopped:
        finish = "stop"
    result = Generated(text, new, len(prompt_ids), finish)
    if want_logprobs:
        for pos, tok in enumerate(new):
            logp = torch.log_softmax(out.scores[pos][0].float(), dim=-1)
            top = torch.topk(logp, max(1, top_logprobs))
            alts = [(int(i), float(v)) for v, i in zip(top.values, top.indices, strict=True)]
            result.logprobs.append((float(logp[tok]), alts[:top_logprobs]))
    return result


@torch.no_grad()
def greedy_batch(
    model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int
) -> list[str]:
    """Left-padded batched greedy decoding, for scoring many short answers quickly."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id or tokenizer.eos_token_id
    outputs: list[str] = []
    for start in range(0, len(prompts), 16):
        chunk = prompts[start : start + 16]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        seqs = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row in seqs[:, width:].tolist():
            if tokenizer.eos_token_id in row:
                row = row[: row.index(tokenizer.eos_token_id)]
            outputs.append(tokenizer.decode(row, skip_special_tokens=True))
    return outputs
