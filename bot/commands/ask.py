from __future__ import annotations

from bot.context import Context, UserError
from bot.providers import OPENAI_PREFIXES
from bot.router import command
from bot.types import Command, Reply, Section
from storage import repo

MAX_ANSWER_TOKENS = 200


def _looks_like_model(token: str, ctx: Context) -> bool:
    if " " in token or token.endswith((":", "?", ".")):
        return False
    known = token.startswith(("ft:", *OPENAI_PREFIXES)) or "/" in token
    return known or token == ctx.settings.default_model


async def _answer(ctx: Context, model: str, prompt: str) -> str:
    provider, remote_model = ctx.providers.for_model(model)
    response = await provider.client.chat.completions.create(
        model=remote_model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=MAX_ANSWER_TOKENS,
        temperature=0,
    )
    return (response.choices[0].message.content or "").strip() or "(empty answer)"


@command(
    "ask-model",
    "/ask-model [model] <prompt> [compare=yes]",
    "Ask a model. Defaults to the newest model fine-tuned in this channel.",
    "compare=yes also asks the base model, side by side, to see what training changed.",
)
async def ask_command(ctx: Context, cmd: Command) -> Reply:
    args = list(cmd.args)
    model = cmd.options.get("model")
    if model is None and args and _looks_like_model(args[0], ctx):
        model = args.pop(0)
    base = None
    if model is None:
        with ctx.session() as session:
            job = repo.newest_model_in_channel(session, cmd.platform, cmd.workspace, cmd.channel)
        if job is not None:
            model, base = job.fine_tuned_model, job.base_model
        else:
            model = ctx.settings.default_model
    prompt = " ".join(args).strip()
    if not prompt:
        raise UserError("usage: give a prompt, e.g. `/ask-model What is LoRA?`")
    answer = await _answer(ctx, model, prompt)
    sections = [Section(title=f"`{model}`", text=answer)]
    if cmd.options.get("compare", "").lower() in ("yes", "y", "true"):
        base = base or (
            model.split(":")[1] if model.startswith("ft:") else ctx.settings.default_model
        )
        sections.append(Section(title=f"`{base}` (base)", text=await _answer(ctx, base, prompt)))
    return Reply(text=f"> {prompt}", sections=sections, thread=cmd.thread)
