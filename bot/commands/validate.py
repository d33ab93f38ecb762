from __future__ import annotations

from pathlib import Path

from bot.context import Context, UserError
from bot.datasets import ingest, reapply, report_files
from bot.router import command
from bot.types import Button, Command, FileOut, Reply, Section
from bot.validation.legacy import OPTIONAL
from bot.validation.report import Report
from storage import repo
from storage.models import Dataset


def _cost_text(estimate: dict) -> str:
    if not estimate:
        return ""
    price = _price_text(estimate.get("cost_usd"))
    return (
        f"~{estimate.get('billed_tokens', 0):,} trained tokens on {estimate.get('model')} "
        f"({estimate.get('n_epochs')} epochs): {price}."
    )


def _price_text(cost: float | None) -> str:
    """Free only when the price is known to be zero (the local engine); never when unknown."""
    if cost is None:
        return "price unknown (ask the provider before training)"
    return "free on the local engine" if not cost else f"about ${cost:.2f}"


FORMATS = {"chat": "chat", "completion": "prompt/completion", "preference": "preference (DPO)"}


def report_reply(report: Report, dataset: Dataset) -> Reply:
    """The report as a headline, a block of fields, the problems and the fixes."""
    fields = [
        ("Examples", f"{report.n_examples:,}"),
        ("Format", FORMATS.get(report.data_format, report.data_format)),
    ]
    if report.task_type:
        fields.append(("Task", report.task_type))
    e = report.estimate
    if e:
        fields.append(("Tokens", f"{e['dataset_tokens']:,} × {e['n_epochs']} epochs"))
        fields.append(("Trained tokens", f"~{e['billed_tokens']:,}"))
        fields.append(("Cost", _price_text(e.get("cost_usd"))))
    sections = [Section(fields=fields)]
    problems = report.top_problems(limit=10)
    if problems:
        sections.append(Section(title="Problems", text="\n".join(f"• {p}" for p in problems)))
    if report.fixes:
        sections.append(
            Section(
                title="Fixed file (what /finetune uploads; the original is kept)",
                text="\n".join(f"• {f}" for f in report.fixes[:8]),
            )
        )
    if report.offers:
        sections.append(
            Section(
                title="Optional fixes (not applied)",
                text="\n".join(f"• {o['description']}" for o in report.offers),
            )
        )
    if dataset.split:
        sections.append(
            Section(
                title="Held-out split (stratified by class)",
                text=f"train: dataset {dataset.split['train']}, validation: dataset "
                f"{dataset.split['valid']}. `/finetune dataset={dataset.split['train']}` trains "
                "on the first and reports accuracy and per-class scores on the second.",
            )
        )
    return Reply(
        text=f"{report.verdict()}: `{report.filename}` (dataset {dataset.id})",
        sections=sections,
        buttons=_buttons(dataset, e, bool(dataset.fixed_path), report.offers),
    )


OFFER_LABELS = {
    "lowercase": "Apply: lowercase",
    "prefix": "Apply: remove common prefix",
    "completion-prefix": "Apply: remove completion prefix",
    "long": "Apply: drop long examples",
}


def _buttons(
    dataset: Dataset, estimate: dict, has_fix: bool, offers: list[dict] | None = None
) -> list[Button]:
    buttons = []
    if dataset.ok:
        buttons.append(
            Button(
                label="Start fine-tune",
                command=f"/finetune dataset={dataset.id}",
                style="primary",
                confirm=f"Start a fine-tune on `{dataset.filename}`? {_cost_text(estimate)}",
            )
        )
    if dataset.ok and dataset.split:
        buttons.append(
            Button(
                label="Fine-tune on the split",
                command=f"/finetune dataset={dataset.split['train']}",
                confirm=f"Train on the train half of `{dataset.filename}` and score it on the "
                f"held-out half? {_cost_text(estimate)}",
            )
        )
    if has_fix:
        buttons.append(
            Button(label="Download fixed file", command=f"/validate dataset={dataset.id} fixed=yes")
        )
    for name in dict.fromkeys(o["name"] for o in offers or []):
        buttons.append(
            Button(
                label=OFFER_LABELS.get(name, f"Apply: {name}"),
                command=f"/validate dataset={dataset.id} apply={name}",
            )
        )
    return buttons


def _fixed_file(dataset: Dataset) -> Reply:
    if not dataset.fixed_path or not Path(dataset.fixed_path).exists():
        raise UserError(f"Dataset {dataset.id} needed no fixes; the uploaded file is fine as is.")
    name = f"{Path(dataset.filename).stem}.fixed.jsonl"
    return Reply(
        text=f"📎 Fixed copy of `{dataset.filename}` (dataset {dataset.id}).",
        files=[FileOut(name=name, data=Path(dataset.fixed_path).read_bytes(), mime="text/plain")],
    )


def _stored(ctx: Context, cmd: Command, ref: str) -> Dataset:
    with ctx.session() as session:
        dataset = repo.find_dataset(session, ctx.scope(cmd), ref)
    if dataset is None:
        raise UserError(f"No dataset `{ref}` here. Upload the file again to check it.")
    return dataset


def parse_apply(text: str) -> frozenset[str]:
    names = frozenset(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = sorted(names - set(OPTIONAL))
    if unknown or not names:
        raise UserError(
            f"usage: apply= takes {', '.join(OPTIONAL)} (comma-separated); got `{text[:40]}`"
        )
    return names


async def _apply(ctx: Context, cmd: Command, dataset: Dataset, text: str) -> Reply:
    names = parse_apply(text)
    if dataset.parent_id is not None:
        raise UserError("Optional fixes apply to the uploaded file, not to one half of its split.")
    fresh, report = await reapply(ctx, cmd, dataset, names)
    reply = report_reply(report, fresh)
    reply.text += f" · from dataset {dataset.id} with {', '.join(sorted(names))} applied"
    reply.files = report_files(fresh, report)
    return reply


@command(
    "validate",
    "/validate <file> [model=NAME] | /validate dataset=ID [fixed=yes] [apply=FIX,...]",
    "Check a training file: format, problems with line numbers, tokens and cost, and a fixed copy.",
    "Accepts JSONL, JSON, CSV, TSV, XLSX and TXT. On Slack and Discord, just upload the file to the "
    "channel. `dataset=ID` shows an earlier report again; `fixed=yes` sends its fixed copy; "
    "`apply=lowercase,prefix,completion-prefix,long` checks it again with those optional fixes.",
    options=("dataset", "fixed", "apply", "model"),
    max_args=1,
)
async def validate_command(ctx: Context, cmd: Command) -> Reply:
    if not cmd.attachments and "dataset" in cmd.options:
        dataset = _stored(ctx, cmd, cmd.options["dataset"])
        if cmd.options.get("fixed", "").lower() in ("yes", "y", "true"):
            return _fixed_file(dataset)
        if "apply" in cmd.options:
            return await _apply(ctx, cmd, dataset, cmd.options["apply"])
        return report_reply(Report.from_dict(dataset.report), dataset)
    if not cmd.attachments:
        raise UserError(
            "usage: upload the training file to this channel (or attach it to the command)"
        )
    model = cmd.options.get("model", ctx.settings.default_model)
    dataset, report = await ingest(ctx, cmd, cmd.attachments[0], model)
    reply = report_reply(report, dataset)
    reply.files = report_files(dataset, report)
    reply.thread = cmd.thread
    return reply
