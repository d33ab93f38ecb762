"""After a job succeeds with a validation set: tuned vs base on it, in the job's thread."""

from __future__ import annotations

from bot.context import Context, UserError
from bot.evaluation import service
from bot.types import Command
from storage.models import EvalRun, Job

AFTER_JOB_ROWS = 50  # keeps it quick: a sample of the validation set


def after_job_eval(ctx: Context, job_id: int) -> EvalRun | None:
    from bot.commands.evaluate import _plan, validation_dataset

    with ctx.session() as session:
        job = session.get(Job, job_id)
    if job is None or not job.fine_tuned_model or not job.validation_file_id:
        return None
    owner = Command(job.platform, job.workspace, job.channel, job.owner, "eval")
    dataset = validation_dataset(ctx, owner, job)
    replaced = (job.metrics or {}).get("migrated_from")
    if dataset is None:
        return None
    if replaced is None and not ctx.providers.for_model(job.base_model)[0].is_local:
        return None  # scoring would cost money: /eval asks first (a /migrate asked already)
    compared = replaced or job.base_model
    try:
        plan = _plan(dataset, [job.fine_tuned_model, compared], AFTER_JOB_ROWS, None)
    except UserError:
        return None
    plan.title = (
        f"{dataset.filename} (parity: new vs `{replaced}`)"
        if replaced
        else f"{dataset.filename} (tuned vs base, after job {job.id})"
    )
    kind = "migration" if replaced else "after_job"
    run = service.record(
        ctx, job, plan, owner=job.owner, kind=kind, dataset_id=dataset.id, job_id=job.id
    )
    service.spawn(ctx, run, plan)
    return run
