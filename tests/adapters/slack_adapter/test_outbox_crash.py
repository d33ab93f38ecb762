"""kill -9 at each point of a delivery: after the post, mid-upload, after the first progress post.

A child process delivers the outbox through the real SlackSender to the strict Slack fake (which
runs here, so it outlives the child) and kills itself at one exact point. Then a fresh notifier
delivers again, after the lease ran out: every notification appears exactly once, with its files
exactly once, and the progress message is edited, never posted twice.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update
from sqlmodel import Session

from adapters.slack_adapter.sender import SlackSender
from bot.notifier import Notifier
from bot.types import FileOut, Reply
from storage import repo
from storage.db import open_database
from storage.models import Job, Outbox, utcnow
from tests.conftest import ROOT
from tests.fakes.slack_api import BOT_TOKEN, SlackApiFake

PNG = b"\x89PNG\r\n\x1a\n" + b"chart" * 100

CHILD = """
import asyncio, os, signal, sys
from slack_sdk.web.async_client import AsyncWebClient
from adapters.slack_adapter.sender import SlackSender
from bot.notifier import Notifier
from storage.db import open_database

url, api, point = sys.argv[1:4]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

original_post = SlackSender.post

async def post_then_die(self, target, reply):
    await original_post(self, target, reply)
    die()

if point == "upload":
    SlackSender.upload = die            # the message is posted, its chart is not
elif point in ("post", "progress"):
    SlackSender.post = post_then_die    # posted at Slack, not yet recorded here

async def main():
    notifier = Notifier(open_database(url))
    notifier.register(SlackSender(AsyncWebClient(token=sys.argv[4], base_url=api)))
    await notifier.deliver_pending()

asyncio.run(main())
"""


def seed_job(db) -> int:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        job = Job(
            provider="local",
            provider_job_id="ftjob-1",
            platform="slack",
            workspace="T1",
            channel="C1",
            owner="U1",
            base_model="m",
            training_file_id="file-1",
            status="running",
        )
        repo.add(s, job)
        s.commit()
        return job.id


def enqueue(db, job_id: int, key: str, reply: Reply, kind: str = "post") -> None:  # type: ignore[no-untyped-def]
    with Session(db) as s:
        if kind == "progress":
            repo.supersede_progress(s, job_id)
        row = Outbox(
            key=key,
            job_id=job_id,
            platform="slack",
            workspace="T1",
            channel="C1",
            kind=kind,
            payload=reply.model_dump_json().encode(),
        )
        repo.enqueue(s, row)
        s.commit()


async def crash_child(url: str, api: str, point: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        api,
        point,
        BOT_TOKEN,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert await asyncio.wait_for(proc.wait(), 120) == -9


def expire_leases(db) -> None:  # type: ignore[no-untyped-def]
    """What waiting out the 120 s lease does, without the wait."""
    with Session(db) as s:
        s.execute(update(Outbox).values(next_attempt_at=utcnow()))
        s.commit()


async def restart_and_deliver(db, fake: SlackApiFake) -> None:  # type: ignore[no-untyped-def]
    expire_leases(db)
    notifier = Notifier(db)
    notifier.register(SlackSender(AsyncWebClient(token=BOT_TOKEN, base_url=fake.base + "api/")))
    await notifier.deliver_pending()
    with Session(db) as s:
        assert repo.pending_count(s) == 0


@pytest.fixture
async def fake():  # type: ignore[no-untyped-def]
    fake = await SlackApiFake().start()
    yield fake
    await fake.stop()


@pytest.mark.parametrize("point", ["post", "upload"])
async def test_summary_and_chart_once_after_kill(
    tmp_path: Path, fake: SlackApiFake, point: str
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = open_database(url)
    job_id = seed_job(db)
    summary = Reply(
        text="✅ job 1 finished", files=[FileOut(name="loss.png", data=PNG, mime="image/png")]
    )
    enqueue(db, job_id, "job:1:summary", summary)
    await crash_child(url, fake.base + "api/", point)
    assert [m.text for m in fake.messages] == ["✅ job 1 finished"]  # posted before the kill
    assert not any(m.files for m in fake.messages)
    await restart_and_deliver(db, fake)
    assert [m.text for m in fake.messages if m.text] == ["✅ job 1 finished"]
    charts = [f for m in fake.messages for f in m.files]
    assert [f["name"] for f in charts] == ["loss.png"] and charts[0]["data"] == PNG
    assert fake.errors == []


async def test_first_progress_post_killed_before_commit_is_adopted(
    tmp_path: Path, fake: SlackApiFake
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = open_database(url)
    job_id = seed_job(db)
    enqueue(
        db, job_id, "job:1:progress:running:e1", Reply(text="job 1 · running · 1/12"), "progress"
    )
    await crash_child(url, fake.base + "api/", "progress")
    assert len(fake.in_channel("C1")) == 1
    with Session(db) as s:  # the crash left only the intent to post
        job = s.get(Job, job_id)
        assert "id" not in job.progress_ref
        job.progress_ref = {"posting_since": time.time() - 120}  # an old intent, as after a restart
        s.add(job)
        s.commit()
    enqueue(
        db, job_id, "job:1:progress:running:e2", Reply(text="job 1 · running · 6/12"), "progress"
    )
    await restart_and_deliver(db, fake)
    posted = fake.in_channel("C1")
    assert len(posted) == 1, [m.text for m in posted]  # adopted, not posted again
    assert posted[0].edits and posted[0].edits[-1]["text"] == "job 1 · running · 6/12"
    with Session(db) as s:
        assert s.get(Job, job_id).progress_ref["id"] == posted[0].ts
