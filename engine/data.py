"""Training files: parse JSONL with line numbers, then tokenize with loss masks.

Chat rows train only on assistant turns (honouring weight 0/1) using the model's chat
template; legacy prompt/completion rows train only on the completion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE = -100
# DPO's beta when the job says "auto": how far the tuned model may move from the base.
DEFAULT_BETA = 0.1
CHAT_ROLES = {"system", "user", "assistant", "tool", "function", "developer"}


class DataError(ValueError):
    """A training-file problem, reported on the job as error.code/message/param."""

    def __init__(self, message: str, line: int | None = None, param: str = "training_file"):
        self.line = line
        self.param = param
        super().__init__(f"Line {line}: {message}" if line else message)


@dataclass
class Row:
    line: int
    kind: str  # "chat" | "completion"
    data: dict[str, Any]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    line: int

    @property
    def n_trained(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class Pair:
    """One preference example: the same prompt with a preferred and a non-preferred answer."""

    chosen: Example
    rejected: Example
    line: int


def _row_kind(obj: Any, line: int) -> str:
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", line)
    if "preferred_output" in obj or "non_preferred_output" in obj:
        _check_preference(obj, line)
        return "preference"
    if "messages" in obj:
        _check_messages(obj["messages"], line)
        return "chat"
    if "prompt" in obj and "completion" in obj:
        if not isinstance(obj["prompt"], str) or not isinstance(obj["completion"], str):
            raise DataError("`prompt` and `completion` must be strings", line)
        if not obj["completion"]:
            raise DataError("`completion` is empty", line)
        return "completion"
    raise DataError("no `messages` list and no `prompt`/`completion` pair", line)


def _check_preference(obj: dict[str, Any], line: int) -> None:
    inp = obj.get("input")
    if not isinstance(inp, dict):
        raise DataError("preference example needs an `input` object with `messages`", line)
    messages = inp.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError("`input.messages` must be a non-empty list", line)
    for i, msg in enumerate(messages):
        if not (
            isinstance(msg, dict)
            and msg.get("role") in CHAT_ROLES
            and isinstance(msg.get("content"), str)
        ):
            raise DataError(f"`input.messages` {i + 1} needs a known role and text content", line)
    for key in ("preferred_output", "non_preferred_output"):
        out = obj.get(key)
        if not (
            isinstance(out, list)
            and len(out) == 1
            and isinstance(out[0], dict)
            and out[0].get("role") == "assistant"
            and isinstance(out[0].get("content"), str)
            and out[0]["content"]
        ):
            raise DataError(f"`{key}` must hold exactly one assistant message with text", line)


def _check_messages(messages: Any, line: int) -> None:
    if not isinstance(messages, list) or not messages:
        raise DataError("`messages` must be a non-empty list", line)
    has_assistant = trainable = False
    for i, msg in enumerate(messages):
        where = f"message {i + 1}"
        if not isinstance(msg, dict):
            raise DataError(f"{where} is not an object", line)
        role = msg.get("role")
        if role not in CHAT_ROLES:
            raise DataError(f"{where} has unrecognized role {role!r}", line)
        content = msg.get("content")
        if role == "assistant":
            has_assistant = True
            if content is None and not (msg.get("tool_calls") or msg.get("function_call")):
                raise DataError(f"{where} (assistant) has no content and no tool_calls", line)
            if "weight" in msg and msg["weight"] not in (0, 1):
                raise DataError(f"{where} has weight {msg['weight']!r}; use 0 or 1", line)
            trainable = trainable or msg.get("weight", 1) != 0
            _check_tool_calls(msg.get("tool_calls"), where, line)
        elif content is None:
            raise DataError(f"{where} ({role}) has no content", line)
        if content is not None and not isinstance(content, str | list):
            raise DataError(f"{where} content must be a string", line)
        if isinstance(content, list) and not all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            raise DataError(f"{where} content as a list must hold text parts", line)
    if not has_assistant:
        raise DataError("example has no assistant message to learn from", line)
    if not trainable:
        raise DataError("every assistant message has weight 0; nothing to learn from", line)


def _check_tool_calls(calls: Any, where: str, line: int) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise DataError(f"{where} tool_calls must be a list", line)
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DataError(f"{where} has a tool call without function.name", line)
        arguments = function.get("arguments")
        try:
            if not isinstance(arguments, str):
                raise ValueError
            json.loads(arguments)
        except ValueError:
            raise DataError(
                f"{where} has a tool call whose arguments are not a JSON string", line
            ) from None


def read_rows(path: Path, param: str = "training_file") -> list[Row]:
    """Parse a JSONL training file; raise DataError naming the first bad line."""
    rows: list[Row] = []
    kinds: set[str] = set()
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError:
                raise DataError("is not valid UTF-8", number, param) from None
            except json.JSONDecodeError as exc:
                raise DataError(f"is not valid JSON ({exc.msg})", number, param) from None
            except (ValueError, RecursionError):  # e.g. a 5000-digit number, absurd nesting
                raise DataError("has a value the engine cannot read", number, param) from None
            try:
                kind = _row_kind(obj, number)
            except DataError as exc:
                exc.param = param
                raise
            except Exception:  # a field of the wrong type somewhere deep in the example
                raise DataError(
                    "is not a training example the engine can read", number, param
                ) from None
            kinds.add(kind)
            if len(kinds) > 1:
                raise DataError(
                    f"mixes {' and '.join(sorted(kinds))} examples; use one format per file",
                    number,
                    param,
                )
            rows.append(Row(number, kind, obj))
    if not rows:
        raise DataError("the file has no examples", None, param)
    return rows


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for msg in messages:
        content = _text(msg.get("content"))
        if msg.get("role") == "assistant" and not content:
            calls = msg.get("tool_calls") or msg.get("function_call")
            content = json.dumps(calls, ensure_ascii=False)
        out.append({"role": msg["role"], "content": content})
    return out


def _render(tokenizer: Any, messages: list[dict[str, str]], gen_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen_prompt)


def tokenize_chat(tokenizer: Any, messages: list[dict[str, Any]], max_len: int) -> Example:
    norm = normalize_messages(messages)
    full = _render(tokenizer, norm, False)
    spans: list[tuple[int, int]] = []
    for j, msg in enumerate(messages):
        if msg.get("role") != "assistant" or msg.get("weight", 1) == 0:
            continue
        start = len(_render(tokenizer, norm[:j], True)) if j else 0
        end = len(_render(tokenizer, norm[: j + 1], False))
        spans.append((start, end))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"][:max_len]
    labels = [IGNORE] * len(ids)
    for k, (s, e) in enumerate(enc["offset_mapping"][: len(ids)]):
        if any(s >= a and e <= b for a, b in spans):
            labels[k] = ids[k]
    return Example(ids, labels, 0)


def tokenize_completion(tokenizer: Any, prompt: str, completion: str, max_len: int) -> Example:
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (p + c)[:max_len]
    labels = ([IGNORE] * len(p) + c)[:max_len]
    return Example(ids, labels, 0)


def tokenize_rows(tokenizer: Any, rows: list[Row], max_len: int) -> list[Example]:
    examples = []
    for row in rows:
        if row.kind == "chat":
            ex = tokenize_chat(tokenizer, row.data["messages"], max_len)
        else:
            ex = tokenize_completion(tokenizer, row.data["prompt"], row.data["completion"], max_len)
        ex.line = row.line
        if ex.n_trained == 0:
            raise DataError(
                f"nothing left to train on after truncating to {max_len} tokens "
                "(or every assistant message has weight 0)",
                row.line,
            )
        examples.append(ex)
    return examples


def tokenize_pairs(tokenizer: Any, rows: list[Row], max_len: int) -> list[Pair]:
    """Preference rows → (preferred, non-preferred) examples sharing one prompt.

    Only the final answer carries labels: assistant turns inside the prompt get weight 0.
    """
    pairs = []
    for row in rows:
        prompt = [
            {**m, "weight": 0} if m.get("role") == "assistant" else m
            for m in row.data["input"]["messages"]
        ]
        chosen = tokenize_chat(tokenizer, prompt + row.data["preferred_output"], max_len)
        rejected = tokenize_chat(tokenizer, prompt + row.data["non_preferred_output"], max_len)
        if chosen.n_trained == 0 or rejected.n_trained == 0:
            raise DataError(
                f"nothing left of the answers after truncating to {max_len} tokens", row.line
            )
        chosen.line = rejected.line = row.line
        pairs.append(Pair(chosen, rejected, row.line))
    return pairs


def row_prompt_and_label(row: Row) -> tuple[Any, str]:
    """The input and expected answer of a row, for classification metrics."""
    if row.kind == "completion":
        return row.data["prompt"], row.data["completion"]
    messages = normalize_messages(row.data["messages"])
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def looks_like_classification(labels: list[str]) -> bool:
    """Few distinct short answers, as in the legacy prepare_data task-type rule."""
    if len(labels) < 4:
        return False
    distinct = {label.strip() for label in labels}
    short = all(len(label.split()) <= 3 and len(label) <= 40 for label in labels)
    return short and 1 < len(distinct) <= max(2, len(labels) // 3)
