"""SQLModel tables. Ownership keys always carry platform + workspace: user ids are per workspace."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import JSON, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    """tuneup's own job states; providers map theirs into these (an unknown one is kept as-is,
    shown, and polled again)."""

    PENDING = "pending"  # recorded before the provider's create; not confirmed yet
    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset(set(JobStatus) - TERMINAL_STATUSES)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("provider", "provider_job_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str
    # None while the job is 'pending': recorded, but not yet confirmed by the provider.
    provider_job_id: str | None = Field(default=None, index=True)
    # Sent to the provider with the create (header and metadata), so a retry or a restart
    # finds the job that a create made instead of making a second one.
    idempotency_key: str | None = Field(default=None, unique=True)
    # The provider create request, kept so a pending row can be reconciled after a crash.
    request: dict | None = Field(default=None, sa_column=Column(JSON))
    platform: str
    workspace: str
    channel: str
    thread: str | None = None
    owner: str
    base_model: str
    suffix: str | None = None
    training_file_id: str
    validation_file_id: str | None = None
    dataset_id: int | None = Field(default=None, foreign_key="datasets.id")
    status: str = Field(default="validating_files", index=True)
    fine_tuned_model: str | None = None
    error: str | None = None
    trained_tokens: int | None = None
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    estimated_finish: int | None = None
    last_event_id: str | None = None
    progress_ref: dict | None = Field(default=None, sa_column=Column(JSON))
    # {"points": [[step, train_loss, valid_loss|None], ...], "final": {...}}
    metrics: dict = Field(default_factory=dict, sa_column=Column(JSON))
    # What /finetune estimated before starting: counted against monthly budgets.
    estimated_tokens: int | None = None
    estimated_cost: float | None = None  # None: the price is unknown
    # How the model expects to be asked: {"kind": "chat"} or
    # {"kind": "completion", "separator": "...", "stop": "..."} from its training file.
    prompt_format: dict | None = Field(default=None, sa_column=Column(JSON))
    # "dm": the result is also sent to the owner directly
    notify: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(index=True)
    filename: str
    size: int
    platform: str
    workspace: str
    channel: str
    uploaded_by: str
    path: str
    fixed_path: str | None = None
    ok: bool = False
    n_examples: int = 0
    billed_tokens: int = 0
    report: dict = Field(default_factory=dict, sa_column=Column(JSON))
    # {"<provider>": "<file id>"}, so an identical re-upload is reused
    provider_files: dict = Field(default_factory=dict, sa_column=Column(JSON))
    # A classification file's stratified halves: {"train": id, "valid": id}; each half points
    # back here with parent_id. /finetune on the file trains on one and validates on the other.
    parent_id: int | None = None
    split: dict | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Outbox(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    job_id: int | None = Field(default=None, foreign_key="jobs.id", index=True)
    # A progress row of an eval run edits that run's one progress message.
    eval_id: int | None = None
    platform: str
    workspace: str
    channel: str
    thread: str | None = None
    # "post": a new message; "progress": the job's one progress message, posted then edited
    kind: str = "post"
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = Field(default=None, index=True)
    superseded: bool = False
    # The posted message, recorded before its files are uploaded: a retry only adds the files.
    message_ref: dict | None = Field(default=None, sa_column=Column(JSON))
    # Set (and committed) just before a post: a retry after a crash first looks for the message.
    posting_since: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class SeenEvent(SQLModel, table=True):
    """Platform event ids already handled, so retried deliveries do nothing twice."""

    __tablename__ = "seen_events"

    key: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    # None while being handled; a claim whose handler died is taken again after a lease.
    done_at: datetime | None = None


class Policy(SQLModel, table=True):
    """A workspace's spending caps and its pause switch, set by its admins."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("platform", "workspace"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    workspace: str
    # {"workspace_tokens", "workspace_dollars", "user_tokens", "user_dollars", "concurrent_jobs"}
    caps: dict = Field(default_factory=dict, sa_column=Column(JSON))
    paused: bool = False
    pause_message: str | None = None
    updated_by: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class EvalRun(SQLModel, table=True):
    """One /eval (or the comparison after a job): who, where, on what, and every score."""

    __tablename__ = "eval_runs"

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    workspace: str
    channel: str
    thread: str | None = None
    owner: str
    kind: str = "eval"  # "eval" | "after_job" | "migration"
    dataset_id: int | None = None
    job_id: int | None = None
    models: list = Field(default_factory=list, sa_column=Column(JSON))
    judge: str | None = None
    task_type: str | None = None
    n_rows: int = 0
    status: str = "running"  # running | succeeded | failed
    # {"<model>": {"accuracy": ..., ...}, "_classification": {...}}
    metrics: dict = Field(default_factory=dict, sa_column=Column(JSON))
    rows_path: str | None = None
    error: str | None = None
    progress_ref: dict | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
