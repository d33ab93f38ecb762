"""Job state changes: starting a paid job exactly once (record the intent, create once, adopt
after a crash), attaching its thread; `bot/job_state.py` applies the provider's view of it.

A `/finetune` first commits a 'pending' job row carrying a fresh idempotency key and the
create request. The create is sent once (the SDK's blind retries are off), with the key as
`Idempotency-Key` and in `metadata`, so when the answer is lost (a 502, a timeout, a crash
before the commit) the job the provider made is found by its key and adopted, never made twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.providers import CreateRequest, Provider, Providers, RemoteJob, is_ambiguous
from bot.render import job_label
from bot.types import Reply
from storage import repo
from storage.models import Job, Outbox, utcnow

log = logging.getLogger("tuneup.lifecycle")
KEY_FIELD = "tuneup_key"
PENDING = "pending"
# A pending row younger than this may still have its create in flight in some process.
RECONCILE_AFTER = timedelta(seconds=60)
# A pending row the provider still doesn't know after this long never started.
GIVE_UP_AFTER = timedelta(minutes=15)


class CreateUnconfirmed(Exception):
    """The provider may or may not have made the job; the row stays pending and is reconciled."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is not confirmed yet")
        self.job = job


def job_with_key(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.idempotency_key == key)).first()


def record_intent(db: Engine, job: Job) -> tuple[Job, bool]:
    """Commit the pending row; (the existing row, False) when this key was seen before."""
    with Session(db, expire_on_commit=False) as session:
        if job.idempotency_key and (earlier := job_with_key(session, job.idempotency_key)):
            return earlier, False
        job.status = PENDING
        repo.add(session, job)
        session.commit()
        return job, True


async def find_remote(provider: Provider, key: str) -> RemoteJob | None:
    """The provider's job made for `key` (kept in its metadata, name or id), if it made one."""
    return await provider.api.find_by_key(key)


def adopt(db: Engine, job_id: int, remote: RemoteJob) -> Job | None:
    """Attach the provider's job to the pending row (once; a second adopt changes nothing)."""
    with Session(db, expire_on_commit=False) as session:
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.provider_job_id).is_(None))
            .values(provider_job_id=remote.id, status=remote.status, updated_at=utcnow())
        )
        session.commit()
        return session.get(Job, job_id)


def attach_thread(db: Engine, job_id: int, thread: str) -> None:
    """The job's thread opened under its announcement: progress and the summary go there."""
    with Session(db) as session:
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.thread).is_(None))
            .values(thread=thread, updated_at=utcnow())
        )
        session.commit()


def discard(db: Engine, job_id: int) -> None:
    """The provider refused the create outright: nothing started, so no row is kept."""
    with Session(db) as session:
        job = session.get(Job, job_id)
        if job is not None and job.provider_job_id is None:
            session.delete(job)
            session.commit()


async def create_once(db: Engine, provider: Provider, job: Job) -> Job:
    """Send the create for a pending row; adopt what the provider made even if the answer is lost."""
    assert job.id is not None and job.idempotency_key and job.request is not None
    request = CreateRequest.from_openai(job.request, job.idempotency_key)
    try:
        remote = await provider.api.create(request)
    except Exception as exc:
        if not is_ambiguous(exc):
            discard(db, job.id)
            raise
        log.warning(
            "create of job %s unconfirmed: %s",
            job.id,
            type(exc).__name__,
            extra={"job_id": job.id, "platform": job.platform, "workspace": job.workspace},
        )
        remote = await _find_quietly(provider, job.idempotency_key)
        if remote is None:
            raise CreateUnconfirmed(job) from None
    adopted = adopt(db, job.id, remote)
    assert adopted is not None
    return adopted


async def _find_quietly(provider: Provider, key: str) -> RemoteJob | None:
    try:
        return await find_remote(provider, key)
    except Exception:  # the provider is unreachable: the row stays pending and is reconciled
        return None


async def reconcile_pending(db: Engine, providers: Providers, *, force: bool = False) -> int:
    """Adopt or close pending rows left by a crash or a lost answer; returns how many changed."""
    now = utcnow()
    with Session(db, expire_on_commit=False) as session:
        rows = list(session.exec(select(Job).where(Job.status == PENDING)))
    changed = 0
    for job in rows:
        age = now - _aware(job.created_at)
        if not force and age < RECONCILE_AFTER:
            continue
        try:
            provider = providers.get(job.provider)
            remote = await find_remote(provider, job.idempotency_key or "")
        except Exception as exc:  # the provider is down: try again next cycle
            log.warning(
                "reconciling job %s: %s",
                job.id,
                type(exc).__name__,
                extra={"job_id": job.id, "platform": job.platform, "workspace": job.workspace},
            )
            continue
        if remote is not None:
            adopted = adopt(db, job.id, remote)
            if adopted is not None:
                _notify(
                    db,
                    adopted,
                    f"🔁 {job_label(adopted)} was started at {provider.label} "
                    "before an interruption; I found it and am tracking it now.",
                )
            changed += 1
        elif age > GIVE_UP_AFTER:
            _close_unstarted(db, job, provider.label)
            changed += 1
    return changed


def _close_unstarted(db: Engine, job: Job, provider: str) -> None:
    with Session(db, expire_on_commit=False) as session:
        row = session.get(Job, job.id)
        if row is None or row.status != PENDING:
            return
        row.status = "failed"
        row.error = (
            f"{provider} never confirmed this job and has no job with its key; nothing is training."
        )
        row.finished_at = utcnow()
        session.add(row)
        session.commit()
    _notify(db, row, f"⚠️ {job_label(row)} did not start: {row.error} Run `/finetune` again.")


def _notify(db: Engine, job: Job, text: str) -> None:
    with Session(db) as session:
        repo.enqueue(
            session,
            Outbox(
                key=f"job:{job.id}:lifecycle:{job.status}",
                job_id=job.id,
                platform=job.platform,
                workspace=job.workspace,
                channel=job.channel,
                thread=job.thread,
                payload=Reply(text=text, mention=job.owner).model_dump_json().encode(),
            ),
        )
        session.commit()


def _aware(moment: Any) -> Any:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
