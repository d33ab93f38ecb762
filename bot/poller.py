"""Polls providers for job progress and turns changes into outbox notifications.

One cycle: per active job one `retrieve` plus one `list_events` (more pages only when many
events arrived). State changes and their notifications commit in one transaction, so a crash
between polling and posting neither loses nor repeats a notification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.charts import loss_chart
from bot.job_state import apply_remote
from bot.lifecycle import reconcile_pending
from bot.notifier import Notifier
from bot.observability import POLL_REQUESTS, POLL_SECONDS
from bot.providers import Providers, RemoteEvent, RemoteJob
from bot.render import job_label, progress_reply, summary_reply
from bot.types import Reply, dm_channel
from storage import repo
from storage.db import poll_leadership
from storage.models import Job, Outbox, utcnow

log = logging.getLogger("tuneup.poller")


@dataclass
class Fetched:
    job_id: int
    remote: RemoteJob | None = None
    events: list[RemoteEvent] | None = None  # newest first, only those not seen before
    error: str | None = None
    requests: int = 0


@dataclass
class CycleStats:
    jobs: int = 0
    requests: int = 0
    changed: int = 0
    errors: int = 0
    skipped: bool = False  # another replica holds the polling lock


class Poller:
    def __init__(
        self,
        db: Engine,
        providers: Providers,
        notifier: Notifier,
        *,
        progress_interval: float = 5.0,
        concurrency: int = 64,
    ) -> None:
        self.db = db
        self.providers = providers
        self.notifier = notifier
        self.progress_interval = progress_interval
        self.concurrency = concurrency
        self._lock = asyncio.Lock()
        # Called with the id of each job that just succeeded, after its state is committed.
        self.on_succeeded: Callable[[int], None] | None = None
        self._succeeded: list[int] = []

    async def cycle(self, deliver: bool = True) -> CycleStats:
        started = time.perf_counter()
        stats = await self._locked_cycle()
        if not stats.skipped:
            POLL_SECONDS.observe(time.perf_counter() - started)
            POLL_REQUESTS.inc(stats.requests)
        if deliver:
            await self.notifier.deliver_pending()
        return stats

    async def _locked_cycle(self) -> CycleStats:
        async with self._lock:
            with poll_leadership(self.db) as leader:
                if leader:
                    await reconcile_pending(self.db, self.providers)
                return await self._poll() if leader else CycleStats(skipped=True)

    async def _poll(self) -> CycleStats:
        with Session(self.db, expire_on_commit=False) as session:
            jobs = [
                (j.id, j.provider, j.provider_job_id, j.last_event_id)
                for j in repo.pollable_jobs(session)
            ]
        stats = CycleStats(jobs=len(jobs))
        if not jobs:
            return stats
        sem = asyncio.Semaphore(self.concurrency)

        async def guarded(job: tuple) -> Fetched:
            async with sem:
                return await self._fetch(*job)

        results = await asyncio.gather(*(guarded(j) for j in jobs))
        with Session(self.db, expire_on_commit=False) as session:
            for fetched in results:
                stats.requests += fetched.requests
                if fetched.error:
                    stats.errors += 1
                    continue
                job = session.get(Job, fetched.job_id)
                if job is not None and self._apply(session, job, fetched):
                    stats.changed += 1
            session.commit()
        succeeded, self._succeeded = self._succeeded, []
        for job_id in succeeded:
            if self.on_succeeded is not None:
                self.on_succeeded(job_id)
        return stats

    async def _fetch(
        self, job_id: int, provider: str, remote_id: str, last_seen: str | None
    ) -> Fetched:
        out = Fetched(job_id)
        try:
            api = self.providers.get(provider).api
            out.remote = await api.retrieve(remote_id)
            if out.remote.status == "succeeded":
                out.remote.serving_note = await api.after_success(out.remote)
            out.events, requests = await api.events(out.remote, last_seen)
            out.requests += 1 + requests
        except Exception as exc:
            log.warning(
                "polling job %s failed: %s",
                job_id,
                type(exc).__name__,
                extra={"job_id": job_id, "provider": provider},
            )
            out.error = str(exc)
        return out

    def _apply(self, session: Session, job: Job, fetched: Fetched) -> bool:
        now = time.time()
        due = now - float((job.metrics or {}).get("progress_at", 0)) >= self.progress_interval
        outcome = apply_remote(
            job, fetched.remote, fetched.events or [], utcnow(), progress_due=due
        )
        if not outcome.changed:
            return False
        session.add(job)
        if outcome.progress:
            self._enqueue_progress(session, job)
            job.metrics = {**job.metrics, "progress_at": now}
        if outcome.summary:
            self._enqueue_summary(session, job)
        if outcome.succeeded and job.id is not None:
            self._succeeded.append(job.id)
        return True

    def _row(
        self,
        job: Job,
        key: str,
        reply: Reply,
        kind: str = "post",
        thread: str | None = "job",
        channel: str | None = None,
    ) -> Outbox:
        return Outbox(
            key=key,
            job_id=job.id,
            platform=job.platform,
            workspace=job.workspace,
            channel=channel or job.channel,
            thread=job.thread if thread == "job" else thread,
            kind=kind,
            payload=reply.model_dump_json().encode(),
        )

    def _enqueue_progress(self, session: Session, job: Job) -> None:
        assert job.id is not None
        repo.supersede_progress(session, job.id)
        key = f"job:{job.id}:progress:{job.status}:{job.last_event_id or '-'}"
        repo.enqueue(session, self._row(job, key, progress_reply(job), kind="progress"))

    def _enqueue_summary(self, session: Session, job: Job) -> None:
        points = [p for p in job.metrics.get("points", []) if p[1] is not None]
        chart = loss_chart(points, f"{job_label(job)} · {job.base_model}") if points else None
        repo.enqueue(session, self._row(job, f"job:{job.id}:summary", summary_reply(job, chart)))
        if job.notify == "dm":
            summary = summary_reply(job, chart).model_copy(update={"thread": None})
            repo.enqueue(
                session,
                self._row(
                    job, f"job:{job.id}:dm", summary, thread=None, channel=dm_channel(job.owner)
                ),
            )
        if job.thread:
            line = Reply(
                text=f"{'✅' if job.status == 'succeeded' else '•'} {job_label(job)} {job.status}",
                mention=job.owner,
            )
            repo.enqueue(session, self._row(job, f"job:{job.id}:channel-line", line, thread=None))
