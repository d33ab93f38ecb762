"""Small repository functions over the tables; every lookup for a user goes through a Scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Dataset,
    Job,
    Outbox,
    SeenEvent,
    utcnow,
)

# Not finished: an unknown provider state counts as active, so it is shown and polled again.
ACTIVE = tuple(sorted(ACTIVE_STATUSES))
TERMINAL = tuple(sorted(TERMINAL_STATUSES))


@dataclass(frozen=True)
class Scope:
    """Who is looking, and from where.

    The one visibility rule: a dataset or job (and so its model) is visible in the channel where
    it was created, and to its owner and the workspace's admins anywhere in the same workspace.
    Anything else answers exactly like an id that does not exist.
    """

    platform: str
    workspace: str
    channel: str
    user: str
    admin: bool = False


def visible(table: type[Job] | type[Dataset], scope: Scope) -> Any:
    """The WHERE clause of the visibility rule for jobs or datasets."""
    owner = Job.owner if table is Job else Dataset.uploaded_by
    clause = and_(table.platform == scope.platform, table.workspace == scope.workspace)
    if scope.admin:
        return clause
    return and_(clause, or_(table.channel == scope.channel, owner == scope.user))


def add(session: Session, row: Job | Dataset | Outbox) -> None:
    session.add(row)
    session.flush()


def find_job(session: Session, scope: Scope, ref: str) -> Job | None:
    """Find a visible job by its number (`12`, `#12`) or the provider's job id."""
    ref = ref.strip().lstrip("#")
    query = select(Job).where(visible(Job, scope))
    if ref.isdigit():
        if len(ref) > 18:  # beyond any database integer: simply not there
            return None
        return session.exec(query.where(Job.id == int(ref))).first()
    return session.exec(query.where(Job.provider_job_id == ref)).first()


def active_jobs(session: Session) -> list[Job]:
    query = select(Job).where(col(Job.status).not_in(TERMINAL))
    return list(session.exec(query.order_by(Job.id)))


def pollable_jobs(session: Session) -> list[Job]:
    """Unfinished jobs the provider has confirmed (pending rows are reconciled, not polled)."""
    query = select(Job).where(
        col(Job.status).not_in(TERMINAL), col(Job.provider_job_id).is_not(None)
    )
    return list(session.exec(query.order_by(Job.id)))


def jobs_for(
    session: Session,
    scope: Scope,
    *,
    channel: str | None = None,
    owner: str | None = None,
    active_only: bool = True,
    limit: int = 10,
) -> list[Job]:
    query = select(Job).where(visible(Job, scope))
    if active_only:
        query = query.where(col(Job.status).not_in(TERMINAL))
    if channel and owner:
        query = query.where((Job.channel == channel) | (Job.owner == owner))
    elif channel:
        query = query.where(Job.channel == channel)
    elif owner:
        query = query.where(Job.owner == owner)
    return list(session.exec(query.order_by(col(Job.id).desc()).limit(limit)))


def job_history(
    session: Session,
    scope: Scope,
    *,
    owner: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int = 10,
) -> list[Job]:
    query = select(Job).where(visible(Job, scope))
    if owner:
        query = query.where(Job.owner == owner)
    if status:
        query = query.where(Job.status == status)
    return list(session.exec(query.order_by(col(Job.id).desc()).offset(offset).limit(limit)))


def newest_model_in_channel(
    session: Session, platform: str, workspace: str, channel: str
) -> Job | None:
    query = (
        select(Job)
        .where(Job.platform == platform, Job.workspace == workspace, Job.channel == channel)
        .where(Job.status == "succeeded", col(Job.fine_tuned_model).is_not(None))
        .order_by(col(Job.finished_at).desc(), col(Job.id).desc())
    )
    return session.exec(query).first()


def latest_dataset(session: Session, platform: str, workspace: str, channel: str) -> Dataset | None:
    query = (
        select(Dataset)
        .where(
            Dataset.platform == platform, Dataset.workspace == workspace, Dataset.channel == channel
        )
        .where(col(Dataset.parent_id).is_(None))  # a split's halves are reached through it
        .order_by(col(Dataset.id).desc())
    )
    return session.exec(query).first()


def find_dataset(session: Session, scope: Scope, ref: str) -> Dataset | None:
    query = select(Dataset).where(visible(Dataset, scope))
    ref = ref.strip().lstrip("#")
    if ref.isdigit():
        if len(ref) > 18:
            return None
        return session.exec(query.where(Dataset.id == int(ref))).first()
    return session.exec(
        query.where(Dataset.filename == ref).order_by(col(Dataset.id).desc())
    ).first()


def recent_datasets(session: Session, scope: Scope, limit: int = 25) -> list[Dataset]:
    query = select(Dataset).where(visible(Dataset, scope))
    return list(session.exec(query.order_by(col(Dataset.id).desc()).limit(limit)))


def recent_models(session: Session, scope: Scope, limit: int = 25) -> list[str]:
    query = (
        select(Job.fine_tuned_model)
        .where(visible(Job, scope))
        .where(col(Job.fine_tuned_model).is_not(None))
        .order_by(col(Job.id).desc())
        .limit(limit)
    )
    return [m for m in session.exec(query) if m]


def model_tuned_here(session: Session, model: str) -> bool:
    """Whether any job (anywhere) produced `model`, so its visibility rule applies."""
    base = model.split(":ckpt-step-")[0]
    return session.exec(select(Job.id).where(Job.fine_tuned_model == base)).first() is not None


def provider_of_model(session: Session, model: str) -> str | None:
    """Which provider tuned `model` (or the model a checkpoint belongs to), if tuneup did."""
    base = model.split(":ckpt-step-")[0]
    query = select(Job.provider).where(Job.fine_tuned_model == base)
    return session.exec(query.order_by(col(Job.id).desc())).first()


def visible_job_for_model(session: Session, scope: Scope, model: str) -> Job | None:
    """The newest visible job that produced `model` (or the model a checkpoint belongs to)."""
    base = model.split(":ckpt-step-")[0]
    query = select(Job).where(visible(Job, scope), Job.fine_tuned_model == base)
    return session.exec(query.order_by(col(Job.id).desc())).first()


def model_visible(session: Session, scope: Scope, model: str) -> bool:
    base = model.split(":ckpt-step-")[0]
    query = select(Job.id).where(visible(Job, scope), Job.fine_tuned_model == base)
    return session.exec(query).first() is not None


def dataset_by_sha(session: Session, sha256: str) -> Dataset | None:
    return session.exec(
        select(Dataset).where(Dataset.sha256 == sha256).order_by(col(Dataset.id).desc())
    ).first()


def enqueue(session: Session, row: Outbox) -> bool:
    """Insert a notification unless one with the same key exists; True when inserted."""
    if session.exec(select(Outbox.id).where(Outbox.key == row.key)).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def supersede_progress(session: Session, job_id: int) -> None:
    """Older undelivered progress edits are pointless once a newer one is queued."""
    rows = session.exec(
        select(Outbox).where(
            Outbox.job_id == job_id, Outbox.kind == "progress", col(Outbox.delivered_at).is_(None)
        )
    )
    for row in rows:
        row.superseded = True
        row.delivered_at = utcnow()
        session.add(row)


def supersede_eval_progress(session: Session, eval_id: int | None) -> None:
    rows = session.exec(
        select(Outbox).where(
            Outbox.eval_id == eval_id, Outbox.kind == "progress", col(Outbox.delivered_at).is_(None)
        )
    )
    for row in rows:
        row.superseded = True
        row.delivered_at = utcnow()
        session.add(row)


def claim_due(session: Session, platforms: list[str], lease_seconds: float = 120) -> Outbox | None:
    """Take the oldest due notification for `lease_seconds`, so no other replica sends it.

    The claim is one conditional UPDATE (it works the same on SQLite and PostgreSQL). Delivery
    then sets `delivered_at`, or a retry time; if this process dies, the lease runs out and
    another replica takes the row.
    """
    for _ in range(10):
        now = utcnow()
        row = session.exec(
            select(Outbox)
            .where(
                col(Outbox.delivered_at).is_(None),
                Outbox.next_attempt_at <= now,
                col(Outbox.platform).in_(platforms),
            )
            .order_by(col(Outbox.id))
            .limit(1)
        ).first()
        if row is None:
            return None
        claimed = session.execute(
            update(Outbox)
            .where(
                col(Outbox.id) == row.id,
                col(Outbox.next_attempt_at) == row.next_attempt_at,
                col(Outbox.delivered_at).is_(None),
            )
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds))
        )
        session.commit()
        if claimed.rowcount == 1:
            session.refresh(row)
            return row
    return None


def release_claims(session: Session, ids: list[int]) -> None:
    session.execute(
        update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.delivered_at).is_(None))
        .values(next_attempt_at=utcnow())
    )


def pending_count(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(Outbox).where(col(Outbox.delivered_at).is_(None))
    ).one()


def claim_event(engine: Engine, key: str, lease_seconds: float = 90) -> bool:
    """Claim a platform event id for handling.

    False when it was handled already, or is being handled (a retry while the first delivery
    is still at work). A claim whose handler died without `finish_event` is taken again once
    its lease runs out, so a crash mid-handling loses nothing when the platform retries.
    """
    with Session(engine) as session:
        session.add(SeenEvent(key=key))
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
        now = utcnow()
        taken = session.execute(
            update(SeenEvent)
            .where(
                col(SeenEvent.key) == key,
                col(SeenEvent.done_at).is_(None),
                col(SeenEvent.created_at) < now - timedelta(seconds=lease_seconds),
            )
            .values(created_at=now)
        )
        session.commit()
        return taken.rowcount == 1


def finish_event(engine: Engine, key: str) -> None:
    with Session(engine) as session:
        session.execute(update(SeenEvent).where(col(SeenEvent.key) == key).values(done_at=utcnow()))
        session.commit()


def retry_later(row: Outbox, error: str, delay: float) -> None:
    row.attempts += 1
    row.last_error = error[:500]
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
