from __future__ import annotations

from bot.context import Context, UserError
from bot.job_state import is_terminal
from bot.providers.errors import refusal
from bot.render import job_label
from bot.router import command
from bot.types import Button, Command, Reply
from storage import repo


@command(
    "cancel",
    "/cancel <job> [confirm=yes]",
    "Cancel a running job. Only its owner or an admin may; you are asked to confirm.",
    options=("confirm",),
    max_args=1,
)
async def cancel_command(ctx: Context, cmd: Command) -> Reply:
    if not cmd.args:
        raise UserError("usage: say which job, e.g. `/cancel 3`")
    with ctx.session() as session:
        job = repo.find_job(session, ctx.scope(cmd), cmd.args[0])
    if job is None:
        raise UserError(f"No job `{cmd.args[0]}` here. `/status` lists the active ones.")
    if job.owner != cmd.user and not ctx.is_admin(cmd):
        return Reply(
            text=f"⛔ Only the owner of {job_label(job)} or an admin can cancel it.", ephemeral=True
        )
    if is_terminal(job.status):
        return Reply(
            text=f"{job_label(job)} has already {job.status}; nothing to cancel.", ephemeral=True
        )
    if cmd.options.get("confirm", "").lower() not in ("yes", "y", "true"):
        return Reply(
            text=f"Cancel {job_label(job)}? Training stops and no model is produced.",
            buttons=[
                Button(
                    label="Yes, cancel it", command=f"/cancel {job.id} confirm=yes", style="danger"
                )
            ],
            ephemeral=True,
        )
    provider = ctx.providers.get(job.provider)
    try:
        await provider.api.cancel(job.provider_job_id)
    except Exception as exc:
        if (reason := refusal(exc)) is None:
            raise
        raise UserError(f"{provider.label} would not cancel {job_label(job)}: {reason}") from None
    return Reply(
        text=f"🛑 Cancelling {job_label(job)}. The poller will confirm here.", thread=job.thread
    )
