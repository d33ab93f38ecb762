"""Platform-neutral texts: progress lines, job status, the final summary."""

from __future__ import annotations

import time

from bot.types import Button, FileOut, Reply, Section
from storage.models import Job

STATUS_ICON = {
    "pending": "⏳",
    "validating_files": "🔎",
    "queued": "⏳",
    "running": "🏋️",
    "paused": "⏸️",
    "succeeded": "✅",
    "failed": "❌",
    "cancelled": "🛑",
}


def progress_bar(step: int | None, total: int | None, width: int = 20) -> str:
    if not step or not total:
        return "░" * width
    filled = round(width * min(step, total) / total)
    return "█" * filled + "░" * (width - filled)


def eta_text(estimated_finish: int | None) -> str:
    if not estimated_finish:
        return "–"
    seconds = max(0, estimated_finish - int(time.time()))
    if seconds < 90:
        return f"{seconds}s"
    return f"{seconds // 60}m {seconds % 60:02d}s"


def loss_text(job: Job) -> str:
    parts = []
    if job.train_loss is not None:
        parts.append(f"train loss {job.train_loss:.4f}")
    if job.valid_loss is not None:
        parts.append(f"valid loss {job.valid_loss:.4f}")
    return ", ".join(parts) or "no loss yet"


def job_label(job: Job) -> str:
    return f"job {job.id} ({job.provider_job_id})" if job.provider_job_id else f"job {job.id}"


def progress_reply(job: Job) -> Reply:
    icon = STATUS_ICON.get(job.status, "•")
    step = f"{job.step or 0}/{job.total_steps or '?'}"
    text = (
        f"{icon} {job_label(job)} · {job.status} · {progress_bar(job.step, job.total_steps)} {step}"
    )
    if job.status == "running":
        text += f" · {loss_text(job)} · ETA {eta_text(job.estimated_finish)}"
    return Reply(text=text, thread=job.thread)


def status_reply(job: Job) -> Reply:
    fields = [
        ("Status", f"{STATUS_ICON.get(job.status, '')} {job.status}"),
        (
            "Progress",
            f"{progress_bar(job.step, job.total_steps)} {job.step or 0}/{job.total_steps or '?'}",
        ),
        ("Losses", loss_text(job)),
        ("ETA", eta_text(job.estimated_finish) if job.status == "running" else "–"),
        ("Base model", f"{job.base_model} on {job.provider}"),
        ("Model", job.fine_tuned_model or "not ready yet"),
        ("Owner", job.owner),
    ]
    if job.error:
        fields.append(("Error", job.error))
    buttons = []
    if job.status in ("validating_files", "queued", "running"):
        buttons.append(Button(label="Cancel", command=f"/cancel {job.id}", style="danger"))
    return Reply(
        text=f"{job_label(job)}", sections=[Section(fields=fields)], buttons=buttons, ephemeral=True
    )


def _duration(job: Job) -> str:
    if not job.finished_at or not (job.started_at or job.created_at):
        return "–"
    start = job.started_at or job.created_at
    seconds = int(
        (job.finished_at.replace(tzinfo=None) - start.replace(tzinfo=None)).total_seconds()
    )
    return f"{seconds // 60}m {seconds % 60:02d}s"


def summary_reply(job: Job, chart: bytes | None) -> Reply:
    final = job.metrics.get("final") or {}
    if job.status == "succeeded":
        fields = [
            ("Model", f"`{job.fine_tuned_model}`"),
            ("Duration", _duration(job)),
            ("Trained tokens", f"{job.trained_tokens:,}" if job.trained_tokens else "–"),
            ("Final train loss", _num(final.get("train_loss", job.train_loss))),
        ]
        if final.get("valid_loss") is not None or job.valid_loss is not None:
            fields.append(("Final valid loss", _num(final.get("valid_loss", job.valid_loss))))
        if final.get("valid_mean_token_accuracy") is not None:
            label = (
                "Preferred answer wins (valid)"
                if final.get("method") == "dpo"
                else "Valid token accuracy"
            )
            fields.append((label, _num(final["valid_mean_token_accuracy"])))
        if final.get("method") == "dpo":
            fields.append(("Method", "DPO (preference pairs)"))
        sections = [Section(fields=fields)]
        cls = final.get("classification")
        if cls:
            rows = [
                f"`{label}` P {m['precision']:.2f} R {m['recall']:.2f} F1 {m['f1']:.2f} (n={m['support']})"
                for label, m in list(cls["per_class"].items())[:10]
            ]
            sections.append(
                Section(
                    title=f"Classification: accuracy {cls['accuracy']:.3f}, macro F1 {cls['macro_f1']:.3f}",
                    text="\n".join(rows),
                )
            )
        if final.get("serving"):
            sections.append(Section(title="Before it can answer", text=str(final["serving"])))
        sections.append(Section(text=f"Try it: `/ask-model {job.fine_tuned_model} <your prompt>`"))
        files = (
            [FileOut(name=f"loss-job-{job.id}.png", data=chart, mime="image/png")] if chart else []
        )
        return Reply(
            text=f"✅ {job_label(job)} finished: `{job.fine_tuned_model}`",
            sections=sections,
            files=files,
            thread=job.thread,
            buttons=[
                Button(label="Ask the model", command=f"/ask-model {job.fine_tuned_model} Hello!")
            ],
        )
    if job.status == "failed":
        return Reply(
            text=f"❌ {job_label(job)} failed: {job.error or 'no reason given'}",
            sections=[
                Section(
                    text="Fix the file or settings, then run `/validate` and `/finetune` again."
                )
            ],
            thread=job.thread,
        )
    return Reply(text=f"🛑 {job_label(job)} was cancelled.", thread=job.thread)


def _num(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "–"
