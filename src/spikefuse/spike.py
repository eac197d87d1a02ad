"""lava-dl (SLAYER) spike functions as autograd functions (SPEC.md 2.1, 2.2).

- :func:`real_spike` — ``slayer.spike.Spike``: binary or graded threshold spike with the SLAYER
  exponential pseudo-derivative.
- :func:`complex_spike` — ``slayer.spike.complex.Spike``: phase-threshold spike of a complex
  state (zero crossing of the imaginary part, from negative to non-negative, while the real
  part is at least the threshold), along the time axis (dim 0, time-first).

Neither passes a gradient to the threshold, ``tau_rho``, ``scale_rho`` or the previous-step
state. ``tau_rho``/``scale_rho`` are the values the neuron passes (see the multiplier table in
SPEC.md 2.1), not the user's ``tau_grad``/``scale_grad``.
"""
from __future__ import annotations

import torch

from ._validate import check_bool, check_number, check_scalar, check_tensor

__all__ = ["real_spike", "complex_spike", "RealSpike", "ComplexSpike"]


def _as_tensor(v, like: torch.Tensor) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.to(device=like.device, dtype=like.dtype)
    return torch.tensor(float(v), device=like.device, dtype=like.dtype)


def _check_rho(tau_rho, scale_rho, scale, graded_spike) -> None:
    check_scalar("tau_rho", tau_rho, gt=0)
    check_scalar("scale_rho", scale_rho, gt=0)
    check_scalar("scale", scale, gt=0)
    check_bool("graded_spike", graded_spike)


def _check_against(name: str, v, shape, what: str) -> None:
    """A number, or a finite tensor broadcasting against ``shape`` (of ``what``)."""
    if not isinstance(v, torch.Tensor):
        check_number(name, v)
        return
    check_tensor(name, v)
    try:
        torch.broadcast_shapes(v.shape, shape)
    except RuntimeError:
        raise ValueError(f"{name}: shape {tuple(v.shape)} does not broadcast against {what} {tuple(shape)}") from None


def _spike_out(ctx, fire, x, tau_rho, scale_rho, graded, scale):
    """Shared forward tail: keep the surrogate constants on ``ctx``; return ``fire`` (binary)
    or ``fire * x / scale`` (graded) in ``x``'s dtype."""
    ctx.tau_rho, ctx.scale_rho, ctx.graded = tau_rho, scale_rho, graded
    if graded:
        return fire.to(x.dtype) * x / scale
    return fire.to(x.dtype)


class RealSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, threshold, tau_rho, scale_rho, graded, scale):
        fire = v >= threshold
        ctx.save_for_backward(v, threshold)
        return _spike_out(ctx, fire, v, tau_rho, scale_rho, graded, scale)

    @staticmethod
    def backward(ctx, grad):
        v, threshold = ctx.saved_tensors
        x = v - threshold
        if ctx.graded:
            d = ctx.scale_rho * torch.exp(torch.clamp(x, max=0) / ctx.tau_rho)
        else:
            d = ctx.scale_rho / (2 * ctx.tau_rho) * torch.exp(-x.abs() / ctx.tau_rho)
        return grad * d, None, None, None, None, None


def real_spike(
    voltage: torch.Tensor,
    threshold,
    tau_rho: float = 1.0,
    scale_rho: float = 1.0,
    graded_spike: bool = False,
    voltage_last=None,
    scale: float = 1.0,
) -> torch.Tensor:
    """SLAYER real spike.

    Forward: ``s = 1[v >= threshold]`` (binary) or ``1[v >= threshold] * v / scale`` (graded).
    Backward (w.r.t. ``voltage`` only): binary ``scale_rho/(2 tau_rho) exp(-|v-θ|/tau_rho)``,
    graded ``scale_rho exp(min(v-θ, 0)/tau_rho)``. ``voltage_last`` is accepted and ignored,
    as upstream does (SPEC.md 18 #8).

    >>> import torch
    >>> real_spike(torch.tensor([0.5, 1.0, 1.5]), 1.0)
    tensor([0., 1., 1.])
    """
    check_tensor("voltage", voltage)
    _check_against("threshold", threshold, voltage.shape, "voltage")
    _check_rho(tau_rho, scale_rho, scale, graded_spike)
    th = _as_tensor(threshold, voltage)
    return RealSpike.apply(voltage, th, float(tau_rho), float(scale_rho), bool(graded_spike), float(scale))


class ComplexSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, re, im, threshold, tau_rho, scale_rho, graded, im_last, scale):
        im_prev = torch.cat([im_last.expand_as(im[:1]).to(im.dtype), im[:-1]], dim=0)
        fire = (re >= threshold) & (im_prev < 0) & (im >= 0)
        ctx.save_for_backward(re, im, threshold)
        return _spike_out(ctx, fire, re, tau_rho, scale_rho, graded, scale)

    @staticmethod
    def backward(ctx, grad):
        re, im, threshold = ctx.saved_tensors
        rho, kappa = ctx.tau_rho, ctx.scale_rho
        if ctx.graded:
            d_re = torch.exp(-torch.clamp(threshold - re, min=0) / rho)
        else:
            d_re = 1 / (2 * rho) * torch.exp(-(re - threshold).abs() / rho)
        d_im = 1 / (2 * rho) * torch.exp(-im.abs() / rho)
        step = 0.5 * (1 + torch.sign(re - threshold) * (1 - 2 * rho * d_re))
        g_re = grad * kappa * d_re * d_im
        g_im = grad * (-(kappa / rho) * torch.sign(im) * d_im * step)
        return g_re, g_im, None, None, None, None, None, None


def complex_spike(
    real: torch.Tensor,
    imag: torch.Tensor,
    threshold,
    tau_rho: float = 1.0,
    scale_rho: float = 1.0,
    graded_spike: bool = False,
    imag_last=0.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """SLAYER phase-threshold spike on time-first ``(T, ...)`` real/imaginary sequences.

    ``s[t] = 1[re[t] >= θ] * 1[im[t-1] < 0] * 1[im[t] >= 0]`` with ``im[-1] = imag_last``
    (graded: times ``re[t] / scale``). Backward per SPEC.md 2.2, evaluated at ``re[t], im[t]``.
    """
    check_tensor("real", real, min_ndim=1)
    check_tensor("imag", imag, min_ndim=1)
    if real.shape != imag.shape:
        raise ValueError(f"imag: expected the shape of real {tuple(real.shape)}, got {tuple(imag.shape)}")
    _check_rho(tau_rho, scale_rho, scale, graded_spike)
    _check_against("threshold", threshold, real.shape, "real")
    _check_against("imag_last", imag_last, real.shape[1:], "one step")
    th = _as_tensor(threshold, real)
    last = _as_tensor(imag_last, real)
    return ComplexSpike.apply(
        real, imag, th, float(tau_rho), float(scale_rho), bool(graded_spike), last.unsqueeze(0) if last.dim() else last, float(scale)
    )
