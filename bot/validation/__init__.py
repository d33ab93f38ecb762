"""Fine-tuning data validation: formats, checks with line numbers, tokens, cost and fixes."""

from __future__ import annotations

import json
import os
import random
from array import array
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bot.pricing import price_per_million
from bot.validation import chat, legacy
from bot.validation.readers import Unreadable, iter_rows
from bot.validation.report import Report
from bot.validation.scan import PARALLEL_MIN_BYTES, Scan, can_fork, parallel_scan, sniff_format
from bot.validation.tokens import (
    LOCAL_MAX_TOKENS,
    LocalTokenizer,
    encoding_for,
    is_openai_model,
    token_limit,
)

MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 100
RECOMMENDED_PER_CLASS = 100
MAX_VALID_EXAMPLES = 1000
MAX_LINES_KEPT = 20


def default_epochs(n: int) -> int:
    """The cookbook rule: 3 epochs, at least 100 and at most 25,000 example passes."""
    if n <= 0:
        return 0
    if n * 3 < 100:
        return min(25, 100 // n)
    if n * 3 > 25000:
        return max(1, 25000 // n)
    return 3


def _distribution(values: Any) -> dict[str, float]:
    if not len(values):
        return {}
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    median, p5, p95 = np.percentile(ordered, [50, 5, 95])
    return {
        "min": int(ordered[0]),
        "max": int(ordered[-1]),
        "mean": round(float(ordered.mean()), 2),
        "median": float(median),
        "p5": float(p5),
        "p95": float(p95),
    }


def validate_file(
    path: Path,
    filename: str | None = None,
    *,
    model: str = "smollm2-135m-instruct",
    max_bytes: int | None = None,
    prices: dict[str, float] | None = None,
    validation_path: Path | None = None,
    tokenizer_dirs: Sequence[Path] = (),
    workers: int | None = None,
    apply: frozenset[str] = frozenset(),
    local_max_tokens: int = LOCAL_MAX_TOKENS,
) -> Report:
    """Validate a training file. Never raises for bad data: problems end up in the report.

    `workers`: processes for a big chat JSONL file (default: one per core when that is safe).
    `apply`: optional fixes to apply (see `legacy.OPTIONAL`); the others are only offered.
    """
    filename = filename or path.name
    report = Report(filename)
    size = path.stat().st_size
    report.stats["bytes"] = size
    if max_bytes is not None and size > max_bytes:
        report.add(
            "too_large",
            "error",
            f"File is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB",
        )
        return report
    encoding = encoding_for(model, tokenizer_dirs)
    if not is_openai_model(model) and not isinstance(encoding, LocalTokenizer):
        report.notes.append(
            f"Token counts use {encoding.name}: {model}'s own tokenizer was not found here."
        )
    limit = token_limit(model, local_max_tokens)
    try:
        scan = _scan(path, filename, report, encoding, size, workers)
    except Unreadable as exc:
        report.add("unreadable", "error", f"Can't read `{filename}`: {exc}")
        return report
    report.n_examples = scan.n_examples
    detected, stats = scan.detected, scan.stats
    kept_lines, label_ids = scan.kept_lines, scan.label_ids
    report.data_format = detected or "unknown"

    fixed_rows: list[tuple[int, dict[str, Any]]] = []
    if detected == "completion":
        fixed_rows = legacy.check_rows(scan.legacy_rows, report, apply)
        for _, r in fixed_rows:
            stats.total_tokens.append(len(encoding.encode_ordinary(r["prompt"] + r["completion"])))
            stats.assistant_tokens.append(len(encoding.encode_ordinary(r["completion"])))
    elif detected == "chat":
        kept_lines, label_ids = _drop_duplicates(report, stats, kept_lines, scan.hashes, label_ids)
        _detect_classification(report, label_ids, scan.labels)
    n_usable = len(fixed_rows) if detected == "completion" else len(kept_lines)
    totals = (
        np.frombuffer(stats.total_tokens, dtype=np.uint32) if stats.total_tokens else np.zeros(0)
    )
    report.stats["usable_examples"] = n_usable

    if report.n_examples == 0:
        report.add("no_examples", "error", "The file has no examples")
    elif n_usable < MIN_EXAMPLES:
        report.add(
            "too_few_examples",
            "error",
            f"Only {n_usable} usable examples; at least {MIN_EXAMPLES} are required",
        )
    elif n_usable < RECOMMENDED_EXAMPLES:
        report.add(
            "few_examples",
            "info",
            f"{n_usable} examples; {RECOMMENDED_EXAMPLES}+ usually train better (quality rises with each doubling)",
        )
    if report.class_counts and report.task_type == "classification":
        smallest = min(report.class_counts.values())
        largest = max(report.class_counts.values())
        if smallest < RECOMMENDED_PER_CLASS:
            report.add(
                "small_classes",
                "info",
                f"Smallest class has {smallest} examples; aim for {RECOMMENDED_PER_CLASS}+ per class",
            )
        if largest >= 3 * max(1, smallest):
            report.add(
                "class_imbalance",
                "warning",
                f"Classes are imbalanced ({largest} vs {smallest} examples)",
            )
    if detected == "chat":
        report.stats["missing_system"] = stats.missing_system
        report.stats["missing_user"] = stats.missing_user
        report.stats["messages_per_example"] = _distribution(stats.n_messages)
        report.stats["assistant_tokens_per_example"] = _distribution(stats.assistant_tokens)
        if stats.missing_user:
            report.add(
                "missing_user", "info", f"{stats.missing_user} example(s) have no user message"
            )
    report.stats["tokens_per_example"] = _distribution(stats.total_tokens)
    if detected in ("chat", "preference") and not is_openai_model(model):
        _check_room_to_train(report, stats, kept_lines, limit)
    if detected != "completion":
        for i in np.nonzero(totals > limit)[0][: 10 * MAX_LINES_KEPT].tolist():
            report.add(
                "too_long",
                "warning",
                f"Example is over the {limit:,}-token limit of {model} and will be truncated",
                kept_lines[i],
            )
    dataset_tokens = int(np.minimum(totals, limit).sum())
    epochs = default_epochs(n_usable)
    # None when unknown: never shown as free (the local engine is free; the bot knows which)
    price = price_per_million(model, prices or {})
    report.estimate = {
        "model": model,
        "encoding": encoding.name,
        "n_epochs": epochs,
        "dataset_tokens": dataset_tokens,
        "billed_tokens": dataset_tokens * epochs,
        "price_per_million": price,
        "cost_usd": None if price is None else round(dataset_tokens * epochs * price / 1e6, 4),
    }
    if detected != "completion":
        # A second streaming pass, only when it is needed: the rows themselves are not kept.
        needed = (
            validation_path is not None
            or _needs_fix(report, n_usable)
            or report.task_type == "classification"
        )
        fixed_rows = list(_rows_at(path, filename, kept_lines)) if needed else []
    if validation_path is not None and detected in ("chat", "completion"):
        _check_overlap(fixed_rows, validation_path, report)
    _write_fixes(report, fixed_rows, detected)
    return report


def _scan(
    path: Path, filename: str, report: Report, encoding: Any, size: int, workers: int | None
) -> Scan:
    parallel = workers if workers is not None else (os.cpu_count() or 1)
    if (
        parallel > 1
        and Path(filename).suffix.lower() == ".jsonl"
        and size >= (PARALLEL_MIN_BYTES if workers is None else 1)
        and can_fork()
        and sniff_format(path) == "chat"
    ):
        return parallel_scan(path, filename, report, encoding, parallel)
    scan = Scan()
    counter = chat.TokenCounter(encoding)
    fast = partial(scan.fast_line, counter=counter)
    for line, row in iter_rows(path, filename, report, fast):
        scan.feed_guarded(line, row, report, counter)
    return scan


def _check_room_to_train(
    report: Report, stats: chat.ChatStats, kept_lines: array, limit: int
) -> None:
    """The local engine truncates at its limit; an example whose answer starts past it has
    nothing left to train on, and the engine fails the job on it."""
    if not stats.prefix_tokens:
        return
    prefix = np.frombuffer(stats.prefix_tokens, dtype=np.uint32)
    for i in np.nonzero(prefix >= limit)[0][: 10 * MAX_LINES_KEPT].tolist():
        report.add(
            "no_room_to_train",
            "error",
            f"Everything before the answer (system prompt and earlier turns) fills the "
            f"{limit:,}-token limit, so nothing of the answer would be trained on; shorten it",
            kept_lines[i],
        )


def _drop_duplicates(
    report: Report, stats: chat.ChatStats, kept: array, hashes: array, label_ids: array
) -> tuple[array, array]:
    """Mark every repeat of an earlier example and drop it from the statistics."""
    if not hashes:
        return kept, label_ids
    values = np.frombuffer(hashes, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    repeat = np.zeros(len(values), dtype=bool)
    repeat[order[1:]] = values[order[1:]] == values[order[:-1]]
    if not repeat.any():
        return kept, label_ids
    lines = np.frombuffer(kept, dtype=np.uint32)
    for line in lines[repeat].tolist():
        report.add("duplicates", "warning", "Duplicate examples (removed in the fixed file)", line)
    keep = ~repeat

    def filtered(values: array, dtype: Any) -> array:
        return array(values.typecode, np.frombuffer(values, dtype=dtype)[keep].tobytes())

    stats.total_tokens = filtered(stats.total_tokens, np.uint32)
    stats.assistant_tokens = filtered(stats.assistant_tokens, np.uint32)
    stats.prefix_tokens = filtered(stats.prefix_tokens, np.uint32)
    stats.n_messages = filtered(stats.n_messages, np.uint32)
    return filtered(kept, np.uint32), filtered(label_ids, np.int32)


def _detect_classification(report: Report, label_ids: array, index: dict[str, int]) -> None:
    ids = np.frombuffer(label_ids, dtype=np.int32) if label_ids else np.zeros(0, np.int32)
    if len(ids) == 0 or (ids < 0).any():
        return
    counts = np.bincount(ids, minlength=len(index))
    names = list(index)
    present = {names[i]: int(c) for i, c in enumerate(counts) if c}
    if 1 < len(present) <= max(2, len(ids) // 3):
        report.task_type = "classification"
        report.class_counts = dict(sorted(present.items(), key=lambda kv: -kv[1]))


def _needs_fix(report: Report, n_usable: int) -> bool:
    """Whether the fixed file must be written: any announced change, dropped row or BOM."""
    if report.fixes:
        return True
    return report.n_examples - n_usable > 0 or "bom" in report.issues


def _rows_at(path: Path, filename: str, lines: array) -> Iterator[tuple[int, dict[str, Any]]]:
    """Re-read just the rows at `lines` (ascending), in order."""
    wanted = iter(lines)
    target = next(wanted, None)
    for line, row in iter_rows(path, filename, Report(filename)):
        if target is None:
            return
        if line == target:
            yield line, row
            target = next(wanted, None)


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row.get("messages", row), sort_keys=True)


def _check_overlap(
    rows: list[tuple[int, dict[str, Any]]], validation_path: Path, report: Report
) -> None:
    train_keys = {_key(r) for _, r in rows}
    vreport = Report(validation_path.name)
    for line, row in iter_rows(validation_path, validation_path.name, vreport):
        if isinstance(row, dict) and _key(row) in train_keys:
            report.add(
                "train_valid_overlap",
                "warning",
                "Validation example also appears in the training file",
                line,
            )


def _dump(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def _write_fixes(
    report: Report, rows: list[tuple[int, dict[str, Any]]], detected: str | None
) -> None:
    if not rows:
        return
    dropped = report.n_examples - len(rows)
    if dropped and detected != "completion":
        report.fixes.append(f"removed {dropped} unusable or duplicate example(s)")
    if "bom" in report.issues and "removed byte-order mark" not in report.fixes:
        report.fixes.append("removed byte-order mark")
    plain = [r for _, r in rows]
    if report.fixes:
        report.fixed = _dump(plain)
    if report.task_type == "classification" and len(plain) >= 20:
        train, valid = stratified_split(plain)
        report.fixed_train, report.fixed_valid = _dump(train), _dump(valid)


def stratified_split(rows: list[dict[str, Any]], seed: int = 42) -> tuple[list, list]:
    """prepare_data's split size (n_train = max(n - 1000, 0.8 n)), stratified by class."""
    n_train = max(len(rows) - MAX_VALID_EXAMPLES, int(len(rows) * 0.8))
    by_class: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = row["completion"] if "completion" in row else row["messages"][-1].get("content", "")
        by_class.setdefault(str(label).strip(), []).append(row)
    rng = random.Random(seed)
    n_valid = len(rows) - n_train
    share = n_valid / len(rows)
    quotas = {label: int(len(items) * share) for label, items in by_class.items()}
    by_remainder = sorted(
        by_class, key=lambda c: len(by_class[c]) * share - quotas[c], reverse=True
    )
    for label in by_remainder[: n_valid - sum(quotas.values())]:
        quotas[label] += 1
    valid: list[dict[str, Any]] = []
    for label, items in by_class.items():
        rng.shuffle(items)
        valid.extend(items[: quotas[label]])
    valid_ids = {id(r) for r in valid}
    return [r for r in rows if id(r) not in valid_ids], valid
