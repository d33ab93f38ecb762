"""Validation in a child process with a time and a memory limit.

A hostile upload under the size cap can still cost minutes or gigabytes (a zip bomb, one giant
line, pathological nesting). The validator runs in a spawned child whose address space is
capped (RLIMIT_AS) and which is killed when its time is up; the answer then says which limit
was hit. Whatever goes wrong inside, the caller gets a Report, never an exception.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import resource
import time
import uuid
from pathlib import Path
from typing import Any

from bot.validation.report import Report

log = logging.getLogger("tuneup.validation")
DEFAULT_TIMEOUT_SECONDS = 180.0
DEFAULT_MEMORY_BYTES = 3 * 2**30


def _child(out: Any, memory_bytes: int, path: Path, kwargs: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from bot.validation import validate_file

    try:
        out.put(("ok", validate_file(path, **kwargs)))
    except MemoryError:
        out.put(("memory", None))
    except Exception as exc:  # reported with a reference; details stay in the log
        ref = uuid.uuid4().hex[:8]
        logging.getLogger("tuneup.validation").exception("validator failed (ref %s)", ref)
        out.put(("crash", f"{type(exc).__name__} (reference {ref})"))


def validate_bounded(
    path: Path,
    filename: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    **kwargs: Any,
) -> Report:
    """`validate_file` in a limited child process; a hit limit is an error in the report."""
    name = filename or path.name
    kwargs["filename"] = name
    context = multiprocessing.get_context("spawn")
    results = context.Queue(maxsize=1)
    child = context.Process(target=_child, args=(results, memory_bytes, path, kwargs), daemon=True)
    child.start()
    try:
        kind, value = _wait(child, results, timeout)
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
    if kind == "ok":
        return value
    return _limit_report(name, kind, value, timeout, memory_bytes)


def _wait(child: Any, results: Any, timeout: float) -> tuple[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return results.get(timeout=0.2)
        except queue.Empty:
            pass
        if not child.is_alive():  # died without a word: killed for memory (or a crash)
            try:
                return results.get(timeout=1)
            except queue.Empty:
                return "memory", None
        if time.monotonic() > deadline:
            return "timeout", None


def _limit_report(name: str, kind: str, detail: str | None, timeout: float, memory: int) -> Report:
    report = Report(name)
    if kind == "timeout":
        message = (
            f"Checking `{name}` took longer than the {timeout:.0f} s limit, so it was stopped. "
            "Split the file into smaller ones, or look for giant examples."
        )
    elif kind == "memory":
        message = (
            f"Checking `{name}` needed more than the {memory / 2**30:.1f} GB memory limit, so it "
            "was stopped. Look for giant examples or a compressed file that unpacks huge."
        )
    else:
        message = (
            f"The validator failed on `{name}` ({detail}). Report this to whoever runs tuneup."
        )
    report.add("validation_limit" if kind != "crash" else "validator_failed", "error", message)
    return report
