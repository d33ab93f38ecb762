"""Engine training throughput against a plain transformers Trainer, plus end-to-end timings.

Same base model (SmolLM2-135M-Instruct), same tokenized examples (the cookbook's 200-example
dbpedia classification file), same LoRA config (r=16, alpha=32, all projections), same batch
size, one epoch each, in this one process:
  - engine: tuneup's training loop (length-bucketed batches, logits only where labels are);
  - baseline: `transformers.Trainer` with `DataCollatorForSeq2Seq` (pads each random batch to
    its longest row; the model computes logits at every position).
Throughput counts real (non-padding) tokens per second for both. Then, through the running
engine's API with the official openai SDK: time to the first usable model on the 200 examples,
and chat-completion latency for 32 new tokens. Target: engine ≥ 1.5× the baseline.

    .venv/bin/python bench/engine_train.py [--data PATH] [--batch 8] [--skip-api]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT / "tests" / "data" / "dbpedia_samples.jsonl"
MODEL = "smollm2-135m-instruct"


def load(data: Path):  # type: ignore[no-untyped-def]
    import torch

    from engine.basemodels import load_base
    from engine.data import read_rows, tokenize_rows
    from engine.settings import EngineSettings

    settings = EngineSettings()
    torch.set_num_threads(os.cpu_count() or 1)
    model, tokenizer = load_base(settings, MODEL)
    examples = tokenize_rows(tokenizer, read_rows(data), settings.max_seq_len)
    return settings, model, tokenizer, examples


def engine_run(settings, model, tokenizer, examples, batch: int) -> float:  # type: ignore[no-untyped-def]
    from engine.objectives import Supervised
    from engine.trainer import TrainConfig, add_lora, train

    lora = add_lora(model, settings.lora_rank, settings.lora_alpha)
    config = TrainConfig(n_epochs=1, batch_size=batch, learning_rate=5e-4, seed=0)
    started = time.perf_counter()
    train(lora, Supervised(examples, tokenizer.pad_token_id, "cpu"), config)
    seconds = time.perf_counter() - started
    lora.unload()  # back to the plain base model for the baseline
    return seconds


def baseline_run(settings, model, tokenizer, examples, batch: int) -> float:  # type: ignore[no-untyped-def]
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from engine.trainer import LORA_TARGETS

    lora = get_peft_model(
        model,
        LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_dropout=0.0,
            target_modules=LORA_TARGETS,
            task_type="CAUSAL_LM",
        ),
    )
    rows = [
        {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
        for e in examples
    ]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            learning_rate=5e-4,
            lr_scheduler_type="linear",
            warmup_steps=max(1, len(examples) // batch // 20),
            weight_decay=0.0,
            max_grad_norm=1.0,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            seed=0,
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=lora,
            args=args,
            train_dataset=rows,
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    lora.unload()
    return seconds


def api_timings(data: Path) -> tuple[float, int, list[float]]:
    from openai import OpenAI

    from tests.conftest import free_port, start_engine, stop_engine

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        engine_dir = Path(tmp) / "engine"
        engine_dir.mkdir()
        proc = start_engine(engine_dir, port, api_key="bench-key")
        try:
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench-key")
            started = time.perf_counter()
            upload = client.files.create(file=data.open("rb"), purpose="fine-tune")
            job = client.fine_tuning.jobs.create(model=MODEL, training_file=upload.id)
            while job.status not in ("succeeded", "failed", "cancelled"):
                time.sleep(0.5)
                job = client.fine_tuning.jobs.retrieve(job.id)
            to_model = time.perf_counter() - started
            if job.status != "succeeded":
                raise RuntimeError(f"the bench job {job.status}: {job.error}")
            steps = job.hyperparameters.n_epochs
            latencies = []
            for i in range(6):
                t0 = time.perf_counter()
                answer = client.chat.completions.create(
                    model=job.fine_tuned_model,
                    messages=[{"role": "user", "content": f"Describe item {i} in one sentence."}],
                    max_tokens=32,
                    temperature=0,
                    extra_body={"min_tokens": 32},
                )
                latencies.append(time.perf_counter() - t0)
                assert answer.usage is not None and answer.usage.completion_tokens == 32
            return to_model, int(steps or 0), latencies[1:]  # the first call loads the model
        finally:
            stop_engine(proc)


def main(data: Path, batch: int, skip_api: bool) -> int:
    settings, model, tokenizer, examples = load(data)
    real_tokens = sum(len(e.input_ids) for e in examples)
    labelled = sum(e.n_trained for e in examples)
    print(f"engine training bench: {MODEL}, {len(examples)} examples from {data.name}")
    print(
        f"  {real_tokens:,} real tokens ({labelled:,} labelled), batch {batch}, 1 epoch, "
        f"LoRA r={settings.lora_rank}, {os.cpu_count()} CPU threads"
    )
    # Warm up kernels and allocator once, outside both timings.
    engine_run(settings, model, tokenizer, examples[:batch], batch)
    engine_s = engine_run(settings, model, tokenizer, examples, batch)
    baseline_s = baseline_run(settings, model, tokenizer, examples, batch)
    ratio = baseline_s / engine_s
    print(f"  engine   {engine_s:7.2f} s  {real_tokens / engine_s:8,.0f} tokens/s")
    print(
        f"  baseline {baseline_s:7.2f} s  {real_tokens / baseline_s:8,.0f} tokens/s (transformers Trainer)"
    )
    print(f"  ratio {ratio:.2f}× (target ≥ 1.5×): {'met' if ratio >= 1.5 else 'NOT met'}")
    if not skip_api:
        to_model, epochs, latencies = api_timings(data)
        print(
            f"  time to first usable model through the API (upload → succeeded, default "
            f"hyperparameters, {epochs} epochs): {to_model:.1f} s"
        )
        print(
            f"  chat completion, 32 new tokens: median {statistics.median(latencies) * 1000:.0f} ms "
            f"(min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f})"
        )
    return 0 if ratio >= 1.5 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"data file {args.data} not found; pass --data")
    raise SystemExit(main(args.data, args.batch, args.skip_api))
