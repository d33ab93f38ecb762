"""Reply → Block Kit (sections, fields, context, buttons) plus a plain-text fallback."""

from __future__ import annotations

from typing import Any

from bot.types import FileOut, Reply

SECTION_LIMIT = 3000  # characters in one section's text
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3000
# Longer messages go out as a file, with the beginning shown inline.
MAX_INLINE_CHARS = 12000
BUTTON_ACTION = "tuneup_cmd"


def escape(text: str) -> str:
    """Slack's own escaping: text from users can never become a mention, link or @channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def chunks(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split on line breaks where possible so no chunk exceeds `limit`."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                out.append(current)
                current = ""
            out.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            out.append(current)
            current = line
        else:
            current = candidate
    if current:
        out.append(current)
    return out or [""]


def _headline(reply: Reply) -> str:
    text = escape(reply.text)
    return f"<@{reply.mention}> {text}" if reply.mention else text


def to_blocks(reply: Reply) -> tuple[str, list[dict[str, Any]], FileOut | None]:
    """Returns (fallback text, blocks, overflow file when the message is too long to show)."""
    overflow = None
    full = reply.plain()
    if len(full) > MAX_INLINE_CHARS:
        overflow = FileOut(name="message.txt", data=full.encode(), mime="text/plain")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(c)} for c in chunks(_headline(reply))
    ]
    for section in reply.sections:
        if section.title:
            title = escape(section.title)[:2900]
            blocks.append({"type": "section", "text": _mrkdwn(f"*{title}*")})
        if section.text:
            text = escape(section.text)
            blocks.extend({"type": "section", "text": _mrkdwn(c)} for c in chunks(text))
        for i in range(0, len(section.fields), FIELDS_PER_SECTION):
            group = section.fields[i : i + FIELDS_PER_SECTION]
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        _mrkdwn(f"*{escape(k)}*\n{escape(v)}"[:FIELD_LIMIT]) for k, v in group
                    ],
                }
            )
    if overflow is not None or len(blocks) > MAX_BLOCKS - 2:
        overflow = overflow or FileOut(name="message.txt", data=full.encode(), mime="text/plain")
        blocks = blocks[: MAX_BLOCKS - 3]
        blocks.append(
            {"type": "context", "elements": [_mrkdwn("…the full message is attached as a file.")]}
        )
    if reply.buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [_button(i, b) for i, b in enumerate(reply.buttons[:25])],
            }
        )
    fallback = _headline(reply)
    if len(fallback) > FALLBACK_LIMIT:
        fallback = fallback[: FALLBACK_LIMIT - 1] + "…"
    return fallback, blocks, overflow


def _button(index: int, button: Any) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": _plain(button.label),
        "action_id": f"{BUTTON_ACTION}_{index}",
        "value": button.command[:2000],
    }
    if button.style in ("primary", "danger"):
        element["style"] = button.style
    if button.confirm:
        element["confirm"] = {
            "title": _plain("Are you sure?", 100),
            "text": _mrkdwn(escape(button.confirm)[:300]),
            "confirm": _plain(button.label, 30),
            "deny": _plain("Not now", 30),
        }
    return element
