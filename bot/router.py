"""Parses command text and dispatches to one handler per command. Never lets a traceback out."""

from __future__ import annotations

import difflib
import logging
import shlex
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.context import Context, UserError
from bot.observability import COMMANDS, timed
from bot.providers import NotFound, NotOffered, ProviderNotConfigured, Rejected, explain_error
from bot.providers.errors import sdk_error
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
    # The `key=value` options it takes (None: free text, not checked) and how many plain words.
    options: tuple[str, ...] | None = ()
    max_args: int | None = None


REGISTRY: dict[str, CommandSpec] = {}


def command(
    name: str,
    usage: str,
    summary: str,
    details: str = "",
    *,
    options: tuple[str, ...] | None = (),
    max_args: int | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY[name] = CommandSpec(name, usage, summary, details, fn, options, max_args)
        return fn

    return register


def check_arguments(spec: CommandSpec, cmd: Command) -> None:
    """Every option is one the command takes (with a suggestion for a typo), before any call."""
    if spec.options is not None:
        for key in cmd.options:
            if key not in spec.options:
                close = difflib.get_close_matches(key, spec.options, n=1)
                hint = f" Did you mean `{close[0]}=`?" if close else ""
                known = ", ".join(f"`{o}=`" for o in spec.options) or "no options"
                raise UserError(f"usage: unknown option `{key}=`.{hint} It takes {known}")
    if spec.max_args is not None and len(cmd.args) > spec.max_args:
        extra = " ".join(cmd.args)[:60]
        raise UserError(f"usage: unexpected `{extra}`")


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


# Slack apps register namespaced commands (`/tuneup-status`): Slack keeps `/status` for itself.
NAMESPACE = "tuneup-"


def normalize_name(name: str) -> str:
    name = name.strip().lstrip("/").lower().replace("_", "-")
    return name.removeprefix(NAMESPACE) if name.startswith(NAMESPACE) else name


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
    if (wait := ctx.rate_limited(cmd)) is not None:
        return Reply(
            text=f"⚠️ That's a lot of commands in a minute. Try again in {wait:.0f} s.",
            ephemeral=True,
        )
    with timed(spec.name):
        reply = await _run(ctx, spec, cmd)
    COMMANDS.labels(spec.name, "refused" if reply.text.startswith("⚠️") else "ok").inc()
    return reply


async def _run(ctx: Context, spec: CommandSpec, cmd: Command) -> Reply:
    try:
        cmd.args, cmd.options = parse_text(cmd.text)
        if cmd.args[:1] == ["help"] and cmd.name != "help":
            return help_for(spec)
        check_arguments(spec, cmd)
        return await spec.handler(ctx, cmd)
    except UserError as exc:
        return (
            usage_error(spec, str(exc).removeprefix("usage: "))
            if str(exc).startswith("usage:")
            else Reply(text=f"⚠️ {exc}", ephemeral=True)
        )
    except ProviderNotConfigured as exc:
        return Reply(text=f"⚠️ {exc}", ephemeral=True)
    except (NotOffered, NotFound, Rejected) as exc:
        return Reply(text=f"⚠️ {explain_error(exc, _provider_named(ctx, exc))}", ephemeral=True)
    except Exception as exc:
        if sdk_error(exc) is not None:
            log.warning("command /%s: provider error %s", cmd.name, type(exc).__name__)
            text = explain_error(exc, _provider_named(ctx, exc))
            return Reply(text=f"⚠️ {text}", ephemeral=True)
        return Reply(text=f"⚠️ {internal_error(f'command /{cmd.name}')}", ephemeral=True)


def internal_error(what: str) -> str:
    """Log the details for operators; users get a plain sentence and a reference to quote."""
    ref = uuid.uuid4().hex[:8]
    log.exception("%s failed (ref %s)", what, ref)
    return (
        f"Something went wrong inside tuneup (reference `{ref}`). Try again; if it keeps "
        "happening, give the reference to whoever runs tuneup."
    )


def _provider_named(ctx: Context, exc: Exception) -> str:
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
