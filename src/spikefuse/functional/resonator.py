"""Loihi resonate-and-fire family: RF, RF-Iz, AdRF, AdRF-Iz (SPEC.md 2.1, 2.2, 3.4, 6-9).

Integer resonator dynamics RES (SPEC 6.2), per element, int64, ``s = s_scale`` (4096)::

    re, im = trunc(re_state * s), trunc(im_state * s)
    re_new = rstz(C * re, 12) - rstz(S * im, 12) + trunc(s * xr[t])
    im_new = rstz(S * re, 12) + rstz(C * im, 12) + trunc(s * xi[t])
    record re[t], im[t] = re_new / s, im_new / s                      # pre-reset
    RF-Iz only: if im_new >= θ s: re, im = 0, trunc(θ s - 1)          # Izhikevich reset
    else:       re, im = re_new, im_new

``S``/``C`` are the sin/cos decays ``4096 (1 - decay) sin/cos(2π/period)``, rounded half to
even in forward with a straight-through gradient (so float parameters may be passed).

Adaptive models (AdRF, AdRF-Iz) run the threshold/refractory dynamics of SPEC 3.4 in the same
integer loop (decays ``Dθ``, ``Dr``; ``θ0``, ``step`` in units of 1/s)::

    r  = rstz(r * (4096 - Dr), 12);  θ = rstz((θ - θ0) * (4096 - Dθ), 12) + θ0
    re_new, im_new as above (neither is ever reset)
    AdRF:    spike = re_new >= θ + r  and  im_new >= 0  and  im_prev < 0
    AdRF-Iz: spike = im_new >= θ + r
    record θ[t], r[t] (pre-spike);  if spike: r += 2 θ;  θ += step

Spikes are produced by the lava spike functions with the surrogate multipliers of SPEC 2.1
(``tau_rho`` = multiplier x ``tau_grad`` x θ_q, ``scale_rho`` = multiplier x ``scale_grad``):

=========  ================================  ========  =========  ====================
model      spike function                    tau mult  scale mult threshold
=========  ================================  ========  =========  ====================
RF         complex (phase), on (re, im)      0.5       10         θ_q
RF-Iz      real, on im                       100       0.1        θ_q
AdRF       complex (phase), on (re, im)      100       0.1        θ[t] + r[t]
AdRF-Iz    real, on im                       100       0.1        θ[t] + r[t]
=========  ================================  ========  =========  ====================

The RF multipliers (0.5, 10) were checked against the lava-dl fixture
``tests/fixtures/lava_dl/rf.npz``: its ``grad_input`` is reproduced by ``tau_rho = 0.25``,
``scale_rho = 10`` for θ = 0.5 (its ``param_tau_rho = 50`` / ``param_scale_rho = 0.1``
metadata is not what lava-dl 0.6.0 used).

Backward (float; the Izhikevich reset and the θ/r path carry no gradient), ``C' = C/4096``,
``S' = S/4096``::

    g_re_in[t] =  C' g_re_in[t+1] + S' g_im_in[t+1] + g_re[t]
    g_im_in[t] = -S' g_re_in[t+1] + C' g_im_in[t+1] + g_im[t]
    dL/dS = k Σ_t (-g_re_in[t] im_prev[t] + g_im_in[t] re_prev[t])
    dL/dC = k Σ_t ( g_re_in[t] re_prev[t] + g_im_in[t] im_prev[t])

``decay_grad="exact"`` (default): ``k = 1/4096``, the sum includes t = 0 (the initial state)
and ``re_prev``/``im_prev`` are the states the step really started from (after a reset): the
chain rule of the float dynamics. ``decay_grad="lava"``: lava-dl's rule, bit-compatible with
upstream: ``k = 1``, only ``t >= 1``, with the *recorded* (pre-reset) values ``re[t-1]``,
``im[t-1]`` (SPEC 6.2, 18 #1). The gradient w.r.t. the initial state is returned as well
(``C' g_re_in[0] + S' g_im_in[0]``, ``-S' g_re_in[0] + C' g_im_in[0]``).

Step vs multi-step: every ``*_multistep`` returns the same numbers as looping the matching
``*_step`` (forward, input/state gradients and, with ``decay_grad="exact"``, decay gradients).
With ``decay_grad="lava"`` a step cannot know whether it is the first of a sequence, so a
step loop also counts the t = 0 term (zero for a zero initial state) and, for RF-Iz, uses the
post-reset state where lava uses the recorded pre-reset value.

Conventions: inputs are a pair ``(real, imag)`` of equal shape, time-first ``(T, B, *features)``
for the multi-step functions and ``(B, *features)`` for one step. Parameters are numbers or
tensors: a 1-D tensor of length C is per channel along the **first feature dim** (for
``(B, C)`` and ``(B, C, H, W)`` steps alike); other tensors must broadcast against the feature
shape (as :func:`spikefuse.fixed_point.decay_view`). State is computed in
fp32 (fp64 for fp64 inputs); spikes are returned in the input dtype.

Fused kernels: each multi-step function first calls
``kernels.resolve(family, backend, x_real, params=..., state=..., return_traces=...)`` with
family ``"loihi_rf" | "loihi_rf_iz" | "loihi_adrf" | "loihi_adrf_iz"``. A registered
implementation is called as ``impl((x_real, x_imag), params, state, return_traces)`` with
validated inputs and a complete state tuple (never None, compute dtype); it must return
``((spikes,), final_state, traces or None)`` as raw tuples in the State / Traces field order
(:mod:`spikefuse.functional._dispatch` packs them), with the reference's forward numbers and
autograd semantics (both ``decay_grad`` modes).

Example (SPEC 17 L3)::

    >>> import torch
    >>> from spikefuse.functional.resonator import RFParams, rf_multistep
    >>> xr = torch.tensor([1.0, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> p = RFParams(sin_decay=4095.0, cos_decay=0.0, threshold=0.5)
    >>> s, st, tr = rf_multistep((xr, torch.zeros_like(xr)), p, backend="reference", return_traces=True)
    >>> s.flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    >>> (tr.real.flatten() * 4096).tolist()
    [4096.0, 0.0, -4094.0, 0.0, 4092.0, 0.0]
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._core import check_not_transformed, compute_dtype, sum_to
from .._validate import (
    _describe,
    check_bool,
    check_broadcastable,
    check_choice,
    check_number,
    check_tensor,
)
from ..fixed_point import DECAY_BITS, DECAY_ONE, RESONATOR_SURROGATE_MULTIPLIERS, decay_view, round_ste, rstz, trunc_int
from ..spike import complex_spike, real_spike
from . import _dispatch
from .._validate import bool_field, checked_record, choice_field, int_field, number_field, tensor_field

__all__ = [
    "RFParams",
    "AdRFParams",
    "RFState",
    "RFIzState",
    "AdRFState",
    "AdRFIzState",
    "RFTraces",
    "AdRFTraces",
    "SURROGATE_MULTIPLIERS",
    "resonator",
    "rf_step",
    "rf_multistep",
    "rf_iz_step",
    "rf_iz_multistep",
    "adrf_step",
    "adrf_multistep",
    "adrf_iz_step",
    "adrf_iz_multistep",
    "initial_state",
]

Number = Union[float, int]

#: (tau multiplier, scale multiplier) applied to (tau_grad * θ, scale_grad), SPEC 2.1
SURROGATE_MULTIPLIERS = RESONATOR_SURROGATE_MULTIPLIERS

_FAMILY = {"rf": "loihi_rf", "rf_iz": "loihi_rf_iz", "adrf": "loihi_adrf", "adrf_iz": "loihi_adrf_iz"}


@checked_record(sin_decay=number_field(), cos_decay=number_field(), threshold=number_field(), tau_grad=number_field(), scale_grad=number_field(), graded_spike=bool_field,
                s_scale=int_field(), decay_grad=choice_field("exact", "lava"))
class RFParams(NamedTuple):
    """Parameters of RF and RF-Iz.

    - ``sin_decay``, ``cos_decay``: ``4096 (1 - decay) sin/cos(2π/period)`` (0..4096), numbers
      or tensors (per channel); rounded half to even in forward, straight-through gradient.
    - ``threshold``: quantised threshold θ_q in state units (a positive number).
    - ``tau_grad``, ``scale_grad``: user surrogate width/height (multiplied per model, SPEC 2.1).
    - ``graded_spike``: emit the state value (re for RF, im for RF-Iz) instead of 1.
    - ``s_scale``: state scale (4096 = 64 * 64 for lava's default ``scale``).
    - ``decay_grad``: ``"exact"`` or ``"lava"`` (see the module docstring).

    >>> RFParams(2607.0, 2607.0, threshold=0.5).s_scale
    4096
    """

    sin_decay: Union[Number, Tensor]
    cos_decay: Union[Number, Tensor]
    threshold: Number = 1.0
    tau_grad: Number = 1.0
    scale_grad: Number = 1.0
    graded_spike: bool = False
    s_scale: int = 4096
    decay_grad: str = "exact"


@checked_record(sin_decay=number_field(), cos_decay=number_field(), threshold_decay=number_field(),
                refractory_decay=number_field(), threshold_step=number_field(), threshold=number_field(), tau_grad=number_field(), scale_grad=number_field(), graded_spike=bool_field,
                s_scale=int_field(), decay_grad=choice_field("exact", "lava"))
class AdRFParams(NamedTuple):
    """Parameters of AdRF and AdRF-Iz: RF's plus the adaptive threshold.

    - ``threshold``: resting threshold θ0_q; ``threshold_step``: θ increase per spike (θ_step_q).
    - ``threshold_decay``, ``refractory_decay``: ``4096 * fraction`` (0..4096), rounded in
      forward; they get no gradient (SPEC 3.4).

    >>> AdRFParams(4095.0, 0.0, 2048.0, 2048.0, threshold=0.5, threshold_step=0.25).decay_grad
    'exact'
    """

    sin_decay: Union[Number, Tensor]
    cos_decay: Union[Number, Tensor]
    threshold_decay: Union[Number, Tensor]
    refractory_decay: Union[Number, Tensor]
    threshold: Number = 1.0
    threshold_step: Number = 0.0
    tau_grad: Number = 1.0
    scale_grad: Number = 1.0
    graded_spike: bool = False
    s_scale: int = 4096
    decay_grad: str = "exact"


@checked_record(real=tensor_field(floating=True), imag=tensor_field(floating=True))
class RFState(NamedTuple):
    """RF state after a step, each ``(B, *features)``: real and imaginary parts."""

    real: Tensor
    imag: Tensor


@checked_record(real=tensor_field(floating=True), imag=tensor_field(floating=True))
class RFIzState(NamedTuple):
    """RF-Iz state after a step (after the Izhikevich reset), each ``(B, *features)``."""

    real: Tensor
    imag: Tensor


@checked_record(real=tensor_field(floating=True), imag=tensor_field(floating=True), threshold=tensor_field(floating=True), refractory=tensor_field(floating=True))
class AdRFState(NamedTuple):
    """AdRF state after a step: real, imag, threshold and refractory (after the spike update)."""

    real: Tensor
    imag: Tensor
    threshold: Tensor
    refractory: Tensor


@checked_record(real=tensor_field(floating=True), imag=tensor_field(floating=True), threshold=tensor_field(floating=True), refractory=tensor_field(floating=True))
class AdRFIzState(NamedTuple):
    """AdRF-Iz state after a step: real, imag, threshold and refractory (after the spike update)."""

    real: Tensor
    imag: Tensor
    threshold: Tensor
    refractory: Tensor


@checked_record(real=tensor_field(floating=True), imag=tensor_field(floating=True))
class RFTraces(NamedTuple):
    """Recorded sequences ``(T, B, *features)``: pre-reset real and imaginary parts."""

    real: Tensor
    imag: Tensor


@checked_record(real=tensor_field(floating=True), imag=tensor_field(floating=True), threshold=tensor_field(floating=True), refractory=tensor_field(floating=True))
class AdRFTraces(NamedTuple):
    """Recorded sequences ``(T, B, *features)``: real, imag, and the pre-spike θ[t], r[t]."""

    real: Tensor
    imag: Tensor
    threshold: Tensor
    refractory: Tensor


_STATES = {"rf": RFState, "rf_iz": RFIzState, "adrf": AdRFState, "adrf_iz": AdRFIzState}


# --------------------------------------------------------------------------- helpers



def _param_tensor(name, p, like: Tensor) -> Tensor:
    """Decay ``p`` as a tensor broadcasting against one step of ``like`` (T, B, ...): a number,
    a one-element tensor, a 1-D per-channel tensor (first feature dim) or a tensor that
    broadcasts against the feature shape (see :func:`spikefuse.fixed_point.decay_view`)."""
    return decay_view(name, p, like).to(like.dtype)



class _Cfg:
    """Static configuration of one resonator call (not a tensor, so autograd ignores it)."""

    __slots__ = ("s_scale", "iz_threshold", "adaptive", "complex_cond", "lava", "include_initial")

    def __init__(self, s_scale, iz_threshold=None, adaptive=None, complex_cond=False, lava=False,
                 include_initial=False):
        self.s_scale = int(s_scale)
        self.iz_threshold = iz_threshold  # float θ (state units) or None
        self.adaptive = adaptive  # (th0_int, step_int) or None
        self.complex_cond = complex_cond  # AdRF phase condition (else AdRF-Iz: im >= θ + r)
        self.lava = lava
        self.include_initial = include_initial


def _integer_loop(xr, xi, S, C, re0, im0, th0, r0, Dth, Dr, cfg: _Cfg):
    """The int64 forward loop; returns int64 sequences (re, im, th, r, reset_mask)."""
    s = cfg.s_scale
    Si = torch.round(S.detach()).to(torch.int64)
    Ci = torch.round(C.detach()).to(torch.int64)
    xr_i = trunc_int(xr.detach() * s)
    xi_i = trunc_int(xi.detach() * s)
    step_shape = xr.shape[1:]
    re = trunc_int(re0.detach() * s).expand(step_shape)
    im = trunc_int(im0.detach() * s).expand(step_shape)
    T = xr.shape[0]
    out_re = torch.empty(xr.shape, dtype=torch.int64, device=xr.device)
    out_im = torch.empty_like(out_re)
    reset = None
    if cfg.iz_threshold is not None:
        thr = float(cfg.iz_threshold) * s
        reset_im = int(thr - 1)  # lava: (threshold * s - 1) truncated by the int64 cast
        reset = torch.empty(xr.shape, dtype=torch.bool, device=xr.device)
    out_th = out_r = None
    if cfg.adaptive is not None:
        th0_i, step_i = cfg.adaptive
        th = trunc_int(th0.detach() * s).expand(step_shape)
        r = trunc_int(r0.detach() * s).expand(step_shape)
        keep_th = DECAY_ONE - torch.round(Dth.detach()).to(torch.int64)
        keep_r = DECAY_ONE - torch.round(Dr.detach()).to(torch.int64)
        out_th = torch.empty_like(out_re)
        out_r = torch.empty_like(out_re)
    for t in range(T):
        re_new = rstz(Ci * re, DECAY_BITS) - rstz(Si * im, DECAY_BITS) + xr_i[t]
        im_new = rstz(Si * re, DECAY_BITS) + rstz(Ci * im, DECAY_BITS) + xi_i[t]
        out_re[t] = re_new
        out_im[t] = im_new
        if cfg.adaptive is not None:
            r = rstz(r * keep_r, DECAY_BITS)
            th = rstz((th - th0_i) * keep_th, DECAY_BITS) + th0_i
            if cfg.complex_cond:
                spk = (re_new >= th + r) & (im_new >= 0) & (im < 0)
            else:
                spk = im_new >= th + r
            out_th[t] = th
            out_r[t] = r
            r = torch.where(spk, r + 2 * th, r)
            th = torch.where(spk, th + step_i, th)
            re, im = re_new, im_new
        elif reset is not None:
            spk = im_new >= thr
            reset[t] = spk
            re = torch.where(spk, torch.zeros_like(re_new), re_new)
            im = torch.where(spk, torch.full_like(im_new, reset_im), im_new)
        else:
            re, im = re_new, im_new
    final = None
    if cfg.adaptive is not None:
        final = (th, r)
    return out_re, out_im, out_th, out_r, reset, final


class _ResonatorFn(torch.autograd.Function):
    """RES forward (int64) with the float backward of SPEC 6.2.

    Inputs: xr, xi (T, B, ...), S, C (rounded decays), re0, im0, th0, r0 (initial state),
    Dth, Dr (adaptive decays) and a :class:`_Cfg`. Outputs: re, im, th, r (float sequences;
    th/r are empty for non-adaptive models and never differentiable) and the final θ, r.
    """

    @staticmethod
    def forward(ctx, xr, xi, S, C, re0, im0, th0, r0, Dth, Dr, cfg):
        s = cfg.s_scale
        dtype = xr.dtype
        out_re, out_im, out_th, out_r, reset, final = _integer_loop(
            xr, xi, S, C, re0, im0, th0, r0, Dth, Dr, cfg
        )
        re = out_re.to(dtype) / s
        im = out_im.to(dtype) / s
        if cfg.adaptive is not None:
            th = out_th.to(dtype) / s
            r = out_r.to(dtype) / s
            th_last = final[0].to(dtype) / s
            r_last = final[1].to(dtype) / s
        else:
            th, r = xr.new_empty(0), xr.new_empty(0)
            th_last, r_last = xr.new_empty(0), xr.new_empty(0)
        ctx.cfg = cfg
        ctx.reset = reset
        ctx.save_for_backward(re, im, S, C, re0, im0)
        ctx.mark_non_differentiable(th, r, th_last, r_last)
        return re, im, th, r, th_last, r_last

    @staticmethod
    def backward(ctx, g_re, g_im, *_):
        re, im, S, C, re0, im0 = ctx.saved_tensors
        cfg = ctx.cfg
        dtype = g_re.dtype
        Cf = C.detach().to(dtype) / DECAY_ONE
        Sf = S.detach().to(dtype) / DECAY_ONE
        need_decay = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
        T = g_re.shape[0]
        g_xr = torch.empty_like(g_re)
        g_xi = torch.empty_like(g_im)
        a = torch.zeros_like(g_re[0])
        b = torch.zeros_like(g_im[0])
        dS = torch.zeros_like(g_re[0]) if need_decay else None
        dC = torch.zeros_like(g_re[0]) if need_decay else None
        s = cfg.s_scale
        if cfg.iz_threshold is not None and not cfg.lava:
            reset_im = float(int(float(cfg.iz_threshold) * s - 1)) / s
        for t in range(T - 1, -1, -1):
            a, b = g_re[t] + Cf * a + Sf * b, g_im[t] - Sf * a + Cf * b
            g_xr[t] = a
            g_xi[t] = b
            if need_decay:
                if t >= 1:
                    p_re, p_im = re[t - 1], im[t - 1]
                    if ctx.reset is not None and not cfg.lava:
                        m = ctx.reset[t - 1]
                        p_re = torch.where(m, torch.zeros_like(p_re), p_re)
                        p_im = torch.where(m, torch.full_like(p_im, reset_im), p_im)
                elif cfg.include_initial or not cfg.lava:
                    p_re, p_im = re0.detach().to(dtype), im0.detach().to(dtype)
                else:
                    continue
                dS = dS + (-a * p_im + b * p_re)
                dC = dC + (a * p_re + b * p_im)
        g_re0 = Cf * a + Sf * b
        g_im0 = -Sf * a + Cf * b
        gS = gC = None
        if need_decay:
            k = 1.0 if cfg.lava else 1.0 / DECAY_ONE
            gS = sum_to(dS * k, S, cast=True) if ctx.needs_input_grad[2] else None
            gC = sum_to(dC * k, C, cast=True) if ctx.needs_input_grad[3] else None
        g0r = sum_to(g_re0, re0, cast=True) if ctx.needs_input_grad[4] else None
        g0i = sum_to(g_im0, im0, cast=True) if ctx.needs_input_grad[5] else None
        return g_xr, g_xi, gS, gC, g0r, g0i, None, None, None, None, None


# --------------------------------------------------------------------------- validation


def _check_pair(name: str, x, min_ndim: int, finite: bool = True):
    if isinstance(x, Tensor):
        raise TypeError(
            f"{name}: expected a pair (real, imag) of tensors for a complex (resonator) neuron, "
            f"got a single {_describe(x)}; pass (x, torch.zeros_like(x)) for a real-only input"
        )
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise TypeError(f"{name}: expected a pair (real, imag) of tensors, got {_describe(x)}")
    xr, xi = x
    check_tensor(f"{name}[0] (real)", xr, min_ndim=min_ndim, finite=finite)
    check_tensor(f"{name}[1] (imag)", xi, min_ndim=min_ndim, finite=finite)
    if xr.shape != xi.shape:
        raise ValueError(
            f"{name}: real and imaginary parts must have the same shape, got {tuple(xr.shape)} "
            f"and {tuple(xi.shape)}"
        )
    if xr.device != xi.device:
        raise ValueError(f"{name}: real and imaginary parts must be on the same device, got {xr.device} and {xi.device}")
    if min_ndim >= 2 and xr.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one time step (T >= 1), got shape {tuple(xr.shape)}")
    return xr, xi


def _validate_params(model: str, params, step_shape, device) -> None:
    adaptive = model in ("adrf", "adrf_iz")
    cls = AdRFParams if adaptive else RFParams
    if not isinstance(params, cls):
        raise TypeError(f"params: expected a {cls.__name__}, got {_describe(params)}")
    names = ["sin_decay", "cos_decay"] + (["threshold_decay", "refractory_decay"] if adaptive else [])
    for n in names:
        p = getattr(params, n)
        check_number(f"params.{n}", p, ge=0)
        check_number(f"params.{n}", p, le=DECAY_ONE)
        if isinstance(p, Tensor) and p.device != device:
            raise ValueError(f"params.{n}: expected a tensor on {device} (the input's device), got one on {p.device}")
        decay_view(f"params.{n}", p, torch.empty((), device=device).expand((1,) + tuple(step_shape)))
    for n in ("threshold", "tau_grad", "scale_grad"):
        p = getattr(params, n)
        if isinstance(p, Tensor) and p.numel() != 1:
            raise ValueError(f"params.{n}: expected a number, got a tensor of shape {tuple(p.shape)}")
        check_number(f"params.{n}", p, gt=0)
    if adaptive:
        p = params.threshold_step
        if isinstance(p, Tensor) and p.numel() != 1:
            raise ValueError(f"params.threshold_step: expected a number, got a tensor of shape {tuple(p.shape)}")
        check_number("params.threshold_step", p, ge=0)
    check_bool("params.graded_spike", params.graded_spike)
    if isinstance(params.s_scale, bool) or not isinstance(params.s_scale, int):
        raise TypeError(f"params.s_scale: expected an int, got {_describe(params.s_scale)}")
    check_number("params.s_scale", params.s_scale, ge=1)
    check_choice("params.decay_grad", params.decay_grad, ("exact", "lava"))


def _validate_state(model: str, state, step_shape, device, dtype):
    cls = _STATES[model]
    n = len(cls._fields)
    if not isinstance(state, tuple) or len(state) != n:
        raise TypeError(f"state: expected a {cls.__name__}({', '.join(cls._fields)}) or None, got {_describe(state)}")
    out = []
    for name, v in zip(cls._fields, state):
        check_tensor(f"state.{name}", v)
        check_broadcastable(f"state.{name}", v, step_shape)
        if v.device != device:
            raise ValueError(f"state.{name}: expected a tensor on {device} (the input's device), got {v.device}")
        out.append(v.to(dtype))
    return cls(*out)


def initial_state(model: str, shape, params, dtype=torch.float32, device=None):
    """The zero state (θ = θ0 for the adaptive models) of step shape ``shape``.

    ``model`` is ``"rf"``, ``"rf_iz"``, ``"adrf"`` or ``"adrf_iz"``.

    >>> st = initial_state("adrf", (1, 2), AdRFParams(4095., 0., 0., 0., threshold=0.5))
    >>> st.threshold.tolist()
    [[0.5, 0.5]]
    """
    check_choice("model", model, tuple(_STATES))
    z = torch.zeros(tuple(shape), dtype=dtype, device=device)
    if model in ("adrf", "adrf_iz"):
        return _STATES[model](z, z.clone(), torch.full_like(z, float(params.threshold)), z.clone())
    return _STATES[model](z, z.clone())


# --------------------------------------------------------------------------- core


def _core(model: str, xr: Tensor, xi: Tensor, params, state, include_initial: bool, want_traces: bool):
    """Trusted core on time-first (T, B, ...) inputs in the compute dtype."""
    cdt = xr.dtype
    s = int(params.s_scale)
    S = round_ste(_param_tensor("params.sin_decay", params.sin_decay, xr))
    C = round_ste(_param_tensor("params.cos_decay", params.cos_decay, xr))
    theta = float(params.threshold)
    adaptive = model in ("adrf", "adrf_iz")
    tau_m, scale_m = SURROGATE_MULTIPLIERS[model]
    tau_rho = tau_m * float(params.tau_grad) * theta
    scale_rho = scale_m * float(params.scale_grad)
    graded = params.graded_spike
    lava = params.decay_grad == "lava"
    re0, im0 = state.real, state.imag
    if adaptive:
        th0, r0 = state.threshold, state.refractory
        Dth = _param_tensor("params.threshold_decay", params.threshold_decay, xr)
        Dr = _param_tensor("params.refractory_decay", params.refractory_decay, xr)
        cfg = _Cfg(s, adaptive=(int(theta * s), int(float(params.threshold_step) * s)),
                   complex_cond=(model == "adrf"), lava=lava, include_initial=include_initial)
    else:
        th0, r0, Dth, Dr = (xr.new_empty(0) for _ in range(4))
        cfg = _Cfg(s, iz_threshold=theta if model == "rf_iz" else None, lava=lava,
                   include_initial=include_initial)
    re, im, th, r, th_last, r_last = _ResonatorFn.apply(xr, xi, S, C, re0, im0, th0, r0, Dth, Dr, cfg)
    imag_last = im0.detach()
    if model == "rf":
        spikes = complex_spike(re, im, theta, tau_rho, scale_rho, graded, imag_last)
        new_state = RFState(re[-1], im[-1])
    elif model == "rf_iz":
        spikes = real_spike(im, theta, tau_rho, scale_rho, graded)
        fired = (im[-1] >= theta).to(cdt)
        reset_im = float(int(theta * s - 1)) / s
        # Izhikevich reset, straight-through (the reset carries no gradient, SPEC 6.2)
        real_last = re[-1] - (re[-1] * fired).detach()
        imag_last_new = im[-1] + ((reset_im - im[-1]) * fired).detach()
        new_state = RFIzState(real_last, imag_last_new)
    elif model == "adrf":
        spikes = complex_spike(re, im, th + r, tau_rho, scale_rho, graded, imag_last)
        new_state = AdRFState(re[-1], im[-1], th_last, r_last)
    else:
        spikes = real_spike(im, th + r, tau_rho, scale_rho, graded)
        new_state = AdRFIzState(re[-1], im[-1], th_last, r_last)
    traces = None
    if want_traces:
        traces = AdRFTraces(re, im, th, r) if adaptive else RFTraces(re, im)
    return spikes, new_state, traces


def _step(model: str, x, state, params):
    xr, xi = _check_pair("x", x, min_ndim=1)
    step_shape = tuple(xr.shape)
    _validate_params(model, params, step_shape, xr.device)
    cdt = compute_dtype(xr.dtype)
    if state is None:
        st = initial_state(model, step_shape, params, dtype=cdt, device=xr.device)
    else:
        st = _validate_state(model, state, step_shape, xr.device, cdt)
    spikes, new_state, _ = _core(model, xr.to(cdt)[None], xi.to(cdt)[None], params, st,
                                 include_initial=True, want_traces=False)
    return spikes[0].to(xr.dtype), new_state


def _multistep(model: str, x_seq, params, state, backend, return_traces):
    check_not_transformed(f"{model}_multistep")
    xr, xi = _check_pair("x_seq", x_seq, min_ndim=2, finite=False)   # the values: values_check
    step_shape = tuple(xr.shape[1:])
    _validate_params(model, params, step_shape, xr.device)
    check_bool("return_traces", return_traces)
    cdt = compute_dtype(xr.dtype)
    if state is None:
        st = initial_state(model, step_shape, params, dtype=cdt, device=xr.device)
    else:
        st = _validate_state(model, state, step_shape, xr.device, cdt)
    out = _dispatch.fused(_FAMILY[model], backend, (xr, xi), params, tuple(st), return_traces,
                          _STATES[model], AdRFTraces if model in ("adrf", "adrf_iz") else RFTraces,
                          options=dict(params=params, state=st, return_traces=return_traces), x_resolve=xr,
                          values_check=lambda: _check_pair("x_seq", x_seq, min_ndim=2))
    if out is not None:
        return _dispatch.result(out, return_traces)
    spikes, new_state, traces = _core(model, xr.to(cdt), xi.to(cdt), params, st,
                                      include_initial=False, want_traces=return_traces)
    spikes = spikes.to(xr.dtype)
    if return_traces:
        return spikes, new_state, traces
    return spikes, new_state


# --------------------------------------------------------------------------- public API


def resonator(
    x_seq,
    sin_decay,
    cos_decay,
    state=None,
    threshold: Optional[Number] = None,
    s_scale: int = 4096,
    decay_grad: str = "exact",
):
    """The integer resonator RES of SPEC 6.2 as a differentiable function.

    ``x_seq`` is a pair ``(real, imag)`` of ``(T, B, *features)`` tensors; ``state`` a pair of
    initial ``(real, imag)`` (default zeros). ``threshold`` enables the Izhikevich reset (RF-Iz).
    Returns the recorded (pre-reset) ``(real, imag)`` sequences in the compute dtype.
    Gradients flow to the inputs, the decays (``decay_grad`` rule) and the initial state.

    >>> import torch
    >>> x = torch.zeros(4, 1, 1); x[0] = 1.0
    >>> re, im = resonator((x, torch.zeros_like(x)), 4095.0, 0.0)
    >>> (im.flatten() * 4096).tolist()
    [0.0, 4095.0, 0.0, -4093.0]
    """
    xr, xi = _check_pair("x_seq", x_seq, min_ndim=2)
    step_shape = tuple(xr.shape[1:])
    cdt = compute_dtype(xr.dtype)
    for n, p in (("sin_decay", sin_decay), ("cos_decay", cos_decay)):
        check_number(n, p, ge=0)
        check_number(n, p, le=DECAY_ONE)
    if threshold is not None:
        check_number("threshold", threshold, gt=0)
    if isinstance(s_scale, bool) or not isinstance(s_scale, int):
        raise TypeError(f"s_scale: expected an int, got {_describe(s_scale)}")
    check_number("s_scale", s_scale, ge=1)
    check_choice("decay_grad", decay_grad, ("exact", "lava"))
    if state is None:
        re0 = torch.zeros(step_shape, dtype=cdt, device=xr.device)
        im0 = torch.zeros_like(re0)
    else:
        re0, im0 = _check_pair("state", state, min_ndim=0)
        check_broadcastable("state[0]", re0, step_shape)
        check_broadcastable("state[1]", im0, step_shape)
        re0, im0 = re0.to(cdt), im0.to(cdt)
    S = round_ste(_param_tensor("sin_decay", sin_decay, xr.to(cdt)))
    C = round_ste(_param_tensor("cos_decay", cos_decay, xr.to(cdt)))
    cfg = _Cfg(s_scale, iz_threshold=threshold, lava=(decay_grad == "lava"))
    e = [xr.new_empty(0, dtype=cdt) for _ in range(4)]
    re, im, *_ = _ResonatorFn.apply(xr.to(cdt), xi.to(cdt), S, C, re0, im0, *e, cfg)
    return re, im


def rf_step(x, state: Optional[RFState], params: RFParams):
    """One RF step (SPEC 6): ``x = (real, imag)`` each ``(B, *features)``.

    Returns ``(spikes, RFState)``; the phase spike uses ``state.imag`` as the previous
    imaginary part, so no spike is possible on the very first step from a zero state.

    >>> import torch
    >>> p = RFParams(4095.0, 0.0, threshold=0.5)
    >>> s, st = rf_step((torch.ones(1, 1), torch.zeros(1, 1)), None, p)
    >>> s.item(), st.real.item() * 4096
    (0.0, 4096.0)
    """
    return _step("rf", x, state, params)


def rf_multistep(x_seq, params: RFParams, state: Optional[RFState] = None, backend: Optional[str] = None,
                 return_traces: bool = False):
    """RF over a time-first pair ``(real, imag)`` of ``(T, B, *features)`` sequences.

    Returns ``(spikes, RFState)`` or, with ``return_traces``, ``(spikes, RFState, RFTraces)``.
    Equals looping :func:`rf_step`. See the module docstring for an example (SPEC 17 L3).
    """
    return _multistep("rf", x_seq, params, state, backend, return_traces)


def rf_iz_step(x, state: Optional[RFIzState], params: RFParams):
    """One RF-Iz step (SPEC 7): real spike ``im >= θ`` then the Izhikevich reset
    (next state ``re = 0``, ``im = θ - 1/s_scale``).

    >>> import torch
    >>> p = RFParams(4095.0, 0.0, threshold=0.5)
    >>> s, st = rf_iz_step((torch.zeros(1, 1), torch.full((1, 1), 0.6)), None, p)
    >>> s.item(), st.imag.item() * 4096
    (1.0, 2047.0)
    """
    return _step("rf_iz", x, state, params)


def rf_iz_multistep(x_seq, params: RFParams, state: Optional[RFIzState] = None,
                    backend: Optional[str] = None, return_traces: bool = False):
    """RF-Iz over a time-first pair of sequences; ``(spikes, RFIzState[, RFTraces])``.

    >>> import torch
    >>> xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> s, st = rf_iz_multistep((xr, xi), RFParams(4095.0, 0.0, threshold=0.5), backend="reference")
    >>> s.flatten().tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    return _multistep("rf_iz", x_seq, params, state, backend, return_traces)


def adrf_step(x, state: Optional[AdRFState], params: AdRFParams):
    """One AdRF step (SPEC 8): phase spike with the adaptive threshold ``θ + r``.

    >>> import torch
    >>> p = AdRFParams(4095.0, 0.0, 2048.0, 2048.0, threshold=0.5, threshold_step=0.25)
    >>> s, st = adrf_step((torch.ones(1, 1), torch.zeros(1, 1)), None, p)
    >>> s.item(), st.threshold.item()
    (0.0, 0.5)
    """
    return _step("adrf", x, state, params)


def adrf_multistep(x_seq, params: AdRFParams, state: Optional[AdRFState] = None,
                   backend: Optional[str] = None, return_traces: bool = False):
    """AdRF over a time-first pair of sequences; ``(spikes, AdRFState[, AdRFTraces])``.

    >>> import torch
    >>> xr = torch.zeros(9, 1, 1); xr[0] = 1.0
    >>> p = AdRFParams(4095.0, 0.0, 2048.0, 2048.0, threshold=0.5, threshold_step=0.25)
    >>> s, st = adrf_multistep((xr, torch.zeros_like(xr)), p, backend="reference")
    >>> s.flatten().nonzero().flatten().tolist()
    [4, 8]
    """
    return _multistep("adrf", x_seq, params, state, backend, return_traces)


def adrf_iz_step(x, state: Optional[AdRFIzState], params: AdRFParams):
    """One AdRF-Iz step (SPEC 9): real spike ``im >= θ + r``; re/im are never reset.

    >>> import torch
    >>> p = AdRFParams(4095.0, 0.0, 2048.0, 2048.0, threshold=0.5, threshold_step=0.25)
    >>> s, st = adrf_iz_step((torch.zeros(1, 1), torch.full((1, 1), 0.6)), None, p)
    >>> s.item(), st.threshold.item(), st.refractory.item()
    (1.0, 0.75, 1.0)
    """
    return _step("adrf_iz", x, state, params)


def adrf_iz_multistep(x_seq, params: AdRFParams, state: Optional[AdRFIzState] = None,
                      backend: Optional[str] = None, return_traces: bool = False):
    """AdRF-Iz over a time-first pair of sequences; ``(spikes, AdRFIzState[, AdRFTraces])``.

    >>> import torch
    >>> xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> p = AdRFParams(4095.0, 0.0, 2048.0, 2048.0, threshold=0.5, threshold_step=0.25)
    >>> s, st = adrf_iz_multistep((xr, xi), p, backend="reference")
    >>> s.flatten().tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    return _multistep("adrf_iz", x_seq, params, state, backend, return_traces)
