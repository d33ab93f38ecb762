"""Run as a script: train a few steps of a small random Llama and print the measured peak
memory growth next to engine.memory's estimate, as JSON (a fresh process, so RSS is clean)."""

from __future__ import annotations

import json
import sys


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def main(batch: int, seq_len: int, checkpointing: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from engine import memory, trainer
    from engine.data import Example
    from engine.objectives import Supervised

    torch.set_num_threads(2)
    config = LlamaConfig(
        vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
        tie_word_embeddings=False,
    )  # fmt: skip
    examples = [
        Example(list(range(i, i + seq_len)), list(range(i, i + seq_len)), 0) for i in range(batch)
    ]
    baseline = rss_kib("VmRSS:")
    torch.manual_seed(0)
    model = trainer.add_lora(AutoModelForCausalLM.from_config(config), 16, 32)
    if checkpointing:
        trainer.enable_gradient_checkpointing(model)
    objective = Supervised(examples, 0, "cpu")
    run = trainer.TrainConfig(n_epochs=3, batch_size=batch, learning_rate=1e-3, seed=0)
    trainer.train(model, objective, run)
    measured = (rss_kib("VmHWM:") - baseline) * 1024
    n_params = sum(p.numel() for p in model.get_base_model().parameters())
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    shape = memory.Shape.of(config, n_params - lora)
    estimate = memory.estimate(
        shape,
        rank=16,
        tokens_per_step=batch * seq_len,
        labelled_per_step=batch * (seq_len - 1),
        gradient_checkpointing=checkpointing,
    )
    print(json.dumps({"measured": measured, "estimated": estimate.total, "text": estimate.text()}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "on")
