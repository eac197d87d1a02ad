"""Forward-Euler dynamics of the NIR neuron nodes (``LI``, ``I``, ``LIF``, ``IF``, ``CubaLIF``,
``CubaLI``): one step of length ``dt`` of each node's ODE, with the input ``x[t]`` held over the
step. The equations are listed in docs/nir.md; :mod:`spikefuse.interop.nir` runs imported NIR
graphs with these functions (its ``NIR*`` modules are thin wrappers), and re-exports them.

- :func:`euler_step` / :func:`euler_multistep` over :class:`EulerParams` / :class:`EulerState`
- :func:`cuba_euler_step` / :func:`cuba_euler_multistep` over :class:`CubaEulerParams` /
  :class:`CubaEulerState` (the current first, then ``v`` advanced with the current of the same
  step, ``i[t]``: the discretisation every NIR tool that runs CubaLIF uses, docs/nir.md)
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .. import surrogate as _surrogate
from .._core import compute_dtype as _compute_dtype
from .._validate import _describe, check_sequence, check_tensor
from .._validate import (bool_field, callable_field, caller_is_outside, check_bool, check_number, checked_record,
                         number_field, tensor_field)
from ..surrogate import Surrogate

__all__ = [
    "EulerParams",
    "EulerState",
    "euler_step",
    "euler_multistep",
    "CubaEulerParams",
    "CubaEulerState",
    "cuba_euler_step",
    "cuba_euler_multistep",
]


@checked_record(dt=number_field(), tau=number_field(optional=True), r=number_field(), v_leak=number_field(optional=True),
                v_threshold=number_field(optional=True), v_reset=number_field(optional=True),
                surrogate=callable_field, detach_reset=bool_field, strict=bool_field)
class EulerParams(NamedTuple):
    """Parameters of the NIR ``LI`` / ``I`` / ``LIF`` / ``IF`` nodes, one Euler step of ``dt``.

    Tensors broadcast against one step ``(B, *features)``. ``tau=None``: no leak (``I``/``IF``,
    ``v += dt * r * x``). ``v_threshold=None``: no spike (``LI``/``I``, the output is ``v``).
    ``surrogate`` gives the spike's backward; ``detach_reset`` cuts the reset from the graph;
    ``strict``: spike on ``v > v_threshold`` (NIR), ``False``: on ``v >= v_threshold``
    (SpikingJelly, sinabs).

    >>> p = EulerParams(dt=1.0, tau=torch.tensor(2.0), r=torch.tensor(1.0),
    ...                 v_leak=torch.tensor(0.0))
    >>> p.v_threshold is None
    True
    """

    dt: float
    tau: Optional[Tensor]
    r: Tensor
    v_leak: Optional[Tensor] = None
    v_threshold: Optional[Tensor] = None
    v_reset: Optional[Tensor] = None
    surrogate: Surrogate = _surrogate.ATan(2.0)
    detach_reset: bool = False
    strict: bool = True


@checked_record(v=tensor_field(floating=True))
class EulerState(NamedTuple):
    """Membrane ``v`` after the step (after the reset for spiking nodes), ``(B, *features)``."""

    v: Tensor


def _euler_initial(params: EulerParams, shape, device, dtype) -> EulerState:
    if params.tau is not None and params.v_leak is not None:
        v0 = params.v_leak
    elif params.v_threshold is not None and params.v_reset is not None:
        v0 = params.v_reset
    else:
        v0 = torch.zeros((), dtype=dtype, device=device)
    return EulerState(torch.zeros(shape, dtype=dtype, device=device) + v0.to(device=device, dtype=dtype))


def euler_step(x: Tensor, state: EulerState, params: EulerParams) -> Tuple[Tensor, EulerState]:
    """One forward-Euler step of a NIR ``LI``/``I``/``LIF``/``IF`` node (equations in docs/nir.md).

    Returns ``(output, new_state)``: the output is the spike ``z`` for spiking nodes and the
    voltage otherwise.

    >>> p = EulerParams(dt=0.5, tau=torch.tensor(1.0), r=torch.tensor(1.0),
    ...                 v_leak=torch.tensor(0.0), v_threshold=torch.tensor(0.4),
    ...                 v_reset=torch.tensor(0.0))
    >>> z, s = euler_step(torch.ones(1, 1), EulerState(torch.zeros(1, 1)), p)
    >>> z.item(), s.v.item()
    (1.0, 0.0)
    """
    if caller_is_outside():  # euler_multistep loops it on checked values
        _check_step(x, state, params, EulerState, EulerParams)
    v = state.v
    if params.tau is None:
        u = v + params.dt * params.r * x
    else:
        u = v + (params.dt / params.tau) * (params.v_leak - v + params.r * x)
    if params.v_threshold is None:
        return u, EulerState(u)
    z = params.surrogate(u - params.v_threshold, strict=params.strict)
    zr = z.detach() if params.detach_reset else z
    v_new = u - zr * (u - params.v_reset)
    return z, EulerState(v_new)


def _check_state(name, state, cls, x_seq) -> None:
    if not isinstance(state, cls):
        raise TypeError(f"{name}: expected a {cls.__name__}, got {_describe(state)}")
    for field, t in zip(cls._fields, state):
        check_tensor(f"{name}.{field}", t)
        if tuple(t.shape) != tuple(x_seq.shape[1:]):
            raise ValueError(f"{name}.{field}: expected shape {tuple(x_seq.shape[1:])} (one step of x_seq), "
                             f"got {tuple(t.shape)}")
        if t.device != x_seq.device:
            raise ValueError(f"{name}.{field}: expected a tensor on {x_seq.device}, got one on {t.device}")


def _check_params(params, cls) -> None:
    """The structure the Euler step relies on (values: checked when the record is built)."""
    if not isinstance(params, cls):
        raise TypeError(f"params: expected a {cls.__name__}, got {_describe(params)}")
    check_number("params.dt", params.dt, gt=0)
    if getattr(params, "tau", 1.0) is not None and params.v_leak is None:
        raise ValueError("params.v_leak: a leaky node (tau given) needs v_leak, got None")
    if params.v_threshold is not None and params.v_reset is None:
        raise ValueError("params.v_reset: a spiking node (v_threshold given) needs v_reset, got None")
    if not isinstance(params.surrogate, Surrogate):
        raise TypeError(f"params.surrogate: expected a spikefuse.surrogate.Surrogate, got {_describe(params.surrogate)}")


def _check_step(x, state, params, state_cls, params_cls) -> None:
    check_tensor("x", x, min_ndim=1)
    _check_state("state", state, state_cls, x.unsqueeze(0))
    _check_params(params, params_cls)


def _cast_params(params, dtype, device):
    def c(p):
        return p.to(dtype=dtype, device=device) if isinstance(p, Tensor) else p
    return type(params)(*(c(p) for p in params))


def euler_multistep(x_seq: Tensor, params: EulerParams, state: Optional[EulerState] = None,
                    backend=None, return_traces: bool = False):
    """Loop :func:`euler_step` over ``x_seq`` ``(T, B, *features)``.

    Returns ``(out_seq, state)`` or, with ``return_traces``, ``(out_seq, state, v_seq)``
    where ``v_seq`` is the membrane after each step. ``backend`` is accepted for the common
    multi-step signature; only the reference loop exists. The state is computed in fp32
    (fp64 for fp64 input); outputs are returned in the input dtype.

    >>> p = EulerParams(dt=1.0, tau=torch.tensor(2.0), r=torch.tensor(1.0), v_leak=torch.tensor(0.0))
    >>> euler_multistep(torch.ones(3, 1, 1), p)[0].flatten().tolist()
    [0.5, 0.75, 0.875]
    """
    check_sequence("x_seq", x_seq)
    check_bool("return_traces", return_traces)
    _check_params(params, EulerParams)
    cd = _compute_dtype(x_seq.dtype)
    params = _cast_params(params, cd, x_seq.device)
    if state is None:
        state = _euler_initial(params, x_seq.shape[1:], x_seq.device, cd)
    else:
        _check_state("state", state, EulerState, x_seq)
        state = EulerState(state.v.to(cd))
    outs, vs = [], []
    xf = x_seq.to(cd)
    for t in range(x_seq.shape[0]):
        o, state = euler_step(xf[t], state, params)
        outs.append(o)
        if return_traces:
            vs.append(state.v)
    out = torch.stack(outs).to(x_seq.dtype)
    if return_traces:
        return out, state, torch.stack(vs)
    return out, state


@checked_record(dt=number_field(), tau_syn=number_field(), tau_mem=number_field(), r=number_field(), v_leak=number_field(),
                w_in=number_field(), v_threshold=number_field(optional=True), v_reset=number_field(optional=True),
                surrogate=callable_field, detach_reset=bool_field, strict=bool_field)
class CubaEulerParams(NamedTuple):
    """Parameters of the NIR ``CubaLIF`` / ``CubaLI`` nodes (``v_threshold=None``: CubaLI).

    >>> CubaEulerParams(dt=1e-3, tau_syn=torch.tensor(5e-3), tau_mem=torch.tensor(1e-2),
    ...                 r=torch.tensor(1.0), v_leak=torch.tensor(0.0),
    ...                 w_in=torch.tensor(1.0)).v_threshold is None
    True
    """

    dt: float
    tau_syn: Tensor
    tau_mem: Tensor
    r: Tensor
    v_leak: Tensor
    w_in: Tensor
    v_threshold: Optional[Tensor] = None
    v_reset: Optional[Tensor] = None
    surrogate: Surrogate = _surrogate.ATan(2.0)
    detach_reset: bool = False
    strict: bool = True


@checked_record(i=tensor_field(floating=True), v=tensor_field(floating=True))
class CubaEulerState(NamedTuple):
    """Synaptic current ``i`` and membrane ``v`` (after the reset), each ``(B, *features)``."""

    i: Tensor
    v: Tensor


def cuba_euler_step(x: Tensor, state: CubaEulerState, params: CubaEulerParams):
    """One forward-Euler step of a NIR ``CubaLIF``/``CubaLI`` node, current first: ``i[t] =
    i + dt/tau_syn (w_in x[t] - i)``, then ``v`` is advanced with that same-step current,
    ``u = v + dt/tau_mem (v_leak - v + r i[t])`` (snnTorch, norse, SpikingJelly and lava-dl order;
    hxtorch's CUBA uses ``i[t-1]``, which NIR writes as a one-step ``Delay`` in front).

    >>> p = CubaEulerParams(dt=1.0, tau_syn=torch.tensor(2.0), tau_mem=torch.tensor(2.0),
    ...                     r=torch.tensor(1.0), v_leak=torch.tensor(0.0), w_in=torch.tensor(2.0))
    >>> v, s = cuba_euler_step(torch.ones(1, 1), CubaEulerState(torch.zeros(1, 1), torch.zeros(1, 1)), p)
    >>> v.item(), s.i.item()
    (0.5, 1.0)
    """
    if caller_is_outside():  # cuba_euler_multistep loops it on checked values
        _check_step(x, state, params, CubaEulerState, CubaEulerParams)
    i, v = state
    i_new = i + (params.dt / params.tau_syn) * (params.w_in * x - i)
    u = v + (params.dt / params.tau_mem) * (params.v_leak - v + params.r * i_new)
    if params.v_threshold is None:
        return u, CubaEulerState(i_new, u)
    z = params.surrogate(u - params.v_threshold, strict=params.strict)
    zr = z.detach() if params.detach_reset else z
    return z, CubaEulerState(i_new, u - zr * (u - params.v_reset))


def cuba_euler_multistep(x_seq: Tensor, params: CubaEulerParams, state: Optional[CubaEulerState] = None,
                         backend=None, return_traces: bool = False):
    """Loop :func:`cuba_euler_step`; initial state ``i = 0``, ``v = v_leak``.

    Returns ``(out_seq, state)`` or ``(out_seq, state, (i_seq, v_seq))`` with traces.

    >>> p = CubaEulerParams(dt=1.0, tau_syn=torch.tensor(2.0), tau_mem=torch.tensor(2.0),
    ...                     r=torch.tensor(1.0), v_leak=torch.tensor(0.0), w_in=torch.tensor(2.0))
    >>> cuba_euler_multistep(torch.ones(3, 1, 1), p)[0].flatten().tolist()
    [0.5, 1.0, 1.375]
    """
    check_sequence("x_seq", x_seq)
    check_bool("return_traces", return_traces)
    _check_params(params, CubaEulerParams)
    cd = _compute_dtype(x_seq.dtype)
    params = _cast_params(params, cd, x_seq.device)
    shape = x_seq.shape[1:]
    if state is None:
        state = CubaEulerState(torch.zeros(shape, dtype=cd, device=x_seq.device),
                               torch.zeros(shape, dtype=cd, device=x_seq.device) + params.v_leak)
    else:
        _check_state("state", state, CubaEulerState, x_seq)
        state = CubaEulerState(state.i.to(cd), state.v.to(cd))
    xf = x_seq.to(cd)
    outs, is_, vs = [], [], []
    for t in range(x_seq.shape[0]):
        o, state = cuba_euler_step(xf[t], state, params)
        outs.append(o)
        if return_traces:
            is_.append(state.i)
            vs.append(state.v)
    out = torch.stack(outs).to(x_seq.dtype)
    if return_traces:
        return out, state, (torch.stack(is_), torch.stack(vs))
    return out, state
