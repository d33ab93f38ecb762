from __future__ import annotations

from pathlib import Path

import yaml

from adapters.slack_adapter.app import SLASH_COMMANDS
from bot.router import REGISTRY
from tests.conftest import ROOT

MANIFEST = ROOT / "adapters" / "slack_manifest.yml"


def test_manifest_declares_every_command_scope_and_event() -> None:
    import bot.commands  # noqa: F401

    manifest = yaml.safe_load(Path(MANIFEST).read_text())
    commands = {c["command"].lstrip("/") for c in manifest["features"]["slash_commands"]}
    assert commands == set(SLASH_COMMANDS) == set(REGISTRY) | {"tuneup"}
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "files:read", "files:write", "users:read"} <= scopes
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"message.channels", "file_shared"} <= events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert all(c["url"].endswith("/slack/events") for c in manifest["features"]["slash_commands"])
