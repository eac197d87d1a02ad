"""Loihi sigma-delta neuron (lava-dl ``sigma_delta.Neuron``, ``dendrite.Sigma``, ``axon.Delta``),
time-first (SPEC.md 10).

Per step, with ``x`` the input and ``θd`` the Delta threshold::

    σ  = σ_prev + x                                 # Sigma: running sum (cumsum over time)
    a  = activation(σ + bias)                       # bias only if given
    Δ  = a - pre + res                              # Delta unit
    without cum_error:  y = Δ if |Δ| >= θd else 0
    with cum_error:     err += Δ;  y = Δ if |err| >= θd else 0;  err = 0 where y != 0
    res = Δ - y;  pre = a
    out = floor(y / step) * step,  step = 1 / s_scale   # straight-through gradient

The output is signed (negative deltas are sent). ``cum_error`` counts the residual twice (Δ
already holds it and ``err`` adds Δ again) — kept as upstream (SPEC 10.2, 17 L7).

Gradients (SPEC 10.3): the floor is straight-through; the Delta unit passes
``g_a[t] = g_y[t] - g_y[t+1]`` (``g_a[T-1] = g_y[T-1]``; residual and error are detached), and,
for a threshold that requires grad, per element ::

    d = |Δ| - θd
    dL/dθd += -Δ scale_grad exp(-d / tau_grad) / θd * g_y     if d > 0
              -sign(Δ) * g_y                                   otherwise

summed to the threshold's shape (shared: everything; per-channel ``(C, 1, ..., 1)``: all but
the channel). ``tau_grad``/``scale_grad`` are used as given (no hidden multipliers). Sigma's
backward is the reverse cumulative sum. The gradient w.r.t. the initial ``pre`` is ``-g_y[0]``
(so looping :func:`sigma_delta_step` equals :func:`sigma_delta_multistep`); lava passes none.

State (:class:`SigmaDeltaState`): ``sigma`` (the running sum, kept in **float64** — PyTorch's CPU
``cumsum`` of fp32 accumulates in double, and carrying the accumulator in float64 makes a
step loop equal the multi-step sum bit for bit; a **float32** ``sigma`` is lava-dl's persistent
Sigma instead: this call's sum plus the stored float32 last value, added in float32, which the
modules use with ``persistent_state``), ``pre``, ``residual``, ``error``. A module
decides what to carry across calls (SPEC 10.2 / 18 #7: ``pre`` and ``residual`` with
``persistent_state``, ``error`` only with ``persistent_state`` and ``cum_error``).

Fused kernels: :func:`sigma_delta_multistep` first asks
``kernels.resolve("loihi_sigma_delta", backend, x_seq, params=..., state=..., return_traces=...)``;
an implementation is called (through :mod:`spikefuse.functional._dispatch`) as
``impl(x_seq, params, state, return_traces)`` with validated inputs and a complete state tuple
and must return ``((y,), final_state, traces or None)`` as raw tuples in SigmaDeltaState /
SigmaDeltaTraces field order, with the reference's numbers and autograd semantics.

Example (SPEC 17 L7)::

    >>> import torch
    >>> from spikefuse.functional.sigma_delta import SigmaDeltaParams, sigma_delta_multistep
    >>> x = torch.tensor([0.5, 0, 0, 0.02, 0.1, -0.3, 0]).reshape(7, 1, 1)
    >>> y, st = sigma_delta_multistep(x, SigmaDeltaParams(threshold=0.09375), backend="reference")
    >>> (y.flatten() * 4096).tolist()
    [2048.0, 0.0, 0.0, 0.0, 491.0, -1229.0, 0.0]
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._core import check_not_transformed, compute_dtype, sum_to
from .._validate import (
    _describe,
    check_bool,
    check_broadcastable,
    check_number,
    check_sequence,
    check_tensor,
    checked_record,
    check_scalar,
    check_shape,
    bool_field,
    callable_field,
    int_field,
    number_field,
    tensor_field,
)
from . import _dispatch

__all__ = [
    "SigmaDeltaParams",
    "SigmaDeltaState",
    "SigmaDeltaTraces",
    "sigma",
    "delta",
    "floor_quantize",
    "sigma_delta_step",
    "sigma_delta_multistep",
    "initial_state",
]

Number = Union[float, int]


@checked_record(threshold=number_field(), activation=callable_field, bias=tensor_field(floating=True, optional=True),
                tau_grad=number_field(), scale_grad=number_field(), cum_error=bool_field, s_scale=int_field())
class SigmaDeltaParams(NamedTuple):
    """Parameters of the sigma-delta neuron.

    - ``threshold``: Delta threshold θd (> 0), a number or a tensor broadcasting against one
      step ``(B, *features)`` (per channel: ``(C, 1, ..., 1)``); may require grad.
    - ``activation``: callable applied to the sigma output (``None`` = identity).
    - ``bias``: ``None`` or a tensor broadcasting against one step, added before the activation.
    - ``tau_grad``, ``scale_grad``: threshold-gradient relaxation (SPEC 10.3), > 0.
    - ``cum_error``: accumulate the error before thresholding (SPEC 10.2).
    - ``s_scale``: output quantisation ``floor(y * s_scale) / s_scale`` (4096 for lava's
      default ``scale=64``).

    >>> SigmaDeltaParams(threshold=0.1).s_scale
    4096
    """

    threshold: Union[Number, Tensor] = 0.1
    activation: Optional[Callable] = torch.relu
    bias: Optional[Tensor] = None
    tau_grad: Number = 1.0
    scale_grad: Number = 1.0
    cum_error: bool = False
    s_scale: int = 4096


@checked_record(sigma=tensor_field(floating=True), pre=tensor_field(floating=True), residual=tensor_field(floating=True), error=tensor_field(floating=True))
class SigmaDeltaState(NamedTuple):
    """Carried state, each ``(B, *features)``: ``sigma`` (running sum, float64), ``pre`` (last
    activation), ``residual`` (Δ - y of the last step), ``error`` (accumulated error)."""

    sigma: Tensor
    pre: Tensor
    residual: Tensor
    error: Tensor


@checked_record(sigma=tensor_field(floating=True), activation=tensor_field(floating=True), delta=tensor_field(floating=True))
class SigmaDeltaTraces(NamedTuple):
    """Sequences ``(T, B, *features)``: ``sigma`` (sum), ``activation`` (a), ``delta`` (Δ)."""

    sigma: Tensor
    activation: Tensor
    delta: Tensor


# --------------------------------------------------------------------------- autograd pieces


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step):
        return torch.floor(x / step) * step

    @staticmethod
    def backward(ctx, g):
        return g, None


def floor_quantize(x: Tensor, step: float) -> Tensor:
    """``floor(x / step) * step`` with a straight-through (identity) gradient.

    >>> floor_quantize(torch.tensor([0.12, -0.3]), 1 / 4096) * 4096
    tensor([  491., -1229.])
    """
    check_tensor("x", x)
    check_scalar("step", step, gt=0)
    return _FloorSTE.apply(x, float(step))



class _DeltaFn(torch.autograd.Function):
    """Delta unit over (T, B, ...): returns y (unquantised), Δ, and the final residual/error."""

    @staticmethod
    def forward(ctx, a, threshold, pre0, res0, err0, cum_error, tau_grad, scale_grad):
        step_shape = a.shape[1:]
        pre = pre0.expand(step_shape)
        res = res0.expand(step_shape)
        err = err0.expand(step_shape)
        y = torch.empty_like(a)
        d_seq = torch.empty_like(a)
        zero = torch.zeros((), dtype=a.dtype, device=a.device)
        for t in range(a.shape[0]):
            d = a[t] - pre + res
            d_seq[t] = d
            if cum_error:
                err = err + d
                out = torch.where(err.abs() >= threshold, d, zero * d)
                err = torch.where(out.abs() > 0, zero, err)
            else:
                out = torch.where(d.abs() >= threshold, d, zero * d)
            y[t] = out
            res = d - out
            pre = a[t]
        ctx.save_for_backward(d_seq, threshold, pre0)
        ctx.tau_grad, ctx.scale_grad = tau_grad, scale_grad
        res = res.clone()
        err = err.clone()
        ctx.mark_non_differentiable(d_seq, res, err)
        return y, d_seq, res, err

    @staticmethod
    def backward(ctx, g_y, *_):
        d_seq, threshold, pre0 = ctx.saved_tensors
        g_a = g_y.clone()
        g_a[:-1] -= g_y[1:]
        g_th = None
        if ctx.needs_input_grad[1]:
            th = threshold.to(g_y.dtype)
            sub = d_seq.abs() - th
            relax = ctx.scale_grad * torch.exp(-sub.abs() / ctx.tau_grad)
            g = torch.where(sub > 0, -d_seq * relax / th, -torch.sign(d_seq)) * g_y
            g_th = sum_to(g.sum(0), threshold, cast=True)
        g_pre = sum_to(-g_y[0], pre0, cast=True) if ctx.needs_input_grad[2] else None
        return g_a, g_th, g_pre, None, None, None, None, None


# --------------------------------------------------------------------------- helpers



def _threshold_tensor(th, like: Tensor) -> Tensor:
    if isinstance(th, Tensor):
        return th.to(like.dtype)
    return torch.tensor(float(th), dtype=like.dtype, device=like.device)


def _validate_params(params, step_shape, device) -> None:
    if not isinstance(params, SigmaDeltaParams):
        raise TypeError(f"params: expected a SigmaDeltaParams, got {_describe(params)}")
    th = params.threshold
    check_number("params.threshold", th, gt=0)
    if isinstance(th, Tensor):
        check_broadcastable("params.threshold", th, step_shape)
        if th.device != device:
            raise ValueError(f"params.threshold: expected a tensor on {device} (the input's device), got one on {th.device}")
    if params.activation is not None and not callable(params.activation):
        raise TypeError(f"params.activation: expected a callable or None, got {_describe(params.activation)}")
    if params.bias is not None:
        check_tensor("params.bias", params.bias)
        check_broadcastable("params.bias", params.bias, step_shape)
        if params.bias.device != device:
            raise ValueError(f"params.bias: expected a tensor on {device} (the input's device), got one on {params.bias.device}")
    check_number("params.tau_grad", params.tau_grad, gt=0)
    check_number("params.scale_grad", params.scale_grad, gt=0)
    check_bool("params.cum_error", params.cum_error)
    if isinstance(params.s_scale, bool) or not isinstance(params.s_scale, int):
        raise TypeError(f"params.s_scale: expected an int, got {_describe(params.s_scale)}")
    check_number("params.s_scale", params.s_scale, ge=1)


def _validate_state(state, step_shape, device, dtype) -> SigmaDeltaState:
    if not isinstance(state, tuple) or len(state) != 4:
        raise TypeError(f"state: expected a SigmaDeltaState(sigma, pre, residual, error) or None, got {_describe(state)}")
    out = []
    for name, v in zip(SigmaDeltaState._fields, state):
        check_tensor(f"state.{name}", v)
        check_broadcastable(f"state.{name}", v, step_shape)
        if v.device != device:
            raise ValueError(f"state.{name}: expected a tensor on {device} (the input's device), got {v.device}")
        out.append(v.to(_sigma_dtype(v) if name == "sigma" else dtype))
    return SigmaDeltaState(*out)


def _sigma_dtype(sigma: Tensor) -> torch.dtype:
    """A float32 ``sigma`` state is lava-dl's stored float32 last sum (see :func:`_sigma`);
    any other dtype is the float64 accumulator."""
    return torch.float32 if sigma.dtype == torch.float32 else torch.float64


def initial_state(shape, dtype=torch.float32, device=None) -> SigmaDeltaState:
    """All-zero state of step shape ``shape`` (``sigma`` in float64).

    >>> initial_state((2, 3)).sigma.dtype
    torch.float64
    """
    shape = check_shape("shape", shape)
    z = torch.zeros(tuple(shape), dtype=dtype, device=device)
    return SigmaDeltaState(torch.zeros(tuple(shape), dtype=torch.float64, device=device), z, z.clone(), z.clone())


def _sigma(x: Tensor, acc0: Tensor):
    """Running sum in float64 seeded with ``acc0``; returns (sum in x.dtype, last float64 acc).

    A float32 ``acc0`` is lava-dl's persistent Sigma: the sum of this call (float32, CPU cumsum
    accumulating in double) plus the stored float32 last value, added in float32; the new last
    value is returned in float32."""
    if acc0.dtype == torch.float32:
        sig = torch.cumsum(x.to(torch.float64), dim=0).to(x.dtype) + acc0.to(x.dtype)
        return sig, sig[-1].to(torch.float32)
    seq = torch.cat([acc0.expand(x.shape[1:]).unsqueeze(0), x.to(torch.float64)], dim=0)
    acc = torch.cumsum(seq, dim=0)[1:]
    return acc.to(x.dtype), acc[-1]


def _core(x: Tensor, params: SigmaDeltaParams, st: SigmaDeltaState, want_traces: bool):
    sig, acc = _sigma(x, st.sigma)
    z = sig + params.bias.to(x.dtype) if params.bias is not None else sig
    a = params.activation(z) if params.activation is not None else z
    th = _threshold_tensor(params.threshold, x)
    y, d_seq, res, err = _DeltaFn.apply(
        a, th, st.pre, st.residual.detach(), st.error.detach(), bool(params.cum_error),
        float(params.tau_grad), float(params.scale_grad),
    )
    y = _FloorSTE.apply(y, 1.0 / params.s_scale)
    new_state = SigmaDeltaState(acc, a[-1], res, err)
    traces = SigmaDeltaTraces(sig, a, d_seq) if want_traces else None
    return y, new_state, traces


# --------------------------------------------------------------------------- public API


def sigma(x_seq: Tensor, state: Optional[Tensor] = None):
    """Sigma decoder: running sum over time (dim 0) plus ``state`` (previous sum).

    Returns ``(sum_seq, last)`` with ``sum_seq`` in the compute dtype and ``last`` the float64
    accumulator to pass as the next call's ``state``.

    >>> s, last = sigma(torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1))
    >>> s.flatten().tolist(), last.item()
    ([1.0, 3.0, 6.0], 6.0)
    """
    check_sequence("x_seq", x_seq, min_ndim=1)
    cdt = compute_dtype(x_seq.dtype)
    if state is None:
        acc0 = torch.zeros(x_seq.shape[1:], dtype=torch.float64, device=x_seq.device)
    else:
        check_tensor("state", state)
        check_broadcastable("state", state, tuple(x_seq.shape[1:]))
        acc0 = state.to(_sigma_dtype(state))
    return _sigma(x_seq.to(cdt), acc0)


def delta(
    a_seq: Tensor,
    threshold,
    state: Optional[tuple] = None,
    cum_error: bool = False,
    tau_grad: Number = 1.0,
    scale_grad: Number = 1.0,
    s_scale: Optional[int] = None,
):
    """Delta unit (SPEC 10.2/10.3) on a time-first sequence of activations.

    ``state`` is ``(pre, residual, error)`` (default zeros). Returns ``(y, (pre, residual,
    error))`` where ``y`` is floor-quantised to ``1/s_scale`` when ``s_scale`` is given (lava's
    ``Delta(scale=...)``), else unquantised.

    >>> x = torch.tensor([0.5, 0.55, 0.55, 0.7]).reshape(4, 1)
    >>> th = torch.tensor(0.1, requires_grad=True)
    >>> y, _ = delta(x, th, s_scale=4096)
    >>> (y.flatten() * 4096).tolist()
    [2048.0, 0.0, 0.0, 819.0]
    >>> y.sum().backward(); round(th.grad.item(), 4)
    -7.1613
    """
    check_sequence("a_seq", a_seq, min_ndim=1)
    step_shape = tuple(a_seq.shape[1:])
    check_number("threshold", threshold, gt=0)
    if isinstance(threshold, Tensor):
        check_broadcastable("threshold", threshold, step_shape)
    check_bool("cum_error", cum_error)
    check_scalar("tau_grad", tau_grad, gt=0)
    check_scalar("scale_grad", scale_grad, gt=0)
    if s_scale is not None:
        check_scalar("s_scale", s_scale, gt=0)
    cdt = compute_dtype(a_seq.dtype)
    a = a_seq.to(cdt)
    if state is None:
        z = torch.zeros(step_shape, dtype=cdt, device=a.device)
        pre, res, err = z, z, z
    else:
        if not isinstance(state, tuple) or len(state) != 3:
            raise TypeError(f"state: expected (pre, residual, error) or None, got {_describe(state)}")
        for n, v in zip(("pre", "residual", "error"), state):
            check_tensor(f"state.{n}", v)
            check_broadcastable(f"state.{n}", v, step_shape)
        pre, res, err = (v.to(cdt) for v in state)
    y, _, res, err = _DeltaFn.apply(a, _threshold_tensor(threshold, a), pre, res.detach(), err.detach(),
                                    cum_error, float(tau_grad), float(scale_grad))
    if s_scale is not None:
        y = _FloorSTE.apply(y, 1.0 / s_scale)
    return y, (a[-1], res, err)


def _prepare(x, params, state, min_ndim):
    step_shape = tuple(x.shape[min_ndim - 1:]) if min_ndim == 2 else tuple(x.shape)
    _validate_params(params, step_shape, x.device)
    cdt = compute_dtype(x.dtype)
    if state is None:
        st = initial_state(step_shape, dtype=cdt, device=x.device)
    else:
        st = _validate_state(state, step_shape, x.device, cdt)
    return st, cdt


def sigma_delta_step(x: Tensor, state: Optional[SigmaDeltaState], params: SigmaDeltaParams):
    """One sigma-delta step: ``x`` is ``(B, *features)``; returns ``(y, SigmaDeltaState)``.

    >>> p = SigmaDeltaParams(threshold=0.09375)
    >>> y, st = sigma_delta_step(torch.tensor([[0.5]]), None, p)
    >>> y.item(), st.pre.item()
    (0.5, 0.5)
    """
    check_tensor("x", x, min_ndim=1)
    st, cdt = _prepare(x, params, state, 1)
    y, new_state, _ = _core(x.to(cdt)[None], params, st, False)
    return y[0].to(x.dtype), new_state


def sigma_delta_multistep(
    x_seq: Tensor,
    params: SigmaDeltaParams,
    state: Optional[SigmaDeltaState] = None,
    backend: Optional[str] = None,
    return_traces: bool = False,
):
    """Sigma-delta over a time-first sequence ``(T, B, *features)``.

    Returns ``(y, SigmaDeltaState)`` or, with ``return_traces``, ``(y, SigmaDeltaState,
    SigmaDeltaTraces)``; equals looping :func:`sigma_delta_step`. See the module example.
    """
    check_not_transformed("sigma_delta_multistep")
    check_sequence("x_seq", x_seq, min_ndim=2, finite=False)    # the values: values_check below
    check_bool("return_traces", return_traces)
    st, cdt = _prepare(x_seq, params, state, 2)
    # the NaN/inf scan of the input runs before the reference loop and the Triton kernel; the CPU
    # kernel scans it itself (its ``checks_finite``: the final float64 sums), and this runs only
    # when that found a NaN/inf, to raise the error that names the argument (_dispatch.call)
    out = _dispatch.fused("loihi_sigma_delta", backend, x_seq, params, tuple(st), return_traces,
                          SigmaDeltaState, SigmaDeltaTraces,
                          options=dict(params=params, state=st, return_traces=return_traces),
                          values_check=lambda: check_sequence("x_seq", x_seq, min_ndim=2))
    if out is not None:
        return _dispatch.result(out, return_traces)
    y, new_state, traces = _core(x_seq.to(cdt), params, st, return_traces)
    y = y.to(x_seq.dtype)
    if return_traces:
        return y, new_state, traces
    return y, new_state
