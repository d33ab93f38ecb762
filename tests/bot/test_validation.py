"""Validator: reference-data counts from a reading of the cookbook/prepare_data logic, a corpus
of broken files, and a hypothesis fuzz run."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.validation import default_epochs, validate_file
from tests.conftest import reference_file


def test_dbpedia_matches_prepare_data() -> None:
    r = validate_file(reference_file("dbpedia_samples.jsonl"), model="babbage-002")
    assert r.data_format == "completion" and r.n_examples == 200
    # 14 classes in 200 rows: unique completions < n/3 -> classification
    assert r.task_type == "classification" and len(r.class_counts) == 14
    # no common prompt suffix, so a separator is suggested; " ->" since no prompt has a newline?
    assert "no_separator" in r.issues and "no_leading_space" in r.issues
    assert r.count("duplicates") == 0 and r.ok
    assert r.fixed_train is not None and r.fixed_valid is not None
    n_valid = len(r.fixed_valid.splitlines())
    assert n_valid == 200 - max(200 - 1000, int(200 * 0.8))


def test_toy_chat_matches_the_cookbook() -> None:
    r = validate_file(reference_file("toy_chat_fine_tuning.jsonl"), model="gpt-3.5-turbo")
    assert r.n_examples == 5 and r.data_format == "chat"
    assert not any(
        i.code
        in {
            "data_type",
            "missing_messages_list",
            "message_missing_key",
            "message_unrecognized_key",
            "unrecognized_role",
            "missing_content",
            "example_missing_assistant_message",
        }
        for i in r.issues.values()
    )
    assert r.stats["missing_system"] == 1 and r.stats["missing_user"] == 1
    assert r.estimate["n_epochs"] == 20  # 100 // 5
    # The cookbook printed ~4306 tokens with its 4096-token cap; the longest example is 8032.
    longest = r.stats["tokens_per_example"]["max"]
    assert r.estimate["dataset_tokens"] - longest + 4096 == 4306
    assert not r.ok and "too_few_examples" in r.issues  # 5 < 10 minimum


def test_drone_tool_calling_is_valid() -> None:
    r = validate_file(reference_file("drone_training.jsonl"), model="gpt-4o-mini")
    assert r.n_examples == 87
    assert r.errors == []


def test_default_epochs_rule() -> None:
    assert [default_epochs(n) for n in (5, 40, 100, 9000, 30000)] == [20, 3, 3, 2, 1]


def chat(n: int, **extra: object) -> str:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"q{i}"},
                    {"role": "assistant", "content": f"a{i}"},
                ],
                **extra,
            }
        )
        + "\n"
        for i in range(n)
    )


def _xlsx(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_excel(buf, index=False)
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.jsonl", chat(3))
    return buf.getvalue()


BROKEN: list[tuple[str, bytes, str]] = [
    ("empty.jsonl", b"", "unreadable"),
    ("spaces.jsonl", b"   \n\n", "unreadable"),
    ("zip.jsonl", _zip(), "unreadable"),
    ("binary.jsonl", b"\x00\x01\x02" * 100, "unreadable"),
    ("bad.exe", b"hello", "unreadable"),
    ("noext", b"hello", "unreadable"),
    ("notjson.jsonl", b"{oops\n" + chat(12).encode(), "invalid_json"),
    ("latin1.jsonl", chat(12).encode() + b'{"x": "\xe9"}\n', "invalid_utf8"),
    ("list.jsonl", b"[1,2,3]\n" + chat(12).encode(), "data_type"),
    ("number.jsonl", b"42\n" + chat(12).encode(), "data_type"),
    ("nomsgs.jsonl", b'{"messages": []}\n' + chat(12).encode(), "missing_messages_list"),
    (
        "norole.jsonl",
        b'{"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]}\n'
        + chat(12).encode(),
        "message_missing_key",
    ),
    (
        "badkey.jsonl",
        b'{"messages": [{"role": "user", "content": "x", "foo": 1}, {"role": "assistant", "content": "y"}]}\n'
        + chat(12).encode(),
        "message_unrecognized_key",
    ),
    (
        "badrole.jsonl",
        b'{"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}\n'
        + chat(12).encode(),
        "unrecognized_role",
    ),
    (
        "nocontent.jsonl",
        b'{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}\n'
        + chat(12).encode(),
        "missing_content",
    ),
    (
        "intcontent.jsonl",
        b'{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}\n'
        + chat(12).encode(),
        "missing_content",
    ),
    (
        "noassistant.jsonl",
        b'{"messages": [{"role": "user", "content": "x"}]}\n' + chat(12).encode(),
        "example_missing_assistant_message",
    ),
    (
        "weight.jsonl",
        b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 0.5}]}\n'
        + chat(12).encode(),
        "bad_weight",
    ),
    ("few.jsonl", chat(3).encode(), "too_few_examples"),
    ("mixed.jsonl", chat(12).encode() + b'{"prompt": "a", "completion": "b"}\n', "mixed_formats"),
    ("unknown.jsonl", b'{"foo": 1}\n' + chat(12).encode(), "unknown_format"),
    ("deep.jsonl", b"[" * 100000 + b"]" * 100000 + b"\n" + chat(12).encode(), "too_deep"),
    (
        "pref.jsonl",
        b'{"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []}\n',
        "preference_input",
    ),
    (
        "pref2.jsonl",
        b'{"input": {"messages": [{"role": "user", "content": "x"}]}, "preferred_output": [{"role": "user", "content": "y"}], "non_preferred_output": []}\n',
        "preference_output",
    ),
    (
        "ragged.csv",
        b"prompt,completion\na,b\nc,d,e,f\n" + b"".join(b"p%d,c%d\n" % (i, i) for i in range(12)),
        "ragged_rows",
    ),
    ("nocompletion.csv", b"prompt,other\na,b\n", "missing_completion"),
    ("emptyxlsx.xlsx", _xlsx(pd.DataFrame({"prompt": [], "completion": []})), "no_examples"),
    ("brokenxlsx.xlsx", b"PK\x03\x04garbage", "unreadable"),
    ("nan.csv", b"prompt,completion\na,\nb,\n", "too_few_examples"),
    ("objcompl.jsonl", b'{"prompt": "a", "completion": {"x": 1}}\n', "non_string"),
    (
        "identical.jsonl",
        b"".join(
            json.dumps({"prompt": "same", "completion": f" c{i}"}).encode() + b"\n"
            for i in range(12)
        ),
        "identical_prompts",
    ),
    (
        "identcompl.jsonl",
        b"".join(
            json.dumps({"prompt": f"p{i} ->", "completion": " same thing here"}).encode() + b"\n"
            for i in range(2)
        ),
        "too_few_examples",
    ),
    ("jsonobj.json", b'{"prompt": "a", "completion": "b"}', "too_few_examples"),
    ("jsonarr_bad.json", b'[{"messages": 1}]', "missing_messages_list"),
    ("txt_empty.txt", b"\n\n\n", "unreadable"),
    ("bom_only.jsonl", b"\xef\xbb\xbf", "no_examples"),
    (
        "huge_line.jsonl",
        b'{"messages": [{"role": "user", "content": "'
        + b"x" * 3_000_000
        + b'"}, {"role": "assistant", "content": "y"}]}\n',
        "too_few_examples",
    ),
    (
        "null_msg.jsonl",
        b'{"messages": [null, {"role": "assistant", "content": "y"}]}\n' + chat(12).encode(),
        "message_not_object",
    ),
    ("truncated.jsonl", chat(12).encode() + b'{"messages": [{"role": "us', "invalid_json"),
    ("dupcols.csv", b"prompt,input,completion\na,b,c\n", "duplicate_columns"),
    ("tsv_bad.tsv", b"prompt\tcompletion\nx\n", "too_few_examples"),
]


@pytest.mark.parametrize(("name", "content", "code"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_corpus(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    report = validate_file(path, model="gpt-4o-mini", max_bytes=50 * 2**20)
    assert code in report.issues, report.to_dict()["issues"]
    assert not report.ok
    assert report.summary_text()


def test_corpus_is_big_enough() -> None:
    assert len(BROKEN) >= 40


def test_line_numbers_point_at_the_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        chat(5) + "{bad\n" + chat(5) + '{"messages": [{"role": "user", "content": "x"}]}\n'
    )
    r = validate_file(path)
    assert r.issues["invalid_json"].lines == [6]
    assert r.issues["example_missing_assistant_message"].lines == [12]
    assert "line 6" in r.summary_text()


def test_size_cap_is_enforced_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"x" * 2048)
    assert "too_large" in validate_file(path, max_bytes=1024).issues


def test_csv_aliases_are_mapped_and_converted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Question,Answer\n" + "".join(f"q{i} ->, a{i}\n" for i in range(12)))
    r = validate_file(path, model="babbage-002")
    assert r.ok and any("Mapped columns" in n for n in r.notes)
    first = json.loads(r.fixed.splitlines()[0])
    assert set(first) == {"prompt", "completion"}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode),
    st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt", ".xlsx"]),
)
def test_fuzz_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(content)
    report = validate_file(path)
    assert isinstance(report.summary_text(), str)
    json.dumps(report.to_dict())


def test_local_models_are_counted_with_their_own_tokenizer(tmp_path: Path) -> None:
    from tests.conftest import model_cache

    cache = Path(model_cache())
    if not (cache / "smollm2-135m-instruct" / "tokenizer.json").exists():
        pytest.skip("the engine has not cached its base model here yet")
    data = tmp_path / "t.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Say {i}"},
                {"role": "assistant", "content": "ok"},
            ]
        }
        for i in range(12)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    local = validate_file(data, model="smollm2-135m-instruct", tokenizer_dirs=[cache])
    assert local.estimate["encoding"] == "smollm2-135m-instruct tokenizer"
    assert not local.notes
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(cache / "smollm2-135m-instruct" / "tokenizer.json"))
    expected = sum(
        sum(
            len(tok.encode(v, add_special_tokens=False).ids)
            for m in r["messages"]
            for v in m.values()
        )
        + 3 * 2
        + 3
        for r in rows
    )
    assert local.estimate["dataset_tokens"] == expected
    fallback = validate_file(data, model="smollm2-135m-instruct")
    assert fallback.estimate["encoding"] == "o200k_base" and "not found" in fallback.notes[0]


def test_parallel_scan_gives_the_same_report_as_the_sequential_one(tmp_path: Path) -> None:
    from bot.validation.scan import can_fork

    if not can_fork():
        pytest.skip("forking needs a single-threaded process and 2+ cores")
    lines = []
    for i in range(3000):
        label = ["yes", "no", "maybe"][(i % 1700) % 3]
        row = {
            "messages": [
                {"role": "user", "content": f"q {i % 1700}"},
                {"role": "assistant", "content": label},
            ]
        }
        if i % 401 == 0:
            row["messages"][1]["role"] = "robot"  # an error
        if i % 577 == 0:
            row["messages"].insert(1, {"role": "user", "content": "again"})  # a warning
        lines.append(json.dumps(row))
        if i % 997 == 0:
            lines.append("{not json")
        if i % 1300 == 0:
            lines.append("")
    data = tmp_path / "big.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    sequential = validate_file(data, model="gpt-4o-mini", workers=1)
    for workers in (2, 3):
        parallel = validate_file(data, model="gpt-4o-mini", workers=workers)
        assert parallel.to_dict() == sequential.to_dict()
        assert parallel.fixed == sequential.fixed and parallel.fixed is not None
    issues = {i["code"]: i for i in sequential.to_dict()["issues"]}
    assert {
        "bom",
        "invalid_json",
        "unrecognized_role",
        "roles_not_alternating",
        "duplicates",
    } <= set(issues)
    assert issues["duplicates"]["count"] > 1000  # repeats span the chunks of the file


def test_the_fast_path_agrees_with_the_full_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.validation.scan import Scan

    variants = [
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"}],
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a b c d"},
        ],
        [{"role": "developer", "content": "d"}, {"role": "assistant", "content": "no"}],
        [
            {"role": "user", "content": "q"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "x"},
        ],
        [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}],
        [{"role": "user", "content": "only a question"}],
        [{"content": "q", "role": "user"}, {"content": "yes", "role": "assistant"}],
        [{"role": "user", "content": "q", "name": "bob"}, {"role": "assistant", "content": "yes"}],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "yes", "weight": 1}],
        [{"role": "tool", "content": "t"}, {"role": "assistant", "content": "yes"}],
        [],
    ]
    lines = []
    for i in range(60):
        messages = json.loads(json.dumps(variants[i % len(variants)]))
        for m in messages:
            if m.get("content") and m["role"] != "assistant":
                m["content"] += f" {i % 25}"
        lines.append(json.dumps({"messages": messages}))
    lines.insert(7, json.dumps({"messages": variants[0], "tools": []}))
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n")
    fast = validate_file(data, model="gpt-4o-mini", workers=1)
    monkeypatch.setattr(Scan, "fast_line", lambda self, line, raw, counter: False)
    full = validate_file(data, model="gpt-4o-mini", workers=1)
    assert fast.to_dict() == full.to_dict()
    assert fast.fixed == full.fixed
    assert fast.count("roles_not_alternating") > 0 and fast.count("duplicates") > 0
