"""What routes get through FastAPI dependencies: the app's settings, store, job service and
model pool, set on `app.state` once by `engine.api.create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from engine.job_service import JobService
from engine.settings import EngineSettings
from engine.store import Store


def get_settings(request: Request) -> EngineSettings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_jobs(request: Request) -> JobService:
    return request.app.state.jobs


def get_pool(request: Request) -> Any:
    return request.app.state.pool


def get_inference(request: Request) -> Any:
    return request.app.state.inference
