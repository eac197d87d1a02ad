"""Modules that run NIR nodes on ``(T, B, *features)``: the forward-Euler neurons (``NIRLIF``,
``NIRIF``, ``NIRLI``, ``NIRIntegrator``, ``NIRCubaLIF``, ``NIRCubaLI``, over
:mod:`spikefuse.functional.euler`) and the stateless / delay nodes (``Threshold``, ``Scale``,
``NIRFlatten``, ``Delay``). Equations: docs/nir.md."""
from __future__ import annotations

from numbers import Integral
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from ... import surrogate as _surrogate
from ..._validate import _describe, check_bool, check_sequence
from ...functional.euler import (CubaEulerParams, CubaEulerState, EulerParams, EulerState, cuba_euler_multistep,
                                 euler_multistep)
from ...surrogate import Surrogate
from ._common import _check_dt

__all__ = ["NIRLIF", "NIRIF", "NIRLI", "NIRIntegrator", "NIRCubaLIF", "NIRCubaLI", "Threshold", "Scale",
           "NIRFlatten", "Delay"]


def _param_tensor(name: str, value, shape=None) -> Tensor:
    """A finite float32 tensor from a number / array / tensor (broadcast to ``shape``)."""
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number or an array, got {_describe(value)}")
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
                 surrogate=None, detach_reset=False, strict=True):
        super().__init__()
        self.dt = _check_dt(dt)
        self.strict = check_bool("strict", strict)
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
                           self.surrogate, self.detach_reset, self.strict)

    def extra_repr(self):
        return f"shape={tuple(self.r.shape)}, dt={self.dt:g}" + ("" if self.strict else ", threshold '>='")

    def forward(self, x: Tensor, state: Optional[EulerState] = None, return_state: bool = False):
        self._check_x(x)
        out, st = euler_multistep(x, self.params, state)
        return (out, st) if return_state else out


class NIRLIF(_EulerNeuron):
    """NIR ``LIF`` node, forward Euler with step ``dt`` (strict ``v > v_threshold``; ``strict=False``:
    ``v >= v_threshold``, the SpikingJelly / sinabs reading of the same node).

    >>> m = NIRLIF(tau=[2e-3], r=[1.0], v_leak=[0.0], v_threshold=[0.5], v_reset=[0.0], dt=1e-3)
    >>> m(torch.ones(3, 1, 1)).flatten().tolist()
    [0.0, 1.0, 0.0]
    """

    def __init__(self, tau, r, v_leak, v_threshold, v_reset=None, *, dt, surrogate=None, detach_reset=False,
                 strict=True):
        super().__init__(dt=dt, r=r, tau=tau, v_leak=v_leak, v_threshold=v_threshold, v_reset=v_reset,
                         surrogate=surrogate, detach_reset=detach_reset, strict=strict)


class NIRIF(_EulerNeuron):
    """NIR ``IF`` node: ``v += dt * r * x``, spike on ``v > v_threshold``, reset to ``v_reset``.

    >>> NIRIF(r=[1000.0], v_threshold=[1.5], dt=1e-3)(torch.ones(4, 1, 1)).flatten().tolist()
    [0.0, 1.0, 0.0, 1.0]
    """

    _has_leak = False

    def __init__(self, r, v_threshold, v_reset=None, *, dt, surrogate=None, detach_reset=False, strict=True):
        super().__init__(dt=dt, r=r, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate,
                         detach_reset=detach_reset, strict=strict)


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
                 surrogate=None, detach_reset=False, strict=True):
        super().__init__()
        self.dt = _check_dt(dt)
        self.strict = check_bool("strict", strict)
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
                               self.v_threshold, self.v_reset, self.surrogate, self.detach_reset, self.strict)

    def extra_repr(self):
        return f"shape={tuple(self.r.shape)}, dt={self.dt:g}" + ("" if self.strict else ", threshold '>='")

    def forward(self, x: Tensor, state: Optional[CubaEulerState] = None, return_state: bool = False):
        self._check_x(x)
        out, st = cuba_euler_multistep(x, self.params, state)
        return (out, st) if return_state else out


class NIRCubaLIF(_CubaEulerNeuron):
    """NIR ``CubaLIF`` node, forward Euler, current first (the voltage uses the current of the
    same step, as every NIR tool that runs CubaLIF does).

    >>> m = NIRCubaLIF(tau_syn=[2.0], tau_mem=[2.0], r=[1.0], v_leak=[0.0], v_threshold=[0.6],
    ...                w_in=[2.0], dt=1.0)
    >>> m(torch.ones(3, 1, 1)).flatten().tolist()   # i = 1, 1.5, 1.75; v = 0.5, 0.5 + 0.5 (1.5 - 0.5) -> 0, 0.875
    [0.0, 1.0, 1.0]
    """

    def __init__(self, tau_syn, tau_mem, r, v_leak, v_threshold, v_reset=None, w_in=1.0, *, dt,
                 surrogate=None, detach_reset=False, strict=True):
        super().__init__(dt=dt, tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak, w_in=w_in,
                         v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate,
                         detach_reset=detach_reset, strict=strict)


class NIRCubaLI(_CubaEulerNeuron):
    """NIR ``CubaLI`` node (non-spiking); returns the membrane over time.

    >>> m = NIRCubaLI(tau_syn=[2.0], tau_mem=[2.0], r=[1.0], v_leak=[0.0], w_in=[2.0], dt=1.0)
    >>> m(torch.ones(3, 1, 1)).flatten().tolist()
    [0.5, 1.0, 1.375]
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


def _check_dim(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"{name}: expected an int (a feature dim, negative from the end), got {_describe(v)}")
    return int(v)


class NIRFlatten(nn.Module):
    """NIR ``Flatten`` on ``(T, B, *features)``: dims ``start_dim..end_dim`` index the feature
    shape (NIR shapes exclude time and batch).

    >>> NIRFlatten(1, 2)(torch.zeros(3, 2, 4, 5, 6)).shape
    torch.Size([3, 2, 4, 30])
    """

    def __init__(self, start_dim: int = 0, end_dim: int = -1):
        super().__init__()
        self.start_dim = _check_dim("start_dim", start_dim)
        self.end_dim = _check_dim("end_dim", end_dim)

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
