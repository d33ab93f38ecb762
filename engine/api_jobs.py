"""Routes for files, fine-tuning jobs, events and checkpoints: thin, module-level, and given the
store and the job service through FastAPI dependencies (the shape of vLLM's OpenAI server)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from engine.deps import get_jobs, get_store
from engine.job_service import JobService, check_method_fits
from engine.schemas import JobCreate, cursor_page
from engine.store import Store

__all__ = ["check_method_fits", "router"]

router = APIRouter()
StoreDep = Annotated[Store, Depends(get_store)]
JobsDep = Annotated[JobService, Depends(get_jobs)]


@router.post("/files")
async def create_file(
    jobs: JobsDep, file: UploadFile = File(...), purpose: str = Form(...)
) -> dict:
    return await jobs.store_upload(file, purpose)


@router.get("/files")
async def list_files(
    store: StoreDep,
    purpose: str | None = None,
    limit: int = Query(10000, ge=1, le=10000),
    after: str | None = None,
) -> dict:
    return cursor_page(store.list_files(purpose), after, limit, empty_id="")


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, jobs: JobsDep) -> dict:
    return jobs.file_or_404(file_id)[0]


@router.get("/files/{file_id}/content")
async def file_content(file_id: str, jobs: JobsDep) -> Response:
    obj, path = jobs.file_or_404(file_id)
    media = "text/csv" if obj["filename"].endswith(".csv") else "application/octet-stream"
    return Response(path.read_bytes(), media_type=media)


@router.delete("/files/{file_id}")
async def delete_file(file_id: str, jobs: JobsDep, store: StoreDep) -> dict:
    _, path = jobs.file_or_404(file_id)
    store.delete_file(file_id)
    path.unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}


@router.post("/fine_tuning/jobs")
async def create_job(body: JobCreate, request: Request, jobs: JobsDep) -> dict:
    # A retried create with the same Idempotency-Key gets the job the first one made.
    return jobs.create(body, request.headers.get("idempotency-key"))


def _metadata_filter(request: Request) -> dict[str, str]:
    return {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }


@router.get("/fine_tuning/jobs")
async def list_jobs(
    request: Request,
    store: StoreDep,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
) -> dict:
    found: list[dict[str, Any]] = store.list_jobs()
    if wanted := _metadata_filter(request):
        found = [
            j
            for j in found
            if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())
        ]
    return cursor_page(found, after, limit)


@router.get("/fine_tuning/jobs/{job_id}")
async def retrieve_job(job_id: str, jobs: JobsDep) -> dict:
    return jobs.job_or_404(job_id)


@router.post("/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, jobs: JobsDep) -> dict:
    return jobs.cancel(job_id)


@router.post("/fine_tuning/jobs/{job_id}/pause")
async def pause_job(job_id: str, jobs: JobsDep) -> dict:
    return jobs.pause(job_id)


@router.post("/fine_tuning/jobs/{job_id}/resume")
async def resume_job(job_id: str, jobs: JobsDep) -> dict:
    return jobs.resume(job_id)


@router.get("/fine_tuning/jobs/{job_id}/events")
async def list_events(
    job_id: str,
    jobs: JobsDep,
    store: StoreDep,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=1000),
) -> dict:
    jobs.job_or_404(job_id)
    return cursor_page(store.list_events(job_id), after, limit)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(
    job_id: str,
    jobs: JobsDep,
    store: StoreDep,
    after: str | None = None,
    limit: int = Query(10, ge=1, le=100),
) -> dict:
    jobs.job_or_404(job_id)
    items = [obj for obj, _ in store.list_checkpoints(job_id)]
    return cursor_page(items, after, limit)
