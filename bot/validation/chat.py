"""Chat-format checks: every check of the OpenAI cookbook validator, updated for tool calling,
plus line numbers, alternation, weights and token statistics."""

from __future__ import annotations

import json
from array import array
from typing import Any, NamedTuple

from bot.validation.report import Report

KNOWN_KEYS = {
    "role",
    "content",
    "name",
    "function_call",
    "tool_calls",
    "tool_call_id",
    "weight",
    "refusal",
}
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


class ChatStats:
    def __init__(self) -> None:
        self.n_messages = array("I")
        self.total_tokens = array("I")
        self.assistant_tokens = array("I")
        # Tokens before the first reply that is trained on: what truncation must leave room for.
        self.prefix_tokens = array("I")
        self.missing_system = 0
        self.missing_user = 0


class Checked(NamedTuple):
    texts: list[str]  # every value the cookbook counts tokens of (keys sorted per message)
    assistant: list[bool]  # which of them are the assistant's reply text
    n_messages: int
    n_names: int
    label: str | None  # a short final reply, a candidate class label
    key: int  # identity for the duplicate check: every key and value, message by message


def example_key(messages: list[dict[str, Any]]) -> int:
    """Two examples are duplicates only if every message has the same keys and values
    (weight included); texts are never run together, so distinct examples can't collide."""
    # A plain {"role", "content"} message is (content, role): roles are a fixed set, so where it
    # ends is unambiguous, and the fast path hashes plain lines the same way. Any other message
    # is marked and spelled out key by key (weight, name, tool_calls... included).
    flat: list[str] = []
    for msg in messages:
        if msg.keys() == PLAIN_KEYS and isinstance(msg["content"], str):
            flat += (msg["content"], msg["role"])
            continue
        flat.append(MESSAGE_MARK)
        for k, v in sorted(msg.items()):
            flat.append(k)
            flat.append(
                v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)
            )
    return hash(tuple(flat))


PLAIN_KEYS = {"role", "content"}
MESSAGE_MARK = "\x00message"


def _content_problem(content: Any) -> str | None:
    """Content is text, or a list of text parts ({"type": "text", "text": ...})."""
    if isinstance(content, list) and not all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return '`content` as a list must hold text parts ({"type": "text", "text": ...})'
    return None


def _tool_calls_problem(calls: Any) -> str | None:
    """Each tool call names a function and passes its arguments as a JSON string."""
    if calls is None:
        return None
    if not isinstance(calls, list):
        return "`tool_calls` must be a list"
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return "a tool call lacks `function.name`"
        arguments = function.get("arguments")
        try:
            json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            return "a tool call's `function.arguments` is not valid JSON"
        if not isinstance(arguments, str):
            return "a tool call's `function.arguments` must be a JSON string"
    return None


def check_example(ex: Any, line: int, report: Report, stats: ChatStats) -> Checked | None:
    """Check one example; return what to count tokens of, or None when unusable."""
    if not isinstance(ex, dict):
        report.add("data_type", "error", "Example is not a JSON object", line)
        return None
    messages = ex.get("messages")
    if not messages or not isinstance(messages, list):
        report.add("missing_messages_list", "error", "Example has no `messages` list", line)
        return None
    bad = False
    previous = None
    roles = []
    for msg in messages:
        if not isinstance(msg, dict):
            report.add("message_not_object", "error", "A message is not a JSON object", line)
            bad = True
            continue
        role = msg.get("role")
        roles.append(role)
        # Only an assistant turn may be a call instead of text; a tool result needs content.
        has_call = role == "assistant" and bool(msg.get("tool_calls") or msg.get("function_call"))
        if "role" not in msg or ("content" not in msg and not has_call):
            report.add("message_missing_key", "error", "A message lacks `role` or `content`", line)
            bad = True
        if any(k not in KNOWN_KEYS for k in msg):
            report.add(
                "message_unrecognized_key", "error", "A message has an unrecognized key", line
            )
            bad = True
        if role not in ROLES:
            report.add("unrecognized_role", "error", f"Unrecognized role {role!r}", line)
            bad = True
        content = msg.get("content")
        if (not content and not has_call) or (
            content is not None and not isinstance(content, str | list)
        ):
            report.add("missing_content", "error", "A message has empty or non-text content", line)
            bad = True
        if "weight" in msg and msg["weight"] not in (0, 1):
            report.add("bad_weight", "error", "`weight` must be 0 or 1", line)
            bad = True
        problem = _content_problem(content) or _tool_calls_problem(msg.get("tool_calls"))
        if problem:
            report.add("bad_message_shape", "error", f"A message is malformed: {problem}", line)
            bad = True
        if role == previous and role in ("user", "assistant"):
            report.add("roles_not_alternating", "warning", f"Two `{role}` messages in a row", line)
        previous = role
    if "assistant" not in roles:
        report.add(
            "example_missing_assistant_message", "error", "Example has no assistant message", line
        )
        bad = True
    elif not any(
        isinstance(m, dict) and m.get("role") == "assistant" and m.get("weight", 1) != 0
        for m in messages
    ):
        report.add(
            "all_weights_zero",
            "error",
            "Every assistant message has weight 0, so there is nothing to learn from",
            line,
        )
        bad = True
    if "system" not in roles:
        stats.missing_system += 1
    if "user" not in roles:
        stats.missing_user += 1
    if bad:
        return None
    stats.n_messages.append(len(messages))
    texts: list[str] = []
    mask: list[bool] = []
    n_names = 0
    last: str | None = None
    for msg in messages:
        is_assistant = msg.get("role") == "assistant"
        reply_key = (
            "content"
            if isinstance(msg.get("content"), str)
            else "tool_calls"
            if msg.get("tool_calls")
            else None
        )
        # Keys in sorted order, so the duplicate check ignores how a message's keys are ordered.
        for key, value in sorted(msg.items()):
            if key == "weight":
                continue
            n_names += key == "name"
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            texts.append(text)
            is_reply = is_assistant and key == reply_key
            mask.append(is_reply)
            if is_reply:
                last = text
    label = (
        last.strip() if last is not None and len(last) <= 40 and len(last.split()) <= 3 else None
    )
    return Checked(texts, mask, len(messages), n_names, label, example_key(messages))


class TokenCounter:
    """Cookbook token counting (3 per message, 1 per name, 3 for the reply).

    One exact encode per text, except that texts seen before (roles, a shared system prompt,
    class labels) are looked up: the first MEMO_SIZE distinct ones are remembered. Measured on
    2 cores, tiktoken's thread-pool batch API is far slower than this for the short texts chat
    data is made of, because it pays for a future per text.
    """

    MEMO_SIZE = 20_000
    MEMO_MAX_CHARS = 8192

    def __init__(self, encoding: Any) -> None:
        core = getattr(encoding, "_core_bpe", None)
        self.encode = core.encode_ordinary if core is not None else encoding.encode_ordinary
        self.memo: dict[str, int] = {}

    def length(self, text: str) -> int:
        n = self.memo.get(text)
        if n is None:
            n = len(self.encode(text))
            if len(self.memo) < self.MEMO_SIZE and len(text) <= self.MEMO_MAX_CHARS:
                self.memo[text] = n
        return n

    def count(self, checked: Checked, stats: ChatStats) -> None:
        total = mine = 0
        prefix = None
        for text, is_reply in zip(checked.texts, checked.assistant, strict=True):
            n = self.length(text)
            if is_reply and prefix is None:
                prefix = total
            total += n
            if is_reply:
                mine += n
        stats.total_tokens.append(total + 3 * checked.n_messages + checked.n_names + 3)
        stats.assistant_tokens.append(mine)
        stats.prefix_tokens.append(prefix if prefix is not None else total)
