from __future__ import annotations

from pathlib import Path

import yaml

from adapters.slack_adapter.app import SLASH_PATTERN
from bot.router import REGISTRY, normalize_name
from tests.conftest import ROOT

MANIFEST = ROOT / "adapters" / "slack_manifest.yml"
# Slack's built-in slash commands, which an app may not register (Slack rejects the manifest).
# Source: Slack Help Center, "Use built-in slash commands" (slack.com/help/articles/201259356),
# and api.slack.com/interactivity/slash-commands ("Built-in slash commands ... such as /topic
# and /remind"). /help is kept out too: older clients reserved it.
SLACK_BUILT_INS = {
    "active",
    "apps",
    "archive",
    "away",
    "call",
    "clear",
    "collapse",
    "dm",
    "dnd",
    "expand",
    "feed",
    "feedback",
    "giphy",
    "help",
    "invite",
    "join",
    "kick",
    "leave",
    "me",
    "msg",
    "mute",
    "open",
    "prefs",
    "remind",
    "remove",
    "rename",
    "search",
    "shortcuts",
    "shrug",
    "star",
    "status",
    "topic",
    "who",
}


def manifest() -> dict:
    return yaml.safe_load(Path(MANIFEST).read_text())


def test_manifest_declares_every_command_scope_and_event() -> None:
    import bot.commands  # noqa: F401

    commands = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert commands == {"/tuneup"} | {f"/tuneup-{name}" for name in REGISTRY}
    assert all(SLASH_PATTERN.match(c) for c in commands)
    assert {normalize_name(c) for c in commands} == set(REGISTRY) | {"tuneup"}
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "files:read", "files:write", "users:read"} <= scopes
    events = set(manifest()["settings"]["event_subscriptions"]["bot_events"])
    assert {"message.channels", "file_shared"} <= events
    assert manifest()["settings"]["interactivity"]["is_enabled"] is True
    assert all(c["url"].endswith("/slack/events") for c in manifest()["features"]["slash_commands"])


def test_no_command_is_one_of_slacks_built_ins() -> None:
    for entry in manifest()["features"]["slash_commands"]:
        name = entry["command"].lstrip("/")
        assert name not in SLACK_BUILT_INS, f"Slack reserves /{name}"
        assert len(entry["command"]) <= 32 and name == name.lower()


def test_every_option_is_offered_on_every_surface() -> None:
    """The router's options appear in the Slack usage hints and as Discord parameters."""
    import bot.commands  # noqa: F401
    from adapters.discord_adapter.client import register_commands

    hints = {
        c["command"]: c.get("usage_hint", "") for c in manifest()["features"]["slash_commands"]
    }
    tree_commands = _discord_tree(register_commands)
    for name, spec in REGISTRY.items():
        assert name in tree_commands, f"Discord has no /{name}"
        params = tree_commands[name]
        for option in spec.options or ():
            if option == "confirm":  # a button's second step, not typed
                continue
            assert f"{option}=" in hints[f"/tuneup-{name}"], (name, option)
            assert option in params, f"Discord /{name} lacks `{option}`"
    assert "tuneup" in tree_commands  # the umbrella exists on Discord too


def _discord_tree(register) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    import discord
    from discord import app_commands

    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)

    class Holder:  # what register_commands needs from the bot
        def __init__(self) -> None:
            self.tree = tree

        async def _choices(self, interaction: object, current: str) -> list:
            return []

        job_choices = model_choices = dataset_choices = _choices

        async def run(self, *_: object) -> None:
            return None

    register(Holder())
    # display_name: what users type (a renamed parameter, e.g. `from`, differs from its Python name)
    return {c.name: {p.display_name for p in c.parameters} for c in tree.get_commands()}


def test_manifest_is_rendered_from_the_router() -> None:
    from adapters.slack_adapter.manifest import render

    text = Path(MANIFEST).read_text()
    assert render(text) == text, "run `python -m adapters.slack_adapter.manifest`"
