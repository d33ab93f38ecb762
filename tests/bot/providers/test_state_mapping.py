"""Each provider's job states map into tuneup's one status enum; a state tuneup doesn't know is
kept verbatim (shown as-is and polled again), never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import get_args

import pytest
from fireworks.types.supervised_fine_tuning_job import SupervisedFineTuningJob
from openai.types.fine_tuning import FineTuningJob
from together.types.finetune_response import FinetuneResponse

from bot.job_state import apply_remote
from bot.providers import fireworks_api, openai_compat, together_api
from storage import repo
from storage.models import Job, JobStatus

NOW = datetime(2026, 11, 30, tzinfo=UTC)
# Together's documented states (docs.together.ai, fine-tuning job status), `user_error` included.
TOGETHER_STATES = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "cancel_requested": "running",
    "cancelled": "cancelled",
    "error": "failed",
    "user_error": "failed",
    "completed": "succeeded",
}


def together_job(status: str) -> FinetuneResponse:
    return FinetuneResponse.construct(id="ft-1", status=status, user_id="u", model="m")


@pytest.mark.parametrize(("state", "expected"), TOGETHER_STATES.items())
def test_together_states(state: str, expected: str) -> None:
    remote = together_api.to_remote_job(together_job(state))
    assert remote.status == expected and remote.raw_status == state
    assert (remote.error is not None) == (expected == "failed")


def test_every_state_the_together_sdk_knows_is_mapped() -> None:
    states = get_args(FinetuneResponse.model_fields["status"].annotation)
    assert set(states) <= set(together_api.STATES)


def test_every_fireworks_state_is_ours_or_shown_as_is() -> None:
    annotation = SupervisedFineTuningJob.model_fields["state"].annotation
    states = get_args(get_args(annotation)[0])
    assert "JOB_STATE_COMPLETED" in states
    for state in states:
        remote = fireworks_api.to_remote_job(
            SupervisedFineTuningJob.construct(dataset="d", state=state), "job-1"
        )
        mapped = fireworks_api.STATES.get(state)
        assert remote.status == (mapped or state) and remote.raw_status == state
    # the ones tuneup acts on are mapped, not passed through
    for state in ("JOB_STATE_RUNNING", "JOB_STATE_COMPLETED", "JOB_STATE_FAILED"):
        assert state in fireworks_api.STATES


def test_openai_paused_which_the_sdk_enum_lacks_is_kept() -> None:
    assert "paused" not in get_args(FineTuningJob.model_fields["status"].annotation)
    job = FineTuningJob.construct(
        id="ftjob-1", status="paused", model="m", fine_tuned_model=None, trained_tokens=None
    )
    assert openai_compat.to_remote_job(job).status == JobStatus.PAUSED


@pytest.mark.parametrize("provider_state", ["JOB_STATE_DELETING", "warming_up"])
def test_an_unknown_state_is_shown_and_polled_again(provider_state: str) -> None:
    job = Job(
        provider="x", provider_job_id="j", platform="console", workspace="w", channel="c",
        owner="o", base_model="m", training_file_id="f", status="running",
    )  # fmt: skip
    remote = SimpleNamespace(
        status=provider_state, estimated_finish=None, method=None,
        fine_tuned_model=None, trained_tokens=None, error=None,
    )  # fmt: skip
    outcome = apply_remote(job, remote, [], NOW, progress_due=False)
    assert job.status == provider_state and outcome.progress and not outcome.summary
    assert job.status not in {s.value for s in JobStatus}
    assert job.finished_at is None
    assert job.status not in repo.TERMINAL  # the poller's query (status not terminal) asks again
