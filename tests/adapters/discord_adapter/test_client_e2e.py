"""The real discord.py client (REST + gateway) against the strict fake Discord."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.demo import sample_dataset
from bot.types import Reply
from storage import repo
from storage.models import Job, Outbox
from tests.adapters.discord_adapter.conftest import DiscordEnv
from tests.adapters.slack_adapter.conftest import wait_for
from tests.conftest import STALL_SECONDS
from tests.fakes.discord_api import ADMIN, ADMIN_ROLE, BOB, BOT_TOKEN, CHANNEL_ID, GUILD_ID, member


def att_option(att: dict) -> list[dict]:
    return [{"name": "file", "type": 11, "value": att["id"]}]


async def test_login_identifies_and_syncs_commands(discord_env: DiscordEnv) -> None:
    fake = discord_env.fake
    assert fake.identify is not None and fake.identify["token"] == BOT_TOKEN
    synced = await wait_for(lambda: fake.commands.get("global"))
    names = {c["name"] for c in synced}
    import bot.commands  # noqa: F401
    from bot.router import REGISTRY

    assert names == set(REGISTRY) | {"tuneup"}
    validate = next(c for c in synced if c["name"] == "validate")
    assert [o["name"] for o in validate["options"]] == [
        "file",
        "model",
        "dataset",
        "fixed",
        "apply",
    ]
    assert validate["options"][0]["type"] == 11  # an attachment, optional: dataset= works too
    assert next(o for o in validate["options"] if o["name"] == "model")["autocomplete"]


async def test_help_is_deferred_ephemeral_then_answered(discord_env: DiscordEnv) -> None:
    fake = discord_env.fake
    await fake.dispatch("INTERACTION_CREATE", fake.slash("help"))
    answered = await wait_for(lambda: [m for m in fake.messages.values() if m.content])
    assert fake.callbacks[0]["type"] == 5 and fake.callbacks[0]["data"]["flags"] == 64
    assert "/finetune" in answered[0].content and answered[0].ephemeral


async def test_validate_attachment_gives_report_embed_and_files(
    discord_env: DiscordEnv, tmp_path: Path
) -> None:
    fake = discord_env.fake
    data = sample_dataset(tmp_path / "r.jsonl", n=24).read_bytes()
    # one broken line and a duplicate, so there are problems with line numbers and a fixed file
    data += b'{"messages": [{"role": "user", "content": "hi"}\n' + data.splitlines(True)[0]
    att = fake.attachment("reviews.jsonl", data)
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash("validate", att_option(att), attachments=[att])
    )
    report = await wait_for(lambda: fake.find("reviews.jsonl"))
    assert fake.callbacks[0]["type"] == 5 and not fake.callbacks[0].get("data", {}).get("flags")
    problems = next(e for e in report[0].embeds if e.get("title") == "Problems")
    assert "line 25" in problems["description"] and "line 26" in problems["description"]
    fields = {f["name"]: f["value"] for e in report[0].embeds for f in e.get("fields", [])}
    assert fields["Examples"] == "25" and fields["Cost"] == "free on the local engine"
    assert "reviews.report.json" in report[0].files
    assert json.loads(report[0].files["reviews.report.json"])["issues"]
    labels = {b["label"]: b["custom_id"] for b in report[0].buttons()}
    assert "Download fixed file" in labels
    assert "Start fine-tune" not in labels  # the broken line blocks training until fixed
    # the fixed file comes attached, and again from its button
    assert report[0].files["reviews.fixed.jsonl"].count(b"\n") == 24
    await fake.dispatch("INTERACTION_CREATE", fake.click(report[0], labels["Download fixed file"]))
    fixed = await wait_for(
        lambda: [m for m in fake.messages.values() if m.content.startswith("📎 Fixed copy")]
    )
    assert fixed[0].files["reviews.fixed.jsonl"] == report[0].files["reviews.fixed.jsonl"]


async def test_bad_input_gets_specific_private_answers(discord_env: DiscordEnv) -> None:
    fake = discord_env.fake
    cases = [
        (fake.attachment("chart.png", b"\x89PNG...."), "not a training file"),
        (fake.attachment("big.jsonl", b"x" * (2 * 2**20)), "limit"),
    ]
    for att, expected in cases:
        await fake.dispatch(
            "INTERACTION_CREATE", fake.slash("validate", att_option(att), attachments=[att])
        )
        answer = await wait_for(
            lambda e=expected: [m for m in fake.messages.values() if e in m.content]
        )
        assert answer[0].ephemeral and "Traceback" not in answer[0].content
    assert fake.cdn_hits == []  # neither was downloaded
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash("cancel", [{"name": "job", "type": 3, "value": "77"}])
    )
    unknown = await wait_for(lambda: fake.find("77"))
    assert unknown[0].ephemeral and "/status" in unknown[0].content
    await fake.dispatch("INTERACTION_CREATE", fake.slash("finetune"))
    nothing = await wait_for(lambda: fake.find("No file to train on"))
    assert nothing[0].ephemeral
    # the public "thinking…" was replaced by the private answer
    assert any(m.deleted for m in fake.messages.values())


async def test_attachment_on_a_foreign_host_is_refused(discord_env: DiscordEnv) -> None:
    fake = discord_env.fake
    att = fake.attachment("train.jsonl", b'{"messages": []}\n', host="https://evil.example.com/")
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash("validate", att_option(att), attachments=[att])
    )
    refused = await wait_for(lambda: fake.find("Refused to download"))
    assert "evil.example.com" in refused[0].content and fake.cdn_hits == []


async def test_file_dropped_in_upload_channel_is_checked(
    discord_env: DiscordEnv, tmp_path: Path
) -> None:
    fake = discord_env.fake
    att = fake.attachment("drop.jsonl", sample_dataset(tmp_path / "d.jsonl", n=12).read_bytes())
    message = {
        "id": "77001",
        "channel_id": str(CHANNEL_ID),
        "guild_id": str(GUILD_ID),
        "author": {"id": str(BOB), "username": "bob", "discriminator": "0", "avatar": None},
        "member": member(BOB, "bob"),
        "content": "",
        "timestamp": "2026-11-24T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [att],
        "embeds": [],
        "pinned": False,
        "type": 0,
    }
    await fake.dispatch("MESSAGE_CREATE", message)
    report = await wait_for(lambda: fake.find("drop.jsonl"))
    assert report[0].via == "channel" and "drop.report.json" in report[0].files


async def test_platform_errors_are_retried_through_the_outbox(discord_env: DiscordEnv) -> None:
    env = discord_env
    with env.core.ctx.session() as session:
        repo.enqueue(
            session,
            Outbox(
                key="test:forbidden",
                platform="discord",
                workspace=str(GUILD_ID),
                channel=str(CHANNEL_ID),
                payload=Reply(text="hello after an outage").model_dump_json().encode(),
            ),
        )
        session.commit()
    env.fake.fail_next.append((403, {"message": "Missing Access", "code": 50001}, {}))
    assert await env.core.notifier.deliver_pending() == 0
    with env.core.ctx.session() as session:
        row = session.get(Outbox, 1)
        row.next_attempt_at = row.created_at  # due again now
        session.add(row)
        session.commit()
    assert await env.core.notifier.deliver_pending() == 1
    assert await env.core.notifier.deliver_pending() == 0
    assert [m.content for m in env.fake.in_channel(CHANNEL_ID)] == ["hello after an outage"]


async def test_long_reply_is_split_within_limits(discord_env: DiscordEnv) -> None:
    from bot.types import Section, Target

    env = discord_env
    reply = Reply(
        text="x" * 2500,
        sections=[
            Section(title="t", text="y" * 5000, fields=[(f"k{i}", "v" * 900) for i in range(40)])
        ]
        * 4,
    )
    await env.client.sender.post(
        Target(platform="discord", workspace=str(GUILD_ID), channel=str(CHANNEL_ID)), reply
    )
    assert env.fake.errors == []
    posted = env.fake.in_channel(CHANNEL_ID)[0]
    assert len(posted.content) <= 2000 and "message.txt" in posted.files
    assert b"y" * 5000 in posted.files["message.txt"]


@pytest.mark.slow
async def test_finetune_button_thread_progress_summary(
    discord_env: DiscordEnv, engine_url: str, tmp_path: Path
) -> None:
    env, fake = discord_env, discord_env.fake
    att = fake.attachment("reviews.jsonl", sample_dataset(tmp_path / "r.jsonl", n=24).read_bytes())
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash("validate", att_option(att), attachments=[att])
    )
    report = await wait_for(lambda: fake.find("(dataset 1)"))
    start = next(b for b in report[0].buttons() if b["label"] == "Start fine-tune")

    # the button asks first, showing the estimated cost, privately
    await fake.dispatch("INTERACTION_CREATE", fake.click(report[0], start["custom_id"]))
    confirm = await wait_for(
        lambda: [
            m
            for m in fake.messages.values()
            if m.via == "callback" and m.content.startswith("Start a fine-tune")
        ]
    )
    assert confirm[0].ephemeral and "free on the local engine" in confirm[0].content
    go = confirm[0].buttons()[0]
    assert go["custom_id"] == "tuneup:run:/finetune dataset=1"
    go["custom_id"] += " epochs=2 batch=4"  # keep the test short
    await fake.dispatch("INTERACTION_CREATE", fake.click(confirm[0], go["custom_id"]))
    started = await wait_for(lambda: fake.find("Started job 1"))
    thread_id = await wait_for(lambda: next(iter(fake.threads), None))
    assert thread_id == started[0].id and fake.threads[thread_id] == str(CHANNEL_ID)

    def stored_thread() -> str | None:  # written after Discord made the thread: wait for it
        with env.core.ctx.session() as s:
            return s.get(Job, 1).thread

    assert await wait_for(stored_thread) == thread_id
    with env.core.ctx.session() as s:
        assert s.get(Job, 1).workspace == str(GUILD_ID)

    # a non-owner cannot cancel; an admin (role) is asked to confirm
    job_opt = [{"name": "job", "type": 3, "value": "1"}]
    await fake.dispatch("INTERACTION_CREATE", fake.slash("cancel", job_opt, who=member(BOB, "bob")))
    refused = await wait_for(lambda: fake.find("Only"))
    assert refused[0].ephemeral and "owner" in refused[0].content
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash("cancel", job_opt, who=member(ADMIN, "root", [ADMIN_ROLE]))
    )
    asked = await wait_for(lambda: fake.find("Cancel job 1"))
    assert asked[0].buttons()[0]["custom_id"] == "tuneup:run:/cancel 1 confirm=yes"

    # progress: one message in the job's thread, edited in place; summary with the chart
    assert await env.core.poll_until_idle(STALL_SECONDS, interval=0.5)
    in_thread = fake.in_channel(thread_id)
    progress = [m for m in in_thread if m.edits]
    assert len(progress) == 1 and any("12/12" in e["content"] for e in progress[0].edits)
    summary = [m for m in in_thread if "finished" in m.content]
    assert len(summary) == 1
    charts = [n for n in summary[0].files if n.endswith(".png")]
    assert charts and summary[0].files[charts[0]].startswith(b"\x89PNG")
    line = [m for m in fake.in_channel(CHANNEL_ID) if m.content.startswith("<@4001>")]
    assert len(line) == 1 and "succeeded" in line[0].content
    # progress used channel/message ids, never the interaction token
    assert all(
        not path.startswith("/webhooks") for method, path, _ in fake.requests if method == "PATCH"
    )
    assert fake.errors == []


def test_readme_invite_url_carries_the_permissions_the_bot_needs() -> None:
    from adapters.discord_adapter.client import PERMISSIONS, invite_url
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert f"permissions={PERMISSIONS.value}" in readme
    assert invite_url(42).endswith(
        f"scope=bot+applications.commands&permissions={PERMISSIONS.value}"
    )
    assert PERMISSIONS.create_public_threads and PERMISSIONS.attach_files


async def test_rate_limit_is_waited_out_and_posted_once(discord_env: DiscordEnv) -> None:
    from bot.types import Target

    env = discord_env
    env.fake.fail_next.append(
        (
            429,
            {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
            {"Retry-After": "0.2", "X-RateLimit-Scope": "user", "Via": "1.1 google"},
        )
    )
    target = Target(platform="discord", workspace=str(GUILD_ID), channel=str(CHANNEL_ID))
    await env.client.sender.post(target, Reply(text="after the limit"))
    posts = [r for r in env.fake.requests if r[0] == "POST" and r[1].endswith("/messages")]
    assert len(posts) == 2  # refused once, then sent
    assert [m.content for m in env.fake.in_channel(CHANNEL_ID)] == ["after the limit"]


async def test_commands_sync_to_configured_guilds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio

    from adapters.discord_adapter.client import TuneupDiscord
    from bot.core import BotCore
    from bot.settings import Settings
    from tests.fakes.discord_api import DiscordFake

    fake = await DiscordFake().start()
    fake.patch(monkeypatch)
    core = BotCore(
        Settings(data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_autostart=False)
    )
    client = TuneupDiscord(core, guilds=[GUILD_ID], guild_ready_timeout=0.05)
    task = asyncio.create_task(client.start(BOT_TOKEN))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 15)
        synced = await wait_for(lambda: fake.commands.get(str(GUILD_ID)))
        assert {c["name"] for c in synced} >= {"validate", "finetune", "cancel"}
        assert "global" not in fake.commands or not fake.commands["global"]
    finally:
        await client.close()
        task.cancel()
        await core.stop()
        await fake.stop()


async def test_job_ids_autocomplete_from_storage(discord_env: DiscordEnv) -> None:
    env, fake = discord_env, discord_env.fake
    with env.core.ctx.session() as session:
        for i, (guild, status) in enumerate(
            [(GUILD_ID, "running"), (GUILD_ID, "succeeded"), (999, "running")]
        ):
            repo.add(
                session,
                Job(
                    provider="local",
                    provider_job_id=f"ftjob-{i}",
                    platform="discord",
                    workspace=str(guild),
                    channel=str(CHANNEL_ID),
                    owner="4001",
                    base_model="smollm2-135m-instruct",
                    training_file_id="file-1",
                    status=status,
                ),
            )
        session.commit()
    await fake.dispatch("INTERACTION_CREATE", fake.autocomplete("cancel", "job", ""))
    answer = await wait_for(lambda: [c for c in fake.callbacks if c.get("type") == 8])
    choices = answer[0]["data"]["choices"]
    assert [c["value"] for c in choices] == ["2", "1"]  # newest first, this guild only
    assert choices[0]["name"].startswith("#2 · succeeded")
