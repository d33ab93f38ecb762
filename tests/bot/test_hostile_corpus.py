"""A hostile-input corpus: files and command lines built to break tuneup, one assertion each.

Every file gets a report (never an exception), is not called ready, and names its line where one
is at fault; every command line gets a plain answer. Nothing shows a Python exception's name.
Time and memory are bounded by the validator's own caps (line length, unpacked XLSX size) and,
for everything else, by the child process limits, which are tested here too.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.context import Context
from bot.providers import Providers
from bot.router import dispatch
from bot.settings import Settings
from bot.types import Command
from bot.validation import validate_file
from bot.validation.bounded import validate_bounded
from storage.db import open_database

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
PYTHON_WORDS = ("Traceback", "Error:", "TypeError", "ValueError", "KeyError", "object has no")


def good_lines(n: int = 12) -> list[str]:
    return [
        json.dumps(
            {
                **GOOD,
                "messages": [*GOOD["messages"][:1], {"role": "assistant", "content": f"yo {i}"}],
            }
        )
        for i in range(n)
    ]


def with_bad(bad: str, at: int = 13) -> bytes:
    lines = good_lines()
    lines.insert(at - 1, bad)
    return ("\n".join(lines) + "\n").encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def xlsx_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 2**20))
    return buf.getvalue()


def chat_csv(cell: str) -> bytes:
    rows = ["messages"] + ['"' + json.dumps(GOOD["messages"]).replace('"', '""') + '"'] * 11
    return ("\n".join([*rows, cell]) + "\n").encode()


# (file name, contents, the line that must be named, or None when the whole file is at fault)
FILES: list[tuple[str, Callable[[], bytes], int | None]] = [
    (
        "bigint.jsonl",
        lambda: with_bad('{"messages": [{"role": "user", "content": ' + "9" * 5000 + "}]}"),
        13,
    ),
    ("bigint_first.jsonl", lambda: with_bad('{"n": ' + "1" * 6000 + "}", 1), 1),
    (
        "role_list.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": ["user"], "content": "x"}, {"role": "assistant", "content": "y"}]}'
        ),
        13,
    ),
    (
        "role_object.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": {"a": 1}, "content": "x"}, {"role": "assistant", "content": "y"}]}'
        ),
        13,
    ),
    (
        "surrogate.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "y"}]}'
        ),
        13,
    ),
    ("deep.jsonl", lambda: with_bad(nested(20000)), 13),
    ("deep_object.jsonl", lambda: with_bad('{"a":' * 5000 + "1" + "}" * 5000), 13),
    (
        "giant_line.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "user", "content": "' + "a" * (5 * 2**20) + '"}]}'
        ),
        13,
    ),
    ("not_json.jsonl", lambda: with_bad("this is not json"), 13),
    ("truncated.jsonl", lambda: with_bad('{"messages": [{"role": "user"'), 13),
    ("null_line.jsonl", lambda: with_bad("null"), 13),
    ("number_line.jsonl", lambda: with_bad("42"), 13),
    ("string_line.jsonl", lambda: with_bad('"just a string"'), 13),
    ("list_line.jsonl", lambda: with_bad("[1, 2, 3]"), 13),
    ("messages_string.jsonl", lambda: with_bad('{"messages": "hello"}'), 13),
    ("messages_numbers.jsonl", lambda: with_bad('{"messages": [1, 2]}'), 13),
    ("messages_empty.jsonl", lambda: with_bad('{"messages": []}'), 13),
    (
        "content_object.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "user", "content": {"x": 1}}, {"role": "assistant", "content": "y"}]}'
        ),
        13,
    ),
    (
        "unknown_role.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}'
        ),
        13,
    ),
    (
        "injection_role.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "<!channel> <https://evil.example|Download fixed file>", "content": "x"}, {"role": "assistant", "content": "y"}]}'
        ),
        13,
    ),
    (
        "no_assistant.jsonl",
        lambda: with_bad('{"messages": [{"role": "user", "content": "x"}]}'),
        13,
    ),
    (
        "weight_string.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": "heavy"}]}'
        ),
        13,
    ),
    ("nul_bytes.jsonl", lambda: b"\x00\x01\x02" * 1000, None),
    ("zip_renamed.jsonl", lambda: b"PK\x03\x04" + b"\x00" * 200, None),
    ("empty.jsonl", lambda: b"", None),
    ("blank.jsonl", lambda: b"\n\n   \n\t\n", None),
    ("utf16.jsonl", lambda: "\n".join(good_lines()).encode("utf-16"), None),
    (
        "latin1.jsonl",
        lambda: with_bad(
            '{"messages": [{"role": "user", "content": "caf\xe9"}]}'.encode("latin-1").decode(
                "latin-1"
            )
        ).replace("caf\xc3\xa9".encode(), b"caf\xe9"),
        13,
    ),
    ("bom_then_garbage.jsonl", lambda: b"\xef\xbb\xbf" + b"garbage\n" * 12, 1),
    ("fake.xlsx", lambda: b"this is not a spreadsheet", None),
    ("bomb.xlsx", xlsx_bomb, None),
    ("deep_cell.csv", lambda: chat_csv('"' + nested(20000) + '"'), None),
    (
        "ragged.csv",
        lambda: b"prompt,completion\n" + b"What is 2 plus 2?, It is 4, I think\n" * 12,
        None,
    ),
    ("array_of_numbers.json", lambda: b"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]", 1),
    ("top_string.json", lambda: b'"hello"', None),
    ("deep_array.json", lambda: nested(50000).encode(), None),
    ("wrong_ext.exe", lambda: b"MZ" + b"\x00" * 100, None),
]


@pytest.mark.parametrize(("name", "make", "line"), FILES, ids=[f[0] for f in FILES])
def test_hostile_file_gets_a_true_report(
    tmp_path: Path, name: str, make: Callable[[], bytes], line: int | None
) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    report = validate_file(path, name, max_bytes=50 * 2**20)
    named = [i for i in report.issues.values() if i.severity == "error"]
    text = json.dumps(report.to_dict())
    assert not report.ok and named, text[:500]
    assert not any(word in text for word in PYTHON_WORDS), text[:500]
    if line is not None:
        assert any(line in i.lines for i in named), [(i.code, i.lines[:5]) for i in named]


def test_time_limit_stops_a_slow_check(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(good_lines(50)) + "\n")
    report = validate_bounded(path, timeout=0.01)
    assert not report.ok and "took longer than" in report.top_problems()[0]


def test_memory_limit_stops_a_greedy_check(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(good_lines(50)) + "\n")
    report = validate_bounded(path, memory_bytes=64 * 2**20)  # too little to even start
    assert not report.ok and "memory limit" in report.top_problems()[0]


def test_bounded_check_of_a_good_file_is_the_full_report(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(good_lines(50)) + "\n")
    assert validate_bounded(path).to_dict() == validate_file(path).to_dict()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings(
        data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_autostart=False
    )
    return Context(settings, open_database(settings.sqlite_url), Providers(settings))


COMMANDS = [
    ("validate", "dataset=1' OR 1=1--"),
    ("validate", "dataset=1; DROP TABLE jobs"),
    ("validate", "dataset=" + "9" * 30),
    ("validate", "dataset=-1 fixed=yes"),
    ("finetune", "dataset=1 OR 1=1"),
    ("finetune", "lr=nan"),
    ("finetune", "lr=inf"),
    ("finetune", "epochs=1e999"),
    ("finetune", "epochs=" + "9" * 5000),
    ("finetune", "batch=-4"),
    ("status", "1" + "0" * 26),
    ("status", "'; SELECT * FROM jobs; --"),
    ("status", "\x00\x01"),
    ("cancel", "#" * 500),
    ("cancel", "1 confirm=yes"),
    ("ask-model", "model=ft:foreign:local::deadbeef hello"),
    ("ask-model", "<!channel> " * 100),
    ("ask-model", "x" * 50000),
    ("models", '"unclosed'),
    ("help", "../../etc/passwd"),
    ("tuneup", "rm -rf /"),
    ("../../etc", ""),
]


@pytest.mark.parametrize(("name", "text"), COMMANDS)
async def test_hostile_command_gets_a_plain_answer(ctx: Context, name: str, text: str) -> None:
    reply = await dispatch(ctx, Command("slack", "T1", "C1", "U1", name, text))
    plain = reply.plain()
    assert plain and not any(word in plain for word in PYTHON_WORDS), plain[:300]
