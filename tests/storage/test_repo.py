"""The storage suite runs on SQLite and on the real PostgreSQL (skipped when unreachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from storage import repo
from storage.db import normalize_url, open_database
from storage.models import Job, Outbox

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


def make_job(**kw: object) -> Job:
    base = dict(
        provider="local",
        provider_job_id=f"ftjob-{uuid.uuid4().hex}",
        platform="slack",
        workspace="T1",
        channel="C1",
        owner="U1",
        base_model="m",
        training_file_id="file-1",
        status="running",
    )
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


def test_jobs_are_scoped_by_platform_and_workspace(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        a = make_job()
        b = make_job(workspace="T2")
        repo.add(s, a)
        repo.add(s, b)
        s.commit()
        assert repo.find_job(s, "slack", "T1", str(a.id)).id == a.id
        assert repo.find_job(s, "slack", "T1", str(b.id)) is None
        assert repo.find_job(s, "discord", "T1", a.provider_job_id) is None
        assert repo.find_job(s, "slack", "T2", f"#{b.id}").id == b.id
        assert {j.id for j in repo.active_jobs(s)} == {a.id, b.id}


def test_outbox_keys_are_idempotent_and_progress_supersedes(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        job = make_job()
        repo.add(s, job)
        row = dict(job_id=job.id, platform="slack", workspace="T1", channel="C1", payload=b"{}")
        assert repo.enqueue(s, Outbox(key="k1", **row))
        assert not repo.enqueue(s, Outbox(key="k1", **row))
        repo.enqueue(s, Outbox(key="p1", kind="progress", **row))
        repo.supersede_progress(s, job.id)
        repo.enqueue(s, Outbox(key="p2", kind="progress", **row))
        s.commit()
        due = [r.key for r in repo.due_outbox(s)]
        assert due == ["k1", "p2"]


def test_seen_events_dedupe(db) -> None:  # type: ignore[no-untyped-def]
    assert repo.mark_seen(db, "slack:Ev1")
    assert not repo.mark_seen(db, "slack:Ev1")


def test_migrations_are_repeatable(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = str(db.url.render_as_string(hide_password=False))
    open_database(url).dispose()  # upgrading an up-to-date schema is a no-op
    with db.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
