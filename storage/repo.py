"""Small repository functions over the tables; every query is scoped by platform + workspace."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Dataset, Job, Outbox, SeenEvent, utcnow

ACTIVE = ("validating_files", "queued", "running")


def add(session: Session, row: Job | Dataset | Outbox) -> None:
    session.add(row)
    session.flush()


def find_job(session: Session, platform: str, workspace: str, ref: str) -> Job | None:
    """Find a job by its number (`12`, `#12`) or the provider's job id, within one workspace."""
    ref = ref.strip().lstrip("#")
    query = select(Job).where(Job.platform == platform, Job.workspace == workspace)
    if ref.isdigit():
        return session.exec(query.where(Job.id == int(ref))).first()
    return session.exec(query.where(Job.provider_job_id == ref)).first()


def active_jobs(session: Session) -> list[Job]:
    return list(session.exec(select(Job).where(col(Job.status).in_(ACTIVE)).order_by(Job.id)))


def jobs_for(
    session: Session,
    platform: str,
    workspace: str,
    *,
    channel: str | None = None,
    owner: str | None = None,
    active_only: bool = True,
    limit: int = 10,
) -> list[Job]:
    query = select(Job).where(Job.platform == platform, Job.workspace == workspace)
    if active_only:
        query = query.where(col(Job.status).in_(ACTIVE))
    if channel and owner:
        query = query.where((Job.channel == channel) | (Job.owner == owner))
    elif channel:
        query = query.where(Job.channel == channel)
    elif owner:
        query = query.where(Job.owner == owner)
    return list(session.exec(query.order_by(col(Job.id).desc()).limit(limit)))


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
        .order_by(col(Dataset.id).desc())
    )
    return session.exec(query).first()


def find_dataset(session: Session, platform: str, workspace: str, ref: str) -> Dataset | None:
    query = select(Dataset).where(Dataset.platform == platform, Dataset.workspace == workspace)
    ref = ref.lstrip("#")
    if ref.isdigit():
        return session.exec(query.where(Dataset.id == int(ref))).first()
    return session.exec(
        query.where(Dataset.filename == ref).order_by(col(Dataset.id).desc())
    ).first()


def recent_datasets(
    session: Session, platform: str, workspace: str, limit: int = 25
) -> list[Dataset]:
    query = select(Dataset).where(Dataset.platform == platform, Dataset.workspace == workspace)
    return list(session.exec(query.order_by(col(Dataset.id).desc()).limit(limit)))


def recent_models(session: Session, platform: str, workspace: str, limit: int = 25) -> list[str]:
    query = (
        select(Job.fine_tuned_model)
        .where(Job.platform == platform, Job.workspace == workspace)
        .where(col(Job.fine_tuned_model).is_not(None))
        .order_by(col(Job.id).desc())
        .limit(limit)
    )
    return [m for m in session.exec(query) if m]


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


def pending_count(session: Session) -> int:
    return session.exec(
        select(func.count()).select_from(Outbox).where(col(Outbox.delivered_at).is_(None))
    ).one()


def mark_seen(engine: Engine, key: str) -> bool:
    """Record a platform event id; False when it was already handled (a retry)."""
    with Session(engine) as session:
        session.add(SeenEvent(key=key))
        try:
            session.commit()
        except IntegrityError:
            return False
    return True


def retry_later(row: Outbox, error: str, delay: float) -> None:
    row.attempts += 1
    row.last_error = error[:500]
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
