"""BotCore wires settings, storage, providers, the router, the poller and the notifier."""

from __future__ import annotations

import asyncio
import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import Session

from bot.context import Context
from bot.engine_launcher import EngineProcess
from bot.evaluation.after_job import after_job_eval
from bot.evaluation.service import close_interrupted
from bot.lifecycle import attach_thread, reconcile_pending
from bot.notifier import Notifier
from bot.observability import database_status, watch_database
from bot.poller import Poller
from bot.providers import Providers, explain_error
from bot.router import dispatch
from bot.settings import Settings
from bot.types import ChatAdapter, Command, MessageRef, Reply
from bot.validation.tokens import prime_offline_cache
from storage import repo
from storage.db import open_database
from storage.models import EvalRun, Job

log = logging.getLogger("tuneup")


class BotCore:
    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        prime_offline_cache(settings.data_dir)
        self.settings = settings
        self.db = open_database(settings.db_url)
        watch_database(self.db)
        self.providers = Providers(settings)
        self.providers.model_owner = self._provider_of_model
        self.ctx = Context(settings, self.db, self.providers)
        self.notifier = Notifier(self.db)
        self.ctx.notifier = self.notifier
        self.poller = Poller(
            self.db,
            self.providers,
            self.notifier,
            progress_interval=settings.progress_min_interval_seconds,
        )
        self.poller.on_succeeded = self.evaluate_finished_job
        self.engine = EngineProcess(settings)
        self.scheduler: AsyncIOScheduler | None = None

    def register(self, adapter: ChatAdapter) -> None:
        self.notifier.register(adapter)

    async def handle(self, cmd: Command) -> Reply:
        return await dispatch(self.ctx, cmd)

    async def reply_posted(self, adapter: ChatAdapter, reply: Reply, ref: MessageRef) -> None:
        """After a job announcement is posted, open the job's thread under it and remember it;
        an eval's first message becomes its progress message."""
        if reply.eval_id is not None:
            with self.ctx.session() as session:
                run = session.get(EvalRun, reply.eval_id)
                if run is not None and not run.progress_ref:
                    run.progress_ref = ref.model_dump()
                    session.add(run)
                    session.commit()
            return
        if reply.job_id is None:
            return
        with self.ctx.session() as session:
            job = session.get(Job, reply.job_id)
            if job is None or job.thread:
                return
        thread = await adapter.open_thread(ref, f"tuneup job {reply.job_id}")
        if thread is not None:
            attach_thread(self.db, reply.job_id, thread)

    def evaluate_finished_job(self, job_id: int) -> None:
        """Tuned vs base on the job's validation set, posted in its thread (bounded, so quick)."""
        try:
            after_job_eval(self.ctx, job_id)
        except Exception:
            log.exception("could not start the comparison after job %s", job_id)

    def _provider_of_model(self, model: str) -> str | None:
        """A model tuneup tuned is asked at the provider that tuned it, whatever its name."""
        with Session(self.db) as session:
            return repo.provider_of_model(session, model)

    def database_ready(self) -> str:
        return database_status(self.settings.db_url)

    async def providers_ready(self) -> dict[str, str]:
        """Each provider's verdict from a cheap authenticated call ("ok" or the plain reason)."""
        verdicts = {}
        for name in self.providers.names():
            provider = self.providers.get(name)
            try:
                await provider.api.ping()
                verdicts[name] = "ok"
            except Exception as exc:
                verdicts[name] = explain_error(exc, provider.label)
        return verdicts

    def claim_event(self, key: str) -> bool:
        """Whether to handle a platform event now (not handled, and nobody alive handling it)."""
        return repo.claim_event(self.db, key)

    def finish_event(self, key: str) -> None:
        repo.finish_event(self.db, key)

    async def start(self, *, start_engine: bool = True, schedule: bool = True) -> None:
        """Start the local engine when needed, then the poll and delivery schedule."""
        if start_engine:
            await self.engine.ensure_running()
        close_interrupted(self.ctx)  # eval runs a dead process left running
        # Jobs whose create was in flight when the last run died: adopt them or close them.
        try:
            await reconcile_pending(self.db, self.providers, force=True)
        except Exception:
            log.exception("reconciling pending jobs at start-up failed; the poller retries")
        if schedule:
            self.scheduler = AsyncIOScheduler(
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
                timezone="UTC",
            )
            self.scheduler.add_job(
                self.poller.cycle,
                "interval",
                seconds=self.settings.poll_interval_seconds,
                id="poll",
                replace_existing=True,
            )
            self.scheduler.add_job(
                self.notifier.deliver_pending,
                "interval",
                seconds=2,
                id="deliver",
                replace_existing=True,
            )
            self.scheduler.start()

    async def poll_until_idle(self, stall: float, interval: float = 1.0) -> bool:
        """Poll and deliver until no job is active.

        False when nothing moved (no job's status, step or events) for `stall` seconds: a busy
        machine makes a job slow, which is fine; only a stuck one fails.
        """
        moved = time.monotonic()
        last: object = None
        while True:
            await self.poller.cycle()
            with self.ctx.session() as session:
                active = repo.active_jobs(session)
                state = [(j.id, j.status, j.step, j.last_event_id) for j in active]
            if not active:
                return True
            if state != last:
                last, moved = state, time.monotonic()
            elif time.monotonic() - moved > stall:
                return False
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        for task in list(self.ctx.background):
            task.cancel()
        await asyncio.gather(*self.ctx.background, return_exceptions=True)
        self.notifier.release()
        await self.providers.close()
        self.engine.stop()
        self.db.dispose()
