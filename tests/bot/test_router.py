"""Bad input gets a clear message, never a traceback; permissions hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.context import Context
from bot.providers import Providers
from bot.router import dispatch, parse_text
from bot.settings import Settings
from bot.types import Command
from storage.db import open_database
from storage.models import Job


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings(
        data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_autostart=False
    )
    return Context(settings, open_database(settings.sqlite_url), Providers(settings))


def cmd(name: str, text: str = "", user: str = "U1", admin: bool = False) -> Command:
    return Command(
        platform="slack",
        workspace="T1",
        channel="C1",
        user=user,
        name=name,
        text=text,
        is_admin=admin,
    )


def test_parse_text_splits_args_and_options() -> None:
    assert parse_text('a "b c" epochs=3 suffix=x') == (["a", "b c"], {"epochs": "3", "suffix": "x"})


async def test_unknown_command_lists_the_real_ones(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("/frobnicate"))
    assert "Unknown command `/frobnicate`" in reply.text and "/finetune" in reply.text


async def test_every_command_has_help(ctx: Context) -> None:
    from bot.router import REGISTRY

    for name in REGISTRY:
        reply = await dispatch(ctx, cmd(name, "help"))
        assert f"/{name}" in reply.text
    assert "/validate" in (await dispatch(ctx, cmd("help"))).plain()


async def test_umbrella_command(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("tuneup", "status 99"))
    assert "No job `99`" in reply.text


async def test_bad_arguments_get_usage(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("finetune", "epochs=abc"))
    assert "epochs must be a number" in reply.text and "Usage:" in reply.text
    assert "upload the training file" in (await dispatch(ctx, cmd("validate"))).text
    assert "say which job" in (await dispatch(ctx, cmd("cancel"))).text


async def test_unknown_job_and_no_dataset(ctx: Context) -> None:
    assert "No job `42`" in (await dispatch(ctx, cmd("status", "42"))).text
    assert "No job `ftjob-x`" in (await dispatch(ctx, cmd("cancel", "ftjob-x"))).text
    assert "Upload a training file" in (await dispatch(ctx, cmd("finetune"))).text


async def test_openai_model_without_key_explains(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("ask-model", "model=gpt-4o-mini hello"))
    assert "OPENAI_API_KEY" in reply.text


async def test_provider_down_is_a_plain_message(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("ask-model", "hello there"))
    assert "Can't reach" in reply.text and "Traceback" not in reply.text


async def test_only_owner_or_admin_may_cancel(ctx: Context) -> None:
    with ctx.session() as s:
        job = Job(
            provider="local",
            provider_job_id="ftjob-1",
            platform="slack",
            workspace="T1",
            channel="C1",
            owner="U1",
            base_model="m",
            training_file_id="f",
            status="running",
        )
        s.add(job)
        s.commit()
    refused = await dispatch(ctx, cmd("cancel", f"{job.id} confirm=yes", user="U2"))
    assert "Only the owner" in refused.text
    asked = await dispatch(ctx, cmd("cancel", str(job.id), user="U2", admin=True))
    assert asked.buttons and asked.buttons[0].command == f"/cancel {job.id} confirm=yes"
    # The admin confirms; the provider is down, which must read as a plain message.
    done = await dispatch(ctx, cmd("cancel", f"{job.id} confirm=yes", user="U2", admin=True))
    assert "Can't reach" in done.text
