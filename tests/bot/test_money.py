"""Money: prices resolve by family, unknown is never free, budgets and the pause switch hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import pricing
from bot.context import Context
from bot.providers import Providers
from bot.router import dispatch
from bot.settings import Settings
from bot.types import Command
from storage import repo
from storage.db import open_database
from storage.models import Dataset, Job


def test_dated_snapshots_and_ft_parents_resolve_to_their_family() -> None:
    prices = Settings().prices
    assert pricing.price_per_million("gpt-4o-mini-2024-07-18", prices) == 3.0
    assert pricing.price_per_million("ft:gpt-4o-mini-2024-07-18:acme::abc123", prices) == 3.0
    assert pricing.price_per_million("openai/gpt-4.1-mini-2025-04-14", prices) == 5.0
    assert pricing.price_per_million("together/meta-llama-3-8b", prices) is None


def test_configured_prices_add_to_the_built_in_table() -> None:
    prices = Settings(prices={"meta-llama-3-8b": 0.5}).prices
    assert prices["meta-llama-3-8b"] == 0.5 and prices["gpt-4o-mini"] == 3.0


def test_unknown_price_is_never_free() -> None:
    cost = pricing.estimate("acme/mystery-model", 12_000, {}, local=False)
    assert cost.dollars is None and cost.needs_confirmation
    assert "unknown" in cost.text() and "free" not in cost.text()
    assert pricing.estimate("smollm2", 12_000, {}, local=True).text() == "free (local engine)"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings(
        data_dir=tmp_path,
        engine_url="http://127.0.0.1:9/v1",
        engine_autostart=False,
        openai_api_key="sk-test",
        openai_base_url="http://127.0.0.1:8/v1",  # never called: everything here is refused first
        providers={"acme": {"base_url": "http://127.0.0.1:7/v1", "api_key": "k"}},
    )
    context = Context(settings, open_database(settings.sqlite_url), Providers(settings))
    with context.session() as s:
        repo.add(s, _dataset())
        s.commit()
    return context


def _dataset() -> Dataset:
    return Dataset(
        sha256="x",
        filename="reviews.jsonl",
        size=1,
        platform="slack",
        workspace="T1",
        channel="C1",
        uploaded_by="U1",
        path="/nonexistent",
        ok=True,
        n_examples=100,
        report={"estimate": {"dataset_tokens": 10_000, "n_epochs": 3}, "issues": []},
    )


def cmd(text: str, name: str = "finetune", user: str = "U1", admin: bool = False) -> Command:
    return Command("slack", "T1", "C1", user, name, text, is_admin=admin)


async def test_a_dated_openai_snapshot_asks_with_its_real_price(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("dataset=1 model=gpt-4o-mini-2024-07-18"))
    assert "costs money" in reply.text and "$0.09" in reply.text  # 30,000 tokens at $3/1M
    assert reply.buttons[0].command.endswith("confirm=yes")


async def test_an_unpriced_provider_model_asks_first(ctx: Context) -> None:
    reply = await dispatch(ctx, cmd("dataset=1 model=acme/llama-3-8b epochs=2"))
    assert "price of `acme/llama-3-8b` is unknown" in reply.text and "~20,000" in reply.text
    assert "free" not in reply.text and reply.buttons


async def test_caps_say_which_and_what_is_left(ctx: Context) -> None:
    denied = await dispatch(ctx, cmd("set workspace_tokens=50000", name="budget"))
    assert "Only admins" in denied.text
    shown = await dispatch(
        ctx, cmd("set workspace_tokens=50000 user_dollars=1", name="budget", admin=True)
    )
    assert "workspace_tokens" in shown.plain() and "of 50,000" in shown.plain()
    with ctx.session() as s:
        s.add(_job(estimated_tokens=40_000))
        s.commit()
    refused = await dispatch(ctx, cmd("dataset=1"))  # 30,000 more on the free local engine
    assert "workspace's cap of 50,000 trained tokens this month: 10,000 left" in refused.text
    priced = await dispatch(ctx, cmd("dataset=1 model=gpt-4o-mini epochs=2", user="U2"))
    assert "per-person cap" not in priced.text  # $0.06 fits U2's $1...
    assert "cap of 50,000 trained tokens this month: 10,000 left" in priced.text  # ...20,000 don't
    fits = await dispatch(ctx, cmd("dataset=1 model=gpt-4o-mini epochs=1", user="U2"))
    assert "costs money" in fits.text  # 10,000 fit exactly: asked about the price, not refused
    unknown = await dispatch(ctx, cmd("set workspace_tokens=off", name="budget", admin=True))
    assert "no cap" in unknown.plain()
    mystery = await dispatch(ctx, cmd("dataset=1 model=acme/llama-3-8b"))
    assert "price is unknown" in mystery.text and "dollar cap" in mystery.text


async def test_concurrency_cap_and_pause(ctx: Context) -> None:
    await dispatch(ctx, cmd("set concurrent_jobs=1", name="budget", admin=True))
    with ctx.session() as s:
        s.add(_job(status="running"))
        s.commit()
    busy = await dispatch(ctx, cmd("dataset=1"))
    assert "already runs 1 job(s)" in busy.text
    await dispatch(ctx, cmd("pause quota review until Monday", name="budget", admin=True))
    paused = await dispatch(ctx, cmd("dataset=1"))
    assert "paused" in paused.text and "quota review until Monday" in paused.text
    await dispatch(ctx, cmd("resume", name="budget", admin=True))
    assert "paused" not in (await dispatch(ctx, cmd("dataset=1"))).text


def _job(**kw: object) -> Job:
    fields = dict(
        provider="local",
        provider_job_id=f"ftjob-{kw.get('status', 'succeeded')}",
        platform="slack",
        workspace="T1",
        channel="C1",
        owner="U1",
        base_model="m",
        training_file_id="f",
        status="succeeded",
    )
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


async def test_rate_limit_per_person(ctx: Context) -> None:
    ctx.settings.rate_limit_per_minute = 3
    replies = [await dispatch(ctx, cmd("", name="status")) for _ in range(4)]
    assert "a lot of commands" in replies[-1].text and "a lot" not in replies[0].text
    other = await dispatch(ctx, cmd("", name="status", user="U2"))
    assert "a lot" not in other.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epoch=5", "unknown option `epoch=`. Did you mean `epochs=`?"),
        ("dataset=1 OR 1=1", "unexpected `OR 1=1`"),
        ("lr=nan", "lr must be a finite number"),
        ("lr=inf", "lr must be a finite number"),
        ("dataset=" + "1" + "0" * 26, "No dataset"),
        ("epochs=2.9", "epochs must be a number"),
    ],
)
async def test_arguments_are_checked_before_any_call(
    ctx: Context, text: str, expected: str
) -> None:
    reply = await dispatch(ctx, cmd(text))
    assert expected in reply.text, reply.text
    assert "provider" not in reply.text and "Error" not in reply.text


def _status_error(cls, status: int, message: str, code: str | None = None):  # type: ignore[no-untyped-def]
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1:8700/v1/fine_tuning/jobs")
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "model",
            "code": code,
        }
    }
    return cls(message, response=httpx.Response(status, request=request, json=body), body=body)


def test_errors_name_the_provider_and_what_to_do() -> None:
    import openai

    from bot.providers import explain_error

    typo = _status_error(
        openai.BadRequestError,
        400,
        "Model 'smollm2-135m-instrukt' is not available for fine-tuning on this engine. "
        "Available: smollm2-135m-instruct",
        "model_not_available",
    )
    text = explain_error(typo, "the local engine")
    assert text.startswith("the local engine doesn't know that model") and "Available:" in text
    assert "organization" not in text
    wind_down = _status_error(
        openai.PermissionDeniedError,
        403,
        "Your organization can no longer create fine-tuning jobs.",
    )
    text = explain_error(wind_down, "OpenAI")
    assert "2027-01-06" in text and "2027-01-14" in text and "/migrate" in text
    assert "local engine" in text
