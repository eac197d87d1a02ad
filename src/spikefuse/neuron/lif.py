"""IF / LIF / ParametricLIF modules with SpikingJelly semantics over
:mod:`spikefuse.functional.lif` (SPEC.md section 15), and :func:`reset_net`.

The constructors take SpikingJelly's ``activation_based`` argument names; only the first
argument (``tau`` / ``init_tau`` / ``v_threshold``) may be positional, the others are
keyword-only: SpikingJelly's cext nodes put ``detach_input`` (the opposite of
``decay_input``) second and ``alpha`` fourth, so a positional call could mean something else
than the code it was ported from. The surrogate defaults to ``ATan(2.0)`` (the cext default)
and may be given as a :class:`~spikefuse.surrogate.Surrogate` or a name (``"atan"``,
``"ATan"``, ``"sigmoid"``, ...). Parameter values are checked when the module is built and
when an attribute (``v_threshold``, ``v_reset``, ``tau``, ...) is assigned
later, not at every forward; ``backend`` is checked when set (:mod:`spikefuse.neuron.base`).

State. Each module keeps its membrane potential in ``self.v`` (``None`` until the first
forward, then a tensor of one step's shape ``(B, *features)`` filled with ``v_reset``, 0 for
soft reset; it is re-created when the step shape or device of the input changes; assigning
a number, ``node.v = 0.3``, starts the next forward from that uniform potential, and assigning
a tensor starts it from that tensor, which must then have one step's shape ``(B, *features)``
of the next input: a ``ValueError`` says so otherwise). A
multi-step forward stores ``V[T-1]``; a single-step forward stores the new ``V``. As in
SpikingJelly the stored ``v`` stays attached to the autograd graph, so consecutive calls
within one sequence backpropagate through time; call :meth:`reset` (or :func:`reset_net`
on the whole model) between independent sequences / batches, otherwise the next backward
would reach into a graph that was already freed.

``step_mode``: ``"m"`` (default) takes ``(T, B, *features)`` and returns spikes of the same
shape; ``"s"`` takes one step ``(B, *features)``. With ``store_v_seq=True`` a multi-step
forward also keeps the post-reset membrane of every step in ``self.v_seq`` (``(T, B, ...)``).

Example::

    >>> import torch
    >>> from spikefuse.neuron.lif import LIF, reset_net
    >>> neuron = LIF(tau=2.0)
    >>> spikes = neuron(torch.full((4, 2, 3), 1.5))
    >>> spikes[:, 0, 0].tolist()
    [0.0, 1.0, 0.0, 1.0]
    >>> reset_net(neuron); neuron.v is None
    True
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn

from .. import surrogate as _surrogate
from .._validate import check_bool, check_choice, check_number, check_sequence, check_tensor
from ..functional.lif import (THRESHOLDS, LIFParams, LIFState, LIFTraces, _lif_multistep, _lif_step,
                             initial_state)
from .base import NeuronModule, bool_check, number_check, reset_net

__all__ = ["IF", "LIF", "ParametricLIF", "reset_net"]


def _check_surrogate(module, name, value):
    if not isinstance(value, _surrogate.Surrogate):
        raise TypeError(f"{name}: expected a spikefuse.surrogate.Surrogate (or pass a name to the "
                        f"constructor), got {type(value).__name__}")


_NODE_CHECKS = {
    "v_threshold": number_check(),
    "v_reset": number_check(optional=True),
    "detach_reset": bool_check,
    "store_v_seq": bool_check,
    "surrogate": _check_surrogate,
    "threshold": lambda module, name, value: check_choice(name, value, THRESHOLDS),
}


_STATE_NAMES = frozenset(("last_traces", "v", "v_seq", "_stored_v"))


def _plain_state(m, d) -> bool:
    """Whether the state names of ``m`` (instance dict ``d``) are plain instance attributes:
    present in ``d`` and none of them a parameter, buffer, submodule or ``_PARAM_CHECKS`` entry."""
    return (_STATE_NAMES.isdisjoint(d["_parameters"]) and _STATE_NAMES.isdisjoint(d["_buffers"])
            and _STATE_NAMES.isdisjoint(d["_modules"]) and _STATE_NAMES.isdisjoint(type(m)._PARAM_CHECKS)
            and _STATE_NAMES.issubset(d))


class _SpikingJellyNode(NeuronModule, nn.Module):
    """Common part of IF / LIF / ParametricLIF: parameters, persistent ``v``, dispatch."""

    _check_tau = True
    _PARAM_CHECKS = _NODE_CHECKS

    def __init__(
        self,
        v_threshold: Union[float, Tensor] = 1.0,
        *,
        v_reset: Optional[Union[float, Tensor]] = 0.0,
        surrogate: Union[_surrogate.Surrogate, str] = _surrogate.ATan(2.0),
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: Optional[str] = None,
        store_v_seq: bool = False,
        threshold: str = ">=",
    ):
        super().__init__()
        check_number("v_threshold", v_threshold)
        if v_reset is not None:
            check_number("v_reset", v_reset)
        self._set_value("v_threshold", v_threshold)
        self._set_value("v_reset", v_reset)
        self.surrogate = _surrogate.get(surrogate)
        self.detach_reset = check_bool("detach_reset", detach_reset)
        check_choice("step_mode", step_mode, ("s", "m"))
        self.step_mode = step_mode
        self.backend = backend
        self.store_v_seq = check_bool("store_v_seq", store_v_seq)
        self.threshold = threshold
        self.v: Optional[Tensor] = None
        self.v_seq: Optional[Tensor] = None
        self._stored_v: Optional[Tensor] = None

    def _set_value(self, name, value):
        """Tensors become (non-learnable) buffers so that ``.to(device)`` moves them."""
        if isinstance(value, Tensor):
            self.register_buffer(name, value.detach().clone())
        else:
            setattr(self, name, None if value is None else float(value))

    # subclasses define tau / decay_input
    def _tau(self):
        return None

    def _decay_input(self) -> bool:
        return True

    def params(self) -> LIFParams:
        """The :class:`~spikefuse.functional.lif.LIFParams` this module runs with."""
        return LIFParams(
            tau=self._tau(),
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            decay_input=self._decay_input(),
            detach_reset=self.detach_reset,
            surrogate=self.surrogate,
            threshold=self.threshold,
        )

    def reset_state(self) -> None:
        """Forget the membrane state (the next forward starts from ``v_reset``, 0 if soft);
        :meth:`reset` is the same.

        Runs once per forward of a training loop (:func:`.base.reset_states`): when none of the
        state names is a parameter, buffer, submodule or checked attribute (the usual case),
        ``nn.Module.__setattr__`` would only store None in the instance dict, so this stores it
        there directly (measured 7.7 -> 1.2 us per call); otherwise the ordinary assignments."""
        d = self.__dict__
        if type(self).reset_state is _SpikingJellyNode.reset_state and _plain_state(self, d):
            # NeuronBase.reset_state's last_traces, then the membrane state
            d["last_traces"] = d["v"] = d["v_seq"] = d["_stored_v"] = None
            return
        super().reset_state()
        self.v = None
        self.v_seq = None
        self._stored_v = None

    def _state_for(self, shape, x: Tensor, params: LIFParams) -> LIFState:
        v = self.v
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            # SpikingJelly style: ``node.v = 0.3`` sets a uniform membrane potential
            return LIFState(torch.full(tuple(shape), float(v), dtype=dtype, device=x.device))
        if isinstance(v, Tensor) and v is not self._stored_v and tuple(v.shape) != tuple(shape):
            # a membrane assigned by the user (not the one the last forward stored) that
            # cannot continue this input: refusing is certain, re-creating would drop it
            raise ValueError(
                f"v: the membrane assigned to this neuron has shape {tuple(v.shape)}, expected one "
                f"step (B, *features) = {tuple(shape)} of the input of shape {tuple(x.shape)} "
                f"(step_mode={self.step_mode!r}; multi-step inputs are time-first (T, B, *features))"
            )
        if not isinstance(v, Tensor) or tuple(v.shape) != tuple(shape) or v.device != x.device:
            return initial_state(shape, params, dtype=dtype, device=x.device)
        return LIFState(v)

    def forward(self, x: Tensor) -> Tensor:
        check_choice("step_mode", self.step_mode, ("s", "m"))  # a str compare, no data read
        params = self.params()
        if self.step_mode == "m":
            check_sequence("x", x, min_ndim=2, finite=False)  # _lif_multistep scans the values once
            # at rest (after a reset): no state tensor; the fused kernels start from v_reset
            state = None if self.v is None else self._state_for(x.shape[1:], x, params)
            out = _lif_multistep(
                x, params, state, self.backend, return_traces=self.store_v_seq,
                check_tau=self._check_tau,
            )
            spikes, state = out[0], out[1]
            if self.store_v_seq:
                self.v_seq = out[2].v
                self.last_traces = LIFTraces(out[2].h.detach(), out[2].v.detach())
        else:
            check_tensor("x", x, min_ndim=1, finite=False)  # _lif_step scans the values once
            state = self._state_for(x.shape, x, params)
            spikes, state = _lif_step(x, state, params, check_tau=self._check_tau)
        d = self.__dict__
        if _plain_state(self, d):   # as reset_state: nn.Module.__setattr__ would only store it here
            d["v"] = d["_stored_v"] = state.v
        else:
            self.v = self._stored_v = state.v
        return spikes

    def extra_repr(self) -> str:
        parts = []
        tau = self._tau()
        if tau is not None:
            parts.append(f"tau={_fmt(tau)}, decay_input={self._decay_input()}")
        parts.append(f"v_threshold={_fmt(self.v_threshold)}, v_reset={_fmt(self.v_reset)}")
        parts.append(f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r}")
        parts.append(f"step_mode={self.step_mode!r}, backend={self.backend!r}")
        if self.store_v_seq:
            parts.append("store_v_seq=True")
        if self.threshold != ">=":
            parts.append(f"threshold={self.threshold!r}")
        return ", ".join(parts)


def _fmt(v) -> str:
    if isinstance(v, Tensor):
        if v.numel() == 1:
            return f"{v.item():.4g}"
        return f"tensor{tuple(v.shape)}"
    return repr(v)


class IF(_SpikingJellyNode):
    """Integrate-and-fire neuron (``H = V + X``), SpikingJelly ``IFNode`` semantics.

    Args: ``v_threshold=1.0`` (the only positional argument), keyword-only ``v_reset=0.0``
    (``None``: soft reset ``V = H - S V_th``), ``surrogate=ATan(2.0)`` (instance or name),
    ``detach_reset=False``, ``step_mode="m"``, ``backend=None`` (global default),
    ``store_v_seq=False`` (also fills :attr:`last_traces` with the detached ``LIFTraces``),
    ``threshold=">="`` (the spike comparison ``H - V_th >= 0``, SpikingJelly's; ``">"`` fires
    only strictly above the threshold, as snnTorch, norse and NIR do; the fused CPU and Triton
    kernels run both).

    >>> import torch
    >>> IF()(torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1, 1)).flatten().tolist()
    [1.0, 1.0, 0.0, 1.0, 0.0]
    """


class _LeakyNode(_SpikingJellyNode):
    """Common part of LIF / ParametricLIF: ``tau`` and ``decay_input`` come from the module."""

    _PARAM_CHECKS = {**_NODE_CHECKS, "tau": number_check(gt=1.0), "decay_input": bool_check}

    def _tau(self):
        return self.tau

    def _decay_input(self) -> bool:
        return self.decay_input

    @staticmethod
    def _resolve_decay_input(decay_input, detach_input) -> bool:
        """``detach_input`` is the SpikingJelly cext name: ``detach_input=True`` means
        ``decay_input=False`` (the input bypasses the 1/tau factor; nothing is detached)."""
        check_bool("decay_input", decay_input)
        if detach_input is None:
            return decay_input
        check_bool("detach_input", detach_input)
        if not decay_input and not detach_input:
            raise ValueError("detach_input: False contradicts decay_input=False (detach_input=True means decay_input=False)")
        return not detach_input


class LIF(_LeakyNode):
    """Leaky integrate-and-fire neuron, SpikingJelly ``LIFNode`` semantics (SPEC 15.2).

    ``decay_input=True``: ``H = V + (X - (V - V_reset)) / tau``; ``False``:
    ``H = V - (V - V_reset) / tau + X``. ``tau`` must be ``> 1`` (SpikingJelly asserts it);
    it may be a per-feature tensor (kept as a buffer, not learned). ``detach_input=True``
    (keyword, SpikingJelly cext's name) is the same as ``decay_input=False``. Other arguments
    as :class:`IF`.

    >>> import torch
    >>> LIF(tau=2.0)(torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1, 1)).flatten().tolist()
    [0.0, 1.0, 0.0, 1.0, 0.0]
    """

    def __init__(
        self,
        tau: Union[float, Tensor] = 2.0,
        *,
        decay_input: bool = True,
        v_threshold: Union[float, Tensor] = 1.0,
        v_reset: Optional[Union[float, Tensor]] = 0.0,
        surrogate: Union[_surrogate.Surrogate, str] = _surrogate.ATan(2.0),
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: Optional[str] = None,
        store_v_seq: bool = False,
        detach_input: Optional[bool] = None,
        threshold: str = ">=",
    ):
        super().__init__(v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset,
                         step_mode=step_mode, backend=backend, store_v_seq=store_v_seq,
                         threshold=threshold)
        check_number("tau", tau, gt=1.0)
        self._set_value("tau", tau)
        self.decay_input = self._resolve_decay_input(decay_input, detach_input)


class ParametricLIF(_LeakyNode):
    """LIF with a learnable time constant (Fang et al. 2021; SpikingJelly
    ``ParametricLIFNode``): ``tau = 1 / sigmoid(w)``, ``w`` initialised to
    ``-log(init_tau - 1)`` (``init_tau > 1``). ``w`` is one shared scalar parameter; the charge
    multiplies by ``sigmoid(w)`` as SpikingJelly does (bit-identical at any ``init_tau``).
    Other arguments as :class:`LIF`.

    >>> m = ParametricLIF(init_tau=2.0)
    >>> round(m.w.item(), 6), round(m.tau.item(), 6)
    (-0.0, 2.0)
    """

    _check_tau = False  # 1/sigmoid(w) is > 1 mathematically but may round to 1.0 in fp32
    _PARAM_CHECKS = {**_NODE_CHECKS, "decay_input": bool_check}   # tau is derived from w

    def __init__(
        self,
        init_tau: float = 2.0,
        *,
        decay_input: bool = True,
        v_threshold: Union[float, Tensor] = 1.0,
        v_reset: Optional[Union[float, Tensor]] = 0.0,
        surrogate: Union[_surrogate.Surrogate, str] = _surrogate.ATan(2.0),
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: Optional[str] = None,
        store_v_seq: bool = False,
        detach_input: Optional[bool] = None,
        threshold: str = ">=",
    ):
        super().__init__(v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset,
                         step_mode=step_mode, backend=backend, store_v_seq=store_v_seq,
                         threshold=threshold)
        if isinstance(init_tau, Tensor):
            raise TypeError("init_tau: expected a number, got a Tensor")
        check_number("init_tau", init_tau, gt=1.0)
        self.init_tau = float(init_tau)
        self.w = nn.Parameter(torch.tensor(-math.log(self.init_tau - 1.0), dtype=torch.float32))
        self.decay_input = self._resolve_decay_input(decay_input, detach_input)

    @property
    def tau(self) -> Tensor:
        """The current time constant ``1 / sigmoid(w)`` (a 0-d tensor attached to ``w``)."""
        return 1.0 / torch.sigmoid(self.w)

    def params(self) -> LIFParams:
        """As the other nodes, but the charge multiplies by ``sigmoid(w)`` (``reciprocal_tau``)
        as SpikingJelly does, instead of dividing by ``1/sigmoid(w)`` (one ulp apart at most
        ``init_tau``)."""
        return super().params()._replace(tau=None, reciprocal_tau=torch.sigmoid(self.w))
