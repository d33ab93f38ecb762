"""Files, fine-tuning jobs, events and checkpoints."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from engine.basemodels import (
    UnknownBaseModel,
    base_model_names,
    fetch_from_hub,
    hub_offline,
    is_hub_id,
)
from engine.data import DataError, Row, read_rows
from engine.errors import APIError, not_found
from engine.settings import EngineSettings
from engine.store import TERMINAL, Store, new_id, now

log = logging.getLogger("tuneup.engine")
FILE_PURPOSES = {"fine-tune", "assistants", "batch", "vision", "user_data", "evals"}
SUFFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def cursor_page(
    items: list[dict[str, Any]], after: str | None, limit: int, empty_id: str | None = None
) -> dict[str, Any]:
    start = 0
    if after:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + limit]
    page: dict[str, Any] = {"object": "list", "data": chunk, "has_more": start + limit < len(items)}
    # OpenAI's list shapes carry first_id/last_id. On an empty page most allow null; the files
    # list requires a string (ListFilesResponse in the v2.3.0 spec), so it passes "" there.
    page.update(
        first_id=chunk[0]["id"] if chunk else empty_id,
        last_id=chunk[-1]["id"] if chunk else empty_id,
    )
    return page


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)  # OpenAI documents a 32-bit seed
    hyperparameters: Any = None
    method: Any = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None


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


def start_validation(app: Any, store: Store, job: dict[str, Any]) -> None:
    task = asyncio.create_task(validate_files(store, job))
    app.state.tasks.add(task)
    task.add_done_callback(app.state.tasks.discard)


def resume_validations(app: Any, store: Store) -> None:
    """Jobs a stopped engine left in 'validating_files' are validated again at start-up."""
    for job in store.jobs_with_status("validating_files"):
        start_validation(app, store, job)


def build_router(settings: EngineSettings, store: Store) -> APIRouter:
    router = APIRouter()

    def file_or_404(file_id: str, param: str | None = None) -> tuple[dict[str, Any], Any]:
        found = store.get_file(file_id)
        if not found:
            raise not_found("file", file_id, param)
        return found

    def job_or_404(job_id: str) -> dict[str, Any]:
        job = store.get_job(job_id)
        if not job:
            raise not_found("fine_tuning_job", job_id)
        return job

    @router.post("/files")
    async def create_file(file: UploadFile = File(...), purpose: str = Form(...)) -> dict:
        if purpose not in FILE_PURPOSES:
            raise APIError(
                400, f"Invalid purpose {purpose!r}", param="purpose", code="invalid_purpose"
            )
        file_id = new_id("file")
        path = settings.data_dir / "files" / file_id
        size = 0
        with open(path, "wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    out.close()
                    path.unlink(missing_ok=True)
                    raise APIError(
                        413,
                        f"File is larger than the {settings.max_upload_bytes // 2**20} MB limit",
                        param="file",
                        code="file_too_large",
                    )
                out.write(chunk)
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": now(),
            "filename": file.filename or "upload.jsonl",
            "purpose": purpose,
            "status": "processed",
        }
        store.add_file(obj, path)
        return obj

    @router.get("/files")
    async def list_files(
        purpose: str | None = None,
        limit: int = Query(10000, ge=1, le=10000),
        after: str | None = None,
    ) -> dict:
        return cursor_page(store.list_files(purpose), after, limit, empty_id="")

    @router.get("/files/{file_id}")
    async def retrieve_file(file_id: str) -> dict:
        return file_or_404(file_id)[0]

    @router.get("/files/{file_id}/content")
    async def file_content(file_id: str) -> Response:
        obj, path = file_or_404(file_id)
        media = "text/csv" if obj["filename"].endswith(".csv") else "application/octet-stream"
        return Response(path.read_bytes(), media_type=media)

    @router.delete("/files/{file_id}")
    async def delete_file(file_id: str) -> dict:
        _, path = file_or_404(file_id)
        store.delete_file(file_id)
        path.unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.post("/fine_tuning/jobs")
    async def create_job(body: JobCreate, request: Request) -> dict:
        # A retried create with the same Idempotency-Key gets the job the first one made.
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key and (earlier := store.job_by_idempotency_key(idempotency_key)):
            return earlier
        kind, hyper = resolve_method(body)
        extra_hyper = engine_hyperparameters(body)
        init_adapter = internal_parent = None
        if body.model in base_model_names(settings):
            base = body.model
        elif is_hub_id(settings, body.model):
            base = body.model  # fetched when the job runs; offline, it must be cached already
            if hub_offline():
                try:
                    fetch_from_hub(settings, base, cached_only=True)
                except UnknownBaseModel as exc:
                    raise APIError(
                        400, str(exc), param="model", code="model_not_available"
                    ) from None
        elif found := store.get_model(body.model):
            base, init_adapter = found[1], str(found[2])
            internal_parent = body.model
        else:
            raise APIError(
                400,
                f"Model {body.model!r} is not available for fine-tuning on this engine. "
                f"Available: {', '.join(base_model_names(settings))} or one of its fine-tuned models.",
                param="model",
                code="model_not_available",
            )
        for param in ("training_file", "validation_file"):
            file_id = getattr(body, param)
            if file_id:
                obj, _ = file_or_404(file_id, param)
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
        job_id = new_id("ftjob")
        model_name = f"ft:{base}:local:{body.suffix or ''}:{job_id[-8:]}"
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
            "parent_model": internal_parent,
            "model_name": model_name,
            "hyperparameters": hyper,
            "extra_hyperparameters": extra_hyper,
            "method": kind,
            "idempotency_key": idempotency_key,
        }
        store.add_job(job, internal)
        store.add_event(job_id, f"Created fine-tuning job: {job_id}")
        start_validation(request.app, store, job)
        return job

    @router.get("/fine_tuning/jobs")
    async def list_jobs(
        request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)
    ) -> dict:
        jobs = store.list_jobs()
        wanted = {
            key[len("metadata[") : -1]: value
            for key, value in request.query_params.items()
            if key.startswith("metadata[") and key.endswith("]")
        }
        if wanted:
            jobs = [
                j
                for j in jobs
                if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())
            ]
        return cursor_page(jobs, after, limit)

    @router.get("/fine_tuning/jobs/{job_id}")
    async def retrieve_job(job_id: str) -> dict:
        return job_or_404(job_id)

    @router.post("/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict:
        job = job_or_404(job_id)
        if job["status"] in TERMINAL:
            raise APIError(
                400,
                f"Job {job_id} has already {job['status']}; it cannot be cancelled",
                code="job_finished",
            )
        done = store.update_job(
            job_id,
            {"status": "cancelled", "finished_at": now(), "estimated_finish": None},
            only_if=("validating_files", "queued", "running"),
        )
        if done is None:
            return job_or_404(job_id)
        store.add_event(job_id, "Fine-tuning job cancelled")
        return done

    @router.post("/fine_tuning/jobs/{job_id}/pause")
    async def pause_job(job_id: str) -> dict:
        """Stop at the next step and keep the last checkpoint (OpenAI's 2025 pause)."""
        job = job_or_404(job_id)
        done = store.update_job(
            job_id,
            {"status": "paused", "estimated_finish": None},
            only_if=("validating_files", "queued", "running"),
        )
        if done is None:
            raise APIError(
                400,
                f"Job {job_id} is {job['status']}; only an unfinished job can be paused",
                code="job_not_pausable",
            )
        store.add_event(job_id, "Fine-tuning job paused")
        return done

    @router.post("/fine_tuning/jobs/{job_id}/resume")
    async def resume_job(job_id: str) -> dict:
        """Continue a paused job from its last checkpoint (from the start when it has none)."""
        job = job_or_404(job_id)
        if job["status"] != "paused":
            raise APIError(
                400, f"Job {job_id} is {job['status']}, not paused", code="job_not_paused"
            )
        internal = store.get_internal(job_id)
        checkpoint = internal.get("last_checkpoint")
        internal["resume"] = (
            checkpoint if checkpoint and Path(checkpoint["path"]).exists() else None
        )
        store.set_internal(job_id, internal)
        done = store.update_job(job_id, {"status": "queued"}, only_if=("paused",))
        where = f"from step {checkpoint['step']}" if internal["resume"] else "from the start"
        store.add_event(job_id, f"Fine-tuning job resumed {where}")
        return done or job_or_404(job_id)

    @router.get("/fine_tuning/jobs/{job_id}/events")
    async def list_events(
        job_id: str, after: str | None = None, limit: int = Query(20, ge=1, le=1000)
    ) -> dict:
        job_or_404(job_id)
        return cursor_page(store.list_events(job_id), after, limit)

    @router.get("/fine_tuning/jobs/{job_id}/checkpoints")
    async def list_checkpoints(
        job_id: str, after: str | None = None, limit: int = Query(10, ge=1, le=100)
    ) -> dict:
        job_or_404(job_id)
        items = [obj for obj, _ in store.list_checkpoints(job_id)]
        return cursor_page(items, after, limit)

    return router
