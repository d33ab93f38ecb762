"""The engine's durable state: files, jobs, events, checkpoints and models in one SQLite file.

The API process and the trainer process each open their own Store on the same file.
Objects are kept as the JSON the API returns, so reads need no mapping.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, purpose TEXT NOT NULL,
  path TEXT NOT NULL, obj TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, status TEXT NOT NULL,
  obj TEXT NOT NULL, internal TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
  obj TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
  model_id TEXT UNIQUE NOT NULL, path TEXT NOT NULL, obj TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, base TEXT NOT NULL,
  path TEXT NOT NULL, job_id TEXT, obj TEXT NOT NULL);
"""

TERMINAL = ("succeeded", "failed", "cancelled")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # files
    def add_file(self, obj: dict[str, Any], path: Path) -> None:
        self._run(
            "INSERT INTO files (id, purpose, path, obj) VALUES (?, ?, ?, ?)",
            (obj["id"], obj["purpose"], str(path), json.dumps(obj)),
        )

    def get_file(self, file_id: str) -> tuple[dict[str, Any], Path] | None:
        row = self._one("SELECT obj, path FROM files WHERE id = ?", (file_id,))
        return (json.loads(row[0]), Path(row[1])) if row else None

    def list_files(self, purpose: str | None = None) -> list[dict[str, Any]]:
        if purpose:
            rows = self._all(
                "SELECT obj FROM files WHERE purpose = ? ORDER BY seq DESC", (purpose,)
            )
        else:
            rows = self._all("SELECT obj FROM files ORDER BY seq DESC")
        return [json.loads(r[0]) for r in rows]

    def delete_file(self, file_id: str) -> bool:
        return self._run("DELETE FROM files WHERE id = ?", (file_id,)) > 0

    # jobs
    def add_job(self, obj: dict[str, Any], internal: dict[str, Any]) -> None:
        self._run(
            "INSERT INTO jobs (id, status, obj, internal) VALUES (?, ?, ?, ?)",
            (obj["id"], obj["status"], json.dumps(obj), json.dumps(internal)),
        )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT obj FROM jobs WHERE id = ?", (job_id,))
        return json.loads(row[0]) if row else None

    def get_internal(self, job_id: str) -> dict[str, Any]:
        row = self._one("SELECT internal FROM jobs WHERE id = ?", (job_id,))
        return json.loads(row[0]) if row else {}

    def set_internal_key(self, job_id: str, key: str, value: Any) -> None:
        """Change one key: the trainer and the API may both write a job's internal state."""
        self._run(
            "UPDATE jobs SET internal = json_set(internal, ?, json(?)) WHERE id = ?",
            (f"$.{key}", json.dumps(value), job_id),
        )

    def set_internal(self, job_id: str, internal: dict[str, Any]) -> None:
        self._run("UPDATE jobs SET internal = ? WHERE id = ?", (json.dumps(internal), job_id))

    def jobs_continuing_from(self, model_id: str) -> list[str]:
        """Unfinished jobs that train on top of `model_id`."""
        rows = self._all(
            "SELECT id FROM jobs WHERE json_extract(internal, '$.parent_model') = ? "
            "AND status IN ('validating_files', 'queued', 'running')",
            (model_id,),
        )
        return [r[0] for r in rows]

    def job_by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT obj FROM jobs WHERE json_extract(internal, '$.idempotency_key') = ?", (key,)
        )
        return json.loads(row[0]) if row else None

    def list_jobs(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._all("SELECT obj FROM jobs ORDER BY seq DESC")]

    def jobs_with_status(self, status: str) -> list[dict[str, Any]]:
        rows = self._all("SELECT obj FROM jobs WHERE status = ? ORDER BY seq", (status,))
        return [json.loads(r[0]) for r in rows]

    def update_job(
        self, job_id: str, changes: dict[str, Any], *, only_if: tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        """Apply changes atomically; with only_if, only while the job is in one of those states.

        Returns the new object, or None when the guard did not hold. The guard is what lets
        a cancel from the API win over a late status write from the trainer.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT obj, status FROM jobs WHERE id = ?", (job_id,)
                ).fetchone()
                if row is None or (only_if is not None and row[1] not in only_if):
                    self._db.execute("COMMIT")
                    return None
                obj = json.loads(row[0])
                obj.update(changes)
                self._db.execute(
                    "UPDATE jobs SET obj = ?, status = ? WHERE id = ?",
                    (json.dumps(obj), obj["status"], job_id),
                )
                self._db.execute("COMMIT")
                return obj
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def claim_next_queued(self) -> dict[str, Any] | None:
        """Move the oldest queued job to running and return it (FIFO)."""
        with self._lock:
            row = self._one("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1")
            if row is None:
                return None
            return self.update_job(row[0], {"status": "running"}, only_if=("queued",))

    def status_of(self, job_id: str) -> str | None:
        row = self._one("SELECT status FROM jobs WHERE id = ?", (job_id,))
        return row[0] if row else None

    # events
    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        data: dict[str, Any] | None = None,
        type_: str = "message",
    ) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": new_id("ftevent"),
            "object": "fine_tuning.job.event",
            "created_at": now(),
            "level": level,
            "message": message,
            "type": type_,
        }
        if data is not None:
            obj["data"] = data
        self._run(
            "INSERT INTO events (id, job_id, obj) VALUES (?, ?, ?)",
            (obj["id"], job_id, json.dumps(obj)),
        )
        return obj

    def list_events(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._all("SELECT obj FROM events WHERE job_id = ? ORDER BY seq DESC", (job_id,))
        return [json.loads(r[0]) for r in rows]

    # checkpoints
    def add_checkpoint(self, obj: dict[str, Any], path: Path) -> None:
        self._run(
            # a run started again from scratch reaches the same step: the newer one replaces it
            "INSERT OR REPLACE INTO checkpoints (id, job_id, model_id, path, obj) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                obj["id"],
                obj["fine_tuning_job_id"],
                obj["fine_tuned_model_checkpoint"],
                str(path),
                json.dumps(obj),
            ),
        )

    def list_checkpoints(self, job_id: str) -> list[tuple[dict[str, Any], Path]]:
        rows = self._all(
            "SELECT obj, path FROM checkpoints WHERE job_id = ? ORDER BY seq DESC", (job_id,)
        )
        return [(json.loads(r[0]), Path(r[1])) for r in rows]

    def delete_checkpoint(self, ckpt_id: str) -> None:
        self._run("DELETE FROM checkpoints WHERE id = ?", (ckpt_id,))

    def checkpoint_by_model(self, model_id: str) -> tuple[dict[str, Any], Path] | None:
        row = self._one("SELECT obj, path FROM checkpoints WHERE model_id = ?", (model_id,))
        return (json.loads(row[0]), Path(row[1])) if row else None

    # models
    def add_model(self, obj: dict[str, Any], base: str, path: Path, job_id: str | None) -> None:
        self._run(
            "INSERT INTO models (id, base, path, job_id, obj) VALUES (?, ?, ?, ?, ?)",
            (obj["id"], base, str(path), job_id, json.dumps(obj)),
        )

    def get_model(self, model_id: str) -> tuple[dict[str, Any], str, Path] | None:
        row = self._one("SELECT obj, base, path FROM models WHERE id = ?", (model_id,))
        return (json.loads(row[0]), row[1], Path(row[2])) if row else None

    def model_job(self, model_id: str) -> str | None:
        row = self._one("SELECT job_id FROM models WHERE id = ?", (model_id,))
        return row[0] if row else None

    def list_models(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._all("SELECT obj FROM models ORDER BY seq")]

    def delete_model(self, model_id: str) -> bool:
        return self._run("DELETE FROM models WHERE id = ?", (model_id,)) > 0
