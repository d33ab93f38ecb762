"""Keeps `adapters/slack_manifest.yml`'s slash commands in step with the router.

    .venv/bin/python -m adapters.slack_adapter.manifest   # rewrites the slash_commands block

Every command is registered namespaced (`/tuneup-status`), plus the `/tuneup <command>` umbrella:
Slack reserves built-in names such as `/status`.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "slack_manifest.yml"
URL = "https://tuneup.example.com/slack/events"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', "'") + '"'


def slash_commands_block() -> str:
    import bot.commands  # noqa: F401  (registers the commands)
    from bot.router import REGISTRY

    names = " | ".join(REGISTRY)
    blocks = [
        f"    - command: /tuneup\n      url: {URL}\n"
        f"      description: {_quoted('All tuneup commands: /tuneup <command> …, e.g. /tuneup status')}\n"
        f"      usage_hint: {_quoted(names[:1000])}\n      should_escape: false"
    ]
    for name, spec in REGISTRY.items():
        hint = spec.usage.split(" ", 1)[1] if " " in spec.usage else ""
        block = f"    - command: /tuneup-{name}\n      url: {URL}\n"
        block += f"      description: {_quoted(spec.summary[:100])}\n"
        if hint:
            block += f"      usage_hint: {_quoted(hint[:1000])}\n"
        blocks.append(block + "      should_escape: false")
    return "\n".join(blocks) + "\n"


def render(text: str) -> str:
    start = text.index("  slash_commands:\n") + len("  slash_commands:\n")
    end = text.index("oauth_config:")
    return text[:start] + slash_commands_block() + text[end:]


if __name__ == "__main__":
    MANIFEST.write_text(render(MANIFEST.read_text()))
