from __future__ import annotations

from bot.context import Context
from bot.engine_launcher import engine_installed
from bot.providers import LOCAL, TunableModel, explain_error
from bot.router import command
from bot.types import Command, Reply, Section
from storage import repo


@command(
    "models",
    "/models",
    "List base models you can fine-tune and the models tuned in this workspace.",
    max_args=0,
)
async def models_command(ctx: Context, cmd: Command) -> Reply:
    sections = []
    for name in ctx.providers.names():
        provider = ctx.providers.get(name)
        try:
            tunable = [m for m in await provider.api.models() if not m.tuned][:15]
            prefix = "" if name in (LOCAL, "openai") else f"{name}/"
            shown = ", ".join(f"`{prefix}{m.id}`{_price(m)}" for m in tunable) or "none"
            sections.append(Section(title=f"{provider.label}: reachable; can tune", text=shown))
        except Exception as exc:
            text = explain_error(exc, provider.label)
            if provider.is_local and not ctx.settings.engine_url and not engine_installed():
                text = (
                    "The local engine is not installed here. Add it with "
                    "`pip install 'tuneup[local]'`, or point TUNEUP_ENGINE_URL at one elsewhere."
                )
            sections.append(Section(title=f"{provider.label}: not reachable", text=text))
    with ctx.session() as session:
        done = repo.jobs_for(session, ctx.scope(cmd), active_only=False, limit=50)
    tuned = [j for j in done if j.fine_tuned_model]
    text = "\n".join(f"`{j.fine_tuned_model}` (job {j.id}, by {j.owner})" for j in tuned[:15])
    sections.append(Section(title="Fine-tuned here", text=text or "none yet"))
    return Reply(text="Models", sections=sections, ephemeral=True)


def _price(model: TunableModel) -> str:
    notes = [model.detail] if model.detail else []
    if model.price_per_million is not None:
        notes.append(f"${model.price_per_million:g}/1M tokens")
    return f" ({'; '.join(notes)})" if notes else ""
