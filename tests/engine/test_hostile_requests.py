"""Hostile requests can't hurt the engine: the key and the body size are checked before reading.

A dedicated engine runs with its own TMPDIR, so what a request spools to disk is measured, and
its resident memory is read from /proc (psutil) before and after.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from openai import OpenAI

from engine.api import create_app
from engine.settings import EngineSettings
from engine.store import Store
from tests.conftest import ENGINE_KEY, free_port, start_engine, stop_engine, wait_for_job

BIG = 200 * 2**20  # far over the JSON cap; under the upload cap, which the key check precedes


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, psutil.Process, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    spool = root / "tmpdir"
    spool.mkdir()
    (root / "data").mkdir()
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(spool))
        proc = start_engine(root / "data", port)
    yield port, psutil.Process(proc.pid), spool
    stop_engine(proc)


def disk_use(*dirs: Path) -> int:
    return sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())


def send_body(port: int, head: str, total: int) -> tuple[int, int]:
    """Send `head` then up to `total` body bytes; return (HTTP status, bytes the server took)."""
    sent = 0
    chunk = b"x" * 2**20
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head.encode())
        try:
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except (ConnectionResetError, TimeoutError):
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, sent


def request_head(path: str, length: int, ctype: str, key: str | None) -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/v1/files", "multipart/form-data; boundary=x"),
        ("/v1/chat/completions", "application/json"),
        ("/v1/fine_tuning/jobs", "application/json"),
    ],
)
def test_unauthenticated_big_body_is_refused_unread(engine, path: str, ctype: str) -> None:  # type: ignore[no-untyped-def]
    port, proc, spool = engine
    rss_before, disk_before = proc.memory_info().rss, disk_use(spool)
    status, _ = send_body(port, request_head(path, BIG, ctype, key=None), BIG)
    assert status == 401
    grown = proc.memory_info().rss - rss_before
    assert grown < 64 * 2**20, f"engine grew {grown / 2**20:.0f} MB"
    assert disk_use(spool) - disk_before < 2**20


def test_authenticated_oversized_json_is_refused_by_its_declared_length(engine) -> None:  # type: ignore[no-untyped-def]
    port, proc, _ = engine
    rss_before = proc.memory_info().rss
    status, _ = send_body(
        port, request_head("/v1/chat/completions", BIG, "application/json", ENGINE_KEY), BIG
    )
    assert status == 413
    assert proc.memory_info().rss - rss_before < 64 * 2**20


def test_chunked_body_is_cut_off_at_the_cap(engine) -> None:  # type: ignore[no-untyped-def]
    port, _, _ = engine

    def body() -> Iterator[bytes]:
        yield b'{"model": "x", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"a" * 2**20

    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        content=body(),
        headers={"Authorization": f"Bearer {ENGINE_KEY}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_health_says_nothing_about_models(engine) -> None:  # type: ignore[no-untyped-def]
    port, _, _ = engine
    assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}


def test_long_prompt_is_refused_with_a_clear_answer(engine) -> None:  # type: ignore[no-untyped-def]
    port, _, _ = engine
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=ENGINE_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "word " * 32000}],
            max_tokens=4,
        )
    assert caught.value.code == "context_length_exceeded"
    assert "accepts at most" in caught.value.message


def test_file_with_unreadable_number_fails_the_job_with_its_line(openai_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    lines = [json.dumps(good)] * 12
    lines.append(
        '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": '
        + "9" * 5000
        + "}]}"
    )
    path = tmp_path / "bigint.jsonl"
    path.write_text("\n".join(lines) + "\n")
    file = openai_client.files.create(file=path.open("rb"), purpose="fine-tune")
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=file.id
    )
    done = wait_for_job(openai_client, job.id)
    assert done.status == "failed"
    assert done.error.code == "invalid_file" and "Line 13" in done.error.message


def test_jobs_left_validating_are_validated_again_at_start(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    settings = EngineSettings(data_dir=tmp_path)
    settings.ensure_dirs()
    store = Store(settings.db_path)
    job = {
        "id": "ftjob-stuck",
        "status": "validating_files",
        "training_file": "file-gone",
        "method": {"type": "supervised"},
    }
    store.add_job(job, {})
    with TestClient(create_app(settings, store)):
        deadline = time.monotonic() + 60
        while store.status_of("ftjob-stuck") == "validating_files" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert store.status_of("ftjob-stuck") == "failed"
    assert "was deleted" in store.get_job("ftjob-stuck")["error"]["message"]
