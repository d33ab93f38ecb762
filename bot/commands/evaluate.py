"""/eval: is the tuned model better than its base (and than the model it replaces)?"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import col, select

from bot.context import Context, UserError
from bot.datasets import ingest
from bot.evaluation import runner, service
from bot.router import command
from bot.types import Button, Command, FileOut, Reply, Section
from storage import repo
from storage.models import Dataset, EvalRun, Job

DEFAULT_ROWS = 200
MAX_ROWS = 2000


def _rows(cmd: Command) -> int:
    text = cmd.options.get("n", str(DEFAULT_ROWS))
    if not text.isdigit() or not 0 < int(text) <= MAX_ROWS:
        raise UserError(f"usage: n is a number of rows from 1 to {MAX_ROWS}")
    return int(text)


def _newest_job(ctx: Context, cmd: Command) -> Job | None:
    with ctx.session() as session:
        return repo.newest_model_in_channel(session, cmd.platform, cmd.workspace, cmd.channel)


def validation_dataset(ctx: Context, cmd: Command, job: Job) -> Dataset | None:
    """The dataset a job was scored on: its split's held-out half, or the validation file."""
    with ctx.session() as session:
        trained = session.get(Dataset, job.dataset_id) if job.dataset_id else None
        if trained is not None and trained.parent_id is not None:
            parent = session.get(Dataset, trained.parent_id)
            if parent is not None and (parent.split or {}).get("train") == trained.id:
                return session.get(Dataset, parent.split["valid"])
        if job.validation_file_id:
            for row in repo.recent_datasets(session, ctx.scope(cmd), limit=200):
                if (row.provider_files or {}).get(job.provider) == job.validation_file_id:
                    return row
    return None


async def _dataset(ctx: Context, cmd: Command, job: Job | None) -> Dataset:
    if cmd.attachments:
        dataset, _ = await ingest(ctx, cmd, cmd.attachments[0], ctx.settings.default_model)
        return dataset
    if "dataset" in cmd.options:
        with ctx.session() as session:
            found = repo.find_dataset(session, ctx.scope(cmd), cmd.options["dataset"])
        if found is None:
            raise UserError(
                f"No dataset `{cmd.options['dataset']}` here. Upload one with `/validate`."
            )
        return found
    found = validation_dataset(ctx, cmd, job) if job else None
    if found is None:
        raise UserError(
            "usage: say which examples to use: `dataset=ID` or attach a file "
            "(the newest tuned model here has no validation set)"
        )
    return found


def _models(ctx: Context, cmd: Command, job: Job | None) -> list[str]:
    if "models" in cmd.options:
        models = [m.strip() for m in cmd.options["models"].split(",") if m.strip()]
    elif job is not None and job.fine_tuned_model:
        models = [job.fine_tuned_model, job.base_model]
    else:
        raise UserError("usage: name the models (`models=A,B`); no model was tuned here yet")
    from bot.commands.ask import check_model_visible

    for model in models:
        check_model_visible(ctx, cmd, model)
        ctx.providers.for_model(model)  # an unconfigured provider is said now, not per row
    return list(dict.fromkeys(models))[:5]


def _plan(dataset: Dataset, models: list[str], n: int, judge: str | None) -> service.Plan:
    path = Path(dataset.fixed_path or dataset.path)
    examples = runner.load_examples(path, n)
    if not examples:
        raise UserError(f"`{dataset.filename}` has no examples with a reference answer to score.")
    report = dataset.report or {}
    task = "classification" if report.get("task_type") == "classification" else "open-ended"
    stop = (
        (report.get("stats") or {}).get("stop")
        if report.get("data_format") == "completion"
        else None
    )
    return service.Plan(models, examples, task, stop, judge, dataset.filename)


def _paid(ctx: Context, models: list[str]) -> list[str]:
    return [m for m in models if not ctx.providers.for_model(m)[0].is_local]


async def _start(ctx: Context, cmd: Command) -> Reply:
    job = _newest_job(ctx, cmd)
    models = _models(ctx, cmd, job)
    judge = cmd.options.get("judge")
    if judge:
        ctx.providers.for_model(judge)
    dataset = await _dataset(ctx, cmd, job)
    plan = _plan(dataset, models, _rows(cmd), judge)
    paid = _paid(ctx, models + ([judge] if judge else []))
    if paid and cmd.options.get("confirm", "").lower() not in ("yes", "y", "true"):
        tokens = sum(len(e.shown()) for e in plan.examples) // 4 * len(models)
        again = f"/eval dataset={dataset.id} " + " ".join(
            f"{k}={v}" for k, v in cmd.options.items() if k not in ("dataset", "confirm")
        )
        return Reply(
            text=f"Scoring {', '.join(f'`{m}`' for m in paid)} costs money at their provider: "
            f"~{tokens:,} prompt tokens plus the answers ({len(plan.examples)} rows); the price of "
            "inference there is unknown to tuneup. Run it?",
            buttons=[
                Button(
                    label="Run the eval", command=f"{again.strip()} confirm=yes", style="primary"
                )
            ],
            ephemeral=True,
        )
    run = _record(ctx, cmd, dataset, plan, job)
    service.spawn(ctx, run, plan)
    return Reply(
        text=f"🧪 eval {run.id}: {len(plan.examples)} rows of `{dataset.filename}` ({plan.task}) "
        f"against {', '.join(f'`{m}`' for m in models)}. This message shows the progress.",
        eval_id=run.id,
        thread=cmd.thread,
    )


def _record(
    ctx: Context, cmd: Command, dataset: Dataset, plan: service.Plan, job: Job | None
) -> EvalRun:
    return service.record(
        ctx,
        cmd,
        plan,
        owner=cmd.user,
        kind="eval",
        dataset_id=dataset.id,
        job_id=job.id if job else None,
    )


def _visible_runs(ctx: Context, cmd: Command, ref: str | None = None) -> list[EvalRun]:
    scope = ctx.scope(cmd)
    with ctx.session() as session:
        query = select(EvalRun).where(
            EvalRun.platform == cmd.platform, EvalRun.workspace == cmd.workspace
        )
        if not scope.admin:
            query = query.where((EvalRun.channel == cmd.channel) | (EvalRun.owner == cmd.user))
        if ref is not None:
            if not ref.lstrip("#").isdigit() or len(ref) > 18:
                return []
            query = query.where(EvalRun.id == int(ref.lstrip("#")))
        return list(session.exec(query.order_by(col(EvalRun.id).desc()).limit(15)))


def _list(ctx: Context, cmd: Command) -> Reply:
    runs = _visible_runs(ctx, cmd)
    if not runs:
        return Reply(
            text="No eval runs here yet. `/eval help` says how to start one.", ephemeral=True
        )
    fields = [
        (f"eval {r.id} · {r.status}", f"{r.n_rows} rows · {', '.join(r.models)} · by {r.owner}")
        for r in runs
    ]
    return Reply(text="Eval runs", sections=[Section(fields=fields)], ephemeral=True)


def _show(ctx: Context, cmd: Command, ref: str) -> Reply:
    runs = _visible_runs(ctx, cmd, ref)
    if not runs:
        raise UserError(f"No eval `{ref}` here. `/eval list` shows the runs.")
    run = runs[0]
    fields = [
        (
            f"`{model}`",
            " · ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)),
        )
        for model, scores in run.metrics.items()
        if not model.startswith("_")
    ]
    files = []
    if run.rows_path and Path(run.rows_path).exists():
        files.append(
            FileOut(
                name=f"eval-{run.id}.json",
                data=Path(run.rows_path).read_bytes(),
                mime="application/json",
            )
        )
    note = f" ({run.error})" if run.error else ""
    return Reply(
        text=f"eval {run.id}: {run.status}{note}, {run.n_rows} rows, {run.task_type}",
        sections=[Section(fields=fields)] if fields else [],
        files=files,
    )


@command(
    "eval",
    "/eval [dataset=ID | file] [models=A,B,...] [n=N] [judge=MODEL] | /eval list | /eval show ID",
    "Score models on held-out examples: tuned vs base by default, side by side, with every row.",
    "Classification data is scored by accuracy, macro-F1 and per-class precision/recall/F1 (with a "
    "confusion matrix); open-ended data by exact and normalised match, token F1 and ROUGE-L, and, "
    "with `judge=MODEL`, a judge model's 1–5 grade. The judge is asked:\n```"
    + runner.JUDGE_PROMPT
    + "```\nDefaults: the newest model tuned here against its base, on its validation set. "
    "Scoring a paid model asks first.",
    options=("dataset", "models", "n", "judge", "confirm"),
    max_args=2,
)
async def eval_command(ctx: Context, cmd: Command) -> Reply:
    action = cmd.args[0].lower() if cmd.args else None
    if action == "list":
        return _list(ctx, cmd)
    if action == "show":
        if len(cmd.args) < 2:
            raise UserError("usage: say which run, e.g. `/eval show 3`")
        return _show(ctx, cmd, cmd.args[1])
    if action is not None:
        raise UserError(f"usage: unknown action `{action[:20]}`; use list or show")
    return await _start(ctx, cmd)
