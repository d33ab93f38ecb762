"""Validator throughput and memory on generated chat files, against the cookbook-style baseline.

Generates chat JSONL files of 10k, 100k and 1M examples (cached under .cache/bench), then runs,
each in a fresh process so peak RSS is its own:
  - tuneup's validator (streaming pass, every check; a big file is split across one forked
    process per core);
  - the baseline: per-line json.loads, then one tiktoken encode per message, as the cookbook
    notebook does it (and nothing else: no checks, no duplicates, no fixed file).
Prints examples/s, peak RSS and the speed-up. Targets: ≥ 3× the baseline, < 300 MB at 1M.

    .venv/bin/python bench/validate.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "bench"
WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "customer",
    "order",
    "refund",
    "shipping",
    "account",
    "password",
    "reset",
    "please",
    "thanks",
    "help",
    "error",
    "billing",
    "invoice",
    "upgrade",
    "plan",
    "team",
    "channel",
    "file",
    "upload",
    "training",
    "data",
    "token",
    "limit",
    "example",
    "format",
    "label",
    "positive",
    "negative",
    "neutral",
    "review",
    "product",
    "service",
]


def generate(n: int) -> Path:
    path = CACHE / f"chat-{n}.jsonl"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(n)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for i in range(n):
            user = " ".join(rng.choices(WORDS, k=rng.randint(8, 40)))
            reply = " ".join(rng.choices(WORDS, k=rng.randint(3, 30)))
            row = {
                "messages": [
                    {"role": "system", "content": "You are a helpful support assistant."},
                    {"role": "user", "content": f"#{i} {user}"},
                    {"role": "assistant", "content": reply},
                ]
            }
            out.write(json.dumps(row) + "\n")
    tmp.rename(path)
    return path


def run_tuneup(path: Path) -> dict:
    from bot.validation import validate_file

    report = validate_file(path, model="gpt-4o-mini")
    return {"examples": report.n_examples, "tokens": report.estimate.get("dataset_tokens", 0)}


def run_baseline(path: Path) -> dict:
    from bot.validation.tokens import encoding_for

    encoding = encoding_for("gpt-4o-mini")
    examples = tokens = 0
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            examples += 1
            n = 3
            for message in row["messages"]:
                n += 3
                for value in message.values():
                    n += len(encoding.encode(value))
            tokens += n
    return {"examples": examples, "tokens": tokens}


def one(impl: str, path: Path) -> None:
    """Runs in its own process: prints one JSON line with the figures."""
    from bot.validation.tokens import encoding_for

    encoding_for("gpt-4o-mini")  # load the encoding before timing, for both sides
    started = time.perf_counter()
    result = (run_tuneup if impl == "tuneup" else run_baseline)(path)
    seconds = time.perf_counter() - started
    # The largest of this process and any worker it forked (each counted whole, shared pages too).
    peak = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )
    print(json.dumps({**result, "seconds": seconds, "peak_mb": peak}))


def measure(impl: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", impl, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(sizes: list[int]) -> int:
    print("validator: chat JSONL, model gpt-4o-mini (o200k_base)")
    print(f"{'examples':>10} {'impl':>9} {'seconds':>8} {'examples/s':>11} {'peak RSS':>9}")
    ok = True
    for n in sizes:
        path = generate(n)
        figures = {impl: measure(impl, path) for impl in ("baseline", "tuneup")}
        for impl, f in figures.items():
            rate = f["examples"] / f["seconds"]
            print(f"{n:>10,} {impl:>9} {f['seconds']:>8.2f} {rate:>11,.0f} {f['peak_mb']:>7.0f} MB")
        speedup = figures["baseline"]["seconds"] / figures["tuneup"]["seconds"]
        print(f"{'':>10} speed-up {speedup:.2f}× (target ≥ 3×)")
        ok &= speedup >= 3
        if n >= 1_000_000:
            ok &= figures["tuneup"]["peak_mb"] < 300
    print(f"targets: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], Path(args.one[1]))
    else:
        raise SystemExit(main([int(s) for s in args.sizes.split(",")]))
