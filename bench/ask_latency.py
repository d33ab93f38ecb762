"""/ask-model latency: 32 new tokens through the engine's chat API, per inference precision.

Starts the engine once per `TUNEUP_ENGINE_INFERENCE_PRECISION` (fp32 is the baseline; `auto`,
the default, is int8 weight-only on a CPU), asks the bundled SmolLM2-135M-Instruct the same
questions with the official openai SDK (greedy, exactly 32 new tokens), and prints the median
latency, the ratio to fp32, and how many answers match fp32's word for word. Target: < 0.5 s.

    .venv/bin/python bench/ask_latency.py [--rounds 3] [--precisions fp32,bf16,auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "smollm2-135m-instruct"
QUESTIONS = [
    "Write a short poem about the sea.",
    "Explain photosynthesis in one sentence.",
    "Give me a tip for better sleep.",
    "What is machine learning?",
    "Describe a cat in two sentences.",
    "Why is the sky blue?",
]


def measure(precision: str, rounds: int) -> tuple[list[float], list[str]]:
    from openai import OpenAI

    from tests.conftest import free_port, start_engine, stop_engine

    os.environ["TUNEUP_ENGINE_INFERENCE_PRECISION"] = precision
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        (Path(tmp) / "engine").mkdir()
        proc = start_engine(Path(tmp) / "engine", port, api_key="bench-key")
        try:
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench-key")
            latencies: list[float] = []
            answers: list[str] = []
            ask(client, QUESTIONS[0])  # loads the model; not timed
            for _ in range(rounds):
                for question in QUESTIONS:
                    started = time.perf_counter()
                    answer = ask(client, question)
                    latencies.append(time.perf_counter() - started)
                    answers.append(answer)
            return latencies, answers[: len(QUESTIONS)]
        finally:
            stop_engine(proc)


def ask(client: object, question: str) -> str:
    response = client.chat.completions.create(  # type: ignore[attr-defined]
        model=MODEL,
        messages=[{"role": "user", "content": question}],
        max_tokens=32,
        temperature=0,
        extra_body={"min_tokens": 32},
    )
    assert response.usage.completion_tokens == 32
    return response.choices[0].message.content


def main(rounds: int, precisions: list[str]) -> int:
    print(f"/ask-model latency: {MODEL}, 32 new tokens, {os.cpu_count()} CPU threads")
    results = {p: measure(p, rounds) for p in precisions}
    base_latencies, base_answers = results[precisions[0]]
    baseline = statistics.median(base_latencies)
    met = True
    for precision, (latencies, answers) in results.items():
        median = statistics.median(latencies)
        same = sum(a == b for a, b in zip(answers, base_answers, strict=True))
        print(
            f"  {precision:5} median {median * 1000:5.0f} ms (min {min(latencies) * 1000:.0f}, "
            f"max {max(latencies) * 1000:.0f}), {baseline / median:.2f}x {precisions[0]}; "
            f"{same}/{len(answers)} answers word for word as {precisions[0]}"
        )
    default = statistics.median(results["auto"][0]) if "auto" in results else None
    if default is not None:
        met = default < 0.5
        print(f"  default (auto) under 0.5 s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16,auto")
    args = parser.parse_args()
    raise SystemExit(main(args.rounds, args.precisions.split(",")))
