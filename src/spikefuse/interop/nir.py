"""Export to / import from the Neuromorphic Intermediate Representation (NIR).

NIR (https://nnir.readthedocs.io) describes a network as a graph of continuous-time nodes
(``LIF``, ``CubaLIF``, ``LI``, ``Affine``, ``Conv2d``, ...). spikefuse models run in discrete
time, so every conversion fixes a time step ``dt`` and a discretisation. spikefuse uses the
**forward Euler** step of each NIR ODE, with the input sample ``x[t]`` held over the step
``[t-1, t]``:

=============  ==============================================================================
NIR node       one step of length ``dt`` (``v[-1]`` is the initial state)
=============  ==============================================================================
``LI``         ``v[t] = v[t-1] + dt/tau * (v_leak - v[t-1] + r * x[t])``; output ``v[t]``;
               ``v[-1] = v_leak``
``I``          ``v[t] = v[t-1] + dt * r * x[t]``; output ``v[t]``; ``v[-1] = 0``
``LIF``        ``u = v[t-1] + dt/tau * (v_leak - v[t-1] + r * x[t])``; ``z = 1[u > v_threshold]``;
               ``v[t] = v_reset if z else u``; output ``z``; ``v[-1] = v_leak``
``IF``         ``u = v[t-1] + dt * r * x[t]``; spike and reset as LIF; ``v[-1] = v_reset``
``CubaLIF``    ``i[t] = i[t-1] + dt/tau_syn * (w_in * x[t] - i[t-1])``;
               ``u = v[t-1] + dt/tau_mem * (v_leak - v[t-1] + r * i[t-1])``; spike and reset as
               LIF; ``i[-1] = 0``, ``v[-1] = v_leak``
``CubaLI``     the CubaLIF step without spike and reset; output ``v[t]``
``Threshold``  ``z = 1[x > threshold]``
``Scale``      ``y = scale * x``;  ``Affine``: ``y = W x + b``;  ``Linear``: ``y = W x``
``Delay``      ``y[t] = x[t - k]`` with ``k = delay / dt`` whole steps (zeros before the start)
``Conv*``,     per time step (time folded into batch), zero padding; ``AvgPool2d`` counts
pools          the zero padding in the average (PyTorch's default)
``Flatten``    ``start_dim``/``end_dim`` index the node's shape, which excludes time and batch
=============  ==============================================================================

The CubaLIF step is plain forward Euler: the voltage is advanced with the current at the
*start* of the step, so an input first moves ``v`` one step after it enters ``i``. That is
exactly the BrainScaleS-2 / hxtorch step of :class:`spikefuse.neuron.CubaLIF` (SPEC.md 13.1):
its "one-step synaptic delay" is the forward Euler step, not an extra delay. Simulators that
advance ``v`` with the *new* current (snnTorch ``Synaptic``, lava-dl CUBA) differ from this by
one step on the synaptic path.

spikefuse modules and their NIR nodes (``tau`` in steps for the SpikingJelly family):

===============================  =============================================================
spikefuse                        NIR (continuous time, step ``dt``)
===============================  =============================================================
``neuron.LIF`` (tau, hard reset) ``LIF(tau=tau*dt, r=1, v_leak=v_reset, v_threshold, v_reset)``;
                                 ``decay_input=False``: ``r = tau``
``neuron.IF`` (hard reset)       ``IF(r=1/dt, v_threshold, v_reset)``
``neuron.ParametricLIF``         as LIF with the current ``tau = 1/sigmoid(w)``
``neuron.CubaLIF`` (hxtorch)     ``CubaLIF(tau_syn, tau_mem, r=1, v_leak=leak, v_threshold=
                                 threshold, v_reset=reset, w_in=tau_syn/dt)`` (module ``dt``
                                 must equal the export ``dt``)
``neuron.EventPropLIF``          ``Linear(W) -> CubaLIF`` as above (same forward recurrence)
``layers.LeakyIntegrator``       ``LI(tau=tau*dt, r=1 (decay_input) or tau, v_leak=0)``
``layers.Dense`` / nn.Linear     ``Affine(W, b)`` (``Linear(W)`` without bias); the weight hook
                                 is applied before export (e.g. 8-bit weights)
``layers.Conv1d`` / ``Conv2d``   ``Conv1d`` / ``Conv2d`` (grouped: block-diagonal ``groups=1``)
``layers.Avg/SumPool2d``        ``AvgPool2d`` / ``SumPool2d``
``layers.Flatten``               ``Flatten(start_dim=0, end_dim=-1)``
``layers.RecurrentLIF``          ``Affine -> LIF``, ``LIF -> Linear -> LIF`` (a cycle; the
                                 feedback edge carries the previous step's spikes)
``neuron.loihi.cuba.Neuron``     ``lossy=True`` only: ``CubaLIF(tau_syn=dt/du, tau_mem=dt/dv,
                                 w_in=1/du, r=1/dv, v_leak=0, v_threshold, v_reset=0)``
``nn.Identity``, dropout         nothing (identity at inference)
``interop.nir`` modules          their own node (``NIRLIF``, ``NIRCubaLIF``, ``Threshold``, ...)
===============================  =============================================================

The full mapping, with what each direction keeps and loses, is in ``docs/nir.md``.

What NIR cannot carry, and what spikefuse does about it:

- SpikingJelly fires on ``H >= v_threshold``; NIR on ``v > v_threshold`` (differs only when the
  voltage hits the threshold exactly).
- Soft reset (``v_reset=None``) has no NIR node: :func:`to_nir` refuses it unless
  ``lossy=True`` (then it is written as a reset to 0, with a warning).
- Surrogate gradients, ``detach_reset``, SpikingJelly's ``>=``, EventProp's adjoint gradient,
  learnable parameters and the module class are not NIR concepts; :func:`to_nir` records
  them in each node's ``metadata["spikefuse"]`` and :func:`from_nir` restores the original
  spikefuse module from them (``use_metadata=True``), so a spikefuse -> NIR -> spikefuse round
  trip gives identical outputs. Other NIR tools ignore the metadata.
- Loihi CUBA: fixed point, and its voltage uses the current of the same step; exported only
  with ``lossy=True`` as the float ``CubaLIF`` (``tau = dt/decay``), one step slower on the
  synaptic path.
- Not expressible: refractory CUBA, the other Loihi neurons, max pooling, readouts that
  reduce over time (``SpikeCount``, ``MaxOverTime``, ``MeanOverTime``, ``MaxMembrane``), custom
  modules. :func:`to_nir` raises :class:`NIRConversionError` naming the module;
  :func:`from_nir` raises it for NIR node types spikefuse does not know.

>>> import torch
>>> from spikefuse import layers
>>> from spikefuse.interop.nir import to_nir, from_nir
>>> net = torch.nn.Sequential(layers.Dense(3, 4), layers.LeakyIntegrator(tau=2.0))
>>> graph = to_nir(net, dt=1e-3)
>>> sorted(graph.nodes)
['0', '1', 'input', 'output']
>>> back = from_nir(graph, dt=1e-3)
>>> x = torch.rand(5, 2, 3)
>>> torch.equal(back(x), net(x))
True
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections import OrderedDict
from numbers import Real
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .. import layers as _layers
from .. import surrogate as _surrogate
from .._validate import _describe, check_bool, check_sequence, check_tensor
from ..surrogate import Surrogate

try:  # optional dependency
    import nir as _nir
except ImportError:  # pragma: no cover - exercised only without nir installed
    _nir = None

__all__ = [
    "to_nir",
    "from_nir",
    "NIRConversionError",
    "EulerParams",
    "EulerState",
    "euler_step",
    "euler_multistep",
    "CubaEulerParams",
    "CubaEulerState",
    "cuba_euler_step",
    "cuba_euler_multistep",
    "NIRLIF",
    "NIRIF",
    "NIRLI",
    "NIRIntegrator",
    "NIRCubaLIF",
    "NIRCubaLI",
    "Threshold",
    "Scale",
    "NIRFlatten",
    "Delay",
    "NIRGraphModule",
]


class NIRConversionError(ValueError):
    """A module (export) or a NIR node (import) has no counterpart on the other side.

    >>> issubclass(NIRConversionError, ValueError)
    True
    """


def _require_nir():
    if _nir is None:  # pragma: no cover
        raise ImportError("spikefuse.interop.nir needs the 'nir' package: pip install spikefuse[nir]")
    return _nir


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, Real):
        if isinstance(dt, Tensor) and dt.numel() == 1 and dt.is_floating_point():
            dt = float(dt)
        else:
            raise TypeError(f"dt: expected a positive number (the time step in seconds), got {_describe(dt)}")
    dt = float(dt)
    if not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt: expected a finite number > 0 (the time step in seconds), got {dt!r}")
    return dt


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ============================================================================================
# Forward-Euler reference dynamics of the NIR neuron nodes
# ============================================================================================
class EulerParams(NamedTuple):
    """Parameters of the NIR ``LI`` / ``I`` / ``LIF`` / ``IF`` nodes, one Euler step of ``dt``.

    Tensors broadcast against one step ``(B, *features)``. ``tau=None``: no leak (``I``/``IF``,
    ``v += dt * r * x``). ``v_threshold=None``: no spike (``LI``/``I``, the output is ``v``).
    ``surrogate`` gives the spike's backward; ``detach_reset`` cuts the reset from the graph.

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
    """One forward-Euler step of a NIR ``LI``/``I``/``LIF``/``IF`` node (see the module table).

    Returns ``(output, new_state)``: the output is the spike ``z`` for spiking nodes and the
    voltage otherwise.

    >>> p = EulerParams(dt=0.5, tau=torch.tensor(1.0), r=torch.tensor(1.0),
    ...                 v_leak=torch.tensor(0.0), v_threshold=torch.tensor(0.4),
    ...                 v_reset=torch.tensor(0.0))
    >>> z, s = euler_step(torch.ones(1, 1), EulerState(torch.zeros(1, 1)), p)
    >>> z.item(), s.v.item()
    (1.0, 0.0)
    """
    v = state.v
    if params.tau is None:
        u = v + params.dt * params.r * x
    else:
        u = v + (params.dt / params.tau) * (params.v_leak - v + params.r * x)
    if params.v_threshold is None:
        return u, EulerState(u)
    z = params.surrogate(u - params.v_threshold, strict=True)
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


class CubaEulerState(NamedTuple):
    """Synaptic current ``i`` and membrane ``v`` (after the reset), each ``(B, *features)``."""

    i: Tensor
    v: Tensor


def cuba_euler_step(x: Tensor, state: CubaEulerState, params: CubaEulerParams):
    """One forward-Euler step of a NIR ``CubaLIF``/``CubaLI`` node: both derivatives are
    evaluated at the start of the step, so ``v`` is advanced with the old current ``i[t-1]``.

    >>> p = CubaEulerParams(dt=1.0, tau_syn=torch.tensor(2.0), tau_mem=torch.tensor(2.0),
    ...                     r=torch.tensor(1.0), v_leak=torch.tensor(0.0), w_in=torch.tensor(2.0))
    >>> v, s = cuba_euler_step(torch.ones(1, 1), CubaEulerState(torch.zeros(1, 1), torch.zeros(1, 1)), p)
    >>> v.item(), s.i.item()
    (0.0, 1.0)
    """
    i, v = state
    i_new = i + (params.dt / params.tau_syn) * (params.w_in * x - i)
    u = v + (params.dt / params.tau_mem) * (params.v_leak - v + params.r * i)
    if params.v_threshold is None:
        return u, CubaEulerState(i_new, u)
    z = params.surrogate(u - params.v_threshold, strict=True)
    zr = z.detach() if params.detach_reset else z
    return z, CubaEulerState(i_new, u - zr * (u - params.v_reset))


def cuba_euler_multistep(x_seq: Tensor, params: CubaEulerParams, state: Optional[CubaEulerState] = None,
                         backend=None, return_traces: bool = False):
    """Loop :func:`cuba_euler_step`; initial state ``i = 0``, ``v = v_leak``.

    Returns ``(out_seq, state)`` or ``(out_seq, state, (i_seq, v_seq))`` with traces.

    >>> p = CubaEulerParams(dt=1.0, tau_syn=torch.tensor(2.0), tau_mem=torch.tensor(2.0),
    ...                     r=torch.tensor(1.0), v_leak=torch.tensor(0.0), w_in=torch.tensor(2.0))
    >>> cuba_euler_multistep(torch.ones(3, 1, 1), p)[0].flatten().tolist()
    [0.0, 0.5, 1.0]
    """
    check_sequence("x_seq", x_seq)
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


# ============================================================================================
# Modules that run NIR nodes on (T, B, *features)
# ============================================================================================
def _param_tensor(name: str, value, shape=None) -> Tensor:
    """A finite float32 tensor from a number / array / tensor (broadcast to ``shape``)."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a number or an array, got bool")
    if isinstance(value, Tensor):
        t = value.detach().to(torch.float32).cpu()
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a number or a numeric array, got {_describe(value)}") from None
        t = torch.as_tensor(arr, dtype=torch.float32)
    if t.numel() and not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or inf values")
    if shape is not None:
        try:
            t = torch.broadcast_to(t, tuple(shape)).clone()
        except RuntimeError:
            raise ValueError(f"{name}: shape {tuple(t.shape)} does not broadcast to {tuple(shape)}") from None
    return t


def _check_tau(name: str, tau: Tensor, dt: float) -> None:
    if not bool((tau > 0).all()):
        raise ValueError(f"{name}: time constants must be > 0, got min {tau.min().item():g}")
    ratio = dt / tau.double()
    if not bool((ratio <= 1 + 1e-6).all()):
        raise ValueError(
            f"{name}: forward Euler with dt={dt:g} needs dt/{name} <= 1 (dt <= {name}), got "
            f"min {name} {tau.min().item():g}; use a smaller dt")


def _resolve_surrogate(surrogate) -> Surrogate:
    return _surrogate.get(surrogate if surrogate is not None else "atan")


class _NIRNeuronBase(nn.Module):
    """Shared plumbing: parameter buffers, feature-shape check, state handling."""

    def _check_x(self, x):
        check_sequence("x", x)
        shape = tuple(self.r.shape)
        if shape and tuple(x.shape[2:]) != shape:
            raise ValueError(f"x: expected a sequence (T, B, {', '.join(map(str, shape))}) matching the "
                             f"node shape {shape}, got shape {tuple(x.shape)}")

    def reset(self):
        """No persistent state: every forward starts at the initial state (kept for reset_states)."""


class _EulerNeuron(_NIRNeuronBase):
    _has_leak = True
    _spiking = True

    def __init__(self, *, dt, r, tau=None, v_leak=None, v_threshold=None, v_reset=None,
                 surrogate=None, detach_reset=False):
        super().__init__()
        self.dt = _check_dt(dt)
        r = _param_tensor("r", r)
        shape = r.shape
        for k, p in (("tau", tau), ("v_leak", v_leak), ("v_threshold", v_threshold), ("v_reset", v_reset)):
            if p is not None:
                try:
                    shape = torch.broadcast_shapes(shape, _param_tensor(k, p).shape)
                except RuntimeError:
                    raise ValueError(f"{k}: shape {tuple(_param_tensor(k, p).shape)} does not broadcast "
                                     f"against r of shape {tuple(r.shape)}") from None
        self.register_buffer("r", _param_tensor("r", r, shape))
        if self._has_leak:
            tau_t = _param_tensor("tau", tau, shape)
            _check_tau("tau", tau_t, self.dt)
            self.register_buffer("tau", tau_t)
            self.register_buffer("v_leak", _param_tensor("v_leak", 0.0 if v_leak is None else v_leak, shape))
        else:
            self.tau = None
            self.v_leak = None
        if self._spiking:
            self.register_buffer("v_threshold", _param_tensor("v_threshold", v_threshold, shape))
            self.register_buffer("v_reset", _param_tensor("v_reset", 0.0 if v_reset is None else v_reset, shape))
            self.surrogate = _resolve_surrogate(surrogate)
            self.detach_reset = check_bool("detach_reset", detach_reset)
        else:
            self.v_threshold = None
            self.v_reset = None
            self.surrogate = _resolve_surrogate(surrogate)
            self.detach_reset = False

    @property
    def params(self) -> EulerParams:
        return EulerParams(self.dt, self.tau, self.r, self.v_leak, self.v_threshold, self.v_reset,
                           self.surrogate, self.detach_reset)

    def extra_repr(self):
        return f"shape={tuple(self.r.shape)}, dt={self.dt:g}"

    def forward(self, x: Tensor, state: Optional[EulerState] = None, return_state: bool = False):
        self._check_x(x)
        out, st = euler_multistep(x, self.params, state)
        return (out, st) if return_state else out


class NIRLIF(_EulerNeuron):
    """NIR ``LIF`` node, forward Euler with step ``dt`` (strict ``v > v_threshold``).

    >>> m = NIRLIF(tau=[2e-3], r=[1.0], v_leak=[0.0], v_threshold=[0.5], v_reset=[0.0], dt=1e-3)
    >>> m(torch.ones(3, 1, 1)).flatten().tolist()
    [0.0, 1.0, 0.0]
    """

    def __init__(self, tau, r, v_leak, v_threshold, v_reset=None, *, dt, surrogate=None, detach_reset=False):
        super().__init__(dt=dt, r=r, tau=tau, v_leak=v_leak, v_threshold=v_threshold, v_reset=v_reset,
                         surrogate=surrogate, detach_reset=detach_reset)


class NIRIF(_EulerNeuron):
    """NIR ``IF`` node: ``v += dt * r * x``, spike on ``v > v_threshold``, reset to ``v_reset``.

    >>> NIRIF(r=[1000.0], v_threshold=[1.5], dt=1e-3)(torch.ones(4, 1, 1)).flatten().tolist()
    [0.0, 1.0, 0.0, 1.0]
    """

    _has_leak = False

    def __init__(self, r, v_threshold, v_reset=None, *, dt, surrogate=None, detach_reset=False):
        super().__init__(dt=dt, r=r, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate,
                         detach_reset=detach_reset)


class NIRLI(_EulerNeuron):
    """NIR ``LI`` node (non-spiking leaky integrator); returns the membrane over time.

    >>> NIRLI(tau=[2.0], r=[1.0], v_leak=[0.0], dt=1.0)(torch.ones(3, 1, 1)).flatten().tolist()
    [0.5, 0.75, 0.875]
    """

    _spiking = False

    def __init__(self, tau, r, v_leak, *, dt):
        super().__init__(dt=dt, r=r, tau=tau, v_leak=v_leak)


class NIRIntegrator(_EulerNeuron):
    """NIR ``I`` node (integrator): ``v += dt * r * x``; returns the membrane over time.

    >>> NIRIntegrator(r=[2.0], dt=0.5)(torch.ones(3, 1, 1)).flatten().tolist()
    [1.0, 2.0, 3.0]
    """

    _has_leak = False
    _spiking = False

    def __init__(self, r, *, dt):
        super().__init__(dt=dt, r=r)


class _CubaEulerNeuron(_NIRNeuronBase):
    _spiking = True

    def __init__(self, *, dt, tau_syn, tau_mem, r, v_leak, w_in=1.0, v_threshold=None, v_reset=None,
                 surrogate=None, detach_reset=False):
        super().__init__()
        self.dt = _check_dt(dt)
        vals = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in)
        if self._spiking:
            vals.update(v_threshold=v_threshold, v_reset=0.0 if v_reset is None else v_reset)
        shape = torch.Size([])
        for k, v in vals.items():
            try:
                shape = torch.broadcast_shapes(shape, _param_tensor(k, v).shape)
            except RuntimeError:
                raise ValueError(f"{k}: shape {tuple(_param_tensor(k, v).shape)} does not broadcast "
                                 f"against the other parameters' shape {tuple(shape)}") from None
        for k, v in vals.items():
            self.register_buffer(k, _param_tensor(k, v, shape))
        _check_tau("tau_syn", self.tau_syn, self.dt)
        _check_tau("tau_mem", self.tau_mem, self.dt)
        if not self._spiking:
            self.v_threshold = None
            self.v_reset = None
        self.surrogate = _resolve_surrogate(surrogate)
        self.detach_reset = check_bool("detach_reset", detach_reset)

    @property
    def params(self) -> CubaEulerParams:
        return CubaEulerParams(self.dt, self.tau_syn, self.tau_mem, self.r, self.v_leak, self.w_in,
                               self.v_threshold, self.v_reset, self.surrogate, self.detach_reset)

    def extra_repr(self):
        return f"shape={tuple(self.r.shape)}, dt={self.dt:g}"

    def forward(self, x: Tensor, state: Optional[CubaEulerState] = None, return_state: bool = False):
        self._check_x(x)
        out, st = cuba_euler_multistep(x, self.params, state)
        return (out, st) if return_state else out


class NIRCubaLIF(_CubaEulerNeuron):
    """NIR ``CubaLIF`` node, forward Euler (the voltage uses the current of the previous step).

    >>> m = NIRCubaLIF(tau_syn=[2.0], tau_mem=[2.0], r=[1.0], v_leak=[0.0], v_threshold=[0.4],
    ...                w_in=[2.0], dt=1.0)
    >>> m(torch.ones(3, 1, 1)).flatten().tolist()   # i = 1, 1.5, 1.75; v = 0, 0.5 -> 0, 0.75 -> 0
    [0.0, 1.0, 1.0]
    """

    def __init__(self, tau_syn, tau_mem, r, v_leak, v_threshold, v_reset=None, w_in=1.0, *, dt,
                 surrogate=None, detach_reset=False):
        super().__init__(dt=dt, tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in,
                         v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate,
                         detach_reset=detach_reset)


class NIRCubaLI(_CubaEulerNeuron):
    """NIR ``CubaLI`` node (non-spiking); returns the membrane over time.

    >>> m = NIRCubaLI(tau_syn=[2.0], tau_mem=[2.0], r=[1.0], v_leak=[0.0], w_in=[2.0], dt=1.0)
    >>> m(torch.ones(3, 1, 1)).flatten().tolist()
    [0.0, 0.5, 1.0]
    """

    _spiking = False

    def __init__(self, tau_syn, tau_mem, r, v_leak, w_in=1.0, *, dt):
        super().__init__(dt=dt, tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in)


class Threshold(nn.Module):
    """NIR ``Threshold`` on ``(T, B, *features)``: ``z = 1[x > threshold]`` with a surrogate
    gradient (default ATan(2)).

    >>> Threshold([0.5])(torch.tensor([[[0.2]], [[0.5]], [[0.7]]])).flatten().tolist()
    [0.0, 0.0, 1.0]
    """

    def __init__(self, threshold, surrogate=None):
        super().__init__()
        self.register_buffer("threshold", _param_tensor("threshold", threshold))
        self.surrogate = _resolve_surrogate(surrogate)

    def extra_repr(self):
        return f"shape={tuple(self.threshold.shape)}"

    def forward(self, x):
        check_sequence("x", x)
        return self.surrogate(x - self.threshold.to(x.dtype), strict=True)


class Scale(nn.Module):
    """NIR ``Scale`` on ``(T, B, *features)``: ``y = scale * x`` (elementwise over features).

    >>> Scale([2.0, -1.0])(torch.ones(1, 1, 2)).flatten().tolist()
    [2.0, -1.0]
    """

    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", _param_tensor("scale", scale))

    def extra_repr(self):
        return f"shape={tuple(self.scale.shape)}"

    def forward(self, x):
        check_sequence("x", x)
        return x * self.scale.to(x.dtype)


class NIRFlatten(nn.Module):
    """NIR ``Flatten`` on ``(T, B, *features)``: dims ``start_dim..end_dim`` index the feature
    shape (NIR shapes exclude time and batch).

    >>> NIRFlatten(1, 2)(torch.zeros(3, 2, 4, 5, 6)).shape
    torch.Size([3, 2, 4, 30])
    """

    def __init__(self, start_dim: int = 0, end_dim: int = -1):
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def _dims(self, nfeat):
        s = self.start_dim + nfeat if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nfeat if self.end_dim < 0 else self.end_dim
        return s, e

    def forward(self, x):
        check_sequence("x", x)
        s, e = self._dims(x.dim() - 2)
        if not (0 <= s <= e < x.dim() - 2):
            raise ValueError(f"x: cannot flatten feature dims {self.start_dim}..{self.end_dim} of shape "
                             f"{tuple(x.shape)} (features {tuple(x.shape[2:])})")
        return x.flatten(s + 2, e + 2)


class Delay(nn.Module):
    """NIR ``Delay`` on ``(T, B, *features)``: ``y[t] = x[t - k]`` with ``k = delay / dt`` steps
    per feature (zeros before the start). ``forward(x, state=None, return_state=False)``; the
    state is the last ``max(k)`` inputs, so a sequence can be continued (and the module runs
    step by step inside graphs with cycles).

    >>> d = Delay([0, 2])
    >>> d(torch.arange(1.0, 5.0).reshape(4, 1, 1).expand(4, 1, 2))[:, 0].tolist()
    [[1.0, 0.0], [2.0, 0.0], [3.0, 1.0], [4.0, 2.0]]
    """

    def __init__(self, steps):
        super().__init__()
        t = _param_tensor("steps", steps)
        if not bool((t >= 0).all()) or not bool((t == torch.round(t)).all()):
            raise ValueError(f"steps: expected non-negative whole numbers of steps, got {t.tolist()}")
        self.register_buffer("steps", t.to(torch.int64))
        self.max_steps = int(t.max().item()) if t.numel() else 0

    def extra_repr(self):
        return f"shape={tuple(self.steps.shape)}, max_steps={self.max_steps}"

    def reset(self):
        """No persistent state: every forward starts from zeros."""

    def forward(self, x: Tensor, state: Optional[Tensor] = None, return_state: bool = False):
        check_sequence("x", x)
        K, T = self.max_steps, x.shape[0]
        try:
            k = torch.broadcast_to(self.steps, x.shape[2:]) if self.steps.dim() else self.steps.expand(x.shape[2:])
        except RuntimeError:
            raise ValueError(f"x: features {tuple(x.shape[2:])} do not match the delay shape "
                             f"{tuple(self.steps.shape)}") from None
        if state is None:
            state = x.new_zeros((K,) + tuple(x.shape[1:]))
        hist = torch.cat([state.to(x.dtype), x], 0)
        idx = (K + torch.arange(T, device=x.device).reshape((T,) + (1,) * (x.dim() - 1))
               - k.to(x.device).unsqueeze(0).unsqueeze(0))
        y = torch.gather(hist, 0, idx.expand_as(x).contiguous())
        return (y, hist[hist.shape[0] - K:]) if return_state else y


# ============================================================================================
# Graph executor (graphs that are not a chain)
# ============================================================================================
class NIRGraphModule(nn.Module):
    """Runs a NIR graph of modules on time-first sequences.

    Every edge is an identity; a node with several incoming edges receives their sum. Acyclic
    graphs run node by node over whole sequences. Graphs with cycles (recurrent connections) run
    step by step: an edge that closes a cycle delivers the source's output of the *previous*
    step (zero at ``t = 0``); every stateful node in such a graph must accept
    ``forward(x, state, return_state=True)`` (the ``NIR*`` neuron modules of this file do).

    ``forward(x)`` with one graph input, ``forward(**{input_name: x})`` or a dict otherwise;
    returns a tensor for one output, a dict name -> tensor for several.

    >>> g = NIRGraphModule({"a": Scale([2.0]), "b": Scale([3.0])},
    ...                    [("in", "a"), ("in", "b"), ("a", "out"), ("b", "out")], ["in"], ["out"])
    >>> g(torch.ones(1, 1, 1)).item()
    5.0
    """

    def __init__(self, nodes: Dict[str, nn.Module], edges: Sequence[Tuple[str, str]],
                 inputs: Sequence[str], outputs: Sequence[str]):
        super().__init__()
        self.node_names = list(nodes)
        self._key = {}
        for i, n in enumerate(self.node_names):
            k = _safe_name(n, i)
            while k in self._key.values():
                k += "_"
            self._key[n] = k
        self.nodes = nn.ModuleDict({self._key[n]: m for n, m in nodes.items()})
        self.edges = [(str(a), str(b)) for a, b in edges]
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        known = set(self.node_names) | set(self.inputs) | set(self.outputs)
        for a, b in self.edges:
            for n in (a, b):
                if n not in known:
                    raise NIRConversionError(f"graph: edge ({a!r}, {b!r}) names an unknown node {n!r}")
        self._preds = {n: [a for a, b in self.edges if b == n] for n in known}
        self.order, self.back_edges = _schedule(self.inputs, self.node_names, self.edges)
        self.recurrent = bool(self.back_edges)
        for n in self.node_names:
            if not any(b == n for _, b in self.edges):
                raise NIRConversionError(f"graph: node {n!r} has no incoming edge (not reachable from an input)")
        if self.recurrent:
            for n in self.node_names:
                m = self.module(n)
                if not isinstance(m, (_NIRNeuronBase, Delay) + _STATELESS):
                    raise NIRConversionError(
                        f"graph: node {n!r} ({type(m).__name__}) cannot run in a graph with cycles, which runs "
                        "step by step: use the NIR* neuron modules (they take their state explicitly) or "
                        "stateless layers")

    def module(self, name: str) -> nn.Module:
        """The module that runs node ``name``."""
        return self.nodes[self._key[name]]

    def reset(self):
        """Nothing persists between calls."""

    def _collect(self, xs):
        if len(xs) == 1 and isinstance(xs[0], dict):
            return dict(xs[0])
        if len(xs) == 1 and len(self.inputs) == 1:
            return {self.inputs[0]: xs[0]}
        if len(xs) == len(self.inputs):
            return dict(zip(self.inputs, xs))
        raise ValueError(f"inputs: expected {len(self.inputs)} tensors for graph inputs {self.inputs}, got {len(xs)}")

    def forward(self, *xs, **named):
        feed = self._collect(xs) if xs else {}
        feed.update(named)
        for k, v in feed.items():
            if k not in self.inputs:
                raise ValueError(f"inputs: unknown graph input {k!r}; expected {self.inputs}")
            check_sequence(f"inputs[{k!r}]", v)
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise ValueError(f"inputs: missing graph input(s) {missing}")
        if self.recurrent:
            vals = self._run_stepwise(feed)
        else:
            vals = dict(feed)
            for n in self.order:
                vals[n] = self.module(n)(self._sum_inputs(n, vals))
        out = {o: self._sum_inputs(o, vals) for o in self.outputs}
        return out[self.outputs[0]] if len(self.outputs) == 1 else out

    def _sum_inputs(self, n, vals):
        acc = None
        for a in self._preds[n]:
            v = vals.get(a)
            if v is None:
                continue
            acc = v if acc is None else acc + v
        if acc is None:
            raise NIRConversionError(f"graph: node {n!r} receives no input")
        return acc

    def _run_stepwise(self, feed):
        T = next(iter(feed.values())).shape[0]
        back = set(self.back_edges)
        states: Dict[str, object] = {}
        prev: Dict[str, Tensor] = {}
        seqs: Dict[str, List[Tensor]] = {n: [] for n in self.node_names}
        for t in range(T):
            cur = {k: v[t:t + 1] for k, v in feed.items()}
            for n in self.order:
                acc = self._sum_inputs_step(n, cur, prev, back)
                m = self.module(n)
                if isinstance(m, (_NIRNeuronBase, Delay)):
                    y, states[n] = m(acc, states.get(n), return_state=True)
                else:
                    y = m(acc)
                cur[n] = y
                seqs[n].append(y)
            prev = cur
        return {**feed, **{n: torch.cat(v) for n, v in seqs.items()}}

    def _sum_inputs_step(self, n, cur, prev, back):
        acc = None
        for a in self._preds[n]:
            v = prev.get(a) if (a, n) in back else cur.get(a)
            if v is None:
                continue  # a feedback edge at t = 0 delivers zero
            acc = v if acc is None else acc + v
        if acc is None:
            raise NIRConversionError(f"graph: node {n!r} receives no input at the first step; a cycle "
                                     "needs an input from outside the cycle")
        return acc


_STATELESS = (nn.Linear, nn.Conv1d, nn.Conv2d, _layers._Pool2d, _layers.Flatten, nn.Identity, Scale, Threshold,
              NIRFlatten)  # plus Delay and the NIR* neurons, which take their state explicitly


def _safe_name(name: str, i: int) -> str:
    """A child-module name for NIR node ``name``: dots become ``_``; names that clash with an
    attribute of nn.Sequential / nn.ModuleDict get a trailing ``_``."""
    s = str(name).replace(".", "_") or f"node{i}"
    while hasattr(nn.Sequential, s) or hasattr(nn.ModuleDict, s):
        s += "_"
    return s


def _schedule(inputs, nodes, edges):
    """Order the nodes; edges that close a cycle (found by DFS from the inputs) are 'back'."""
    succ: Dict[str, List[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    node_set = set(nodes)
    color: Dict[str, int] = {}
    back: List[Tuple[str, str]] = []
    post: List[str] = []

    def dfs(u):
        stack = [(u, iter(succ.get(u, [])))]
        color[u] = 1
        while stack:
            v, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                color[v] = 2
                post.append(v)
                continue
            c = color.get(nxt, 0)
            if c == 1:
                back.append((v, nxt))
            elif c == 0:
                color[nxt] = 1
                stack.append((nxt, iter(succ.get(nxt, []))))

    for i in inputs:
        if color.get(i, 0) == 0:
            dfs(i)
    for n in nodes:  # nodes unreachable from the inputs still get an order
        if color.get(n, 0) == 0:
            dfs(n)
    order = [n for n in reversed(post) if n in node_set]
    return order, back


# ============================================================================================
# Export
# ============================================================================================
def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _full(value, shape, name) -> np.ndarray:
    """A float32 array of ``shape`` from a number or a broadcastable tensor."""
    t = value.detach().double().cpu() if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)
    try:
        t = torch.broadcast_to(t, tuple(shape))
    except RuntimeError:
        raise NIRConversionError(f"{name}: parameter of shape {tuple(t.shape)} does not broadcast to the "
                                 f"layer shape {tuple(shape)}") from None
    return t.to(torch.float32).numpy().copy()


def _exact(**values) -> dict:
    """Exact parameter values of the exporting module (floats, or float64 arrays of the
    tensor's own shape) for metadata; NIR arrays are float32 and full-shape."""
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, Tensor):
            v = v.detach().cpu()
            out[k] = float(v) if v.numel() == 1 and v.dim() == 0 else v.double().numpy().copy()
        else:
            out[k] = float(v)
    return out


def _surrogate_meta(s) -> dict:
    if isinstance(s, Surrogate) and dataclasses.is_dataclass(s):
        d = {"name": s.name}
        for f in dataclasses.fields(s):
            d[f.name] = float(getattr(s, f.name))
        return d
    return {"name": getattr(s, "name", "custom")}


def _surrogate_from_meta(d, default=None):
    try:
        name = str(d["name"])
        params = {k: float(v) for k, v in d.items() if k != "name"}
        if name == "custom":
            raise KeyError(name)
        return _surrogate.get(name, **params)
    except (KeyError, TypeError, ValueError):
        warnings.warn(f"from_nir: surrogate {dict(d)!r} cannot be rebuilt; using {default or 'ATan(2.0)'}",
                      stacklevel=3)
        return _resolve_surrogate(default)


def _lif_classes():
    try:
        from ..neuron import lif as _lif
    except ImportError:  # pragma: no cover - neuron.lif not present
        return ()
    return tuple(getattr(_lif, n) for n in ("IF", "LIF", "ParametricLIF") if hasattr(_lif, n))


def _cuba_classes():
    try:
        from ..neuron import cuba as _cuba
    except ImportError:  # pragma: no cover
        return None, None
    return getattr(_cuba, "CubaLIF", None), getattr(_cuba, "CubaRefractoryLIF", None)


def _eventprop_class():
    try:
        from ..neuron import eventprop as _ep
    except ImportError:  # pragma: no cover
        return None
    return getattr(_ep, "EventPropLIF", None)


def _sj_kind(m) -> str:
    """'IF', 'LIF' or 'ParametricLIF' for a spikefuse.neuron.lif module (subclasses included)."""
    from ..neuron import lif as _lif
    for n in ("ParametricLIF", "LIF", "IF"):
        if isinstance(m, getattr(_lif, n)):
            return n
    raise TypeError(type(m).__name__)  # pragma: no cover


def _loihi_module(m) -> bool:
    return type(m).__module__.startswith("spikefuse.neuron.loihi")


class _Exporter:
    def __init__(self, dt, lossy):
        self.dt = dt
        self.lossy = lossy
        self.nodes: "OrderedDict[str, object]" = OrderedDict()
        self.edges: List[Tuple[str, str]] = []

    # -- module tree -> list of (path, leaf module)
    def leaves(self, module, path):
        if isinstance(module, NIRGraphModule):
            return [(path, module)]
        if isinstance(module, nn.Dropout) or (_loihi_module(module) and type(module).__name__ == "Dropout"):
            return []  # identity at inference; NIR graphs describe inference
        if isinstance(module, nn.Sequential):
            out = []
            for name, child in module.named_children():
                out += self.leaves(child, f"{path}.{name}" if path else name)
            return out
        if isinstance(module, _layers.Block):
            p = f"{path}." if path else ""
            return self.leaves(module.synapse, p + "synapse") + self.leaves(module.neuron, p + "neuron")
        return [(path or type(module).__name__.lower(), module)]

    def add(self, name, node):
        while name in ("input", "output") or name in self.nodes:
            name = f"{name}_"
        self.nodes[name] = node
        return name

    # -- one leaf: returns (entry node name, exit node name, output shape)
    def convert(self, name, m, shape):
        nirm = _require_nir()
        lif_classes = _lif_classes()
        cuba_cls, cuba_ref_cls = _cuba_classes()
        if isinstance(m, (nn.Identity, nn.Dropout)):
            return None, None, shape
        if isinstance(m, nn.Linear):  # layers.Dense included
            if shape is not None and tuple(shape) != (m.in_features,):
                raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects {m.in_features} "
                                         f"input features, the previous layer gives shape {tuple(shape)}")
            w = m.effective_weight() if hasattr(m, "effective_weight") else m.weight
            meta = {"module": "Dense"}
            if getattr(m, "weight_hook", None) is not None:
                meta["weight_hook"] = "applied"
            if m.bias is not None:
                node = nirm.Affine(weight=_np(w), bias=_np(m.bias), metadata={"spikefuse": meta})
            else:
                node = nirm.Linear(weight=_np(w), metadata={"spikefuse": meta})
            n = self.add(name, node)
            return n, n, (m.out_features,)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            return self._conv(name, m, shape)
        if isinstance(m, (_layers.AvgPool2d, _layers.SumPool2d)):
            return self._pool(name, m, shape)
        if isinstance(m, _layers.MaxPool2d):
            raise NIRConversionError(f"model[{name!r}]: MaxPool2d cannot be expressed in NIR (NIR has only "
                                     "SumPool2d and AvgPool2d)")
        if isinstance(m, _layers.Flatten):
            shape = self._need_shape(name, m, shape)
            node = nirm.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1,
                                metadata={"spikefuse": {"module": "Flatten"}})
            n = self.add(name, node)
            return n, n, (int(np.prod(shape)),)
        if isinstance(m, NIRFlatten):
            shape = self._need_shape(name, m, shape)
            node = nirm.Flatten(input_type={"input": np.array(shape)}, start_dim=m.start_dim, end_dim=m.end_dim)
            n = self.add(name, node)
            out = tuple(int(v) for v in node.output_type["output"])
            return n, n, out
        if isinstance(m, _layers.LeakyIntegrator):
            shape = self._need_shape(name, m, shape)
            tau = m.tau * self.dt
            node = nirm.LI(tau=_full(tau, shape, name), r=_full(1.0 if m.decay_input else m.tau, shape, name),
                           v_leak=_full(0.0, shape, name),
                           metadata={"spikefuse": {"module": "LeakyIntegrator", "tau": float(m.tau),
                                                   "decay_input": bool(m.decay_input)}})
            n = self.add(name, node)
            return n, n, shape
        if isinstance(m, _layers.RecurrentLIF):
            return self._recurrent(name, m, shape)
        if lif_classes and isinstance(m, lif_classes):
            return self._lif(name, m, shape)
        if cuba_ref_cls is not None and isinstance(m, cuba_ref_cls):
            raise NIRConversionError(f"model[{name!r}]: CubaRefractoryLIF cannot be expressed in NIR "
                                     "(NIR neurons have no refractory period)")
        if cuba_cls is not None and isinstance(m, cuba_cls):
            return self._cuba(name, m, shape)
        ep_cls = _eventprop_class()
        if ep_cls is not None and isinstance(m, ep_cls):
            return self._cuba(name, m, shape, kind="EventPropLIF")
        if isinstance(m, _NIRNeuronBase):
            return self._native_neuron(name, m, shape)
        if isinstance(m, Threshold):
            node = nirm.Threshold(threshold=_np(m.threshold), metadata={"spikefuse": {
                "module": "Threshold", "surrogate": _surrogate_meta(m.surrogate)}})
            n = self.add(name, node)
            return n, n, tuple(m.threshold.shape) or shape
        if isinstance(m, Delay):
            node = nirm.Delay(delay=(m.steps.double() * self.dt).numpy())
            n = self.add(name, node)
            return n, n, tuple(m.steps.shape) or shape
        if isinstance(m, Scale):
            node = nirm.Scale(scale=_np(m.scale))
            n = self.add(name, node)
            return n, n, tuple(m.scale.shape) or shape
        if isinstance(m, NIRGraphModule):
            return self._subgraph(name, m, shape)
        if isinstance(m, (_layers.SpikeCount, _layers.MaxOverTime, _layers.MeanOverTime, _layers.MaxMembrane)):
            raise NIRConversionError(
                f"model[{name!r}]: {type(m).__name__} reduces over time, which NIR cannot express; export "
                "the model without the readout (e.g. model[:-1]) and reduce the NIR output yourself")
        if _loihi_module(m) and type(m).__name__ == "Neuron" and type(m).__module__.endswith(".cuba"):
            return self._loihi_cuba(name, m, shape)
        if _loihi_module(m):
            raise NIRConversionError(
                f"model[{name!r}]: the Loihi module {type(m).__module__}.{type(m).__name__} cannot be "
                "expressed in NIR (fixed-point states, integer decays and the Loihi step order have no NIR node)")
        raise NIRConversionError(
            f"model[{name!r}]: {type(m).__module__}.{type(m).__name__} cannot be expressed in NIR; supported: "
            "nn.Sequential of spikefuse layers (Dense, Conv1d, Conv2d, AvgPool2d, SumPool2d, Flatten, "
            "LeakyIntegrator, RecurrentLIF, Block), neurons IF, LIF, ParametricLIF, CubaLIF, EventPropLIF, "
            "and the spikefuse.interop.nir modules")

    def _need_shape(self, name, m, shape):
        if shape is None:
            raise NIRConversionError(
                f"input_shape: required because {type(m).__name__} at model[{name!r}] is reached before any "
                "layer fixes the feature shape; pass input_shape=(features...) without time and batch")
        return tuple(int(s) for s in shape)

    def _conv(self, name, m, shape):
        nirm = _require_nir()
        shape = self._need_shape(name, m, shape)
        nd = 1 if isinstance(m, nn.Conv1d) else 2
        if len(shape) != nd + 1 or shape[0] != m.in_channels:
            raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects input (C={m.in_channels}, "
                                     f"{'L' if nd == 1 else 'H, W'}), the previous layer gives {shape}")
        if m.padding_mode != "zeros":
            raise NIRConversionError(f"model[{name!r}]: padding_mode={m.padding_mode!r} cannot be expressed "
                                     "in NIR (zero padding only)")
        w = m.effective_weight() if hasattr(m, "effective_weight") else m.weight
        bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
        pad = m.padding if isinstance(m.padding, str) else tuple(int(p) for p in m.padding)
        meta = {"spikefuse": {"module": f"Conv{nd}d", "bias": m.bias is not None, "groups": int(m.groups)}}
        with torch.no_grad():
            y = m._conv_forward(torch.zeros(1, *shape, dtype=w.dtype, device=w.device), w, m.bias)
        out = tuple(y.shape[1:])
        w = _ungroup(w.detach(), int(m.groups))
        if nd == 1:
            node = _nir.Conv1d(input_shape=int(shape[1]), weight=_np(w), stride=int(m.stride[0]),
                               padding=pad if isinstance(pad, str) else int(pad[0]),
                               dilation=int(m.dilation[0]), groups=1, bias=bias, metadata=meta)
        else:
            node = nirm.Conv2d(input_shape=tuple(shape[1:]), weight=_np(w), stride=tuple(int(s) for s in m.stride),
                               padding=pad, dilation=tuple(int(d) for d in m.dilation), groups=1,
                               bias=bias, metadata=meta)
        n = self.add(name, node)
        return n, n, out

    def _pool(self, name, m, shape):
        nirm = _require_nir()
        shape = self._need_shape(name, m, shape)
        if len(shape) != 3:
            raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects (C, H, W) features, got {shape}")
        k, s, p = (tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,))) for a in
                   (m.kernel_size, m.stride, m.padding))
        with torch.no_grad():
            out = tuple(m._pool(torch.zeros(1, *shape)).shape[1:])
        cls = nirm.SumPool2d if isinstance(m, _layers.SumPool2d) else nirm.AvgPool2d
        node = cls(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
        n = self.add(name, node)
        return n, n, out

    def _lif(self, name, m, shape):
        nirm = _require_nir()
        shape = self._need_shape(name, m, shape)
        cls = _sj_kind(m)
        tau = None if cls == "IF" else m.tau
        v_reset = m.v_reset
        soft = v_reset is None
        if soft:
            msg = (f"model[{name!r}]: {cls} with soft reset (v_reset=None) cannot be expressed in NIR "
                   "(NIR neurons reset to v_reset)")
            if not self.lossy:
                raise NIRConversionError(msg + "; pass lossy=True to export it as a reset to 0")
            warnings.warn(msg + "; exported as a hard reset to 0 (lossy=True)", stacklevel=4)
        rest = 0.0 if soft else v_reset
        decay_input = bool(getattr(m, "decay_input", True))
        meta = {"module": cls, "soft_reset": soft, "detach_reset": bool(m.detach_reset),
                "decay_input": decay_input, "surrogate": _surrogate_meta(m.surrogate),
                "threshold_rule": ">=", "step_mode": str(getattr(m, "step_mode", "m"))}
        thr = _full(m.v_threshold, shape, name)
        meta["exact"] = _exact(v_threshold=m.v_threshold, v_reset=v_reset)
        if tau is None:
            node = nirm.IF(r=_full(1.0 / self.dt, shape, name), v_threshold=thr, v_reset=_full(rest, shape, name),
                           metadata={"spikefuse": meta})
        else:
            tau_d = tau.detach().double().cpu() if isinstance(tau, Tensor) else float(tau)
            if isinstance(tau_d, Tensor) and tau_d.numel() > 1:
                _full(tau_d, shape, name)  # shape check
                meta["tau"] = np.broadcast_to(tau_d.numpy(), shape).astype(np.float64).copy()
            else:
                meta["tau"] = float(tau_d)
            if cls == "ParametricLIF":
                meta["w"] = float(m.w.detach())
                meta["init_tau"] = float(m.init_tau)
            node = nirm.LIF(tau=_full(tau_d * self.dt, shape, name),
                            r=_full(1.0 if decay_input else tau_d, shape, name),
                            v_leak=_full(rest, shape, name), v_threshold=thr, v_reset=_full(rest, shape, name),
                            metadata={"spikefuse": meta})
        n = self.add(name, node)
        return n, n, shape

    def _cuba(self, name, m, shape, kind="CubaLIF"):
        nirm = _require_nir()
        if kind == "EventPropLIF":
            if shape is not None and tuple(shape) != (m.in_features,):
                raise NIRConversionError(f"model[{name!r}]: EventPropLIF expects {m.in_features} input features, "
                                         f"the previous layer gives shape {tuple(shape)}")
            shape = (m.out_features,)
        shape = self._need_shape(name, m, shape)
        mdt = float(getattr(m, "dt"))
        if not math.isclose(mdt, self.dt, rel_tol=1e-9):
            raise NIRConversionError(f"model[{name!r}]: {kind} integrates with dt={mdt:g} but to_nir was given "
                                     f"dt={self.dt:g}; export with dt={mdt:g}")
        g = lambda k: getattr(m, k)  # noqa: E731
        tau_syn = _full(g("tau_syn"), shape, name)
        keys = ("leak", "reset", "threshold", "tau_syn", "tau_mem", "alpha")
        meta = {"module": kind, "surrogate": _surrogate_meta(_cuba_surrogate(m)), "detach_reset": True,
                "exact": _exact(**{k: getattr(m, k, None) for k in keys}),
                "learnable": ",".join(k for k in keys if isinstance(getattr(m, k, None), nn.Parameter))}
        for k in ("method", "gradient", "current_index"):
            if isinstance(getattr(m, k, None), str):
                meta[k] = getattr(m, k)
        if kind == "EventPropLIF":
            meta["membrane_grad"] = bool(m.membrane_grad)
        node = nirm.CubaLIF(tau_syn=tau_syn, tau_mem=_full(g("tau_mem"), shape, name), r=_full(1.0, shape, name),
                            v_leak=_full(g("leak"), shape, name), v_threshold=_full(g("threshold"), shape, name),
                            v_reset=_full(g("reset"), shape, name),
                            w_in=_full(torch.as_tensor(g("tau_syn"), dtype=torch.float64) / self.dt, shape, name),
                            metadata={"spikefuse": meta})
        if kind == "EventPropLIF":
            syn = nirm.Linear(weight=_np(m.weight), metadata={"spikefuse": {"module": "EventPropLIF.synapse"}})
            ns = self.add(f"{name}.synapse", syn)
            nn_ = self.add(f"{name}.neuron", node)
            self.edges.append((ns, nn_))
            return ns, nn_, shape
        n = self.add(name, node)
        return n, n, shape

    def _native_neuron(self, name, m, shape):
        nirm = _require_nir()
        if abs(m.dt - self.dt) > 1e-12 * max(m.dt, self.dt):
            raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} was built for dt={m.dt:g} but "
                                     f"to_nir was given dt={self.dt:g}")
        meta = {"spikefuse": {"module": type(m).__name__, "surrogate": _surrogate_meta(m.surrogate),
                              "detach_reset": bool(m.detach_reset)}}
        a = {k: _np(getattr(m, k)) for k, _ in m.named_buffers()}
        if isinstance(m, NIRLIF):
            node = nirm.LIF(tau=a["tau"], r=a["r"], v_leak=a["v_leak"], v_threshold=a["v_threshold"],
                            v_reset=a["v_reset"], metadata=meta)
        elif isinstance(m, NIRIF):
            node = nirm.IF(r=a["r"], v_threshold=a["v_threshold"], v_reset=a["v_reset"], metadata=meta)
        elif isinstance(m, NIRLI):
            node = nirm.LI(tau=a["tau"], r=a["r"], v_leak=a["v_leak"])
        elif isinstance(m, NIRIntegrator):
            node = nirm.I(r=a["r"])
        elif isinstance(m, NIRCubaLIF):
            node = nirm.CubaLIF(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"], v_leak=a["v_leak"],
                                v_threshold=a["v_threshold"], v_reset=a["v_reset"], w_in=a["w_in"], metadata=meta)
        else:
            node = nirm.CubaLI(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"], v_leak=a["v_leak"],
                               w_in=a["w_in"])
        n = self.add(name, node)
        return n, n, tuple(m.r.shape) or shape

    def _loihi_cuba(self, name, m, shape):
        """Loihi CUBA (lava-dl) as its float forward-Euler counterpart; only with ``lossy=True``."""
        nirm = _require_nir()
        what = f"model[{name!r}]: Loihi CUBA neuron"
        if not self.lossy:
            raise NIRConversionError(
                f"{what} cannot be expressed exactly in NIR (fixed-point states and decays; its voltage uses "
                "the current of the same step, NIR's forward Euler the previous one); pass lossy=True to export "
                "CubaLIF(tau_syn=dt/current_decay, tau_mem=dt/voltage_decay, ...)")
        if getattr(m, "norm", None) is not None:
            raise NIRConversionError(f"{what} with norm cannot be expressed in NIR (the norm acts between the "
                                     "current and voltage integrators)")
        if getattr(m, "graded_spike", False):
            raise NIRConversionError(f"{what} with graded_spike=True cannot be expressed in NIR (NIR spikes are 0/1)")
        shape = self._need_shape(name, m, shape)
        if not m.shared_param and m.shape is None:
            raise NIRConversionError(f"{what} has per-channel decays that are sampled at the first forward; run "
                                     "one forward before exporting")

        def frac(d):  # decays as the fraction lost per step, along the first feature dim
            d = torch.round(d.detach().double().cpu()) / m.p_scale
            d = d.reshape(-1)
            return d.reshape((-1,) + (1,) * (len(shape) - 1)) if d.numel() > 1 else d.reshape(())
        du, dv = frac(m.current_decay), frac(m.voltage_decay)
        if bool((du <= 0).any()) or bool((dv <= 0).any()):
            raise NIRConversionError(f"{what}: a decay of 0 (no leak) has no finite NIR time constant")
        warnings.warn(f"{what} exported with lossy=True: fixed-point arithmetic is lost and NIR's forward Euler "
                      "delays the synaptic path by one step", stacklevel=4)
        meta = {"module": "loihi.cuba.Neuron", "iDecay": _np(torch.round(m.current_decay.detach())),
                "vDecay": _np(torch.round(m.voltage_decay.detach())), "vThMant": int(m.v_th_mant),
                "scale": int(m.w_scale), "surrogate": {"name": "slayer_exp"}}
        node = nirm.CubaLIF(tau_syn=_full(self.dt / du, shape, name), tau_mem=_full(self.dt / dv, shape, name),
                            r=_full(1.0 / dv, shape, name), v_leak=_full(0.0, shape, name),
                            v_threshold=_full(m.threshold, shape, name), v_reset=_full(0.0, shape, name),
                            w_in=_full(1.0 / du, shape, name), metadata={"spikefuse": meta})
        n = self.add(name, node)
        return n, n, shape

    def _recurrent(self, name, m, shape):
        nirm = _require_nir()
        if m.v_reset is None:
            msg = (f"model[{name!r}]: RecurrentLIF with soft reset (v_reset=None) cannot be expressed in NIR")
            if not self.lossy:
                raise NIRConversionError(msg + "; pass lossy=True to export it as a reset to 0")
            warnings.warn(msg + "; exported as a hard reset to 0 (lossy=True)", stacklevel=4)
        if shape is not None and tuple(shape) != (m.input.in_features,):
            raise NIRConversionError(f"model[{name!r}]: RecurrentLIF expects {m.input.in_features} input features, "
                                     f"the previous layer gives shape {tuple(shape)}")
        n_out = m.out_features
        rest = 0.0 if m.v_reset is None else m.v_reset
        so = (n_out,)
        w_in = m.input.effective_weight()
        part = {"spikefuse": {"module": "RecurrentLIF.input"}}
        a_in = (nirm.Affine(weight=_np(w_in), bias=_np(m.input.bias), metadata=part) if m.input.bias is not None
                else nirm.Linear(weight=_np(w_in), metadata=part))
        meta = {"module": "RecurrentLIF", "tau": float(m.tau), "soft_reset": m.v_reset is None,
                "detach_reset": bool(m.detach_reset), "decay_input": bool(m.decay_input),
                "surrogate": _surrogate_meta(m.surrogate), "threshold_rule": ">=",
                "exact": _exact(v_threshold=m.v_threshold, v_reset=m.v_reset)}
        lif = nirm.LIF(tau=_full(m.tau * self.dt, so, name), r=_full(1.0 if m.decay_input else m.tau, so, name),
                       v_leak=_full(rest, so, name), v_threshold=_full(m.v_threshold, so, name),
                       v_reset=_full(rest, so, name), metadata={"spikefuse": meta})
        rec = nirm.Linear(weight=_np(m.recurrent.effective_weight()),
                          metadata={"spikefuse": {"module": "RecurrentLIF.recurrent"}})
        ni = self.add(f"{name}.input", a_in)
        nl = self.add(f"{name}.lif", lif)
        nr = self.add(f"{name}.recurrent", rec)
        self.edges += [(ni, nl), (nl, nr), (nr, nl)]
        return ni, nl, so

    def _subgraph(self, name, m, shape):
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise NIRConversionError(f"model[{name!r}]: a NIRGraphModule inside a Sequential must have one input "
                                     f"and one output, got {m.inputs} -> {m.outputs}")
        shapes = {m.inputs[0]: shape}
        entry_of, exit_of = {}, {}
        for n in m.order:
            preds = [a for a, b in m.edges if b == n and (a, n) not in m.back_edges]
            s_in = shapes.get(preds[0]) if preds else None
            e, x, s_out = self.convert(f"{name}.{n}" if name else n, m.module(n), s_in)
            if e is None:
                raise NIRConversionError(f"model[{name!r}]: node {n!r} is not exportable")
            entry_of[n], exit_of[n], shapes[n] = e, x, s_out
        entry, exit_ = None, None
        for a, b in m.edges:
            if a in m.inputs:
                if entry is not None and entry != entry_of[b]:
                    raise NIRConversionError(f"model[{name!r}]: the graph input feeds several nodes; only graphs "
                                             "with a single entry node can be nested")
                entry = entry_of[b]
            elif b in m.outputs:
                exit_ = exit_of[a]
            else:
                self.edges.append((exit_of[a], entry_of[b]))
        return entry, exit_, shapes.get([a for a, b in m.edges if b in m.outputs][0])


def _ungroup(w: Tensor, groups: int) -> Tensor:
    """The weight of a grouped convolution as an equivalent ``groups=1`` weight (zeros outside
    the diagonal blocks). nir's shape inference reads the input channels from ``weight.shape[1]``
    and so cannot type-check grouped convolutions."""
    if groups == 1:
        return w
    c_out, c_in_g = w.shape[0], w.shape[1]
    full = w.new_zeros((c_out, c_in_g * groups) + tuple(w.shape[2:]))
    o_g = c_out // groups
    for g in range(groups):
        full[g * o_g:(g + 1) * o_g, g * c_in_g:(g + 1) * c_in_g] = w[g * o_g:(g + 1) * o_g]
    return full


def _regroup(w: np.ndarray, groups: int):
    """Inverse of :func:`_ungroup`, or None when ``w`` is not block-diagonal for ``groups``."""
    c_out, c_in = w.shape[0], w.shape[1]
    if groups <= 1 or c_out % groups or c_in % groups:
        return None
    o_g, i_g = c_out // groups, c_in // groups
    blocks, mask = [], np.ones(w.shape[:2], dtype=bool)
    for g in range(groups):
        blocks.append(w[g * o_g:(g + 1) * o_g, g * i_g:(g + 1) * i_g])
        mask[g * o_g:(g + 1) * o_g, g * i_g:(g + 1) * i_g] = False
    if np.any(w[mask] != 0):
        return None
    return np.concatenate(blocks, axis=0)


def _cuba_surrogate(m):
    s = getattr(m, "surrogate", None)
    if isinstance(s, Surrogate):
        return s
    alpha = getattr(m, "alpha", None)
    if isinstance(alpha, Tensor):  # per-neuron slopes: the metadata keeps one (the first)
        alpha = alpha.detach().reshape(-1)[0]
    if alpha is not None:
        return _surrogate.SuperSpike(float(alpha))
    return _surrogate.SuperSpike(50.0)


def to_nir(model: nn.Module, dt: float, *, input_shape: Optional[Sequence[int]] = None,
           lossy: bool = False):
    """Export a spikefuse model to a :class:`nir.NIRGraph`.

    ``model``: an ``nn.Sequential`` (nested Sequentials and ``layers.Block`` are flattened into one
    chain), a single supported module, or a :class:`NIRGraphModule`. ``dt``: the time step in
    seconds that one spikefuse step stands for (SpikingJelly-family ``tau`` in steps becomes
    ``tau * dt``; hxtorch ``CubaLIF`` modules must have been built with the same ``dt``).
    ``input_shape``: the feature shape of the input (without time and batch); needed when the
    first layer does not fix it (a convolution, a pool, or a neuron first). ``lossy``: export
    soft-reset neurons as a reset to 0 and Loihi CUBA neurons as their float forward-Euler
    counterpart (with a warning) instead of raising.

    The discretisation is forward Euler with step ``dt`` (see the module docstring and
    docs/nir.md). Node names are the module paths (``"0"``, ``"2.neuron"``); the graph gets
    ``input`` and ``output`` nodes. Raises :class:`NIRConversionError` (a ``ValueError``) naming
    the first module that NIR cannot express.

    >>> import torch
    >>> from spikefuse import layers
    >>> g = to_nir(torch.nn.Sequential(layers.Dense(2, 3), layers.LeakyIntegrator(4.0)), dt=1e-3)
    >>> type(g.nodes["1"]).__name__, float(g.nodes["1"].tau[0])
    ('LI', 0.004000000189989805)
    """
    nirm = _require_nir()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {_describe(model)}")
    dt = _check_dt(dt)
    check_bool("lossy", lossy)
    if input_shape is not None:
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        try:
            input_shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"input_shape: expected a sequence of positive ints, got {input_shape!r}") from None
        if not input_shape or any(s <= 0 for s in input_shape):
            raise ValueError(f"input_shape: expected a non-empty sequence of positive ints, got {input_shape!r}")
    ex = _Exporter(dt, lossy)
    if isinstance(model, NIRGraphModule):
        return _export_graph_module(ex, model, input_shape)
    leaves = ex.leaves(model, "")
    shape = input_shape
    if shape is None:
        for _, m in leaves:
            if isinstance(m, nn.Linear):
                shape = (m.in_features,)
                break
            if isinstance(m, _layers.RecurrentLIF):
                shape = (m.input.in_features,)
                break
            ep_cls = _eventprop_class()
            if ep_cls is not None and isinstance(m, ep_cls):
                shape = (m.in_features,)
                break
            if not isinstance(m, (nn.Identity, nn.Dropout)):
                break
    in_shape = shape
    prev = "input"
    chain_edges = []
    for name, m in leaves:
        entry, exit_, shape = ex.convert(name, m, shape)
        if entry is None:
            continue
        chain_edges.append((prev, entry))
        prev = exit_
    if prev == "input":
        raise NIRConversionError("model: nothing to export (no layer or neuron found)")
    if in_shape is None:  # e.g. a NIRGraphModule whose first node is an Affine
        it = getattr(ex.nodes[chain_edges[0][1]], "input_type", None)
        it = it.get("input") if isinstance(it, dict) else None
        if it is not None:
            in_shape = tuple(int(v) for v in np.asarray(it).reshape(-1))
    if in_shape is None:
        raise NIRConversionError("input_shape: could not infer the input shape; pass input_shape=(features...)")
    nodes = OrderedDict([("input", nirm.Input(input_type={"input": np.array(in_shape)}))])
    nodes.update(ex.nodes)
    nodes["output"] = nirm.Output(output_type={"output": np.array(shape)})
    edges = chain_edges + ex.edges + [(prev, "output")]
    return nirm.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": dt}},
                         type_check=True)


def _export_graph_module(ex, model, input_shape):
    """A top-level :class:`NIRGraphModule` (any number of inputs and outputs, cycles allowed)."""
    nirm = _require_nir()
    shapes: Dict[str, Optional[tuple]] = {i: input_shape for i in model.inputs}
    entry_of, exit_of = {}, {}
    for n in model.order:
        preds = [a for a, b in model.edges if b == n and (a, n) not in model.back_edges]
        e, x, s_out = ex.convert(n, model.module(n), shapes.get(preds[0]) if preds else None)
        if e is None:  # an identity: pass the input through
            raise NIRConversionError(f"model: graph node {n!r} ({type(model.module(n)).__name__}) exports to nothing; "
                                     "remove it from the graph")
        entry_of[n], exit_of[n], shapes[n] = e, x, s_out
    nodes = OrderedDict()
    for i in model.inputs:
        shape = input_shape
        if shape is None:
            for a, b in model.edges:
                it = getattr(ex.nodes.get(entry_of.get(b)), "input_type", None) if a == i else None
                it = it.get("input") if isinstance(it, dict) else None
                if it is not None:
                    shape = tuple(int(v) for v in np.asarray(it).reshape(-1))
                    break
        if shape is None:
            raise NIRConversionError(f"input_shape: could not infer the shape of graph input {i!r}; "
                                     "pass input_shape=(features...)")
        nodes[i] = nirm.Input(input_type={"input": np.array(shape)})
    nodes.update(ex.nodes)
    edges = list(ex.edges)
    for a, b in model.edges:
        src = a if a in model.inputs else exit_of[a]
        dst = b if b in model.outputs else entry_of[b]
        edges.append((src, dst))
    for o in model.outputs:
        pred = [a for a, b in model.edges if b == o][0]
        nodes[o] = nirm.Output(output_type={"output": np.array(shapes[pred])})
    return nirm.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": ex.dt}}, type_check=True)


# ============================================================================================
# Import
# ============================================================================================
def _arr(node, key) -> np.ndarray:
    return np.asarray(getattr(node, key), dtype=np.float64)


def _uniform(a: np.ndarray):
    """A Python float if every element is equal, else None."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return None
    v = a.reshape(-1)[0]
    return float(v) if np.all(a == v) else None


def _close(a, b, rtol=1e-5, atol=1e-7) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol))


def _meta(node) -> dict:
    md = getattr(node, "metadata", None)
    if isinstance(md, dict) and isinstance(md.get("spikefuse"), dict):
        return md["spikefuse"]
    return {}


def _as_bool(v) -> bool:
    if isinstance(v, (bytes, str)):
        return str(v if isinstance(v, str) else v.decode()).lower() in ("true", "1")
    return bool(v)


def _scalar_or_tensor(a: np.ndarray):
    u = _uniform(a)
    return u if u is not None else torch.as_tensor(np.asarray(a, dtype=np.float32))


def _value(meta: dict, key: str, nir_value: np.ndarray, scale: float = 1.0):
    """The parameter to rebuild a spikefuse module with: the exact value recorded in the
    metadata when it agrees with the NIR array (``exact * scale ~ nir_value``), else the NIR
    value / scale (a float when uniform, else a float32 tensor)."""
    ex = meta.get("exact", {}) if isinstance(meta.get("exact"), dict) else {}
    nir_value = np.asarray(nir_value, dtype=np.float64)
    if key in ex:
        e = np.asarray(ex[key], dtype=np.float64)
        try:
            ok = _close(np.broadcast_to(e * scale, nir_value.shape), nir_value, rtol=1e-6, atol=1e-9)
        except ValueError:
            ok = False
        if ok:
            return float(e) if e.ndim == 0 else torch.as_tensor(e.astype(np.float32))
    return _scalar_or_tensor(nir_value / scale)


class _Importer:
    def __init__(self, dt, surrogate, use_metadata):
        self.dt = dt
        self.surrogate = surrogate
        self.use_metadata = use_metadata

    def _sur(self, meta):
        if self.surrogate is not None:
            return _resolve_surrogate(self.surrogate)
        if self.use_metadata and isinstance(meta.get("surrogate"), dict):
            return _surrogate_from_meta(meta["surrogate"])
        return _resolve_surrogate(None)

    def build(self, name, node, recurrent=False):
        nirm = _nir
        kind = type(node).__name__
        meta = _meta(node) if self.use_metadata else {}
        try:
            if isinstance(node, nirm.Affine):
                return self._dense(name, node, bias=True)
            if isinstance(node, nirm.Linear):
                return self._dense(name, node, bias=False)
            if isinstance(node, nirm.Conv1d):
                return self._conv(name, node, 1)
            if isinstance(node, nirm.Conv2d):
                return self._conv(name, node, 2)
            if isinstance(node, (nirm.SumPool2d, nirm.AvgPool2d)):
                k, s, p = (tuple(int(v) for v in np.broadcast_to(np.asarray(a).reshape(-1), (2,)))
                           for a in (node.kernel_size, node.stride, node.padding))
                cls = _layers.SumPool2d if isinstance(node, nirm.SumPool2d) else _layers.AvgPool2d
                return cls(k, s, p)
            if isinstance(node, nirm.Flatten):
                sd, ed = int(node.start_dim), int(node.end_dim)
                it = node.input_type.get("input") if isinstance(node.input_type, dict) else None
                nd = len(it) if it is not None else None
                if sd == 0 and (ed == -1 or (nd is not None and ed == nd - 1)):
                    return _layers.Flatten()
                return NIRFlatten(sd, ed)
            if isinstance(node, nirm.Scale):
                return Scale(_arr(node, "scale"))
            if isinstance(node, nirm.Delay):
                k = _arr(node, "delay") / self.dt
                if not np.allclose(k, np.round(k), rtol=0, atol=1e-6) or np.any(k < -1e-6):
                    raise NIRConversionError(f"graph node {name!r}: Delay of {np.unique(_arr(node, 'delay')).tolist()} s "
                                             f"is not a non-negative whole number of steps dt={self.dt:g}")
                return Delay(np.round(k))
            if isinstance(node, nirm.Threshold):
                return Threshold(_arr(node, "threshold"), surrogate=self._sur(meta))
            if isinstance(node, nirm.LIF):
                return self._lif(name, node, meta, recurrent)
            if isinstance(node, nirm.IF):
                return self._if(name, node, meta, recurrent)
            if isinstance(node, nirm.LI):
                if meta.get("module") == "LeakyIntegrator" and not recurrent:
                    m = self._leaky_integrator(node, meta)
                    if m is not None:
                        return m
                return NIRLI(_arr(node, "tau"), _arr(node, "r"), _arr(node, "v_leak"), dt=self.dt)
            if isinstance(node, nirm.I):
                return NIRIntegrator(_arr(node, "r"), dt=self.dt)
            if isinstance(node, nirm.CubaLIF):
                return self._cuba(name, node, meta, recurrent)
            if isinstance(node, nirm.CubaLI):
                return NIRCubaLI(_arr(node, "tau_syn"), _arr(node, "tau_mem"), _arr(node, "r"),
                                 _arr(node, "v_leak"), _arr(node, "w_in"), dt=self.dt)
            ident = getattr(getattr(nirm, "ir", None), "graph", None)
            if ident is not None and isinstance(node, getattr(ident, "Identity", ())):
                return nn.Identity()
        except NIRConversionError:
            raise
        except (ValueError, TypeError) as e:
            raise NIRConversionError(f"graph node {name!r} ({kind}): {e}") from e
        raise NIRConversionError(
            f"graph node {name!r}: nir.{kind} has no spikefuse equivalent (supported: Affine, Linear, Conv1d, "
            "Conv2d, SumPool2d, AvgPool2d, Flatten, Scale, Threshold, Delay, LIF, IF, LI, I, CubaLIF, "
            "CubaLI, nested NIRGraph)")

    def _dense(self, name, node, bias):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRConversionError(f"graph node {name!r}: {type(node).__name__} weight must be 2-d "
                                     f"(out, in), got shape {w.shape}")
        m = _layers.Dense(w.shape[1], w.shape[0], bias=bias)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            if bias:
                b = np.asarray(node.bias, dtype=np.float32)
                m.bias.copy_(torch.as_tensor(np.broadcast_to(b, (w.shape[0],)).copy()))
        return m

    def _conv(self, name, node, nd):
        w = np.asarray(node.weight)
        if w.ndim != nd + 2:
            raise NIRConversionError(f"graph node {name!r}: Conv{nd}d weight must have {nd + 2} dims, got {w.shape}")
        groups = int(node.groups)
        meta = _meta(node)
        if groups == 1 and int(meta.get("groups", 1)) > 1:
            wg = _regroup(w, int(meta["groups"]))
            if wg is not None:
                w, groups = wg, int(meta["groups"])
        pad = node.padding
        if isinstance(pad, bytes):
            pad = pad.decode()
        if not isinstance(pad, str):
            pad = tuple(int(v) for v in np.broadcast_to(np.asarray(pad).reshape(-1), (nd,)))
        stride = tuple(int(v) for v in np.broadcast_to(np.asarray(node.stride).reshape(-1), (nd,)))
        dil = tuple(int(v) for v in np.broadcast_to(np.asarray(node.dilation).reshape(-1), (nd,)))
        b = getattr(node, "bias", None)
        has_bias = True
        if "bias" in meta and not _as_bool(meta["bias"]) and (b is None or not np.any(b)):
            has_bias = False
        cls = _layers.Conv1d if nd == 1 else _layers.Conv2d
        m = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=stride, padding=pad, dilation=dil,
                groups=groups, bias=has_bias)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            if has_bias:
                bb = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32)
                m.bias.copy_(torch.as_tensor(np.broadcast_to(bb, (w.shape[0],)).copy()))
        return m

    def _leaky_integrator(self, node, meta):
        tau_s = float(meta.get("tau", _uniform(_arr(node, "tau") / self.dt) or 0.0))
        tau_u, r_u, vl = _uniform(_arr(node, "tau")), _uniform(_arr(node, "r")), _uniform(_arr(node, "v_leak"))
        if tau_u is None or r_u is None or vl != 0.0 or not math.isclose(tau_s * self.dt, tau_u, rel_tol=1e-5):
            return None
        di = _as_bool(meta.get("decay_input", True))
        if not math.isclose(r_u, 1.0 if di else tau_s, rel_tol=1e-5) or tau_s < 1:
            return None
        return _layers.LeakyIntegrator(tau=tau_s, decay_input=di)

    def _restore_sj(self, name, node, meta, leaky):
        """Rebuild a spikefuse neuron.lif module from a node written by to_nir, or None."""
        if meta.get("module") not in ("LIF", "IF", "ParametricLIF"):
            return None
        try:
            from ..neuron import lif as _lif
        except ImportError:  # pragma: no cover
            return None
        soft = _as_bool(meta.get("soft_reset", False))
        thr = _value(meta, "v_threshold", _arr(node, "v_threshold"))
        v_reset_arr = _arr(node, "v_reset")
        v_reset = None if soft else _value(meta, "v_reset", v_reset_arr)
        if soft and not np.all(v_reset_arr == 0):
            return None
        common = dict(v_threshold=thr, v_reset=v_reset, detach_reset=_as_bool(meta.get("detach_reset", False)),
                      surrogate=self._sur(meta))
        if not leaky:
            if not _close(_arr(node, "r") * self.dt, 1.0):
                return None
            return _lif.IF(**common)
        tau_nir = _arr(node, "tau")
        if not np.all(_arr(node, "v_leak") == (0.0 if soft else v_reset_arr)):
            return None
        tau_steps = tau_nir / self.dt
        mt = meta.get("tau")
        if mt is not None and _close(np.asarray(mt, dtype=np.float64) * self.dt, tau_nir):
            tau_steps = np.asarray(mt, dtype=np.float64)  # exact value of the exporting module
        di = _as_bool(meta.get("decay_input", True))
        if not _close(_arr(node, "r"), 1.0 if di else np.broadcast_to(tau_steps, tau_nir.shape)):
            return None
        tau_u = _uniform(tau_steps)
        if meta.get("module") == "ParametricLIF":
            if tau_u is None or tau_u <= 1:
                return None
            init_tau = float(meta.get("init_tau", tau_u))
            m = _lif.ParametricLIF(init_tau=init_tau if init_tau > 1 else tau_u, decay_input=di, **common)
            w = meta.get("w")
            with torch.no_grad():
                if w is not None and math.isclose(1.0 / (1.0 + math.exp(-float(w))), 1.0 / tau_u, rel_tol=1e-5):
                    m.w.fill_(float(w))
                else:
                    m.w.fill_(-math.log(tau_u - 1.0))
            return m
        tau = tau_u if tau_u is not None else torch.as_tensor(np.asarray(tau_steps, np.float32))
        return _lif.LIF(tau=tau, decay_input=di, **common)

    def _lif(self, name, node, meta, recurrent):
        if meta and not recurrent:
            m = self._restore_sj(name, node, meta, leaky=True)
            if m is not None:
                return m
        return NIRLIF(_arr(node, "tau"), _arr(node, "r"), _arr(node, "v_leak"), _arr(node, "v_threshold"),
                      _arr(node, "v_reset"), dt=self.dt, surrogate=self._sur(meta),
                      detach_reset=_as_bool(meta.get("detach_reset", False)))

    def _if(self, name, node, meta, recurrent):
        if meta and not recurrent:
            m = self._restore_sj(name, node, meta, leaky=False)
            if m is not None:
                return m
        return NIRIF(_arr(node, "r"), _arr(node, "v_threshold"), _arr(node, "v_reset"), dt=self.dt,
                     surrogate=self._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)))

    def _cuba_exact(self, node) -> bool:
        """r = 1 and w_in = tau_syn/dt: the node is an hxtorch CUBA step (input as a current jump)."""
        return (_close(_arr(node, "r"), 1.0)
                and _close(_arr(node, "w_in") * self.dt / _arr(node, "tau_syn"), 1.0, rtol=1e-6))

    def recurrent_lif(self, inp, lif, rec):
        """Rebuild a layers.RecurrentLIF from its exported node triple (None if impossible)."""
        meta = _meta(lif)
        w_in, w_rec = np.asarray(inp.weight, np.float32), np.asarray(rec.weight, np.float32)
        if w_in.ndim != 2 or w_rec.ndim != 2 or w_rec.shape != (w_in.shape[0],) * 2:
            return None
        tau = float(meta.get("tau", 0.0))
        soft = _as_bool(meta.get("soft_reset", False))
        di = _as_bool(meta.get("decay_input", True))
        thr = _value(meta, "v_threshold", _arr(lif, "v_threshold"))
        v_reset = None if soft else _value(meta, "v_reset", _arr(lif, "v_reset"))
        rest = 0.0 if soft else v_reset
        if (tau < 1 or not _close(tau * self.dt, _arr(lif, "tau")) or not _close(_arr(lif, "r"), 1.0 if di else tau)
                or not isinstance(thr, float) or not isinstance(rest, float)
                or not np.all(_arr(lif, "v_leak") == np.float32(rest)) or not np.all(_arr(lif, "v_reset") == np.float32(rest))):
            return None
        has_bias = isinstance(inp, _nir.Affine)
        m = _layers.RecurrentLIF(w_in.shape[1], w_in.shape[0], tau=tau, v_threshold=thr, v_reset=v_reset,
                                 surrogate=self._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)),
                                 decay_input=di, bias=has_bias)
        with torch.no_grad():
            m.input.weight.copy_(torch.as_tensor(w_in))
            m.recurrent.weight.copy_(torch.as_tensor(w_rec))
            if has_bias:
                m.input.bias.copy_(torch.as_tensor(
                    np.broadcast_to(np.asarray(inp.bias, np.float32), (w_in.shape[0],)).copy()))
        return m

    def eventprop(self, syn, node):
        """Rebuild an EventPropLIF from its exported Linear + CubaLIF pair (None if impossible)."""
        w = np.asarray(syn.weight, dtype=np.float32)
        if w.ndim != 2 or not self._cuba_exact(node):
            return None
        m = _build_cuba(_eventprop_class(), node, self.dt, _meta(node),
                        extra={"in_features": int(w.shape[1]), "out_features": int(w.shape[0])})
        if m is not None:
            with torch.no_grad():
                m.weight.copy_(torch.as_tensor(w))
        return m

    def _cuba(self, name, node, meta, recurrent):
        if meta.get("module") in ("CubaLIF", "EventPropLIF") and not recurrent and self._cuba_exact(node):
            cuba_cls, _ = _cuba_classes()
            if cuba_cls is not None and self.surrogate is None:
                m = _build_cuba(cuba_cls, node, self.dt, {k: v for k, v in meta.items()
                                                          if k not in ("gradient", "current_index")})
                if m is not None:
                    return m
        return NIRCubaLIF(_arr(node, "tau_syn"), _arr(node, "tau_mem"), _arr(node, "r"), _arr(node, "v_leak"),
                          _arr(node, "v_threshold"), _arr(node, "v_reset"), _arr(node, "w_in"), dt=self.dt,
                          surrogate=self._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)))


def _build_cuba(cls, node, dt, meta, extra=None):
    """Rebuild a spikefuse ``CubaLIF`` / ``EventPropLIF`` from an exported CubaLIF node, using the
    exact values of the metadata where they agree with the NIR arrays; None if impossible."""
    import inspect
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # pragma: no cover
        return None
    kw = dict(leak=_value(meta, "leak", _arr(node, "v_leak")), reset=_value(meta, "reset", _arr(node, "v_reset")),
              threshold=_value(meta, "threshold", _arr(node, "v_threshold")),
              tau_syn=_value(meta, "tau_syn", _arr(node, "tau_syn")),
              tau_mem=_value(meta, "tau_mem", _arr(node, "tau_mem")), dt=dt)
    ex = meta.get("exact", {}) if isinstance(meta.get("exact"), dict) else {}
    if "alpha" in ex:
        a = np.asarray(ex["alpha"], dtype=np.float64)
        kw["alpha"] = float(a) if a.ndim == 0 else torch.as_tensor(a.astype(np.float32))
    for k in ("method", "gradient", "current_index"):
        if k in meta:
            kw[k] = str(meta[k])
    if "membrane_grad" in meta:
        kw["membrane_grad"] = _as_bool(meta["membrane_grad"])
    kw.update(extra or {})
    learn = [k for k in str(meta.get("learnable", "")).split(",") if k]
    for k in learn:
        if k in kw:
            kw[k] = nn.Parameter(torch.as_tensor(kw[k], dtype=torch.float32))
    kw = {k: v for k, v in kw.items() if k in sig.parameters}
    try:
        return cls(**kw)
    except (TypeError, ValueError):
        return None


def _groups(nodes, edges, use_metadata):
    """Node groups written by to_nir for one spikefuse module: ``(members, entry, exit, kind)``
    for an EventPropLIF (Linear -> CubaLIF) and a RecurrentLIF (Affine -> LIF <-> Linear)."""
    if not use_metadata:
        return []
    succ: Dict[str, List[str]] = {}
    pred: Dict[str, List[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    kind = {n: _meta(v).get("module") for n, v in nodes.items()}
    out = []
    for n, node in nodes.items():
        if kind[n] == "EventPropLIF" and isinstance(node, _nir.CubaLIF):
            p = pred.get(n, [])
            if (len(p) == 1 and kind.get(p[0]) == "EventPropLIF.synapse" and isinstance(nodes[p[0]], _nir.Linear)
                    and succ.get(p[0]) == [n]):
                out.append(([p[0], n], p[0], n, "EventPropLIF"))
        elif kind[n] == "RecurrentLIF" and isinstance(node, _nir.LIF):
            p = pred.get(n, [])
            ins = [a for a in p if kind.get(a) == "RecurrentLIF.input" and isinstance(nodes[a], (_nir.Affine, _nir.Linear))]
            recs = [a for a in p if kind.get(a) == "RecurrentLIF.recurrent" and isinstance(nodes[a], _nir.Linear)]
            if (len(p) == 2 and len(ins) == 1 and len(recs) == 1 and succ.get(ins[0]) == [n]
                    and succ.get(recs[0]) == [n] and pred.get(recs[0]) == [n]):
                out.append(([ins[0], n, recs[0]], ins[0], n, "RecurrentLIF"))
    return out


def _inline_subgraphs(graph, prefix=""):
    """Flatten nested NIRGraph nodes into one (nodes, edges, inputs, outputs) description."""
    nirm = _nir
    nodes, edges = OrderedDict(), []
    inputs = [f"{prefix}{k}" for k, n in graph.nodes.items() if isinstance(n, nirm.Input)]
    outputs = [f"{prefix}{k}" for k, n in graph.nodes.items() if isinstance(n, nirm.Output)]
    sub_io = {}
    for k, n in graph.nodes.items():
        full = f"{prefix}{k}"
        if isinstance(n, (nirm.Input, nirm.Output)):
            continue
        if isinstance(n, nirm.NIRGraph):
            sn, se, si, so = _inline_subgraphs(n, prefix=f"{full}.")
            if len(si) != 1 or len(so) != 1:
                raise NIRConversionError(f"graph node {full!r}: nested NIRGraphs must have one input and one "
                                         f"output, got {len(si)} and {len(so)}")
            nodes.update(sn)
            edges += se
            sub_io[full] = (si[0], so[0])
        else:
            nodes[full] = n
    for a, b in graph.edges:
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        if a in sub_io:
            a = sub_io[a][1]
        if b in sub_io:
            b = sub_io[b][0]
        edges.append((a, b))
    # route edges through the inlined subgraphs' Input/Output placeholders
    io_names = {v for pair in sub_io.values() for v in pair}
    changed = True
    while changed:
        changed = False
        for io in io_names:
            ins = [a for a, b in edges if b == io]
            outs = [b for a, b in edges if a == io]
            if ins or outs:
                edges = [e for e in edges if io not in e] + [(a, b) for a in ins for b in outs]
                changed = True
    return nodes, edges, inputs, outputs


def from_nir(graph, dt: float, *, surrogate=None, use_metadata: bool = True) -> nn.Module:
    """Build a spikefuse module that runs a :class:`nir.NIRGraph` on ``(T, B, *features)``.

    Each NIR node is simulated with forward Euler at step ``dt`` (module docstring, docs/nir.md).
    A chain (one input, one output, no branches) becomes an ``nn.Sequential`` whose children
    are named after the nodes (dots replaced by ``_``); any other graph becomes a
    :class:`NIRGraphModule` (branches are summed; cycles run step by step with the feedback
    delayed by one step). Nested ``NIRGraph`` nodes are inlined.

    ``surrogate``: the surrogate gradient for every imported spiking node (a name or a
    Surrogate; default: the one recorded by :func:`to_nir`, else ATan(2.0)).
    ``use_metadata``: rebuild the original spikefuse modules (SpikingJelly ``LIF``/``IF`` with
    ``>=``, soft reset, ``detach_reset``; hxtorch ``CubaLIF``; ``LeakyIntegrator``) from the
    ``metadata["spikefuse"]`` written by :func:`to_nir`, when the NIR parameters agree with it;
    ``False`` always gives the plain NIR semantics (``NIRLIF``, ``NIRCubaLIF``, ...). The node
    groups that :func:`to_nir` writes for one ``EventPropLIF`` or ``RecurrentLIF`` are merged
    back into that module.

    Raises :class:`NIRConversionError` naming a node spikefuse cannot run (an unknown node type, a
    ``Delay`` that is not a whole number of steps), and
    ``ValueError`` for a bad ``dt`` or a ``dt`` larger than a node's time constant.

    >>> import numpy as np, nir, torch
    >>> g = nir.NIRGraph.from_list(nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32)),
    ...                            nir.LI(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2)))
    >>> m = from_nir(g, dt=1e-3)
    >>> [type(c).__name__ for c in m]
    ['Dense', 'NIRLI']
    >>> m(torch.ones(2, 1, 2))[:, 0, 0].tolist()
    [0.5, 0.75]
    """
    nirm = _require_nir()
    if not isinstance(graph, nirm.NIRGraph):
        raise TypeError(f"graph: expected a nir.NIRGraph, got {_describe(graph)}")
    dt = _check_dt(dt)
    check_bool("use_metadata", use_metadata)
    if surrogate is not None:
        if not isinstance(surrogate, (str, Surrogate)):
            raise TypeError(f"surrogate: expected None, a name or a spikefuse Surrogate, got {_describe(surrogate)}")
        surrogate = _surrogate.get(surrogate)
    nodes, edges, inputs, outputs = _inline_subgraphs(graph)
    if not inputs:
        raise NIRConversionError("graph: no nir.Input node")
    if not outputs:
        raise NIRConversionError("graph: no nir.Output node")
    names = list(nodes)
    # a graph with cycles runs step by step: every stateful node then runs as a NIR* module,
    # which takes its state explicitly
    imp = _Importer(dt, surrogate, use_metadata)
    mods = OrderedDict()
    for members, entry, exit_, kind in ([] if surrogate is not None else _groups(nodes, edges, use_metadata)):
        # one spikefuse module written by to_nir as several nodes: rebuild it as one module
        m = imp.eventprop(nodes[entry], nodes[exit_]) if kind == "EventPropLIF" else \
            imp.recurrent_lif(*(nodes[k] for k in members))
        if m is None:
            continue
        prefix = {k.rsplit(".", 1)[0] for k in members}
        new = prefix.pop() if len(prefix) == 1 and "." in entry else entry
        if new != entry and (new in nodes or new in inputs or new in outputs):
            new = entry
        mods[new] = m
        edges = [(new if x == exit_ else x, new if y == entry else y)
                 for (x, y) in edges if not (x in members and y in members)]
        names[names.index(entry)] = new
        for k in members:
            if k != entry:
                names.remove(k)
    order, back = _schedule(inputs, names, edges)
    for n in names:
        if n not in mods:
            mods[n] = imp.build(n, nodes[n], recurrent=bool(back))
    mods = OrderedDict((n, mods[n]) for n in names)
    chain = _as_chain(order, edges, inputs, outputs)
    if chain is not None and not back:
        seq = OrderedDict()
        for i, n in enumerate(chain):
            k = _safe_name(n, i)
            while k in seq:
                k += "_"
            seq[k] = mods[n]
        return nn.Sequential(seq)
    return NIRGraphModule(mods, edges, inputs, outputs)


def _as_chain(order, edges, inputs, outputs):
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    succ: Dict[str, List[str]] = {}
    pred: Dict[str, List[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    chain, cur, seen = [], inputs[0], set()
    while cur != outputs[0]:
        nxt = succ.get(cur, [])
        if len(nxt) != 1 or cur in seen:
            return None
        seen.add(cur)
        cur = nxt[0]
        if len(pred.get(cur, [])) != 1:
            return None
        if cur != outputs[0]:
            chain.append(cur)
    if len(chain) != len(order) or len(edges) != len(chain) + 1:
        return None
    return chain
