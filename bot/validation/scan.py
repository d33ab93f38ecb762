"""The streaming pass over a file's rows; for big chat JSONL files, the same pass in processes.

A pass keeps compact arrays per usable example (line, token counts, a hash for duplicates, a
label id), never the rows, so memory does not grow with the file's text. A large JSONL file is
cut at line boundaries into one chunk per core; each chunk is scanned in a forked process with
the real line numbers, and the chunks' results are joined in file order, so the report is the
same as the sequential one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from array import array
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from bot.validation import chat
from bot.validation.readers import iter_jsonl
from bot.validation.report import MAX_LINES_KEPT, Report

MAX_LABELS = 1000


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class _PlainChat(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[_Message]


# Decodes a line straight into the plain chat shape, or fails: the line then takes the full path.
_PLAIN_CHAT = msgspec.json.Decoder(_PlainChat)
PARALLEL_MIN_BYTES = 2**20
SNIFF_LINES = 1000


def row_format(row: Any) -> str:
    if not isinstance(row, dict):
        return "invalid"
    if "messages" in row:
        return "chat"
    if "preferred_output" in row or "non_preferred_output" in row:
        return "preference"
    if any(str(k).lower() in ("prompt", "completion") for k in row):
        return "completion"
    return "unknown"


def check_preference(row: dict[str, Any], line: int, report: Report) -> bool:
    inp = row.get("input")
    if (
        not isinstance(inp, dict)
        or not isinstance(inp.get("messages"), list)
        or not inp["messages"]
    ):
        report.add("preference_input", "error", "Preference example needs `input.messages`", line)
        return False
    if not all(
        isinstance(m, dict) and m.get("role") in chat.ROLES and isinstance(m.get("content"), str)
        for m in inp["messages"]
    ):
        report.add(
            "preference_input",
            "error",
            "Each message of `input.messages` needs a known `role` and text `content`",
            line,
        )
        return False
    for key in ("preferred_output", "non_preferred_output"):
        out = row.get(key)
        if not (
            isinstance(out, list)
            and len(out) == 1
            and isinstance(out[0], dict)
            and out[0].get("role") == "assistant"
        ):
            report.add(
                "preference_output",
                "error",
                f"`{key}` must hold exactly one assistant message",
                line,
            )
            return False
    return True


@dataclass
class Scan:
    detected: str | None = None
    n_examples: int = 0
    stats: chat.ChatStats = field(default_factory=chat.ChatStats)
    kept_lines: array = field(default_factory=lambda: array("I"))
    hashes: array = field(default_factory=lambda: array("q"))
    label_ids: array = field(default_factory=lambda: array("i"))
    labels: dict[str, int] = field(default_factory=dict)
    legacy_rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def fast_line(self, line: int, raw: bytes, counter: chat.TokenCounter) -> bool:
        """Take a plain, problem-free chat line without building dicts; False: not that kind.

        It must agree with `chat.check_example` on every line it takes (a test holds it to
        that), and it changes nothing before it is sure.
        """
        if self.detected is not None and self.detected != "chat":
            return False
        try:
            messages = _PLAIN_CHAT.decode(raw).messages
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        if not messages:
            return False
        length = counter.length
        previous = last = None
        has_system = has_user = False
        total = mine = 0
        prefix = None
        flat: list[str] = []
        for message in messages:
            role, content = message.role, message.content
            if not content or (role == previous and role in ("user", "assistant")):
                return False
            previous = role
            has_system = has_system or role == "system"
            has_user = has_user or role == "user"
            flat += (content, role)  # as chat.example_key spells a plain message
            n = length(content)
            if role == "assistant" and prefix is None:
                prefix = total  # the full path counts content before role within a message
            total += n + length(role)
            if role == "assistant":
                mine += n
                last = content
        if last is None:
            return False
        self.detected = "chat"
        self.n_examples += 1
        stats = self.stats
        stats.missing_system += not has_system
        stats.missing_user += not has_user
        stats.n_messages.append(len(messages))
        stats.total_tokens.append(total + 3 * len(messages) + 3)
        stats.assistant_tokens.append(mine)
        stats.prefix_tokens.append(prefix if prefix is not None else total)
        label = last.strip() if len(last) <= 40 and len(last.split()) <= 3 else None
        self.hashes.append(hash(tuple(flat)))  # chat.example_key of the same messages
        self.label_ids.append(self._label_id(label))
        self.kept_lines.append(line)
        return True

    def feed_guarded(self, line: int, row: Any, report: Report, counter: chat.TokenCounter) -> None:
        """`feed`, where a shape no check foresaw is a problem on its line, never a crash."""
        try:
            self.feed(line, row, report, counter)
        except Exception as exc:
            report.add("unreadable_example", "error", unreadable_message(exc), line)

    def feed(self, line: int, row: Any, report: Report, counter: chat.TokenCounter) -> None:
        self.n_examples += 1
        fmt = row_format(row)
        if fmt in ("invalid", "unknown"):
            msg = (
                "Example is not a JSON object"
                if fmt == "invalid"
                else "Example has no `messages`, `prompt`/`completion` or preference keys"
            )
            report.add("data_type" if fmt == "invalid" else "unknown_format", "error", msg, line)
            return
        if self.detected is None:
            self.detected = fmt
        elif fmt != self.detected:
            report.add("mixed_formats", "error", f"Mixes {self.detected} and {fmt} examples", line)
            return
        if fmt == "completion":
            self.legacy_rows.append((line, row))
        elif fmt == "preference":
            if check_preference(row, line, report):
                self._count_preference(row, counter)
                self.kept_lines.append(line)
        else:
            checked = chat.check_example(row, line, report, self.stats)
            if checked is None:
                return
            counter.count(checked, self.stats)
            self.hashes.append(checked.key)
            self.label_ids.append(self._label_id(checked.label))
            self.kept_lines.append(line)

    def _count_preference(self, row: dict[str, Any], counter: chat.TokenCounter) -> None:
        """Tokens of the prompt and of both answers, counted the cookbook's way."""
        messages = [m for m in row["input"]["messages"] if isinstance(m, dict)]
        texts = [_text(v) for m in messages for k, v in m.items() if k != "weight"]
        answers = [
            _text(row[k][0].get("content")) for k in ("preferred_output", "non_preferred_output")
        ]
        answer_tokens = sum(counter.length(a) for a in answers if a)
        prompt_tokens = sum(counter.length(t) for t in texts if t)
        n_messages = len(messages) + 2
        self.stats.total_tokens.append(prompt_tokens + answer_tokens + 3 * n_messages + 3)
        self.stats.assistant_tokens.append(answer_tokens)
        self.stats.prefix_tokens.append(prompt_tokens)
        self.stats.n_messages.append(n_messages)

    def _label_id(self, label: str | None) -> int:
        """-1: no short reply; -2: too many distinct replies to be a classification task."""
        if label is None:
            return -1
        found = self.labels.get(label)
        if found is None:
            if len(self.labels) >= MAX_LABELS:
                return -2
            found = self.labels[label] = len(self.labels)
        return found

    def shift_lines(self, report: Report, offset: int) -> None:
        """Turn chunk-relative line numbers into file line numbers."""
        self.kept_lines = array("I", (np.frombuffer(self.kept_lines, np.uint32) + offset).tobytes())
        self.legacy_rows = [(line + offset, row) for line, row in self.legacy_rows]
        for issue in report.issues.values():
            issue.lines = [line + offset for line in issue.lines]

    def join(self, other: Scan, report: Report, other_report: Report) -> None:
        """Append a later chunk's results (its lines come after all of ours)."""
        self.n_examples += other.n_examples
        for code, issue in other_report.issues.items():
            mine = report.issues.get(code)
            if mine is None:
                report.issues[code] = issue
                continue
            mine.count += issue.count
            mine.lines.extend(issue.lines[: max(0, MAX_LINES_KEPT - len(mine.lines))])
        for name in ("n_messages", "total_tokens", "assistant_tokens", "prefix_tokens"):
            getattr(self.stats, name).extend(getattr(other.stats, name))
        self.stats.missing_system += other.stats.missing_system
        self.stats.missing_user += other.stats.missing_user
        self.kept_lines.extend(other.kept_lines)
        self.hashes.extend(other.hashes)
        names = list(other.labels)
        for label_id in other.label_ids:
            self.label_ids.append(label_id if label_id < 0 else self._label_id(names[label_id]))


def unreadable_message(exc: Exception) -> str:
    if isinstance(exc, UnicodeError):
        return "Example has text that is not valid Unicode (e.g. a lone surrogate like \\ud800)"
    if isinstance(exc, RecursionError):
        return "Example is nested too deeply to check"
    if isinstance(exc, TypeError):
        return "Example has a value of the wrong type (e.g. a list or object where text belongs)"
    if isinstance(exc, ValueError):
        return "Example has a value that can't be read (e.g. a number with thousands of digits)"
    return "Example could not be checked; see the format guide in `/help validate`"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def sniff_format(path: Path) -> str | None:
    """The format of the first row that has one, looking at the first lines only."""
    with open(path, "rb") as fh:
        for _, raw in zip(range(SNIFF_LINES), fh, strict=False):
            try:
                fmt = row_format(json.loads(raw.lstrip(b"\xef\xbb\xbf")))
            except (ValueError, RecursionError):
                continue
            if fmt not in ("invalid", "unknown"):
                return fmt
    return None


def can_fork() -> bool:
    """Forking is only safe from a process with no other threads (the CLI, not the bot)."""
    return (
        threading.active_count() == 1
        and "fork" in multiprocessing.get_all_start_methods()
        and (os.cpu_count() or 1) > 1
    )


def chunk_bounds(path: Path, parts: int) -> list[tuple[int, int]]:
    """(start byte, end byte) of `parts` chunks that begin and end at line boundaries."""
    size = path.stat().st_size
    starts = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            fh.seek(max(starts[-1], size * i // parts))
            fh.readline()
            starts.append(min(fh.tell(), size))
    ends = starts[1:] + [size]
    return [(start, end) for start, end in zip(starts, ends, strict=True) if end > start]


def count_lines(path: Path, start: int, end: int) -> int:
    newlines = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            block = fh.read(min(remaining, 1 << 22))
            if not block:
                break
            newlines += block.count(b"\n")
            remaining -= len(block)
    return newlines


_FORKED: dict[str, Any] = {}


def _scan_chunk(job: tuple[Path, str, int, int, str]) -> tuple[Scan, Report, int]:
    """Scan one chunk with line numbers counted from its start; the parent shifts them."""
    path, filename, start, end, detected = job
    report = Report(filename)
    scan = Scan(detected=detected)
    counter = chat.TokenCounter(_FORKED["encoding"])
    fast = partial(scan.fast_line, counter=counter)
    for line, row in iter_jsonl(path, report, start=start, end=end, first_line=1, fast=fast):
        scan.feed_guarded(line, row, report, counter)
    return scan, report, count_lines(path, start, end)


def parallel_scan(path: Path, filename: str, report: Report, encoding: Any, workers: int) -> Scan:
    """Scan a chat JSONL file in `workers` forked processes; results equal the sequential pass."""
    report.file_format = "jsonl"
    detected = sniff_format(path) or "chat"
    jobs = [(path, filename, start, end, detected) for start, end in chunk_bounds(path, workers)]
    _FORKED["encoding"] = encoding
    context = multiprocessing.get_context("fork")
    if len(jobs) == 1:
        parts = [_scan_chunk(jobs[0])]
    else:
        # The first chunk is scanned here while forked workers take the others.
        with ProcessPoolExecutor(len(jobs) - 1, mp_context=context) as pool:
            later = pool.map(_scan_chunk, jobs[1:])
            parts = [_scan_chunk(jobs[0]), *later]
    scan, first_report, offset = parts[0]
    report.issues.update(first_report.issues)
    for later, later_report, n_lines in parts[1:]:
        later.shift_lines(later_report, offset)
        scan.join(later, report, later_report)
        offset += n_lines
    return scan
