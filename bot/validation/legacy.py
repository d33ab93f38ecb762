"""prompt/completion checks: every prepare_data validator (openai-python 0.28.1), one function each.

Each check reads the rows, adds what it finds to the report, and returns its fix, if it has one:
- a necessary fix is applied and listed in `report.fixes` (so the fixed file holds it);
- an optional fix (`optional=True`) is applied only when asked for by name (`--apply NAME`, or a
  button in chat); otherwise it is offered in `report.offers` with what it would change.
Errors are problems on their lines; rows with errors are left out of what the later checks see.
Where prepare_data was wrong (a separator appended twice, numbers refused, no leading-space check
for open-ended data), these checks do better, and the tests say so.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.validation.report import Report

Row = dict[str, str]
Rows = list[tuple[int, Row]]
FIELDS = ("prompt", "completion")
# prepare_data's separator and stop-sequence candidates, in its order (validators.py, 0.28.1).
SEPARATORS = [" ->", "\n\n###\n\n", "\n\n===\n\n", "\n\n---\n\n", "\n\n===>\n\n", "\n\n--->\n\n"]
FALLBACK_SEPARATOR = "\n\n### =>\n\n"
STOPS = ["\n", ".", " END", "***", "+++", "&&&", "$$$", "@@@", "%%%"]
FALLBACK_STOP = " [END]"
MAX_CHARS = 10_000
MAX_PROMPT_PREFIX = 12
MIN_COMPLETION_PREFIX = 5
LONG_XFIX = 10
OPTIONAL = ("lowercase", "prefix", "completion-prefix", "long")


@dataclass
class Fix:
    name: str
    description: str
    rows: int
    apply: Callable[[Rows], Rows]
    optional: bool = False


Check = Callable[[Rows, Report], "Fix | None"]


def _shown(text: str) -> str:
    return repr(text)


def common_prefix(items: list[str]) -> str:
    return os.path.commonprefix(items) if items else ""


def common_suffix(items: list[str]) -> str:
    return os.path.commonprefix([s[::-1] for s in items])[::-1] if items else ""


def infer_task_type(rows: Rows) -> str:
    """prepare_data's rule: no prompts → open-ended; few distinct completions → classification."""
    if all(not r["prompt"] for _, r in rows):
        return "open-ended generation"
    if len({r["completion"] for _, r in rows}) < len(rows) / 3:
        return "classification"
    return "conditional generation"


def _map(rows: Rows, change: Callable[[Row], Row]) -> Rows:
    return [(line, change(dict(r))) for line, r in rows]


# ----- the raw rows: keys and value types -----


def check_key_case(rows: Rows, report: Report) -> Fix | None:
    """`Prompt`/`COMPLETION` keys are lowercased (necessary_column_validator)."""
    changed = [line for line, r in rows if any(k != k.lower() and k.lower() in FIELDS for k in r)]
    if not changed:
        return None

    def lower(row: Row) -> Row:
        return {(k.lower() if k.lower() in FIELDS else k): v for k, v in row.items()}

    return Fix(
        "key_case",
        f"lowercased the keys `prompt`/`completion` on {len(changed)} row(s)",
        len(changed),
        lambda rs: _map(rs, lower),
    )


def check_missing_keys(rows: Rows, report: Report) -> Fix | None:
    """Both keys are needed; the engine refuses a row without either."""
    bad = {line for line, r in rows if not all(f in r for f in FIELDS)}
    for line, r in rows:
        for field in FIELDS:
            if line in bad and field not in r:
                report.add(f"missing_{field}", "error", f"Row has no `{field}` key", line)
    return _drop_silently(bad) if bad else None


def check_extra_keys(rows: Rows, report: Report) -> Fix | None:
    """Keys other than prompt/completion are removed (additional_column_validator)."""
    extra = sorted({k for _, r in rows for k in r if k not in FIELDS})
    if not extra:
        return None
    similar = [k for k in extra if any(f in k.lower() for f in FIELDS)]
    if similar:
        report.add(
            "similar_columns",
            "warning",
            f"Extra key(s) {', '.join(f'`{k}`' for k in similar)} look like prompt/completion; "
            "only `prompt` and `completion` are used",
        )
    n = sum(1 for _, r in rows if set(r) - set(FIELDS))
    report.add(
        "extra_columns",
        "warning",
        f"Extra keys removed in the fixed file: {', '.join(f'`{k}`' for k in extra)}",
    )
    return Fix(
        "extra_keys",
        f"removed extra keys {', '.join(extra)} from {n} row(s)",
        n,
        lambda rs: _map(rs, lambda r: {f: r[f] for f in FIELDS}),
    )


def check_value_types(rows: Rows, report: Report) -> Fix | None:
    """Numbers become text and null becomes empty, as prepare_data read them; lists/objects can't."""
    bad, converted = set(), 0
    for line, r in rows:
        for field in FIELDS:
            value = r[field]
            if isinstance(value, (dict, list)):
                report.add(
                    "non_string", "error", f"`{field}` must be text, not a list or object", line
                )
                bad.add(line)
            elif not isinstance(value, str):
                converted += 1
    if bad:
        rows[:] = [(line, r) for line, r in rows if line not in bad]
    if not converted:
        return None
    return Fix(
        "text_values",
        f"turned {converted} number/true/false/null value(s) into text",
        converted,
        lambda rs: _map(rs, _as_text),
    )


def _as_text(row: Row) -> Row:
    return {
        f: ("" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
        if not isinstance(v, str)
        else v
        for f, v in row.items()
    }


def check_empty_completions(rows: Rows, report: Report) -> Fix | None:
    """Empty, blank or null completions teach nothing (non_empty_field_validator)."""
    empty = [line for line, r in rows if not r["completion"].strip()]
    if not empty:
        return None
    for line in empty:
        report.add(
            "empty_completion", "warning", "Empty completion (row removed in the fixed file)", line
        )
    gone = set(empty)
    return Fix(
        "empty",
        f"removed {len(empty)} row(s) with an empty completion",
        len(empty),
        lambda rs: [(line, r) for line, r in rs if line not in gone],
    )


def check_duplicates(rows: Rows, report: Report) -> Fix | None:
    """Identical (prompt, completion) pairs (duplicated_rows_validator); the first one stays."""
    seen: set[tuple[str, str]] = set()
    dupes = []
    for line, r in rows:
        key = (r["prompt"], r["completion"])
        if key in seen:
            dupes.append(line)
        seen.add(key)
    if not dupes:
        return None
    for line in dupes:
        report.add("duplicates", "warning", "Duplicate row (removed in the fixed file)", line)
    gone = set(dupes)
    return Fix(
        "duplicates",
        f"removed {len(dupes)} duplicate row(s)",
        len(dupes),
        lambda rs: [(line, r) for line, r in rs if line not in gone],
    )


# ----- the cleaned rows: the data itself -----


def check_long_examples(rows: Rows, report: Report) -> Fix | None:
    """Over 10,000 characters (long_examples_validator); dropping them is offered."""
    if infer_task_type(rows) == "open-ended generation":
        return None
    long = [line for line, r in rows if len(r["prompt"]) + len(r["completion"]) > MAX_CHARS]
    if not long:
        return None
    for line in long:
        report.add(
            "long_examples", "warning", f"Example is longer than {MAX_CHARS:,} characters", line
        )
    gone = set(long)
    return Fix(
        "long",
        f"remove {len(long)} example(s) longer than {MAX_CHARS:,} characters",
        len(long),
        lambda rs: [(line, r) for line, r in rs if line not in gone],
        optional=True,
    )


def _uppercase_check(field: str) -> Check:
    def check(rows: Rows, report: Report) -> Fix | None:
        """More than a third of the letters uppercase (lower_case_validator); lowercasing is offered."""
        text = "".join(r[field] for _, r in rows)
        upper = sum(1 for c in text if c.isalpha() and c.isupper())
        lower = sum(1 for c in text if c.isalpha() and c.islower())
        if not upper or upper * 2 <= lower:
            return None
        report.add(
            f"uppercase_{field}",
            "warning",
            f"More than a third of the `{field}` letters are uppercase; lowercase data usually trains better",
        )
        n = sum(1 for _, r in rows if r[field] != r[field].lower())
        return Fix(
            "lowercase",
            f"lowercase every `{field}` ({n} row(s) change)",
            n,
            lambda rs: _map(rs, lambda r: {**r, field: r[field].lower()}),
            optional=True,
        )

    check.__name__ = f"check_uppercase_{field}"
    return check


def pick_separator(prompts: list[str]) -> str:
    """prepare_data's choice: the first candidate that occurs in no prompt (` ->` only without newlines)."""
    for option in SEPARATORS:
        if option == " ->" and any("\n" in p for p in prompts):
            continue
        if not any(option in p for p in prompts):
            return option
    return FALLBACK_SEPARATOR


def check_prompt_separator(rows: Rows, report: Report) -> Fix | None:
    """Prompts end with one separator (common_prompt_suffix_validator), added only where missing."""
    if infer_task_type(rows) == "open-ended generation":
        return None
    prompts = [r["prompt"] for _, r in rows]
    if len(set(prompts)) == 1 and len(prompts) > 1:
        report.add(
            "identical_prompts",
            "error",
            "All prompts are identical; leave them empty for open-ended generation",
        )
        return None
    for line, r in rows:
        if not r["prompt"]:
            report.add(
                "empty_prompt",
                "warning",
                "Empty prompt among non-empty ones (left as is: fill it or remove the row)",
                line,
            )
    suffix = common_suffix([p for p in prompts if p])
    if suffix:
        report.stats["separator"] = suffix
        _report_existing_ending(report, "prompt", suffix, prompts, "separator")
        return None
    sep = _existing_ending(prompts, SEPARATORS) or pick_separator(prompts)
    missing = [line for line, r in rows if r["prompt"] and not r["prompt"].endswith(sep)]
    report.stats["separator"] = sep
    report.add(
        "no_separator",
        "warning",
        f"Prompts have no common ending; the fixed file adds the separator {_shown(sep)} "
        f"to the {len(missing)} prompt(s) without it",
    )

    def add(row: Row) -> Row:
        if row["prompt"] and not row["prompt"].endswith(sep):
            row["prompt"] += sep
        return row

    return Fix(
        "separator",
        f"added the separator {_shown(sep)} to {len(missing)} prompt(s)",
        len(missing),
        lambda rs: _map(rs, add),
    )


def _existing_ending(items: list[str], options: list[str]) -> str | None:
    """A known separator some prompts already end with (and none holds elsewhere): completing it
    beats appending a second one, which is what prepare_data did."""
    counts = Counter(next((o for o in options if s.endswith(o)), None) for s in items if s)
    counts.pop(None, None)
    for option, _ in counts.most_common():
        if not any(option in (s[: -len(option)] if s.endswith(option) else s) for s in items):
            return option
    return None


def _report_existing_ending(
    report: Report, field: str, ending: str, items: list[str], what: str
) -> None:
    report.notes.append(f"All {field}s end with the {what} {_shown(ending)}.")
    if len(ending) > LONG_XFIX:
        report.add(
            f"long_{what}",
            "warning",
            f"The common {field} ending {_shown(ending)} is very long; a short one works better",
        )
    if any(ending in s[: -len(ending)] for s in items):
        report.add(
            f"{what}_repeats",
            "warning",
            f"Some {field}s contain the {what} {_shown(ending)} more than once, so the model "
            f"can't tell where the {field} ends",
        )


def check_prompt_prefix(rows: Rows, report: Report) -> Fix | None:
    """A long instruction repeated in every prompt (common_prompt_prefix_validator)."""
    prompts = [r["prompt"] for _, r in rows]
    prefix = common_prefix(prompts)
    if len(prefix) <= MAX_PROMPT_PREFIX or len(prompts) < 2 or all(p == prefix for p in prompts):
        return None
    report.add(
        "prompt_prefix",
        "info",
        f"All prompts start with {_shown(prefix[:60])}; fine-tuning doesn't need the instruction in every prompt",
    )
    return Fix(
        "prefix",
        f"remove the common prefix {_shown(prefix[:60])} from all {len(rows)} prompts",
        len(rows),
        lambda rs: _map(rs, lambda r: {**r, "prompt": r["prompt"][len(prefix) :]}),
        optional=True,
    )


def check_completion_prefix(rows: Rows, report: Report) -> Fix | None:
    """A prefix every completion repeats (common_completion_prefix_validator); one leading space stays."""
    completions = [r["completion"] for _, r in rows]
    prefix = common_prefix(completions)
    if len(prefix) < MIN_COMPLETION_PREFIX or all(c == prefix for c in completions):
        return None
    keep = " " if prefix.startswith(" ") else ""
    report.add(
        "completion_prefix",
        "info",
        f"All completions start with {_shown(prefix[:60])}; the model only needs what follows",
    )
    return Fix(
        "completion-prefix",
        f"remove the common prefix {_shown(prefix[:60])} from all {len(rows)} completions",
        len(rows),
        lambda rs: _map(rs, lambda r: {**r, "completion": keep + r["completion"][len(prefix) :]}),
        optional=True,
    )


def pick_stop(completions: list[str]) -> str:
    return next((s for s in STOPS if not any(s in c for c in completions)), FALLBACK_STOP)


def check_completion_ending(rows: Rows, report: Report) -> Fix | None:
    """Completions end with one stop sequence (common_completion_suffix_validator)."""
    if infer_task_type(rows) != "conditional generation":
        return None
    completions = [r["completion"] for _, r in rows]
    if len(set(completions)) == 1 and len(completions) > 1:
        report.add("identical_completions", "error", "All completions are identical")
        return None
    ending = common_suffix(completions)
    if ending:
        report.stats["stop"] = ending
        _report_existing_ending(report, "completion", ending, completions, "ending")
        return None
    stop = pick_stop(completions)
    report.stats["stop"] = stop
    report.add(
        "no_stop_sequence",
        "warning",
        f"Completions have no common ending; the fixed file adds {_shown(stop)} as a stop sequence",
    )
    return Fix(
        "stop",
        f"added the stop sequence {_shown(stop)} to {len(rows)} completion(s)",
        len(rows),
        lambda rs: _map(rs, lambda r: {**r, "completion": r["completion"] + stop}),
    )


def check_leading_space(rows: Rows, report: Report) -> Fix | None:
    """Completions start with a space, for tokenization (completions_space_start_validator)."""
    missing = [line for line, r in rows if not r["completion"].startswith(" ")]
    if not missing:
        return None
    report.add(
        "no_leading_space",
        "warning",
        f"{len(missing)} completion(s) don't start with a space; the fixed file adds one (better tokenization)",
    )
    return Fix(
        "leading_space",
        f"added a leading space to {len(missing)} completion(s)",
        len(missing),
        lambda rs: _map(
            rs,
            lambda r: (
                r if r["completion"].startswith(" ") else {**r, "completion": " " + r["completion"]}
            ),
        ),
    )


def _drop_silently(lines: set[int]) -> Fix:
    """Rows with errors leave the checks' view; the errors themselves block training."""
    return Fix("", "", 0, lambda rs: [(line, r) for line, r in rs if line not in lines])


RAW_CHECKS: list[Check] = [
    check_key_case,
    check_missing_keys,
    check_extra_keys,
    check_value_types,
    check_empty_completions,
    check_duplicates,
]
DATA_CHECKS: list[Check] = [
    check_long_examples,
    _uppercase_check("prompt"),
    _uppercase_check("completion"),
    check_prompt_separator,
    check_prompt_prefix,
    check_completion_prefix,
    check_completion_ending,
    check_leading_space,
]


def check_rows(
    rows: list[tuple[int, dict[str, Any]]], report: Report, apply: frozenset[str] = frozenset()
) -> Rows:
    """Run every check in prepare_data's order; return the rows with the fixes applied."""
    current: Rows = [(line, dict(row)) for line, row in rows]
    for check in RAW_CHECKS + DATA_CHECKS:
        if not current:
            break
        fix = check(current, report)
        if fix is None:
            continue
        if fix.optional and fix.name not in apply:
            report.offers.append(
                {"name": fix.name, "description": fix.description, "rows": fix.rows}
            )
            continue
        current = fix.apply(current)
        if fix.description:
            report.fixes.append(fix.description)
    if current:
        report.task_type = infer_task_type(current)
        if report.task_type == "classification":
            report.class_counts = dict(
                Counter(r["completion"].strip() for _, r in current).most_common()
            )
    return current
