"""Private data stays where it was created: every command and autocomplete, tried with foreign ids.

A dataset and a job (with its tuned model) are created by U1 in private channel C1 of Slack
workspace T1, and by user A in a Discord DM. Then every lookup is tried from another channel,
another workspace and another DM: each answer must be exactly the answer for an id that does not
exist. The owner and the workspace's admins still see them from elsewhere in the workspace.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.discord_adapter.client import workspace_of
from bot import choices
from bot.context import Context
from bot.providers import Providers
from bot.router import dispatch
from bot.settings import Settings
from bot.types import Command
from storage import repo
from storage.db import open_database
from storage.models import Dataset, Job

MODEL = "ft:smollm2-135m-instruct:local:secret:abcd1234"
MISSING = 987654


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings(
        data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_autostart=False
    )
    return Context(settings, open_database(settings.sqlite_url), Providers(settings))


def seed(ctx: Context, platform: str, workspace: str, channel: str, user: str) -> tuple[int, int]:
    fixed = ctx.settings.data_dir / f"{workspace}-{channel}.fixed.jsonl"
    fixed.write_text('{"messages": []}\n')
    with ctx.session() as s:
        dataset = Dataset(
            sha256="x",
            filename="private.jsonl",
            size=1,
            platform=platform,
            workspace=workspace,
            channel=channel,
            uploaded_by=user,
            path=str(fixed),
            fixed_path=str(fixed),
            ok=True,
            report={"issues": [], "estimate": {}},
        )
        repo.add(s, dataset)
        job = Job(
            provider="local",
            provider_job_id=f"ftjob-{workspace}-{channel}",
            platform=platform,
            workspace=workspace,
            channel=channel,
            owner=user,
            base_model="smollm2-135m-instruct",
            training_file_id="file-1",
            dataset_id=dataset.id,
            status="succeeded",
            fine_tuned_model=MODEL if platform == "slack" else MODEL + "-dm",
        )
        repo.add(s, job)
        s.commit()
        return dataset.id, job.id


def command(where: tuple[str, str, str, str], name: str, text: str, admin: bool = False) -> Command:
    platform, workspace, channel, user = where
    return Command(platform, workspace, channel, user, name, text, is_admin=admin)


def lines_for(dataset: int, job: int, model: str) -> list[tuple[str, str]]:
    return [
        ("validate", f"dataset={dataset}"),
        ("validate", f"dataset={dataset} fixed=yes"),
        ("finetune", f"dataset={dataset}"),
        ("status", str(job)),
        ("cancel", str(job)),
        ("ask-model", f"model={model} hello"),
    ]


async def answer(ctx: Context, where: tuple, name: str, text: str) -> str:
    reply = await dispatch(ctx, command(where, name, text))
    return reply.plain() + "".join(f.name for f in reply.files)


def normalised(text: str, *ids: object) -> str:
    for ident in ids:
        text = re.sub(rf"\b{re.escape(str(ident))}\b", "ID", text)
    return text


OWNER_SLACK = ("slack", "T1", "C1", "U1")
FOREIGN_SLACK = [
    ("slack", "T1", "C2", "U2"),  # another channel of the same workspace
    ("slack", "T2", "C1", "U1"),  # another workspace (same ids, other team)
    ("discord", "T1", "C1", "U1"),  # another platform
]


@pytest.mark.parametrize("where", FOREIGN_SLACK)
async def test_foreign_ids_answer_like_missing_ones(ctx: Context, where: tuple) -> None:
    dataset, job = seed(ctx, *OWNER_SLACK)
    foreign = lines_for(dataset, job, MODEL)
    missing = lines_for(MISSING, MISSING, MODEL.replace("secret", "nothere"))
    for (name, text), (_, missing_text) in zip(foreign, missing, strict=True):
        seen = await answer(ctx, where, name, text)
        expected = await answer(ctx, where, name, missing_text)
        assert "private" not in seen and "ftjob-" not in seen, (name, seen)
        assert normalised(seen, dataset, job, MODEL) == normalised(
            expected, MISSING, MODEL.replace("secret", "nothere")
        ), (name, text)


async def test_owner_and_admin_see_it_from_another_channel(ctx: Context) -> None:
    dataset, job = seed(ctx, *OWNER_SLACK)
    for where, admin in ((("slack", "T1", "C2", "U1"), False), (("slack", "T1", "C9", "U9"), True)):
        status = await dispatch(ctx, command(where, "status", str(job), admin=admin))
        assert "succeeded" in status.plain()
        fixed = await dispatch(
            ctx, command(where, "validate", f"dataset={dataset} fixed=yes", admin)
        )
        assert fixed.files and fixed.files[0].name == "private.fixed.jsonl"


def test_autocomplete_follows_the_same_rule(ctx: Context) -> None:
    seed(ctx, *OWNER_SLACK)
    outsider = command(("slack", "T1", "C2", "U2"), "status", "")
    owner_elsewhere = command(("slack", "T1", "C2", "U1"), "status", "")
    assert choices.job_choices(ctx, outsider, "") == []
    assert choices.dataset_choices(ctx, outsider, "") == []
    assert MODEL not in choices.model_choices(ctx, outsider, "")
    assert len(choices.job_choices(ctx, owner_elsewhere, "")) == 1
    assert len(choices.dataset_choices(ctx, owner_elsewhere, "")) == 1
    assert MODEL in choices.model_choices(ctx, owner_elsewhere, "")


async def test_discord_dms_are_one_tenant_per_user(ctx: Context) -> None:
    a_ws, b_ws = workspace_of(None, 111), workspace_of(None, 222)
    assert a_ws != b_ws and workspace_of(42, 111) == "42"
    dataset, job = seed(ctx, "discord", a_ws, "DM-A", "111")
    b = ("discord", b_ws, "DM-B", "222")
    cmd_b = command(b, "status", "")
    assert choices.dataset_choices(ctx, cmd_b, "") == []
    assert choices.job_choices(ctx, cmd_b, "") == []
    assert MODEL + "-dm" not in choices.model_choices(ctx, cmd_b, "")
    foreign = lines_for(dataset, job, MODEL + "-dm")
    missing = lines_for(MISSING, MISSING, MODEL + "-nothere")
    for (name, text), (_, missing_text) in zip(foreign, missing, strict=True):
        seen = await answer(ctx, b, name, text)
        expected = await answer(ctx, b, name, missing_text)
        assert normalised(seen, dataset, job, MODEL + "-dm") == normalised(
            expected, MISSING, MODEL + "-nothere"
        ), (name, text)
    models = await dispatch(ctx, command(b, "models", ""))
    assert "-dm" not in models.plain()
