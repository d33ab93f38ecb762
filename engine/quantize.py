"""Int8 weight-only inference on a CPU: what makes /ask-model fast on a small machine.

Decoding one token reads every weight once, so on a CPU its time is the bytes of the weights
over memory bandwidth (SmolLM2-135M, 2 cores: 1.4 s per 32 tokens in fp32, 0.7 s in bf16).
Each linear layer keeps int8 weights with one scale per output row and computes in bf16 through
PyTorch's own CPU kernel (`aten::_weight_int8pack_mm`, the one torchao's int8 weight-only mode
lowers to), so a token reads a quarter of the fp32 bytes. Activations stay bf16: unlike dynamic
int8 quantization, nothing rounds the inputs to 8 bits, which is what changed its answers.
"""

from __future__ import annotations

from typing import Any

import torch


def int8_kernel_available() -> bool:
    return hasattr(torch, "_weight_int8pack_mm")


class Int8WeightOnlyLinear(torch.nn.Module):
    """A frozen nn.Linear stored as int8 rows and bf16 per-row scales (symmetric, absmax)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_int8", quantized.contiguous())
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))
        self.in_features = linear.in_features
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out = torch._weight_int8pack_mm(rows, self.weight_int8, self.scale)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: Any) -> Any:
    """Every nn.Linear (the output head too) becomes int8 weight-only; the rest turns bf16.

    Run it after merging a LoRA adapter: the merged weights are what gets quantized. The
    quantization is deterministic, so the same merged weights always give the same model.
    """
    model = model.to(torch.bfloat16)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, Int8WeightOnlyLinear(child))
    return model


def count_int8_layers(model: Any) -> int:
    return sum(isinstance(m, Int8WeightOnlyLinear) for m in model.modules())
