"""/jobs (history) and /checkpoints (a job's saved steps, each one askable)."""

from __future__ import annotations

from bot.context import Context, UserError
from bot.providers import NotFound, NotOffered
from bot.render import STATUS_ICON, job_label
from bot.router import command
from bot.types import Button, Command, Reply, Section
from storage import repo
from storage.models import JobStatus

PAGE_SIZE = 10
STATUSES = tuple(JobStatus)


def _page(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 10_000:
        raise UserError(f"usage: page must be a number from 1 (got `{text[:20]}`)")
    return int(text)


@command(
    "jobs",
    "/jobs [user=ID|me] [status=succeeded|failed|cancelled|running|...] [page=N]",
    "History of the jobs you can see here: finished, failed and cancelled ones too, newest first.",
    options=("user", "status", "page"),
    max_args=0,
)
async def jobs_command(ctx: Context, cmd: Command) -> Reply:
    opts = cmd.options
    page = _page(opts.get("page", "1"))
    status = opts.get("status")
    if status is not None and status not in STATUSES:
        raise UserError(f"usage: status is one of {', '.join(STATUSES)}")
    owner = opts.get("user")
    owner = cmd.user if owner == "me" else (owner or "").strip("<@>") or None
    with ctx.session() as session:
        rows = repo.job_history(
            session,
            ctx.scope(cmd),
            owner=owner,
            status=status,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE + 1,
        )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    if not rows:
        return Reply(text="No jobs match." if page == 1 else "No more jobs.", ephemeral=True)
    fields = [
        (
            f"{STATUS_ICON.get(j.status, '')} job {j.id}",
            f"{j.status} · {j.fine_tuned_model or j.base_model} · by {j.owner} · "
            f"{j.created_at:%Y-%m-%d %H:%M}",
        )
        for j in rows
    ]
    buttons = []
    if more:
        again = " ".join(f"{k}={v}" for k, v in opts.items() if k != "page")
        buttons.append(
            Button(label="Older jobs", command=f"/jobs {again} page={page + 1}".replace("  ", " "))
        )
    return Reply(
        text=f"Jobs, page {page}",
        sections=[Section(fields=fields)],
        buttons=buttons,
        ephemeral=True,
    )


@command(
    "checkpoints",
    "/checkpoints <job>",
    "A job's saved checkpoints with their step and metrics; each can be asked like a model.",
    max_args=1,
)
async def checkpoints_command(ctx: Context, cmd: Command) -> Reply:
    if not cmd.args:
        raise UserError("usage: say which job, e.g. `/checkpoints 3`")
    with ctx.session() as session:
        job = repo.find_job(session, ctx.scope(cmd), cmd.args[0])
    if job is None or not job.provider_job_id:
        raise UserError(f"No job `{cmd.args[0]}` here. `/jobs` lists them.")
    provider = ctx.providers.get(job.provider)
    try:
        found = await provider.api.checkpoints(job.provider_job_id)
    except NotFound:
        raise UserError(f"{provider.label} no longer has {job_label(job)}.") from None
    except NotOffered:
        raise UserError(f"{provider.label} does not list checkpoints.") from None
    if not found:
        return Reply(text=f"{job_label(job)} has no checkpoints (yet).", ephemeral=True)
    fields, buttons = [], []
    for ckpt in sorted(found, key=lambda c: c.step):
        shown = ", ".join(f"{k} {v:.4g}" for k, v in ckpt.metrics.items() if k != "step") or "–"
        fields.append((f"step {ckpt.step}", f"`{ckpt.model}` · {shown}"))
        buttons.append(
            Button(
                label=f"Ask step {ckpt.step}",
                command=f"/ask-model model={ckpt.model} Hello! What can you do?",
            )
        )
    return Reply(
        text=f"Checkpoints of {job_label(job)}",
        sections=[Section(fields=fields)],
        buttons=buttons[:5],
        ephemeral=True,
    )
