"""Parses command text and dispatches to one handler per command. Never lets a traceback out."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.context import Context, UserError
from bot.providers import ProviderNotConfigured, explain_error
from bot.types import Command, Reply

log = logging.getLogger("tuneup.router")
Handler = Callable[[Context, Command], Awaitable[Reply]]


@dataclass
class CommandSpec:
    name: str
    usage: str
    summary: str
    details: str
    handler: Handler


REGISTRY: dict[str, CommandSpec] = {}


def command(name: str, usage: str, summary: str, details: str = "") -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY[name] = CommandSpec(name, usage, summary, details, fn)
        return fn

    return register


def parse_text(text: str) -> tuple[list[str], dict[str, str]]:
    """Split `a b key=value "quoted words"` into positional args and options."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    args, options = [], {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep and key.isidentifier():
            options[key.lower()] = value
        else:
            args.append(part)
    return args, options


def normalize_name(name: str) -> str:
    return name.strip().lstrip("/").lower().replace("_", "-")


def usage_error(spec: CommandSpec, problem: str) -> Reply:
    return Reply(
        text=f"⚠️ {problem}\nUsage: `{spec.usage}`. See `/help {spec.name}`.", ephemeral=True
    )


async def dispatch(ctx: Context, cmd: Command) -> Reply:
    import bot.commands  # noqa: F401  (registers the handlers)

    cmd.name = normalize_name(cmd.name)
    if cmd.name == "tuneup":  # umbrella form: /tuneup <subcommand> ...
        sub, _, rest = cmd.text.strip().partition(" ")
        cmd.name, cmd.text = normalize_name(sub or "help"), rest
    spec = REGISTRY.get(cmd.name)
    if spec is None:
        known = ", ".join(f"/{n}" for n in REGISTRY)
        return Reply(text=f"⚠️ Unknown command `/{cmd.name}`. Try one of: {known}.", ephemeral=True)
    cmd.args, cmd.options = parse_text(cmd.text)
    if cmd.args[:1] == ["help"] and cmd.name != "help":
        return help_for(spec)
    try:
        return await spec.handler(ctx, cmd)
    except UserError as exc:
        return (
            usage_error(spec, str(exc).removeprefix("usage: "))
            if str(exc).startswith("usage:")
            else Reply(text=f"⚠️ {exc}", ephemeral=True)
        )
    except ProviderNotConfigured as exc:
        return Reply(text=f"⚠️ {exc}", ephemeral=True)
    except Exception as exc:
        log.exception("command /%s failed", cmd.name)
        return Reply(text=f"⚠️ {explain_error(exc, _provider_hint(exc))}", ephemeral=True)


def _provider_hint(exc: Exception) -> str:
    request = getattr(exc, "request", None)
    url = str(getattr(request, "url", "")) if request is not None else ""
    return "local" if "127.0.0.1" in url or "localhost" in url else "the provider"


def help_for(spec: CommandSpec) -> Reply:
    text = f"`{spec.usage}`\n{spec.summary}"
    if spec.details:
        text += f"\n{spec.details}"
    return Reply(text=text, ephemeral=True)
