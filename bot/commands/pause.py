"""/pause and /resume: stop a job at its next step keeping its last checkpoint, and go on later."""

from __future__ import annotations

from bot.context import Context, UserError
from bot.providers import NotOffered
from bot.providers.errors import refusal
from bot.render import job_label
from bot.router import command
from bot.types import Command, Reply
from storage import repo
from storage.models import Job


def _own_job(ctx: Context, cmd: Command, verb: str) -> Job | Reply:
    if not cmd.args:
        raise UserError(f"usage: say which job, e.g. `/{verb} 3`")
    with ctx.session() as session:
        job = repo.find_job(session, ctx.scope(cmd), cmd.args[0])
    if job is None or not job.provider_job_id:
        raise UserError(f"No job `{cmd.args[0]}` here. `/status` lists the active ones.")
    if job.owner != cmd.user and not ctx.is_admin(cmd):
        return Reply(
            text=f"⛔ Only the owner of {job_label(job)} or an admin can {verb} it.", ephemeral=True
        )
    return job


async def _call(ctx: Context, job: Job, verb: str) -> Reply:
    provider = ctx.providers.get(job.provider)
    call = provider.api.pause if verb == "pause" else provider.api.resume
    try:
        await call(job.provider_job_id)
    except NotOffered:
        raise UserError(
            f"{provider.label} can't {verb} jobs (or no longer has {job_label(job)})."
        ) from None
    except Exception as exc:
        if (reason := refusal(exc)) is None:
            raise
        raise UserError(f"{provider.label} would not {verb} {job_label(job)}: {reason}") from None
    text = (
        f"⏸️ Pausing {job_label(job)}: it stops at its next step and keeps its last checkpoint. "
        f"`/resume {job.id}` continues it."
        if verb == "pause"
        else f"▶️ Resuming {job_label(job)} from its last checkpoint."
    )
    return Reply(text=text, thread=job.thread)


@command(
    "pause",
    "/pause <job>",
    "Pause a job at its next step, keeping its last checkpoint. Owner or admin.",
    max_args=1,
)
async def pause_command(ctx: Context, cmd: Command) -> Reply:
    job = _own_job(ctx, cmd, "pause")
    return job if isinstance(job, Reply) else await _call(ctx, job, "pause")


@command(
    "resume",
    "/resume <job>",
    "Continue a paused job from its last checkpoint. Owner or admin.",
    max_args=1,
)
async def resume_command(ctx: Context, cmd: Command) -> Reply:
    job = _own_job(ctx, cmd, "resume")
    return job if isinstance(job, Reply) else await _call(ctx, job, "resume")
