"""Loihi fixed-point primitives (SPEC.md section 3).

Integer states are int64 (``y * (4096 - D)`` reaches 2**35, so fp32 cannot emulate them).

- :func:`trunc_int` — float -> int64, rounding toward zero (lava's input conversion).
- :func:`rstz` — ``sign(a) * (|a| >> n)``: arithmetic shift rounding toward zero.
- :func:`quantize_threshold` — ``trunc(θ * w_scale) / w_scale`` (Python ``int()``: truncation).
- :func:`round_ste` — ``torch.round`` (half to even) with a straight-through gradient.
- :func:`quantize_8bit` — lava's 8-bit weight quantisation (straight-through).
"""
from __future__ import annotations

import torch

from ._validate import check_number, check_tensor

__all__ = ["trunc_int", "rstz", "quantize_threshold", "round_ste", "quantize_8bit", "DECAY_BITS", "DECAY_ONE"]

DECAY_BITS = 12
DECAY_ONE = 1 << DECAY_BITS  # 4096


def trunc_int(x: torch.Tensor) -> torch.Tensor:
    """Round toward zero and convert to int64."""
    return torch.trunc(x.double() if x.dtype != torch.float64 else x).to(torch.int64)


def rstz(a: torch.Tensor, n: int = DECAY_BITS) -> torch.Tensor:
    """Right shift toward zero: ``sign(a) * (|a| >> n)`` on integer tensors."""
    return torch.sign(a) * (torch.abs(a) >> n)


def quantize_threshold(theta: float, w_scale: int = 64) -> float:
    """``int(theta * w_scale) / w_scale`` — truncation, not rounding (0.999 -> 63/64)."""
    return int(float(theta) * w_scale) / w_scale


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.round`` (half to even) with identity gradient."""
    return _RoundSTE.apply(x)


def quantize_8bit(weight: torch.Tensor, w_scale: int = 64, descale: bool = False) -> torch.Tensor:
    """lava's ``quantize_8bit``: ``round(w / (2/w_scale)) * (2/w_scale)`` clamped to
    ``[-256/w_scale, 254/w_scale]``; ``descale=True`` multiplies by ``w_scale`` (even integers
    in [-256, 254]). Rounding is straight-through, the clamp is an ordinary clamp.

    >>> quantize_8bit(torch.tensor([0.01, 0.02, 5.0, -5.0]))
    tensor([ 0.0000,  0.0312,  3.9688, -4.0000])
    """
    check_tensor("weight", weight)
    check_number("w_scale", w_scale, gt=0)
    step = 2.0 / w_scale
    q = round_ste(weight / step) * step
    q = torch.clamp(q, -256.0 / w_scale, 254.0 / w_scale)
    return q * w_scale if descale else q
