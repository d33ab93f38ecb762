"""prompt/completion checks: the legacy prepare_data validators, with their remediations."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from bot.validation.report import Report

SEPARATORS = ["\n\n###\n\n", "\n\n===\n\n", "\n\n---\n\n", "\n\n===>\n\n", "\n\n--->\n\n"]
STOPS = ["\n", ".", " END", "***", "+++", "&&&", "$$$", "@@@", "%%%"]


def infer_task_type(prompts: list[str], completions: list[str]) -> str:
    if all(not p for p in prompts):
        return "open-ended generation"
    if len(set(completions)) < len(completions) / 3:
        return "classification"
    return "conditional generation"


def _common_suffix(items: list[str]) -> str:
    return os.path.commonprefix([s[::-1] for s in items])[::-1]


def check_rows(
    rows: list[tuple[int, dict[str, Any]]], report: Report
) -> list[tuple[int, dict[str, str]]]:
    """Run the checks; return the rows with every applicable fix applied."""
    fixed: list[tuple[int, dict[str, str]]] = []
    extra: set[str] = set()
    for line, row in rows:
        extra.update(k for k in row if k not in ("prompt", "completion"))
        if "completion" not in row:
            report.add("missing_completion", "error", "Row has no `completion`", line)
            continue
        prompt, completion = row.get("prompt", ""), row["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            report.add("non_string", "error", "`prompt` and `completion` must be text", line)
            continue
        if not completion.strip():
            report.add(
                "empty_completion",
                "warning",
                "Empty completion (row removed in the fixed file)",
                line,
            )
            continue
        fixed.append((line, {"prompt": prompt, "completion": completion}))
    if extra:
        report.add("extra_columns", "warning", f"Extra columns removed: {', '.join(sorted(extra))}")
    if not fixed:
        return fixed
    prompts = [r["prompt"] for _, r in fixed]
    completions = [r["completion"] for _, r in fixed]
    task = infer_task_type(prompts, completions)
    report.task_type = task

    seen: dict[tuple[str, str], int] = {}
    unique = []
    for line, r in fixed:
        key = (r["prompt"], r["completion"])
        if key in seen:
            report.add("duplicates", "warning", "Duplicate rows (removed in the fixed file)", line)
            continue
        seen[key] = line
        unique.append((line, r))
    fixed = unique
    if task != "open-ended generation":
        for line, r in fixed:
            if len(r["prompt"]) + len(r["completion"]) > 10000:
                report.add(
                    "long_examples", "warning", "Example longer than 10,000 characters", line
                )
    for column in ("prompt", "completion"):
        text = "".join(r[column] for _, r in fixed)
        upper = sum(c.isupper() for c in text)
        lower = sum(c.islower() for c in text)
        if upper * 2 > lower and upper:
            report.add(
                f"uppercase_{column}",
                "warning",
                f"More than a third of the `{column}` letters are uppercase",
            )
    prompts = [r["prompt"] for _, r in fixed]
    completions = [r["completion"] for _, r in fixed]
    if task != "open-ended generation":
        if len(set(prompts)) == 1 and len(prompts) > 1:
            report.add(
                "identical_prompts",
                "error",
                "All prompts are identical; leave them empty for open-ended generation",
            )
        suffix = _common_suffix(prompts)
        if suffix:
            report.notes.append(f"All prompts end with the separator {suffix!r}.")
            if len(suffix) > 10:
                report.add(
                    "long_separator", "info", f"The common prompt suffix {suffix!r} is very long"
                )
            if any(p.count(suffix) > 1 for p in prompts):
                report.add(
                    "separator_repeats",
                    "warning",
                    f"Some prompts contain the separator {suffix!r} more than once",
                )
        else:
            sep = " ->" if not any("\n" in p for p in prompts) else None
            sep = sep or next(
                (s for s in SEPARATORS if not any(s in p for p in prompts)), "\n\n### =>\n\n"
            )
            report.add(
                "no_separator",
                "warning",
                f"Prompts have no common ending; the fixed file adds the separator {sep!r}",
            )
            report.fixes.append(f"appended separator {sep!r} to prompts")
            for _, r in fixed:
                r["prompt"] += sep
    prefix = os.path.commonprefix(prompts)
    if len(prefix) > 12 and len(prompts) > 1:
        report.add(
            "prompt_prefix",
            "info",
            f"All prompts start with {prefix[:40]!r}; fine-tuning doesn't need an instruction in every prompt",
        )
    cprefix = os.path.commonprefix(completions)
    if len(cprefix) >= 5 and len(completions) > 1:
        report.add(
            "completion_prefix",
            "info",
            f"All completions start with {cprefix[:40]!r}; consider removing it",
        )
    if task == "conditional generation":
        if len(set(completions)) == 1 and len(completions) > 1:
            report.add("identical_completions", "error", "All completions are identical")
        ending = _common_suffix(completions)
        if not ending:
            stop = next((s for s in STOPS if not any(s in c for c in completions)), " [END]")
            report.add(
                "no_stop_sequence",
                "warning",
                f"Completions have no common ending; the fixed file adds {stop!r} as a stop sequence",
            )
            report.fixes.append(f"appended stop sequence {stop!r} to completions")
            for _, r in fixed:
                r["completion"] += stop
    if task != "open-ended generation" and not all(c.startswith((" ", "\n")) for c in completions):
        report.add(
            "no_leading_space",
            "warning",
            "Completions don't start with a space; the fixed file adds one (better tokenization)",
        )
        report.fixes.append("added a leading space to completions")
        for _, r in fixed:
            if not r["completion"].startswith((" ", "\n")):
                r["completion"] = " " + r["completion"]
    if task == "classification":
        report.class_counts = dict(Counter(r["completion"].strip() for _, r in fixed).most_common())
    return fixed
