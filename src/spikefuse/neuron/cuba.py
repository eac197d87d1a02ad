"""BrainScaleS-2 (hxtorch) CUBA LIF neurons as ``nn.Module``s over
:mod:`spikefuse.functional.cuba` (SPEC.md 13).

Parameters are constructor arguments: Python numbers (shared by all neurons) or tensors that
broadcast against one step ``(B, *features)`` (e.g. per-neuron tensors of shape ``(N,)``).
Plain tensors are registered as buffers (they follow ``.to(device)``); ``nn.Parameter``
arguments are registered as parameters and receive surrogate (BPTT) gradients. Values are
checked when the module is built and when a parameter attribute (or ``dt``) is assigned later,
not at every forward. The common neuron surface (:mod:`spikefuse.neuron.base`): ``params()``
returns a :class:`~spikefuse.functional.cuba.CubaParams`, ``reset_state()`` forgets
:attr:`last_traces` (``reset`` is hxtorch's reset potential here, so there is no ``reset()``
method), ``backend=`` is checked when set.

Defaults are normalised units (``leak = reset = 0``, ``threshold = 1``,
``tau_syn = tau_mem = 10 us``, ``dt = 1 us``, SuperSpike ``alpha = 50``); hxtorch's hardware-like
module defaults are ``leak = reset = 80``, ``threshold = 125``
(:data:`spikefuse.functional.cuba.HXTORCH_DEFAULTS`).

Example::

    >>> import torch
    >>> from spikefuse.neuron.cuba import CubaLIF
    >>> n = CubaLIF(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
    >>> n(x).flatten().tolist()
    [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    >>> [round(a, 5) for a in n.last_traces.membrane.flatten().tolist()]
    [0.0, 0.0, 0.25, 0.25, 0.0, 0.23125]
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .._validate import check_bool, check_choice, check_number
from ..functional import cuba as F
from .base import NeuronBase, number_check

__all__ = ["CubaLIF", "CubaRefractoryLIF"]

_PARAM_NAMES = ("leak", "reset", "threshold", "tau_syn", "tau_mem", "alpha")


def _check_tau(module, name, value):
    dt = module.__dict__.get("dt")
    if dt is None:
        check_number(name, value, gt=0)
    else:
        F._check_tau_ratios(((name, value),), dt)


def _check_dt(module, name, value):
    dt = F._check_dt(value)
    taus = [(n, getattr(module, n)) for n in ("tau_syn", "tau_mem") if hasattr(module, n)]
    F._check_tau_ratios(taus, dt)


#: checks of the hxtorch CUBA parameters, run whenever one is assigned (shared with EventPropLIF)
CUBA_PARAM_CHECKS = {
    "leak": number_check(),
    "reset": number_check(),
    "threshold": number_check(),
    "tau_syn": _check_tau,
    "tau_mem": _check_tau,
    "alpha": number_check(gt=0),
    "refractory_time": number_check(ge=0),
    "dt": _check_dt,
}


def register_cuba_params(module: nn.Module, values: dict) -> None:
    """Check and store hxtorch CUBA parameter values on ``module``: ``nn.Parameter`` values as
    parameters, other tensors as buffers (detached copies), numbers as floats."""
    for name, v in values.items():
        CUBA_PARAM_CHECKS[name](module, name, v)
        if isinstance(v, nn.Parameter):
            module.register_parameter(name, v)
        elif isinstance(v, torch.Tensor):
            module.register_buffer(name, v.detach().clone())
        else:
            setattr(module, name, float(v))


class CubaLIF(NeuronBase, nn.Module):
    """hxtorch CUBA LIF (SPEC 13.1-13.2, 13.5): ``forward(x (T, B, *features), hw_data=None)``
    returns the spikes ``(T_eff, B, *features)``; with ``return_traces=True`` it returns
    ``(spikes, CubaTraces(membrane, current, membrane_madc))``. The traces of the last call
    (detached, for plotting) are kept in :attr:`last_traces`.

    ``hw_data = (spikes, membrane_cadc, membrane_madc)`` injects measured observables
    (entries optional, time-first).

    >>> import torch
    >>> n = CubaLIF(threshold=torch.tensor([0.5, 2.0]), return_traces=True)
    >>> s, tr = n(torch.ones(4, 3, 2))
    >>> s.shape, tr.current.shape
    (torch.Size([4, 3, 2]), torch.Size([4, 3, 2]))
    """

    refractory = False
    _PARAM_CHECKS = CUBA_PARAM_CHECKS

    def __init__(
        self,
        leak=0.0,
        reset=0.0,
        threshold=1.0,
        tau_syn=10e-6,
        tau_mem=10e-6,
        alpha=50.0,
        dt: float = 1e-6,
        method: str = "superspike",
        backend: Optional[str] = None,
        return_traces: bool = False,
    ):
        super().__init__()
        self.dt = F._check_dt(dt)
        register_cuba_params(self, dict(leak=leak, reset=reset, threshold=threshold,
                                        tau_syn=tau_syn, tau_mem=tau_mem, alpha=alpha))
        check_choice("method", method, ("superspike",))
        check_bool("return_traces", return_traces)
        self.method = method
        self.backend = backend
        self.return_traces = return_traces
        self.last_traces: Optional[F.CubaTraces] = None

    @classmethod
    def with_hxtorch_defaults(cls, **overrides):
        """A neuron with hxtorch's module defaults (leak 80, reset 80, threshold 125,
        tau_syn = tau_mem = 10 us, refractory_time 1 us, alpha 50), updated by ``overrides``.

        >>> CubaLIF.with_hxtorch_defaults(threshold=120.0).leak
        80.0
        """
        d = F.HXTORCH_DEFAULTS
        kwargs = dict(leak=d.leak, reset=d.reset, threshold=d.threshold, tau_syn=d.tau_syn,
                      tau_mem=d.tau_mem, alpha=d.alpha)
        if cls.refractory:
            kwargs["refractory_time"] = d.refractory_time
        kwargs.update(overrides)
        return cls(**kwargs)

    def params(self) -> F.CubaParams:
        """The current parameters as a :class:`~spikefuse.functional.cuba.CubaParams`."""
        return F.CubaParams(
            leak=self.leak, reset=self.reset, threshold=self.threshold, tau_syn=self.tau_syn,
            tau_mem=self.tau_mem, refractory_time=getattr(self, "refractory_time", 1e-6),
            method=self.method, alpha=self.alpha,
        )

    def _integrate(self, x, hw_data):
        return F.cuba_lif_integration(x, self.params(), hw_data=hw_data, dt=self.dt, backend=self.backend)

    def forward(self, x: torch.Tensor, hw_data=None):
        z, v, i, madc = self._integrate(x, hw_data)
        self.last_traces = F.CubaTraces(v.detach(), i.detach(), madc)
        if self.return_traces:
            return z, F.CubaTraces(v, i, madc)
        return z

    def extra_repr(self) -> str:
        def show(v):
            return f"tensor{tuple(v.shape)}" if isinstance(v, torch.Tensor) else f"{v:g}"

        parts = [f"{n}={show(getattr(self, n))}" for n in _PARAM_NAMES]
        if self.refractory:
            parts.append(f"refractory_time={show(self.refractory_time)}")
        parts.append(f"dt={self.dt:g}")
        return ", ".join(parts)


class CubaRefractoryLIF(CubaLIF):
    """hxtorch CUBA LIF with refractoriness (SPEC 13.3): a spike clamps the membrane to
    ``reset`` and suppresses spikes for ``ceil(refractory_time / dt)`` steps.

    >>> import torch
    >>> n = CubaRefractoryLIF(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, refractory_time=2e-6)
    >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
    >>> n(x).flatten().tolist()
    [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    >>> n.last_traces.membrane.flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """

    refractory = True

    def __init__(self, leak=0.0, reset=0.0, threshold=1.0, tau_syn=10e-6, tau_mem=10e-6,
                 refractory_time=1e-6, alpha=50.0, dt: float = 1e-6, method: str = "superspike",
                 backend: Optional[str] = None, return_traces: bool = False):
        super().__init__(leak, reset, threshold, tau_syn, tau_mem, alpha, dt, method, backend,
                         return_traces)
        register_cuba_params(self, {"refractory_time": refractory_time})

    def _integrate(self, x, hw_data):
        return F.cuba_refractory_lif_integration(x, self.params(), hw_data=hw_data, dt=self.dt,
                                                 backend=self.backend)
