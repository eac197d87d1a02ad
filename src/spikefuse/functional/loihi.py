"""Loihi fixed-point CUBA and ALIF dynamics (lava-dl SLAYER semantics), time-first.

SPEC.md sections 3.3 (integer leaky integrator), 3.4 (adaptive threshold / refractory),
4 (CUBA), 5 (ALIF). States are integers ``value * s_scale`` computed in int64; traces are
returned as fp32 ``int / s_scale``. Decays are given in **parameter units** of 1/4096 (the
lava parameter ``p_scale * fraction`` and the Loihi ``iDecay``/``vDecay`` values): 0 keeps
everything, 4096 forgets everything. They are rounded half-to-even with a straight-through
gradient. A decay is a number, a one-element tensor (shared), a 1-D tensor of length C
(per channel: broadcast along the **first feature dim**, SPEC 3.5 / 18 #3), or a tensor that
broadcasts against the feature shape.

Building blocks
---------------
- :func:`leaky_integrator` — LI(x; D, state, threshold) as an autograd function: int64
  forward (inputs truncated toward zero, decay shift toward zero, pre-reset output
  recorded, optional reset to 0 of the next step's start when ``y >= threshold``); float
  backward ignoring the reset; decay gradient ``decay_grad="exact"`` (default,
  ``-(1/4096) Σ_t>=1 gx[t] out[t-1]``) or ``"lava"`` (bit-compatible with lava-dl:
  ``+Σ gx[t] out[t-1]``, wrong sign and no 1/4096, SPEC 18 #1). No gradient to the state.
- :func:`li_step` — one step of the same integrator in plain torch (value exact, gradient
  of the float model via a straight-through construction).
- :func:`adaptive_threshold_dynamics` — adaptive threshold θ and refractory r (SPEC 3.4, no
  gradient) over a whole sequence with a pluggable spike condition: ``"ge"`` (drive ≥ θ + r:
  ALIF, AdRF-Iz), ``"phase"`` (re ≥ θ + r and Im crosses 0 upward: AdRF) or a callable
  ``condition(t, theta_int, ref_int) -> BoolTensor``. :func:`adaptive_decay` and
  :func:`adaptive_update` are its two per-step halves.

Models
------
- CUBA: :class:`CubaParams`, :class:`CubaState` ``(current, voltage)``,
  :class:`CubaTraces`, :func:`cuba_step`, :func:`cuba_multistep`.
- ALIF: :class:`AlifParams`, :class:`AlifState` ``(current, voltage, threshold,
  refractory)``, :class:`AlifTraces`, :func:`alif_step`, :func:`alif_multistep`.

States carried between steps are the values the next step starts from: CUBA's voltage is
post-reset (0 after a spike), ALIF's threshold/refractory include the last spike's update.
Multi-step functions return ``(spikes, final_state)`` or, with ``return_traces=True``,
``(spikes, final_state, traces)``. ``state=None`` means zeros (θ0 for the ALIF threshold).

Kernel contract
---------------
Before the reference loop, :func:`cuba_multistep` / :func:`alif_multistep` ask
``impl = kernels.resolve("loihi_cuba" | "loihi_alif", backend, x_seq, params=params,
has_norm=norm is not None, return_traces=return_traces, needs_grad=...)``. A registered
``impl(x_seq, params, state, return_traces)`` receives validated inputs, a materialised
state tuple (every field an fp32 tensor of shape ``(B, *features)`` on the input's device), no
norm, and must return ``((spikes,), final_state, traces or None)`` as raw tuples in the State /
Traces field order (:mod:`spikefuse.functional._dispatch` packs them): bit-identical spikes,
traces and final state, gradients w.r.t. ``x_seq`` and the decay tensors in ``params`` as the reference
backward computes them (including ``decay_grad``). Its ``supports(x_seq, **options)`` must
refuse (return a reason) any case it cannot reproduce, e.g. ``has_norm=True``.

Example::

    >>> import torch
    >>> from spikefuse.functional import loihi
    >>> p = loihi.CubaParams(threshold=1.0, current_decay=2048.0, voltage_decay=1024.0)
    >>> x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(5, 1, 1)
    >>> s, st, tr = loihi.cuba_multistep(x, p, return_traces=True)
    >>> s.flatten().tolist(), (tr.voltage.flatten() * 4096).tolist()
    ([0.0, 1.0, 0.0, 0.0, 0.0], [2048.0, 4608.0, 1536.0, 2944.0, 3104.0])
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import torch

from .._core import check_not_transformed, f32
from .._validate import (_describe, bool_field, caller_is_outside, check_bool, check_choice, check_number, check_scalar, check_sequence,
                         check_tensor, checked_record, choice_field, int_field, number_field, tensor_field)
from ..fixed_point import (DECAY_ONE, SCALE_RHO_MULT, TAU_RHO_MULT, alif_constants, cuba_constants,  # noqa: F401
                           decay_view, quantize_threshold, round_ste, rstz, trunc_int)
from ..spike import real_spike
from . import _dispatch

__all__ = [
    "TAU_RHO_MULT",
    "SCALE_RHO_MULT",
    "leaky_integrator",
    "li_step",
    "adaptive_threshold_dynamics",
    "adaptive_decay",
    "adaptive_update",
    "AdaptiveResult",
    "CubaParams",
    "CubaState",
    "CubaTraces",
    "cuba_step",
    "cuba_multistep",
    "AlifParams",
    "AlifState",
    "AlifTraces",
    "alif_step",
    "alif_multistep",
    "decay_view",
]


DECAY_GRADS = ("exact", "lava")
#: bound on |value| * s_scale of a fixed-point state or threshold: ``y * (4096 - D)`` must fit in int64
MAX_FIXED = 2 ** 50
MAX_S_SCALE = 2 ** 24


# --------------------------------------------------------------------------- helpers
def _check_decay_values(name: str, d) -> None:
    if isinstance(d, torch.Tensor):
        check_tensor(name, d, floating=False)
        check_number(name, d.detach(), ge=0, le=DECAY_ONE)
    else:
        check_number(name, d, ge=0, le=DECAY_ONE)


def _int_state(state: Optional[torch.Tensor], shape, s_scale: int, device, init: float = 0.0) -> torch.Tensor:
    if state is None:
        return torch.full(shape, int(f32(init * s_scale)), dtype=torch.int64, device=device)  # trunc of the fp32 value
    return trunc_int(state.detach().to(torch.float32) * s_scale).expand(shape).clone()


def _to_float(y_int: torch.Tensor, s_scale: int) -> torch.Tensor:
    return (y_int.to(torch.float64) / s_scale).to(torch.float32)


# --------------------------------------------------------------------------- leaky integrator
class _LeakyIntegrator(torch.autograd.Function):
    """LI with int64 forward and float backward (SPEC 3.3)."""

    @staticmethod
    def forward(ctx, x, decay, state, threshold, s_scale, lava_grad):
        # x: (T, B, ...) fp32; decay: rounded decay view; state: (B, ...) fp32 or None
        xi = trunc_int(x * s_scale)
        step_shape = xi.shape[1:]
        dec = DECAY_ONE - decay.detach().to(torch.int64)
        y = _int_state(state, step_shape, s_scale, x.device)
        out = torch.empty_like(xi)
        thr = None if threshold is None else threshold * s_scale
        for t in range(xi.shape[0]):
            y_new = rstz(y * dec) + xi[t]
            out[t] = y_new
            if thr is not None:
                y = torch.where(y_new >= thr, torch.zeros_like(y_new), y_new)
            else:
                y = y_new
        out_f = _to_float(out, s_scale)
        ctx.save_for_backward(out_f, decay)
        ctx.lava_grad = lava_grad
        return out_f

    @staticmethod
    def backward(ctx, g):
        out, decay = ctx.saved_tensors
        a = 1 - decay.detach().to(torch.float32) / DECAY_ONE
        gx = torch.empty_like(g)
        acc = g[-1]
        gx[-1] = acc
        for t in range(g.shape[0] - 2, -1, -1):
            acc = a * acc + g[t]
            gx[t] = acc
        gd = None
        if ctx.needs_input_grad[1]:
            term = (gx[1:] * out[:-1]).sum(0) if g.shape[0] > 1 else torch.zeros_like(g[0])
            term = term.sum_to_size(decay.shape)
            gd = term if ctx.lava_grad else -term / DECAY_ONE
        return gx, gd, None, None, None, None


def leaky_integrator(
    x_seq: torch.Tensor,
    decay,
    state: Optional[torch.Tensor] = None,
    threshold: Optional[float] = None,
    s_scale: int = 4096,
    decay_grad: str = "exact",
) -> torch.Tensor:
    """Integer leaky integrator LI (SPEC 3.3) over a time-first sequence.

    ``y[t] = rstz(y[t-1] * (4096 - D), 12) + trunc(s_scale * x[t])`` in int64, recorded
    pre-reset as ``y[t] / s_scale`` (fp32). With ``threshold``, the next step starts from 0
    where ``y[t] >= threshold * s_scale``. Backward ignores the reset.

    Parameters: ``x_seq`` ``(T, B, *features)``; ``decay`` in parameter units (0..4096,
    rounded half-to-even, straight-through); ``state`` the value at t = -1 (float, ``(B,
    *features)`` or broadcastable; None = 0; gets no gradient); ``decay_grad`` ``"exact"`` or
    ``"lava"``.

    >>> import torch
    >>> x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(5, 1)
    >>> (leaky_integrator(x, 2048.0) * 4096).flatten().tolist()
    [2048.0, 3072.0, 1536.0, 1792.0, 896.0]
    """
    check_sequence("x_seq", x_seq)
    _check_decay_values("decay", decay)
    check_choice("decay_grad", decay_grad, DECAY_GRADS)
    _check_s_scale("s_scale", s_scale)
    if threshold is not None:
        check_number("threshold", threshold, ge=-MAX_FIXED / s_scale, le=MAX_FIXED / s_scale)
    if state is not None:
        check_tensor("state", state)
        try:
            torch.broadcast_shapes(tuple(state.shape), tuple(x_seq.shape[1:]))
        except RuntimeError:
            raise ValueError(
                f"state: shape {tuple(state.shape)} does not broadcast against one step {tuple(x_seq.shape[1:])}"
            ) from None
    d = round_ste(decay_view("decay", decay, x_seq))
    return _li(x_seq, d, state, threshold, int(s_scale), decay_grad)


def _li(x_seq, d, state, threshold, s_scale, decay_grad):
    x = x_seq if x_seq.dtype in (torch.float32, torch.float64) else x_seq.to(torch.float32)
    return _LeakyIntegrator.apply(x.to(torch.float32), d, state, threshold, s_scale, decay_grad == "lava")


def _check_li_step(x, y_prev, decay, s_scale, decay_grad) -> None:
    check_tensor("x", x)
    check_tensor("y_prev", y_prev)
    check_tensor("decay", decay, floating=False)
    for name, t in (("y_prev", y_prev), ("decay", decay)):
        if t.device != x.device:
            raise ValueError(f"{name}: expected a tensor on {x.device} (x's device), got one on {t.device}")
        try:
            torch.broadcast_shapes(tuple(t.shape), tuple(x.shape))
        except RuntimeError:
            raise ValueError(f"{name}: shape {tuple(t.shape)} does not broadcast against x {tuple(x.shape)}") from None
    _check_decay_values("decay", decay)
    _check_s_scale("s_scale", s_scale)
    check_choice("decay_grad", decay_grad, DECAY_GRADS)


def _check_s_scale(name: str, s_scale) -> int:
    """The fixed-point scale: a positive int small enough that the int64 states cannot overflow."""
    if isinstance(s_scale, bool) or not isinstance(s_scale, int):
        raise TypeError(f"{name}: expected a positive int, got {_describe(s_scale)}")
    if not 0 < s_scale <= MAX_S_SCALE:
        raise ValueError(f"{name}: must be in 1..{MAX_S_SCALE} (int64 fixed-point states), got {s_scale}")
    return s_scale


def li_step(
    x: torch.Tensor,
    y_prev: torch.Tensor,
    decay: torch.Tensor,
    s_scale: int = 4096,
    decay_grad: str = "exact",
) -> torch.Tensor:
    """One LI step in plain torch: value ``(rstz(trunc(y_prev s) (4096 - D), 12) + trunc(s x)) / s``
    (``D = round(decay)``); gradient of the float model ``(1 - D/4096) y_prev + x``: 1 to ``x``,
    ``1 - D/4096`` to ``y_prev``, and to ``decay`` ``-y_prev/4096`` (``"exact"``) or
    ``+y_prev`` (``"lava"``). ``decay`` must already broadcast against ``x`` (see
    :func:`decay_view`). No reset here: see :func:`cuba_step`.

    >>> import torch
    >>> y = li_step(torch.tensor([0.25]), torch.tensor([0.5]), torch.tensor(1024.0))
    >>> y.item() * 4096   # rstz(2048 * 3072, 12) + 1024
    2560.0
    """
    if caller_is_outside():  # cuba_step / alif_step call it per step with checked values
        _check_li_step(x, y_prev, decay, s_scale, decay_grad)
    d = round_ste(decay)
    xf = x.to(torch.float32)
    yp = y_prev.to(torch.float32)
    dec = DECAY_ONE - d.detach().to(torch.int64)
    y_new = rstz(trunc_int(yp.detach() * s_scale) * dec) + trunc_int(xf.detach() * s_scale)
    value = _to_float(y_new, s_scale)
    a = 1 - d.detach() / DECAY_ONE
    if decay_grad == "exact":
        lin = (1 - d / DECAY_ONE) * yp + xf
    else:
        lin = a * yp + xf + (d - d.detach()) * yp.detach()
    return value + (lin - lin.detach())


# --------------------------------------------------------------------------- adaptive threshold
class AdaptiveResult(NamedTuple):
    """Output of :func:`adaptive_threshold_dynamics`.

    ``threshold``, ``refractory``: fp32 ``(T, B, *features)`` pre-spike traces θ[t], r[t];
    ``fired``: bool ``(T, B, *features)``, the integer spike condition; ``threshold_state``,
    ``refractory_state``: fp32 ``(B, *features)`` values the next step starts from (the last
    step's spike applied: θ + step, r + 2θ)."""

    threshold: torch.Tensor
    refractory: torch.Tensor
    fired: torch.Tensor
    threshold_state: torch.Tensor
    refractory_state: torch.Tensor


def adaptive_decay(theta_int, ref_int, theta0_int: int, threshold_decay, refractory_decay):
    """First half of a step of SPEC 3.4 on int64 states: ``r = rstz(r (4096 - Dr), 12)``,
    ``θ = rstz((θ - θ0)(4096 - Dθ), 12) + θ0``; decays are rounded views (parameter units).

    >>> import torch
    >>> adaptive_decay(torch.tensor([6144]), torch.tensor([4096]), 4096, torch.tensor(1024.0), torch.tensor(2048.0))
    (tensor([5632]), tensor([2048]))
    """
    dr = DECAY_ONE - torch.round(refractory_decay.detach()).to(torch.int64)
    dth = DECAY_ONE - torch.round(threshold_decay.detach()).to(torch.int64)
    ref_int = rstz(ref_int * dr)
    theta_int = rstz((theta_int - theta0_int) * dth) + theta0_int
    return theta_int, ref_int


def adaptive_update(theta_int, ref_int, fired, step_int: int):
    """Second half of a step of SPEC 3.4: where ``fired``, ``r += 2θ`` (the pre-step θ) and
    ``θ += step``.

    >>> import torch
    >>> adaptive_update(torch.tensor([4096, 4096]), torch.tensor([0, 0]), torch.tensor([True, False]), 2048)
    (tensor([6144, 4096]), tensor([8192,    0]))
    """
    f = fired.to(torch.int64)
    return theta_int + step_int * f, ref_int + 2 * theta_int * f


def adaptive_threshold_dynamics(
    drive,
    threshold: float,
    threshold_step: float,
    threshold_decay,
    refractory_decay,
    threshold_state: Optional[torch.Tensor] = None,
    refractory_state: Optional[torch.Tensor] = None,
    s_scale: int = 4096,
    condition: Union[str, Callable] = "ge",
    imag_last: Optional[torch.Tensor] = None,
) -> AdaptiveResult:
    """Adaptive threshold / refractory integer dynamics (SPEC 3.4), no gradient.

    Per step: decay r and θ (toward θ0), record θ[t], r[t], evaluate the spike condition on
    ``θ_int + r_int``, then where it fires ``r += 2θ`` and ``θ += step``.

    ``drive``: a ``(T, B, *features)`` tensor (``condition="ge"``: fires where
    ``trunc(drive*s_scale) >= θ + r``), or a ``(real, imag)`` pair (``condition="phase"``: fires
    where ``re >= θ + r`` and ``im[t] >= 0`` and ``im[t-1] < 0``, ``im[-1] = imag_last``, default
    0), or anything when ``condition`` is a callable ``condition(t, theta_int, ref_int)`` that
    returns the bool spike tensor of step t (integers are ``value * s_scale``; ``drive`` must
    then still be a tensor or pair giving the shape). ``threshold`` is θ0 and
    ``threshold_step`` the step, both already quantised floats; decays in parameter units;
    states None = θ0 / 0.

    >>> import torch
    >>> v = torch.tensor([1.5, 1.25, 1.125, 1.5625]).reshape(4, 1, 1)
    >>> r = adaptive_threshold_dynamics(v, 1.0, 0.5, 1024.0, 2048.0)
    >>> r.fired.flatten().tolist(), (r.refractory.flatten() * 4096).tolist()
    ([True, False, False, True], [0.0, 4096.0, 2048.0, 1024.0])
    """
    if isinstance(drive, (tuple, list)):
        if len(drive) != 2:
            raise ValueError(f"drive: expected a tensor or a (real, imag) pair, got {len(drive)} items")
        re, im = drive
        check_sequence("drive (real)", re)
        check_sequence("drive (imag)", im)
        if re.shape != im.shape:
            raise ValueError(f"drive: real and imag shapes differ: {tuple(re.shape)} vs {tuple(im.shape)}")
        like = re
    else:
        check_sequence("drive", drive)
        re, im, like = drive, None, drive
    if not callable(condition):
        check_choice("condition", condition, ("ge", "phase"))
        if condition == "phase" and im is None:
            raise ValueError("drive: condition='phase' needs a (real, imag) pair")
    _check_s_scale("s_scale", s_scale)
    check_scalar("threshold", threshold, ge=-MAX_FIXED / s_scale, le=MAX_FIXED / s_scale)
    check_scalar("threshold_step", threshold_step, ge=0, le=MAX_FIXED / s_scale)
    _check_decay_values("threshold_decay", threshold_decay)
    _check_decay_values("refractory_decay", refractory_decay)
    T = like.shape[0]
    step_shape = tuple(like.shape[1:])
    dev = like.device
    dth = decay_view("threshold_decay", threshold_decay, like)
    dr = decay_view("refractory_decay", refractory_decay, like)
    theta0_int = int(threshold * s_scale)
    step_int = int(threshold_step * s_scale)
    with torch.no_grad():
        theta = _int_state(threshold_state, step_shape, s_scale, dev, init=threshold)
        if threshold_state is None:
            theta = torch.full(step_shape, theta0_int, dtype=torch.int64, device=dev)
        ref = _int_state(refractory_state, step_shape, s_scale, dev)
        re_i = trunc_int(re.detach().to(torch.float32) * s_scale) if condition in ("ge", "phase") else None
        if condition == "phase":
            im_i = trunc_int(im.detach().to(torch.float32) * s_scale)
            im_prev = _int_state(imag_last, step_shape, s_scale, dev)
        th_tr = torch.empty((T,) + step_shape, dtype=torch.int64, device=dev)
        ref_tr = torch.empty_like(th_tr)
        fired_tr = torch.empty((T,) + step_shape, dtype=torch.bool, device=dev)
        for t in range(T):
            theta, ref = adaptive_decay(theta, ref, theta0_int, dth, dr)
            th_tr[t] = theta
            ref_tr[t] = ref
            lim = theta + ref
            if condition == "ge":
                fired = re_i[t] >= lim
            elif condition == "phase":
                fired = (re_i[t] >= lim) & (im_i[t] >= 0) & (im_prev < 0)
                im_prev = im_i[t]
            else:
                fired = condition(t, theta, ref)
                if not isinstance(fired, torch.Tensor):
                    raise TypeError(f"condition: expected a bool tensor from the callable, got {_describe(fired)}")
                fired = fired.to(torch.bool).expand(step_shape)
            fired_tr[t] = fired
            theta, ref = adaptive_update(theta, ref, fired, step_int)
        return AdaptiveResult(
            _to_float(th_tr, s_scale), _to_float(ref_tr, s_scale), fired_tr, _to_float(theta, s_scale), _to_float(ref, s_scale)
        )


# --------------------------------------------------------------------------- params validation
def _check_common(p) -> None:
    if isinstance(p.scale, bool) or not isinstance(p.scale, int) or not 0 < p.scale <= MAX_S_SCALE // 64:
        raise ValueError(f"params.scale: expected a positive int <= {MAX_S_SCALE // 64}, got {p.scale!r}")
    limit = MAX_FIXED / (64 * p.scale)  # fixed-point states are value * 64 * scale in int64
    check_number("params.threshold", p.threshold, le=limit)
    if float(p.threshold) * p.scale < 1:
        raise ValueError(
            f"params.threshold: threshold * scale must be >= 1, got threshold={p.threshold} with scale={p.scale}"
        )
    check_number("params.tau_grad", p.tau_grad, gt=0)
    check_number("params.scale_grad", p.scale_grad, gt=0)
    check_bool("params.graded_spike", p.graded_spike)
    check_choice("params.decay_grad", p.decay_grad, DECAY_GRADS)


def _check_input(x_seq, finite: bool = True) -> torch.Tensor:
    if isinstance(x_seq, (tuple, list)):
        raise TypeError(
            f"x_seq: CUBA/ALIF are real-valued and take one tensor (T, B, *features), got a {type(x_seq).__name__} "
            f"(a (real, imag) pair is for the resonator family)"
        )
    if isinstance(x_seq, torch.Tensor) and x_seq.is_complex():
        raise TypeError(f"x_seq: expected a real floating tensor, got complex dtype {x_seq.dtype}")
    return check_sequence("x_seq", x_seq, finite=finite)


def _values_check(x_seq):
    """The NaN/inf scan of a multi-step input, for :func:`._dispatch.call` (a fused CPU kernel
    scans its input itself and asks for it only when it met a NaN/inf)."""
    return lambda: check_sequence("x_seq", x_seq)


def _check_model(x_seq, params, state, params_cls, state_cls, finite: bool = True) -> None:
    """Validate a CUBA / ALIF call: input, ``params`` (type, shared fields, ``threshold_step``
    where the model has one, every ``*_decay`` field in field order) and the optional state."""
    check_not_transformed(f"loihi {params_cls.__name__[:-6].lower()}")
    _check_input(x_seq, finite)
    if not isinstance(params, params_cls):
        raise TypeError(f"params: expected {params_cls.__name__}, got {_describe(params)}")
    _check_common(params)
    if "threshold_step" in params_cls._fields:
        check_number("params.threshold_step", params.threshold_step, ge=0, le=MAX_FIXED / (64 * params.scale))
    for n in params_cls._fields:
        if n.endswith("_decay"):
            _check_decay_values(f"params.{n}", getattr(params, n))
    if state is not None:
        if not isinstance(state, state_cls):
            raise TypeError(f"state: expected {state_cls.__name__} or None, got {_describe(state)}")
        _check_state(state, state_cls._fields, x_seq)


def _multistep_setup(family: str, x_seq, params, backend, return_traces, norm):
    """Shared start of :func:`cuba_multistep` and :func:`alif_multistep` (after the model
    check): check ``return_traces`` and ``norm``, round the current and voltage decays
    (straight-through) and resolve a fused kernel. Returns ``(du, dv, impl)``; ``impl`` is
    None when the reference loop runs."""
    check_bool("return_traces", return_traces)
    if norm is not None and not callable(norm):
        raise TypeError(f"norm: expected a callable module or None, got {_describe(norm)}")
    du = round_ste(decay_view("params.current_decay", params.current_decay, x_seq))
    dv = round_ste(decay_view("params.voltage_decay", params.voltage_decay, x_seq))
    needs_grad = torch.is_grad_enabled() and (x_seq.requires_grad or du.requires_grad or dv.requires_grad)
    impl = _dispatch.resolve(
        family, backend, x_seq, params=params, has_norm=norm is not None,
        return_traces=return_traces, needs_grad=needs_grad,
    )
    return du, dv, impl


def _kernel_state(state, state_cls, x_seq, initial):
    """The state handed to a fused kernel: fp32 fields expanded to one step ``(B, *features)``,
    or, for ``state=None``, ``initial(z)`` built from a zero fp32 step tensor ``z``."""
    step_shape = x_seq.shape[1:]
    if state is None:
        return initial(torch.zeros(step_shape, dtype=torch.float32, device=x_seq.device))
    return state_cls(*(f.to(torch.float32).expand(step_shape) for f in state))


def _out_dtype(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Spikes in the input's dtype for fp16 / bf16 inputs (state stays fp32), else as they are."""
    return s.to(x.dtype) if x.dtype in (torch.float16, torch.bfloat16) else s


def _check_state(state, names, x_seq) -> None:
    step = tuple(x_seq.shape[1:])
    for n in names:
        v = getattr(state, n)
        check_tensor(f"state.{n}", v)
        if v.device != x_seq.device:
            raise ValueError(f"state.{n}: expected a tensor on {x_seq.device}, got one on {v.device}")
        try:
            ok = torch.broadcast_shapes(tuple(v.shape), step) == torch.Size(step)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"state.{n}: shape {tuple(v.shape)} does not broadcast against one step {step}")


# --------------------------------------------------------------------------- CUBA
@checked_record(threshold=number_field(), current_decay=number_field(), voltage_decay=number_field(),
                tau_grad=number_field(), scale_grad=number_field(), scale=int_field(), graded_spike=bool_field,
                decay_grad=choice_field(*DECAY_GRADS))
class CubaParams(NamedTuple):
    """Parameters of the Loihi CUBA neuron (SPEC 4).

    ``threshold`` float (quantised inside to ``trunc(θ·scale)/scale``); ``current_decay``,
    ``voltage_decay`` in parameter units 0..4096 (number or tensor, see module doc);
    ``tau_grad``, ``scale_grad`` user surrogate values (multiplied by 100 and 0.1 inside);
    ``scale`` = w_scale (s_scale = 64·scale); ``graded_spike``; ``decay_grad`` ``"exact"`` |
    ``"lava"``."""

    threshold: float
    current_decay: Any
    voltage_decay: Any
    tau_grad: float = 1.0
    scale_grad: float = 1.0
    scale: int = 64
    graded_spike: bool = False
    decay_grad: str = "exact"


@checked_record(current=tensor_field(floating=True), voltage=tensor_field(floating=True))
class CubaState(NamedTuple):
    """CUBA state carried to the next step: ``current`` and post-reset ``voltage`` (float)."""

    current: torch.Tensor
    voltage: torch.Tensor


@checked_record(current=tensor_field(floating=True), voltage=tensor_field(floating=True))
class CubaTraces(NamedTuple):
    """CUBA traces ``(T, B, *features)``: ``current`` and pre-reset ``voltage``."""

    current: torch.Tensor
    voltage: torch.Tensor


def _check_step_input(x) -> None:
    check_tensor("x", x, min_ndim=1, finite=False)  # its values: by the sequence check that follows


def _check_cuba(x_seq, params, state, finite: bool = True):
    _check_model(x_seq, params, state, CubaParams, CubaState, finite)


def cuba_step(x: torch.Tensor, state: Optional[CubaState], params: CubaParams):
    """One CUBA step ``x: (B, *features)`` -> ``(spikes, new_state)`` in plain torch.

    ``u = LI(x)``, ``v = LI(u)`` (same-step current), spike iff ``v > θ_q`` (via ``+0.01/s_scale``),
    the returned voltage is reset to 0 after a spike (its gradient ignores the reset, like the
    multi-step backward). Without norm (norm needs whole sequences).

    Looping this step gives the multi-step values and input gradients. Decay gradients agree
    too, except that the multi-step rule (lava's) uses the *pre-reset* previous voltage and
    omits the t = 0 term of a given initial state, while the loop uses the state it carries.

    >>> import torch
    >>> p = CubaParams(1.0, 2048.0, 1024.0)
    >>> s, st = cuba_step(torch.tensor([[0.5]]), None, p)
    >>> s.item(), st.voltage.item()
    (0.0, 0.5)
    """
    _check_step_input(x)
    _check_cuba(x.unsqueeze(0), params, state)
    s_scale, th, thr, tau_rho, scale_rho = cuba_constants(params)
    like = x.unsqueeze(0)
    du = decay_view("params.current_decay", params.current_decay, like)
    dv = decay_view("params.voltage_decay", params.voltage_decay, like)
    if state is None:
        z = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        state = CubaState(z, z)
    u = li_step(x, state.current, du, s_scale, params.decay_grad)
    v = li_step(u, state.voltage, dv, s_scale, params.decay_grad)
    s = real_spike(v, thr, tau_rho, scale_rho, params.graded_spike)
    reset = (trunc_int(v.detach() * s_scale) >= thr * s_scale).to(v.dtype)
    v_next = v - (v * reset).detach()
    return _out_dtype(s, x), CubaState(u, v_next)


def cuba_multistep(
    x_seq: torch.Tensor,
    params: CubaParams,
    state: Optional[CubaState] = None,
    backend: Optional[str] = None,
    return_traces: bool = False,
    norm: Optional[Callable] = None,
):
    """CUBA over a time-first sequence ``(T, B, *features)`` -> ``(spikes, state[, traces])``.

    Same numbers as looping :func:`cuba_step` (and, with ``decay_grad="lava"``, lava-dl's
    gradients). ``norm`` (a module/callable on the whole current sequence, SPEC 3.7) sits
    between the current and voltage integrators; the returned current state is then the
    normalised last current, as lava-dl stores it.

    >>> import torch
    >>> p = CubaParams(1.0, 2048.0, 1024.0, graded_spike=True)
    >>> x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(5, 1, 1)
    >>> cuba_multistep(x, p)[0].flatten().tolist()
    [0.0, 1.125, 0.0, 0.0, 0.0]
    """
    _check_cuba(x_seq, params, state, finite=False)   # the values: _values_check, after dispatch
    du, dv, impl = _multistep_setup("loihi_cuba", x_seq, params, backend, return_traces, norm)
    s_scale, th, thr, tau_rho, scale_rho = cuba_constants(params)
    if impl is not None:
        state = _kernel_state(state, CubaState, x_seq, lambda z: CubaState(z, z))
        out = _dispatch.call(impl, x_seq, params, tuple(state), return_traces, CubaState, CubaTraces,
                             values_check=_values_check(x_seq))
        return _dispatch.result(out, return_traces)
    _values_check(x_seq)()
    u = _li(x_seq, du, None if state is None else state.current, None, s_scale, params.decay_grad)
    if norm is not None:
        u = norm(u)
    v = _li(u, dv, None if state is None else state.voltage, thr, s_scale, params.decay_grad)
    s = real_spike(v, thr, tau_rho, scale_rho, params.graded_spike)
    reset = (trunc_int(v[-1].detach() * s_scale) >= thr * s_scale).to(v.dtype)
    final = CubaState(u[-1], v[-1] - (v[-1] * reset).detach())
    s = _out_dtype(s, x_seq)
    if return_traces:
        return s, final, CubaTraces(u, v)
    return s, final


# --------------------------------------------------------------------------- ALIF
@checked_record(threshold=number_field(), threshold_step=number_field(), current_decay=number_field(),
                voltage_decay=number_field(), threshold_decay=number_field(), refractory_decay=number_field(),
                tau_grad=number_field(), scale_grad=number_field(), scale=int_field(), graded_spike=bool_field,
                decay_grad=choice_field(*DECAY_GRADS))
class AlifParams(NamedTuple):
    """Parameters of the Loihi adaptive LIF (SPEC 5).

    ``threshold`` = θ0 and ``threshold_step`` (floats, quantised inside); four decays in
    parameter units 0..4096; others as :class:`CubaParams`. Only the current and voltage
    decays receive gradients."""

    threshold: float
    threshold_step: float
    current_decay: Any
    voltage_decay: Any
    threshold_decay: Any
    refractory_decay: Any
    tau_grad: float = 1.0
    scale_grad: float = 1.0
    scale: int = 64
    graded_spike: bool = False
    decay_grad: str = "exact"


@checked_record(current=tensor_field(floating=True), voltage=tensor_field(floating=True), threshold=tensor_field(floating=True), refractory=tensor_field(floating=True))
class AlifState(NamedTuple):
    """ALIF state carried to the next step (floats): ``current``, ``voltage`` (never reset),
    ``threshold`` and ``refractory`` with the last spike's update applied."""

    current: torch.Tensor
    voltage: torch.Tensor
    threshold: torch.Tensor
    refractory: torch.Tensor


@checked_record(current=tensor_field(floating=True), voltage=tensor_field(floating=True), threshold=tensor_field(floating=True), refractory=tensor_field(floating=True))
class AlifTraces(NamedTuple):
    """ALIF traces ``(T, B, *features)``: current, voltage, pre-spike threshold θ[t] and
    refractory r[t]."""

    current: torch.Tensor
    voltage: torch.Tensor
    threshold: torch.Tensor
    refractory: torch.Tensor


def _check_alif(x_seq, params, state, finite: bool = True):
    _check_model(x_seq, params, state, AlifParams, AlifState, finite)


def alif_step(x: torch.Tensor, state: Optional[AlifState], params: AlifParams):
    """One ALIF step ``x: (B, *features)`` -> ``(spikes, new_state)`` in plain torch.

    ``u = LI(x)``, ``v = LI(u)`` (no voltage reset), decay θ toward θ0 and r toward 0, spike
    iff ``v >= θ + r``, then ``r += 2θ``, ``θ += step`` where it spiked.

    >>> import torch
    >>> p = AlifParams(1.0, 0.5, 4096.0, 2048.0, 1024.0, 2048.0)
    >>> s, st = alif_step(torch.tensor([[1.5]]), None, p)
    >>> s.item(), st.threshold.item(), st.refractory.item()
    (1.0, 1.5, 2.0)
    """
    _check_step_input(x)
    _check_alif(x.unsqueeze(0), params, state)
    s_scale, th0, step, tau_rho, scale_rho = alif_constants(params)
    like = x.unsqueeze(0)
    views = {n: decay_view(f"params.{n}", getattr(params, n), like)
             for n in ("current_decay", "voltage_decay", "threshold_decay", "refractory_decay")}
    if state is None:
        z = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        state = AlifState(z, z, torch.full_like(z, th0), z)
    u = li_step(x, state.current, views["current_decay"], s_scale, params.decay_grad)
    v = li_step(u, state.voltage, views["voltage_decay"], s_scale, params.decay_grad)
    theta_i, ref_i = adaptive_decay(
        trunc_int(state.threshold.detach() * s_scale).expand(x.shape),
        trunc_int(state.refractory.detach() * s_scale).expand(x.shape),
        int(th0 * s_scale), views["threshold_decay"], views["refractory_decay"],
    )
    theta, ref = _to_float(theta_i, s_scale), _to_float(ref_i, s_scale)
    s = real_spike(v, theta + ref, tau_rho, scale_rho, params.graded_spike)
    fired = trunc_int(v.detach() * s_scale) >= theta_i + ref_i
    theta_i, ref_i = adaptive_update(theta_i, ref_i, fired, int(step * s_scale))
    return _out_dtype(s, x), AlifState(u, v, _to_float(theta_i, s_scale), _to_float(ref_i, s_scale))


def alif_multistep(
    x_seq: torch.Tensor,
    params: AlifParams,
    state: Optional[AlifState] = None,
    backend: Optional[str] = None,
    return_traces: bool = False,
    norm: Optional[Callable] = None,
):
    """ALIF over a time-first sequence ``(T, B, *features)`` -> ``(spikes, state[, traces])``.

    Same numbers as looping :func:`alif_step`. ``norm`` (SPEC 3.7) is applied to the input
    sequence before the current integrator. Gradient flows only through the voltage (θ and r
    are constants of the spike function).

    >>> import torch
    >>> p = AlifParams(1.0, 0.5, 4096.0, 2048.0, 1024.0, 2048.0)
    >>> x = torch.tensor([1.5, 0.5, 0.5, 1.0, 1.5, 0.0]).reshape(6, 1, 1)
    >>> alif_multistep(x, p)[0].flatten().tolist()
    [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    """
    _check_alif(x_seq, params, state, finite=False)   # the values: _values_check, after dispatch
    du, dv, impl = _multistep_setup("loihi_alif", x_seq, params, backend, return_traces, norm)
    s_scale, th0, step, tau_rho, scale_rho = alif_constants(params)
    if impl is not None:
        state = _kernel_state(state, AlifState, x_seq, lambda z: AlifState(z, z, torch.full_like(z, th0), z))
        out = _dispatch.call(impl, x_seq, params, tuple(state), return_traces, AlifState, AlifTraces,
                             values_check=_values_check(x_seq))
        return _dispatch.result(out, return_traces)
    _values_check(x_seq)()
    if norm is not None:
        x_seq = norm(x_seq)
    st = state
    u = _li(x_seq, du, None if st is None else st.current, None, s_scale, params.decay_grad)
    v = _li(u, dv, None if st is None else st.voltage, None, s_scale, params.decay_grad)
    ad = adaptive_threshold_dynamics(
        v, th0, step, params.threshold_decay, params.refractory_decay,
        None if st is None else st.threshold, None if st is None else st.refractory, s_scale, "ge",
    )
    s = real_spike(v, ad.threshold + ad.refractory, tau_rho, scale_rho, params.graded_spike)
    final = AlifState(u[-1], v[-1], ad.threshold_state, ad.refractory_state)
    s = _out_dtype(s, x_seq)
    if return_traces:
        return s, final, AlifTraces(u, v, ad.threshold, ad.refractory)
    return s, final
