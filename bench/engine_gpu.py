"""The engine against TRL's SFTTrainer on a real model architecture (random weights: weights do
not change tokens/s), same data, same LoRA config (r=16, alpha=32, all projections), same batch.

Each run is its own process, so peak memory is clean. Printed for each: real (non-padding)
tokens/s, model FLOPs utilisation (6·N·tokens/s over the GPU's dense bf16 peak; LoRA skips the
frozen weights' gradients, so the hardware does nearer 4·N), peak memory, and the ratios. The
engine runs with its GPU plan (bf16, SDPA or FlashAttention, packing, fused AdamW, Liger when
installed, checkpointing when the estimate says so); `--qlora` adds a 4-bit base. The engine's
memory estimate is printed next to its measured peak.

    python bench/engine_gpu.py                       # CUDA: Llama-3.2-1B's shape, 30 steps
    python bench/engine_gpu.py --arch qwen2.5-3b --qlora
    python bench/engine_gpu.py --device cpu          # a tiny model, a few steps: it runs
Targets on an H200: engine ≥ 1.5× SFTTrainer tokens/s at ≤ 0.6× its peak memory; ≥ 40% MFU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The published config.json shapes of real models (random weights are built from them).
ARCHS: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": dict(
        family="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True,
    ),
    "qwen2.5-1.5b": dict(
        family="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
    ),
    "qwen2.5-3b": dict(
        family="qwen2", hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
        num_attention_heads=16, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
    ),
    "tiny": dict(
        family="llama", hidden_size=128, intermediate_size=344, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=8192, tie_word_embeddings=False,
    ),
}  # fmt: skip
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(arch: str, device: str, precision: str, attention: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    shape = dict(ARCHS[arch])
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[shape.pop("family")]
    config = config_class(**shape, max_position_embeddings=8192)
    config._attn_implementation = attention
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def synthetic_rows(n: int, vocab: int, low: int, high: int) -> list[list[int]]:
    """Token sequences of varied length, like real chat data (weights are random anyway)."""
    rng = random.Random(0)
    return [[rng.randrange(10, vocab) for _ in range(rng.randint(low, high))] for _ in range(n)]


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))


BASELINE: dict[str, int] = {}


def mark_baseline(device: str) -> None:
    """Memory before the model exists: the CPU peak is counted from here."""
    if not device.startswith("cuda"):
        BASELINE["rss"] = _status("VmRSS")


def peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated())
    return _status("VmHWM") - BASELINE.get("rss", 0)


def tokenizer() -> Any:
    """Any tokenizer will do for token ids that are already made: the bundled SmolLM2 one."""
    from transformers import AutoTokenizer

    from engine.basemodels import resolve_base_dir
    from engine.settings import DEFAULT_BASE_MODEL, EngineSettings

    found = AutoTokenizer.from_pretrained(resolve_base_dir(EngineSettings(), DEFAULT_BASE_MODEL))
    found.pad_token = found.pad_token or found.eos_token
    return found


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_engine(args: argparse.Namespace, rows: list[list[int]]) -> dict[str, Any]:
    from engine import memory, trainer
    from engine.data import Example
    from engine.objectives import Supervised
    from engine.plan import make_plan
    from engine.settings import EngineSettings

    cuda = args.device.startswith("cuda")
    settings = EngineSettings(_env_file=None, qlora=args.qlora)  # type: ignore[call-arg]
    mark_baseline(args.device)
    model = build_model(args.arch, args.device, "bf16" if cuda else "fp32", "sdpa")
    n_params = sum(p.numel() for p in model.parameters())
    shape = memory.Shape.of(model.config, n_params)
    extra = {"qlora": True} if args.qlora else {}
    plan = make_plan(
        settings, args.device, shape, model.config.model_type, extra, args.batch, args.seq
    )
    if plan.attention != "sdpa":
        model.config._attn_implementation = plan.attention
    if plan.liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    lora = trainer.add_lora(model, 16, 32)
    if plan.gradient_checkpointing:
        trainer.enable_gradient_checkpointing(lora)
    examples = [Example(r, r, 0) for r in rows]
    objective = Supervised(
        examples, 0, args.device, packing=plan.packing, pack_len=args.seq, attention=plan.attention
    )
    steps = {"n": 0, "start": 0.0, "tokens": 0}

    def on_step(s: trainer.StepStats) -> None:
        steps["n"] += 1
        if steps["n"] == 2:  # the first step warms up kernels and the allocator
            sync(args.device)
            steps["start"], steps["tokens"] = time.perf_counter(), 0
        elif steps["n"] > 2:
            steps["tokens"] += s.tokens

    config = trainer.TrainConfig(
        n_epochs=1, batch_size=args.batch, learning_rate=1e-4, seed=0,
        grad_accum=plan.grad_accum, fused_adamw=plan.fused_adamw,
    )  # fmt: skip
    trainer.train(lora, objective, config, on_step=on_step)
    sync(args.device)
    seconds = time.perf_counter() - steps["start"]
    return {
        "tokens_per_s": steps["tokens"] / seconds,
        "peak_bytes": peak_memory(args.device),
        # allocated memory is compared: the CUDA context is outside the allocator
        "estimate_bytes": plan.estimate_bytes - (memory.CUDA_CONTEXT if cuda else 0),
        "n_params": n_params,
        "plan": plan.describe(),
    }


def run_trl(args: argparse.Namespace, rows: list[list[int]]) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = args.device.startswith("cuda")
    processing = tokenizer()
    mark_baseline(args.device)
    model = build_model(args.arch, args.device, "bf16" if cuda else "fp32", "sdpa")
    n_params = sum(p.numel() for p in model.parameters())
    data = Dataset.from_dict({"input_ids": rows})
    clock: dict[str, float] = {"step": 0, "start": 0.0, "tokens": 0}

    class Timer(TrainerCallback):
        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            clock["step"] += 1
            if clock["step"] == 1:
                sync(args.device)
                clock["start"] = time.perf_counter()

    config = SFTConfig(
        output_dir=str(Path(args.tmp) / "trl"), per_device_train_batch_size=args.batch,
        max_steps=len(rows) // args.batch, learning_rate=1e-4, bf16=cuda, logging_steps=1000,
        save_strategy="no", report_to=[], max_length=args.seq, use_cpu=not cuda,
        dataloader_num_workers=0,
    )  # fmt: skip
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        peft_config=lora,
        processing_class=processing,
        callbacks=[Timer()],
    )
    trainer.train()
    sync(args.device)
    seconds = time.perf_counter() - clock["start"]
    timed_rows = rows[args.batch : (len(rows) // args.batch) * args.batch]
    return {
        "tokens_per_s": sum(len(r) for r in timed_rows) / seconds,
        "peak_bytes": peak_memory(args.device),
        "n_params": n_params,
        "gradient_checkpointing": bool(config.gradient_checkpointing),
    }


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    vocab = ARCHS[args.arch]["vocab_size"]
    rows = synthetic_rows(args.batch * args.steps, vocab, args.seq // 8, args.seq)
    result = run_engine(args, rows) if args.run == "engine" else run_trl(args, rows)
    print("RESULT " + json.dumps(result))


def spawn(kind: str, args: argparse.Namespace) -> dict[str, Any] | str:
    argv = [sys.executable, __file__, "--run", kind, "--device", args.device, "--arch", args.arch]
    argv += ["--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq)]
    argv += ["--tmp", args.tmp] + (["--qlora"] if args.qlora else [])
    out = subprocess.run(argv, capture_output=True, text=True)
    found = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not found:
        return f"{kind} failed: " + (out.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(found[-1][7:])


def mfu(result: dict[str, Any], device: str) -> str:
    if not device.startswith("cuda"):
        return "n/a (CPU)"
    import torch

    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    if peak is None:
        return f"n/a (unknown peak for {name})"
    return f"{6 * result['n_params'] * result['tokens_per_s'] / peak:.1%}"


def report(args: argparse.Namespace) -> None:
    gib = 2**30
    engine, trl = spawn("engine", args), spawn("trl", args)
    print(
        f"device {args.device}, arch {args.arch}, batch {args.batch}, seq ≤{args.seq}, steps {args.steps}"
    )
    if isinstance(engine, str):
        print(engine)
        return
    print(f"engine plan: {engine['plan']}")
    print(
        f"engine:     {engine['tokens_per_s']:10.1f} tokens/s  MFU {mfu(engine, args.device)}  "
        f"peak {engine['peak_bytes'] / gib:.2f} GiB (estimate {engine['estimate_bytes'] / gib:.2f} "
        f"GiB, error {engine['estimate_bytes'] / engine['peak_bytes'] - 1:+.0%})"
    )
    if isinstance(trl, str):
        print(f"SFTTrainer: {trl}")
        return
    print(
        f"SFTTrainer: {trl['tokens_per_s']:10.1f} tokens/s  MFU {mfu(trl, args.device)}  "
        f"peak {trl['peak_bytes'] / gib:.2f} GiB (gradient checkpointing {trl['gradient_checkpointing']})"
    )
    print(
        f"engine/SFTTrainer: {engine['tokens_per_s'] / trl['tokens_per_s']:.2f}× tokens/s, "
        f"{engine['peak_bytes'] / trl['peak_bytes']:.2f}× peak memory"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--arch", default=None, choices=sorted(ARCHS))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=None)
    parser.add_argument("--qlora", action="store_true")
    parser.add_argument("--run", choices=["engine", "trl"], default=None)
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cpu = args.device == "cpu"
    args.arch = args.arch or ("tiny" if cpu else "llama-3.2-1b")
    args.steps = args.steps or (6 if cpu else 30)
    args.seq = args.seq or (256 if cpu else 1024)
    if args.run:
        child(args)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        report(args)


if __name__ == "__main__":
    main()
