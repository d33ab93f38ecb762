"""Every provider error is one plain sentence in chat that names the provider and what to do:
bad key, model not tunable, quota, file rejected (with the provider's line number), outage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from adapters.console_adapter import ConsoleAdapter
from bot.core import BotCore
from bot.providers import Rejected, build_api
from bot.settings import ProviderConfig
from tests.e2e.test_console_e2e import run, settings_for
from tests.e2e.test_providers import chat_file
from tests.fakes.fireworks_api import FakeFireworks
from tests.fakes.together_api import FakeTogether

TUNABLE = "meta-llama/Llama-3.2-1B-Instruct"
FW_BASE = "accounts/fireworks/models/llama-v3p2-1b-instruct"


def together_config(url: str, key: str = FakeTogether.key) -> ProviderConfig:
    return ProviderConfig(type="together", key=key, endpoint=url, models=TUNABLE, strict=True)


def fireworks_config(url: str, key: str = FakeFireworks.key) -> ProviderConfig:
    return ProviderConfig(type="fireworks", key=key, endpoint=url, account="team", strict=True)


async def chat(tmp_path: Path, providers: dict[str, ProviderConfig], *lines: str) -> str:
    """Run the lines in one channel (after validating a good file); the last reply's text."""
    settings = settings_for(tmp_path, "http://127.0.0.1:9/v1").model_copy(
        update={"providers": providers}
    )
    core = BotCore(settings)
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    try:
        await run(core, adapter, f"/validate {chat_file(tmp_path / 'sums.jsonl')}")
        reply = None
        for line in lines:
            reply = await run(core, adapter, line)
        assert reply is not None
        return reply.plain()
    finally:
        await core.stop()


@pytest.fixture
async def together():
    fake = await FakeTogether(tunable=(TUNABLE,)).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fireworks():
    fake = await FakeFireworks().start()
    yield fake
    await fake.stop()


async def test_bad_key_names_the_provider(tmp_path: Path, together, fireworks) -> None:
    providers = {
        "together": together_config(together.url, key="wrong"),
        "fireworks": fireworks_config(fireworks.url, key="wrong"),
    }
    text = await chat(tmp_path, providers, f"/finetune model=together/{TUNABLE} confirm=yes")
    assert "Together AI rejected the API key" in text and "Check the key" in text, text
    text = await chat(tmp_path, providers, f"/finetune model=fireworks/{FW_BASE} confirm=yes")
    assert "Fireworks AI rejected the API key" in text, text


async def test_model_not_tunable_says_so_and_points_to_models(
    tmp_path: Path, together, fireworks
) -> None:
    providers = {
        "together": together_config(together.url),
        "fireworks": fireworks_config(fireworks.url),
    }
    text = await chat(tmp_path, providers, "/finetune model=together/acme/not-a-model confirm=yes")
    assert "Together AI doesn't know that model" in text and "/models" in text, text
    text = await chat(
        tmp_path, providers, "/finetune model=fireworks/accounts/x/models/nope confirm=yes"
    )
    assert "Fireworks AI doesn't know that model" in text and "/models" in text, text
    assert not together.creates and not fireworks.creates


async def test_quota_and_outage_are_plain_sentences(tmp_path: Path, together) -> None:
    providers = {"together": together_config(together.url)}
    together.faults.append(
        ("POST", "/v1/fine-tunes", 429, "You have exceeded your monthly quota.", "quota_exceeded")
    )
    text = await chat(tmp_path, providers, f"/finetune model=together/{TUNABLE} confirm=yes")
    assert "Together AI" in text and "quota" in text and "Traceback" not in text, text
    together.outage = True
    text = await chat(tmp_path, providers, f"/finetune model=together/{TUNABLE} confirm=yes")
    assert "Together AI" in text and "Try again" in text, text


async def test_models_shows_reachability_and_what_each_can_tune(
    tmp_path: Path, together, fireworks
) -> None:
    fireworks.outage = True
    providers = {
        "together": together_config(together.url),
        "fireworks": fireworks_config(fireworks.url),
    }
    text = await chat(tmp_path, providers, "/models")
    assert f"Together AI: reachable; can tune\n`together/{TUNABLE}`" in text, text
    assert "Fireworks AI: not reachable" in text, text


async def test_a_file_the_provider_rejects_names_its_line(tmp_path: Path, together) -> None:
    api = build_api("together", together_config(together.url))
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    bad.write_text(f"{good}\n{good}\n{json.dumps({'input': 'x'})}\n")
    with pytest.raises(Rejected) as caught:
        await api.upload(bad, "bad.jsonl")
    assert "Together AI" in str(caught.value) and "Line 3" in str(caught.value), caught.value
    await api.close()


async def test_an_outage_during_upload_is_one_clean_sentence(tmp_path: Path, together) -> None:
    together.outage = True
    providers = {"together": together_config(together.url)}
    text = await chat(tmp_path, providers, f"/finetune model=together/{TUNABLE} confirm=yes")
    assert text.startswith("⚠️ Together AI is having trouble (503)"), text
    assert "temporarily unavailable" in text and "headers" not in text.lower(), text


async def test_together_full_training_from_a_checkpoint(tmp_path: Path, together) -> None:
    providers = {"together": together_config(together.url)}
    first = f"/finetune model=together/{TUNABLE} confirm=yes"
    second = f"/finetune model=together/{TUNABLE} training=full from=JOB:2 confirm=yes"
    assert "Started job 1" in await chat(tmp_path, providers, first)
    parent = next(iter(together.jobs))
    text = await chat(tmp_path, providers, second.replace("JOB", parent))
    assert "Started job 2" in text, text
    sent = together.creates[-1]
    assert sent["training_type"]["type"] == "Full" and sent["from_checkpoint"] == f"{parent}:2"


async def test_options_a_provider_lacks_are_refused_by_name(tmp_path: Path, fireworks) -> None:
    providers = {"fireworks": fireworks_config(fireworks.url)}
    text = await chat(
        tmp_path, providers, f"/finetune model=fireworks/{FW_BASE} training=full confirm=yes"
    )
    assert "Fireworks AI does not offer full-weight training" in text, text
    assert not fireworks.creates
