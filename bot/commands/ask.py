from __future__ import annotations

import shlex
from typing import Any

from bot.context import Context, UserError
from bot.providers import OPENAI_PREFIXES, NotFound
from bot.providers.errors import sdk_error
from bot.router import command
from bot.types import Command, Reply, Section
from storage import repo

MAX_ANSWER_TOKENS = 200
# A question, not a document: longer prompts are refused before any provider is called.
MAX_PROMPT_CHARS = 4000
# One answer may take this long; inference is never retried (a retry only queues it twice).
ASK_TIMEOUT_SECONDS = 60


def _looks_like_model(token: str, ctx: Context) -> bool:
    if " " in token or token.endswith((":", "?", ".")):
        return False
    known = token.startswith(("ft:", *OPENAI_PREFIXES)) or "/" in token
    return known or token == ctx.settings.default_model


def _unknown_model(model: str) -> UserError:
    return UserError(f"No model `{model}` here. `/models` lists the models you can ask.")


def check_model_visible(ctx: Context, cmd: Command, model: str) -> None:
    """A model tuned in another channel answers exactly like a model that does not exist.

    Tuned models of the local engine are all tuneup's, so one not visible here is unknown
    without asking the engine; other providers' models tuneup never saw are the provider's to
    answer for (a team's own OpenAI fine-tunes, say).
    """
    provider, _ = ctx.providers.for_model(model)
    with ctx.session() as session:
        if repo.model_visible(session, ctx.scope(cmd), model):
            return
        ours = provider.is_local and model.startswith("ft:")
        if ours or repo.model_tuned_here(session, model):
            raise _unknown_model(model)


CHAT = {"kind": "chat"}


async def _answer(ctx: Context, model: str, prompt: str, fmt: dict[str, Any] = CHAT) -> str:
    """Ask in the model's own format: chat, or a completion with its separator and stop."""
    provider, remote_model = ctx.providers.for_model(model)
    try:
        if fmt.get("kind") == "completion":
            text = await provider.api.complete(
                remote_model,
                prompt + (fmt.get("separator") or ""),
                max_tokens=MAX_ANSWER_TOKENS,
                stop=fmt.get("stop"),
                timeout=ASK_TIMEOUT_SECONDS,
            )
        else:
            text = await provider.api.chat(
                remote_model,
                [{"role": "user", "content": prompt}],
                max_tokens=MAX_ANSWER_TOKENS,
                timeout=ASK_TIMEOUT_SECONDS,
            )
    except NotFound:
        raise _unknown_model(model) from None
    except Exception as exc:
        if sdk_error(exc) == "NotFoundError":
            raise _unknown_model(model) from None
        if sdk_error(exc) == "APITimeoutError":
            raise UserError(
                f"{provider.label} took longer than {ASK_TIMEOUT_SECONDS}s to answer, so I "
                "stopped waiting. Try a shorter question, or again when it is less busy."
            ) from None
        raise
    return text.strip() or "(empty answer)"


def _prompt_words(cmd: Command) -> list[str]:
    """The words of the question: everything but the `model=` and `compare=` options."""
    return [w for w in shlex.split(cmd.text) if not w.lower().startswith(("model=", "compare="))]


def _prompt(args: list[str]) -> str:
    prompt = " ".join(args).strip()
    if not prompt:
        raise UserError("usage: give a prompt, e.g. `/ask-model What is LoRA?`")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(
            f"That prompt is {len(prompt):,} characters; `/ask-model` takes up to "
            f"{MAX_PROMPT_CHARS:,}. Shorten it, or use `/eval` for many examples."
        )
    return prompt


@command(
    "ask-model",
    "/ask-model [model] <prompt> [compare=yes]",
    "Ask a model. Defaults to the newest model fine-tuned in this channel.",
    "compare=yes also asks the base model, side by side, to see what training changed. "
    f"Prompts are limited to {MAX_PROMPT_CHARS:,} characters.",
    options=None,  # the prompt is free text: `x=5` in a question is not an option
)
async def ask_command(ctx: Context, cmd: Command) -> Reply:
    words = _prompt_words(cmd)
    model = cmd.options.get("model")
    if model is None and words and _looks_like_model(words[0], ctx):
        model = words.pop(0)
    prompt = _prompt(words)
    with ctx.session() as session:
        if model is None:
            job = repo.newest_model_in_channel(session, cmd.platform, cmd.workspace, cmd.channel)
            model = job.fine_tuned_model if job else ctx.settings.default_model
        else:
            job = repo.visible_job_for_model(session, ctx.scope(cmd), model)
    assert model is not None
    check_model_visible(ctx, cmd, model)
    fmt = (job.prompt_format if job else None) or CHAT
    async with ctx.ask_slot(cmd):
        sections = [Section(title=f"`{model}`", text=await _answer(ctx, model, prompt, fmt))]
        if cmd.options.get("compare", "").lower() in ("yes", "y", "true"):
            base = job.base_model if job else _base_of(ctx, model)
            answer = await _answer(ctx, base, prompt, fmt)
            sections.append(Section(title=f"`{base}` (base)", text=answer))
    return Reply(text=f"> {prompt}", sections=sections, thread=cmd.thread)


def _base_of(ctx: Context, model: str) -> str:
    return model.split(":")[1] if model.startswith("ft:") else ctx.settings.default_model
