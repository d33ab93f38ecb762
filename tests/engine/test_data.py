from __future__ import annotations

from pathlib import Path

import pytest

from engine.data import IGNORE, DataError, read_rows, tokenize_chat, tokenize_completion
from engine.trainer import auto_epochs, bucketed_batches


class CharTokenizer:
    """A tiny stand-in tokenizer with a ChatML template (one token per character)."""

    eos_token_id = 0

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):  # type: ignore[no-untyped-def]
        text = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):  # type: ignore[no-untyped-def]
        out = {"input_ids": [ord(c) for c in text]}
        if return_offsets_mapping:
            out["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
        return out


def test_chat_labels_cover_only_weighted_assistant_turns() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "AB", "weight": 0},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "CD"},
    ]
    ex = tokenize_chat(CharTokenizer(), messages, 1000)
    trained = "".join(chr(t) for t in ex.labels if t != IGNORE)
    assert trained == "CD</>"


def test_completion_labels_cover_completion_and_eos() -> None:
    ex = tokenize_completion(CharTokenizer(), "Q:", " yes", 100)
    assert ex.labels[:2] == [IGNORE, IGNORE]
    assert ex.labels[2:] == [ord(" "), ord("y"), ord("e"), ord("s"), 0]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"prompt": "a"}', "no `messages`"),
        ('{"input": {"messages": []}, "preferred_output": []}', "`input.messages`"),
        (
            '{"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": []}',
            "exactly one assistant message",
        ),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "unrecognized role"),
        ('{"messages": [{"role": "assistant", "content": "x", "weight": 2}]}', "weight"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "p", "completion": "c"}\n' + line + "\n")
    with pytest.raises(DataError) as err:
        read_rows(path)
    assert str(err.value).startswith("Line 2:")
    assert needle in str(err.value)


def test_auto_epochs_follow_the_cookbook_rule() -> None:
    assert auto_epochs(5) == 20
    assert auto_epochs(100) == 3
    assert auto_epochs(20000) == 1
    assert auto_epochs(2) == 25


def test_bucketing_covers_every_example_once_with_little_padding() -> None:
    lengths = [(i * 37) % 100 + 1 for i in range(200)]
    batches = bucketed_batches(lengths, 8, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.15 * sum(lengths)
