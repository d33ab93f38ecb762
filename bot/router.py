"""Parses command text and dispatches to one handler per command. Never lets a traceback out."""

from __future__ import annotations

import logging
import shlex
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import openai

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
    except ValueError as exc:  # an unbalanced quote
        raise UserError(f"usage: can't read the arguments ({exc}); check the quotes") from None
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
    try:
        cmd.args, cmd.options = parse_text(cmd.text)
        if cmd.args[:1] == ["help"] and cmd.name != "help":
            return help_for(spec)
        return await spec.handler(ctx, cmd)
    except UserError as exc:
        return (
            usage_error(spec, str(exc).removeprefix("usage: "))
            if str(exc).startswith("usage:")
            else Reply(text=f"⚠️ {exc}", ephemeral=True)
        )
    except ProviderNotConfigured as exc:
        return Reply(text=f"⚠️ {exc}", ephemeral=True)
    except openai.APIError as exc:
        log.warning("command /%s: provider error %s", cmd.name, type(exc).__name__)
        return Reply(text=f"⚠️ {explain_error(exc, _provider_named(ctx, exc))}", ephemeral=True)
    except Exception:
        return Reply(text=f"⚠️ {internal_error(f'command /{cmd.name}')}", ephemeral=True)


def internal_error(what: str) -> str:
    """Log the details for operators; users get a plain sentence and a reference to quote."""
    ref = uuid.uuid4().hex[:8]
    log.exception("%s failed (ref %s)", what, ref)
    return (
        f"Something went wrong inside tuneup (reference `{ref}`). Try again; if it keeps "
        "happening, give the reference to whoever runs tuneup."
    )


def _provider_named(ctx: Context, exc: openai.APIError) -> str:
    """Name the provider from the configured provider objects, never guessed from the URL."""
    request = getattr(exc, "request", None)
    url = str(getattr(request, "url", "")) if request is not None else ""
    provider = ctx.providers.owning(url) if url else None
    return provider.label if provider else "the provider"


def help_for(spec: CommandSpec) -> Reply:
    text = f"`{spec.usage}`\n{spec.summary}"
    if spec.details:
        text += f"\n{spec.details}"
    return Reply(text=text, ephemeral=True)
