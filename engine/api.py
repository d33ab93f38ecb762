"""The FastAPI application: OpenAI-compatible routes under /v1, plus /health."""

from __future__ import annotations

import hmac

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError

from engine import api_inference, api_jobs
from engine.errors import APIError, api_error_handler, validation_error_handler
from engine.inference import ModelPool
from engine.settings import EngineSettings
from engine.store import Store


def create_app(settings: EngineSettings, store: Store) -> FastAPI:
    app = FastAPI(title="tuneup engine", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.tasks = set()
    pool = ModelPool(settings, store)
    app.state.pool = pool
    expected = settings.api_key.get_secret_value() if settings.api_key else None

    async def authorize(request: Request) -> None:
        if expected is None:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise APIError(
                401,
                "Incorrect API key provided. Pass the engine's key as a bearer token.",
                code="invalid_api_key",
            )

    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    deps = [Depends(authorize)]
    app.include_router(api_jobs.build_router(settings, store), prefix="/v1", dependencies=deps)
    app.include_router(
        api_inference.build_router(settings, store, pool), prefix="/v1", dependencies=deps
    )

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "loaded_models": pool.loaded()}

    return app
