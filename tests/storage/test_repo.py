"""The storage suite runs on SQLite and on the real PostgreSQL (skipped when unreachable)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlmodel import Session

from storage import repo
from storage.db import open_database
from storage.models import Job, Outbox


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
        t1 = repo.Scope("slack", "T1", "C1", "U1")
        assert repo.find_job(s, t1, str(a.id)).id == a.id
        assert repo.find_job(s, t1, str(b.id)) is None
        assert repo.find_job(s, repo.Scope("discord", "T1", "C1", "U1"), a.provider_job_id) is None
        assert repo.find_job(s, repo.Scope("slack", "T2", "C1", "U1"), f"#{b.id}").id == b.id
        assert repo.find_job(s, t1, "1" + "0" * 26) is None
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
        due = []
        while (claimed := repo.claim_due(s, ["slack"])) is not None:
            due.append(claimed.key)
        assert due == ["k1", "p2"]


def test_seen_events_dedupe(db) -> None:  # type: ignore[no-untyped-def]
    assert repo.claim_event(db, "slack:Ev1")
    assert not repo.claim_event(db, "slack:Ev1")  # being handled
    assert repo.claim_event(db, "slack:Ev1", lease_seconds=0)  # its handler died: taken again
    repo.finish_event(db, "slack:Ev1")
    assert not repo.claim_event(db, "slack:Ev1", lease_seconds=0)  # handled: never again


def test_migrations_are_repeatable(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = str(db.url.render_as_string(hide_password=False))
    open_database(url).dispose()  # upgrading an up-to-date schema is a no-op
    with db.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
