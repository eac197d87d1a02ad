"""norse's neuron modules over :mod:`spikefuse.functional.norse`: :class:`NorseLIF` (norse
``LIF``), :class:`NorseLIFRecurrent` (``LIFRecurrent``), :class:`NorseLIFRefrac`
(``LIFRefracCell`` run over time) and :class:`NorseLIFAdEx` (``LIFAdEx``).

They take norse's arguments: ``p`` (the parameters, norse's field names; a norse
``LIFParameters`` / ``LIFRefracParameters`` / ``LIFAdExParameters`` object is accepted as it is,
since the fields are the same), ``dt`` (default 1e-3 s), ``record_states``; the recurrent one
also ``input_size, hidden_size, input_weights, recurrent_weights, autapses``; ``gradient="adjoint"``
(LIF, recurrent LIF and LIFRefrac) selects norse's adjoint backward (its numbers, also where
norse's formula divides by zero and gives inf: a spike at a step that started from rest;
``check_finite=True`` raises a ``FloatingPointError`` naming that cause instead, when such a
gradient reaches the input or the weights, as ``spikefuse train --gradient adjoint`` does). As in norse,
``forward(x, state=None)`` takes ``(T, B, *features)`` and returns ``(spikes, state)``: the
final state, or with ``record_states=True`` the state of every step stacked; ``state=None``
starts from rest (``v = v_leak``, ``i = 0``) on every call. ``return_state=False`` returns the
spikes only (a plain ``(T, B, *features) -> (T, B, *features)`` layer for ``nn.Sequential``).

Tensor fields of ``p`` are registered on the module (``nn.Parameter`` values as parameters,
other tensors as buffers, so ``.to(device)`` moves them); :meth:`params` rebuilds the
functional Params from them. The state of the last forward is kept, detached, in
:attr:`last_state` (and :attr:`last_traces` with ``record_states=True``);
:func:`spikefuse.neuron.reset_states` clears both.

>>> import torch
>>> from spikefuse.functional.norse import NorseLIFParams
>>> lif = NorseLIF(NorseLIFParams(v_th=0.5))
>>> z, s = lif(torch.full((4, 2, 3), 2.0))
>>> z[:, 0, 0].tolist(), tuple(s.v.shape)
([0.0, 1.0, 0.0, 1.0], (2, 3))
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .._validate import _describe, check_bool, check_choice, check_scalar
from ..functional import norse as F
from .base import NeuronModule, check_backend, check_plain_backend

__all__ = ["NorseLIF", "NorseLIFRecurrent", "NorseLIFRefrac", "NorseLIFAdEx"]

#: why NorseLIFRecurrent has no fused kernel (the only norse module without one)
_WHY = ("each step multiplies the previous step's spikes by recurrent_weights, a matmul inside the time loop "
        "that the elementwise fused scan template does not fit")


def _coerce(p, cls):
    """``p`` as ``cls``: itself, or a tuple with the same fields (norse's own Params class)."""
    if isinstance(p, cls):
        return p
    if isinstance(p, tuple) and tuple(getattr(type(p), "_fields", ())) == cls._fields:
        if cls is F.NorseLIFRefracParams:
            return cls(_coerce(p[0], F.NorseLIFParams), p[1])
        return cls(*p)
    raise TypeError(f"p: expected a {cls.__name__} (or norse's parameters with the fields {cls._fields}), "
                    f"got {_describe(p)}")


class _FiniteCheck:
    """A gradient hook: raise, naming the cause, where norse's adjoint gave inf or NaN."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, grad):
        if not torch.isfinite(grad).all():
            raise FloatingPointError(
                f"{self.name}: norse's adjoint gave a non-finite gradient ({int((~torch.isfinite(grad)).sum())} of "
                f"{grad.numel()} values): a neuron spiked at a step it started from rest (v = v_leak, i = 0), where "
                f"norse's output term dz / dv_- divides by dv_- = tau_mem_inv ((v_leak - v) + i) = 0 (norse 1.1.0 "
                f"gives the same inf); use gradient='bptt', or keep the neurons off rest (a nonzero input or bias "
                f"at every step)")
        return grad


def _detach(state):
    return type(state)(*(_detach(s) if isinstance(s, tuple) else s.detach() for s in state))


class _NorseNeuron(NeuronModule, nn.Module):
    """Shared surface: parameter storage, ``params()``, ``forward`` bookkeeping, reset."""

    _params_type: type = F.NorseLIFParams
    #: the functional multistep the module runs (feed-forward models), and the one with
    #: norse's adjoint backward (None: the model has none)
    _multistep = staticmethod(F.norse_lif_multistep)
    _adjoint_multistep = None
    #: whether the model has fused kernels (else a kernel backend is refused when built)
    _fused = False

    def __init__(self, p=None, dt: float = 1e-3, *, record_states: bool = False, return_state: bool = True,
                 gradient: str = "bptt", backend: Optional[str] = None, check_finite: bool = False):
        super().__init__()
        self.check_finite = check_bool("check_finite", check_finite)
        p = _coerce(self._params_type() if p is None else p, self._params_type)
        if getattr(p, "method", None) == "adjoint":
            raise ValueError("p.method: 'adjoint' is how norse's modules ask for the adjoint gradient (norse 1.1.0 "
                             "then fails in threshold()); pass gradient='adjoint' and a threshold method, e.g. "
                             "method='super'")
        F.check_params(p)
        check_choice("gradient", gradient, ("bptt", "adjoint") if self._adjoint_multistep else ("bptt",))
        self.gradient = gradient
        self.dt = check_scalar("dt", dt, gt=0)
        self.record_states = check_bool("record_states", record_states)
        self.return_state = check_bool("return_state", return_state)
        self.backend = check_backend(backend) if self._fused else check_plain_backend(type(self).__name__, backend, _WHY)
        if gradient == "adjoint" and backend in ("cpu", "triton"):
            raise ValueError(f"backend: gradient='adjoint' runs norse's adjoint backward in the reference loop (the "
                             f"fused kernels compute backpropagation through the steps, gradient='bptt'); expected "
                             f"None, 'auto' or 'reference', got {backend!r}")
        self._store(p)
        self.last_state = None

    def _store(self, p, prefix: str = "") -> None:
        self.__dict__.setdefault("_fields", {})
        for name, value in zip(p._fields, p):
            if isinstance(value, tuple):  # the LIF parameters inside LIFRefracParameters
                self._fields[prefix + name] = ("nested", type(value))
                self._store(value, f"{prefix}{name}_")
                continue
            key = prefix + name
            self._fields[key] = ("value", None)
            if isinstance(value, nn.Parameter):
                self.register_parameter(key, value)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(key, value.detach().clone())
            else:
                setattr(self, key, value)

    def _build(self, cls, prefix: str = ""):
        values = []
        for name in cls._fields:
            kind, sub = self._fields[prefix + name]
            values.append(self._build(sub, f"{prefix}{name}_") if kind == "nested" else getattr(self, prefix + name))
        return cls(*values)

    def params(self):
        """The parameters this module runs with (its functional Params; learnable values keep
        their graph)."""
        return self._build(self._params_type)

    def reset_state(self) -> None:
        """Forget the state of the last forward (:attr:`last_state`, :attr:`last_traces`)."""
        super().reset_state()
        self.last_state = None

    def _guard(self, name: str, t):
        """``t``, or with ``check_finite`` and the adjoint a view of it whose gradient is checked."""
        if not (self.check_finite and self.gradient == "adjoint" and isinstance(t, torch.Tensor) and t.requires_grad
                and torch.is_grad_enabled()):
            return t
        t = t.view_as(t)
        t.register_hook(_FiniteCheck(name))
        return t

    def _run(self, x, state):
        run = self._adjoint_multistep if self.gradient == "adjoint" else self._multistep
        return run(self._guard("x", x), self.params(), state, self.dt, self.backend, self.record_states)

    def forward(self, x: torch.Tensor, state=None):
        out = self._run(x, state)
        spikes, final = out[0], out[1]
        self.last_state = _detach(final)
        if self.record_states:
            self.last_traces = _detach(out[2])
        if not self.return_state:
            return spikes
        return spikes, (out[2] if self.record_states else final)

    def extra_repr(self) -> str:
        return f"p={self.params()}, dt={self.dt:g}"


class NorseLIF(_NorseNeuron):
    """``NorseLIF(p=None, dt=1e-3, *, record_states=False, return_state=True, gradient="bptt",
    backend=None, check_finite=False)``
    (``p=None``: norse's defaults; the same arguments for :class:`NorseLIFRefrac` and
    :class:`NorseLIFAdEx`).

    norse's feed-forward LIF (``norse.torch.LIF`` over ``lif_feed_forward_step``): the
    input is a current that jumps into ``i`` before the membrane update, the current decays
    after use, spikes ``1[v > v_th]`` (strict), reset ``v = (1 - z) v + z v_reset`` not
    detached. ``p``: norse's ``LIFParameters`` fields ``tau_syn_inv`` (200 1/s),
    ``tau_mem_inv`` (100 1/s), ``v_leak`` (0), ``v_th`` (1), ``v_reset`` (0), ``method``
    (``"super"``; see :mod:`spikefuse.functional.norse`), ``alpha`` (100); ``dt`` 1e-3 s.
    This is the same-step-current CUBA LIF that NIR's ``CubaLIF`` describes.

    ``gradient="adjoint"``: norse's adjoint backward (``LIFFeedForwardAdjointFunction``,
    see :func:`spikefuse.functional.norse.norse_lif_recurrent_adjoint_multistep`) instead of
    backpropagation through the steps; it runs the reference loop (``backend`` None, ``"auto"``
    or ``"reference"``). Its output term ``dz / dv_-`` is inf for a spike at a step that started
    from rest (``dv_- = tau_mem_inv ((v_leak - v) + i) = 0``), as in norse: at the first step
    that inf lands on the initial state (no parameter) and the input and weight gradients stay
    finite; from rest at a later step (an input exactly 0 until then) it reaches them.
    ``check_finite=True`` raises a ``FloatingPointError`` naming that cause where it does.
    """

    _adjoint_multistep = staticmethod(F.norse_lif_adjoint_multistep)
    _fused = True  # kernels/triton/peers.py, kernels/cpu/peers.py (BPTT; the adjoint runs its loop)


class NorseLIFRefrac(_NorseNeuron):
    """norse's LIF with an absolute refractory period (``LIFRefracCell`` over
    ``lif_refrac_feed_forward_step``, run over time): a spike loads the counter ``rho`` with
    ``rho_reset`` (5), which counts down by one per step; while ``rho > 0`` spikes are
    suppressed and the membrane is held at its previous value (the current keeps integrating).
    ``p``: norse's ``LIFRefracParameters(lif=LIFParameters(...), rho_reset=5.0)``.
    ``gradient="adjoint"``: norse's refractory adjoint (``LIFAdjointRefracFeedForwardFunction``,
    see :mod:`spikefuse.functional.norse`).
    """

    _params_type = F.NorseLIFRefracParams
    _multistep = staticmethod(F.norse_lif_refrac_multistep)
    _adjoint_multistep = staticmethod(F.norse_lif_refrac_adjoint_multistep)
    _fused = True  # kernels/triton/norse.py, kernels/cpu/norse.py (BPTT; the adjoint runs its loop)


class NorseLIFAdEx(_NorseNeuron):
    """norse's adaptive exponential LIF (``norse.torch.LIFAdEx`` over
    ``lif_adex_feed_forward_step``). ``p``: norse's ``LIFAdExParameters`` fields
    ``adaptation_current`` (4), ``adaptation_spike`` (0.02), ``delta_T`` (0.5),
    ``tau_ada_inv`` (2), ``tau_syn_inv`` (200), ``tau_mem_inv`` (100), ``v_leak`` (0),
    ``v_th`` (1), ``v_reset`` (0), ``method`` (``"super"``), ``alpha`` (100); ``dt`` 1e-3 s.
    """

    _params_type = F.NorseLIFAdExParams
    _multistep = staticmethod(F.norse_lif_adex_multistep)
    _fused = True  # kernels/triton/norse.py, kernels/cpu/norse.py


def _autapse_hook(gradient):
    return gradient.clone().fill_diagonal_(0.0)


class NorseLIFRecurrent(_NorseNeuron):
    """norse's recurrent LIF (``norse.torch.LIFRecurrent`` over ``lif_step``):
    ``i += x @ input_weights.T + z_prev @ recurrent_weights.T`` before the membrane update, the
    reset uses the detached spikes. ``input_size, hidden_size``: features in and out;
    ``input_weights`` ``(hidden, input)`` and ``recurrent_weights`` ``(hidden, hidden)`` default,
    as in norse, to ``randn * sqrt(2 / hidden)`` (drawn in that order, so a seeded norse module
    and this one start with the same weights); ``autapses=False`` zeroes the diagonal of the
    recurrent weights and of their gradient. ``p``, ``dt``, ``gradient`` as :class:`NorseLIF`
    (``gradient="adjoint"``: norse's ``LIFAdjointFunction``).

    No fused kernel: each step computes ``z_prev @ recurrent_weights.T``, a matmul over all
    neurons inside the time loop, and the fused scans (the generic template every kernel is
    built on) are elementwise per neuron over time; ``backend`` ``"cpu"`` / ``"triton"`` is
    refused, None / ``"auto"`` / ``"reference"`` run the plain-torch loop on every device.
    """

    _adjoint_multistep = staticmethod(F.norse_lif_recurrent_adjoint_multistep)

    def __init__(self, input_size: int, hidden_size: int, p: F.NorseLIFParams = F.NorseLIFParams(),
                 input_weights: Optional[torch.Tensor] = None, recurrent_weights: Optional[torch.Tensor] = None,
                 autapses: bool = False, dt: float = 1e-3, *, record_states: bool = False,
                 return_state: bool = True, gradient: str = "bptt", backend: Optional[str] = None,
                 check_finite: bool = False):
        super().__init__(p, dt, record_states=record_states, return_state=return_state, gradient=gradient,
                         backend=backend, check_finite=check_finite)
        for name, n in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{name}: expected a positive int, got {_describe(n)}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.autapses = check_bool("autapses", autapses)
        scale = torch.sqrt(2.0 / torch.as_tensor(hidden_size))
        self.input_weights = self._weight("input_weights", input_weights, (hidden_size, input_size), scale)
        self.recurrent_weights = self._weight("recurrent_weights", recurrent_weights, (hidden_size, hidden_size),
                                              scale)
        if not autapses:
            with torch.no_grad():
                self.recurrent_weights.fill_diagonal_(0.0)
            self.recurrent_weights.register_hook(_autapse_hook)

    @staticmethod
    def _weight(name, w, shape, scale) -> nn.Parameter:
        if w is None:
            return nn.Parameter(torch.randn(*shape) * scale)
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
            raise ValueError(f"{name}: expected a tensor of shape {shape}, got {_describe(w)}")
        return w if isinstance(w, nn.Parameter) else nn.Parameter(w.detach().clone())

    def _run(self, x, state):
        run = F.norse_lif_recurrent_adjoint_multistep if self.gradient == "adjoint" else F.norse_lif_recurrent_multistep
        return run(self._guard("x", x), self._guard("input_weights", self.input_weights),
                   self._guard("recurrent_weights", self.recurrent_weights), self.params(), state, self.dt,
                   self.backend, self.record_states)

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, autapses={self.autapses}, "
                + super().extra_repr())
