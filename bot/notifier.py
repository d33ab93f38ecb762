"""Delivers the outbox: a notification is marked delivered only after the platform accepts it."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.types import ChatAdapter, MessageRef, PlatformError, Reply, Target
from storage import repo
from storage.models import Job, Outbox, utcnow

log = logging.getLogger("tuneup.notifier")
MAX_ATTEMPTS = 12
MAX_PER_RUN = 500


class Notifier:
    def __init__(self, db: Engine, adapters: dict[str, ChatAdapter] | None = None) -> None:
        self.db = db
        self.adapters: dict[str, ChatAdapter] = dict(adapters or {})
        self._lock = asyncio.Lock()

    def register(self, adapter: ChatAdapter) -> None:
        self.adapters[adapter.platform] = adapter

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
                    if await self._deliver(session, row):
                        sent += 1
                    session.commit()
            return sent

    async def _deliver(self, session: Session, row: Outbox) -> bool:
        adapter = self.adapters[row.platform]
        reply = Reply.model_validate_json(row.payload)
        target = Target(
            platform=row.platform, workspace=row.workspace, channel=row.channel, thread=row.thread
        )
        try:
            if row.kind == "progress" and row.job_id is not None:
                # Locked too, so two replicas never both post a job's first progress message.
                job = session.get(Job, row.job_id, with_for_update=True)
                if job is not None and job.thread:
                    # the job's thread may have opened after this row was queued
                    target.thread = job.thread
                if job is not None and job.progress_ref:
                    await adapter.edit(MessageRef(**job.progress_ref), reply)
                else:
                    ref = await adapter.post(target, reply)
                    if job is not None:
                        job.progress_ref = ref.model_dump()
                        session.add(job)
            else:
                await adapter.post(target, reply)
        except PlatformError as exc:
            return self._failed(session, row, str(exc), exc.retry_after, exc.permanent)
        except Exception as exc:  # a platform outage must not lose the notification
            log.warning("delivery of %s failed: %s", row.key, type(exc).__name__)
            return self._failed(session, row, f"{type(exc).__name__}: {exc}", None, False)
        row.delivered_at = utcnow()
        session.add(row)
        return True

    def _failed(
        self, session: Session, row: Outbox, error: str, retry_after: float | None, permanent: bool
    ) -> bool:
        delay = retry_after if retry_after is not None else min(300.0, 2.0 ** min(row.attempts, 8))
        repo.retry_later(row, error, delay)
        if permanent or row.attempts >= MAX_ATTEMPTS:
            log.error("giving up on notification %s: %s", row.key, error)
            row.delivered_at = utcnow()
        session.add(row)
        return False
