"""An eval run from start to stored result: one progress message edited in place, then one
result message with a side-by-side table, a bar chart, a confusion matrix and every row attached.

The run works in the background (the command answers at once); everything it says goes through
the outbox, so a restart loses nothing, and an interrupted run is closed with a clear message.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from bot.charts import confusion_chart, metrics_chart
from bot.context import Context
from bot.evaluation import runner
from bot.observability import EVAL_RUNS
from bot.types import FileOut, Reply, Section
from storage import repo
from storage.models import EvalRun, Outbox, utcnow

log = logging.getLogger("tuneup.eval")
PROGRESS_EVERY_SECONDS = 2.0


@dataclass
class Plan:
    models: list[str]
    examples: list[runner.Example]
    task: str  # "classification" | "open-ended"
    stop: str | None = None
    judge: str | None = None
    title: str = "eval"


def runs_dir(ctx: Context) -> Path:
    path = ctx.settings.data_dir / "evals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _enqueue(ctx: Context, run: EvalRun, key: str, reply: Reply, kind: str = "post") -> None:
    with ctx.session() as session:
        if kind == "progress":
            repo.supersede_eval_progress(session, run.id)
        repo.enqueue(
            session,
            Outbox(
                key=key,
                eval_id=run.id,
                platform=run.platform,
                workspace=run.workspace,
                channel=run.channel,
                thread=run.thread,
                kind=kind,
                payload=reply.model_dump_json().encode(),
            ),
        )
        session.commit()


class Progress:
    """Edits the run's one progress message, at most every couple of seconds."""

    def __init__(self, ctx: Context, run: EvalRun, total: int) -> None:
        self.ctx, self.run, self.total = ctx, run, total
        self.done, self.sent_at, self.seq = 0, 0.0, 0

    async def step(self, model: str, done_for_model: int, offset: int) -> None:
        self.done = offset + done_for_model
        if time.monotonic() - self.sent_at < PROGRESS_EVERY_SECONDS and self.done < self.total:
            return
        self.sent_at, self.seq = time.monotonic(), self.seq + 1
        bar = "█" * round(20 * self.done / max(1, self.total))
        text = (
            f"🧪 eval {self.run.id}: {self.done}/{self.total} answers {bar:░<20} (asking `{model}`)"
        )
        _enqueue(
            self.ctx,
            self.run,
            f"eval:{self.run.id}:progress:{self.seq}",
            Reply(text=text),
            "progress",
        )
        await self.ctx_deliver()

    async def ctx_deliver(self) -> None:
        notifier = getattr(self.ctx, "notifier", None)
        if notifier is not None:
            await notifier.deliver_pending()


async def execute(ctx: Context, run: EvalRun, plan: Plan) -> list[runner.ModelResult]:
    results = []
    progress = Progress(ctx, run, len(plan.examples) * len(plan.models))
    tokens = runner.answer_tokens(plan.task, [e.reference for e in plan.examples])
    for i, model in enumerate(plan.models):
        offset = i * len(plan.examples)

        async def tick(done: int, model: str = model, offset: int = offset) -> None:
            await progress.step(model, done, offset)

        answers = await runner.answer_all(
            ctx, model, plan.examples, max_tokens=tokens, stop=plan.stop, progress=tick
        )
        result = runner.ModelResult(model, answers)
        runner.score(result, plan.examples, plan.task)
        if plan.judge and plan.task != "classification":
            result.metrics["judge"] = await runner.judge_scores(
                ctx, plan.judge, plan.examples, answers
            )
        results.append(result)
    return results


async def run_and_report(ctx: Context, run: EvalRun, plan: Plan) -> None:
    """The whole run; any failure closes it with a plain message instead of leaving it running."""
    try:
        results = await execute(ctx, run, plan)
        rows = _rows(plan, results)
        path = runs_dir(ctx) / f"eval-{run.id}.json"
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
        metrics: dict[str, Any] = {r.model: r.metrics for r in results}
        if results and results[0].classification is not None:
            c = results[0].classification
            metrics["_classification"] = {
                r.model: r.classification.per_class for r in results if r.classification
            }
            metrics["_labels"] = c.labels
        _finish(ctx, run, "succeeded", metrics=metrics, rows_path=str(path))
        _enqueue(ctx, run, f"eval:{run.id}:result", result_reply(run, plan, results, rows))
    except Exception:
        ref = f"eval-{run.id}"
        log.exception(
            "eval %s failed (ref %s)",
            run.id,
            ref,
            extra={"eval_id": run.id, "platform": run.platform, "workspace": run.workspace},
        )
        _finish(ctx, run, "failed", error="the run stopped unexpectedly; see the log")
        _enqueue(
            ctx,
            run,
            f"eval:{run.id}:result",
            Reply(
                text=f"❌ eval {run.id} stopped unexpectedly (reference `{ref}`). Try `/eval` again."
            ),
        )
    notifier = getattr(ctx, "notifier", None)
    if notifier is not None:
        await notifier.deliver_pending()


def _finish(ctx: Context, run: EvalRun, status: str, **changes: Any) -> None:
    EVAL_RUNS.labels(status).inc()
    with ctx.session() as session:
        row = session.get(EvalRun, run.id)
        assert row is not None
        row.status, row.finished_at = status, utcnow()
        for key, value in changes.items():
            setattr(row, key, value)
        session.add(row)
        session.commit()


def _rows(plan: Plan, results: list[runner.ModelResult]) -> list[dict[str, Any]]:
    rows = []
    for i, example in enumerate(plan.examples):
        row: dict[str, Any] = {
            "line": example.line,
            "input": example.shown(),
            "reference": example.reference,
        }
        for result in results:
            answer = result.answers[i]
            row[result.model] = answer.text if answer.error is None else f"(error: {answer.error})"
            row[f"{result.model} correct"] = _correct(
                plan.task, answer.text, example.reference, plan
            )
        rows.append(row)
    return rows


def _correct(task: str, text: str, reference: str, plan: Plan) -> bool:
    from bot.evaluation import scoring

    if task == "classification":
        labels = sorted({e.reference for e in plan.examples})
        return scoring.label_of(text, labels) == reference
    return bool(scoring.normalised_match(text, reference))


def result_reply(run: EvalRun, plan: Plan, results: list[runner.ModelResult], rows: list) -> Reply:
    names = [m for m in results[0].metrics if m != "errors"] if results else []
    fields = [
        (
            f"`{r.model}`",
            " · ".join(f"{n} {r.metrics[n]:.3f}" for n in names)
            + (f" · {int(r.metrics['errors'])} errors" if r.metrics.get("errors") else ""),
        )
        for r in results
    ]
    sections = [Section(fields=fields)]
    if run.kind == "migration" and len(results) == 2:
        sections.append(parity_section(results[0], results[1]))
    if len(results) >= 2 and names:
        best = max(results, key=lambda r: r.metrics[names[0]])
        sections.append(Section(text=f"Best on {names[0]}: `{best.model}`."))
    files = [
        FileOut(
            name=f"eval-{run.id}.png",
            data=metrics_chart({r.model: r.metrics for r in results}, plan.title),
            mime="image/png",
        )
    ]
    if results and results[0].classification is not None:
        c = results[0].classification
        chart = confusion_chart(c.labels, c.confusion, f"{results[0].model[-40:]}: confusion")
        files.append(FileOut(name=f"eval-{run.id}-confusion.png", data=chart, mime="image/png"))
    files.append(
        FileOut(
            name=f"eval-{run.id}.json",
            data=json.dumps(rows, ensure_ascii=False, indent=1).encode(),
            mime="application/json",
        )
    )
    files.append(FileOut(name=f"eval-{run.id}.csv", data=_csv(rows), mime="text/csv"))
    return Reply(
        text=f"🧪 eval {run.id} done: {len(plan.examples)} rows of {plan.title}, {plan.task}",
        sections=sections,
        files=files,
        thread=run.thread,
    )


def parity_section(new: runner.ModelResult, old: runner.ModelResult) -> Section:
    """How often the replacement answers as the model it replaces does."""
    from bot.evaluation import scoring

    pairs = list(zip(new.answers, old.answers, strict=True))
    same = sum(scoring.normalise(a.text) == scoring.normalise(b.text) for a, b in pairs)
    share = same / max(1, len(pairs))
    return Section(
        title="Parity",
        text=f"`{new.model}` agrees with `{old.model}` on {same} of {len(pairs)} rows ({share:.0%}); "
        f"the {len(pairs) - same} rows where they differ are in the attachment.",
    )


def _csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode()


def close_interrupted(ctx: Context) -> int:
    """At start-up: runs a dead process left 'running' are closed, with a message saying so."""
    with Session(ctx.db, expire_on_commit=False) as session:
        stale = list(session.exec(select(EvalRun).where(EvalRun.status == "running")))
    for run in stale:
        _finish(ctx, run, "failed", error="interrupted by a restart")
        _enqueue(
            ctx,
            run,
            f"eval:{run.id}:result",
            Reply(text=f"⚠️ eval {run.id} was interrupted by a restart. Run `/eval` again."),
        )
    return len(stale)


def record(
    ctx: Context,
    where: Any,
    plan: Plan,
    *,
    owner: str,
    kind: str,
    dataset_id: int | None,
    job_id: int | None,
) -> EvalRun:
    """Store a run about to start; `where` is anything with platform, workspace, channel, thread."""
    with ctx.session() as session:
        run = EvalRun(
            platform=where.platform,
            workspace=where.workspace,
            channel=where.channel,
            thread=where.thread,
            owner=owner,
            kind=kind,
            dataset_id=dataset_id,
            job_id=job_id,
            models=plan.models,
            judge=plan.judge,
            task_type=plan.task,
            n_rows=len(plan.examples),
        )
        repo.add(session, run)
        session.commit()
        return run


def spawn(ctx: Context, run: EvalRun, plan: Plan) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(run_and_report(ctx, run, plan))
    ctx.background.add(task)
    task.add_done_callback(ctx.background.discard)
    return task
