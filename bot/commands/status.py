from __future__ import annotations

from bot.context import Context, UserError
from bot.render import STATUS_ICON, progress_bar, status_reply
from bot.router import command
from bot.types import Command, Reply, Section
from storage import repo


@command(
    "status",
    "/status [job]",
    "Show one job in detail, or list your and this channel's active jobs.",
    max_args=1,
)
async def status_command(ctx: Context, cmd: Command) -> Reply:
    with ctx.session() as session:
        if cmd.args:
            job = repo.find_job(session, ctx.scope(cmd), cmd.args[0])
            if job is None:
                raise UserError(f"No job `{cmd.args[0]}` here. `/status` lists the active ones.")
            return status_reply(job)
        jobs = repo.jobs_for(session, ctx.scope(cmd), channel=cmd.channel, owner=cmd.user)
    if not jobs:
        return Reply(text="No active jobs here. Start one with `/finetune`.", ephemeral=True)
    fields = [
        (
            f"job {j.id}",
            f"{STATUS_ICON.get(j.status, '')} {j.status} {progress_bar(j.step, j.total_steps, 10)} "
            f"{j.step or 0}/{j.total_steps or '?'} · {j.base_model} · owner {j.owner}",
        )
        for j in jobs
    ]
    return Reply(
        text=f"{len(jobs)} active job(s)", sections=[Section(fields=fields)], ephemeral=True
    )
