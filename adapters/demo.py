"""`tuneup demo`: the whole story, non-interactively, on the embedded default."""

from __future__ import annotations

import json
import random
from pathlib import Path

from adapters.console_adapter import CHANNEL, WORKSPACE, ConsoleAdapter
from bot.core import BotCore
from bot.settings import Settings
from bot.types import Reply, Target

POSITIVE = ["love", "really like", "am delighted with", "recommend", "enjoy"]
NEGATIVE = ["hate", "regret buying", "am disappointed by", "returned", "can't stand"]
THINGS = [
    "this kettle",
    "the headphones",
    "my new phone",
    "the desk lamp",
    "these shoes",
    "the blender",
]


def sample_dataset(path: Path, n: int = 40, seed: int = 7) -> Path:
    rng = random.Random(seed)
    pairs = [(v, t, "positive") for v in POSITIVE for t in THINGS]
    pairs += [(v, t, "negative") for v in NEGATIVE for t in THINGS]
    rng.shuffle(pairs)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Review: I {verb} {thing}. Sentiment?"},
                {"role": "assistant", "content": label},
            ]
        }
        for verb, thing, label in pairs[:n]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def run_demo(settings: Settings, timeout: float = 900) -> int:
    core = BotCore(settings)
    adapter = ConsoleAdapter(settings.data_dir / "out")
    core.register(adapter)
    target = Target(platform="console", workspace=WORKSPACE, channel=CHANNEL)

    async def say(line: str) -> Reply:
        adapter._write(f"\n> {line}")
        cmd = adapter.parse(line)
        assert cmd is not None
        reply = await core.handle(cmd)
        await adapter.post(target, reply)
        return reply

    try:
        adapter._write("Starting the local engine (first run dequantizes the base model, ~20 s)…")
        await core.start(schedule=False)
        data = sample_dataset(settings.data_dir / "demo-reviews.jsonl")
        await say(f"/validate {data}")
        started = await say("/finetune epochs=2 suffix=demo")
        if started.job_id is None:
            return 1
        if not await core.poll_until_idle(timeout):
            adapter._write(
                f"The job made no progress for {timeout:.0f} s, so the demo stops waiting; "
                f"`/status {started.job_id}` shows where it is."
            )
        await say(f"/status {started.job_id}")
        await say('/ask-model "Review: I really like the toaster. Sentiment?" compare=yes')
        return 0
    finally:
        await core.stop()
