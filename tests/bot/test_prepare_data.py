"""Every prepare_data check (openai-python 0.28.1 validators.py), with the report AND the fixed bytes.

A report never announces a change the fixed file does not hold: each case reads the fixed file
back and checks the rows. Optional fixes are offered, not applied, until asked for by name.
Every file called ready also passes the local engine's own file validation (the file /finetune
would upload: the fixed one when there is one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.validation import validate_file
from bot.validation.report import Report
from engine.api_jobs import check_method_fits
from engine.data import read_rows

WORDS = [
    "apple",
    "pear",
    "plum",
    "kiwi",
    "lime",
    "fig",
    "date",
    "melon",
    "grape",
    "peach",
    "mango",
    "guava",
]


def pc(prompt: object, completion: object, **extra: object) -> dict:
    return {"prompt": prompt, "completion": completion, **extra}


def reviews(n: int = 12, sep: str = "") -> list[dict]:
    return [
        pc(f"Review {i}: the kettle {'works' if i % 2 else 'broke'}{sep}", f"answer {i}")
        for i in range(n)
    ]


def write(tmp: Path, rows: list, name: str = "data.jsonl") -> Path:
    path = tmp / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fixed_rows(report: Report) -> list[dict]:
    assert report.fixed is not None, "the report announces fixes but wrote no fixed file"
    return [json.loads(line) for line in report.fixed.splitlines()]


def engine_accepts(report: Report, path: Path, tmp: Path) -> None:
    """The file /finetune uploads for a ready report passes the engine's own validation."""
    upload = path
    if report.fixed is not None:
        upload = tmp / "upload.jsonl"
        upload.write_bytes(report.fixed)
    rows = read_rows(upload)
    check_method_fits(
        "dpo" if report.data_format == "preference" else "supervised", rows, "training_file"
    )


def test_capitalised_keys_are_lowercased(tmp_path: Path) -> None:
    rows = [{"Prompt": r["prompt"], "COMPLETION": r["completion"]} for r in reviews()]
    report = validate_file(write(tmp_path, rows))
    assert report.ok and any("lowercased the keys" in f for f in report.fixes)
    assert all(set(r) == {"prompt", "completion"} for r in fixed_rows(report))
    engine_accepts(report, tmp_path / "data.jsonl", tmp_path)


def test_a_row_without_prompt_is_an_error_in_both(tmp_path: Path) -> None:
    rows = [*reviews(), {"completion": "orphan"}]
    report = validate_file(write(tmp_path, rows))
    assert not report.ok and report.issues["missing_prompt"].lines == [13]
    with pytest.raises(ValueError, match="Line 13"):
        read_rows(tmp_path / "data.jsonl")


def test_extra_keys_are_removed_from_the_fixed_file(tmp_path: Path) -> None:
    rows = [{**r, "id": i, "source": "web"} for i, r in enumerate(reviews())]
    report = validate_file(write(tmp_path, rows))
    assert report.ok and "extra_columns" in report.issues
    assert any(f == "removed extra keys id, source from 12 row(s)" for f in report.fixes)
    assert all(set(r) == {"prompt", "completion"} for r in fixed_rows(report))
    engine_accepts(report, tmp_path / "data.jsonl", tmp_path)


def test_numbers_train_as_text_and_null_rows_are_dropped(tmp_path: Path) -> None:
    rows = [pc(f"What is {i} + {i}? ->", 2 * i) for i in range(12)] + [pc("Nothing ->", None)]
    report = validate_file(write(tmp_path, rows))
    assert report.ok, report.top_problems()
    out = fixed_rows(report)
    # text, a leading space, and the stop sequence of conditional generation
    assert [r["completion"] for r in out][:3] == [" 0\n", " 2\n", " 4\n"] and len(out) == 12
    assert report.issues["empty_completion"].lines == [13]
    engine_accepts(report, tmp_path / "data.jsonl", tmp_path)


def test_empty_and_blank_completions_are_removed_even_without_other_fixes(tmp_path: Path) -> None:
    rows = [pc(f"q{i} ->", f" a{i}\n") for i in range(12)] + [pc("q ->", ""), pc("r ->", "   ")]
    report = validate_file(write(tmp_path, rows))
    assert report.ok and report.issues["empty_completion"].lines == [13, 14]
    assert [r["prompt"] for r in fixed_rows(report)] == [f"q{i} ->" for i in range(12)]
    engine_accepts(report, tmp_path / "data.jsonl", tmp_path)


def test_duplicates_are_removed_first_one_stays(tmp_path: Path) -> None:
    rows = [pc(f"q{i} ->", f" a{i}\n") for i in range(12)]
    rows.insert(5, rows[2])
    report = validate_file(write(tmp_path, rows))
    assert report.issues["duplicates"].lines == [6]
    assert [r["prompt"] for r in fixed_rows(report)] == [f"q{i} ->" for i in range(12)]


def test_separator_is_added_only_where_missing(tmp_path: Path) -> None:
    rows = [
        pc(f"Review {i}: fine ->" if i % 3 else f"Review {i}: fine", f" ok {i}\n")
        for i in range(12)
    ]
    rows.append(pc("", " lonely\n"))
    report = validate_file(write(tmp_path, rows))
    prompts = [r["prompt"] for r in fixed_rows(report)]
    assert all(p.endswith(" ->") and not p.endswith("-> ->") for p in prompts[:12])
    assert prompts[12] == "" and report.issues["empty_prompt"].lines == [13]
    assert any(f == "added the separator ' ->' to 4 prompt(s)" for f in report.fixes)


def test_separator_avoids_what_prompts_contain(tmp_path: Path) -> None:
    rows = [pc(f"Line one\nline {WORDS[i]}", f" ok {i}\n") for i in range(12)]
    report = validate_file(write(tmp_path, rows))
    assert all(r["prompt"].endswith("\n\n###\n\n") for r in fixed_rows(report))


def test_identical_prompts_are_an_error(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path, [pc("same ->", f" c{i}\n") for i in range(12)]))
    assert not report.ok and "identical_prompts" in report.issues


def test_common_separator_warnings(tmp_path: Path) -> None:
    long_sep = "\n\n#### END OF INPUT ####\n\n"
    rows = [pc(f"q{i}{long_sep}", f" a{i}\n") for i in range(11)] + [
        pc(f"x{long_sep}y{long_sep}", " b\n")
    ]
    report = validate_file(write(tmp_path, rows))
    assert "long_separator" in report.issues and "separator_repeats" in report.issues
    assert report.fixed is None  # nothing changes, so no fixed file claims to


def test_stop_sequence_is_added_for_conditional_generation(tmp_path: Path) -> None:
    rows = [pc(f"Summarise {i} ->", f" a summary about {WORDS[i]}") for i in range(12)]
    report = validate_file(write(tmp_path, rows))
    assert report.task_type == "conditional generation" and "no_stop_sequence" in report.issues
    assert all(r["completion"].endswith("\n") for r in fixed_rows(report))
    assert report.stats["stop"] == "\n" and report.stats["separator"] == " ->"


def test_repeated_and_long_completion_endings_are_warned(tmp_path: Path) -> None:
    end = " ### END OF ANSWER ###"
    rows = [pc(f"q{i} ->", f" a{i}{end}") for i in range(11)] + [pc("x ->", f" b{end} c{end}")]
    report = validate_file(write(tmp_path, rows))
    assert "long_ending" in report.issues and "ending_repeats" in report.issues


def test_open_ended_data_gets_the_leading_space(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("".join(f"Once upon a time number {i}.\n" for i in range(12)))
    report = validate_file(path)
    assert report.task_type == "open-ended generation"
    assert all(r["completion"].startswith(" Once") for r in fixed_rows(report))
    engine_accepts(report, path, tmp_path)


def test_optional_fixes_are_offered_then_applied_by_name(tmp_path: Path) -> None:
    instruction = "Classify the sentiment of this product review carefully: "
    rows = [
        pc(
            f"{instruction}REVIEW {i} IS {'GOOD' if i % 2 else 'BAD'} ->",
            f" RESULT: {'POS' if i % 2 else 'NEG'}\n",
        )
        for i in range(30)
    ]
    rows.append(pc(instruction + "x" * 10_050 + " ->", " RESULT: POS\n"))
    path = write(tmp_path, rows)
    offered = validate_file(path)
    assert {o["name"] for o in offered.offers} == {
        "lowercase",
        "prefix",
        "completion-prefix",
        "long",
    }
    assert offered.fixed is None and offered.ok  # offered, not applied: the original is uploaded
    applied = validate_file(
        path, apply=frozenset({"lowercase", "prefix", "completion-prefix", "long"})
    )
    out = fixed_rows(applied)
    # the instruction (and the shared "REVIEW ") went; the mostly-lowercase prompts stay as they are
    assert len(out) == 30 and out[0]["prompt"] == "0 IS BAD ->"
    assert out[0]["completion"] == " neg\n"  # the common prefix went, its leading space stayed
    assert not applied.offers and len(applied.fixes) == 4  # lowercase, two prefixes, long
    engine_accepts(applied, path, tmp_path)


def test_classification_always_gets_its_split(tmp_path: Path) -> None:
    rows = [pc(f"Review {i}: text {i} ->", f" {['pos', 'neg', 'mixed'][i % 3]}") for i in range(60)]
    report = validate_file(write(tmp_path, rows))
    assert report.task_type == "classification" and report.fixed is None  # nothing to fix...
    train = [json.loads(x) for x in report.fixed_train.splitlines()]
    valid = [json.loads(x) for x in report.fixed_valid.splitlines()]
    assert len(train) == 48 and len(valid) == 12  # ...but the split is always there
    assert {r["completion"] for r in valid} == {" pos", " neg", " mixed"}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in valid}


def test_json_array_issues_name_item_and_line(tmp_path: Path) -> None:
    rows = [pc(f"q{i} ->", f" a{i}\n") for i in range(12)]
    text = (
        "[\n" + ",\n".join(json.dumps(r, indent=2) for r in rows[:5]) + ',\n{"completion": "x"}\n]'
    )
    path = tmp_path / "data.json"
    path.write_text(text)
    report = validate_file(path)
    issue = report.issues["missing_prompt"]
    assert issue.lines == [6] and "item 6, line 22" in report.where(issue)


def test_csv_unquoted_comma_is_an_error_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    body = "".join(f"Question {i}?,Answer {i}\n" for i in range(12))
    path.write_text("prompt,completion\n" + body + "What is 2 plus 2?, It is 4, I think\n")
    report = validate_file(path)
    assert not report.ok and report.issues["ragged_rows"].lines == [14]


def test_capitalised_csv_headers_match_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text(
        "Prompt,Completion\n" + "".join(f"Question {i}? ->, Answer {i}\n" for i in range(12))
    )
    report = validate_file(path)
    assert report.ok and all(set(r) == {"prompt", "completion"} for r in fixed_rows(report))
    engine_accepts(report, path, tmp_path)


def _agreement_corpus() -> list[tuple[str, bytes]]:
    from tests.bot.test_hostile_corpus import FILES
    from tests.bot.test_validation import BROKEN
    from tests.conftest import REFERENCE_DATA

    corpus = [(name, content) for name, content, _ in BROKEN]
    corpus += [(name, make()) for name, make, _ in FILES if not name.startswith(("giant", "bomb"))]
    corpus += [(p.name, p.read_bytes()) for p in sorted(REFERENCE_DATA.glob("*.jsonl"))]
    corpus += [
        (
            "tool_no_content.jsonl",
            _chat_with({"role": "tool", "tool_call_id": "c1", "tool_calls": []}),
        ),
        (
            "weights_zero.jsonl",
            _chat_with({"role": "assistant", "content": "y", "weight": 0}, last=True),
        ),
        (
            "bare_string_parts.jsonl",
            _chat_with({"role": "assistant", "content": ["a", "b"]}, last=True),
        ),
        (
            "bad_arguments.jsonl",
            _chat_with(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{not json"},
                        }
                    ],
                },
                last=True,
            ),
        ),
        (
            "dpo_no_roles.jsonl",
            b"".join(
                json.dumps(
                    {
                        "input": {"messages": [{"content": f"q{i}"}]},
                        "preferred_output": [{"role": "assistant", "content": "good"}],
                        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
                    }
                ).encode()
                + b"\n"
                for i in range(12)
            ),
        ),
    ]
    return corpus


def _chat_with(message: dict, last: bool = False) -> bytes:
    good = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(12)
    ]
    odd = (
        {"messages": [{"role": "user", "content": "x"}, message]}
        if last
        else {
            "messages": [
                {"role": "user", "content": "x"},
                message,
                {"role": "assistant", "content": "y"},
            ]
        }
    )
    return b"".join(json.dumps(r).encode() + b"\n" for r in [*good, odd])


def test_ready_means_the_engine_accepts_it(tmp_path: Path) -> None:
    """Every file of every corpus: what the report calls ready passes the engine's validation,
    and each of the shapes the engine refuses is an error in the report too."""
    ready = []
    refused_by_engine = {
        "tool_no_content.jsonl",
        "weights_zero.jsonl",
        "bare_string_parts.jsonl",
        "bad_arguments.jsonl",
        "dpo_no_roles.jsonl",
    }
    for name, content in _agreement_corpus():
        path = tmp_path / name
        path.write_bytes(content)
        report = validate_file(path, name, max_bytes=50 * 2**20)
        if report.ok:
            engine_accepts(report, path, tmp_path)
            ready.append(name)
        if name in refused_by_engine:
            assert not report.ok, name
            with pytest.raises(ValueError):
                rows = read_rows(path)
                check_method_fits("dpo" if "dpo" in name else "supervised", rows, "training_file")
    assert {"dbpedia_samples.jsonl", "drone_training.jsonl"} <= set(ready)


def test_duplicates_are_exact_weight_and_keys_included(tmp_path: Path) -> None:
    from bot.validation.chat import example_key
    from bot.validation.scan import Scan, chat

    turn = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    weighted = [
        {**turn[0]},
        {**turn[1], "weight": 0},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]
    unweighted = [{**turn[0]}, {**turn[1], "weight": 1}, *weighted[2:]]
    assert example_key(weighted) != example_key(unweighted)
    named = [{"role": "user", "content": "x", "name": "y"}, {"role": "assistant", "content": "z"}]
    split = [
        {"role": "user", "content": "x"},
        {"role": "user", "content": "y"},
        {"role": "assistant", "content": "z"},
    ]
    assert example_key(named) != example_key(split)
    # the fast path and the full path give one identity to the same plain example
    scan = Scan()
    assert scan.fast_line(
        1, json.dumps({"messages": turn}).encode(), chat.TokenCounter(_encoding())
    )
    assert scan.hashes[0] == example_key(turn)


def _encoding():  # type: ignore[no-untyped-def]
    from bot.validation.tokens import encoding_for

    return encoding_for("gpt-4o-mini")


def _chat_rows(n: int = 12) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(n)
    ]


def test_chat_json_array_and_csv_get_the_jsonl_they_announce(tmp_path: Path) -> None:
    array = tmp_path / "chat.json"
    array.write_text(json.dumps(_chat_rows(), indent=2))
    csv_path = tmp_path / "chat.csv"
    cells = ['"' + json.dumps(r["messages"]).replace('"', '""') + '"' for r in _chat_rows()]
    csv_path.write_text("messages\n" + "\n".join(cells) + "\n")
    for path in (array, csv_path):
        report = validate_file(path)
        assert report.ok and any(f.startswith("converted") for f in report.fixes), path.name
        assert [r["messages"] for r in fixed_rows(report)] == [r["messages"] for r in _chat_rows()]
        engine_accepts(report, path, tmp_path)


def test_a_system_prompt_longer_than_the_engine_limit_is_an_error(tmp_path: Path) -> None:
    rows = _chat_rows()
    rows[3]["messages"].insert(0, {"role": "system", "content": "policy " * 3000})
    report = validate_file(write(tmp_path, rows), model="smollm2-135m-instruct")
    assert not report.ok and report.issues["no_room_to_train"].lines == [4]
    assert validate_file(write(tmp_path, rows), model="gpt-4o-mini").ok  # 65k tokens there
