"""Text from users is shown as text on every platform: no pings, no disguised links."""

from __future__ import annotations

import json

import pytest

from adapters.discord_adapter.render import to_parts
from adapters.slack_adapter.blocks import to_blocks
from bot.types import Button, Reply, Section

HOSTILE = [
    "<!channel> <https://evil.example|Download fixed file>",
    "<!here> please",
    "<!everyone>",
    "<@U999> you are mentioned",
    "<#C123|general>",
    "<!subteam^S123>",
    "@everyone look",
    "@here now",
    "<@&12345> role ping",
    "<@12345> user ping",
    "[Download fixed file](https://evil.example/x.jsonl)",
    "<https://evil.example>",
]


def hostile_reply(text: str) -> Reply:
    return Reply(
        text=f"⚠️ role {text} is unknown",
        sections=[Section(title=text, text=f"line 3: {text}", fields=[(text, text)])],
        buttons=[Button(label="Start fine-tune", command="/finetune dataset=1", confirm=text)],
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_slack_renders_user_text_inert(text: str) -> None:
    fallback, blocks, _ = to_blocks(hostile_reply(text))
    rendered = fallback + json.dumps(blocks)
    for live in ("<!", "<@", "<#", "<http"):
        assert live not in rendered, (text, rendered)


def test_slack_keeps_the_bots_own_mention() -> None:
    fallback, _, _ = to_blocks(Reply(text="<!channel> done", mention="U1"))
    assert fallback == "<@U1> &lt;!channel&gt; done"


@pytest.mark.parametrize("text", HOSTILE)
def test_discord_renders_user_text_inert(text: str) -> None:
    parts = to_parts(hostile_reply(text))
    rendered = parts.content + json.dumps([e.to_dict() for e in parts.embeds])
    for live in ("<@", "<#", "<!", "@everyone", "@here", "]("):
        assert live not in rendered, (text, rendered)
    allowed = parts.message_kwargs()["allowed_mentions"]
    assert allowed.everyone is False and allowed.roles is False and allowed.users is False


def test_discord_pings_only_the_owner() -> None:
    parts = to_parts(Reply(text="<@999> @everyone done", mention="42"))
    assert parts.content.startswith("<@42> ")
    allowed = parts.message_kwargs()["allowed_mentions"]
    assert [u.id for u in allowed.users] == [42]
