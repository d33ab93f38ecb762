"""The provider's view of a job becomes tuneup's in one pure function: fast tests, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from bot.job_state import apply_remote
from storage.models import Job

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def job(**kw: object) -> Job:
    base = dict(
        provider="local",
        provider_job_id="ftjob-1",
        platform="slack",
        workspace="T1",
        channel="C1",
        owner="U1",
        base_model="m",
        training_file_id="f",
        status="queued",
    )
    return Job(**{**base, **kw})  # type: ignore[arg-type]


def remote(status: str, **kw: object) -> SimpleNamespace:
    fields = dict(
        status=status,
        estimated_finish=None,
        method=None,
        fine_tuned_model=None,
        trained_tokens=None,
        error=None,
    )
    return SimpleNamespace(**{**fields, **kw})


def step(event_id: str, n: int, loss: float) -> SimpleNamespace:
    return SimpleNamespace(
        id=event_id, message=f"Step {n}", data={"step": n, "total_steps": 4, "train_loss": loss}
    )


def test_nothing_new_changes_nothing() -> None:
    j = job(status="running")
    assert not apply_remote(j, remote("running"), [], NOW, progress_due=True).changed


def test_events_move_the_job_and_the_curve_without_duplicates() -> None:
    j = job()
    out = apply_remote(
        j, remote("running"), [step("e2", 2, 0.5), step("e1", 1, 0.9)], NOW, progress_due=False
    )
    assert out.changed and out.progress and not out.summary  # the status changed: announce it
    assert (j.step, j.train_loss, j.last_event_id, j.started_at) == (2, 0.5, "e2", NOW)
    assert j.metrics["points"] == [[1, 0.9, None], [2, 0.5, None]]
    again = apply_remote(j, remote("running"), [step("e3", 2, 0.45)], NOW, progress_due=False)
    assert again.changed and not again.progress  # throttled
    assert j.metrics["points"] == [[1, 0.9, None], [2, 0.45, None]]  # step 2 again: replaced
    rewound = [step("e6", 2, 0.4), step("e5", 1, 0.8)]  # resumed from a checkpoint at step 0
    apply_remote(j, remote("running"), rewound, NOW, progress_due=False)
    assert j.metrics["points"] == [[1, 0.8, None], [2, 0.4, None]]


def test_success_finishes_and_asks_for_the_comparison_once() -> None:
    j = job(status="running")
    out = apply_remote(
        j,
        remote("succeeded", fine_tuned_model="ft:m:x", trained_tokens=99),
        [],
        NOW,
        progress_due=False,
    )
    assert out.summary and out.succeeded and out.progress
    assert (j.fine_tuned_model, j.trained_tokens, j.finished_at) == ("ft:m:x", 99, NOW)
    assert not apply_remote(j, remote("succeeded"), [], NOW, progress_due=True).changed


def test_failures_keep_the_providers_reason_and_unknown_states_pass_through() -> None:
    j = job(status="running")
    err = SimpleNamespace(message="bad file", code="invalid_file")
    out = apply_remote(j, remote("failed", error=err), [], NOW, progress_due=False)
    assert out.summary and not out.succeeded and j.error == "bad file (invalid_file)"
    k = job(status="running")
    odd = apply_remote(k, remote("compressing"), [], NOW, progress_due=False)
    assert odd.changed and not odd.summary and k.status == "compressing"
