"""sinabs' ``LIF`` / ``IAF`` layers (``sinabs.layers``, 3.x semantics), step for step: multi-spike
outputs (integer spike counts), subtractive or membrane reset, optional synaptic current.

One step, in sinabs' operation order (``lif_forward_single``), with ``v`` = ``v_mem``::

    i_syn' = alpha_syn * (i_syn + x)            with a synapse (tau_syn given), else i_syn' = x
    v      = alpha_mem * v + (1 - alpha_mem) * i_syn'     norm_input=True (LIF default)
    v      = alpha_mem * v + i_syn'                        norm_input=False (IAF: alpha_mem = 1)
    S      = spike_fn(v)      "multi":  (v > 0) * trunc(v / spike_threshold)   (sinabs MultiSpike:
                                        the integer count floor(v / threshold), 0 below zero)
                              "single": 1[v - spike_threshold >= 0]            (SingleSpike)
                              "max":    the multi count clamped at max_num_spikes_per_bin
    reset  "subtract": v = v - S * subtract_value   (subtract_value None: spike_threshold;
                                                     S carries its surrogate gradient)
           "reset":    v = v * 1[S == 0] + reset_value
    clamp  min_v_mem:  v = relu(v - min_v_mem) + min_v_mem

``v_mem`` as sinabs records it (``record_states``) is the membrane *after* the reset and the
clamp. Note the membrane reset as sinabs writes it: ``reset_value`` is added to *every* neuron,
spiking or not (``MembraneReset.__call__``; with the default ``reset_value=0`` it does not show);
a peer-side bug, kept here so that the numbers agree.

The backward of the spike is ``grad * surrogate'(v - spike_threshold)`` (sinabs calls
``surrogate_grad_fn(v_mem, spike_threshold)``; no gradient reaches the threshold through the
spike). ``surrogate=None`` is sinabs' default ``SingleExponential(grad_width=0.5,
grad_scale=1.0)``: ``grad_scale / w * exp(-|v - thr| / w)`` with ``w = thr * grad_width``, which
is :class:`spikefuse.surrogate.SLAYERExp` with ``tau_rho = w`` and ``scale_rho = 2 grad_scale``
(:func:`single_exponential`); sinabs' ``PeriodicExponential``, ``Gaussian`` and ``Heaviside``
are :class:`PeriodicExponential`, :class:`Gaussian` and :class:`Heaviside` here (functions of
the membrane, built with the threshold they are used at). The state starts at zero. Fused kernels (``backend="cpu"``: numba,
``"triton"``; ``"auto"`` picks one, kernels/_sinabs_host.py) give the same spikes and states bit
for bit; they refuse (``"auto"``: the reference loop runs) surrogates without an in-kernel formula
and a threshold / subtract_value / reset_value / min_v_mem that requires grad. Time is first here,
``(T, B, *features)``; sinabs layers take ``(B, T, *features)``.

    >>> import torch
    >>> x = torch.tensor([2.5, 0.0, 0.7]).reshape(3, 1, 1)
    >>> s, st, tr = sinabs_multistep(x, SinabsParams(alpha_mem=1.0, norm_input=False), return_traces=True)
    >>> s.flatten().tolist(), [round(v, 4) for v in tr.v_mem.flatten().tolist()]
    ([2.0, 0.0, 1.0], [0.5, 0.5, 0.2])
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._core import compute_dtype
from .._validate import _describe, check_bool, check_choice, check_number, check_scalar, check_tensor
from .._validate import bool_field, callable_field, checked_record, choice_field, number_field, tensor_field
from ..surrogate import SLAYERExp, Surrogate
from ._peers import begin, cast, check_param, check_state_tensor, check_surrogate, finish, fused, run_loop

__all__ = ["SPIKE_FNS", "RESET_FNS", "SinabsParams", "SinabsState", "SinabsTraces", "sinabs_step",
           "sinabs_multistep", "single_exponential", "PeriodicExponential", "Gaussian", "Heaviside"]

Number = Union[float, int]
#: the key of the fused scans (kernels/triton/sinabs.py, kernels/cpu/sinabs.py)
_KERNEL = "sinabs_lif"
#: sinabs' spike functions (MultiSpike, SingleSpike, MaxSpike) and reset functions
#: (MembraneSubtract, MembraneReset)
SPIKE_FNS = ("multi", "single", "max")
RESET_FNS = ("subtract", "reset")


@checked_record(alpha_mem=number_field(), alpha_syn=number_field(optional=True), spike_threshold=number_field(),
                spike_fn=choice_field(*SPIKE_FNS), reset_fn=choice_field(*RESET_FNS),
                subtract_value=number_field(optional=True), reset_value=number_field(),
                min_v_mem=number_field(optional=True), norm_input=bool_field, surrogate=callable_field)
class SinabsParams(NamedTuple):
    """sinabs ``LIF`` / ``IAF``: ``alpha_mem`` (``exp(-1/tau_mem)``; 1 for IAF), ``alpha_syn``
    (``exp(-1/tau_syn)`` or None: no synapse), ``spike_threshold``, ``spike_fn``,
    ``max_num_spikes_per_bin`` (``"max"``), ``reset_fn``, ``subtract_value`` (None:
    the threshold), ``reset_value``, ``min_v_mem`` (None: no clamp), ``norm_input``,
    ``surrogate`` (None: sinabs' ``SingleExponential()``)."""

    alpha_mem: Union[Number, Tensor]
    alpha_syn: Optional[Union[Number, Tensor]] = None
    spike_threshold: Union[Number, Tensor] = 1.0
    spike_fn: str = "multi"
    max_num_spikes_per_bin: Optional[int] = None
    reset_fn: str = "subtract"
    subtract_value: Optional[Union[Number, Tensor]] = None
    reset_value: Union[Number, Tensor] = 0.0
    min_v_mem: Optional[Union[Number, Tensor]] = None
    norm_input: bool = True
    surrogate: Optional[Surrogate] = None


@checked_record(v_mem=tensor_field(floating=True), i_syn=tensor_field(floating=True, optional=True))
class SinabsState(NamedTuple):
    """``v_mem`` (after the reset) and ``i_syn`` (None without a synapse), ``(B, *features)``."""

    v_mem: Tensor
    i_syn: Optional[Tensor] = None


@checked_record(v_mem=tensor_field(floating=True), i_syn=tensor_field(floating=True, optional=True))
class SinabsTraces(NamedTuple):
    """``v_mem`` and ``i_syn`` of every step (sinabs' ``recordings``), ``(T, B, *features)``;
    ``i_syn`` is None without a synapse."""

    v_mem: Tensor
    i_syn: Optional[Tensor] = None


def single_exponential(spike_threshold: float = 1.0, grad_width: float = 0.5, grad_scale: float = 1.0) -> SLAYERExp:
    """sinabs' ``SingleExponential(grad_width, grad_scale)`` at ``spike_threshold`` as a spikefuse
    surrogate of ``v - spike_threshold``.

    >>> single_exponential(1.0)
    SLAYERExp(tau_rho=0.5, scale_rho=2.0)
    """
    spike_threshold = check_scalar("spike_threshold", spike_threshold, gt=0)
    grad_width = check_scalar("grad_width", grad_width, gt=0)
    grad_scale = check_scalar("grad_scale", grad_scale, gt=0)
    width = float(spike_threshold) * grad_width
    return SLAYERExp(tau_rho=width, scale_rho=2.0 * grad_scale)


class _OfMembrane(Surrogate):
    """A sinabs surrogate: a function of the membrane and the threshold (``grad_of_v(v, thr)``,
    what sinabs' ``surrogate_grad_fn(v_mem, spike_threshold)`` computes, called with the saved
    membrane by the spike function); ``grad(x)`` is the same at ``v = x + spike_threshold``."""

    spike_threshold: float
    #: field -> bounds of its check (fields not listed must be > 0)
    _BOUNDS = {"mu": {}, "window": {"ge": 0}}

    def __post_init__(self):
        for f in fields(self):
            check_number(f.name, getattr(self, f.name), **self._BOUNDS.get(f.name, {"gt": 0}))

    def grad(self, x):
        return self.grad_of_v(x + self.spike_threshold, self.spike_threshold)


@dataclass(frozen=True)
class PeriodicExponential(_OfMembrane):
    """sinabs' ``PeriodicExponential(grad_width, grad_scale)`` (Weidel and Sheik 2021), for
    multi-spike outputs: ``d = v - thr`` below the threshold, above it the saw tooth
    ``d = thr (2 frac(v/thr - 1/2) - 1)`` (twice the signed distance to the nearest multiple of
    ``thr``, 0 at every multiple), then ``grad_scale * exp(-|d| / grad_width)``."""

    spike_threshold: float = 1.0
    grad_width: float = 0.5
    grad_scale: float = 1.0
    name = "sinabs_periodic_exponential"

    def grad_of_v(self, v, thr):
        vn = v / thr - 0.5
        periodic = thr * (2 * (vn - torch.floor(vn)) - 1)
        new = periodic * (v >= thr) + (v - thr) * (v < thr)
        return self.grad_scale * torch.exp(-torch.abs(new) / self.grad_width)


@dataclass(frozen=True)
class Gaussian(_OfMembrane):
    """sinabs' ``Gaussian(mu, sigma, grad_scale)``: the normal density of ``v - thr``."""

    spike_threshold: float = 1.0
    mu: float = 0.0
    sigma: float = 0.5
    grad_scale: float = 1.0
    name = "sinabs_gaussian"

    def grad_of_v(self, v, thr):
        x = v - thr
        dens = torch.exp(-((x - self.mu) ** 2) / (2 * self.sigma ** 2)) / (
            self.sigma * torch.sqrt(2 * torch.tensor(math.pi)))
        return dens * self.grad_scale


@dataclass(frozen=True)
class Heaviside(_OfMembrane):
    """sinabs' ``Heaviside(window)``: ``1[v >= thr - window] / thr``."""

    spike_threshold: float = 1.0
    window: float = 1.0
    name = "sinabs_heaviside"

    def grad_of_v(self, v, thr):
        return (v >= (thr - self.window)).float() / thr


def check_max_spikes(name: str, m) -> None:
    """``max_num_spikes_per_bin``: None or an int >= 1."""
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise ValueError(f"{name}: expected None or an int >= 1, got {m!r}")


class _CountSpike(torch.autograd.Function):
    """sinabs' spike functions: forward the count (or single spike), backward the surrogate."""

    @staticmethod
    def forward(ctx, v, threshold, surrogate, mode, max_n):
        ctx.save_for_backward(v)
        ctx.threshold, ctx.surrogate = threshold, surrogate
        if mode == "single":
            return (v - threshold >= 0).to(v.dtype)
        s = (v > 0) * torch.div(v, threshold, rounding_mode="trunc")
        return s.clamp(max=max_n) if max_n is not None else s

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        sur = ctx.surrogate
        if isinstance(sur, _OfMembrane):   # sinabs' own: a function of the saved membrane
            return grad * sur.grad_of_v(v, ctx.threshold), None, None, None, None
        return sur.backward(grad, v - ctx.threshold), None, None, None, None


# --------------------------------------------------------------------------- checks


def _check_params(params, step_shape, device) -> None:
    if not isinstance(params, SinabsParams):
        raise TypeError(f"params: expected a SinabsParams, got {_describe(params)}")
    check_param("params.alpha_mem", params.alpha_mem, step_shape, device)
    check_param("params.alpha_syn", params.alpha_syn, step_shape, device, optional=True)
    check_param("params.spike_threshold", params.spike_threshold, step_shape, device, gt=0)
    for name in ("subtract_value", "reset_value", "min_v_mem"):
        check_param(f"params.{name}", getattr(params, name), step_shape, device, optional=True)
    check_choice("params.spike_fn", params.spike_fn, SPIKE_FNS)
    check_choice("params.reset_fn", params.reset_fn, RESET_FNS)
    check_max_spikes("params.max_num_spikes_per_bin", params.max_num_spikes_per_bin)
    check_bool("params.norm_input", params.norm_input)
    if params.surrogate is not None:
        check_surrogate("params.surrogate", params.surrogate)


def _surrogate(params) -> Surrogate:
    if params.surrogate is not None:
        return params.surrogate
    thr = params.spike_threshold
    if isinstance(thr, Tensor):
        if thr.numel() != 1:
            raise ValueError("params.surrogate: sinabs' default SingleExponential has a per-neuron width for a "
                             f"per-neuron threshold (shape {tuple(thr.shape)}); pass a surrogate explicitly")
        thr = float(thr.detach())
    return single_exponential(thr)


def _initial(state, shape, x, cdt, synapse: bool) -> tuple:
    if state is None:
        v = torch.zeros(tuple(shape), dtype=cdt, device=x.device)
        return (v, torch.zeros_like(v) if synapse else None)
    if not isinstance(state, tuple) or len(state) != 2:
        raise TypeError(f"state: expected a SinabsState(v_mem=..., i_syn=...) or None, got {_describe(state)}")
    v = check_state_tensor("state.v_mem", state[0], shape, x.device).to(cdt)
    if not synapse:
        return (v, None)
    if state[1] is None:
        raise ValueError("state.i_syn: expected a tensor (params.alpha_syn is set: the neuron has a synapse), got None")
    return (v, check_state_tensor("state.i_syn", state[1], shape, x.device).to(cdt))


# --------------------------------------------------------------------------- the step


def _reset(v, s, thr, p):
    if p.reset_fn == "subtract":
        return v - s * (p.subtract_value if p.subtract_value is not None else thr)
    return v * (s == 0).to(v.dtype) + p.reset_value


def _make_step(params, cdt):
    p = params._replace(**{n: cast(getattr(params, n), cdt) for n in
                           ("alpha_mem", "alpha_syn", "spike_threshold", "subtract_value", "reset_value",
                            "min_v_mem")})
    sur, thr = _surrogate(params), p.spike_threshold
    max_n = p.max_num_spikes_per_bin if p.spike_fn == "max" else None

    def step(x_t, state):
        v, i_syn = state
        i_syn = p.alpha_syn * (i_syn + x_t) if p.alpha_syn is not None else x_t
        v = p.alpha_mem * v + ((1 - p.alpha_mem) * i_syn if p.norm_input else i_syn)
        s = _CountSpike.apply(v, thr, sur, p.spike_fn, max_n)
        v = _reset(v, s, thr, p)
        if p.min_v_mem is not None:
            v = torch.relu(v - p.min_v_mem) + p.min_v_mem
        if p.alpha_syn is None:
            return s, (v, None), (v,)
        return s, (v, i_syn), (v, i_syn)

    return step


# --------------------------------------------------------------------------- public API


def sinabs_step(x: Tensor, state: Optional[SinabsState], params: SinabsParams):
    """One sinabs LIF/IAF step on ``x`` ``(B, *features)`` (``state=None``: zeros). Returns
    ``(spikes, SinabsState)``.

    >>> import torch
    >>> s, st = sinabs_step(torch.tensor([[3.2]]), None, SinabsParams(alpha_mem=1.0, norm_input=False))
    >>> s.item(), round(st.v_mem.item(), 4)
    (3.0, 0.2)
    """
    check_tensor("x", x, min_ndim=1)
    _check_params(params, tuple(x.shape), x.device)
    cdt = compute_dtype(x.dtype)
    init = _initial(state, x.shape, x, cdt, params.alpha_syn is not None)
    s, new, _ = _make_step(params, cdt)(x.to(cdt), init)
    return s.to(x.dtype), SinabsState(*new)


def sinabs_multistep(x_seq: Tensor, params: SinabsParams, state: Optional[SinabsState] = None,
                     backend: Optional[str] = None, return_traces: bool = False):
    """sinabs LIF/IAF over ``x_seq`` ``(T, B, *features)``: the numbers of looping
    :func:`sinabs_step`. Returns ``(spikes, SinabsState)`` or, with ``return_traces``,
    ``(spikes, SinabsState, SinabsTraces(v_mem, i_syn))``. ``backend``: None / ``"auto"`` /
    ``"reference"`` / ``"triton"`` / ``"cpu"`` (the fused scans: the same spikes and states)."""
    # a NaN/inf input reaches the final state unless the clamp at min_v_mem can take it out
    after = not isinstance(params, SinabsParams) or params.min_v_mem is None
    cdt = begin("sinabs_multistep", "sinabs.lif", x_seq, backend, return_traces, _KERNEL, after=after)
    step_shape = tuple(x_seq.shape[1:])
    _check_params(params, step_shape, x_seq.device)
    init = _initial(state, step_shape, x_seq, cdt, params.alpha_syn is not None)
    resolved = params._replace(surrogate=_surrogate(params))  # the kernels get sinabs' default explicitly
    out = fused(_KERNEL, backend, x_seq, resolved, init, return_traces, SinabsState, SinabsTraces)
    if out is None:
        spikes, last, traces = run_loop(_make_step(params, cdt), x_seq, cdt, init, return_traces)
        out = (spikes, SinabsState(*last), SinabsTraces(*traces)) if return_traces else \
            (spikes, SinabsState(*last))
    return finish(x_seq, out, return_traces) if after else out
