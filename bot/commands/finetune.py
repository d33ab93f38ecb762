from __future__ import annotations

import logging
import math
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot import budgets, lifecycle, pricing
from bot.context import Context, UserError
from bot.datasets import ingest
from bot.providers import PROVIDER_OPTIONS, CreateRequest, Provider
from bot.render import job_label
from bot.router import command
from bot.types import Button, Command, Reply, Section
from storage import repo
from storage.models import Dataset, Job

log = logging.getLogger("tuneup.finetune")
NUMERIC = {
    "epochs": ("n_epochs", int),
    "batch": ("batch_size", int),
    "lr": ("learning_rate_multiplier", float),
    "beta": ("beta", float),
}


def _hyperparameters(options: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for option, (name, kind) in NUMERIC.items():
        if option in options:
            value = options[option]
            try:
                number = kind(value)
            except (ValueError, OverflowError):
                raise UserError(f"usage: {option} must be a number (got `{value[:20]}`)") from None
            if not math.isfinite(number):
                raise UserError(f"usage: {option} must be a finite number (got `{value[:20]}`)")
            if number <= 0:
                raise UserError(f"usage: {option} must be greater than 0")
            out[name] = number
    return out


def _find_dataset(ctx: Context, cmd: Command, ref: str | None) -> Dataset:
    with ctx.session() as session:
        if ref:
            dataset = repo.find_dataset(session, ctx.scope(cmd), ref)
            if dataset is None:
                raise UserError(f"No dataset `{ref}` here. Upload one with `/validate`.")
            return dataset
        dataset = repo.latest_dataset(session, cmd.platform, cmd.workspace, cmd.channel)
    if dataset is None:
        raise UserError("No file to train on yet. Upload a training file with `/validate` first.")
    return dataset


def _held_out_half(ctx: Context, train: Dataset) -> Dataset | None:
    """The train half of a classification split is scored on its held-out half by default."""
    with ctx.session() as session:
        parent = session.get(Dataset, train.parent_id)
        split = (parent.split or {}) if parent is not None else {}
        if split.get("train") != train.id:
            return None
        return session.get(Dataset, split["valid"])


async def _provider_file(ctx: Context, provider: Provider, dataset: Dataset) -> str:
    """Upload the (fixed) file once per provider; an identical re-upload reuses the file id."""
    known = (dataset.provider_files or {}).get(provider.name)
    if known and await provider.api.file_exists(known):
        return known
    path = Path(dataset.fixed_path or dataset.path)
    name = Path(dataset.filename).stem + ".jsonl"
    uploaded = await provider.api.upload(path, name)
    with ctx.session() as session:
        row = session.get(Dataset, dataset.id)
        if row is not None:
            row.provider_files = {**(row.provider_files or {}), provider.name: uploaded}
            session.add(row)
            session.commit()
    return uploaded


async def _provider_estimate(
    ctx: Context,
    provider: Provider,
    dataset: Dataset,
    model: str,
    hyper: dict[str, Any],
    cost: pricing.Cost,
) -> pricing.Cost:
    """The provider's own price for this job, where it publishes one (Together does)."""
    if not provider.api.publishes_estimates:
        return cost
    try:
        file_id = await _provider_file(ctx, provider, dataset)
        request = CreateRequest(model, file_id, "estimate", hyperparameters=hyper)
        dollars = await provider.api.estimate(request)
    except Exception as exc:  # no estimate: the table's price (or "unknown") stands
        log.warning("%s price estimate failed: %s", provider.label, type(exc).__name__)
        return cost
    if dollars is None:
        return cost
    return replace(cost, dollars=float(dollars), source=provider.label)


def idempotency_key(cmd: Command) -> str:
    """One key per user action: a replayed platform event maps to the same key."""
    if cmd.event_id:
        return f"{cmd.platform}:{cmd.workspace}:{cmd.event_id}"[:120]
    return f"{cmd.platform}:{uuid.uuid4().hex}"


def _check_allowed(ctx: Context, cmd: Command) -> None:
    """The optional allowlists of channels and users who may start fine-tunes (admins always may)."""
    channels, users = ctx.settings.finetune_channels, ctx.settings.finetune_users
    if ctx.is_admin(cmd):
        return
    if channels and cmd.channel not in channels:
        raise UserError(
            "Fine-tunes can't be started in this channel. Ask an admin which channels allow them."
        )
    if users and cmd.user not in users:
        raise UserError("You are not on the list of people who may start fine-tunes. Ask an admin.")


@command(
    "finetune",
    "/finetune [file] [dataset=ID] [model=NAME] [epochs=N] [batch=N] [lr=X] [beta=X] "
    "[suffix=NAME] [validation=ID] [notify=dm] [training=lora|full] [from=CHECKPOINT]",
    "Start a fine-tune on the last validated file in this channel (or the one you attach).",
    "Shows the estimated trained tokens and cost first, and asks before anything that is not "
    "certainly free (a model whose price is unknown is asked about too). Budgets set with "
    "`/budget` are checked first. Progress and the result summary are posted here; "
    "`notify=dm` also sends you the result directly. At hosted providers, `training=full` "
    "trains all weights instead of LoRA and `from=` continues from one of their checkpoints.",
    options=(
        "dataset",
        "model",
        "epochs",
        "batch",
        "lr",
        "beta",
        "suffix",
        "validation",
        "notify",
        "training",
        "from",
        "confirm",
    ),
    max_args=1,
)
async def finetune_command(ctx: Context, cmd: Command) -> Reply:
    opts = cmd.options
    _check_allowed(ctx, cmd)
    if opts.get("notify", "channel") not in ("dm", "channel"):
        raise UserError("usage: notify is `dm` (also message me the result) or `channel`")
    model = opts.get("model", ctx.settings.default_model)
    provider, remote_model = ctx.providers.for_model(model)
    hyper = _hyperparameters(opts)
    dataset, validation = await _training_data(ctx, cmd, remote_model)
    estimate = dataset.report.get("estimate", {})
    epochs = hyper.get("n_epochs") or estimate.get("n_epochs") or 3
    tokens = int(estimate.get("dataset_tokens", 0)) * int(epochs)
    cost = pricing.estimate(remote_model, tokens, ctx.settings.prices, local=provider.is_local)
    cost = await _provider_estimate(ctx, provider, dataset, remote_model, hyper, cost)
    budgets.check(ctx, cmd, cost)
    if cost.needs_confirmation and opts.get("confirm", "").lower() not in ("yes", "y", "true"):
        return _ask_first(cmd, dataset, model, cost)
    job = await _start(ctx, cmd, provider, model, remote_model, dataset, validation, hyper, cost)
    if job.status == lifecycle.PENDING:
        return Reply(
            text=f"⏳ {provider.label} did not confirm {job_label(job)} in time. I am checking "
            "with it and will post here if it started; don't start it again.",
        )
    return _started_reply(job, model, dataset, validation, cost)


async def _training_data(
    ctx: Context, cmd: Command, remote_model: str
) -> tuple[Dataset, Dataset | None]:
    opts = cmd.options
    if cmd.attachments:
        dataset, _ = await ingest(ctx, cmd, cmd.attachments[0], remote_model)
    else:
        dataset = _find_dataset(
            ctx, cmd, opts.get("dataset") or (cmd.args[0] if cmd.args else None)
        )
    if not dataset.ok:
        problems = [
            f"• {i['message']}"
            for i in dataset.report.get("issues", [])
            if i["severity"] == "error"
        ]
        raise UserError(
            f"`{dataset.filename}` has problems that block training:\n"
            + "\n".join(problems[:5])
            + "\nFix them and `/validate` again."
        )
    validation = _find_dataset(ctx, cmd, opts["validation"]) if "validation" in opts else None
    if dataset.parent_id is not None and validation is None:
        validation = _held_out_half(ctx, dataset)
    return dataset, validation


def _ask_first(cmd: Command, dataset: Dataset, model: str, cost: pricing.Cost) -> Reply:
    again = f"/finetune dataset={dataset.id} " + " ".join(
        f"{k}={v}" for k, v in cmd.options.items() if k not in ("dataset", "confirm")
    )
    headline = (
        f"This fine-tune costs money: {cost.text()} on `{model}`."
        if cost.dollars is not None
        else f"The price of `{model}` is unknown to tuneup, so it may cost money: "
        f"~{cost.tokens:,} trained tokens."
    )
    return Reply(
        text=f"{headline} Start it?",
        buttons=[
            Button(label="Start fine-tune", command=again.strip() + " confirm=yes", style="primary")
        ],
        ephemeral=True,
    )


def _request(
    cmd: Command, remote_model: str, dataset: Dataset, hyper: dict[str, Any], key: str
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": remote_model,
        "metadata": {
            "platform": cmd.platform[:64],
            "workspace": cmd.workspace[:64],
            "channel": cmd.channel[:64],
            "user": cmd.user[:64],
            lifecycle.KEY_FIELD: key,
        },
    }
    # Preference data trains with DPO; everything else is supervised fine-tuning.
    method = "dpo" if dataset.report.get("data_format") == "preference" else "supervised"
    if method != "dpo":
        hyper = {k: v for k, v in hyper.items() if k != "beta"}
    if hyper or method != "supervised":
        request["method"] = {"type": method, method: {"hyperparameters": hyper}}
    if cmd.options.get("suffix"):
        request["suffix"] = cmd.options["suffix"]
    extra = _provider_options(cmd.options)
    if extra:
        request[PROVIDER_OPTIONS] = extra
    return request


def _provider_options(opts: dict[str, str]) -> dict[str, Any]:
    """Options only some providers take, kept apart from the OpenAI-shaped request."""
    training = opts.get("training", "lora").lower()
    if training not in ("lora", "full"):
        raise UserError("usage: training is `lora` (the default) or `full`")
    extra: dict[str, Any] = {}
    if training == "full":
        extra["lora"] = False
    if opts.get("from"):
        extra["from_checkpoint"] = opts["from"]
    return extra


async def _start(
    ctx: Context,
    cmd: Command,
    provider: Provider,
    model: str,
    remote_model: str,
    dataset: Dataset,
    validation: Dataset | None,
    hyper: dict[str, Any],
    cost: pricing.Cost,
) -> Job:
    training_file = await _provider_file(ctx, provider, dataset)
    validation_file = await _provider_file(ctx, provider, validation) if validation else None
    key = idempotency_key(cmd)
    request = _request(cmd, remote_model, dataset, hyper, key)
    request["training_file"] = training_file
    if validation_file:
        request["validation_file"] = validation_file
    job, fresh = lifecycle.record_intent(
        ctx.db,
        Job(
            provider=provider.name,
            platform=cmd.platform,
            workspace=cmd.workspace,
            channel=cmd.channel,
            owner=cmd.user,
            base_model=model,
            suffix=cmd.options.get("suffix"),
            training_file_id=training_file,
            validation_file_id=validation_file,
            dataset_id=dataset.id,
            idempotency_key=key,
            request=request,
            estimated_tokens=cost.tokens,
            estimated_cost=cost.dollars,
            prompt_format=prompt_format(dataset),
            notify=cmd.options.get("notify"),
        ),
    )
    if not fresh:
        raise UserError(
            f"{job_label(job)} was already started by this command; nothing new was started."
        )
    try:
        return await lifecycle.create_once(ctx.db, provider, job)
    except lifecycle.CreateUnconfirmed:
        return job


def prompt_format(dataset: Dataset) -> dict[str, Any]:
    """How to ask the tuned model: chat, or completions with its file's separator and stop."""
    report = dataset.report or {}
    if report.get("data_format") != "completion":
        return {"kind": "chat"}
    stats = report.get("stats") or {}
    return {
        "kind": "completion",
        "separator": stats.get("separator", ""),
        "stop": stats.get("stop"),
    }


def _started_reply(
    job: Job, model: str, dataset: Dataset, validation: Dataset | None, cost: pricing.Cost
) -> Reply:
    method = (job.request or {}).get("method", {}).get("type", "supervised")
    fields = [("Examples", str(dataset.n_examples))]
    if validation:
        fields.append(("Validation", f"`{validation.filename}` ({validation.n_examples})"))
    fields += [("Estimated trained tokens", f"~{cost.tokens:,}"), ("Cost", cost.text())]
    return Reply(
        text=f"🚀 Started {job_label(job)} on `{model}` with `{dataset.filename}`"
        + (" (DPO on preference pairs)." if method == "dpo" else "."),
        sections=[
            Section(fields=fields),
            Section(
                text=f"Progress will appear here. `/status {job.id}` any time, `/cancel {job.id}` to stop."
            ),
        ],
        buttons=[Button(label="Cancel", command=f"/cancel {job.id}", style="danger")],
        job_id=job.id,
    )
