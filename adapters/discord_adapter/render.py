"""Reply → Discord message parts: content, embeds, files and a button row, within Discord's limits."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.types import Button, FileOut, Reply

CONTENT_LIMIT = 2000
EMBED_DESCRIPTION = 4096
EMBED_TITLE = 256
FIELD_NAME, FIELD_VALUE, FIELDS_PER_EMBED = 256, 1024, 25
EMBED_TOTAL = 6000
EMBEDS_PER_MESSAGE = 10
FILES_PER_MESSAGE = 10
BUTTONS_PER_ROW = 5
# custom_id prefixes: "run" runs the command; "ask" shows the button's confirmation first.
RUN, ASK = "tuneup:run:", "tuneup:ask:"
CUSTOM_ID_LIMIT = 100
COLORS = {"✅": 0x2EB67D, "❌": 0xE01E5A, "⚠️": 0xECB22E, "🛑": 0x999999}


ZWSP = "\u200b"
# Mentions (<@id>, <@&role>, <#channel>, @everyone, @here) and masked links [text](url).
_MENTION = re.compile(r"<(?=[@#!&:a])|@(?=everyone|here)")
_MASKED_LINK = re.compile(r"\]\(")


def neutralise(text: str) -> str:
    """Text shown as text: nothing from a user can ping anyone or disguise a link."""
    text = _MENTION.sub(lambda m: m.group(0) + ZWSP, text)
    return _MASKED_LINK.sub("]" + ZWSP + "(", text)


@dataclass
class Parts:
    content: str
    embeds: list[discord.Embed] = field(default_factory=list)
    files: list[FileOut] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    mention: str | None = None

    def discord_files(self) -> list[discord.File]:
        return [discord.File(io.BytesIO(f.data), filename=f.name) for f in self.files]

    def message_kwargs(self) -> dict[str, Any]:
        """Arguments for `send`/`followup.send`: only the reply's own mention can ping."""
        users = [discord.Object(int(self.mention))] if (self.mention or "").isdigit() else False
        kwargs: dict[str, Any] = {
            "content": self.content,
            "embeds": self.embeds,
            "files": self.discord_files(),
            "allowed_mentions": discord.AllowedMentions(
                users=users, roles=False, everyone=False, replied_user=False
            ),
        }
        if (view := self.view()) is not None:
            kwargs["view"] = view
        return kwargs

    def view(self) -> discord.ui.View | None:
        if not self.buttons:
            return None
        view = discord.ui.View(timeout=None)
        for i, button in enumerate(self.buttons[: BUTTONS_PER_ROW * 5]):
            view.add_item(
                discord.ui.Button(
                    label=button.label[:80],
                    custom_id=custom_id(button),
                    style=STYLES[button.style],
                    row=i // BUTTONS_PER_ROW,
                )
            )
        return view


STYLES = {
    "primary": discord.ButtonStyle.primary,
    "danger": discord.ButtonStyle.danger,
    "default": discord.ButtonStyle.secondary,
}


def custom_id(button: Button) -> str:
    return (ASK if button.confirm else RUN) + button.command


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _color(reply: Reply) -> int:
    return next((c for icon, c in COLORS.items() if reply.text.startswith(icon)), 0x5865F2)


def to_parts(reply: Reply) -> Parts:
    """Headline as content, sections as embeds; whatever does not fit goes into message.txt."""
    text = neutralise(reply.text)
    headline = f"<@{reply.mention}> {text}" if reply.mention else text
    # A command too long for a custom_id is shown to type instead of being cut short.
    fits = [b for b in reply.buttons if len(custom_id(b)) <= CUSTOM_ID_LIMIT]
    for button in reply.buttons:
        if button not in fits:
            headline += f"\n{button.label}: `{button.command}`"
    parts = Parts(
        content="", files=list(reply.files[:FILES_PER_MESSAGE]), buttons=fits, mention=reply.mention
    )
    overflow = len(headline) > CONTENT_LIMIT
    parts.content = _cut(headline, CONTENT_LIMIT)
    total = 0
    for section in reply.sections:
        embed = discord.Embed(color=_color(reply))
        if section.title:
            embed.title = _cut(neutralise(section.title), EMBED_TITLE)
        if section.text:
            embed.description = _cut(neutralise(section.text), EMBED_DESCRIPTION)
            overflow |= len(section.text) > EMBED_DESCRIPTION
        for name, value in section.fields[:FIELDS_PER_EMBED]:
            embed.add_field(
                name=_cut(neutralise(name), FIELD_NAME),
                value=_cut(neutralise(value or "–"), FIELD_VALUE),
            )
        overflow |= len(section.fields) > FIELDS_PER_EMBED
        size = len(embed)
        if total + size > EMBED_TOTAL or len(parts.embeds) == EMBEDS_PER_MESSAGE:
            overflow = True
            break
        total += size
        parts.embeds.append(embed)
    if overflow and len(parts.files) < FILES_PER_MESSAGE:
        parts.files.append(
            FileOut(name="message.txt", data=reply.plain().encode(), mime="text/plain")
        )
    return parts
