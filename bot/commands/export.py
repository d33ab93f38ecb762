"""/export: a tuned model's adapter or merged weights, to serve it elsewhere."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.commands.ask import check_model_visible
from bot.context import Context, UserError
from bot.exports import FORMATS, ExportError, download
from bot.router import command
from bot.types import Command, FileOut, Reply
from storage import repo

# What chat platforms take as one attachment (Discord's default limit is the smallest).
MAX_ATTACHMENT = 8 * 2**20


@command(
    "export",
    "/export <model> [format=adapter|merged]",
    "A tuned model's PEFT adapter (for vLLM's --lora-modules) or its merged weights.",
    "Small exports come as a ZIP here; bigger ones are too large for chat, and the reply says the "
    "`tuneup export` command that writes them to a folder.",
    options=("format",),
    max_args=1,
)
async def export_command(ctx: Context, cmd: Command) -> Reply:
    if not cmd.args:
        raise UserError(
            "usage: say which model, e.g. `/export ft:smollm2-135m-instruct:local::abc`"
        )
    model, fmt = cmd.args[0], cmd.options.get("format", "adapter")
    if fmt not in FORMATS:
        raise UserError(f"usage: format is one of {', '.join(FORMATS)}")
    check_model_visible(ctx, cmd, model)
    provider, remote = ctx.providers.for_model(model)
    if provider.kind == "together":
        return _together_download(ctx, cmd, model)
    if not provider.is_local:
        raise UserError(
            f"Export works for the local engine's models; `{model}` is at {provider.label}."
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = await download(ctx.settings, remote, fmt, Path(tmp) / "export.zip")
        except ExportError as exc:
            raise UserError(f"The local engine could not export `{model}`: {exc}") from None
        size = archive.stat().st_size
        command_line = f"tuneup export {remote} --format {fmt} --out ./{fmt}"
        if size > MAX_ATTACHMENT:
            return Reply(
                text=f"📦 The {fmt} export of `{model}` is {size / 2**20:.0f} MB, too big for chat. "
                f"On the engine's machine: `{command_line}`",
                ephemeral=True,
            )
        name = f"{remote.replace(':', '_')}-{fmt}.zip"
        return Reply(
            text=f"📦 `{model}` as a {fmt} ({size / 2**20:.1f} MB). Or: `{command_line}`",
            files=[FileOut(name=name, data=archive.read_bytes(), mime="application/zip")],
        )


def _together_download(ctx: Context, cmd: Command, model: str) -> Reply:
    """Together keeps the weights: its own CLI downloads them (GBs, never a chat upload)."""
    with ctx.session() as session:
        job = repo.visible_job_for_model(session, ctx.scope(cmd), model)
    ident = job.provider_job_id if job and job.provider_job_id else "<job id>"
    return Reply(
        text=f"📦 `{model}` lives at Together AI. Download its weights with Together's CLI: "
        f"`together fine-tuning download {ident} --checkpoint-type adapter` "
        "(or `merged`), then serve the adapter with vLLM's `--lora-modules`.",
        ephemeral=True,
    )
