"""snnTorch's ``Leaky`` and ``Synaptic`` as spikefuse modules over
:mod:`spikefuse.functional.snntorch` (same numbers as snnTorch, bit for bit).

The constructors take snnTorch's argument names: ``beta`` (and ``alpha`` for ``Synaptic``),
``threshold``, ``spike_grad`` (a :class:`~spikefuse.surrogate.Surrogate` or a name; ``None``:
``ATan(2.0)``, snnTorch's default ``atan()``; ``FastSigmoid(slope)`` is its ``fast_sigmoid``),
``learn_alpha`` / ``learn_beta`` / ``learn_threshold`` (the value becomes an ``nn.Parameter``,
as in snnTorch), ``reset_mechanism`` (``"subtract"``, ``"zero"``, ``"none"``),
``reset_delay``, ``graded_spikes_factor`` / ``learn_graded_spikes_factor`` (``Leaky``). The
first arguments (``beta``, ``threshold``, ``spike_grad``; ``Synaptic``: ``alpha``, ``beta``,
``threshold``, ``spike_grad``) may be positional, as in snnTorch; the others are keyword-only.
snnTorch's ``inhibition``, ``state_quant``, ``surrogate_disable`` and ``init_hidden`` are not
offered (the module always keeps its state, like ``init_hidden=True``).

Differences of surface, not of numbers: spikefuse modules are time-first. With
``step_mode="m"`` (default) ``forward`` takes ``(T, B, *features)`` and runs every step (the
loop a snnTorch user writes by hand); with ``"s"`` it takes one step ``(B, *features)``. It
returns the spikes, or ``(spikes, mem)`` with ``return_mem=True`` (``mem`` of every step in
``"m"`` mode, snnTorch's per-step ``mem`` stacked). The state after the call stays in
``self.mem`` (and ``self.syn``), attached to the graph as in snnTorch; it starts at zero and
is re-created when the step shape or device changes (snnTorch's ``zeros_like(input)``);
:meth:`reset` / :func:`spikefuse.neuron.base.reset_states` clear it (snnTorch's
``reset_mem()`` / ``utils.reset``).

    >>> import torch
    >>> spk, mem = Leaky(beta=0.5, return_mem=True)(torch.full((3, 1, 1), 0.8))
    >>> spk.flatten().tolist(), [round(m, 4) for m in mem.flatten().tolist()]
    ([0.0, 1.0, 0.0], [0.8, 1.2, 0.4])
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .. import surrogate as _surrogate
from .._validate import check_bool, check_choice, check_number, check_sequence, check_tensor
from ..functional import snntorch as F
from .base import NeuronModule, bool_check, check_backend, check_plain_backend, number_check

__all__ = ["Leaky", "Synaptic"]


def _choice(choices):
    return lambda module, name, value: check_choice(name, value, choices)


_CHECKS = {
    "reset_mechanism": _choice(F.RESET_MECHANISMS),
    "reset_delay": bool_check,
    "return_mem": bool_check,
    "step_mode": _choice(("s", "m")),
    "threshold": number_check(),
    "beta": number_check(),
    "alpha": number_check(),
    "graded_spikes_factor": number_check(),
}


class _SnnTorchNeuron(NeuronModule, nn.Module):
    """Common part: snnTorch parameters (numbers, buffers or learnable), state, dispatch."""

    _PARAM_CHECKS = _CHECKS
    _STATE: tuple = ()

    def __init__(self, values: dict, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay,
                 step_mode, backend, return_mem):
        """``values``: name -> (value, learn) of the family's own parameters (decays, ...)."""
        super().__init__()
        for name, (value, learn) in values.items():
            self._value(name, value, learn)
        self._value("threshold", threshold, learn_threshold)
        self.spike_grad = _surrogate.ATan(2.0) if spike_grad is None else _surrogate.get(spike_grad)
        self.reset_mechanism = reset_mechanism
        self.reset_delay = reset_delay
        self.step_mode = step_mode
        self.backend = backend
        self.return_mem = return_mem
        for name in self._STATE:
            setattr(self, name, None)

    def _value(self, name, value, learn):
        """snnTorch's buffers: ``learn_*`` makes an ``nn.Parameter`` (fp32, as its
        ``torch.as_tensor``), a tensor a buffer, a number a float."""
        check_bool(f"learn_{name}", learn)
        check_number(name, value)
        if learn:
            self.register_parameter(name, nn.Parameter(torch.as_tensor(value, dtype=torch.float32).clone()))
        elif isinstance(value, Tensor):
            self.register_buffer(name, value.detach().clone())
        else:
            setattr(self, name, float(value))

    #: whether the model has fused kernels (else a kernel backend is refused)
    _fused = False

    @NeuronModule.backend.setter
    def backend(self, value) -> None:
        self.__dict__["_backend"] = (check_backend(value) if self._fused else
                                     check_plain_backend(type(self).__name__, value, "snnTorch's step runs in plain torch"))

    def params(self):
        """The functional Params (:class:`~spikefuse.functional.snntorch.LeakyParams` /
        ``SynapticParams``) this module runs with; learnable values keep their graph."""
        return self._params_cls(*(self.spike_grad if f == "surrogate" else getattr(self, f)
                                  for f in self._params_cls._fields))

    def reset_state(self) -> None:
        """Forget the state (the next forward starts from zero); :meth:`reset` is the same."""
        super().reset_state()
        for name in self._STATE:
            setattr(self, name, None)

    def _state_for(self, shape, x):
        vals = [getattr(self, n) for n in self._STATE]
        if all(isinstance(v, Tensor) and tuple(v.shape) == tuple(shape) and v.device == x.device for v in vals):
            return self._state_cls(*vals)
        return None   # snnTorch: zeros_like(input) when the shape does not match

    def forward(self, x: Tensor):
        params = self.params()
        if self.step_mode == "m":
            check_sequence("x", x, min_ndim=2, finite=False)
            spikes, state, traces = self._multistep(x, params, self._state_for(x.shape[1:], x), self.backend,
                                                    return_traces=True)
            self.last_traces = type(traces)(*(t.detach() for t in traces))
            mem = traces.mem
        else:
            check_tensor("x", x, min_ndim=1, finite=False)
            spikes, state = self._step(x, self._state_for(x.shape, x), params)
            mem = state.mem
        for name, v in zip(self._STATE, state):
            setattr(self, name, v)
        return (spikes, mem) if self.return_mem else spikes

    def extra_repr(self) -> str:
        show = lambda v: f"tensor{tuple(v.shape)}" if isinstance(v, Tensor) and v.numel() > 1 else (
            f"{float(v):g}")
        parts = [f"{n}={show(getattr(self, n))}" for n in self._SHOWN]
        parts.append(f"reset_mechanism={self.reset_mechanism!r}, reset_delay={self.reset_delay}")
        parts.append(f"spike_grad={self.spike_grad!r}, step_mode={self.step_mode!r}, backend={self.backend!r}")
        return ", ".join(parts)


class Leaky(_SnnTorchNeuron):
    """snnTorch ``Leaky`` (first-order LIF): ``mem' = clamp(beta, 0, 1) * mem + x`` with the
    reset of :mod:`spikefuse.functional.snntorch`, spikes on ``mem' - threshold > 0``.

    >>> import torch
    >>> Leaky(beta=0.9, reset_mechanism="zero")(torch.full((4, 1, 1), 0.6)).flatten().tolist()
    [0.0, 1.0, 0.0, 1.0]
    """

    _params_cls, _STATE, _state_cls = F.LeakyParams, ("mem",), F.LeakyState
    _SHOWN = ("beta", "threshold", "graded_spikes_factor")
    _multistep, _step = staticmethod(F.leaky_multistep), staticmethod(F.leaky_step)
    _fused = True  # kernels/triton/peers.py, kernels/cpu/peers.py

    def __init__(self, beta, threshold=1.0, spike_grad=None, *, learn_beta: bool = False,
                 learn_threshold: bool = False, reset_mechanism: str = "subtract",
                 graded_spikes_factor=1.0, learn_graded_spikes_factor: bool = False,
                 reset_delay: bool = True, step_mode: str = "m", backend: Optional[str] = None,
                 return_mem: bool = False):
        own = dict(beta=(beta, learn_beta), graded_spikes_factor=(graded_spikes_factor, learn_graded_spikes_factor))
        super().__init__(own, threshold, spike_grad, learn_threshold, reset_mechanism, reset_delay, step_mode,
                         backend, return_mem)


class Synaptic(_SnnTorchNeuron):
    """snnTorch ``Synaptic`` (second-order LIF): ``syn' = clamp(alpha) * syn + x``,
    ``mem' = clamp(beta) * mem + syn'`` and the reset of :mod:`spikefuse.functional.snntorch`
    (``"zero"`` wipes the whole new membrane, input included). The state is ``self.syn`` and
    ``self.mem``; ``last_traces`` holds both per step.

    >>> import torch
    >>> Synaptic(alpha=0.5, beta=0.5)(torch.full((3, 1, 1), 0.5)).flatten().tolist()
    [0.0, 0.0, 1.0]
    """

    _params_cls, _STATE, _state_cls = F.SynapticParams, ("syn", "mem"), F.SynapticState
    _SHOWN = ("alpha", "beta", "threshold")
    _multistep, _step = staticmethod(F.synaptic_multistep), staticmethod(F.synaptic_step)
    _fused = True  # kernels/triton/peers.py, kernels/cpu/peers.py

    def __init__(self, alpha, beta, threshold=1.0, spike_grad=None, *, learn_alpha: bool = False,
                 learn_beta: bool = False, learn_threshold: bool = False, reset_mechanism: str = "subtract",
                 reset_delay: bool = True, step_mode: str = "m", backend: Optional[str] = None,
                 return_mem: bool = False):
        super().__init__(dict(alpha=(alpha, learn_alpha), beta=(beta, learn_beta)), threshold, spike_grad,
                         learn_threshold, reset_mechanism, reset_delay, step_mode, backend, return_mem)
