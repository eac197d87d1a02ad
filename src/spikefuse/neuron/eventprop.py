"""A dense EventProp layer: ``nn.Module`` over :mod:`spikefuse.functional.eventprop`
(SPEC.md 14).

:class:`EventPropLIF` holds a weight ``(out_features, in_features)`` and runs the hxtorch
EventProp CUBA LIF (voltage uses the new current, index 0 is rest). With
``gradient="eventprop"`` the backward is the exact adjoint: weight gradient
``sum tau_syn lam_i (x) input`` and input gradient ``(lam_v - lam_i) W``, so layers stack into
multi-layer networks trained by spike-time losses (:mod:`spikefuse.losses`). With
``gradient="surrogate"`` the same forward is differentiated by BPTT with the SuperSpike
surrogate (``alpha``).

Example::

    >>> import torch
    >>> from spikefuse.neuron.eventprop import EventPropLIF
    >>> from spikefuse.losses import first_spike_time
    >>> torch.manual_seed(0) is not None
    True
    >>> layer = EventPropLIF(4, 2, threshold=0.5, weight_scale=4.0)
    >>> x = (torch.rand(50, 3, 4) < 0.1).float()
    >>> s = layer(x)
    >>> first_spike_time(s, dt=1e-6).sum().backward()
    >>> layer.weight.grad.shape
    torch.Size([2, 4])
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .._validate import _describe, check_bool, check_choice, check_number, check_scalar, check_sequence
from ..functional import cuba as C
from ..functional import eventprop as E
from .base import NeuronBase, check_plain_backend, time_last_hint
from .cuba import CUBA_PARAM_CHECKS, register_cuba_params

__all__ = ["EventPropLIF"]


class EventPropLIF(NeuronBase, nn.Module):
    """Dense synapse + EventProp CUBA LIF: ``forward(x (T, B, in_features), hw_data=None)``
    returns spikes ``(T, B, out_features)`` (or ``(spikes, CubaTraces)`` with
    ``return_traces=True``); :attr:`last_traces` keeps the detached membrane and current of
    the last call.

    - ``gradient``: ``"eventprop"`` (exact adjoint, default) or ``"surrogate"`` (BPTT with
      SuperSpike; ``hw_data`` is not supported there).
    - ``current_index``: ``"hxtorch"`` (faithful, ``a_m`` from ``i[t-1]``) or ``"aligned"``.
    - ``membrane_grad``: also propagate gradients of the membrane output (EventProp mode).
    - ``weight_scale``: the weight starts as ``nn.Linear``'s init times this factor.
    - ``backend``: ``None``, ``"auto"`` or ``"reference"``: the exact adjoint has no fused
      kernel, a kernel backend is refused.

    Common surface (:mod:`spikefuse.neuron.base`): ``params()`` returns the
    :class:`~spikefuse.functional.cuba.CubaParams`, ``reset_state()`` forgets
    :attr:`last_traces` (``reset`` is the reset potential, as in hxtorch).

    >>> import torch
    >>> layer = EventPropLIF(3, 2, gradient="surrogate")
    >>> layer(torch.zeros(5, 1, 3)).shape
    torch.Size([5, 1, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        leak=0.0,
        reset=0.0,
        threshold=1.0,
        tau_syn=10e-6,
        tau_mem=10e-6,
        dt: float = 1e-6,
        gradient: str = "eventprop",
        alpha=50.0,
        current_index: str = "hxtorch",
        membrane_grad: bool = False,
        weight_scale: float = 1.0,
        return_traces: bool = False,
        device=None,
        dtype=None,
        *,
        backend: Optional[str] = None,
    ):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"{name}: expected a positive int, got {_describe(n)}")
            check_number(name, n, ge=1)
        C._check_dt(dt)
        check_choice("gradient", gradient, ("eventprop", "surrogate"))
        check_choice("current_index", current_index, E.CURRENT_INDEX)
        check_bool("membrane_grad", membrane_grad)
        check_bool("return_traces", return_traces)
        check_scalar("weight_scale", weight_scale, gt=0)
        self.backend = backend
        self.dt = float(dt)
        values = dict(leak=leak, reset=reset, threshold=threshold, tau_syn=tau_syn,
                      tau_mem=tau_mem, alpha=alpha)
        # parameters are buffers here (a given nn.Parameter is copied, as before)
        register_cuba_params(self, {n: v.detach() if isinstance(v, nn.Parameter) else v
                                    for n, v in values.items()})
        self.in_features = in_features
        self.out_features = out_features
        self.gradient = gradient
        self.current_index = current_index
        self.membrane_grad = membrane_grad
        self.weight_scale = float(weight_scale)
        self.return_traces = return_traces
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.reset_parameters()
        self.last_traces: Optional[C.CubaTraces] = None

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation (uniform in ``+-1/sqrt(in_features)``) times
        ``weight_scale``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        with torch.no_grad():
            self.weight.mul_(self.weight_scale)

    _PARAM_CHECKS = CUBA_PARAM_CHECKS

    @NeuronBase.backend.setter
    def backend(self, value) -> None:
        self.__dict__["_backend"] = check_plain_backend(
            "EventPropLIF", value, "the exact adjoint runs in plain torch")

    def params(self) -> C.CubaParams:
        """The current parameters as a :class:`~spikefuse.functional.cuba.CubaParams`."""
        return C.CubaParams(leak=self.leak, reset=self.reset, threshold=self.threshold,
                            tau_syn=self.tau_syn, tau_mem=self.tau_mem, alpha=self.alpha)

    def forward(self, x: torch.Tensor, hw_data=None):
        if self.gradient == "eventprop":
            z, v, i = E.eventprop_linear_lif(x, self.weight, self.params(), self.dt, hw_data,
                                             self.current_index, self.membrane_grad)
        else:
            if hw_data is not None:
                raise ValueError("hw_data: not supported with gradient='surrogate'; use gradient='eventprop'")
            check_sequence("x", x, min_ndim=3)
            if x.shape[-1] != self.in_features:
                raise ValueError(
                    f"x: expected last dimension {self.in_features} (in_features), got shape {tuple(x.shape)}"
                    f"{time_last_hint(x, (self.in_features,))}"
                )
            cur = torch.matmul(x.to(self.weight.dtype), self.weight.t())
            z, v, i = E.eventprop_lif_reference(cur, self.params(), self.dt)
        self.last_traces = C.CubaTraces(v.detach() if v is not None else None, i.detach())
        if self.return_traces:
            return z, C.CubaTraces(v, i)
        return z

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"gradient={self.gradient!r}, dt={self.dt:g}, current_index={self.current_index!r}")
