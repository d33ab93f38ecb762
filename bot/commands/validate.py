from __future__ import annotations

from bot.context import Context, UserError
from bot.datasets import ingest, report_files
from bot.router import command
from bot.types import Button, Command, Reply


@command(
    "validate",
    "/validate <file> [model=NAME]",
    "Check a training file: format, problems with line numbers, tokens and cost, and a fixed copy.",
    "Accepts JSONL, JSON, CSV, TSV, XLSX and TXT. The full report and any fixed file come attached.",
)
async def validate_command(ctx: Context, cmd: Command) -> Reply:
    if not cmd.attachments:
        raise UserError("usage: attach the training file (or give its path in the console)")
    model = cmd.options.get("model", ctx.settings.default_model)
    dataset, report = await ingest(ctx, cmd, cmd.attachments[0], model)
    buttons = []
    if report.ok:
        buttons.append(
            Button(
                label="Start fine-tune", command=f"/finetune dataset={dataset.id}", style="primary"
            )
        )
    return Reply(
        text=report.summary_text() + f"\nSaved as dataset {dataset.id}.",
        files=report_files(dataset, report),
        buttons=buttons,
    )
