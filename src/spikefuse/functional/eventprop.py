"""EventProp: exact adjoint gradients for the CUBA LIF, hxtorch semantics (SPEC.md 14, 18 #12).

Forward (SPEC 14.2; differs from :mod:`spikefuse.functional.cuba`: the voltage uses the NEW
current, and index 0 is the resting state). With ``x`` the current increments ``(T, B, *F)``::

    z[0] = 0, i[0] = 0, v[0] = leak
    for t = 1 .. T-1:
        i[t] = i[t-1] (1 - dt/tau_syn) + x[t-1]
        v'   = v[t-1] + dt/tau_mem (leak - v[t-1] + i[t])
        z[t] = 1[v' - threshold > 0]
        v[t] = (1 - z[t]) v' + z[t] reset                       (x[T-1] is never used)

Backward (SPEC 14.3), reverse time, ``lam_v = lam_i = 0`` at ``T-1``; ``g = grad_spikes``::

    a_m = leak - threshold + i[t-1]     (current_index="hxtorch", default, faithful)
          leak - threshold + i[t]       (current_index="aligned": the current of the spike's step)
    a_p = the same with reset in place of threshold
    lam_i[t-1] = lam_i[t] + dt/tau_syn (lam_v[t] - lam_i[t])
    lam~       = lam_v[t] (1 - dt/tau_mem)
    lam_v[t-1] = (1 - z[t]) lam~ + z[t] (a_p/a_m) lam~ + z[t] g[t]/a_m    (NaN/inf terms -> 0)

Gradients: w.r.t. the current increments ``tau_syn * lam_i``; hxtorch's second channel (the
gradient sent to presynaptic spikes through the weights) ``lam_v - lam_i``. No gradient goes to
the parameters. The incoming gradient of the spikes is read only where a spike happened, and
its meaning is ``-dL/dt_k`` with ``t_k`` the spike time **in the same unit as dt** (seconds):
with that reading ``dL/dW = sum_t tau_syn lam_i[t] x_in[t]`` is the exact continuous-time
gradient as ``dt -> 0`` (``spikefuse.losses.first_spike_time`` produces exactly this
gradient). The gradient of the membrane and current outputs is ignored (as upstream) unless
``membrane_grad=True``: then ``(1 - z[t]) dL/dv[t] / tau_mem`` is added to ``lam_v[t]``,
which makes the backward the exact discrete adjoint of the forward between spikes.

Every call starts from rest (``z = 0``, ``v = leak``, ``i = 0``) as upstream; there is no
state argument and no fused-kernel dispatch (the loop over time is plain torch).

Entry points (all vectorised over batch and neurons, plain torch, any device):

- :func:`eventprop_lif` ``(current (T,B,*F), params, dt) -> (spikes, membrane, current)``:
  gradient w.r.t. ``current`` is ``tau_syn * lam_i``; an ordinary ``nn.Linear`` in front then
  gets ``dL/dW = sum tau_syn lam_i (x) input``.
- :func:`eventprop_linear_lif` ``(x (T,B,I), weight (O,I), params, dt)``: synapse + neuron in
  one function; weight gradient ``sum tau_syn lam_i (x) x`` and input gradient
  ``(lam_v - lam_i) @ W`` (the EventProp rule for presynaptic spikes), so layers stack.
- hxtorch-faithful two-channel pair: :func:`eventprop_synapse` ``(input, weight) -> (2,T,B,O)``
  and :func:`eventprop_neuron` ``((2,T,B,N), params, dt)``.
- :func:`eventprop_lif_reference`: the same forward as a differentiable loop with the
  SuperSpike surrogate (BPTT), and :func:`eventprop_lif_step` (one step).

Hardware mode (``hw_data = (spikes, membrane_cadc, membrane_madc)``, spikes required, each
``(T, B, *F)``): the forward returns the measured spikes and CADC membrane (None if absent) and
the current computed in software from the input; the backward uses the measured spikes and
that current (upstream reads its current from the MADC slot, SPEC 18 #12).

Memory: per neuron-step the backward keeps the spikes (bool, 1 byte) and the current (4 bytes
fp32), plus the layer input for :func:`eventprop_linear_lif`.

Example::

    >>> import torch
    >>> from spikefuse.functional.cuba import CubaParams
    >>> p = CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=10e-6)
    >>> x = torch.zeros(7, 1, 1); x[0] = 1.2
    >>> z, v, i = eventprop_lif(x, p, dt=1e-6)
    >>> z.flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .._validate import _describe, caller_is_outside, check_bool, check_choice, check_sequence, check_tensor
from .._core import compute_dtype
from .cuba import (
    CubaParams,
    CubaState,
    _cast,
    _check_dt,
    _check_traces,
    _offsets,
    _validate_params,
    _validate_state,
    superspike,
)

__all__ = [
    "CURRENT_INDEX",
    "eventprop_lif",
    "eventprop_linear_lif",
    "eventprop_neuron",
    "eventprop_synapse",
    "EventPropNeuron",
    "EventPropSynapse",
    "EventPropLinearLIF",
    "eventprop_forward",
    "eventprop_adjoint",
    "eventprop_lif_step",
    "eventprop_lif_reference",
    "crossing_offsets",
]

CURRENT_INDEX = ("hxtorch", "aligned")


class _P(NamedTuple):
    """Detached parameters in the compute dtype."""

    leak: object
    reset: object
    threshold: object
    tau_syn: object
    tau_mem: object
    dt: float


def _detached(params: CubaParams, dt: float, cdt) -> _P:
    def d(p):
        return p.detach().to(cdt) if isinstance(p, Tensor) else float(p)

    return _P(d(params.leak), d(params.reset), d(params.threshold), d(params.tau_syn),
              d(params.tau_mem), dt)


# --------------------------------------------------------------------------- core (no autograd)


def eventprop_forward(current: Tensor, p: _P):
    """Trusted forward of SPEC 14.2 without autograd; returns ``(z, v, i)`` in the dtype of
    ``current`` (the compute dtype)."""
    T = current.shape[0]
    shape = current.shape[1:]
    a_m = p.dt / p.tau_mem
    d_s = 1.0 - p.dt / p.tau_syn
    z = torch.zeros_like(current)
    v = torch.empty_like(current)
    i = torch.empty_like(current)
    vc = torch.zeros(shape, dtype=current.dtype, device=current.device) + p.leak
    ic = torch.zeros(shape, dtype=current.dtype, device=current.device)
    v[0] = vc
    i[0] = ic
    for t in range(1, T):
        ic = ic * d_s + current[t - 1]
        vp = vc + a_m * (p.leak - vc + ic)
        zt = (vp - p.threshold > 0).to(current.dtype)
        vc = (1.0 - zt) * vp + zt * p.reset
        z[t] = zt
        v[t] = vc
        i[t] = ic
    return z, v, i


def _software_current(current: Tensor, p: _P) -> Tensor:
    d_s = 1.0 - p.dt / p.tau_syn
    i = torch.empty_like(current)
    ic = torch.zeros(current.shape[1:], dtype=current.dtype, device=current.device)
    i[0] = ic
    for t in range(1, current.shape[0]):
        ic = ic * d_s + current[t - 1]
        i[t] = ic
    return i


def _nan_to_zero(x: Tensor) -> Tensor:
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def eventprop_adjoint(z: Tensor, i: Tensor, grad_spikes: Optional[Tensor], p: _P,
                      current_index: str = "hxtorch", grad_membrane: Optional[Tensor] = None):
    """Trusted adjoint of SPEC 14.3; returns ``(lam_i, lam_v)``, each ``(T, B, *F)``.

    ``grad_membrane`` (optional) adds ``(1 - z[t]) grad_membrane[t] / tau_mem`` to ``lam_v[t]``.
    """
    T = z.shape[0]
    dtype = i.dtype
    z = z.to(dtype)
    lam_i_all = torch.zeros_like(i)
    lam_v_all = torch.zeros_like(i)
    a_m_r = p.dt / p.tau_mem
    a_s_r = p.dt / p.tau_syn
    lam_i = torch.zeros_like(i[0])
    lam_v = torch.zeros_like(i[0])
    if grad_membrane is not None:
        lam_v = lam_v + (1.0 - z[T - 1]) * grad_membrane[T - 1] / p.tau_mem
        lam_v_all[T - 1] = lam_v
    for t in range(T - 1, 0, -1):
        ic = i[t - 1] if current_index == "hxtorch" else i[t]
        zt = z[t]
        a_m = p.leak - p.threshold + ic
        a_p = p.leak - p.reset + ic
        new_lam_i = lam_i + a_s_r * (lam_v - lam_i)
        lt = lam_v * (1.0 - a_m_r)
        jump = _nan_to_zero(zt * a_p / a_m)
        new_lam_v = (1.0 - zt) * lt + jump * lt
        if grad_spikes is not None:
            new_lam_v = new_lam_v + _nan_to_zero(zt * grad_spikes[t] / a_m)
        if grad_membrane is not None and t > 1:  # v[0] is the fixed resting value
            new_lam_v = new_lam_v + (1.0 - z[t - 1]) * grad_membrane[t - 1] / p.tau_mem
        lam_i, lam_v = new_lam_i, new_lam_v
        lam_i_all[t - 1] = lam_i
        lam_v_all[t - 1] = lam_v
    return lam_i_all, lam_v_all


# --------------------------------------------------------------------------- autograd Functions


def _cast_hw(hw, cdt):
    """Measured ``(spikes, membrane or None)`` in the compute dtype; ``None`` stays ``None``."""
    if hw is None:
        return None
    return (hw[0].to(cdt), hw[1].to(cdt) if hw[1] is not None else None)


def _run_forward(ctx, cur: Tensor, p: _P, hw, current_index: str, membrane_grad: bool, saved=()):
    """Shared forward: returns (z, v, i) outputs, saves ``*saved``, z (bool) and i for backward
    (i is marked non-differentiable)."""
    if hw is None:
        z, v, i = eventprop_forward(cur, p)
    else:
        spikes_hw, membrane_hw = hw
        i = _software_current(cur, p)
        z = spikes_hw.to(cur.dtype).clone()
        v = membrane_hw.to(cur.dtype).clone() if membrane_hw is not None else None
    ctx.p = p
    ctx.current_index = current_index
    ctx.membrane_grad = membrane_grad
    ctx.save_for_backward(*saved, z > 0, i)
    ctx.mark_non_differentiable(i)
    return z, v, i


def _run_backward(ctx, z, i, grad_z, grad_v):
    gm = grad_v if (ctx.membrane_grad and grad_v is not None) else None
    gs = grad_z.to(i.dtype) if grad_z is not None else None
    if gm is not None:
        gm = gm.to(i.dtype)
    return eventprop_adjoint(z, i, gs, ctx.p, ctx.current_index, gm)


class _EventPropCurrent(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cur, p, hw, current_index, membrane_grad):
        return _run_forward(ctx, cur, p, hw, current_index, membrane_grad)

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        zb, i = ctx.saved_tensors
        lam_i, _ = _run_backward(ctx, zb, i, grad_z, grad_v)
        return ctx.p.tau_syn * lam_i, None, None, None, None


class EventPropNeuron(torch.autograd.Function):
    """hxtorch-faithful two-channel EventProp neuron (SPEC 14.2-14.3).

    ``EventPropNeuron.apply(input (2,T,B,*F), params, dt, hw_data, current_index,
    membrane_grad)``; ``input[0]`` are the current increments, ``input[1]`` a placeholder
    (zeros). Backward returns ``stack(tau_syn lam_i, lam_v - lam_i)``. Prefer the validated
    wrapper :func:`eventprop_neuron`.
    """

    @staticmethod
    def forward(ctx, input, params, dt=1e-6, hw_data=None, current_index="hxtorch",
                membrane_grad=False):
        cdt = compute_dtype(input.dtype)
        p = _detached(params, float(dt), cdt)
        return _run_forward(ctx, input[0].to(cdt), p, _cast_hw(hw_data, cdt), current_index, membrane_grad)

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        zb, i = ctx.saved_tensors
        lam_i, lam_v = _run_backward(ctx, zb, i, grad_z, grad_v)
        return torch.stack((ctx.p.tau_syn * lam_i, lam_v - lam_i)), None, None, None, None, None


class EventPropSynapse(torch.autograd.Function):
    """hxtorch's two-channel synapse (SPEC 14.4): ``y = input @ W^T`` returned as
    ``stack(y, zeros_like(y))``; backward from ``(g0, g1)``: ``grad_input = g1 @ W``,
    ``grad_W = sum_{t,b} g0^T input``. Use together with :class:`EventPropNeuron`."""

    @staticmethod
    def forward(ctx, input, weight):
        ctx.save_for_backward(input, weight)
        y = torch.matmul(input, weight.t())
        return torch.stack((y, torch.zeros_like(y)))

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        g0, g1 = grad[0], grad[1]
        gi = torch.matmul(g1.to(weight.dtype), weight) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gw = torch.einsum("...o,...i->oi", g0.to(weight.dtype), input.to(weight.dtype))
        return gi, gw


class EventPropLinearLIF(torch.autograd.Function):
    """Synapse + EventProp neuron in one Function (no two-channel tensor). ``apply(x, weight,
    params, dt, hw_data, current_index, membrane_grad)``; see :func:`eventprop_linear_lif`."""

    @staticmethod
    def forward(ctx, x, weight, params, dt=1e-6, hw_data=None, current_index="hxtorch",
                membrane_grad=False):
        cdt = compute_dtype(x.dtype)
        p = _detached(params, float(dt), cdt)
        cur = torch.matmul(x.to(cdt), weight.to(cdt).t())
        return _run_forward(ctx, cur, p, _cast_hw(hw_data, cdt), current_index, membrane_grad, saved=(x, weight))

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        x, weight, zb, i = ctx.saved_tensors
        lam_i, lam_v = _run_backward(ctx, zb, i, grad_z, grad_v)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.matmul(lam_v - lam_i, weight.to(lam_v.dtype)).to(x.dtype)
        if ctx.needs_input_grad[1]:
            g0 = ctx.p.tau_syn * lam_i
            gw = torch.einsum("...o,...i->oi", g0, x.to(g0.dtype)).to(weight.dtype)
        return gx, gw, None, None, None, None, None


# --------------------------------------------------------------------------- validation


def _validate(cur_name: str, cur: Tensor, params, dt, hw_data, current_index, membrane_grad,
              neuron_shape):
    dt = _check_dt(dt)
    _validate_params(params, neuron_shape[1:], cur.device, dt, refractory=False)
    check_choice("current_index", current_index, CURRENT_INDEX)
    check_bool("membrane_grad", membrane_grad)
    if hw_data is None:
        return dt, None
    if not isinstance(hw_data, (tuple, list)) or not 1 <= len(hw_data) <= 3:
        raise TypeError(
            "hw_data: expected a tuple (spikes, membrane_cadc, membrane_madc) or None, "
            f"got {_describe(hw_data)}"
        )
    hw = list(hw_data) + [None] * (3 - len(hw_data))
    if hw[0] is None:
        raise ValueError("hw_data[0] (spikes): EventProp in hardware mode needs the measured spikes, got None")
    for k, name in ((0, "hw_data[0] (spikes)"), (1, "hw_data[1] (membrane_cadc)")):
        if hw[k] is None:
            continue
        check_tensor(name, hw[k])
        if tuple(hw[k].shape) != tuple(neuron_shape):
            raise ValueError(f"{name}: expected shape {tuple(neuron_shape)} (T, B, neurons), got {tuple(hw[k].shape)}")
        if hw[k].device != cur.device:
            raise ValueError(f"{name}: expected a tensor on {cur.device} (the input's device), got {hw[k].device}")
    return dt, (hw[0], hw[1])


# --------------------------------------------------------------------------- public API


def eventprop_lif(
    current: Tensor,
    params: CubaParams = CubaParams(),
    dt: float = 1e-6,
    hw_data=None,
    current_index: str = "hxtorch",
    membrane_grad: bool = False,
):
    """EventProp CUBA LIF over current increments ``current`` of shape ``(T, B, *F)``.

    Returns ``(spikes, membrane, current_trace)``, each ``(T, B, *F)`` (fp32, fp64 for fp64
    input); membrane post-reset, ``None`` in hardware mode without a CADC trace. The gradient
    w.r.t. ``current`` is ``tau_syn * lam_i`` (module docstring); ``current_trace`` carries no
    gradient. ``params``: a :class:`~spikefuse.functional.cuba.CubaParams` (``leak, reset,
    threshold, tau_syn, tau_mem``; the others are unused).

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=10e-6)
    >>> x = torch.zeros(7, 1, 1); x[0] = 1.2; _ = x.requires_grad_()
    >>> z, v, i = eventprop_lif(x, p, dt=1e-6)
    >>> z[5].sum().backward()                     # read as -dL/dt_5 = 1
    >>> round(x.grad[0].item() * 1e6, 4)          # tau_syn * lam_i[0], in 1e-6
    7.8403
    """
    check_sequence("current", current, min_ndim=2)
    dt, hw = _validate(
        "current", current, params, dt, hw_data, current_index, membrane_grad, tuple(current.shape)
    )
    cdt = compute_dtype(current.dtype)
    p = _detached(params, dt, cdt)
    return _EventPropCurrent.apply(current.to(cdt), p, _cast_hw(hw, cdt), current_index, membrane_grad)


def eventprop_neuron(
    input: Tensor,
    params: CubaParams = CubaParams(),
    dt: float = 1e-6,
    hw_data=None,
    current_index: str = "hxtorch",
    membrane_grad: bool = False,
):
    """hxtorch's ``EventPropNeuron`` (two-channel): ``input`` is ``(2, T, B, *F)`` with
    ``input[0]`` the current increments and ``input[1]`` zeros; backward returns
    ``stack(tau_syn lam_i, lam_v - lam_i)``. Returns ``(spikes, membrane, current)``.

    >>> import torch
    >>> w = torch.ones(1, 1, requires_grad=True)
    >>> x = torch.zeros(7, 1, 1); x[0] = 1.2
    >>> z, v, i = eventprop_neuron(eventprop_synapse(x, w), CubaParams(threshold=0.3, tau_syn=5e-6))
    >>> z.flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    """
    check_tensor("input", input, min_ndim=3)
    if input.shape[0] != 2 or input.shape[1] < 1:
        raise ValueError(
            f"input: expected shape (2, T, B, *features) (current increments and a zero "
            f"placeholder, T >= 1), got {tuple(input.shape)}"
        )
    dt, hw = _validate(
        "input", input, params, dt, hw_data, current_index, membrane_grad, tuple(input.shape[1:])
    )
    return EventPropNeuron.apply(input, params, dt, hw, current_index, membrane_grad)


def _check_weight(x: Tensor, weight: Tensor):
    check_tensor("weight", weight, ndim=2)
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(
            f"weight: expected shape (out_features, {x.shape[-1]}) to match the input's last "
            f"dimension, got {tuple(weight.shape)}"
        )
    if weight.device != x.device:
        raise ValueError(f"weight: expected a tensor on {x.device} (the input's device), got {weight.device}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight: expected the dtype of the input ({x.dtype}), got {weight.dtype}; the input "
                        f"and weight of an EventProp synapse must share one dtype (cast one of them)")


def eventprop_synapse(input: Tensor, weight: Tensor) -> Tensor:
    """hxtorch's ``EventPropSynapse``: ``input (T, B, I)``, ``weight (O, I)`` ->
    ``stack(input @ W^T, zeros)`` of shape ``(2, T, B, O)`` (see :class:`EventPropSynapse`).

    >>> import torch
    >>> eventprop_synapse(torch.ones(3, 2, 4), torch.ones(5, 4)).shape
    torch.Size([2, 3, 2, 5])
    """
    check_sequence("input", input, min_ndim=3)
    _check_weight(input, weight)
    return EventPropSynapse.apply(input, weight)


def eventprop_linear_lif(
    x: Tensor,
    weight: Tensor,
    params: CubaParams = CubaParams(),
    dt: float = 1e-6,
    hw_data=None,
    current_index: str = "hxtorch",
    membrane_grad: bool = False,
):
    """A dense EventProp layer: current increments ``x @ weight^T`` (``x`` is ``(T, B, I)``,
    ``weight`` ``(O, I)``) into the EventProp neuron. Returns ``(spikes, membrane, current)``
    ``(T, B, O)``. Gradients: ``dL/dW = sum_{t,b} tau_syn lam_i[t] (x) x[t]`` and
    ``dL/dx = (lam_v - lam_i) @ W``, the same numbers as the two-channel pair
    :func:`eventprop_synapse` + :func:`eventprop_neuron`, so layers can be stacked.

    >>> import torch
    >>> x = torch.zeros(7, 1, 1); x[0] = 1.0
    >>> w = torch.tensor([[1.2]], requires_grad=True)
    >>> z, v, i = eventprop_linear_lif(x, w, CubaParams(threshold=0.3, tau_syn=5e-6))
    >>> z[5].sum().backward(); round(w.grad.item() * 1e6, 4)
    7.8403
    """
    check_sequence("x", x, min_ndim=3)
    _check_weight(x, weight)
    shape = tuple(x.shape[:-1]) + (weight.shape[0],)
    dt, hw = _validate("x", x, params, dt, hw_data, current_index, membrane_grad, shape)
    return EventPropLinearLIF.apply(x, weight, params, dt, hw, current_index, membrane_grad)


# --------------------------------------------------------------------------- surrogate reference


def _check_step(x_prev, state, params, dt) -> float:
    check_tensor("x_prev", x_prev)
    dt = _check_dt(dt)
    v = getattr(state, "v", None)
    if isinstance(v, Tensor) and tuple(v.shape) != tuple(x_prev.shape):
        raise ValueError(f"x_prev: expected the step shape of state.v {tuple(v.shape)}, got {tuple(x_prev.shape)}")
    _validate_state(state, tuple(x_prev.shape), x_prev.device, refractory=False)
    _validate_params(params, tuple(x_prev.shape), x_prev.device, dt, refractory=False)
    return dt


def eventprop_lif_step(x_prev: Tensor, state: CubaState, params: CubaParams = CubaParams(),
                       *, dt: float = 1e-6):
    """One step of the EventProp forward (trusted, differentiable with SuperSpike, alpha =
    ``params.alpha``): ``i = i (1 - dt/tau_syn) + x_prev``; ``v' = v + dt/tau_mem (leak - v +
    i)``; ``z = superspike(v' - threshold)``; ``v = (1 - z.detach()) v' + z.detach() reset``.
    ``x_prev`` is the increment of the previous index (``x[t-1]`` for step ``t``).

    >>> import torch
    >>> s = CubaState(torch.zeros(1), torch.zeros(1), torch.zeros(1))
    >>> z, s = eventprop_lif_step(torch.tensor([1.0]), s, CubaParams(tau_mem=2e-6))
    >>> s.v.item()   # the new current reaches v in the same step
    0.5
    """
    if caller_is_outside():  # eventprop_lif_reference loops it on checked values
        dt = _check_step(x_prev, state, params, dt)
    cdt = state.v.dtype
    a_m = dt / _cast(params.tau_mem, cdt)
    d_s = 1.0 - dt / _cast(params.tau_syn, cdt)
    leak, reset, thr = (_cast(params.leak, cdt), _cast(params.reset, cdt), _cast(params.threshold, cdt))
    i = state.i * d_s + x_prev
    vp = state.v + a_m * (leak - state.v + i)
    z = superspike(vp - thr, _cast(params.alpha, cdt))
    zd = z.detach()
    v = (1.0 - zd) * vp + zd * reset
    return z, CubaState(z, v, i)


def eventprop_lif_reference(current: Tensor, params: CubaParams = CubaParams(), dt: float = 1e-6):
    """The EventProp forward as a plain differentiable loop of :func:`eventprop_lif_step`
    (BPTT with the SuperSpike surrogate). Same forward numbers as :func:`eventprop_lif`.

    >>> import torch
    >>> x = torch.zeros(7, 1, 1); x[0] = 1.2
    >>> z, v, i = eventprop_lif_reference(x, CubaParams(threshold=0.3, tau_syn=5e-6))
    >>> z.flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    """
    check_sequence("current", current, min_ndim=2)
    dt = _check_dt(dt)
    _validate_params(params, tuple(current.shape[1:]), current.device, dt, refractory=False)
    cdt = compute_dtype(current.dtype)
    x = current.to(cdt)
    shape = x.shape[1:]
    zero = torch.zeros(shape, dtype=cdt, device=x.device)
    leak = params.leak
    state = CubaState(zero, zero + (_cast(leak, cdt)), zero)
    zs, vs, is_ = [state.z], [state.v], [state.i]
    for x_prev in x[:-1].unbind(0):  # unbind once: indexing would make backward O(T^2)
        _, state = eventprop_lif_step(x_prev, state, params, dt=dt)
        zs.append(state.z)
        vs.append(state.v)
        is_.append(state.i)
    return torch.stack(zs), torch.stack(vs), torch.stack(is_)


def crossing_offsets(membrane: Tensor, current: Tensor, params: CubaParams = CubaParams(),
                     dt: float = 1e-6) -> Tensor:
    """Sub-step threshold-crossing offsets for the EventProp forward, for
    :func:`spikefuse.losses.first_spike_time`: at step ``k >= 1`` the membrane rises linearly
    from ``v[k-1]`` to ``v'_k = v[k-1] + dt/tau_mem (leak - v[k-1] + i[k])`` (new current); the
    crossing of ``threshold`` lies at fraction ``f`` of the step and the offset is ``f - 1`` in
    ``[-1, 0]`` (``t_k = (k + offset) dt``, continuous in the weights). Step 0 gets 0. No
    gradient.

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=10e-6)
    >>> x = torch.zeros(7, 1, 1); x[0] = 1.2
    >>> z, v, i = eventprop_lif(x, p)
    >>> round(crossing_offsets(v, i, p)[5].item(), 4)
    -0.7854
    """
    dt = _check_traces(membrane, current, params, dt)
    with torch.no_grad():
        cdt = compute_dtype(membrane.dtype)
        p = _detached(params, dt, cdt)
        v_prev = membrane[:-1].to(cdt)
        v_pre = v_prev + (dt / p.tau_mem) * (p.leak - v_prev + current[1:].to(cdt))
        off = _offsets(v_prev, v_pre, p.threshold)
        return torch.cat([torch.zeros_like(membrane[:1], dtype=cdt), off])
