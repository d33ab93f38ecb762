"""Delivers the outbox: a notification is marked delivered only after the platform accepts it."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.observability import DELIVERED, DELIVERY_FAILURES
from bot.types import ChatAdapter, MessageRef, PlatformError, Reply, Target, TwoStepAdapter
from storage import repo
from storage.models import EvalRun, Job, Outbox, utcnow

log = logging.getLogger("tuneup.notifier")
MAX_ATTEMPTS = 12
MAX_PER_RUN = 500
# A first progress post recorded this recently may still be in flight in another replica.
POSTING_GRACE_SECONDS = 60.0


def _ids(row: Outbox) -> dict[str, object]:
    """What a log line about a notification carries: its job or eval, platform and workspace."""
    return {
        "job_id": row.job_id,
        "eval_id": row.eval_id,
        "platform": row.platform,
        "workspace": row.workspace,
    }


def _commit(session: Session, row: Outbox | Job | EvalRun) -> None:
    session.add(row)
    session.commit()


class Notifier:
    def __init__(self, db: Engine, adapters: dict[str, ChatAdapter] | None = None) -> None:
        self.db = db
        self.adapters: dict[str, ChatAdapter] = dict(adapters or {})
        self._lock = asyncio.Lock()
        self._claimed: set[int] = set()

    def register(self, adapter: ChatAdapter) -> None:
        self.adapters[adapter.platform] = adapter

    def release(self) -> None:
        """At shutdown: rows this process claimed but did not finish are due again at once,
        for the next start or another replica, instead of after their lease."""
        if self._claimed:
            with Session(self.db) as session:
                repo.release_claims(session, list(self._claimed))
                session.commit()
            self._claimed.clear()

    async def deliver_pending(self) -> int:
        """Send every due notification for the registered platforms; returns how many went out."""
        async with self._lock:
            sent = 0
            platforms = list(self.adapters)
            for _ in range(MAX_PER_RUN):
                with Session(self.db, expire_on_commit=False) as session:
                    row = repo.claim_due(session, platforms)
                    if row is None:
                        break
                    assert row.id is not None
                    self._claimed.add(row.id)
                    if await self._deliver(session, row):
                        sent += 1
                    session.commit()
                    self._claimed.discard(row.id)
            return sent

    async def _deliver(self, session: Session, row: Outbox) -> bool:
        adapter = self.adapters[row.platform]
        reply = Reply.model_validate_json(row.payload)
        target = Target(
            platform=row.platform, workspace=row.workspace, channel=row.channel, thread=row.thread
        )
        try:
            if row.kind == "progress" and row.eval_id is not None:
                await self._eval_progress(session, adapter, row, target, reply)
            elif row.kind == "progress" and row.job_id is not None:
                await self._progress(session, adapter, row, target, reply)
            else:
                await self._post(session, adapter, row, target, reply)
        except PlatformError as exc:
            return self._failed(session, row, str(exc), exc.retry_after, exc.permanent)
        except Exception as exc:  # a platform outage must not lose the notification
            log.warning("delivery of %s failed: %s", row.key, type(exc).__name__, extra=_ids(row))
            return self._failed(session, row, f"{type(exc).__name__}: {exc}", None, False)
        row.delivered_at = utcnow()
        session.add(row)
        DELIVERED.labels(row.platform).inc()
        return True

    async def _post(
        self, session: Session, adapter: ChatAdapter, row: Outbox, target: Target, reply: Reply
    ) -> None:
        """One notification = one message and its files, each sent once.

        The message's ref is committed before its files go up, so a retry only adds the files;
        a retry after a crash mid-post first looks for the message by its marker.
        """
        two_step = isinstance(adapter, TwoStepAdapter)
        ref = MessageRef(**row.message_ref) if row.message_ref else None
        if ref is None and row.posting_since is not None and two_step:
            ref = await adapter.find_posted(target, row.key)
        retry = ref is not None
        if ref is None:
            row.posting_since = utcnow()
            _commit(session, row)
            message = (
                reply.model_copy(update={"marker": row.key, "files": []}) if two_step else reply
            )
            ref = await adapter.post(target, message)
            row.message_ref = ref.model_dump()
            _commit(session, row)
        if two_step and reply.files:
            await adapter.attach(ref, target, reply.files, retry=retry or row.attempts > 0)

    async def _progress(
        self, session: Session, adapter: ChatAdapter, row: Outbox, target: Target, reply: Reply
    ) -> None:
        """The job's one progress message: posted once, then edited in place."""
        # Locked, so two replicas never both post a job's first progress message.
        job = session.get(Job, row.job_id, with_for_update=True)
        if job is None:
            await adapter.post(target, reply)
            return
        if job.thread:  # the job's thread may have opened after this row was queued
            target.thread = job.thread
        known = dict(job.progress_ref or {})
        marker = f"job:{job.id}:progress"
        if "id" not in known and known.get("posting_since") and isinstance(adapter, TwoStepAdapter):
            found = await adapter.find_posted(target, marker)
            if found is not None:
                known = found.model_dump()
            elif time.time() - known["posting_since"] < POSTING_GRACE_SECONDS:
                raise PlatformError("another delivery is posting this job's progress", 5.0)
        if "id" in known:
            job.progress_ref = known
            session.add(job)
            await adapter.edit(MessageRef(**known), reply)
            return
        job.progress_ref = {"posting_since": time.time()}
        _commit(session, job)
        ref = await adapter.post(target, reply.model_copy(update={"marker": marker}))
        job.progress_ref = ref.model_dump()
        _commit(session, job)

    async def _eval_progress(
        self, session: Session, adapter: ChatAdapter, row: Outbox, target: Target, reply: Reply
    ) -> None:
        """An eval run's one progress message: the message that started it, edited in place."""
        run = session.get(EvalRun, row.eval_id)
        if run is not None and run.progress_ref:
            await adapter.edit(MessageRef(**run.progress_ref), reply)
            return
        ref = await adapter.post(target, reply)
        if run is not None:
            run.progress_ref = ref.model_dump()
            _commit(session, run)

    def _failed(
        self, session: Session, row: Outbox, error: str, retry_after: float | None, permanent: bool
    ) -> bool:
        reason = "rate_limit" if retry_after is not None else "permanent" if permanent else "error"
        DELIVERY_FAILURES.labels(row.platform, reason).inc()
        delay = retry_after if retry_after is not None else min(300.0, 2.0 ** min(row.attempts, 8))
        repo.retry_later(row, error, delay)
        if permanent or row.attempts >= MAX_ATTEMPTS:
            log.error("giving up on notification %s: %s", row.key, error, extra=_ids(row))
            row.delivered_at = utcnow()
        session.add(row)
        return False
