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


async def test_unexpected_errors_give_a_reference_not_internals(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.router import REGISTRY, CommandSpec

    async def broken(_: Context, __: Command) -> None:
        raise ValueError("'str' object has no attribute 'get' in /srv/tuneup/secret/path.py")

    REGISTRY["broken"] = CommandSpec("broken", "/broken", "fails", "", broken)  # type: ignore[arg-type]
    try:
        reply = await dispatch(ctx, cmd("broken"))
    finally:
        del REGISTRY["broken"]
    assert "inside tuneup" in reply.text and "reference" in reply.text
    for leak in ("ValueError", "attribute", "/srv/", "provider"):
        assert leak not in reply.text
    ref = reply.text.split("`")[1]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)  # operators see it


async def test_provider_errors_name_the_provider_that_failed(tmp_path: Path) -> None:
    """OpenAI pointed at loopback is still OpenAI, never "local"."""
    settings = Settings(
        data_dir=tmp_path,
        engine_url="http://127.0.0.1:9/v1",
        engine_autostart=False,
        openai_api_key="sk-test",
        openai_base_url="http://127.0.0.1:8/v1",
    )
    ctx = Context(settings, open_database(settings.sqlite_url), Providers(settings))
    reply = await dispatch(ctx, cmd("ask-model", "model=gpt-4o-mini hello"))
    assert "Can't reach OpenAI" in reply.text and "local" not in reply.text


@pytest.mark.parametrize("text", ["dataset=1' OR 1=1--", '"unclosed', "a 'b c", "dataset=\"1 ' x"])
async def test_unbalanced_quotes_are_a_usage_message(ctx: Context, text: str) -> None:
    reply = await dispatch(ctx, cmd("validate", text))
    assert reply.text.startswith("⚠️ can't read the arguments") and "Usage:" in reply.text


def test_console_survives_unbalanced_quotes(tmp_path: Path) -> None:
    import io

    from adapters.console_adapter import ConsoleAdapter

    out = io.StringIO()
    adapter = ConsoleAdapter(tmp_path, stream=out)
    assert adapter.parse("/validate dataset=1' OR 1=1--") is None
    assert "quote is not closed" in out.getvalue()
    assert adapter.parse("/status 1' OR 1=1--") is not None  # the router answers this one


async def test_long_prompt_is_refused_before_any_provider_call(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("ask-model", "x" * 32000))
    assert "32,000 characters" in reply.text and "Can't reach" not in reply.text


def test_auto_started_engine_gets_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "TUNEUP_SLACK_BOT_TOKEN": "xoxb-secret",
        "TUNEUP_DISCORD_TOKEN": "discord-secret",
        "OPENAI_API_KEY": "sk-secret",
        "TUNEUP_OPENAI_API_KEY": "sk-secret2",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "TUNEUP_ENGINE_MAX_SEQ_LEN": "512",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    env = Settings(data_dir=tmp_path, engine_api_key="ek").engine_env()
    assert not any("secret" in v for v in env.values())
    assert env["TUNEUP_ENGINE_MAX_SEQ_LEN"] == "512" and env["HF_HUB_OFFLINE"] == "1"
    assert env["TUNEUP_ENGINE_API_KEY"] == "ek" and "PATH" in env
