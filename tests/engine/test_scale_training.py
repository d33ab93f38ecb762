"""What training 1–8B models needs, checked on tiny random models on the CPU: packing without
attention across examples, gradient accumulation equal to a larger batch, DDP over 2 gloo
processes equal to 1 process with the doubled batch, gradient checkpointing, and each family's
own chat template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine import trainer
from engine.data import Example, read_rows, tokenize_rows
from engine.objectives import Supervised
from engine.packing import collate_packed, pack_groups
from tests.engine.tiny_models import FAMILIES, MARKERS, build


def examples(tokenizer, n: int = 16) -> list[Example]:  # type: ignore[no-untyped-def]
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Which number comes after {i}?"},
                {"role": "assistant", "content": f"After {i} comes {i + 1}." * (1 + i % 3)},
            ]
        }
        for i in range(n)
    ]
    path = Path(tokenizer.name_or_path).parent / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tokenize_rows(tokenizer, read_rows(path), 256)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("llama", tmp_path_factory.mktemp("tiny") / "llama")


def load(path: Path):  # type: ignore[no-untyped-def]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_with_its_own_chat_template(tmp_path: Path, family: str) -> None:
    model, tokenizer = load(build(family, tmp_path / family))
    data = examples(tokenizer, 8)
    text = tokenizer.decode(data[0].input_ids)
    assert MARKERS[family] in text, text  # the model's own template, not a built-in one
    labelled = tokenizer.decode([t for t in data[0].labels if t >= 0])
    assert "comes" in labelled and "Which number" not in labelled  # only the answer is trained
    lora = trainer.add_lora(model, 8, 16)
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) > 0
    objective = Supervised(data, tokenizer.pad_token_id or 0, "cpu")
    config = trainer.TrainConfig(n_epochs=4, batch_size=4, learning_rate=5e-3, seed=0)
    losses: list[float] = []
    trainer.train(lora, objective, config, on_step=lambda s: losses.append(s.train_loss))
    assert len(losses) == 8 and losses[-1] < losses[0], losses


def test_a_packed_token_cannot_attend_to_the_previous_example(llama: Path) -> None:
    model, tokenizer = load(llama)
    model.eval()
    first, second = examples(tokenizer, 2)
    alone = model(input_ids=torch.tensor([second.input_ids])).logits[0]
    start, end = len(first.input_ids), len(first.input_ids) + len(second.input_ids)
    for attention in ("sdpa", "eager"):
        model.set_attn_implementation(attention)
        batch = collate_packed([[first, second]], tokenizer.pad_token_id or 0, "cpu", attention)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        packed = model(**inputs).logits[0]
        torch.testing.assert_close(packed[start:end], alone, atol=1e-4, rtol=1e-4)
    # without the block mask the second example does see the first: the check can fail
    leaky = model(input_ids=batch["input_ids"]).logits[0][start:end]
    assert not torch.allclose(leaky, alone, atol=1e-3)
    assert batch["labels"][0, start] == -100  # no label across the boundary


def test_packing_fills_rows_up_to_the_length() -> None:
    rows = pack_groups([100, 30, 60, 10, 90], [0, 1, 2, 3, 4], 128)
    assert sorted(sum(rows, [])) == [0, 1, 2, 3, 4]
    sizes = [sum([100, 30, 60, 10, 90][i] for i in row) for row in rows]
    assert max(sizes) <= 128 and len(rows) == 3


def _one_step_weights(path: Path, batch: int, accum: int, packing: bool = False) -> dict:
    model, tokenizer = load(path)
    torch.manual_seed(0)
    lora = trainer.add_lora(model, 8, 16)
    objective = Supervised(examples(tokenizer, 8), tokenizer.pad_token_id or 0, "cpu")
    objective.packing = packing
    config = trainer.TrainConfig(
        n_epochs=1, batch_size=batch, learning_rate=1e-2, seed=3, grad_accum=accum
    )
    trainer.train(lora, objective, config)
    return {k: v.detach().clone() for k, v in lora.named_parameters() if v.requires_grad}


def test_gradient_accumulation_equals_the_larger_batch(llama: Path) -> None:
    whole = _one_step_weights(llama, batch=8, accum=1)
    accumulated = _one_step_weights(llama, batch=8, accum=4)
    for name, value in whole.items():
        torch.testing.assert_close(accumulated[name], value, atol=2e-5, rtol=1e-4)
    # the step did move the weights (LoRA's B matrices start at zero), so the check can fail
    assert any(v.abs().sum() > 0 for k, v in whole.items() if "lora_B" in k)


def train_curve(
    path: Path,
    rows: int = 8,
    dtype: torch.dtype = torch.float32,
    checkpointing: bool = False,
    **config: Any,
) -> tuple[list[float], Any]:
    """Train a seeded LoRA on `rows` examples; its loss per step, and the trained model."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    lora = trainer.add_lora(model, 8, 16)
    if checkpointing:
        trainer.enable_gradient_checkpointing(lora)
    objective = Supervised(examples(tokenizer, rows), tokenizer.pad_token_id or 0, "cpu")
    settings = {"n_epochs": 2, "batch_size": 4, "learning_rate": 1e-2, "seed": 0} | config
    curve: list[float] = []
    trainer.train(
        lora,
        objective,
        trainer.TrainConfig(**settings),
        on_step=lambda s: curve.append(s.train_loss),
    )
    return curve, lora


def test_gradient_checkpointing_gives_the_same_losses(llama: Path) -> None:
    (plain, _), (saved, _) = train_curve(llama), train_curve(llama, checkpointing=True)
    assert plain == pytest.approx(saved, rel=1e-4, abs=1e-5)


def _rank(rank: int, world: int, path: str, init: str, out: str, strategy: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        curve, lora = train_curve(Path(path), rows=16, batch_size=8, strategy=strategy)
        Path(f"{out}.{rank}").write_text(json.dumps(curve))
        if rank == 0:
            state = trainer.full_lora_state(lora)
            if state is None:  # DDP: every rank holds the whole model
                state = {k: v.detach() for k, v in lora.named_parameters() if v.requires_grad}
            torch.save(state, f"{out}.weights")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_ranks_train_like_one_rank_with_the_doubled_batch(
    llama: Path, tmp_path: Path, strategy: str
) -> None:
    out = str(tmp_path / "curve")
    init = f"file://{tmp_path}/rdv"
    mp.spawn(_rank, args=(2, str(llama), init, out, strategy), nprocs=2, join=True)
    two = json.loads(Path(f"{out}.0").read_text())
    assert json.loads(Path(f"{out}.1").read_text()) == []  # events come from rank 0 only
    model, tokenizer = load(llama)
    torch.manual_seed(0)
    lora = trainer.add_lora(model, 8, 16)
    objective = Supervised(examples(tokenizer, 16), tokenizer.pad_token_id or 0, "cpu")
    config = trainer.TrainConfig(n_epochs=2, batch_size=8, learning_rate=1e-2, seed=0)
    one: list[float] = []
    trainer.train(lora, objective, config, on_step=lambda s: one.append(s.train_loss))
    assert len(two) == len(one) == 4
    assert two == pytest.approx(one, rel=1e-3, abs=1e-4)
    assert one[-1] < one[0]
    # the weights rank 0 saves (gathered from the shards under FSDP) are the one-rank weights
    saved = torch.load(f"{out}.weights")
    mine = {k: v.detach() for k, v in lora.named_parameters() if v.requires_grad}
    assert saved.keys() == mine.keys()
    for name, value in mine.items():
        torch.testing.assert_close(saved[name], value, atol=1e-4, rtol=1e-3)


def test_fused_adamw_takes_the_same_steps_as_plain_adamw(llama: Path) -> None:
    """What the GPU plan turns on, checked where torch also has it: on the CPU."""
    plain, _ = train_curve(llama, n_epochs=3)
    fused, _ = train_curve(llama, n_epochs=3, fused_adamw=True)
    assert fused == pytest.approx(plain, rel=1e-4, abs=1e-5)
    assert fused[-1] < fused[0]
    config = trainer.TrainConfig(n_epochs=1, batch_size=1, learning_rate=1e-2, seed=0)
    weights = [torch.zeros(2, requires_grad=True)]
    assert trainer._optimizer(weights, config).defaults["fused"] is None
    config.fused_adamw = True
    assert trainer._optimizer(weights, config).defaults["fused"] is True


def test_a_bf16_base_trains_with_fp32_lora_weights(llama: Path) -> None:
    """The GPU plan's precision: bf16 base weights, LoRA weights and optimizer state in fp32."""
    losses, lora = train_curve(llama, dtype=torch.bfloat16, n_epochs=3, fused_adamw=True)
    trained = [p for p in lora.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    frozen = [p for p in lora.parameters() if not p.requires_grad]
    assert all(p.dtype == torch.bfloat16 for p in frozen)
    assert losses[-1] < losses[0], losses
