"""The real slack-bolt AsyncApp in HTTP mode, signed requests, against the strict fake Slack."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from adapters.demo import sample_dataset
from bot.types import Reply
from storage import repo
from storage.models import Job, Outbox
from tests.adapters.slack_adapter.conftest import FORM, SlackEnv, buttons_of, wait_for
from tests.conftest import STALL_SECONDS
from tests.fakes.slack_api import BOT_TOKEN


def file_share_event(
    env: SlackEnv, file: dict, user: str = "U1", ts: str = "1699999999.000001"
) -> dict:
    return {
        "type": "message",
        "subtype": "file_share",
        "text": "",
        "user": user,
        "channel": "C1",
        "channel_type": "channel",
        "ts": ts,
        "event_ts": ts,
        "files": [file],
    }


async def test_slash_command_acks_then_replies(slack_env: SlackEnv) -> None:
    env = slack_env
    started = time.monotonic()
    resp = await env.slash("/help")
    assert resp.status == 200
    assert time.monotonic() - started < 3
    hook = await wait_for(lambda: env.fake.hooks)
    assert hook[0]["response_type"] == "ephemeral"
    assert "/finetune" in hook[0]["text"] + json.dumps(hook[0]["blocks"])
    # the umbrella form reaches the same handler
    await env.slash("/tuneup", "help cancel")
    await wait_for(lambda: len(env.fake.hooks) == 2)
    assert "/cancel" in env.fake.hooks[1]["text"]


async def test_replayed_slash_command_is_handled_once(slack_env: SlackEnv) -> None:
    """A correctly signed request sent again within Slack's 5 minutes does nothing twice."""
    env = slack_env
    body = env.slash_body("/help")
    for _ in range(3):
        assert (await env.post(body, FORM)).status == 200
    await wait_for(lambda: env.fake.hooks)
    await env.slash("/help", "cancel")  # a new invocation still works
    await wait_for(lambda: len(env.fake.hooks) >= 2)
    assert len(env.fake.hooks) == 2


async def test_file_event_is_marked_handled_only_after_its_report(slack_env: SlackEnv) -> None:
    """A retry of an upload event whose first handling died is handled; a later one is not."""
    env = slack_env
    env.core.claim_event("slack:EvDied")  # claimed by a handler that then died
    assert not env.core.claim_event("slack:EvDied")  # still within its lease: a retry waits
    data = sample_dataset(Path(env.core.settings.data_dir) / "r.jsonl", n=12).read_bytes()
    file = env.fake.hosted("F9", "reviews.jsonl", data)
    from storage.models import SeenEvent

    with env.core.ctx.session() as s:  # the lease has run out
        row = s.get(SeenEvent, "slack:EvDied")
        row.created_at = row.created_at.replace(year=2000)
        s.add(row)
        s.commit()
    await env.event(file_share_event(env, file), "EvDied")
    await wait_for(lambda: any(m.files for m in env.fake.messages), timeout=60)
    with env.core.ctx.session() as s:
        await wait_for(lambda: s.get(SeenEvent, "slack:EvDied", populate_existing=True).done_at)
    await env.event(file_share_event(env, file), "EvDied")  # Slack's retry after success
    assert not env.core.claim_event("slack:EvDied")
    reports = [m for m in env.fake.messages if "reviews.jsonl" in m.text]
    assert len(reports) == 1


async def test_bad_arguments_get_a_specific_answer(slack_env: SlackEnv) -> None:
    env = slack_env
    await env.slash("/status", "42")
    hook = await wait_for(lambda: env.fake.hooks)
    assert "42" in hook[0]["text"] and "Traceback" not in hook[0]["text"]
    await env.slash("/validate")
    await wait_for(lambda: len(env.fake.hooks) == 2)
    assert "upload the training file" in env.fake.hooks[1]["text"]


async def test_forged_and_replayed_requests_are_refused(slack_env: SlackEnv) -> None:
    env = slack_env
    body = "command=%2Fhelp&text=&team_id=T1&user_id=U1&channel_id=C1"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    }
    async with env.http.post(env.url, data=body, headers=headers) as resp:
        assert resp.status == 401
    replayed = await env.post(body, "application/x-www-form-urlencoded", ts=int(time.time()) - 301)
    assert replayed.status == 401
    async with env.http.post(env.url, data=body) as resp:  # no signature at all
        assert resp.status == 401
    assert env.fake.hooks == [] and env.fake.messages == []


async def test_url_verification(slack_env: SlackEnv) -> None:
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    from tests.adapters.slack_adapter.conftest import signed_headers

    async with slack_env.http.post(
        slack_env.url, data=body, headers=signed_headers(body, "application/json")
    ) as resp:
        assert (await resp.json())["challenge"] == "c-123"


async def test_file_from_another_host_is_refused(slack_env: SlackEnv, tmp_path: Path) -> None:
    env = slack_env
    file = env.fake.hosted("F9", "train.jsonl", b'{"messages": []}\n')
    file["url_private_download"] = "https://evil.example.com/steal/train.jsonl"
    await env.event(file_share_event(env, file), "Ev-evil")
    note = await wait_for(lambda: [m for m in env.fake.messages if m.ephemeral_for == "U1"])
    assert "Refused to download" in note[0].text and "evil.example.com" in note[0].text
    assert env.fake.downloads == []  # the token went nowhere


async def test_missing_files_read_scope_is_explained(slack_env: SlackEnv) -> None:
    env = slack_env
    env.fake.login_page = True
    file = env.fake.hosted("F8", "train.jsonl", b'{"messages": []}\n')
    await env.event(file_share_event(env, file), "Ev-html")
    note = await wait_for(lambda: [m for m in env.fake.messages if m.ephemeral_for == "U1"])
    assert "files:read" in note[0].text


async def test_oversized_upload_is_refused_before_download(slack_env: SlackEnv) -> None:
    env = slack_env
    file = env.fake.hosted("F7", "big.jsonl", b"x" * (2 * 2**20))  # the cap is 1 MB here
    await env.event(file_share_event(env, file), "Ev-big")
    note = await wait_for(lambda: [m for m in env.fake.messages if m.ephemeral_for == "U1"])
    assert "limit" in note[0].text
    assert env.fake.downloads == []


async def test_rate_limited_notification_is_retried_once_through_the_outbox(
    slack_env: SlackEnv,
) -> None:
    env = slack_env
    with env.core.ctx.session() as session:
        row = Outbox(
            key="test:ratelimit",
            platform="slack",
            workspace="T1",
            channel="C1",
            payload=Reply(text="hello after a rate limit").model_dump_json().encode(),
        )
        repo.enqueue(session, row)
        session.commit()
    env.fake.fail_next["chat.postMessage"] = [
        (429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"})
    ]
    assert await env.core.notifier.deliver_pending() == 0
    assert env.fake.messages == []
    assert await env.core.notifier.deliver_pending() == 0  # not due before Retry-After
    time.sleep(1.1)
    assert await env.core.notifier.deliver_pending() == 1
    assert await env.core.notifier.deliver_pending() == 0
    assert [m.text for m in env.fake.messages] == ["hello after a rate limit"]


async def test_long_reply_is_split_and_attached(slack_env: SlackEnv) -> None:
    from bot.types import Section, Target

    env = slack_env
    reply = Reply(
        text="report " + "word " * 1500,
        sections=[Section(fields=[(f"k{i}", "v" * 50) for i in range(120)])] * 3,
    )
    ref = await env.bot.sender.post(Target(platform="slack", workspace="T1", channel="C1"), reply)
    assert env.fake.errors == []
    posted = env.fake.messages[0]
    assert posted.ts == ref.id and len(posted.blocks) <= 50
    attached = await wait_for(lambda: [m for m in env.fake.messages if m.files])
    assert attached[0].files[0]["name"] == "message.txt"
    assert attached[0].thread_ts == ref.id


@pytest.mark.slow
async def test_upload_validate_button_train_progress_summary(
    slack_env: SlackEnv, engine_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env, fake = slack_env, slack_env.fake
    data = sample_dataset(tmp_path / "reviews.jsonl", n=24).read_bytes()
    file = fake.hosted("F1", "reviews.jsonl", data)
    event = file_share_event(env, file)

    # 1. file shared → report in the file's thread, with buttons and the JSON report attached
    assert (await env.event(event, "Ev1")).status == 200
    await env.event(event, "Ev1")  # Slack's retry of the same event does nothing
    await env.event(
        {
            "type": "file_shared",
            "channel_id": "C1",
            "file_id": "F1",
            "user_id": "U1",
            "file": {"id": "F1"},
            "event_ts": "1699999999.000002",
        },
        "Ev1b",
    )
    report = await wait_for(lambda: fake.in_channel("C1", thread="1699999999.000001"))
    await wait_for(lambda: [m for m in fake.messages if m.files])
    time.sleep(0.3)
    assert len(fake.in_channel("C1", thread="1699999999.000001")) == 2  # report + its file
    assert report[0].text.startswith(("✅", "⚠️"))
    start = next(b for b in buttons_of(report[0].blocks) if b["text"]["text"] == "Start fine-tune")
    assert (
        start["style"] == "primary"
        and "free on the local engine" in start["confirm"]["text"]["text"]
    )
    report_file = next(m for m in fake.messages if m.files).files[0]
    assert report_file["name"] == "reviews.report.json" and json.loads(report_file["data"])["ok"]
    assert fake.downloads == [f"Bearer {BOT_TOKEN}"]

    # 2. the click (after Slack's confirm dialog) starts the job in its own top-level thread
    start["value"] = start["value"] + " epochs=2 batch=4"
    await env.click(start, report[0].ts, thread_ts="1699999999.000001")
    announce = await wait_for(
        lambda: [m for m in fake.in_channel("C1") if "Started job 1" in m.text]
    )

    def attached() -> Job | None:  # the thread is stored just after the announcement is posted
        with env.core.ctx.session() as s:
            job = s.get(Job, 1)
            return job if job is not None and job.thread else None

    job = await wait_for(attached)
    assert job.owner == "U1" and job.workspace == "T1" and job.thread == announce[0].ts

    # 3. someone else may not cancel it; a member of the admin user group is asked to confirm
    await env.slash("/cancel", "1", user="U3")
    refused = await wait_for(lambda: fake.hooks)
    assert "only" in refused[0]["text"].lower() and "owner" in refused[0]["text"].lower()
    await env.slash("/cancel", "1", user="U2")
    asked = await wait_for(lambda: fake.hooks[1:])
    assert buttons_of(asked[0]["blocks"])[0]["value"] == "/cancel 1 confirm=yes"

    # 4. progress: one message in the job's thread, edited in place; then summary + chart
    assert await env.core.poll_until_idle(STALL_SECONDS, interval=0.5)
    thread = fake.in_channel("C1", thread=announce[0].ts)
    progress = [m for m in thread if " · " in m.text and "job 1" in m.text and m.edits]
    assert len(progress) == 1
    assert any("12/12" in e["text"] for e in progress[0].edits)
    assert len(fake.method_calls("chat.update")) == len(progress[0].edits)
    summary = [m for m in thread if "finished" in m.text]
    assert len(summary) == 1
    chart = [m for m in thread if m.files and m.files[0]["name"].endswith(".png")]
    assert len(chart) == 1 and chart[0].files[0]["data"].startswith(b"\x89PNG")
    line = [m for m in fake.in_channel("C1") if m.text.startswith("<@U1>")]
    assert len(line) == 1 and "succeeded" in line[0].text

    # the bot token appears in no message and no log line
    outgoing = json.dumps([m.text for m in fake.messages] + [m.blocks for m in fake.messages])
    assert BOT_TOKEN not in outgoing + json.dumps(fake.hooks)
    assert BOT_TOKEN not in caplog.text
    assert fake.errors == []
