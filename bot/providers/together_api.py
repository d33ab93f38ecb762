"""Together AI through its official `together` SDK (3.x): files, fine-tunes, events, metrics,
checkpoints, price estimates, and chat with the tuned model.

Shapes: the SDK's types (`together.types.finetune_response`, `finetune_event`,
`fine_tuning_list_metrics_response`, `file_response`), generated from Together's OpenAPI spec.
Together keeps no metadata on a job, so tuneup's key travels in the suffix and is found again in
the job's `model_output_name`.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import together
from together import AsyncTogether
from together.lib.types.error import FileTypeError

from bot.providers.base import (
    Checkpoint,
    CreateRequest,
    NotFound,
    ProviderAPI,
    Rejected,
    RemoteError,
    RemoteEvent,
    RemoteJob,
    TunableModel,
)

# Together's job states (FinetuneResponse.status, plus `user_error` from its docs) → tuneup's.
STATES = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "cancel_requested": "running",
    "cancelled": "cancelled",
    "error": "failed",
    "user_error": "failed",
    "completed": "succeeded",
}
DEFAULT_MODELS = (
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "Qwen/Qwen2.5-7B-Instruct",
)


def key_tag(key: str) -> str:
    return "tu" + hashlib.sha256(key.encode()).hexdigest()[:10]


class TogetherAPI(ProviderAPI):
    kind = "together"
    publishes_estimates = True

    def __init__(self, client: AsyncTogether, label: str, models: list[str] | None = None) -> None:
        self.client = client
        self.label = label
        self.tunable = list(models or DEFAULT_MODELS)

    async def upload(self, path: Path, name: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            named = Path(tmp) / name  # the SDK reads the format from the file's extension
            shutil.copyfile(path, named)
            try:
                uploaded = await self.client.files.upload(named, purpose="fine-tune", check=True)
            except FileTypeError as exc:
                raise Rejected(f"{self.label}'s file check refused it: {_first_line(exc)}") from exc
        if uploaded.processing_status in ("FAILED", "INVALID_FORMAT"):
            # The upload's answer drops the report; the file's own record has it.
            report = (await self.client.files.retrieve(uploaded.id)).validation_report
            reason = (report.error if report else None) or uploaded.processing_status
            raise Rejected(
                f"{self.label} rejected the file: {reason}. Fix that line, `/validate` again, "
                "and start the fine-tune again."
            )
        return uploaded.id

    async def file_exists(self, file_id: str) -> bool:
        try:
            await self.client.files.retrieve(file_id)
        except together.NotFoundError:
            return False
        return True

    async def create(self, request: CreateRequest) -> RemoteJob:
        try:
            remote = await self.client.with_options(max_retries=0).fine_tuning.create(
                **self._create_args(request)
            )
        except ValueError as exc:  # the SDK's own checks against the model's limits
            raise Rejected(f"{self.label} can't train with these settings: {exc}") from exc
        return to_remote_job(remote)

    def _create_args(self, request: CreateRequest) -> dict[str, Any]:
        hyper = request.hyperparameters
        args: dict[str, Any] = {
            "training_file": request.training_file,
            "model": request.model,
            "suffix": f"{(request.suffix or '')[:26]}-{key_tag(request.key)}".lstrip("-"),
            "lora": request.extra.get("lora", True),
            "training_method": "dpo" if request.method == "dpo" else "sft",
        }
        if request.method != "dpo":
            args["train_on_inputs"] = "auto"
        if request.validation_file:
            args |= {"validation_file": request.validation_file, "n_evals": 1}
        if hyper.get("n_epochs") not in (None, "auto"):
            args["n_epochs"] = int(hyper["n_epochs"])
        if hyper.get("batch_size") not in (None, "auto"):
            args["batch_size"] = int(hyper["batch_size"])
        if hyper.get("learning_rate_multiplier") not in (None, "auto"):
            args["learning_rate"] = 1e-5 * float(hyper["learning_rate_multiplier"])
        if request.method == "dpo" and hyper.get("beta") not in (None, "auto"):
            args["dpo_beta"] = float(hyper["beta"])
        if request.from_checkpoint:  # the checkpoint names its model
            args["from_checkpoint"] = request.from_checkpoint
            del args["model"]
        return args

    async def estimate(self, request: CreateRequest) -> float | None:
        args = self._create_args(request)
        estimate = await self.client.fine_tuning.estimate_price(
            training_file=args["training_file"],
            model=args["model"],
            n_epochs=args.get("n_epochs", 1),
        )
        if not getattr(estimate, "estimation_available", False):
            return None
        return getattr(estimate, "estimated_total_price", None)

    async def retrieve(self, job_id: str) -> RemoteJob:
        try:
            return to_remote_job(await self.client.fine_tuning.retrieve(job_id))
        except together.NotFoundError as exc:
            raise NotFound(job_id) from exc

    async def find_by_key(self, key: str) -> RemoteJob | None:
        tag = key_tag(key)
        page = await self.client.with_options(max_retries=2).fine_tuning.list()
        for job in page.data or []:
            if tag in (_output_name(job) or ""):
                return to_remote_job(job)
        return None

    async def events(self, job: RemoteJob, last_seen: str | None) -> tuple[list[RemoteEvent], int]:
        seen_events, seen_step = _cursor(last_seen)
        listed = await self.client.fine_tuning.list_events(job.id)
        metrics = await self.client.fine_tuning.list_metrics(job.id, global_step_from=seen_step + 1)
        total = max((e.total_steps or 0 for e in listed.data), default=0) or None
        items: list[RemoteEvent] = []
        count, step = seen_events, seen_step
        for event in listed.data[seen_events:]:
            count += 1
            items.append(RemoteEvent(f"{count}:{step}", event.message, None, event.level or "info"))
        for point in metrics.metrics or []:
            data = _metric_point(point, total)
            if data is None or data["step"] <= step:
                continue
            step = data["step"]
            items.append(RemoteEvent(f"{count}:{step}", f"Step {step}", data))
        return list(reversed(items)), 2

    async def cancel(self, job_id: str) -> None:
        await self.client.fine_tuning.cancel(job_id)

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        listed = await self.client.fine_tuning.list_checkpoints(job_id)
        return [Checkpoint(step=c.step, model=f"{job_id}:{c.step}") for c in listed.data]

    async def models(self) -> list[TunableModel]:
        found = []
        for name in self.tunable:
            try:
                limits = await self.client.fine_tuning.model_limits(model_name=name)
            except together.NotFoundError:
                continue  # configured, but Together no longer tunes it
            found.append(TunableModel(getattr(limits, "x_model_name", None) or name))
        return found

    async def ping(self) -> None:
        await self.client.with_options(max_retries=0, timeout=5).fine_tuning.list()

    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int, timeout: float
    ) -> str:
        client = self.client.with_options(max_retries=0, timeout=timeout)
        try:
            response = await client.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens, temperature=0
            )  # type: ignore[arg-type]
        except together.NotFoundError as exc:
            raise NotFound(model) from exc
        choice = response.choices[0]
        return (choice.message.content if choice.message else choice.text) or ""

    async def close(self) -> None:
        await self.client.close()


def to_remote_job(remote: Any) -> RemoteJob:
    raw = str(remote.status)
    failed = STATES.get(raw) == "failed"
    message = _last_error(remote) if failed else None
    seconds = getattr(getattr(remote, "progress", None), "seconds_remaining", None)
    method = getattr(getattr(remote, "training_method", None), "method", None)
    return RemoteJob(
        id=remote.id,
        status=STATES.get(raw, raw),
        raw_status=raw,
        model=remote.model,
        fine_tuned_model=_output_name(remote) if raw == "completed" else None,
        trained_tokens=remote.token_count,
        error=RemoteError(message or f"Together reported {raw}", raw) if failed else None,
        estimated_finish=None if seconds is None else _now() + int(seconds),
        method={"sft": "supervised", "dpo": "dpo"}.get(method or "", method),
    )


def _output_name(remote: Any) -> str | None:
    """`model_output_name` (the SDK names the attribute `x_model_output_name`: pydantic reserves
    the `model_` prefix)."""
    return getattr(remote, "x_model_output_name", None) or getattr(
        remote, "model_output_name", None
    )


def _last_error(remote: Any) -> str | None:
    errors = [e.message for e in (remote.events or []) if e.type == "job_error"]
    return errors[-1] if errors else None


def _metric_point(point: dict[str, float], total: int | None) -> dict[str, Any] | None:
    """Together's metrics rows: `global_step` (or `step`) with `train/*` and `eval/*` values."""
    step = point.get("global_step", point.get("train/global_step", point.get("step")))
    if step is None:
        return None
    train = point.get("train/loss", point.get("train_loss", point.get("loss")))
    valid = point.get("eval/loss", point.get("valid_loss"))
    return {"step": int(step), "total_steps": total, "train_loss": train, "valid_loss": valid}


def _cursor(last_seen: str | None) -> tuple[int, int]:
    """tuneup's cursor for Together: events seen so far and the last metrics step."""
    try:
        events, step = (last_seen or "0:0").split(":")
        return int(events), int(step)
    except ValueError:
        return 0, 0


def _first_line(exc: Exception) -> str:
    text = str(exc)
    for line in text.splitlines():
        if "message" in line or "line" in line.lower():
            return line.strip().strip(",").strip("'\"")
    return text.splitlines()[0] if text else type(exc).__name__


def _now() -> int:
    import time

    return int(time.time())
