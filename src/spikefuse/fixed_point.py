"""Loihi fixed-point primitives (SPEC.md section 3).

Integer states are int64 (``y * (4096 - D)`` reaches 2**35, so fp32 cannot emulate them).

- :func:`trunc_int` — float -> int64, rounding toward zero (lava's input conversion).
- :func:`rstz` — ``sign(a) * (|a| >> n)``: arithmetic shift rounding toward zero.
- :func:`quantize_threshold` — ``trunc(θ * w_scale) / w_scale`` (Python ``int()``: truncation).
- :func:`round_ste` — ``torch.round`` (half to even) with a straight-through gradient.
- :func:`quantize_8bit` — lava's 8-bit weight quantisation (straight-through).
- :func:`decay_view` — a decay parameter as a tensor broadcasting against one step.
- :func:`cuba_constants` / :func:`alif_constants` and :data:`RESONATOR_SURROGATE_MULTIPLIERS` —
  the derived Loihi constants (scales, quantised thresholds, surrogate width/height) that the
  reference loops and the fused kernels both use.
"""
from __future__ import annotations

from numbers import Real
from typing import Optional

import torch

from ._core import describe
from ._validate import caller_is_outside, check_bool, check_number, check_scalar, check_size, check_tensor

__all__ = ["trunc_int", "rstz", "quantize_threshold", "round_ste", "quantize_8bit", "DECAY_BITS", "DECAY_ONE",
           "decay_view", "cuba_constants", "alif_constants", "TAU_RHO_MULT", "SCALE_RHO_MULT",
           "RESONATOR_SURROGATE_MULTIPLIERS"]

DECAY_BITS = 12
DECAY_ONE = 1 << DECAY_BITS  # 4096


def trunc_int(x: torch.Tensor) -> torch.Tensor:
    """Round toward zero and convert to int64 (NaN/inf, which have no integer, are refused for
    calls from outside the library; its Loihi loops pass checked values)."""
    if caller_is_outside():
        check_tensor("x", x)
    return torch.trunc(x.double() if x.dtype != torch.float64 else x).to(torch.int64)


def rstz(a: torch.Tensor, n: int = DECAY_BITS) -> torch.Tensor:
    """Right shift toward zero: ``sign(a) * (|a| >> n)`` on integer tensors."""
    if caller_is_outside():
        _check_int_tensor("a", a)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 63:
            raise TypeError(f"n: expected an int in 0..62, got {describe(n)}")
    return torch.sign(a) * (torch.abs(a) >> n)


def quantize_threshold(theta: float, w_scale: int = 64) -> float:
    """``int(theta * w_scale) / w_scale`` — truncation, not rounding (0.999 -> 63/64)."""
    if caller_is_outside():
        check_scalar("theta", theta)
        if isinstance(w_scale, bool) or not isinstance(w_scale, int) or w_scale <= 0:
            raise TypeError(f"w_scale: expected a positive int, got {describe(w_scale)}")
    return int(float(theta) * w_scale) / w_scale


def _check_int_tensor(name: str, a) -> None:
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name}: expected an integer tensor, got {describe(a)}")
    if a.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise TypeError(f"{name}: expected an integer tensor, got dtype {a.dtype}")


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.round`` (half to even) with identity gradient."""
    if caller_is_outside():
        check_tensor("x", x)
    return _RoundSTE.apply(x)


def quantize_8bit(weight: torch.Tensor, w_scale: int = 64, descale: bool = False) -> torch.Tensor:
    """lava's ``quantize_8bit``: ``round(w / (2/w_scale)) * (2/w_scale)`` clamped to
    ``[-256/w_scale, 254/w_scale]``; ``descale=True`` multiplies by ``w_scale`` (even integers
    in [-256, 254]). Rounding is straight-through, the clamp is an ordinary clamp.

    >>> quantize_8bit(torch.tensor([0.01, 0.02, 5.0, -5.0]))
    tensor([ 0.0000,  0.0312,  3.9688, -4.0000])
    """
    check_tensor("weight", weight)
    check_size("w_scale", w_scale)
    check_bool("descale", descale)
    step = 2.0 / w_scale
    q = round_ste(weight / step) * step
    q = torch.clamp(q, -256.0 / w_scale, 254.0 / w_scale)
    return q * w_scale if descale else q


#: lava-dl's hidden surrogate multipliers for CUBA / ALIF (SPEC 2.1)
TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1

#: resonator models: (tau multiplier, scale multiplier) applied to (tau_grad * θ, scale_grad), SPEC 2.1
RESONATOR_SURROGATE_MULTIPLIERS = {
    "rf": (0.5, 10.0),
    "rf_iz": (100.0, 0.1),
    "adrf": (100.0, 0.1),
    "adrf_iz": (100.0, 0.1),
}


def cuba_constants(p):
    """Loihi CUBA derived constants of params ``p`` (threshold, tau_grad, scale_grad, scale):
    ``(s_scale, θ_q, spike threshold θ_q + 0.01/s_scale, tau_rho, scale_rho)``.

    >>> from types import SimpleNamespace
    >>> cuba_constants(SimpleNamespace(threshold=0.999, tau_grad=1.0, scale_grad=1.0, scale=64))[:2]
    (4096, 0.984375)
    """
    s_scale = p.scale * 64
    th = quantize_threshold(p.threshold, p.scale)
    thr = th + 0.01 / s_scale
    return s_scale, th, thr, TAU_RHO_MULT * p.tau_grad * th, SCALE_RHO_MULT * p.scale_grad


def alif_constants(p):
    """Loihi ALIF derived constants: ``(s_scale, θ0_q, step_q, tau_rho, scale_rho)``."""
    s_scale = p.scale * 64
    th0 = quantize_threshold(p.threshold, p.scale)
    step = quantize_threshold(p.threshold_step, p.scale)
    return s_scale, th0, step, TAU_RHO_MULT * p.tau_grad * th0, SCALE_RHO_MULT * p.scale_grad


def _check_decay_view_args(name, d, like) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name: expected the parameter's name (a str), got {describe(name)}")
    check_tensor("like", like, min_ndim=1)
    if isinstance(d, torch.Tensor):
        check_tensor(name, d, floating=False)
    elif isinstance(d, Real) and not isinstance(d, bool):
        check_number(name, d)


def decay_view(name: str, d, like: torch.Tensor, *, step_ndim: Optional[int] = None) -> torch.Tensor:
    """Return decay ``d`` (parameter units) as a tensor broadcastable against one step
    ``(B, *features)`` of ``like`` (a ``(T, B, *features)`` sequence), with per-channel
    values along the first feature dim. Keeps the autograd graph of ``d``."""
    if caller_is_outside():  # the Loihi functions call it once per run on checked arguments
        _check_decay_view_args(name, d, like)
    nd = (like.dim() - 1) if step_ndim is None else step_ndim
    if isinstance(d, bool) or not isinstance(d, (Real, torch.Tensor)):
        raise TypeError(f"{name}: expected a number or a tensor, got {describe(d)}")
    if not isinstance(d, torch.Tensor):
        d = torch.tensor(float(d), dtype=torch.float32, device=like.device)
    else:
        if not d.is_floating_point():
            d = d.to(torch.float32)
        if d.device != like.device:
            raise ValueError(f"{name}: expected a tensor on {like.device}, got one on {d.device}")
    features = tuple(like.shape[like.dim() - nd + 1:])
    if d.numel() == 1:
        return d.reshape((1,) * nd)
    if d.dim() == 1:
        if len(features) == 0 or d.shape[0] != features[0]:
            raise ValueError(
                f"{name}: a 1-D per-channel decay needs one value per channel (first feature dim, "
                f"{features[0] if features else 'none'}), got {d.shape[0]} values"
            )
        return d.reshape((1, d.shape[0]) + (1,) * (len(features) - 1))
    if d.dim() > len(features):
        raise ValueError(f"{name}: shape {tuple(d.shape)} has more dims than the feature shape {features}")
    try:
        if torch.broadcast_shapes(tuple(d.shape), features) != torch.Size(features):
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"{name}: shape {tuple(d.shape)} does not broadcast against the feature shape {features}") from None
    return d.reshape((1,) * (nd - d.dim()) + tuple(d.shape))
