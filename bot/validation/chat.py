"""Chat-format checks: every check of the OpenAI cookbook validator, updated for tool calling,
plus line numbers, alternation, weights and token statistics."""

from __future__ import annotations

import json
from array import array
from typing import Any

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
        self.missing_system = 0
        self.missing_user = 0


def check_example(ex: Any, line: int, report: Report, stats: ChatStats) -> list[str] | None:
    """Check one example; return the strings to count tokens of, or None when unusable."""
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
        has_call = bool(msg.get("tool_calls") or msg.get("function_call"))
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
        if role == previous and role in ("user", "assistant"):
            report.add("roles_not_alternating", "warning", f"Two `{role}` messages in a row", line)
        previous = role
    if "assistant" not in roles:
        report.add(
            "example_missing_assistant_message", "error", "Example has no assistant message", line
        )
        bad = True
    if "system" not in roles:
        stats.missing_system += 1
    if "user" not in roles:
        stats.missing_user += 1
    if bad:
        return None
    stats.n_messages.append(len(messages))
    texts = []
    for msg in messages:
        for key, value in msg.items():
            if key == "weight":
                continue
            texts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return texts


def assistant_texts(ex: dict[str, Any]) -> list[str]:
    out = []
    for msg in ex["messages"]:
        if msg.get("role") == "assistant":
            content = msg.get("content")
            if isinstance(content, str):
                out.append(content)
            elif msg.get("tool_calls"):
                out.append(json.dumps(msg["tool_calls"], ensure_ascii=False))
    return out


def count_tokens(
    encoding: Any, pending: list[tuple[list[str], list[str], list[str]]], stats: ChatStats
) -> None:
    """Cookbook token counting (3 per message, 1 per name, 3 for the reply), batched."""
    flat: list[str] = []
    for texts, assistant, _keys in pending:
        flat.extend(texts)
        flat.extend(assistant)
    lengths = [len(t) for t in encoding.encode_ordinary_batch(flat, num_threads=4)] if flat else []
    pos = 0
    for texts, assistant, keys in pending:
        total = sum(lengths[pos : pos + len(texts)])
        pos += len(texts)
        mine = sum(lengths[pos : pos + len(assistant)])
        pos += len(assistant)
        n_messages = keys.count("role") if keys else 0
        stats.total_tokens.append(total + 3 * n_messages + keys.count("name") + 3)
        stats.assistant_tokens.append(mine)
