"""Spending caps per calendar month (UTC), concurrency caps and the pause switch of a workspace.

Caps come from the workspace's policy (set with `/budget`) and fall back to the settings
(`TUNEUP_BUDGET_*`). A fine-tune that would pass a cap is refused with the cap's name and what is
left of it. Tokens count what a job trained (or its estimate until it is done); dollars count
estimates, and a dollar cap cannot be checked against a model whose price is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, func, select

from bot.context import Context, UserError
from bot.pricing import Cost
from bot.types import Command
from storage import repo
from storage.models import Job, Policy

CAPS = {
    "workspace_tokens": "trained tokens per month for this workspace",
    "workspace_dollars": "estimated dollars per month for this workspace",
    "user_tokens": "trained tokens per month for each person",
    "user_dollars": "estimated dollars per month for each person",
    "concurrent_jobs": "jobs running at once in this workspace",
}


@dataclass
class Usage:
    tokens: int
    dollars: float


def month_start() -> datetime:
    now = datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def policy(session: Session, cmd: Command) -> Policy | None:
    query = select(Policy).where(Policy.platform == cmd.platform, Policy.workspace == cmd.workspace)
    return session.exec(query).first()


def caps_for(ctx: Context, session: Session, cmd: Command) -> dict[str, float]:
    defaults = {name: getattr(ctx.settings, f"budget_{name}") for name in CAPS}
    stored = (policy(session, cmd) or Policy(platform="", workspace="")).caps or {}
    merged = {**defaults, **stored}
    return {k: v for k, v in merged.items() if v is not None}


def usage(session: Session, cmd: Command, user: str | None = None) -> Usage:
    """This month's trained tokens and estimated dollars of the workspace (or one person)."""
    query = select(Job).where(
        Job.platform == cmd.platform,
        Job.workspace == cmd.workspace,
        col(Job.created_at) >= month_start(),
    )
    if user is not None:
        query = query.where(Job.owner == user)
    tokens, dollars = 0, 0.0
    for job in session.exec(query):
        if job.status == "failed" and not job.trained_tokens:
            continue  # refused before training: nothing was spent
        tokens += job.trained_tokens or job.estimated_tokens or 0
        dollars += job.estimated_cost or 0.0
    return Usage(tokens, dollars)


def running(session: Session, cmd: Command) -> int:
    query = (
        select(func.count())
        .select_from(Job)
        .where(
            Job.platform == cmd.platform,
            Job.workspace == cmd.workspace,
            col(Job.status).not_in(repo.TERMINAL),
        )
    )
    return session.exec(query).one()


def check(ctx: Context, cmd: Command, cost: Cost) -> None:
    """Refuse a fine-tune that the pause switch or a cap forbids, saying which and what is left."""
    with ctx.session() as session:
        paused = policy(session, cmd)
        if paused is not None and paused.paused:
            note = f" ({paused.pause_message})" if paused.pause_message else ""
            raise UserError(f"⏸️ New fine-tunes are paused in this workspace by an admin{note}.")
        caps = caps_for(ctx, session, cmd)
        if "concurrent_jobs" in caps and running(session, cmd) >= caps["concurrent_jobs"]:
            raise UserError(
                f"This workspace already runs {int(caps['concurrent_jobs'])} job(s), its cap on "
                "jobs running at once. Wait for one to finish, or ask an admin (`/budget`)."
            )
        spent = {"workspace": usage(session, cmd), "user": usage(session, cmd, cmd.user)}
    for scope, used in spent.items():
        _check_tokens(caps.get(f"{scope}_tokens"), used.tokens, cost.tokens, scope)
        _check_dollars(caps.get(f"{scope}_dollars"), used.dollars, cost, scope)


def _check_tokens(cap: float | None, used: int, wanted: int, scope: str) -> None:
    if cap is not None and used + wanted > cap:
        left = max(0, int(cap) - used)
        raise UserError(
            f"This fine-tune (~{wanted:,} trained tokens) would pass the {_who(scope)} cap of "
            f"{int(cap):,} trained tokens this month: {left:,} left. Use fewer epochs or a smaller "
            "file, or ask an admin to raise it (`/budget`)."
        )


def _check_dollars(cap: float | None, used: float, cost: Cost, scope: str) -> None:
    if cap is None or cost.local:
        return
    if cost.dollars is None:
        raise UserError(
            f"The {_who(scope)} has a dollar cap, and this model's price is unknown, so I can't "
            "tell whether it fits. Ask an admin to add its price to TUNEUP_PRICES."
        )
    if used + cost.dollars > cap:
        raise UserError(
            f"This fine-tune (~${cost.dollars:.2f}) would pass the {_who(scope)} cap of "
            f"${cap:,.2f} this month: ${max(0.0, cap - used):,.2f} left. Ask an admin (`/budget`)."
        )


def _who(scope: str) -> str:
    return "workspace's" if scope == "workspace" else "per-person"
