"""/eval throughput against the local engine: rows per second, one at a time vs as built.

Starts an engine in its own process, then scores N classification rows (support tickets, like
tests/engine/test_training_helps.py) against the base model through tuneup's eval runner:
  - sequential: one request at a time (what a plain loop over the SDK does);
  - as built: the runner's concurrency for the local engine (16 in flight), which the engine
    batches into one forward pass.
Both ask for as many tokens as the runner does for classification (enough for the longest label).
Prints seconds, rows/s and the speed-up. Target: 200 rows well under a minute per model.

    .venv/bin/python bench/eval.py [--rows 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.context import Context  # noqa: E402
from bot.evaluation import runner  # noqa: E402
from bot.providers import Providers  # noqa: E402
from bot.settings import Settings  # noqa: E402
from storage.db import open_database  # noqa: E402
from tests.conftest import ENGINE_KEY, free_port, start_engine, stop_engine  # noqa: E402
from tests.engine.test_training_helps import TEST_T, TRAIN_T, WORDS  # noqa: E402

MODEL = "smollm2-135m-instruct"


def tickets(n: int) -> list[runner.Example]:
    rng = random.Random(0)
    rows = []
    while len(rows) < n:
        label = rng.choice(list(WORDS))
        template = rng.choice(TRAIN_T + TEST_T)
        prompt = f"Ticket: {template.format(w=rng.choice(WORDS[label]))}\nCategory:"
        rows.append(runner.Example(len(rows) + 1, prompt, label, "completion"))
    return rows


async def measure(ctx: Context, examples: list[runner.Example], concurrency: int) -> float:
    runner.LOCAL_IN_FLIGHT = concurrency

    async def nothing(_: int) -> None:
        return None

    started = time.perf_counter()
    answers = await runner.answer_all(
        ctx,
        MODEL,
        examples,
        stop="\n",
        progress=nothing,
        max_tokens=runner.answer_tokens("classification", [e.reference for e in examples]),
    )
    elapsed = time.perf_counter() - started
    errors = [a.error for a in answers if a.error]
    assert not errors, errors[:3]
    return elapsed


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "engine"
        data.mkdir()
        port = free_port()
        engine = start_engine(data, port)
        try:
            settings = Settings(
                data_dir=Path(tmp),
                engine_url=f"http://127.0.0.1:{port}/v1",
                engine_api_key=ENGINE_KEY,
                engine_autostart=False,
            )
            ctx = Context(settings, open_database(settings.sqlite_url), Providers(settings))
            examples = tickets(rows)
            await measure(ctx, examples[:4], 1)  # load the model once
            sequential = await measure(ctx, examples, 1)
            built = await measure(ctx, examples, 16)
            print(f"/eval against the local engine, {rows} classification rows, {MODEL}")
            print(f"  {'mode':<12} {'seconds':>8} {'rows/s':>8}")
            print(f"  {'sequential':<12} {sequential:8.1f} {rows / sequential:8.1f}")
            print(f"  {'as built':<12} {built:8.1f} {rows / built:8.1f}")
            print(
                f"  speed-up {sequential / built:.2f}×; target: {rows} rows well under 60 s "
                f"({'met' if built < 45 else 'NOT met'})"
            )
            await ctx.providers.close()
        finally:
            stop_engine(engine)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    asyncio.run(main(parser.parse_args().rows))
