r"""norse's neurons (``norse.torch.functional``: ``lif``, ``lif_refrac``, ``lif_adex``), with
norse's exact step order, detachment and threshold.

**Feed-forward LIF** (norse ``lif_feed_forward_step``; family ``norse.lif``). With
``a_m = dt * tau_mem_inv`` and ``a_s = dt * tau_syn_inv``, one step::

    i_jump = i + x                                  # the input jumps into the current first
    v_dec  = v + a_m * ((v_leak - v) + i_jump)      # the voltage uses the current of this step
    i_new  = i_jump + (-a_s) * i_jump               # the current decays after use
    z      = threshold(v_dec - v_th, method, alpha) # forward 1[v_dec > v_th] (strict)
    v_new  = (1 - z) * v_dec + z * v_reset          # NOT detached: gradient flows through z

This is the same-step-current CUBA LIF of the NIR ``CubaLIF`` consensus (norse, SpikingJelly,
snnTorch), unlike the hxtorch CUBA of :mod:`spikefuse.functional.cuba`, whose voltage uses the
previous step's current.

**Recurrent LIF** (norse ``lif_step``; family ``norse.lif_recurrent``): the jump is
``i_jump = i + x @ input_weights.T + z_prev @ recurrent_weights.T`` (``z_prev`` the spikes of
the previous step, state field ``z``), and the reset uses ``z.detach()`` (norse detaches here
and not in the feed-forward step).

**norse's adjoint** (``lif_feed_forward_adjoint_step``, ``lif_adjoint_step``):
:func:`norse_lif_adjoint_multistep` and :func:`norse_lif_recurrent_adjoint_multistep` run the
same forward with norse's adjoint backward, which is a different gradient from
backpropagation through these steps (a continuous-time adjoint with spike jump terms; the
equations are in :func:`norse_lif_recurrent_adjoint_multistep`).

**Refractory LIF** (norse ``lif_refrac_feed_forward_step``; family ``norse.lif_refrac``): the
feed-forward step above, then with ``m = threshold(rho, method, alpha)`` (``1[rho > 0]``, with
the surrogate's gradient: the counter carries gradient)::

    v   = (1 - m) * v_new + m * v_prev              # refractory: the voltage is held, not reset
    z   = (1 - m) * z
    rho = (1 - z) * relu(rho - m) + z * rho_reset   # a spike loads the counter, else it counts down

so a spike at step ``t`` blocks steps ``t+1 .. t+rho_reset`` (``rho_reset = 5``: five steps).

Its adjoint (norse ``lif_refrac_feed_forward_adjoint_step``,
:func:`norse_lif_refrac_adjoint_multistep`): the same forward; one step back, with the incoming
``dz``, ``lambda_v``, ``lambda_i``, ``lambda_rho``, ``free = 1 - 1[rho_new > 0]`` (the counter
*after* the step, so also 0 at a spike's own step), ``end = 1[rho_prev == 1]`` and ``dv_-`` /
``dv_+`` as for the LIF adjoint (``tau_mem_inv * ((v_leak - v) + i_prev)`` with the membrane
before / after the step)::

    lambda_i  += dt * tau_syn_inv * (free * lambda_v - lambda_i)
    lambda_v  -= free * tau_mem_inv * dt * lambda_v
    lambda_v   = (1 - z) lambda_v + z lambda_rho / dv_- + z dz / dv_-      (NaN -> 0)
    lambda_rho = (1 - end) lambda_rho + end * lambda_v * dv_+
    dL/dx = lambda_i

norse's equations as written (the jump adds ``lambda_rho / dv_-`` where the LIF adjoint
multiplies ``lambda_v`` by ``dv_+ / dv_-``). norse's *recurrent* refractory adjoint
(``lif_refrac_adjoint_step``) fails in 1.1.0 (its backward reads ``p.tau_syn_inv`` of a
``LIFRefracParameters``, which has none); spikefuse has no recurrent refractory family.

**Adaptive exponential LIF** (norse ``lif_adex_feed_forward_step``; family ``norse.lif_adex``)::

    i_jump = i + x
    v_dec  = v + a_m * ((v_leak - v) + delta_T * exp((v - v_th) / delta_T) + i_jump - a)
    i_new  = i_jump + (-a_s) * i_jump
    a_dec  = a + dt * tau_ada_inv * (adaptation_current * (v - v_leak) - a)
    z      = threshold(v_dec - v_th, method, alpha)
    v_new  = (1 - z) * v_dec + z * v_reset          # not detached
    a_new  = a_dec + z * adaptation_spike

Thresholds (norse ``threshold``; ``method`` of the parameters): every method's forward is the
Heaviside step ``1[x > 0]`` (strict: exactly at threshold there is no spike); the backward is

==============  ====================================================  ==================
method          d z / d x                                             norse name
==============  ====================================================  ==================
``super``       ``1 / (alpha |x| + 1)^2``                             SuperSpike
``heaviside``   none (``z`` carries no gradient)                      heaviside
``triangle``    ``alpha * relu(1 - |x|)``                             Triangle
``tanh``        ``1 - tanh(alpha x)^2``                               HeaviTanh
``circ``        ``2 alpha (1/(2 sqrt(alpha^2 + x^2)) - x^2/(2 (alpha^2 + x^2)^1.5))``  HeaviCirc
``heavi_erfc``  ``2 exp(-(alpha x)^2) / sqrt(pi)``                    HeaviErfc
==============  ====================================================  ==================

``super`` is the equation of norse's current source (Zenke & Ganguli 2018, norse PR #403,
Aug 2024). The released norse 1.1.0 (PyPI, Mar 2024) ignores ``alpha`` in SuperSpike's
backward, i.e. uses ``1 / (|x| + 1)^2``: pass ``alpha=1`` to reproduce its gradients (its
spikes and traces do not depend on ``alpha``).

Parameters have norse's names and defaults (:class:`NorseLIFParams` is norse's
``LIFParameters``: ``tau_syn_inv = 200``, ``tau_mem_inv = 100`` (1/s), ``v_leak = 0``,
``v_th = 1``, ``v_reset = 0``, ``method = "super"``, ``alpha = 100``; ``dt = 1e-3`` s); values
are Python numbers or tensors broadcasting against one step ``(B, *features)`` without
enlarging it. They are cast to 0-d (or per-neuron) tensors of the compute dtype before the
step, as norse's modules do (``torch.as_tensor``), so that ``dt * tau_mem_inv`` is rounded as in
norse. Tensor parameters that require grad receive gradients.

Initial state (as norse's modules): ``v = v_leak``, ``i = 0`` (``z = 0``, ``rho = 0``, ``a = 0``).
State and traces are in the compute dtype (fp32; fp64 for fp64 input); spikes have the input's
dtype. ``return_traces=True`` also returns the state after every step, stacked (``(T, ...)`` per
field, the layout of norse's ``record_states=True``).

The feed-forward LIF, the refractory LIF and AdEx have fused kernels (``backend="triton"`` /
``"cpu"``; kernels/triton/peers.py, kernels/triton/norse.py, kernels/cpu/; ``"auto"`` runs them
where they cover the case: every method (the gradients of ``tanh`` / ``circ`` / ``heavi_erfc``
to ~1e-6: their transcendentals are libm's / libdevice's), ``alpha`` shared or per neuron,
fp16/bf16/fp32 input). LIF and the refractory LIF give the reference's spikes, states, traces and input /
state gradients bit for bit; AdEx's ``exp`` is the backend's (libm, libdevice) where the
reference's is torch's (SLEEF on CPU): an ulp apart on ~1 % of arguments, so its states agree
to ~1e-6 and its spikes are equal unless a membrane lands within those ulps of ``v_th``. The
recurrent LIF and the adjoints have none: ``backend`` ``None``, ``"auto"`` and ``"reference"``
run the plain-torch loop below (``"cpu"`` / ``"triton"`` raise a ``ValueError`` saying why,
through the boundary the peer families share, :func:`spikefuse.functional._peers.begin`). The
recurrent LIF does not fit the generic scan template the fused kernels are built on: that
template is elementwise per neuron over time, and the recurrent step multiplies the previous
step's spikes by ``recurrent_weights`` (a matmul coupling all neurons inside the time loop). The
adjoints are autograd functions per step of the reference loop (the kernels' backward is
backpropagation through the steps, a different gradient).

Example::

    >>> import torch
    >>> x = torch.zeros(4, 1, 1); x[0] = 5.0      # a_m = 0.1, a_s = 0.2 (the defaults)
    >>> z, s, tr = norse_lif_multistep(x, NorseLIFParams(), backend="reference", return_traces=True)
    >>> z.flatten().tolist()
    [0.0, 0.0, 1.0, 0.0]
    >>> [round(v, 4) for v in tr.v.flatten().tolist()], [round(i, 4) for i in tr.i.flatten().tolist()]
    ([0.5, 0.85, 0.0, 0.256], [4.0, 3.2, 2.56, 2.048])
"""
from __future__ import annotations

import math
from collections import namedtuple
from typing import Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._core import compute_dtype
from .._validate import _describe, check_broadcastable, check_choice, check_number, check_tensor
from .._validate import caller_is_outside, check_size, checked_record, choice_field, number_field, tensor_field
from ..surrogate import Custom, SuperSpike
from . import _peers

__all__ = [
    "METHODS",
    "NorseLIFParams",
    "NorseLIFState",
    "NorseLIFRecurrentState",
    "NorseLIFRefracParams",
    "NorseLIFRefracState",
    "NorseLIFAdExParams",
    "NorseLIFAdExState",
    "threshold",
    "check_params",
    "initial_state",
    "norse_lif_step",
    "norse_lif_multistep",
    "norse_lif_recurrent_step",
    "norse_lif_recurrent_multistep",
    "norse_lif_adjoint_step",
    "norse_lif_adjoint_multistep",
    "norse_lif_recurrent_adjoint_multistep",
    "norse_lif_refrac_step",
    "norse_lif_refrac_multistep",
    "norse_lif_refrac_adjoint_step",
    "norse_lif_refrac_adjoint_multistep",
    "norse_lif_adex_step",
    "norse_lif_adex_multistep",
]

Param = Union[float, int, Tensor]

#: norse's threshold methods (``norse.torch.functional.threshold.threshold``)
METHODS = ("super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc")


@checked_record(tau_syn_inv=number_field(), tau_mem_inv=number_field(), v_leak=number_field(), v_th=number_field(),
                v_reset=number_field(), method=choice_field(*METHODS), alpha=number_field())
class NorseLIFParams(NamedTuple):
    """norse's ``LIFParameters`` (same field names, order and defaults): ``tau_syn_inv``,
    ``tau_mem_inv`` (inverse time constants, 1/s), ``v_leak``, ``v_th``, ``v_reset``,
    ``method`` (one of :data:`METHODS`), ``alpha`` (the surrogate's parameter)."""

    tau_syn_inv: Param = 1.0 / 5e-3
    tau_mem_inv: Param = 1.0 / 1e-2
    v_leak: Param = 0.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    method: str = "super"
    alpha: Param = 100.0


@checked_record(v=tensor_field(floating=True), i=tensor_field(floating=True))
class NorseLIFState(NamedTuple):
    """norse's ``LIFFeedForwardState``: post-reset membrane ``v``, synaptic current ``i``
    (after its decay), each ``(B, *features)``."""

    v: Tensor
    i: Tensor


@checked_record(z=tensor_field(floating=True), v=tensor_field(floating=True), i=tensor_field(floating=True))
class NorseLIFRecurrentState(NamedTuple):
    """norse's ``LIFState``: the spikes ``z`` of the step (fed back by the recurrent
    weights), ``v``, ``i``."""

    z: Tensor
    v: Tensor
    i: Tensor


@checked_record(rho_reset=number_field())
class NorseLIFRefracParams(NamedTuple):
    """norse's ``LIFRefracParameters``: the LIF parameters and the counter value a spike
    loads (``rho_reset``, in steps)."""

    lif: NorseLIFParams = NorseLIFParams()
    rho_reset: Param = 5.0


@checked_record(rho=tensor_field(floating=True))
class NorseLIFRefracState(NamedTuple):
    """norse's ``LIFRefracFeedForwardState``: the LIF state and the refractory counter ``rho``."""

    lif: NorseLIFState
    rho: Tensor


#: norse's ``LIFAdExParameters``: the adaptation fields, then the LIF fields of
#: :class:`NorseLIFParams` (same names, order and defaults as norse; norse takes them from
#: PyNN's EIF_cond_exp_isfa_ista)
NorseLIFAdExParams = namedtuple(
    "NorseLIFAdExParams",
    ("adaptation_current", "adaptation_spike", "delta_T", "tau_ada_inv") + NorseLIFParams._fields,
    defaults=(4.0, 0.02, 0.5, 2.0) + tuple(NorseLIFParams._field_defaults.values()),
    module=__name__,
)
NorseLIFAdExParams = checked_record(adaptation_current=number_field(), adaptation_spike=number_field(),
                                    delta_T=number_field(), tau_ada_inv=number_field(),
                                    tau_syn_inv=number_field(), tau_mem_inv=number_field(), v_leak=number_field(), v_th=number_field(), v_reset=number_field(), method=choice_field(*METHODS), alpha=number_field())(NorseLIFAdExParams)
NorseLIFAdExParams.__doc__ = """norse's ``LIFAdExParameters``: ``adaptation_current`` (coupling of
``a`` to ``v``, 4), ``adaptation_spike`` (jump of ``a`` per spike, 0.02), ``delta_T`` (sharpness
of the exponential, 0.5), ``tau_ada_inv`` (2 1/s), then :class:`NorseLIFParams`' fields
``tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, method, alpha`` with their defaults."""


@checked_record(v=tensor_field(floating=True), i=tensor_field(floating=True), a=tensor_field(floating=True))
class NorseLIFAdExState(NamedTuple):
    """norse's ``LIFAdExFeedForwardState``: ``v``, ``i`` and the adaptation current ``a``."""

    v: Tensor
    i: Tensor
    a: Tensor


# --------------------------------------------------------------------------- threshold


def _derivative(method: str, alpha) -> Callable[[Tensor], Tensor]:
    if method == "triangle":
        return lambda x: alpha * torch.relu(1 - x.abs())
    if method == "tanh":
        return lambda x: 1 - (x * alpha).tanh().pow(2)
    if method == "circ":
        def circ(x):
            r2 = alpha ** 2 + x.pow(2)
            return (-(x.pow(2) / (2 * r2.pow(1.5))) + 1 / (2 * r2.sqrt())) * 2 * alpha
        return circ
    return lambda x: 2 * torch.exp(-(alpha * x).pow(2)) / math.sqrt(math.pi)  # heavi_erfc


def threshold(x: Tensor, method: str = "super", alpha: Param = 100.0) -> Tensor:
    """norse's ``threshold(x, method, alpha)``: forward ``1[x > 0]``, backward of ``method``
    (table in the module docstring). Trusted inner function: ``method`` and ``alpha`` are
    checked where the parameters enter (``alpha`` is used detached).

    >>> x = torch.tensor([-0.1, 0.0, 0.1], requires_grad=True)
    >>> z = threshold(x, "super", 10.0); z.tolist()
    [0.0, 0.0, 1.0]
    >>> z.sum().backward(); [round(g, 4) for g in x.grad.tolist()]
    [0.25, 1.0, 0.25]
    """
    if caller_is_outside():  # the norse loops call it per step on checked values
        check_tensor("x", x)
        check_choice("method", method, METHODS)
        check_number("alpha", alpha)
    if method == "heaviside":
        return torch.gt(x, 0.0).to(x.dtype)
    if isinstance(alpha, Tensor):
        alpha = alpha.detach().to(x.dtype)
    if method == "super":
        return SuperSpike.trusted(alpha)(x, strict=True)
    return Custom(_derivative(method, alpha))(x, strict=True)


# --------------------------------------------------------------------------- validation


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)):
        raise TypeError(f"dt: expected a positive number (seconds), got {_describe(dt)}")
    check_number("dt", dt, gt=0)
    return float(dt)


def _check_fields(params, cls, prefix: str, step_shape, device, positive=(), nonneg=()) -> None:
    """Type, method and value checks of a Params tuple; with ``step_shape`` (None: values only,
    as a module checks them when built) also broadcasting and device of tensor fields."""
    if not isinstance(params, cls):
        raise TypeError(f"{prefix.rstrip('.')}: expected a {cls.__name__}, got {_describe(params)}")
    check_choice(f"{prefix}method", params.method, METHODS)
    for name in params._fields:
        if name == "method":
            continue
        p = getattr(params, name)
        bounds = dict(gt=0) if name in positive else dict(ge=0) if name in nonneg else {}
        check_number(f"{prefix}{name}", p, **bounds)
        if isinstance(p, Tensor) and step_shape is not None:
            check_broadcastable(f"{prefix}{name}", p, step_shape)
            if p.device != device:
                raise ValueError(f"{prefix}{name}: expected a tensor on {device} (the input's device), "
                                 f"got one on {p.device}")


def _check_lif(params, step_shape, device, prefix="params.") -> None:
    _check_fields(params, NorseLIFParams, prefix, step_shape, device, positive=("alpha",),
                  nonneg=("tau_syn_inv", "tau_mem_inv"))


def _check_adex(params, step_shape, device) -> None:
    _check_fields(params, NorseLIFAdExParams, "params.", step_shape, device, positive=("alpha", "delta_T"),
                  nonneg=("tau_syn_inv", "tau_mem_inv", "tau_ada_inv"))


def _check_refrac(params, step_shape, device) -> None:
    if not isinstance(params, NorseLIFRefracParams):
        raise TypeError(f"params: expected a NorseLIFRefracParams, got {_describe(params)}")
    _check_lif(params.lif, step_shape, device, prefix="params.lif.")
    check_number("params.rho_reset", params.rho_reset, ge=0)
    if isinstance(params.rho_reset, Tensor) and step_shape is not None:
        check_broadcastable("params.rho_reset", params.rho_reset, step_shape)


def check_params(params) -> None:
    """The value checks of ``params`` (any of this module's Params types), without a step
    shape: what a module runs when it is built."""
    checks = {NorseLIFParams: _check_lif, NorseLIFRefracParams: _check_refrac, NorseLIFAdExParams: _check_adex}
    check = checks.get(type(params))
    if check is None:
        raise TypeError(f"p: expected one of {[c.__name__ for c in checks]}, got {_describe(params)}")
    check(params, None, None)


def _check_state(state, cls, step_shape, device, prefix="state") -> None:
    if not isinstance(state, tuple) or len(state) != len(cls._fields):
        raise TypeError(f"{prefix}: expected a {cls.__name__} or None, got {_describe(state)}")
    for name, s in zip(cls._fields, state):
        if isinstance(s, tuple):  # the nested LIF state of the refractory neuron
            _check_state(s, NorseLIFState, step_shape, device, f"{prefix}.{name}")
            continue
        check_tensor(f"{prefix}.{name}", s)
        check_broadcastable(f"{prefix}.{name}", s, step_shape)
        if s.device != device:
            raise ValueError(f"{prefix}.{name}: expected a tensor on {device} (the input's device), got {s.device}")


def _check_weights(x_shape, input_weights, recurrent_weights, device) -> int:
    """The hidden size; ``input_weights (H, F_in)``, ``recurrent_weights (H, H)``."""
    check_tensor("input_weights", input_weights, ndim=2)
    check_tensor("recurrent_weights", recurrent_weights, ndim=2)
    hidden, n_in = input_weights.shape
    if n_in != x_shape[-1]:
        raise ValueError(f"input_weights: expected shape (hidden, {x_shape[-1]}) for input features "
                         f"{x_shape[-1]}, got {tuple(input_weights.shape)}")
    if tuple(recurrent_weights.shape) != (hidden, hidden):
        raise ValueError(f"recurrent_weights: expected shape ({hidden}, {hidden}), got "
                         f"{tuple(recurrent_weights.shape)}")
    for name, w in (("input_weights", input_weights), ("recurrent_weights", recurrent_weights)):
        if w.device != device:
            raise ValueError(f"{name}: expected a tensor on {device} (the input's device), got {w.device}")
    return hidden


# --------------------------------------------------------------------------- casting, initial states


def _as(p, dtype, device):
    if isinstance(p, Tensor):
        return p.to(device=device, dtype=dtype)
    return torch.as_tensor(float(p), dtype=dtype, device=device)


def _cast(params, dtype, device):
    """``params`` with every number as a tensor of ``dtype`` (norse's modules hold tensors)."""
    return params._replace(**{n: _as(getattr(params, n), dtype, device)
                              for n in params._fields if n != "method"})


def _full_v(v_leak, shape, dtype, device) -> Tensor:
    v = v_leak.detach() if isinstance(v_leak, Tensor) else torch.as_tensor(float(v_leak))
    return torch.broadcast_to(v.to(dtype=dtype, device=device), tuple(shape)).clone()


def _zeros(shape, dtype, device) -> Tensor:
    return torch.zeros(tuple(shape), dtype=dtype, device=device)


def initial_state(shape, params=NorseLIFParams(), dtype=torch.float32, device=None):
    """The resting state of one step of ``shape`` for ``params`` (its type says the model):
    ``v = v_leak``, ``i = 0`` and, by model, ``rho = 0`` / ``a = 0``.

    >>> initial_state((1, 2), NorseLIFParams(v_leak=-0.5)).v.tolist()
    [[-0.5, -0.5]]
    """
    if caller_is_outside():
        if not isinstance(shape, (tuple, list, torch.Size)):
            raise TypeError(f"shape: expected a tuple of ints, got {_describe(shape)}")
        for k, n in enumerate(shape):
            check_size(f"shape[{k}]", n, ge=0)
    lif = params.lif if isinstance(params, NorseLIFRefracParams) else params
    v, i = _full_v(lif.v_leak, shape, dtype, device), _zeros(shape, dtype, device)
    if isinstance(params, NorseLIFRefracParams):
        return NorseLIFRefracState(NorseLIFState(v, i), _zeros(shape, dtype, device))
    if isinstance(params, NorseLIFAdExParams):
        return NorseLIFAdExState(v, i, _zeros(shape, dtype, device))
    return NorseLIFState(v, i)


def _cast_state(state, dtype):
    return type(state)(*(_cast_state(s, dtype) if isinstance(s, tuple) else s.to(dtype) for s in state))


# --------------------------------------------------------------------------- the steps (trusted)


def _lif_update(i_jump, v, p, dt: float, detach_reset: bool):
    """The LIF update after the current jump (norse's operation order); ``p`` holds tensors."""
    dv = dt * p.tau_mem_inv * ((p.v_leak - v) + i_jump)
    v_decayed = v + dv
    di = -dt * p.tau_syn_inv * i_jump
    i_decayed = i_jump + di
    z = threshold(v_decayed - p.v_th, p.method, p.alpha)
    zr = z.detach() if detach_reset else z
    v_new = (1 - zr) * v_decayed + zr * p.v_reset
    return z, v_new, i_decayed


def _ff_step(x, state: NorseLIFState, p, dt):
    z, v, i = _lif_update(state.i + x, state.v, p, dt, detach_reset=False)
    return z, NorseLIFState(v, i)


def _rec_step(x, state: NorseLIFRecurrentState, w_in, w_rec, p, dt):
    i_jump = state.i + torch.nn.functional.linear(x, w_in) + torch.nn.functional.linear(state.z, w_rec)
    z, v, i = _lif_update(i_jump, state.v, p, dt, detach_reset=True)
    return z, NorseLIFRecurrentState(z, v, i)


def _refrac_step(x, state: NorseLIFRefracState, p: NorseLIFRefracParams, dt):
    z, lif = _ff_step(x, state.lif, p.lif, dt)
    m = threshold(state.rho, p.lif.method, p.lif.alpha)
    v = (1 - m) * lif.v + m * state.lif.v
    z = (1 - m) * z
    rho = (1 - z) * torch.relu(state.rho - m) + z * p.rho_reset
    return z, NorseLIFRefracState(NorseLIFState(v, lif.i), rho)


def _adex_step(x, state: NorseLIFAdExState, p: NorseLIFAdExParams, dt):
    i_jump = state.i + x
    dv_leak = p.v_leak - state.v
    dv_exp = p.delta_T * torch.exp((state.v - p.v_th) / p.delta_T)
    dv = dt * p.tau_mem_inv * (dv_leak + dv_exp + i_jump - state.a)
    v_decayed = state.v + dv
    di = -dt * p.tau_syn_inv * i_jump
    i_decayed = i_jump + di
    da = dt * p.tau_ada_inv * (p.adaptation_current * (state.v - p.v_leak) - state.a)
    a_decayed = state.a + da
    z = threshold(v_decayed - p.v_th, p.method, p.alpha)
    v_new = (1 - z) * v_decayed + z * p.v_reset
    a_new = a_decayed + z * p.adaptation_spike
    return z, NorseLIFAdExState(v_new, i_decayed, a_new)


# --------------------------------------------------------------------------- norse's adjoint gradient


def _nan_to_zero(t: Tensor) -> Tensor:
    return t.masked_fill(t.isnan(), 0.0)  # norse zeroes NaN (0 * inf), keeps inf


def _decay_lambdas(lambda_v, lambda_i, p, dt, free=1.0):
    """The adjoint's decay over one step back; ``free`` = ``1 - 1[rho > 0]`` for the refractory
    neuron (norse's ``1 - refrac_mask``), 1 otherwise (a factor 1 changes no bit)."""
    dlambda_i = p.tau_syn_inv * (free * lambda_v - lambda_i)
    lambda_i = lambda_i + dt * dlambda_i
    lambda_v = lambda_v - free * p.tau_mem_inv * dt * lambda_v
    return lambda_v, lambda_i


def _adjoint_lambdas(z, dv_m, dv_p, dz, lambda_v, lambda_i, p, dt):
    """One step back of norse's adjoint equations (``LIFAdjointFunction.backward``)."""
    lambda_v, lambda_i = _decay_lambdas(lambda_v, lambda_i, p, dt)
    output_term = _nan_to_zero(z * (1 / dv_m) * dz)
    jump_term = _nan_to_zero(z * (dv_p / dv_m))
    lambda_v = (1 - z) * lambda_v + jump_term * lambda_v + output_term
    return lambda_v, lambda_i


def _refrac_adjoint_lambdas(saved, dz, lambda_v, lambda_i, lambda_rho, p, dt):
    """One step back of norse's refractory adjoint (``LIFAdjointRefracFeedForwardFunction``):
    the LIF decay where ``rho_new = 0``, a spike's jump term ``z lambda_rho / dv_-`` (added, not
    multiplied by ``lambda_v``), and ``lambda_rho`` takes ``lambda_v dv_+`` where the previous
    counter was 1 (the step that ends a refractory period)."""
    z, rho_new, period_end, dv_m, dv_p = saved
    free = 1 - torch.gt(rho_new, 0.0).to(rho_new.dtype)
    lambda_v, lambda_i = _decay_lambdas(lambda_v, lambda_i, p, dt, free)
    output_term = _nan_to_zero(z * (1 / dv_m) * dz)
    jump_term = _nan_to_zero(z * (lambda_rho / dv_m))
    lambda_v = (1 - z) * lambda_v + jump_term + output_term
    lambda_rho = (1 - period_end) * lambda_rho + period_end * lambda_v * dv_p
    return lambda_v, lambda_i, lambda_rho


def _dv(p, v, i):
    """norse's ``tau_mem_inv * ((v_leak - v) + i)`` with the current *before* the jump."""
    return p.tau_mem_inv * ((p.v_leak - v) + i)


class _FFAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v, i, p, dt):
        z, s = _ff_step(x, NorseLIFState(v, i), p, dt)
        ctx.save_for_backward(z, _dv(p, v, i), _dv(p, s.v, i))
        ctx.p, ctx.dt = p, dt
        return z, s.v, s.i

    @staticmethod
    def backward(ctx, dz, lambda_v, lambda_i):
        z, dv_m, dv_p = ctx.saved_tensors
        lambda_v, lambda_i = _adjoint_lambdas(z, dv_m, dv_p, dz, lambda_v, lambda_i, ctx.p, ctx.dt)
        return lambda_i, lambda_v, lambda_i, None, None


class _RecAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, z, v, i, w_in, w_rec, p, dt):
        z_new, s = _rec_step(x, NorseLIFRecurrentState(z, v, i), w_in, w_rec, p, dt)
        ctx.save_for_backward(x, z_new, _dv(p, v, i), _dv(p, s.v, i), w_in, w_rec)
        ctx.p, ctx.dt = p, dt
        return z_new, s.v, s.i

    @staticmethod
    def backward(ctx, dz, lambda_v, lambda_i):
        x, z, dv_m, dv_p, w_in, w_rec = ctx.saved_tensors
        dw_in, dw_rec = lambda_i.t().mm(x), lambda_i.t().mm(z)  # norse: the new spikes z
        lambda_v, lambda_i = _adjoint_lambdas(z, dv_m, dv_p, dz, lambda_v, lambda_i, ctx.p, ctx.dt)
        return lambda_i.mm(w_in), lambda_i.mm(w_rec), lambda_v, lambda_i, dw_in, dw_rec, None, None


class _RefracAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v, i, rho, p, dt):
        z, s = _refrac_step(x, NorseLIFRefracState(NorseLIFState(v, i), rho), p, dt)
        period_end = torch.eq(rho, 1.0).to(rho.dtype)
        ctx.save_for_backward(z, s.rho, period_end, _dv(p.lif, v, i), _dv(p.lif, s.lif.v, i))
        ctx.p, ctx.dt = p.lif, dt
        return z, s.lif.v, s.lif.i, s.rho

    @staticmethod
    def backward(ctx, dz, lambda_v, lambda_i, lambda_rho):
        lambda_v, lambda_i, lambda_rho = _refrac_adjoint_lambdas(ctx.saved_tensors, dz, lambda_v, lambda_i,
                                                                 lambda_rho, ctx.p, ctx.dt)
        return lambda_i, lambda_v, lambda_i, lambda_rho, None, None


def _ff_adjoint_step(x, state: NorseLIFState, p, dt):
    z, v, i = _FFAdjoint.apply(x, state.v, state.i, p, dt)
    return z, NorseLIFState(v, i)


def _refrac_adjoint_step(x, state: NorseLIFRefracState, p: NorseLIFRefracParams, dt):
    z, v, i, rho = _RefracAdjoint.apply(x, state.lif.v, state.lif.i, state.rho, p, dt)
    return z, NorseLIFRefracState(NorseLIFState(v, i), rho)


def _rec_adjoint_step(x, state: NorseLIFRecurrentState, w_in, w_rec, p, dt):
    z, v, i = _RecAdjoint.apply(x, state.z, state.v, state.i, w_in, w_rec, p, dt)
    return z, NorseLIFRecurrentState(z, v, i)


# --------------------------------------------------------------------------- the shared boundary


class _Model(NamedTuple):
    name: str
    params_type: type
    state_type: type
    check: Callable
    step: Callable


_FF = _Model("norse_lif", NorseLIFParams, NorseLIFState, _check_lif, _ff_step)
_FF_ADJOINT = _Model("norse_lif_adjoint", NorseLIFParams, NorseLIFState, _check_lif, _ff_adjoint_step)
_REFRAC = _Model("norse_lif_refrac", NorseLIFRefracParams, NorseLIFRefracState, _check_refrac, _refrac_step)
_REFRAC_ADJOINT = _Model("norse_lif_refrac_adjoint", NorseLIFRefracParams, NorseLIFRefracState, _check_refrac,
                         _refrac_adjoint_step)
_ADEX = _Model("norse_lif_adex", NorseLIFAdExParams, NorseLIFAdExState, _check_adex, _adex_step)


def _cast_model_params(params, dtype, device):
    if isinstance(params, NorseLIFRefracParams):
        return NorseLIFRefracParams(_cast(params.lif, dtype, device), _as(params.rho_reset, dtype, device))
    return _cast(params, dtype, device)


def _prepare(model: _Model, x: Tensor, params, state, dt, step_shape, state_type=None, state_shape=None):
    """Validate, cast, and build or check the state; returns ``(cast params, state, dt)``."""
    model.check(params, step_shape, x.device)
    dt = _check_dt(dt)
    cdt = compute_dtype(x.dtype)
    state_type = state_type or model.state_type
    state_shape = state_shape or step_shape
    if state is None:
        state = _initial(params, state_type, state_shape, cdt, x.device)
    else:
        _check_state(state, state_type, state_shape, x.device)
        state = _cast_state(state, cdt)
    return _cast_model_params(params, cdt, x.device), state, dt


def _initial(params, state_type, shape, dtype, device):
    if state_type is NorseLIFRecurrentState:
        v, i = initial_state(shape, params, dtype, device)
        return NorseLIFRecurrentState(_zeros(shape, dtype, device), v, i)
    return initial_state(shape, params, dtype, device)


def _stack(states):
    first = states[0]
    return type(first)(*(_stack([s[k] for s in states]) if isinstance(f, tuple)
                         else torch.stack([s[k] for s in states]) for k, f in enumerate(first)))


def _scan(step, x_seq: Tensor, state, return_traces: bool):
    """Loop ``step(x_t, state) -> (z, state)`` over time (``unbind``: an O(T) backward)."""
    spikes, states = [], []
    for x_t in x_seq.to(compute_dtype(x_seq.dtype)).unbind(0):
        z, state = step(x_t, state)
        spikes.append(z)
        if return_traces:
            states.append(state)
    out = torch.stack(spikes).to(x_seq.dtype)
    if return_traces:
        return out, state, _stack(states)
    return out, state


def _one_step(model: _Model, x, state, params, dt):
    check_tensor("x", x, min_ndim=1)
    p, state, dt = _prepare(model, x, params, state, dt, tuple(x.shape))
    z, state = model.step(x.to(compute_dtype(x.dtype)), state, p, dt)
    return z.to(x.dtype), state


def _family(name: str) -> str:
    """The registry id a function name belongs to (``norse_lif_adjoint`` -> ``norse.lif``)."""
    return "norse." + name[len("norse_"):].replace("_adjoint", "")


#: the fused kernel key of a model (the adjoints and the recurrent LIF run their loops)
_KERNELS = {"norse_lif": "norse_lif", "norse_lif_refrac": "norse_lif_refrac", "norse_lif_adex": "norse_lif_adex"}


def _pack_refrac(lif, rho):
    """A kernel's ``((v, i), rho)`` as norse's nested refractory state (or traces)."""
    return NorseLIFRefracState(NorseLIFState(*lif), rho)


#: why the recurrent LIF has no fused kernel (the generic scan template is elementwise per neuron)
_RECURRENT_LOOP = ("'norse.lif_recurrent' has no fused kernel: each step multiplies the previous step's spikes by "
                   "recurrent_weights (a matmul inside the time loop, coupling the neurons), which the elementwise "
                   "scan template of the fused kernels does not fit; its reference loop runs on every device")


def _loop_reason(name: str) -> Optional[str]:
    """Why ``name`` (a multistep without a kernel) runs its reference loop, for the error a
    kernel backend gets; None for a family without kernels (the shared default message)."""
    family = _family(name)
    if "_adjoint" in name:
        if family == "norse.lif_recurrent":
            return f"{name}_multistep runs norse's adjoint backward in its reference loop, and " + _RECURRENT_LOOP
        return (f"{name}_multistep runs norse's adjoint backward, an autograd function per step of its reference "
                f"loop; the fused {family!r} kernels compute backpropagation through the steps "
                f"(gradient='bptt'), not the adjoint")
    return _RECURRENT_LOOP if family == "norse.lif_recurrent" else None


def _multistep(model: _Model, x_seq, params, state, dt, backend, return_traces):
    # the peer families' boundary: a kernel backend is refused by name where there is no kernel
    kernel = _KERNELS.get(model.name)
    _peers.begin(f"{model.name}_multistep", _family(model.name), x_seq, backend, return_traces, kernel,
                 _loop_reason(model.name), after=True)
    p, state, dt = _prepare(model, x_seq, params, state, dt, tuple(x_seq.shape[1:]))
    pack = _pack_refrac if model.state_type is NorseLIFRefracState else model.state_type
    out = _peers.fused(kernel, backend, x_seq, params, state, return_traces, pack, pack, extra=dict(dt=dt))
    if out is None:
        out = _scan(lambda x_t, s: model.step(x_t, s, p, dt), x_seq, state, return_traces)
    return _peers.finish(x_seq, out, return_traces)


# --------------------------------------------------------------------------- public: LIF, LIFRefrac, LIFAdEx


def _public(model: _Model, norse_step: str, norse_module: str, default):
    """The ``(step, multistep)`` pair of a feed-forward model."""

    def step(x: Tensor, state=None, params=default, dt: float = 1e-3):
        return _one_step(model, x, state, params, dt)

    def multistep(x_seq: Tensor, params=default, state=None, dt: float = 1e-3, backend: Optional[str] = None,
                  return_traces: bool = False):
        return _multistep(model, x_seq, params, state, dt, backend, return_traces)

    state_name = model.state_type.__name__
    step.__doc__ = (f"One step of norse's ``{norse_step}``: ``x`` ``(B, *features)`` is the input current; "
                    f"returns ``(z, {state_name})`` (``state=None``: the resting state).")
    multistep.__doc__ = (f"norse's ``{norse_module}`` over ``x_seq`` ``(T, B, *features)``: returns ``(spikes, "
                         f"{state_name})`` or, with ``return_traces=True``, ``(spikes, state, {state_name} of "
                         f"(T, B, *features) traces)``; equal to looping the step.")
    for fn, suffix in ((step, "step"), (multistep, "multistep")):
        fn.__name__ = fn.__qualname__ = f"{model.name}_{suffix}"
    return step, multistep


#: norse's ``lif_feed_forward_step`` / ``norse.torch.LIF``
norse_lif_step, norse_lif_multistep = _public(_FF, "lif_feed_forward_step", "LIF", NorseLIFParams())
#: norse's ``lif_feed_forward_adjoint_step``: the forward of :func:`norse_lif_step`, norse's
#: adjoint backward (see :func:`norse_lif_recurrent_adjoint_multistep`)
norse_lif_adjoint_step, norse_lif_adjoint_multistep = _public(
    _FF_ADJOINT, "lif_feed_forward_adjoint_step", "LIF with LIFFeedForwardAdjointFunction", NorseLIFParams())
#: norse's ``lif_refrac_feed_forward_step`` / ``LIFRefracCell`` over time
norse_lif_refrac_step, norse_lif_refrac_multistep = _public(
    _REFRAC, "lif_refrac_feed_forward_step", "LIFRefracCell (over time)", NorseLIFRefracParams())
#: norse's ``lif_refrac_feed_forward_adjoint_step``: the forward of
#: :func:`norse_lif_refrac_step`, norse's refractory adjoint backward (equations in the module
#: docstring)
norse_lif_refrac_adjoint_step, norse_lif_refrac_adjoint_multistep = _public(
    _REFRAC_ADJOINT, "lif_refrac_feed_forward_adjoint_step", "LIFRefracCell with LIFAdjointRefracFeedForwardFunction",
    NorseLIFRefracParams())
#: norse's ``lif_adex_feed_forward_step`` / ``norse.torch.LIFAdEx``
norse_lif_adex_step, norse_lif_adex_multistep = _public(
    _ADEX, "lif_adex_feed_forward_step", "LIFAdEx", NorseLIFAdExParams())


# --------------------------------------------------------------------------- public: recurrent LIF


def _rec_prepare(x, input_weights, recurrent_weights, params, state, dt, x_step_shape):
    hidden = _check_weights(x_step_shape, input_weights, recurrent_weights, x.device)
    shape = (*x_step_shape[:-1], hidden)
    p, state, dt = _prepare(_FF, x, params, state, dt, shape, NorseLIFRecurrentState, shape)
    cdt = compute_dtype(x.dtype)
    return p, state, dt, input_weights.to(cdt), recurrent_weights.to(cdt)


def norse_lif_recurrent_step(x: Tensor, state: Optional[NorseLIFRecurrentState], input_weights: Tensor,
                             recurrent_weights: Tensor, params: NorseLIFParams = NorseLIFParams(),
                             dt: float = 1e-3):
    """One step of norse's ``lif_step``: ``x`` ``(B, F_in)``, ``input_weights`` ``(H, F_in)``,
    ``recurrent_weights`` ``(H, H)`` (``z_prev @ recurrent_weights.T`` feeds back); returns
    ``(z, NorseLIFRecurrentState)`` with ``z`` ``(B, H)``.
    """
    check_tensor("x", x, min_ndim=1)
    p, state, dt, w_in, w_rec = _rec_prepare(x, input_weights, recurrent_weights, params, state, dt,
                                             tuple(x.shape))
    z, state = _rec_step(x.to(compute_dtype(x.dtype)), state, w_in, w_rec, p, dt)
    return z.to(x.dtype), state


def _rec_multistep(step, name, x_seq, input_weights, recurrent_weights, params, state, dt, backend,
                   return_traces):
    model = name[:-len("_multistep")]
    _peers.begin(name, _family(model), x_seq, backend, return_traces, loop=_loop_reason(model))
    p, state, dt, w_in, w_rec = _rec_prepare(x_seq, input_weights, recurrent_weights, params, state, dt,
                                             tuple(x_seq.shape[1:]))
    return _scan(lambda x_t, s: step(x_t, s, w_in, w_rec, p, dt), x_seq, state, return_traces)


def norse_lif_recurrent_multistep(x_seq: Tensor, input_weights: Tensor, recurrent_weights: Tensor,
                                  params: NorseLIFParams = NorseLIFParams(),
                                  state: Optional[NorseLIFRecurrentState] = None, dt: float = 1e-3,
                                  backend: Optional[str] = None, return_traces: bool = False):
    """norse's recurrent LIF (``norse.torch.LIFRecurrent``) over ``x_seq`` ``(T, B, F_in)``:
    returns ``(spikes (T, B, H), NorseLIFRecurrentState[, traces])``; equal to looping
    :func:`norse_lif_recurrent_step`."""
    return _rec_multistep(_rec_step, "norse_lif_recurrent_multistep", x_seq, input_weights, recurrent_weights,
                          params, state, dt, backend, return_traces)


def norse_lif_recurrent_adjoint_multistep(x_seq: Tensor, input_weights: Tensor, recurrent_weights: Tensor,
                                          params: NorseLIFParams = NorseLIFParams(),
                                          state: Optional[NorseLIFRecurrentState] = None, dt: float = 1e-3,
                                          backend: Optional[str] = None, return_traces: bool = False):
    """The forward of :func:`norse_lif_recurrent_multistep` with norse's adjoint backward
    (``lif_adjoint_step`` / ``LIFAdjointFunction``), for ``x_seq`` ``(T, B, F_in)``.

    The adjoint is **not** backpropagation through the same discrete dynamics: per step, with
    the incoming ``dz``, ``lambda_v = dL/dv``, ``lambda_i = dL/di`` and ``dv_-`` / ``dv_+`` =
    ``tau_mem_inv * ((v_leak - v) + i_prev)`` before / after the step's reset::

        dW_in  = lambda_i^T x          dW_rec = lambda_i^T z       (z: the step's new spikes)
        lambda_i += dt * tau_syn_inv * (lambda_v - lambda_i)
        lambda_v -= tau_mem_inv * dt * lambda_v
        lambda_v  = (1 - z) lambda_v + z (dv_+ / dv_-) lambda_v + z dz / dv_-   (NaN -> 0)
        dL/dx = lambda_i W_in,  dL/dz_prev = lambda_i W_rec

    a continuous-time adjoint with spike-time jump terms (no surrogate: ``method`` only
    decides the forward spikes, which are the same for every method). Tensor parameters get
    no gradient. norse's modules ask for it with ``method="adjoint"``, which norse 1.1.0 then
    passes to ``threshold()`` and fails; spikefuse takes it as this function (or
    ``gradient="adjoint"`` on the modules). Input ``(T, B, F_in)`` only (norse's ``mm``).
    """
    check_tensor("x_seq", x_seq, ndim=3, finite=False)
    return _rec_multistep(_rec_adjoint_step, "norse_lif_recurrent_adjoint_multistep", x_seq, input_weights,
                          recurrent_weights, params, state, dt, backend, return_traces)
