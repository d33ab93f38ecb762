"""Autocomplete choices for adapters, under the same visibility rule as every other lookup."""

from __future__ import annotations

from bot.context import Context
from bot.types import Command
from storage import repo


def job_choices(ctx: Context, cmd: Command, current: str) -> list[tuple[str, str]]:
    """(label, value) pairs of the jobs `cmd`'s user may see, newest first."""
    with ctx.session() as session:
        jobs = repo.jobs_for(session, ctx.scope(cmd), active_only=False, limit=25)
    current = current.lower().lstrip("#")
    return [
        (f"#{j.id} · {j.status} · {j.fine_tuned_model or j.base_model}", str(j.id))
        for j in jobs
        if current in str(j.id) or current in (j.fine_tuned_model or j.base_model).lower()
    ]


def model_choices(ctx: Context, cmd: Command, current: str) -> list[str]:
    with ctx.session() as session:
        models = repo.recent_models(session, ctx.scope(cmd))
    names = list(dict.fromkeys([*models, ctx.settings.default_model]))
    return [m for m in names if current.lower() in m.lower()][:25]


def dataset_choices(ctx: Context, cmd: Command, current: str) -> list[tuple[str, str]]:
    with ctx.session() as session:
        rows = repo.recent_datasets(session, ctx.scope(cmd))
    return [
        (f"#{d.id} · {d.filename} · {d.n_examples} examples", str(d.id))
        for d in rows
        if current.lower() in f"{d.id} {d.filename}".lower()
    ]
