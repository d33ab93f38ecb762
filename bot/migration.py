"""Moving a team off an expiring fine-tune: find (or distill) its data, train a replacement, and
compare the two on held-out rows once the replacement is ready (the parity report)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from bot import deprecations
from bot.context import Context, UserError
from bot.datasets import add_halves, register_bytes
from bot.evaluation import runner
from bot.providers import Provider
from bot.types import Command
from storage import repo
from storage.models import Dataset, Job

HOLD_OUT_EVERY = 5  # every 5th row is held out for the parity check...
MAX_HELD_OUT = 200  # ...up to this many
DISTILL_TOKENS = 256


@dataclass
class Listed:
    model: str
    provider: str
    base: str
    when: str
    job: Job | None
    has_data: bool


async def tuned_models(ctx: Context, cmd: Command) -> list[Listed]:
    """Every fine-tuned model at every provider but the local engine, with its dates."""
    found = []
    for name in ctx.providers.names():
        provider = ctx.providers.get(name)
        if provider.is_local:
            continue
        page = await provider.client.models.list()
        for model in (m.id for m in page.data if m.id.startswith("ft:")):
            qualified = model if name == "openai" else f"{name}/{model}"
            job = _job_for(ctx, cmd, qualified, model)
            found.append(
                Listed(
                    qualified,
                    provider.label,
                    deprecations.base_of(model),
                    deprecations.when(model),
                    job,
                    _has_data(ctx, job),
                )
            )
    return found


def _job_for(ctx: Context, cmd: Command, *names: str) -> Job | None:
    with ctx.session() as session:
        for name in names:
            job = repo.visible_job_for_model(session, ctx.scope(cmd), name)
            if job is not None:
                return job
    return None


def _has_data(ctx: Context, job: Job | None) -> bool:
    if job is None or job.dataset_id is None:
        return False
    with ctx.session() as session:
        dataset = session.get(Dataset, job.dataset_id)
    return dataset is not None and Path(dataset.fixed_path or dataset.path).exists()


async def training_data(ctx: Context, cmd: Command, model: str) -> Dataset:
    """The dataset tuneup kept for the job; else the provider's own copy of the training file."""
    job = _job_for(ctx, cmd, model)
    if _has_data(ctx, job):
        assert job is not None and job.dataset_id is not None
        with ctx.session() as session:
            dataset = session.get(Dataset, job.dataset_id)
        assert dataset is not None
        return dataset
    provider, remote = ctx.providers.for_model(model)
    data = await _download_training_file(provider, remote)
    if data is None:
        raise UserError(
            f"I have no training data for `{model}`, and {provider.label} won't hand its file "
            f"over. Upload it with `/validate`, then `/migrate {model} dataset=ID`."
        )
    dataset, _ = await register_bytes(
        ctx, cmd, f"{remote.replace(':', '_')}-training.jsonl", data, ctx.settings.default_model
    )
    return dataset


async def _download_training_file(provider: Provider, remote_model: str) -> bytes | None:
    try:
        async for job in provider.client.fine_tuning.jobs.list(limit=100):
            if job.fine_tuned_model == remote_model:
                content = await provider.client.files.content(job.training_file)
                return content.read()
    except openai.APIError:
        return None
    return None


async def distill(ctx: Context, cmd: Command, model: str, dataset: Dataset) -> Dataset:
    """The old model's own answers to the dataset's prompts, as a new training file."""
    examples = runner.load_examples(Path(dataset.fixed_path or dataset.path), 10_000)
    if not examples:
        raise UserError(f"`{dataset.filename}` has no prompts to ask `{model}`.")

    async def nothing(_: int) -> None:
        return None

    answers = await runner.answer_all(
        ctx, model, examples, max_tokens=DISTILL_TOKENS, stop=None, progress=nothing
    )
    rows = [
        _row(e, a.text)
        for e, a in zip(examples, answers, strict=True)
        if a.text and a.error is None
    ]
    if not rows:
        raise UserError(f"`{model}` answered none of the prompts, so there is nothing to distill.")
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    distilled, _ = await register_bytes(
        ctx, cmd, f"distilled-{Path(dataset.filename).stem}.jsonl", data, ctx.settings.default_model
    )
    return distilled


def _row(example: runner.Example, answer: str) -> dict[str, Any]:
    if example.kind == "completion":
        return {"prompt": example.prompt, "completion": " " + answer.strip()}
    return {"messages": [*example.prompt, {"role": "assistant", "content": answer}]}


def held_out(ctx: Context, cmd: Command, dataset: Dataset) -> tuple[Dataset, Dataset]:
    """Train and held-out halves: the classification split if there is one, else every 5th row."""
    with ctx.session() as session:
        if dataset.split:
            return session.get(Dataset, dataset.split["train"]), session.get(
                Dataset, dataset.split["valid"]
            )  # type: ignore[return-value]
        lines = Path(dataset.fixed_path or dataset.path).read_bytes().splitlines(keepends=True)
        held = [i for i in range(len(lines)) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1][
            :MAX_HELD_OUT
        ]
        if not held:
            raise UserError(
                f"`{dataset.filename}` is too small to hold rows out for the comparison."
            )
        chosen = set(held)
        train = b"".join(line for i, line in enumerate(lines) if i not in chosen)
        valid = b"".join(lines[i] for i in held)
        parent = session.get(Dataset, dataset.id)
        assert parent is not None
        halves = add_halves(ctx, session, cmd, parent, train, valid)
        session.commit()
        return halves
