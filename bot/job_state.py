"""A provider's view of a job applied to tuneup's job: the one place remote state becomes ours.

`apply_remote` is pure (no database, no clock but the one passed in): it updates the Job object
and says what to announce, so the poller only loads, calls, saves and enqueues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.models import TERMINAL_STATUSES, Job, JobStatus

MAX_POINTS = 2000


@dataclass
class Outcome:
    changed: bool = False
    progress: bool = False  # edit (or post) the job's progress message
    summary: bool = False  # post the result summary and the channel line
    succeeded: bool = False  # it just succeeded: compare it with its base


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def apply_events(job: Job, events: list[Any]) -> None:
    """Fold new events (oldest first) into the job: step, losses, loss curve, final metrics."""
    metrics = dict(job.metrics or {})
    points = list(metrics.get("points", []))
    final = dict(metrics.get("final", {}))
    for event in events:
        data = event.data if isinstance(getattr(event, "data", None), dict) else None
        if not data:
            continue
        if "per_class" in data:
            final["classification"] = data
        elif event.message.startswith("New fine-tuned model created"):
            final.update(data)
        elif data.get("step") is not None:
            job.step = int(data["step"])
            job.total_steps = data.get("total_steps") or job.total_steps
            if data.get("train_loss") is not None:
                job.train_loss = float(data["train_loss"])
            if data.get("valid_loss") is not None:
                job.valid_loss = float(data["valid_loss"])
            # A resume rewinds to its checkpoint: the steps trained again replace the old ones.
            while points and points[-1][0] >= job.step:
                points.pop()
            points.append([job.step, data.get("train_loss"), data.get("valid_loss")])
    metrics["points"] = points[-MAX_POINTS:]
    metrics["final"] = final
    job.metrics = metrics


def apply_remote(
    job: Job, remote: Any, events: list[Any], now: datetime, *, progress_due: bool
) -> Outcome:
    """`events` newest first, as the provider lists them; `progress_due`: the throttle allows an
    edit. Returns what changed and what to announce."""
    apply_events(job, list(reversed(events)))
    if events:
        job.last_event_id = events[0].id
    old_status = job.status
    job.status = str(remote.status)
    job.estimated_finish = getattr(remote, "estimated_finish", None)
    if not events and old_status == job.status:
        return Outcome()
    if job.status == JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    method = remote.method
    if method:
        job.metrics = {**job.metrics, "final": {**job.metrics["final"], "method": method}}
    ended = is_terminal(job.status)
    if ended:
        _finish(job, remote, now)
    job.updated_at = now
    return Outcome(
        changed=True,
        progress=old_status != job.status or ended or progress_due,
        summary=ended,
        succeeded=job.status == JobStatus.SUCCEEDED and old_status != JobStatus.SUCCEEDED,
    )


def _finish(job: Job, remote: Any, now: datetime) -> None:
    job.finished_at = now
    job.fine_tuned_model = remote.fine_tuned_model
    job.trained_tokens = remote.trained_tokens
    error = getattr(remote, "error", None)
    if error and (error.message or error.code):
        job.error = f"{error.message} ({error.code})" if error.code else error.message
    note = getattr(remote, "serving_note", None)
    if note:
        job.metrics = {**job.metrics, "final": {**job.metrics["final"], "serving": note}}
