"""The FastAPI application: OpenAI-compatible routes under /v1, plus /health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import api_inference, api_jobs
from engine.errors import (
    APIError,
    api_error_handler,
    http_error_handler,
    internal_error_handler,
    unparsable_body_handler,
    validation_error_handler,
)
from engine.guard import RequestGuard
from engine.inference import ModelPool
from engine.inference_service import InferenceService
from engine.job_service import JobService
from engine.observability import metrics_text, queue_depth
from engine.settings import EngineSettings
from engine.store import Store


def create_app(
    settings: EngineSettings, store: Store, trainer_alive: Callable[[], bool] = lambda: True
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs.resume_validations()
        yield

    app = FastAPI(
        title="tuneup engine", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    pool = ModelPool(settings, store)
    jobs = JobService(settings, store)
    app.state.settings, app.state.store, app.state.pool, app.state.jobs = (
        settings,
        store,
        pool,
        jobs,
    )
    app.state.inference = InferenceService(settings, store, pool)
    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RecursionError, unparsable_body_handler)
    app.add_exception_handler(Exception, internal_error_handler)
    app.include_router(api_jobs.router, prefix="/v1")
    app.include_router(api_inference.router, prefix="/v1")
    # Outermost: the key and the body cap are checked before any route reads the body.
    app.add_middleware(
        RequestGuard,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        upload_cap=settings.max_upload_bytes + 64 * 1024,  # room for the multipart framing
        body_cap=settings.max_request_bytes,
    )

    @app.get("/health")
    @app.get("/healthz")
    async def health() -> dict:
        # Unauthenticated, so it says nothing about models or jobs.
        return {"status": "ok"}

    @app.get("/readyz")
    async def ready() -> JSONResponse:
        """Ready when the trainer process lives; the queue length says how busy it is."""
        alive = trainer_alive()
        body = {
            "ready": alive,
            "trainer": "alive" if alive else "dead",
            "queued": queue_depth(store),
        }
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(metrics_text(store), media_type="text/plain; version=0.0.4")

    return app
