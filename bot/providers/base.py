"""The provider interface: what tuneup asks of any fine-tuning service, in its own types.

Each implementation maps its service's objects and states into these; the core (poller,
lifecycle, commands) never sees a provider's own shapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.models import JobStatus


class NotOffered(Exception):
    """The provider has no such operation (Fireworks has no event log, OpenAI no price list)."""

    def __init__(self, provider: str, operation: str) -> None:
        super().__init__(f"{provider} does not offer {operation}.")
        self.provider = provider
        self.operation = operation


class NotFound(Exception):
    """The provider has no such job, file or model."""


class Rejected(Exception):
    """The provider refused a request that tuneup can explain (e.g. a file it rejected)."""


@dataclass
class RemoteError:
    message: str
    code: str | None = None


@dataclass
class RemoteJob:
    """A provider's job in tuneup's terms. `status` is a `JobStatus` value, or the provider's
    own state verbatim when it is one tuneup doesn't know (shown as-is and polled again)."""

    id: str
    status: str
    model: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: RemoteError | None = None
    estimated_finish: int | None = None
    method: str | None = None
    key: str | None = None  # tuneup's idempotency key, where the provider keeps it
    percent: float | None = None  # progress where the provider reports a percentage only
    raw_status: str = ""
    serving_note: str | None = None  # what users must do before the tuned model answers


@dataclass
class RemoteEvent:
    """One progress event, newest first in lists; `data` carries step/loss metrics."""

    id: str
    message: str
    data: dict[str, Any] | None = None
    level: str = "info"


@dataclass
class Checkpoint:
    step: int
    model: str  # the name to ask or resume from
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TunableModel:
    id: str
    price_per_million: float | None = None  # USD per 1M training tokens, when published
    tuned: bool = False
    detail: str = ""  # size, context length, device, where the provider says


@dataclass
class CreateRequest:
    """The common create: model, files, hyperparameters, method, suffix and tuneup's key."""

    model: str
    training_file: str
    key: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    method: str = "supervised"
    suffix: str | None = None
    from_checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the stored OpenAI-shaped request

    @classmethod
    def from_openai(cls, request: dict[str, Any], key: str) -> CreateRequest:
        """Read the OpenAI-shaped request tuneup stores on a pending job."""
        method = request.get("method") or {}
        kind = method.get("type", "supervised")
        hyper = dict(request.get("hyperparameters") or {})
        hyper.update((method.get(kind) or {}).get("hyperparameters") or {})
        extra = dict(request.get(PROVIDER_OPTIONS) or {})
        return cls(
            model=request["model"],
            training_file=request["training_file"],
            key=key,
            validation_file=request.get("validation_file"),
            hyperparameters=hyper,
            method=kind,
            suffix=request.get("suffix"),
            from_checkpoint=extra.pop("from_checkpoint", None),
            extra=extra,
            raw={k: v for k, v in request.items() if k != PROVIDER_OPTIONS},
        )


PROVIDER_OPTIONS = "tuneup_provider_options"  # in a stored request: options only some take


@dataclass
class Answer:
    text: str


class ProviderAPI(ABC):
    """One fine-tuning service. Methods the service lacks raise `NotOffered`."""

    label: str = "the provider"
    kind: str = "openai"
    publishes_estimates: bool = False  # `estimate` asks the provider for its price

    @abstractmethod
    async def upload(self, path: Path, name: str) -> str: ...

    async def file_exists(self, file_id: str) -> bool:
        return False

    @abstractmethod
    async def create(self, request: CreateRequest) -> RemoteJob: ...

    @abstractmethod
    async def retrieve(self, job_id: str) -> RemoteJob: ...

    async def find_by_key(self, key: str) -> RemoteJob | None:
        """The job this provider made for tuneup's idempotency key, if any."""
        return None

    @abstractmethod
    async def events(self, job: RemoteJob, last_seen: str | None) -> tuple[list[RemoteEvent], int]:
        """New events newest first, up to `last_seen`; and how many requests it took."""

    @abstractmethod
    async def cancel(self, job_id: str) -> None: ...

    async def pause(self, job_id: str) -> None:
        raise NotOffered(self.label, "pausing jobs")

    async def resume(self, job_id: str) -> None:
        raise NotOffered(self.label, "resuming jobs")

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        raise NotOffered(self.label, "checkpoints")

    @abstractmethod
    async def models(self) -> list[TunableModel]: ...

    async def ping(self) -> None:
        """A cheap authenticated call; raises what the provider says when it is not usable."""
        await self.models()

    async def estimate(self, request: CreateRequest) -> float | None:
        """The provider's own price estimate in USD, where it publishes one."""
        return None

    @abstractmethod
    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int, timeout: float
    ) -> str: ...

    async def complete(
        self, model: str, prompt: str, *, max_tokens: int, stop: str | None, timeout: float
    ) -> str:
        raise NotOffered(self.label, "plain completions")

    def serving_name(self, job: Any) -> str | None:
        """The name `/ask-model` should call for a finished job's model (Azure: its deployment)."""
        return None

    async def after_success(self, remote: RemoteJob) -> str | None:
        """A step some providers need before a tuned model answers; returns what to tell users."""
        return None

    async def close(self) -> None:
        return None


def known_status(value: str) -> bool:
    return value in {s.value for s in JobStatus}
