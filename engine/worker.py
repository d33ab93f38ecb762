"""The trainer process: takes queued jobs one at a time (FIFO) and trains them."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from engine.basemodels import UnknownBaseModel, is_hub_id
from engine.data import (
    DEFAULT_BETA,
    DataError,
    looks_like_classification,
    read_rows,
    row_prompt_and_label,
)
from engine.settings import EngineSettings
from engine.store import Store, new_id, now

log = logging.getLogger("tuneup.engine.worker")
METRIC_EVENTS = 200  # at most this many metrics events per job


def safe_dirname(model_id: str) -> str:
    return model_id.replace(":", "__").replace("/", "_")


class EngineGone(Exception):
    """The engine process died: stop at once and leave the job for the next engine to resume."""


class JobRun:
    """Everything that happens to one job inside the trainer process."""

    def __init__(
        self,
        store: Store,
        settings: EngineSettings,
        job: dict[str, Any],
        parent: int | None = None,
        rank: int = 0,
    ):
        self.store = store
        self.settings = settings
        self.job = job
        self.job_id = job["id"]
        self.internal = store.get_internal(self.job_id)
        self.model_name: str = self.internal["model_name"]
        self.history: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.trained_tokens = 0
        self.parent = parent or os.getppid()
        self.rank = rank  # under torch.distributed: only rank 0 reports and saves
        self.distributed = "WORLD_SIZE" in os.environ
        # why this process's run failed (code, message, param); ranks other than 0 can't write it
        self.failure: tuple[str, str, str | None] | None = None

    # helpers
    def event(self, message: str, **kw: Any) -> None:
        self.store.add_event(self.job_id, message, **kw)

    def cancelled(self) -> bool:
        if not self._engine_alive():
            raise EngineGone()
        return self.store.status_of(self.job_id) != "running"

    def _engine_alive(self) -> bool:
        if not self.distributed:
            return os.getppid() == self.parent
        try:  # a torchrun rank's parent is the launcher: ask after the engine itself
            os.kill(self.parent, 0)
        except ProcessLookupError:
            return False
        return True

    def fail(self, code: str, message: str, param: str | None = None) -> None:
        self.failure = (code, message, param)
        error = {"code": code, "message": message, "param": param}
        done = self.store.update_job(
            self.job_id,
            {"status": "failed", "error": error, "finished_at": now(), "estimated_finish": None},
            only_if=("running", "queued", "validating_files"),
        )
        if done:
            self.event(f"Job failed: {message}", level="error")

    def _file_path(self, file_id: str) -> Path:
        found = self.store.get_file(file_id)
        if not found:
            raise DataError(f"file {file_id} no longer exists")
        return found[1]

    # the job
    def run(self) -> None:
        try:
            self._run()
        except DataError as exc:
            self.fail("invalid_file", str(exc), exc.param)
        except UnknownBaseModel as exc:
            self.fail("model_not_available", f"{exc}.")
        except EngineGone:
            raise  # not this job's failure: the next engine resumes it
        except Exception:
            # The details go to the engine log; the job (and so the chat) gets a plain sentence.
            ref = self.job_id[-8:]
            log.exception("job %s crashed (ref %s)", self.job_id, ref)
            self.fail(
                "internal_error",
                f"training stopped unexpectedly inside the engine (reference {ref}); "
                "the engine log has the details",
            )
        finally:
            if self.rank == 0:  # other ranks end earlier, while rank 0 may still be saving
                shutil.rmtree(self.settings.data_dir / "tmp" / self.job_id, ignore_errors=True)

    def _run(self) -> None:
        from engine import trainer
        from engine.basemodels import load_tokenizer, pick_device
        from engine.data import tokenize_pairs, tokenize_rows

        train_rows = read_rows(self._file_path(self.job["training_file"]))
        valid_rows = []
        if self.job.get("validation_file"):
            valid_rows = read_rows(self._file_path(self.job["validation_file"]), "validation_file")
        if self.cancelled():
            return
        base = self.internal["base_model"]
        if is_hub_id(self.settings, base) and base not in self.settings.base_models:
            self.event(f"Fetching {base} from the Hugging Face Hub (or its local cache)")
        tokenizer = load_tokenizer(self.settings, base)
        dpo = self.internal.get("method") == "dpo"
        tokenize = tokenize_pairs if dpo else tokenize_rows
        train = tokenize(tokenizer, train_rows, self.settings.max_seq_len)
        valid = tokenize(tokenizer, valid_rows, self.settings.max_seq_len) if valid_rows else []
        self._n_train = len(train)  # steps per epoch and the start event read it
        resolved = self._resolve_hyperparameters(len(train), dpo)
        device, _ = pick_device(self.settings)
        plan = self._plan(base, device, resolved, train)
        if plan is None:
            return
        model = self._load_model(base, plan)
        objective = self._objective(train, valid, tokenizer, device, resolved, plan, dpo)
        config = self._train_config(len(train), resolved, plan)
        try:
            finished = self._train(model, objective, config, resolved["n_epochs"])
        except trainer.Cancelled:
            # Only a cancel discards: a pause (or a resume already queued behind it) keeps the
            # checkpoints the resumed run continues from.
            if self.store.status_of(self.job_id) == "cancelled":
                self._discard_outputs()
            else:
                self.event("Training stopped for the pause; the last checkpoint is kept")
            return
        if finished is None or self.rank != 0:
            return
        if plan.strategy == "fsdp":
            finished = self._unsharded(base, plan, finished)
        final = self._final_metrics(finished, tokenizer, objective, valid_rows)
        self._finish(finished, tokenizer, final, config.n_epochs * self._per_epoch(config))

    def _per_epoch(self, config: Any) -> int:
        from engine import trainer

        return trainer.steps_per_epoch(self._n_train, config.batch_size)

    def _resolve_hyperparameters(self, n_train: int, dpo: bool) -> dict[str, Any]:
        """ "auto" becomes numbers; the job's method object is updated to what is used."""
        from engine import trainer

        hp = self.internal["hyperparameters"]
        epochs = trainer.auto_epochs(n_train) if hp["n_epochs"] == "auto" else int(hp["n_epochs"])
        batch = (
            trainer.auto_batch_size(n_train)
            if hp["batch_size"] == "auto"
            else int(hp["batch_size"])
        )
        mult = hp["learning_rate_multiplier"]
        resolved: dict[str, Any] = {
            "n_epochs": epochs,
            "batch_size": max(1, min(batch, n_train)),
            "learning_rate_multiplier": 1.0 if mult == "auto" else float(mult),
        }
        if dpo:
            beta = hp.get("beta", "auto")
            resolved["beta"] = DEFAULT_BETA if beta == "auto" else float(beta)
        kind = "dpo" if dpo else "supervised"
        method = {"type": kind, kind: {"hyperparameters": resolved}}
        self.store.update_job(
            self.job_id, {"hyperparameters": resolved, "method": method}, only_if=("running",)
        )
        return resolved

    def _plan(self, base: str, device: str, resolved: dict[str, Any], train: list) -> Any:
        """How this job trains here; a job that cannot fit fails now, saying what would fit."""
        from engine.basemodels import base_shape
        from engine.plan import DoesNotFit, make_plan

        shape, model_type = base_shape(self.settings, base)
        longest = max(_length(e) for e in train)
        share = -(-resolved["batch_size"] // trainer_world_size())  # this rank's rows per step
        try:
            plan = make_plan(
                self.settings,
                device,
                shape,
                model_type,
                self.internal.get("extra_hyperparameters") or {},
                share,
                min(self.settings.max_seq_len, longest),
                processes=trainer_world_size(),
            )
        except DoesNotFit as exc:
            self.fail("insufficient_memory", f"{exc}.")
            return None
        self.store.set_internal_key(self.job_id, "plan", plan.as_dict())
        self.event(f"Training plan: {plan.describe()}")
        return plan

    def _load_model(self, base: str, plan: Any) -> Any:
        from engine import trainer
        from engine.basemodels import load_for_training

        model = load_for_training(self.settings, base, plan)
        resume = self.internal.get("resume")
        adapter = resume["path"] if resume else self.internal.get("init_adapter")
        model = trainer.add_lora(model, self.settings.lora_rank, self.settings.lora_alpha, adapter)
        if plan.gradient_checkpointing:
            trainer.enable_gradient_checkpointing(model)
        return model

    def _unsharded(self, base: str, plan: Any, sharded: Any) -> Any:
        """After FSDP, rank 0 alone goes on (scoring, saving): a whole copy of the model with
        the LoRA weights gathered from the shards."""
        import gc

        from engine import trainer
        from engine.basemodels import load_for_training

        state = trainer.full_lora_state(sharded)
        del sharded
        gc.collect()
        # fresh LoRA weights (a resumed job's starting checkpoint may be pruned by now),
        # then the trained ones
        model = trainer.add_lora(
            load_for_training(self.settings, base, plan),
            self.settings.lora_rank,
            self.settings.lora_alpha,
        )
        unused = model.load_state_dict(state or {}, strict=False).unexpected_keys
        if unused:
            raise RuntimeError(f"gathered LoRA weights did not fit the model: {unused[:3]}")
        return model

    def _objective(
        self,
        train: list,
        valid: list,
        tokenizer: Any,
        device: str,
        resolved: dict[str, Any],
        plan: Any,
        dpo: bool,
    ) -> Any:
        from engine.objectives import Preference, Supervised

        pad = tokenizer.pad_token_id
        if dpo:
            return Preference(train, pad, device, resolved["beta"], valid)
        return Supervised(
            train,
            pad,
            device,
            valid,
            packing=plan.packing,
            pack_len=self.settings.max_seq_len,
            attention=plan.attention,
        )

    def _train_config(self, n_train: int, resolved: dict[str, Any], plan: Any) -> Any:
        from engine import trainer

        batch, epochs = resolved["batch_size"], resolved["n_epochs"]
        total = trainer.steps_per_epoch(n_train, batch) * epochs
        resume = self.internal.get("resume")
        return trainer.TrainConfig(
            n_epochs=epochs,
            batch_size=batch,
            learning_rate=self.settings.base_learning_rate * resolved["learning_rate_multiplier"],
            seed=int(self.job.get("seed") or 0),
            start_epoch=resume["epoch"] if resume else 0,
            eval_every=max(1, total // 10),
            grad_accum=plan.grad_accum,
            strategy="fsdp" if plan.strategy == "fsdp" else "ddp",
            fused_adamw=plan.fused_adamw,
        )

    def _train(self, model: Any, objective: Any, config: Any, epochs: int) -> Any:
        """The loop with this job's progress events and checkpoints; None when it ran out of
        memory (the job is failed with what to change)."""
        from engine import trainer

        per_epoch = self._per_epoch(config)
        total = per_epoch * epochs
        resume = self.internal.get("resume")
        if resume:
            self.history = resume.get("history", [])
            self.event(f"Resuming from checkpoint at step {resume['step']}")
        else:
            self.event(
                f"Fine-tuning job started: {self._n_train} examples, {epochs} epochs, {total} steps"
            )
        self.started = time.monotonic()
        on_step = self._step_reporter(
            config.start_epoch * per_epoch, max(1, total // METRIC_EVENTS)
        )

        def on_epoch_end(epoch: int, step: int) -> None:
            if epoch < epochs:
                self._checkpoint(model, epoch, step)

        try:
            trainer.train(
                model,
                objective,
                config,
                on_step=on_step,
                on_epoch_end=on_epoch_end,
                should_stop=self.cancelled,
            )
        except (MemoryError, RuntimeError) as exc:
            if not _out_of_memory(exc):
                raise
            self.fail("out_of_memory", _oom_message(self.internal.get("plan") or {}))
            return None
        return model

    def _step_reporter(self, first_step: int, every: int) -> Any:
        from engine import trainer

        def on_step(s: trainer.StepStats) -> None:
            self.trained_tokens += s.tokens
            row = {
                "step": s.step,
                "train_loss": round(s.train_loss, 5),
                "train_accuracy": round(s.train_accuracy, 5),
                "valid_loss": None if s.valid_loss is None else round(s.valid_loss, 5),
                "valid_mean_token_accuracy": None
                if s.valid_accuracy is None
                else round(s.valid_accuracy, 5),
            }
            self.history.append(row)
            if s.step % every and s.step != s.total_steps and s.valid_loss is None:
                return
            self._report(s, row, first_step)

        return on_step

    def _report(self, s: Any, row: dict[str, Any], first_step: int) -> None:
        elapsed = time.monotonic() - self.started
        remaining = elapsed / max(1, s.step - first_step) * (s.total_steps - s.step)
        self.store.update_job(
            self.job_id, {"estimated_finish": now() + int(remaining)}, only_if=("running",)
        )
        speed = round(self.trained_tokens / max(elapsed, 1e-6), 1)
        self.store.set_internal_key(self.job_id, "tokens_per_second", speed)  # for /metrics
        message = f"Step {s.step}/{s.total_steps}: training loss={s.train_loss:.4f}"
        if s.valid_loss is not None:
            message += f", validation loss={s.valid_loss:.4f}"
        data = {
            "step": s.step,
            "total_steps": s.total_steps,
            "train_loss": row["train_loss"],
            "train_mean_token_accuracy": row["train_accuracy"],
            "valid_loss": row["valid_loss"],
            "valid_mean_token_accuracy": row["valid_mean_token_accuracy"],
        }
        self.event(message, data=data, type_="metrics")

    def _final_metrics(
        self, model: Any, tokenizer: Any, objective: Any, valid_rows: list
    ) -> dict[str, Any]:
        from engine.generation import encode_prompt, greedy_batch
        from engine.metrics import classification_metrics
        from engine.trainer import evaluate

        last = self.history[-1] if self.history else {}
        metrics: dict[str, Any] = {
            "step": last.get("step"),
            "train_loss": last.get("train_loss"),
            "train_mean_token_accuracy": last.get("train_accuracy"),
        }
        if objective.valid:
            loss, acc = evaluate(model, objective, 500)
            metrics.update(
                valid_loss=round(loss, 5),
                valid_mean_token_accuracy=round(acc, 5),
                full_valid_loss=round(loss, 5),
                full_valid_mean_token_accuracy=round(acc, 5),
            )
            if valid_rows[0].kind == "preference":
                return metrics  # no single expected answer to compare
            pairs = [row_prompt_and_label(r) for r in valid_rows[:300]]
            labels = [label for _, label in pairs]
            if looks_like_classification(labels):
                model.eval()
                model.config.use_cache = True
                prompts = [encode_prompt(tokenizer, p) for p, _ in pairs]
                longest = max(len(tokenizer(label)["input_ids"]) for label in labels)
                predicted = greedy_batch(model, tokenizer, prompts, longest + 1)
                metrics["classification"] = classification_metrics(labels, predicted)
                acc_c = metrics["classification"]["accuracy"]
                self.event(
                    f"Classification on the validation set: accuracy={acc_c:.3f}, "
                    f"macro F1={metrics['classification']['macro_f1']:.3f}",
                    data=metrics["classification"],
                    type_="metrics",
                )
        return metrics

    def _checkpoint(self, model: Any, epoch: int, step: int) -> None:
        from engine import trainer

        ckpt_root = self.settings.data_dir / "checkpoints" / self.job_id
        tmp = self.settings.data_dir / "tmp" / self.job_id / f"step-{step}"
        trainer.save_adapter(model, tmp)
        final = ckpt_root / f"step-{step}"
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        last = self.history[-1] if self.history else {}
        obj = {
            "id": new_id("ftckpt"),
            "object": "fine_tuning.job.checkpoint",
            "created_at": now(),
            "fine_tuned_model_checkpoint": f"{self.model_name}:ckpt-step-{step}",
            "fine_tuning_job_id": self.job_id,
            "step_number": step,
            # OpenAI's spec types these as numbers: a metric not measured is left out, not null.
            "metrics": {
                k: v
                for k, v in {
                    "step": step,
                    "train_loss": last.get("train_loss"),
                    "train_mean_token_accuracy": last.get("train_accuracy"),
                    "valid_loss": last.get("valid_loss"),
                    "valid_mean_token_accuracy": last.get("valid_mean_token_accuracy"),
                }.items()
                if v is not None
            },
        }
        self.store.add_checkpoint(obj, final)
        self.internal["last_checkpoint"] = {
            "path": str(final),
            "epoch": epoch,
            "step": step,
            "history": self.history,
        }
        self.store.set_internal_key(
            self.job_id, "last_checkpoint", self.internal["last_checkpoint"]
        )
        self._prune_checkpoints()
        self.event(f"Checkpoint created at step {step}")

    def _prune_checkpoints(self, keep_dir: Path | None = None) -> None:
        """Keep the newest checkpoints; never delete keep_dir (the final model's own files)."""
        for old, path in self.store.list_checkpoints(self.job_id)[self.settings.keep_checkpoints :]:
            self.store.delete_checkpoint(old["id"])
            if path != keep_dir:
                shutil.rmtree(path, ignore_errors=True)

    def _hand_to_server(self, adapter_dir: Path) -> None:
        """With a serving engine configured, it loads the adapter and answers for the model."""
        from engine.serving import SERVED_AS_KEY, SERVED_KEY, NotServed, load_adapter

        if not self.settings.serve_url:
            return
        try:
            served = load_adapter(self.settings, self.model_name, adapter_dir)
        except NotServed as problem:
            self.event(
                f"The serving engine did not load the adapter ({problem}); this engine answers "
                "for the model instead",
                level="warn",
            )
            return
        self.store.set_internal_key(self.job_id, SERVED_AS_KEY, served.name)
        self.store.set_internal_key(self.job_id, SERVED_KEY, self.settings.serve_url)
        self.event(
            f"Adapter loaded into {served.server} at {self.settings.serve_url} as {served.name}"
        )

    def _discard_outputs(self) -> None:
        for ckpt, path in self.store.list_checkpoints(self.job_id):
            self.store.delete_checkpoint(ckpt["id"])
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.settings.data_dir / "checkpoints" / self.job_id, ignore_errors=True)

    def _finish(self, model: Any, tokenizer: Any, metrics: dict[str, Any], total: int) -> None:
        from engine import trainer
        from engine.metrics import result_csv

        if self.cancelled():
            self._discard_outputs()
            return
        tmp = self.settings.data_dir / "tmp" / self.job_id / "final"
        trainer.save_adapter(model, tmp)
        tokenizer.save_pretrained(tmp)
        target = self.settings.data_dir / "models" / safe_dirname(self.model_name)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        # The final checkpoint is the model itself, queryable under both names.
        self.store.add_checkpoint(
            {
                "id": new_id("ftckpt"),
                "object": "fine_tuning.job.checkpoint",
                "created_at": now(),
                "fine_tuned_model_checkpoint": f"{self.model_name}:ckpt-step-{total}",
                "fine_tuning_job_id": self.job_id,
                "step_number": total,
                "metrics": {k: v for k, v in metrics.items() if k != "classification"},
            },
            target,
        )
        self._prune_checkpoints(keep_dir=target)
        result_id = new_id("file")
        result_path = self.settings.data_dir / "files" / result_id
        result_path.write_bytes(result_csv(self.history))
        self.store.add_file(
            {
                "id": result_id,
                "object": "file",
                "bytes": result_path.stat().st_size,
                "created_at": now(),
                "filename": "step_metrics.csv",
                "purpose": "fine-tune-results",
                "status": "processed",
            },
            result_path,
        )
        model_obj = {
            "id": self.model_name,
            "object": "model",
            "created": now(),
            "owned_by": "local",
        }
        self.store.add_model(model_obj, self.internal["base_model"], target, self.job_id)
        self._hand_to_server(target)
        self.internal["metrics"] = metrics
        self.store.set_internal_key(self.job_id, "metrics", metrics)
        done = self.store.update_job(
            self.job_id,
            {
                "status": "succeeded",
                "fine_tuned_model": self.model_name,
                "finished_at": now(),
                "estimated_finish": None,
                "trained_tokens": self.trained_tokens,
                "result_files": [result_id],
            },
            only_if=("running",),
        )
        if not done:  # cancelled at the last moment: leave nothing behind
            self.store.delete_model(self.model_name)
            shutil.rmtree(target, ignore_errors=True)
            self._discard_outputs()
            return
        self.event(
            f"New fine-tuned model created: {self.model_name}", data=metrics, type_="metrics"
        )
        self.event("The job has successfully completed")


def recover_interrupted(store: Store) -> None:
    """Jobs a dead engine left behind: every state has a way out.

    'validating_files' goes back to validation (the API re-runs it at start-up); 'running'
    resumes from its last checkpoint or fails clearly.
    """
    for job in store.jobs_with_status("running"):
        internal = store.get_internal(job["id"])
        ckpt = internal.get("last_checkpoint")
        if ckpt and Path(ckpt["path"]).exists():
            internal["resume"] = ckpt
            store.set_internal(job["id"], internal)
            store.update_job(job["id"], {"status": "queued"}, only_if=("running",))
            store.add_event(job["id"], f"Engine restarted; job re-queued from step {ckpt['step']}")
        else:
            error = {
                "code": "engine_restarted",
                "message": "the engine stopped while this job was training, before its first "
                "checkpoint; start the job again",
                "param": None,
            }
            store.update_job(
                job["id"],
                {
                    "status": "failed",
                    "error": error,
                    "finished_at": now(),
                    "estimated_finish": None,
                },
                only_if=("running",),
            )
            store.add_event(job["id"], f"Job failed: {error['message']}", level="error")


def worker_main(settings: EngineSettings, parent: int | None = None) -> None:
    """Entry point of the trainer process; exits when its parent (the engine) goes away.

    The engine passes its pid in: learning it with getppid() after the slow `import torch`
    would miss an engine stopped in its first seconds, and the trainer would live on.
    """
    parent = parent or os.getppid()
    if os.getppid() != parent:
        return
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
    store = Store(settings.db_path)
    while os.getppid() == parent:
        job = store.claim_next_queued()
        if job is None:
            time.sleep(0.25)
            continue
        try:
            _run_job(store, settings, job, parent)
        except EngineGone:
            logging.warning("the engine went away; job %s is left for it to resume", job["id"])
            return


def trainer_world_size() -> int:
    from engine.trainer import world

    return world()[1]


def _run_job(store: Store, settings: EngineSettings, job: dict[str, Any], parent: int) -> None:
    """One job: in this process, or as one torchrun launch over several devices."""
    from engine.distributed import launch, processes

    if processes(settings) <= 1:
        JobRun(store, settings, job, parent).run()
        return
    code = launch(settings, job["id"], parent)
    if os.getppid() != parent:
        raise EngineGone()
    # Still 'running' after the launch ended: it died before recording an outcome ('queued' is a
    # resume that arrived after a pause ended the run: the next claim trains it).
    if store.status_of(job["id"]) == "running":
        JobRun(store, settings, job, parent).fail(
            "internal_error",
            f"the distributed training run stopped (exit code {code}); the engine log has "
            "the details",
        )


def _length(item: Any) -> int:
    """Tokens of an example, or of a preference pair's longer answer."""
    if hasattr(item, "input_ids"):
        return len(item.input_ids)
    return max(len(item.chosen.input_ids), len(item.rejected.input_ids))


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def _oom_message(plan: dict[str, Any]) -> str:
    """What ran out and what to change, never a bare traceback."""
    where = "the GPU" if str(plan.get("device", "")).startswith("cuda") else "this machine"
    tips = []
    if not plan.get("gradient_checkpointing"):
        tips.append("TUNEUP_ENGINE_GRADIENT_CHECKPOINTING=on")
    tips.append("a smaller batch_size (accumulation keeps the effective batch)")
    if str(plan.get("device", "")).startswith("cuda") and not plan.get("qlora"):
        tips.append("qlora")
    tips.append("a shorter TUNEUP_ENGINE_MAX_SEQ_LEN")
    return (
        f"training ran out of memory on {where} (estimated "
        f"{plan.get('estimate_bytes', 0) / 2**30:.2f} GiB); try {', or '.join(tips)}"
    )
