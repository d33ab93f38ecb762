"""Each hosted provider end to end through its official SDK and a strict local fake:
upload → price → create → progress → summary → /ask-model → cancel; and the poller running one
job per provider at once, each announced once."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.console_adapter import ConsoleAdapter
from bot.core import BotCore
from bot.settings import ProviderConfig
from tests.e2e.test_console_e2e import run, settings_for, wait_done
from tests.fakes.azure_openai import API_VERSION, FakeAzureOpenAI
from tests.fakes.fireworks_api import FakeFireworks
from tests.fakes.together_api import FakeTogether

TOGETHER_MODEL = "together/meta-llama/Llama-3.2-1B-Instruct"
FIREWORKS_MODEL = "fireworks/accounts/fireworks/models/llama-v3p2-1b-instruct"
AZURE_MODEL = "azure/smollm2-135m-instruct"


def chat_file(path: Path, n: int = 16) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class Fakes:
    def __init__(self, engine_url: str) -> None:
        self.together = FakeTogether(tunable=("meta-llama/Llama-3.2-1B-Instruct",))
        self.fireworks = FakeFireworks(account="team")
        self.azure = FakeAzureOpenAI(engine_url)

    async def __aenter__(self) -> Fakes:
        for fake in (self.together, self.fireworks, self.azure):
            await fake.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for fake in (self.together, self.fireworks, self.azure):
            await fake.stop()

    def providers(self) -> dict[str, ProviderConfig]:
        key = FakeTogether.key
        return {
            "together": ProviderConfig(
                type="together",
                key=key,
                endpoint=self.together.url,
                models="meta-llama/Llama-3.2-1B-Instruct",
                strict=True,
            ),
            "fireworks": ProviderConfig(
                type="fireworks", key=key, endpoint=self.fireworks.url, account="team", strict=True
            ),
            "azure": ProviderConfig(
                type="azure",
                key=key,
                endpoint=self.azure.url,
                api_version=API_VERSION,
                resource="team-openai",
                strict=True,
            ),
        }


def make_core(tmp_path: Path, engine_url: str, fakes: Fakes) -> tuple[BotCore, ConsoleAdapter]:
    settings = settings_for(tmp_path, engine_url).model_copy(
        update={"providers": fakes.providers()}
    )
    core = BotCore(settings)
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    return core, adapter


async def start(core: BotCore, adapter: ConsoleAdapter, model: str, extra: str = "") -> Any:
    """/finetune asks first (the price is the provider's, or unknown); the button starts it."""
    asked = await run(core, adapter, f"/finetune model={model} epochs=1 {extra}".strip())
    assert asked.buttons and "confirm=yes" in asked.buttons[0].command, asked.plain()
    started = await run(core, adapter, asked.buttons[0].command)
    assert started.job_id, started.plain()
    return asked, started


def replies_for(adapter: ConsoleAdapter, job_id: int) -> tuple[list[str], list[str]]:
    """(summaries posted, progress texts posted or edited) for one job."""
    label = f"job {job_id} ("
    posted = [r.text for _, r in adapter.posted if label in r.text]
    edited = [r.text for _, r in adapter.edits if label in r.text]
    ends = (") finished: ", ") was cancelled.", ") failed: ")
    summaries = [t for t in posted if any(end in t for end in ends)]
    return summaries, [t for t in posted + edited if t not in summaries]


async def test_one_job_per_provider_at_once_each_announced_once(
    tmp_path: Path, engine_url: str
) -> None:
    async with Fakes(engine_url) as fakes:
        core, adapter = make_core(tmp_path, engine_url, fakes)
        try:
            await run(core, adapter, f"/validate {chat_file(tmp_path / 'sums.jsonl')}")
            asked, together = await start(core, adapter, TOGETHER_MODEL)
            assert "Together AI's estimate" in asked.text  # the provider's own price, before
            _, fireworks = await start(core, adapter, FIREWORKS_MODEL)
            _, azure = await start(core, adapter, AZURE_MODEL)
            local = await run(core, adapter, "/finetune epochs=1")
            assert local.job_id, local.plain()
            await wait_done(core)

            jobs = {"together": together.job_id, "fireworks": fireworks.job_id}
            jobs |= {"azure": azure.job_id, "local": local.job_id}
            for name, job_id in jobs.items():
                summaries, progress = replies_for(adapter, job_id)
                assert len(summaries) == 1 and "finished" in summaries[0], (name, summaries)
                assert progress and any("running" in t for t in progress), (name, progress)
            _, together_progress = replies_for(adapter, together.job_id)
            assert any("3/3" in t for t in together_progress)  # Together's steps and losses
            _, fireworks_progress = replies_for(adapter, fireworks.job_id)
            assert any("66/100" in t for t in fireworks_progress)  # Fireworks' percentage
            assert len(fakes.together.creates) == 1 and len(fakes.fireworks.creates) == 1
            summary = next(
                r
                for _, r in adapter.posted
                if f"job {azure.job_id} (" in r.text and "finished" in r.text
            )
            assert "az cognitiveservices account deployment create" in summary.plain()
        finally:
            await core.stop()


@pytest.mark.parametrize("model", [TOGETHER_MODEL, FIREWORKS_MODEL, AZURE_MODEL])
async def test_provider_story_upload_to_ask_and_cancel(
    tmp_path: Path, engine_url: str, model: str
) -> None:
    async with Fakes(engine_url) as fakes:
        core, adapter = make_core(tmp_path, engine_url, fakes)
        try:
            await run(core, adapter, f"/validate {chat_file(tmp_path / 'sums.jsonl')}")
            _, started = await start(core, adapter, model)
            await wait_done(core)
            with core.ctx.session() as session:
                from storage.models import Job

                job = session.get(Job, started.job_id)
                assert job is not None and job.status == "succeeded", job
                tuned = job.fine_tuned_model
            assert tuned
            answer = await run(core, adapter, f"/ask-model model={tuned} What is 2 plus 2?")
            if model == AZURE_MODEL:  # Azure answers only once the deployment exists
                assert "az cognitiveservices account deployment create" in answer.text
                fakes.azure.deployments[tuned.replace(":", "-")] = tuned
                answer = await run(core, adapter, f"/ask-model model={tuned} What is 2 plus 2?")
            assert answer.sections and answer.sections[0].text.strip(), answer.plain()

            _, second = await start(core, adapter, model, "suffix=again")
            cancelled = await run(core, adapter, f"/cancel {second.job_id} confirm=yes")
            assert "Cancelling" in cancelled.text, cancelled.plain()
            await wait_done(core)
            summaries, _ = replies_for(adapter, second.job_id)
            assert len(summaries) == 1 and "cancelled" in summaries[0], summaries
        finally:
            await core.stop()
