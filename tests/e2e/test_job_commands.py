"""/jobs, /checkpoints, /delete, notify=dm and /ask-model in the model's own format, end to end."""

from __future__ import annotations

import io
import json
from pathlib import Path

from adapters.console_adapter import ConsoleAdapter
from bot.core import BotCore
from tests.e2e.test_console_e2e import run, settings_for, wait_done
from tests.fakes.flaky_provider import FlakyProvider

WORDS = [
    "kettle",
    "toaster",
    "lamp",
    "chair",
    "phone",
    "desk",
    "fan",
    "clock",
    "radio",
    "mug",
    "bike",
    "oven",
]


def sentiment_file(path: Path) -> Path:
    rows = [
        {
            "prompt": f"Review: the {w} is {'great' if i % 2 else 'awful'}",
            "completion": "positive" if i % 2 else "negative",
        }
        for i, w in enumerate(WORDS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_history_checkpoints_dm_completion_format_and_delete(
    tmp_path: Path, engine_url: str
) -> None:
    proxy = await FlakyProvider(engine_url).start()  # forwards everything, remembers it
    core = BotCore(settings_for(tmp_path, proxy.url))
    adapter = ConsoleAdapter(tmp_path / "out", stream=io.StringIO())
    core.register(adapter)
    try:
        await run(core, adapter, f"/validate {sentiment_file(tmp_path / 'reviews.jsonl')}")
        started = await run(core, adapter, "/finetune epochs=2 batch=4 notify=dm")
        assert started.job_id == 1, started.plain()
        await wait_done(core)
        dms = [r for ref, r in adapter.posted if ref.channel == "@you"]
        assert len(dms) == 1 and "finished" in dms[0].text  # the owner's copy of the result

        history = await run(core, adapter, "/jobs")
        assert "job 1" in history.plain() and "succeeded" in history.plain()
        assert (await run(core, adapter, "/jobs status=failed")).text == "No jobs match."

        checkpoints = await run(core, adapter, "/checkpoints 1")
        assert "step" in checkpoints.plain() and checkpoints.buttons
        asked = await run(core, adapter, checkpoints.buttons[0].command)
        assert asked.sections and ":ckpt-step-" in asked.sections[0].title

        proxy.seen.clear()
        answer = await run(core, adapter, '/ask-model "Review: the lamp is great"')
        assert answer.sections and answer.sections[0].text
        completions = [json.loads(b) for m, p, b in proxy.seen if p == "/v1/completions"]
        assert completions, [p for _, p, _ in proxy.seen]  # a prompt/completion model: completions
        assert completions[0]["prompt"] == "Review: the lamp is great ->"
        assert not any(p == "/v1/chat/completions" for _, p, _ in proxy.seen)

        model = answer.sections[0].title.strip("`")
        exported = await run(core, adapter, f"/export {model}")
        assert f"tuneup export {model} --format adapter" in exported.text, exported.text
        assert exported.files or "too big for chat" in exported.text
        ask = await run(core, adapter, f"/delete model={model}")
        assert ask.buttons and ask.buttons[0].command.endswith("confirm=yes")
        done = await run(core, adapter, ask.buttons[0].command)
        assert "Deleted" in done.text and "deleted at the local engine" in done.text
        gone = await run(core, adapter, f"/ask-model model={model} hello")
        assert "No model" in gone.text
        removed = await run(core, adapter, "/delete dataset=1 confirm=yes")
        assert "Deleted dataset 1" in removed.text and "deleted at the local engine" in removed.text
        assert "No dataset" in (await run(core, adapter, "/validate dataset=1")).text
    finally:
        await core.stop()
        await proxy.stop()
