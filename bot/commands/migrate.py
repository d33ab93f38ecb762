"""/migrate: list expiring fine-tunes, and move one to a model the team owns."""

from __future__ import annotations

from bot import deprecations, migration
from bot.commands.ask import check_model_visible
from bot.context import Context, UserError
from bot.router import command, dispatch
from bot.types import Command, Reply, Section
from storage import repo
from storage.models import Job


async def _listing(ctx: Context, cmd: Command) -> Reply:
    found = await migration.tuned_models(ctx, cmd)
    if not found:
        return Reply(
            text="No fine-tuned models at the configured providers (the local engine's own are "
            "already yours). Configure the provider you are leaving, e.g. OPENAI_API_KEY.",
            ephemeral=True,
        )
    fields = [
        (
            f"`{m.model}`",
            f"{m.provider} · base {m.base} · {m.when} · "
            + ("tuneup has its training data" if m.has_data else "no training data here")
            + (f" · job {m.job.id}" if m.job else ""),
        )
        for m in found
    ]
    return Reply(
        text=f"Fine-tuned models at your providers ({len(found)}). OpenAI takes no new jobs after "
        f"{deprecations.NO_NEW_JOBS_AFTER.isoformat()}. `/migrate MODEL` moves one.",
        sections=[Section(fields=fields)],
        ephemeral=True,
    )


def _epochs(job: Job | None) -> str:
    method = ((job.request or {}).get("method") or {}) if job else {}
    hyper = (method.get(method.get("type", ""), {}) or {}).get("hyperparameters") or {}
    epochs = hyper.get("n_epochs")
    return f" epochs={epochs}" if isinstance(epochs, int) else ""


async def _move(ctx: Context, cmd: Command, model: str) -> Reply:
    check_model_visible(ctx, cmd, model)
    if cmd.options.get("distill", "no").lower() not in ("yes", "no", "y", "n", "true", "false"):
        raise UserError("usage: distill is yes or no")
    if "dataset" in cmd.options:
        with ctx.session() as session:
            dataset = repo.find_dataset(session, ctx.scope(cmd), cmd.options["dataset"])
        if dataset is None:
            raise UserError(f"No dataset `{cmd.options['dataset']}` here.")
    else:
        dataset = await migration.training_data(ctx, cmd, model)
    if cmd.options.get("distill", "").lower() in ("yes", "y", "true"):
        dataset = await migration.distill(ctx, cmd, model, dataset)
    train, valid = migration.held_out(ctx, cmd, dataset)
    target = cmd.options.get("to", ctx.settings.default_model)
    old_job = migration._job_for(ctx, cmd, model)
    text = f"dataset={train.id} validation={valid.id} model={target}{_epochs(old_job)}"
    if "confirm" in cmd.options:
        text += f" confirm={cmd.options['confirm']}"
    started = await dispatch(
        ctx,
        Command(
            cmd.platform,
            cmd.workspace,
            cmd.channel,
            cmd.user,
            "finetune",
            text,
            thread=cmd.thread,
            is_admin=cmd.is_admin,
            event_id=cmd.event_id,
        ),
    )
    if started.job_id is None:
        # the fine-tune asked first (a paid target) or refused: its answer, and how to go on
        for button in started.buttons:
            button.command = f"/migrate {model} dataset={dataset.id} to={target} confirm=yes"
        return started
    with ctx.session() as session:
        job = session.get(Job, started.job_id)
        assert job is not None
        job.metrics = {**(job.metrics or {}), "migrated_from": model}
        session.add(job)
        session.commit()
    started.text += (
        f" It replaces `{model}` ({deprecations.when(model)}); when it is ready it is compared "
        f"with `{model}` on {valid.n_examples} held-out rows (the parity report)."
    )
    return started


@command(
    "migrate",
    "/migrate | /migrate MODEL [to=TARGET] [dataset=ID] [distill=yes]",
    "List fine-tunes at your providers with the date each stops serving; move one to a model you own.",
    "Moving finds the training data (kept by tuneup, or the provider's copy; else upload it and "
    "pass `dataset=`), holds out a slice, trains TARGET (default: the local engine's base model) "
    "with the same epochs, then posts a parity report: agreement with the old model and each "
    "one's accuracy on the held-out rows. `distill=yes` trains on the old model's own answers to "
    "the dataset's prompts, for teams without their original labels.",
    options=("to", "dataset", "distill", "confirm"),
    max_args=1,
)
async def migrate_command(ctx: Context, cmd: Command) -> Reply:
    if not cmd.args:
        return await _listing(ctx, cmd)
    return await _move(ctx, cmd, cmd.args[0])
