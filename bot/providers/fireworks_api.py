"""Fireworks AI through its official `fireworks-ai` SDK (1.x): datasets, supervised fine-tuning
jobs with their progress percentage, the resulting LoRA model, and chat with it.

Shapes: the SDK's types (`fireworks.types.supervised_fine_tuning_job`, `dataset`, `model`,
`chat.completion_create_response`), generated from Fireworks' OpenAPI spec (docs.fireworks.ai
API reference). A job's id is chosen by the caller, so tuneup derives it from its idempotency
key: a repeated create answers ALREADY_EXISTS and the job is adopted, never made twice.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import fireworks
from fireworks import AsyncFireworks

from bot.providers.base import (
    CreateRequest,
    NotFound,
    NotOffered,
    ProviderAPI,
    RemoteError,
    RemoteEvent,
    RemoteJob,
    TunableModel,
)

# Fireworks' JOB_STATE_* (SupervisedFineTuningJob.state) → tuneup's; others are shown as-is.
STATES = {
    "JOB_STATE_CREATING": "queued",
    "JOB_STATE_PENDING": "queued",
    "JOB_STATE_VALIDATING": "validating_files",
    "JOB_STATE_CREATING_INPUT_DATASET": "validating_files",
    "JOB_STATE_RE_QUEUEING": "queued",
    "JOB_STATE_IDLE": "queued",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_WRITING_RESULTS": "running",
    "JOB_STATE_CANCELLING": "running",
    "JOB_STATE_PAUSED": "paused",
    "JOB_STATE_COMPLETED": "succeeded",
    "JOB_STATE_EARLY_STOPPED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
}


def job_id_for(key: str) -> str:
    """Fireworks job ids are lowercase letters, digits and dashes."""
    return "tuneup-" + hashlib.sha256(key.encode()).hexdigest()[:20]


class FireworksAPI(ProviderAPI):
    kind = "fireworks"

    def __init__(self, client: AsyncFireworks, label: str) -> None:
        self.client = client
        self.label = label

    def _name(self, kind: str, ident: str) -> str:
        return f"accounts/{self.client.account_id}/{kind}/{ident}"

    async def upload(self, path: Path, name: str) -> str:
        data = path.read_bytes()
        dataset_id = "tuneup-" + hashlib.sha256(data).hexdigest()[:20]
        lines = sum(1 for line in data.splitlines() if line.strip())
        # The same bytes uploaded before: the dataset exists, and is reused.
        with contextlib.suppress(fireworks.ConflictError):
            await self.client.datasets.create(
                dataset_id=dataset_id, dataset={"exampleCount": str(lines), "userUploaded": {}}
            )
        await self.client.datasets.upload(dataset_id, file=(name, data))
        return self._name("datasets", dataset_id)

    async def file_exists(self, file_id: str) -> bool:
        try:
            found = await self.client.datasets.get(file_id.rsplit("/", 1)[-1])
        except fireworks.NotFoundError:
            return False
        return found.state == "READY"

    async def create(self, request: CreateRequest) -> RemoteJob:
        if request.from_checkpoint or request.extra.get("lora") is False:
            raise NotOffered(self.label, "full-weight training or `from=` checkpoints here")
        if request.method != "supervised":
            raise NotOffered(self.label, f"{request.method} through tuneup (supervised only)")
        ident = job_id_for(request.key)
        try:
            remote = await self.client.with_options(
                max_retries=0
            ).supervised_fine_tuning_jobs.create(
                supervised_fine_tuning_job_id=ident, **self._create_args(request)
            )
        except fireworks.ConflictError:
            return await self.retrieve(ident)
        return to_remote_job(remote, ident)

    def _create_args(self, request: CreateRequest) -> dict[str, Any]:
        hyper = request.hyperparameters
        args: dict[str, Any] = {"dataset": request.training_file, "base_model": request.model}
        if request.validation_file:
            args["evaluation_dataset"] = request.validation_file
        if request.suffix:
            args["display_name"] = request.suffix
        if hyper.get("n_epochs") not in (None, "auto"):
            args["epochs"] = int(hyper["n_epochs"])
        if hyper.get("batch_size") not in (None, "auto"):
            args["batch_size_samples"] = int(hyper["batch_size"])
        if hyper.get("learning_rate_multiplier") not in (None, "auto"):
            args["learning_rate"] = 1e-4 * float(hyper["learning_rate_multiplier"])
        if request.extra.get("lora_rank"):
            args["lora_rank"] = int(request.extra["lora_rank"])
        return args

    async def retrieve(self, job_id: str) -> RemoteJob:
        try:
            remote = await self.client.supervised_fine_tuning_jobs.get(job_id)
        except fireworks.NotFoundError as exc:
            raise NotFound(job_id) from exc
        return to_remote_job(remote, job_id)

    async def find_by_key(self, key: str) -> RemoteJob | None:
        try:
            return await self.retrieve(job_id_for(key))
        except NotFound:
            return None

    async def events(self, job: RemoteJob, last_seen: str | None) -> tuple[list[RemoteEvent], int]:
        """Fireworks reports a percentage, not events: each new percentage becomes one."""
        if job.percent is None or f"pct:{job.percent:g}" == last_seen:
            return [], 0
        data = {"step": int(job.percent), "total_steps": 100, "percent": True}
        return [RemoteEvent(f"pct:{job.percent:g}", f"{job.percent:g}% done", data)], 0

    async def cancel(self, job_id: str) -> None:
        await self.client.supervised_fine_tuning_jobs.cancel(job_id, body={})

    async def models(self) -> list[TunableModel]:
        page = await self.client.models.list(account_id="fireworks", page_size=50)
        return [TunableModel(m.name or "") for m in page.models if m.tunable]

    async def ping(self) -> None:
        await self.client.with_options(max_retries=0, timeout=5).datasets.list(page_size=1)

    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int, timeout: float
    ) -> str:
        client = self.client.with_options(max_retries=0, timeout=timeout)
        try:
            response = await client.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens, temperature=0
            )  # type: ignore[arg-type]
        except fireworks.NotFoundError as exc:
            raise NotFound(model) from exc
        content = response.choices[0].message.content
        return content if isinstance(content, str) else ""

    async def close(self) -> None:
        await self.client.close()


def to_remote_job(remote: Any, job_id: str) -> RemoteJob:
    raw = str(remote.state or "JOB_STATE_UNSPECIFIED")
    status = STATES.get(raw, raw)
    progress = remote.job_progress
    message = remote.status.message if remote.status else None
    return RemoteJob(
        id=job_id,
        status=status,
        raw_status=raw,
        model=remote.base_model,
        fine_tuned_model=remote.output_model if status == "succeeded" else None,
        error=RemoteError(message or f"Fireworks reported {raw}", raw)
        if status == "failed"
        else None,
        method="supervised",
        percent=float(progress.percent) if progress and progress.percent is not None else None,
    )
