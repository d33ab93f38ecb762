from __future__ import annotations

from bot.context import Context
from bot.router import REGISTRY, command, help_for, normalize_name
from bot.types import Command, Reply, Section


@command("help", "/help [command]", "List the commands, or explain one.", max_args=1)
async def help_command(ctx: Context, cmd: Command) -> Reply:
    if cmd.args:
        spec = REGISTRY.get(normalize_name(cmd.args[0]))
        if spec is None:
            return Reply(
                text=f"⚠️ No command `/{cmd.args[0]}`. Run `/help` for the list.", ephemeral=True
            )
        return help_for(spec)
    fields = [(f"`{spec.usage}`", spec.summary) for spec in REGISTRY.values()]
    return Reply(
        text="tuneup fine-tunes language models from chat. Upload a file, `/validate` it, then `/finetune`.",
        sections=[
            Section(fields=fields),
            Section(text="Add `help` after any command for details."),
        ],
        ephemeral=True,
    )
