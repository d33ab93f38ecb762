"""Runs the examples of a dataset against models and scores the answers.

Each model is asked through its own provider, a few rows at a time (bounded concurrency per
provider, the SDK's retries on); a row that errors counts as wrong and carries its message.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.context import Context
from bot.evaluation import scoring
from bot.providers import explain_error

PER_PROVIDER = 4  # requests in flight per provider
LOCAL_IN_FLIGHT = 16  # the local engine batches concurrent requests into one forward pass
CLASS_TOKENS, OPEN_TOKENS = 16, 128


def answer_tokens(task: str, references: list[str]) -> int:
    """Enough tokens for the longest label (a class name is a few tokens), or a paragraph."""
    if task != "classification":
        return OPEN_TOKENS
    longest = max((len(r) for r in references), default=8)
    return max(4, min(CLASS_TOKENS, longest // 2 + 3))


JUDGE_PROMPT = (
    "You grade an answer against a reference answer.\n"
    "Question or input:\n{input}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}\n\n"
    "Score the answer from 1 (wrong or unrelated) to 5 (as correct and complete as the "
    "reference). Reply with the number only."
)


@dataclass
class Example:
    line: int
    prompt: Any  # chat messages, or a completion prompt (its separator included)
    reference: str
    kind: str  # "chat" | "completion"

    def shown(self) -> str:
        if self.kind == "completion":
            return str(self.prompt)
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in self.prompt)


@dataclass
class Answer:
    text: str = ""
    error: str | None = None


@dataclass
class ModelResult:
    model: str
    answers: list[Answer] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    classification: scoring.Classification | None = None


def load_examples(path: Path, limit: int) -> list[Example]:
    """The rows of a training file as (input, reference) pairs: the last assistant turn of a
    chat example, or the completion of a prompt/completion row."""
    out: list[Example] = []
    with open(path, encoding="utf-8") as fh:
        for line, raw in enumerate(fh, start=1):
            if len(out) >= limit:
                break
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            example = _example(row, line)
            if example is not None:
                out.append(example)
    return out


def _example(row: Any, line: int) -> Example | None:
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("messages"), list):
        messages = [m for m in row["messages"] if isinstance(m, dict)]
        last = max(
            (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None
        )
        content = messages[last].get("content") if last is not None else None
        if last is None or not isinstance(content, str) or not content.strip():
            return None
        prompt = [{"role": m["role"], "content": m.get("content") or ""} for m in messages[:last]]
        return Example(line, prompt, content.strip(), "chat")
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return Example(line, row["prompt"], row["completion"].strip(), "completion")
    return None


async def ask(
    ctx: Context, model: str, example: Example, max_tokens: int, stop: str | None
) -> Answer:
    provider, remote = ctx.providers.for_model(model)
    try:
        if example.kind == "completion":
            text = await provider.api.complete(
                remote, example.prompt, max_tokens=max_tokens, stop=stop, timeout=120
            )
        else:
            text = await provider.api.chat(
                remote, example.prompt, max_tokens=max_tokens, timeout=120
            )
        return Answer(text.strip())
    except Exception as exc:  # a failing row counts as wrong, with the provider's reason
        return Answer("", explain_error(exc, provider.label))


async def answer_all(
    ctx: Context,
    model: str,
    examples: list[Example],
    *,
    max_tokens: int,
    stop: str | None,
    progress: Callable[[int], Awaitable[None]],
) -> list[Answer]:
    provider, _ = ctx.providers.for_model(model)
    gate = asyncio.Semaphore(LOCAL_IN_FLIGHT if provider.is_local else PER_PROVIDER)
    done = 0

    async def one(example: Example) -> Answer:
        nonlocal done
        async with gate:
            answer = await ask(ctx, model, example, max_tokens, stop)
        done += 1
        await progress(done)
        return answer

    return list(await asyncio.gather(*(one(e) for e in examples)))


def score(result: ModelResult, examples: list[Example], task: str) -> None:
    references = [e.reference for e in examples]
    texts = [a.text for a in result.answers]
    if task == "classification":
        labels = sorted(set(references))
        predicted = [scoring.label_of(t, labels) if t else "(error)" for t in texts]
        result.classification = scoring.classification(predicted, references)
        result.metrics = {
            "accuracy": result.classification.accuracy,
            "macro_f1": result.classification.macro_f1,
        }
    else:
        result.metrics = scoring.open_ended(texts, references)
    result.metrics["errors"] = sum(1 for a in result.answers if a.error)


_SCORE = re.compile(r"\b([1-5])\b")


async def judge_scores(
    ctx: Context, judge: str, examples: list[Example], answers: list[Answer]
) -> float:
    """The judge's mean score, scaled to 0–1; a reply without a score counts as the lowest."""
    gate = asyncio.Semaphore(PER_PROVIDER)

    async def one(example: Example, answer: Answer) -> float:
        prompt = JUDGE_PROMPT.format(
            input=example.shown(), reference=example.reference, answer=answer.text
        )
        async with gate:
            reply = await ask(
                ctx, judge, Example(0, [{"role": "user", "content": prompt}], "", "chat"), 4, None
            )
        found = _SCORE.search(reply.text)
        return (int(found.group(1)) - 1) / 4 if found else 0.0

    scores = await asyncio.gather(*(one(e, a) for e, a in zip(examples, answers, strict=True)))
    return sum(scores) / max(1, len(scores))
