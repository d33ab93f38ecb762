from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from storage.db import normalize_url, open_database

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DATA = ROOT / "tests" / "data"
ENGINE_KEY = "test-engine-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_cache() -> str:
    return os.environ.get("TUNEUP_ENGINE_MODEL_CACHE_DIR", str(ROOT / ".cache" / "models"))


def start_engine(data_dir: Path, port: int, api_key: str | None = ENGINE_KEY) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        TUNEUP_ENGINE_DATA_DIR=str(data_dir),
        TUNEUP_ENGINE_PORT=str(port),
        TUNEUP_ENGINE_MODEL_CACHE_DIR=model_cache(),
    )
    if api_key:
        env["TUNEUP_ENGINE_API_KEY"] = api_key
    log = open(data_dir.parent / f"engine-{port}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("engine did not start")


def engine_client(port: int):  # type: ignore[no-untyped-def]
    """The official SDK, strict, against an engine started by `start_engine` on `port`."""
    from openai import OpenAI

    return OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=ENGINE_KEY,
        max_retries=0,
        _strict_response_validation=True,
    )


def stop_engine(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("engine") / "data"
    data.mkdir()
    port = free_port()
    proc = start_engine(data, port)
    yield f"http://127.0.0.1:{port}/v1"
    stop_engine(proc)


@pytest.fixture(scope="session")
def openai_client(engine_url: str):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(
        base_url=engine_url, api_key=ENGINE_KEY, max_retries=0, _strict_response_validation=True
    )


def reference_file(name: str) -> Path:
    """One of the cookbook's public example files in tests/data."""
    path = REFERENCE_DATA / name
    assert path.exists(), f"tests/data/{name} is missing"
    return path


# Waits are bounded by progress, never by a fixed time: a busy machine is slow, not stuck.
STALL_SECONDS = 600  # fail when nothing at all changed for this long
CEILING_SECONDS = 3600  # and in any case after this long


class Progress:
    """Tracks a signature of what is moving; `stalled()` only when it stopped changing."""

    def __init__(self, stall: float = STALL_SECONDS, ceiling: float = CEILING_SECONDS) -> None:
        self.stall, self.ceiling = stall, ceiling
        self.started = self.changed = time.monotonic()
        self.last: object = None

    def saw(self, signature: object) -> None:
        if signature != self.last:
            self.last, self.changed = signature, time.monotonic()

    def stalled(self) -> str | None:
        now = time.monotonic()
        if now - self.changed > self.stall:
            return f"no progress for {self.stall:.0f}s (last seen: {self.last!r})"
        if now - self.started > self.ceiling:
            return f"still running after {self.ceiling:.0f}s (last seen: {self.last!r})"
        return None


def wait_for_job(client, job_id: str, stall: float = STALL_SECONDS):  # type: ignore[no-untyped-def]
    """Wait until the job ends; fail only if it (and the engine's queue ahead of it) stops moving."""
    progress = Progress(stall)
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        events = client.fine_tuning.jobs.list_events(job_id, limit=1).data
        ahead = [(j.id, j.status) for j in client.fine_tuning.jobs.list(limit=5).data]
        progress.saw((job.status, events[0].id if events else None, ahead))
        if problem := progress.stalled():
            raise AssertionError(f"job {job_id}: {problem}")
        time.sleep(0.5)


PG_URL = os.environ.get("TUNEUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_schema_url() -> Iterator[str]:
    try:
        admin = create_engine(normalize_url(PG_URL), connect_args={"connect_timeout": 3})
        schema = f"t_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        yield engine
        engine.dispose()
        return
    gen = _postgres_schema_url()
    url = next(gen)
    engine = open_database(url)
    yield engine
    engine.dispose()
    next(gen, None)
