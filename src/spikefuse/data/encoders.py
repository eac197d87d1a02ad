"""Spike encoders: turn static features or analogue sequences into time-first spike tensors.

All encoders return time-first tensors, ``(T, *x.shape)`` for static inputs (so a batch
``(B, C)`` becomes ``(T, B, C)``) and ``(T, *features)`` for sequence inputs, in the dtype of
the input (float; spikes are 0/1, or -1/0/+1 for the signed delta encoders).

=====================  ================================================================
encoder                rule (``x`` static, ``x_seq`` time-first)
=====================  ================================================================
:func:`rate`           Bernoulli: ``s[t] ~ Bernoulli(p)``, ``p = gain * x`` in [0, 1]
:func:`poisson`        Poisson process sampled per step: ``P(s[t] = 1) = 1 - exp(-gain*x)``
                       (``gain * x`` = expected events per step); ``counts=True`` gives
                       Poisson counts instead
:func:`latency`        one spike at step ``round(t(x))``, larger ``x`` fires earlier:
                       linear ``t = (1 - x) (T - 1)``; log (RC charging to a threshold)
                       ``t = tau ln(x / (x - threshold))``; ``x <= threshold`` never fires
:func:`delta`          send-on-delta: +1 when ``x[t] - ref >= threshold``, -1 when
                       ``<= -threshold``; ``ref`` jumps to ``x[t]`` at every event
:func:`threshold_crossing`  level crossing: +1 on channel ``l`` when the signal rises
                       through ``levels[l]``, -1 when it falls through it
:func:`current`        constant current: ``x`` repeated over ``T`` steps (times ``gain``)
=====================  ================================================================

Random encoders take an optional ``torch.Generator`` so that an encoding can be reproduced
independently of the global RNG.

Example::

    >>> import torch
    >>> from spikefuse.data import encoders
    >>> x = torch.tensor([[0.0, 0.5, 1.0]])          # (B=1, C=3)
    >>> encoders.latency(x, T=5)[:, 0]                # (T, B, C) -> look at sample 0
    tensor([[0., 0., 1.],
            [0., 0., 0.],
            [0., 1., 0.],
            [0., 0., 0.],
            [0., 0., 0.]])
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Optional

import torch

from .._validate import check_choice
from ._checks import check_data_tensor, check_scalar

__all__ = [
    "rate",
    "poisson",
    "latency",
    "latency_times",
    "delta",
    "threshold_crossing",
    "current",
]


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, Integral):
        raise TypeError(f"T: expected a positive int (number of time steps), got {type(T).__name__} {T!r}")
    if T < 1:
        raise ValueError(f"T: expected a positive number of time steps, got {T}")
    return int(T)


def _check_generator(generator, x: torch.Tensor) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(
            f"generator: lives on {generator.device} but x is on {x.device}; use a generator "
            "on the same device"
        )


def _check_range(name: str, v: torch.Tensor, lo: float, hi: Optional[float], what: str) -> None:
    if v.numel() == 0:
        return
    vmin = v.min().item()
    vmax = v.max().item()
    if vmin < lo or (hi is not None and vmax > hi):
        rng = f"[{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
        raise ValueError(f"{name}: {what} must lie in {rng}, got values in [{vmin:g}, {vmax:g}]")


def rate(x: torch.Tensor, T: int, *, gain: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Bernoulli rate code: ``out[t] = 1`` with probability ``gain * x``, independently per step.

    Args:
        x: features (any shape), with ``gain * x`` in [0, 1].
        T: number of time steps.
        gain: scales ``x`` into a per-step firing probability.
        generator: optional ``torch.Generator`` for reproducible draws.

    Returns ``(T, *x.shape)`` of 0/1 in ``x.dtype``.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> s = rate(torch.full((2, 3), 0.5), T=100, generator=g)
        >>> s.shape, 0.35 < s.mean().item() < 0.65
        (torch.Size([100, 2, 3]), True)
    """
    check_data_tensor("x", x)
    T = _check_T(T)
    gain = check_scalar("gain", gain, ge=0)
    _check_generator(generator, x)
    p = (x.float() * float(gain))
    _check_range("x", p, 0.0, 1.0, "firing probabilities gain * x")
    u = torch.rand((T, *x.shape), generator=generator, device=x.device, dtype=torch.float32)
    return (u < p).to(x.dtype)


def poisson(
    x: torch.Tensor,
    T: int,
    *,
    gain: float = 1.0,
    counts: bool = False,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Poisson rate code: a Poisson process with ``lam = gain * x`` expected events per step.

    With ``counts=False`` (default) each step holds one spike if at least one event fell in it,
    i.e. ``P(out[t] = 1) = 1 - exp(-lam)``; with ``counts=True`` it holds the event count
    ``~ Poisson(lam)``. For a rate ``r`` in Hz and a step ``dt`` in s, use ``gain = r * dt``.

    Returns ``(T, *x.shape)`` in ``x.dtype``.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> s = poisson(torch.tensor([0.0, 0.2]), T=1000, generator=g)
        >>> s[:, 0].sum().item(), abs(s[:, 1].mean().item() - (1 - math.exp(-0.2))) < 0.05
        (0.0, True)
    """
    check_data_tensor("x", x)
    T = _check_T(T)
    gain = check_scalar("gain", gain, ge=0)
    if not isinstance(counts, bool):
        raise TypeError(f"counts: expected bool, got {type(counts).__name__}")
    _check_generator(generator, x)
    lam = x.float() * float(gain)
    _check_range("x", lam, 0.0, None, "expected events per step gain * x")
    lam_t = lam.unsqueeze(0).expand(T, *x.shape).contiguous()
    if counts:
        return torch.poisson(lam_t, generator=generator).to(x.dtype)
    u = torch.rand((T, *x.shape), generator=generator, device=x.device, dtype=torch.float32)
    return (u < -torch.expm1(-lam_t)).to(x.dtype)


def _latency_setup(x, T, method, threshold, tau):
    check_data_tensor("x", x)
    T = _check_T(T)
    check_choice("method", method, ["linear", "log"])
    threshold = check_scalar("threshold", threshold, ge=0, lt=1)
    if method == "log":
        if threshold <= 0:
            raise ValueError("threshold: the log latency code needs threshold > 0, got 0")
        if tau is None:
            tau = (T - 1) / math.log(2.0) if T > 1 else 1.0
        tau = check_scalar("tau", tau, gt=0)
    elif tau is not None:
        raise ValueError("tau: only used by method='log'; leave it None for method='linear'")
    _check_range("x", x, 0.0, 1.0, "latency-coded intensities")
    return T, threshold, tau


def latency_times(
    x: torch.Tensor,
    T: int,
    *,
    method: str = "linear",
    threshold: float = 0.01,
    tau: Optional[float] = None,
) -> torch.Tensor:
    """Continuous first-spike times (in steps) of the latency code; ``inf`` = no spike.

    - ``"linear"``: ``t = (1 - x) * (T - 1)`` — ``x = 1`` fires at step 0, ``x -> 0`` at ``T - 1``.
    - ``"log"``: an RC unit driven by the constant input ``x`` reaches ``threshold`` at
      ``t = tau * ln(x / (x - threshold))``; ``tau`` defaults to ``(T - 1) / ln 2`` so that
      ``x = 2 * threshold`` fires at the last step. Times beyond ``T - 1`` stay as they are
      (:func:`latency` drops them).

    ``x`` must lie in [0, 1]; ``x <= threshold`` never fires (``inf``). Computed in float32
    (float64 for float64 input).

    Example::

        >>> latency_times(torch.tensor([1.0, 0.5, 0.0]), T=11)
        tensor([0., 5., inf])
    """
    T, threshold, tau = _latency_setup(x, T, method, threshold, tau)
    xf = x.double() if x.dtype == torch.float64 else x.float()
    fires = xf > threshold
    if method == "linear":
        t = (1.0 - xf) * (T - 1)
    else:
        safe = torch.where(fires, xf, torch.ones_like(xf))
        t = tau * torch.log(safe / (safe - threshold))
    return torch.where(fires, t, torch.full_like(t, math.inf))


def latency(
    x: torch.Tensor,
    T: int,
    *,
    method: str = "linear",
    threshold: float = 0.01,
    tau: Optional[float] = None,
) -> torch.Tensor:
    """Time-to-first-spike code: each feature fires once, at step ``round(latency_times(x))``.

    Rounding is half-to-even (``torch.round``); spikes whose step is beyond ``T - 1`` are
    dropped, as are features with ``x <= threshold``. Returns ``(T, *x.shape)`` in ``x.dtype``.

    Example::

        >>> latency(torch.tensor([1.0, 0.6, 0.0]), T=4).T
        tensor([[1., 0., 0., 0.],
                [0., 1., 0., 0.],
                [0., 0., 0., 0.]])
    """
    t = latency_times(x, T, method=method, threshold=threshold, tau=tau)
    T = int(T)
    step = torch.round(t)
    valid = torch.isfinite(step) & (step <= T - 1)
    idx = torch.where(valid, step, torch.zeros_like(step)).long()
    out = torch.zeros((T, *x.shape), dtype=x.dtype, device=x.device)
    out.scatter_(0, idx.unsqueeze(0), valid.unsqueeze(0).to(x.dtype))
    return out


def delta(
    x_seq: torch.Tensor,
    threshold: float,
    *,
    off_spikes: bool = True,
    reference=None,
) -> torch.Tensor:
    """Send-on-delta encoder for a time-first sequence ``(T, *features)``.

    A reference level ``ref`` follows the signal: at each step ``d = x[t] - ref``; if
    ``d >= threshold`` the output is +1, if ``d <= -threshold`` it is -1 (0 with
    ``off_spikes=False``), and on either event ``ref`` jumps to ``x[t]``. ``ref`` starts at
    ``reference`` (a number or a tensor broadcasting to one step); with ``reference=None`` it
    starts at ``x[0]``, so step 0 never fires.

    Returns ``(T, *features)`` of -1/0/+1 in ``x_seq.dtype``.

    Example::

        >>> delta(torch.tensor([0.0, 0.4, 1.0, 1.2, 0.1]), threshold=0.5)
        tensor([ 0.,  0.,  1.,  0., -1.])
    """
    check_data_tensor("x_seq", x_seq, min_ndim=1)
    if x_seq.shape[0] < 1:
        raise ValueError(f"x_seq: expected at least one time step, got shape {tuple(x_seq.shape)}")
    check_scalar("threshold", threshold, gt=0)
    if not isinstance(off_spikes, bool):
        raise TypeError(f"off_spikes: expected bool, got {type(off_spikes).__name__}")
    xf = x_seq.double() if x_seq.dtype == torch.float64 else x_seq.float()
    if reference is None:
        ref = xf[0].clone()
    else:
        if isinstance(reference, torch.Tensor):
            check_data_tensor("reference", reference)
            try:
                ref = torch.broadcast_to(reference.to(xf), xf.shape[1:]).clone()
            except RuntimeError:
                raise ValueError(
                    f"reference: shape {tuple(reference.shape)} does not broadcast to one step "
                    f"{tuple(xf.shape[1:])}"
                ) from None
        else:
            check_scalar("reference", reference)
            ref = torch.full(xf.shape[1:], float(reference), dtype=xf.dtype, device=xf.device)
    thr = float(threshold)
    out = torch.zeros_like(xf)
    for t in range(xf.shape[0]):
        d = xf[t] - ref
        on = d >= thr
        off = d <= -thr
        out[t] = on.to(xf.dtype) - (off.to(xf.dtype) if off_spikes else 0.0)
        ref = torch.where(on | off, xf[t], ref)
    return out.to(x_seq.dtype)


def threshold_crossing(x_seq: torch.Tensor, levels) -> torch.Tensor:
    """Level-crossing encoder: one output channel per level, appended as the last axis.

    ``out[t, ..., l] = +1`` if ``x[t-1] < levels[l] <= x[t]`` (upward crossing), ``-1`` if
    ``x[t-1] >= levels[l] > x[t]`` (downward), else 0; step 0 is always 0.

    Args:
        x_seq: time-first sequence ``(T, *features)``.
        levels: 1-D tensor or sequence of numbers.

    Returns ``(T, *features, L)`` in ``x_seq.dtype``.

    Example::

        >>> threshold_crossing(torch.tensor([0.0, 0.6, 0.2]), [0.5]).squeeze(-1)
        tensor([ 0.,  1., -1.])
    """
    check_data_tensor("x_seq", x_seq, min_ndim=1)
    if x_seq.shape[0] < 1:
        raise ValueError(f"x_seq: expected at least one time step, got shape {tuple(x_seq.shape)}")
    if not isinstance(levels, torch.Tensor):
        if isinstance(levels, Real) or not all(isinstance(v, Real) and not isinstance(v, bool) for v in levels):
            raise TypeError(f"levels: expected a 1-D tensor or a sequence of numbers, got {levels!r}")
        levels = torch.tensor([float(v) for v in levels])
    check_data_tensor("levels", levels, ndim=1)
    if levels.numel() == 0:
        raise ValueError("levels: expected at least one level, got an empty sequence")
    xf = x_seq.double() if x_seq.dtype == torch.float64 else x_seq.float()
    lv = levels.to(device=xf.device, dtype=xf.dtype)
    above = (xf.unsqueeze(-1) >= lv).to(xf.dtype)  # (T, *f, L)
    out = torch.zeros_like(above)
    out[1:] = above[1:] - above[:-1]
    return out.to(x_seq.dtype)


def current(x: torch.Tensor, T: int, *, gain: float = 1.0) -> torch.Tensor:
    """Constant-current code: ``out[t] = gain * x`` for every step; returns ``(T, *x.shape)``.

    Example::

        >>> current(torch.tensor([0.5, 1.0]), T=3, gain=2.0)
        tensor([[1., 2.],
                [1., 2.],
                [1., 2.]])
    """
    check_data_tensor("x", x)
    T = _check_T(T)
    gain = check_scalar("gain", gain)
    return (x * gain).unsqueeze(0).expand(T, *x.shape).contiguous()
