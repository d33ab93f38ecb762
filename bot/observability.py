"""Metrics (prometheus-client), structured logs, and readiness checks of the bot processes.

Metric names follow Prometheus conventions (`tuneup_…_total`, `…_seconds`). Counters move where
things happen (commands, poll cycles, deliveries, eval runs); gauges that describe the database
(jobs by provider and status, outbox backlog and its oldest row) are read when scraped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.models import Job, Outbox

REGISTRY = CollectorRegistry()
COMMANDS = Counter(
    "tuneup_commands_total", "Commands handled", ["command", "outcome"], registry=REGISTRY
)
COMMAND_SECONDS = Histogram(
    "tuneup_command_seconds", "Time to answer a command", ["command"], registry=REGISTRY
)
POLL_SECONDS = Histogram(
    "tuneup_poll_cycle_seconds", "Duration of one poll cycle", registry=REGISTRY
)
POLL_REQUESTS = Counter(
    "tuneup_poll_requests_total", "Provider requests made by the poller", registry=REGISTRY
)
DELIVERED = Counter(
    "tuneup_notifications_delivered_total",
    "Notifications delivered",
    ["platform"],
    registry=REGISTRY,
)
DELIVERY_FAILURES = Counter(
    "tuneup_delivery_failures_total",
    "Failed delivery attempts",
    ["platform", "reason"],
    registry=REGISTRY,
)
EVAL_RUNS = Counter("tuneup_eval_runs_total", "Eval runs finished", ["status"], registry=REGISTRY)


class DatabaseGauges:
    """Read at scrape time: jobs by provider and status, the outbox backlog and its age."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def collect(self) -> Iterable[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "tuneup_jobs", "Jobs by provider and status", labels=["provider", "status"]
        )
        backlog = GaugeMetricFamily("tuneup_outbox_backlog", "Notifications not delivered yet")
        oldest = GaugeMetricFamily(
            "tuneup_outbox_oldest_undelivered_seconds", "Age of the oldest undelivered notification"
        )
        try:
            return self._read(jobs, backlog, oldest)
        except Exception:  # the database is down: /readyz says so; /metrics still answers
            return []

    def _read(
        self, jobs: GaugeMetricFamily, backlog: GaugeMetricFamily, oldest: GaugeMetricFamily
    ) -> list[GaugeMetricFamily]:
        with Session(self.db) as session:
            for provider, status, n in session.exec(
                select(Job.provider, Job.status, func.count()).group_by(Job.provider, Job.status)
            ):
                jobs.add_metric([provider, status], n)
            pending = select(func.count(), func.min(Outbox.created_at)).where(
                col(Outbox.delivered_at).is_(None)
            )
            count, first = session.exec(pending).one()
        backlog.add_metric([], count)
        age = 0.0
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - first).total_seconds()
        oldest.add_metric([], age)
        return [jobs, backlog, oldest]


_gauges: DatabaseGauges | None = None


def watch_database(db: Engine) -> None:
    """Report this database's gauges (the newest BotCore wins: one per process in practice)."""
    global _gauges
    if _gauges is not None:
        REGISTRY.unregister(_gauges)  # type: ignore[arg-type]
    _gauges = DatabaseGauges(db)
    REGISTRY.register(_gauges)  # type: ignore[arg-type]


def metrics_text() -> bytes:
    return generate_latest(REGISTRY)


class timed:  # noqa: N801  (used as a context manager, like a function)
    def __init__(self, command: str) -> None:
        self.command, self.started = command, 0.0

    def __enter__(self) -> timed:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        COMMAND_SECONDS.labels(self.command).observe(time.perf_counter() - self.started)


def database_status(url: str) -> str:
    """ "ok" when the database answers and its schema is the newest revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config, make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        return (
            "ok"
            if current == head
            else f"schema at {current}, newest is {head}: run `tuneup migrate`"
        )
    except Exception as exc:  # any driver error: say which
        return f"unreachable ({type(exc).__name__})"
    finally:
        engine.dispose()


def migrate_database(url: str) -> None:
    from storage.db import migrate

    migrate(url)


# ----- logs -----


class JsonFormatter(logging.Formatter):
    """One JSON object per line; job id, platform and workspace come along when a line has them."""

    FIELDS = ("job_id", "eval_id", "platform", "workspace", "provider")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in self.FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class Redact(logging.Filter):
    """Secrets never reach a log line, whatever a library prints."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "[secret]")
            record.msg, record.args = message, None
        return True


def configure_logging(level: str, fmt: str, secrets: list[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
