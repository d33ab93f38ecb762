"""The job service: every state change of files and fine-tuning jobs the API asks for (create,
validate, cancel, pause, resume) lives here, with the rules that guard it; routes stay thin."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from pathlib import Path
from typing import Any

from engine.basemodels import (
    UnknownBaseModel,
    base_model_names,
    fetch_from_hub,
    hub_offline,
    is_hub_id,
)
from engine.data import DataError, Row, read_rows
from engine.errors import APIError, not_found
from engine.schemas import JobCreate
from engine.settings import EngineSettings
from engine.store import TERMINAL, Store, new_id, now

log = logging.getLogger("tuneup.engine")
FILE_PURPOSES = {"fine-tune", "assistants", "batch", "vision", "user_data", "evals"}
SUFFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
UNFINISHED = ("validating_files", "queued", "running")


def _check_hyper(name: str, value: Any, kind: type, low: float, high: float) -> Any:
    if value is None or value == "auto":
        return "auto"
    try:
        number = kind(value)
        if kind is int and float(value) != number:  # 2.9 is not 2 epochs
            number = None
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or isinstance(value, bool) or not (low <= number <= high):
        raise APIError(
            400,
            f"{name} must be 'auto' or a number between {low} and {high}",
            param=f"hyperparameters.{name}",
            code="invalid_hyperparameter",
        )
    return number


METHODS = ("supervised", "dpo")


def _object(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise APIError(400, f"'{param}' must be an object", param=param, code="invalid_type")
    return value


def resolve_method(body: JobCreate) -> tuple[str, dict[str, Any]]:
    """The training method and its hyperparameters (each a number or "auto")."""
    method = _object(body.method, "method")
    kind = method.get("type", "supervised")
    if kind not in METHODS:
        raise APIError(
            400,
            f"method type {kind!r} is not supported by the local engine; use 'supervised' or 'dpo'",
            param="method.type",
            code="unsupported_method",
        )
    given = dict(_object(body.hyperparameters, "hyperparameters"))
    section = _object(method.get(kind), f"method.{kind}")
    given.update(_object(section.get("hyperparameters"), f"method.{kind}.hyperparameters"))
    hyper: dict[str, Any] = {
        "n_epochs": _check_hyper("n_epochs", given.get("n_epochs"), int, 1, 50),
        "batch_size": _check_hyper("batch_size", given.get("batch_size"), int, 1, 256),
        "learning_rate_multiplier": _check_hyper(
            "learning_rate_multiplier", given.get("learning_rate_multiplier"), float, 1e-4, 20
        ),
    }
    if kind == "dpo":
        hyper["beta"] = _check_hyper("beta", given.get("beta"), float, 1e-3, 10)
    return kind, hyper


def engine_hyperparameters(body: JobCreate) -> dict[str, Any]:
    """The engine's own training switches a job may set: qlora, packing, accumulation."""
    method = _object(body.method, "method")
    kind = method.get("type", "supervised")
    given = dict(_object(body.hyperparameters, "hyperparameters"))
    section = _object(method.get(kind), f"method.{kind}")
    given.update(_object(section.get("hyperparameters"), f"method.{kind}.hyperparameters"))
    extra: dict[str, Any] = {}
    for flag in ("qlora", "packing"):
        if flag in given:
            if not isinstance(given[flag], bool):
                raise APIError(
                    400,
                    f"{flag} must be true or false",
                    param=f"hyperparameters.{flag}",
                    code="invalid_hyperparameter",
                )
            extra[flag] = given[flag]
    if given.get("gradient_accumulation_steps") not in (None, "auto"):
        extra["gradient_accumulation_steps"] = _check_hyper(
            "gradient_accumulation_steps", given["gradient_accumulation_steps"], int, 1, 256
        )
    return extra


def check_method_fits(method: str, rows: list[Row], param: str) -> None:
    preference = rows[0].kind == "preference"
    if method == "dpo" and not preference:
        raise DataError(
            "method `dpo` needs preference examples "
            "(`input`, `preferred_output`, `non_preferred_output`)",
            rows[0].line,
            param,
        )
    if method != "dpo" and preference:
        raise DataError(
            "this file holds preference (DPO) examples; create the job with method type `dpo`",
            rows[0].line,
            param,
        )


async def validate_files(store: Store, job: dict[str, Any]) -> None:
    """Check a new job's files; any failure moves it to 'failed' with the reason."""
    store.add_event(job["id"], f"Validating training file: {job['training_file']}")
    try:
        for param in ("training_file", "validation_file"):
            if job.get(param):
                found = store.get_file(job[param])
                if not found:
                    raise DataError(f"file {job[param]} was deleted", None, param)
                rows = await asyncio.to_thread(read_rows, found[1], param)
                check_method_fits(job["method"]["type"], rows, param)
    except Exception as exc:  # any failure must leave 'validating_files', never hang there
        if not isinstance(exc, DataError):
            log.exception("validating the files of %s failed", job["id"])
            exc = DataError("the engine could not read this file as training data")
        error = {"code": "invalid_file", "message": str(exc), "param": exc.param}
        if store.update_job(
            job["id"],
            {"status": "failed", "error": error, "finished_at": now()},
            only_if=("validating_files",),
        ):
            store.add_event(job["id"], f"Job failed: {exc}", level="error")
        return
    if store.update_job(job["id"], {"status": "queued"}, only_if=("validating_files",)):
        store.add_event(job["id"], "Files validated, moving job to queued state")


class JobService:
    def __init__(self, settings: EngineSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.tasks: set[asyncio.Task] = set()

    def file_or_404(self, file_id: str, param: str | None = None) -> tuple[dict[str, Any], Any]:
        found = self.store.get_file(file_id)
        if not found:
            raise not_found("file", file_id, param)
        return found

    def job_or_404(self, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if not job:
            raise not_found("fine_tuning_job", job_id)
        return job

    def start_validation(self, job: dict[str, Any]) -> None:
        task = asyncio.create_task(validate_files(self.store, job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def resume_validations(self) -> None:
        """Jobs a stopped engine left in 'validating_files' are validated again at start-up."""
        for job in self.store.jobs_with_status("validating_files"):
            self.start_validation(job)

    def _base(self, model: str) -> tuple[str, str | None, str | None]:
        """(base model, adapter to continue from, parent model) for the requested model."""
        if model in base_model_names(self.settings):
            return model, None, None
        if is_hub_id(self.settings, model):
            if hub_offline():  # fetched when the job runs; offline, it must be cached already
                try:
                    fetch_from_hub(self.settings, model, cached_only=True)
                except UnknownBaseModel as exc:
                    raise APIError(
                        400, str(exc), param="model", code="model_not_available"
                    ) from None
            return model, None, None
        if found := self.store.get_model(model):
            return found[1], str(found[2]), model
        raise APIError(
            400,
            f"Model {model!r} is not available for fine-tuning on this engine. "
            f"Available: {', '.join(base_model_names(self.settings))} or one of its fine-tuned "
            "models.",
            param="model",
            code="model_not_available",
        )

    def _check_request(self, body: JobCreate) -> None:
        for param in ("training_file", "validation_file"):
            file_id = getattr(body, param)
            if file_id:
                obj, _ = self.file_or_404(file_id, param)
                if obj["purpose"] != "fine-tune":
                    raise APIError(
                        400,
                        f"File {file_id} was not uploaded with purpose 'fine-tune'",
                        param=param,
                    )
        if body.suffix is not None and not SUFFIX_RE.fullmatch(body.suffix):
            raise APIError(
                400,
                "suffix must be 1-64 letters, digits, '-' or '_'",
                param="suffix",
                code="invalid_suffix",
            )
        if body.integrations:
            raise APIError(
                400,
                "The local engine has no integrations (e.g. Weights & Biases); leave them out.",
                param="integrations",
                code="unsupported_integration",
            )
        if body.metadata and len(body.metadata) > 16:
            raise APIError(400, "metadata takes at most 16 pairs", param="metadata")

    def create(self, body: JobCreate, idempotency_key: str | None) -> dict[str, Any]:
        """A new job in 'validating_files' (a repeated Idempotency-Key gets the first job)."""
        if idempotency_key and (earlier := self.store.job_by_idempotency_key(idempotency_key)):
            return earlier
        kind, hyper = resolve_method(body)
        extra_hyper = engine_hyperparameters(body)
        base, init_adapter, parent = self._base(body.model)
        self._check_request(body)
        job_id = new_id("ftjob")
        seed = body.seed if body.seed is not None else random.randint(0, 2**31 - 1)
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": now(),
            "model": body.model,
            "organization_id": "org-local",
            "result_files": [],
            "seed": seed,
            "status": "validating_files",
            "training_file": body.training_file,
            "validation_file": body.validation_file,
            "hyperparameters": hyper,
            "method": {"type": kind, kind: {"hyperparameters": hyper}},
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "trained_tokens": None,
            "estimated_finish": None,
            "integrations": None,
            "metadata": body.metadata,
            "user_provided_suffix": body.suffix,
        }
        internal = {
            "base_model": base,
            "init_adapter": init_adapter,
            "parent_model": parent,
            "model_name": f"ft:{base}:local:{body.suffix or ''}:{job_id[-8:]}",
            "hyperparameters": hyper,
            "extra_hyperparameters": extra_hyper,
            "method": kind,
            "idempotency_key": idempotency_key,
        }
        self.store.add_job(job, internal)
        self.store.add_event(job_id, f"Created fine-tuning job: {job_id}")
        self.start_validation(job)
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.job_or_404(job_id)
        if job["status"] in TERMINAL:
            raise APIError(
                400,
                f"Job {job_id} has already {job['status']}; it cannot be cancelled",
                code="job_finished",
            )
        done = self.store.update_job(
            job_id,
            {"status": "cancelled", "finished_at": now(), "estimated_finish": None},
            only_if=UNFINISHED,
        )
        if done is None:
            return self.job_or_404(job_id)
        self.store.add_event(job_id, "Fine-tuning job cancelled")
        return done

    def pause(self, job_id: str) -> dict[str, Any]:
        """Stop at the next step and keep the last checkpoint (OpenAI's 2025 pause)."""
        job = self.job_or_404(job_id)
        done = self.store.update_job(
            job_id, {"status": "paused", "estimated_finish": None}, only_if=UNFINISHED
        )
        if done is None:
            raise APIError(
                400,
                f"Job {job_id} is {job['status']}; only an unfinished job can be paused",
                code="job_not_pausable",
            )
        self.store.add_event(job_id, "Fine-tuning job paused")
        return done

    def resume(self, job_id: str) -> dict[str, Any]:
        """Continue a paused job from its last checkpoint (from the start when it has none)."""
        job = self.job_or_404(job_id)
        if job["status"] != "paused":
            raise APIError(
                400, f"Job {job_id} is {job['status']}, not paused", code="job_not_paused"
            )
        internal = self.store.get_internal(job_id)
        checkpoint = internal.get("last_checkpoint")
        internal["resume"] = (
            checkpoint if checkpoint and Path(checkpoint["path"]).exists() else None
        )
        self.store.set_internal(job_id, internal)
        done = self.store.update_job(job_id, {"status": "queued"}, only_if=("paused",))
        where = f"from step {checkpoint['step']}" if internal["resume"] else "from the start"
        self.store.add_event(job_id, f"Fine-tuning job resumed {where}")
        return done or self.job_or_404(job_id)

    async def store_upload(self, upload: Any, purpose: str) -> dict[str, Any]:
        """Stream an upload to disk under the size cap; the file object it becomes."""
        if purpose not in FILE_PURPOSES:
            raise APIError(
                400, f"Invalid purpose {purpose!r}", param="purpose", code="invalid_purpose"
            )
        file_id = new_id("file")
        path = self.settings.data_dir / "files" / file_id
        cap = self.settings.max_upload_bytes
        size = 0
        with open(path, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > cap:
                    out.close()
                    path.unlink(missing_ok=True)
                    raise APIError(
                        413,
                        f"File is larger than the {cap // 2**20} MB limit",
                        param="file",
                        code="file_too_large",
                    )
                out.write(chunk)
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": now(),
            "filename": upload.filename or "upload.jsonl",
            "purpose": purpose,
            "status": "processed",
        }
        self.store.add_file(obj, path)
        return obj
