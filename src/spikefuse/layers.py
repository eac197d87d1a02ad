"""Layers over time: synapses, blocks, a recurrent LIF layer and readouts.

Every layer takes a time-first sequence ``(T, B, *features)`` and returns one. Stateless
synapses (:class:`Dense`, :class:`Conv1d`, :class:`Conv2d`, the pools, :class:`Flatten`) fold
time into batch, apply the ordinary PyTorch operation once to ``(T*B, *features)`` and unfold,
so they cost one kernel launch for the whole sequence and give exactly the numbers of a loop
over time steps.

Synapses accept ``weight_hook``: a function applied to the weight on every forward (lava-dl's
``pre_hook_fx``); the string ``"8bit"`` selects :func:`spikefuse.fixed_point.quantize_8bit`
(Loihi 8-bit weights, straight-through rounding).

Blocks pair a synapse with any neuron module that maps ``(T, B, ...)`` to ``(T, B, ...)``
(every spikefuse neuron family does). :class:`RecurrentLIF` is a LIF layer with recurrent
spike feedback, ``h[t] = W x[t] + V s[t-1]``. Readouts turn the last layer into class scores:
:class:`LeakyIntegrator` (non-spiking membrane over time), :class:`SpikeCount`,
:class:`MaxOverTime`, :class:`MaxMembrane` (leaky integrator then max over time).

>>> import torch
>>> from spikefuse import layers
>>> x = torch.rand(10, 4, 3)                       # T=10, B=4, 3 features
>>> net = torch.nn.Sequential(layers.Dense(3, 5), layers.LeakyIntegrator(tau=2.0),
...                           layers.MaxOverTime())
>>> net(x).shape
torch.Size([4, 5])
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import surrogate as _surrogate
from ._validate import (check_bool, check_choice, check_number, check_scalar, check_sequence, check_size, check_sizes,
                        check_tensor, checked_record, tensor_field)
from .fixed_point import quantize_8bit
from .functional.lif import LIFParams, lif_update
from .neuron.base import NeuronModule, bool_check, check_backend, check_plain_backend, number_check, time_last_hint
from .neuron.base import reset_states as _reset_states

__all__ = [
    "TimeDistributed",
    "Dense",
    "Conv1d",
    "Conv2d",
    "AvgPool2d",
    "MaxPool2d",
    "SumPool2d",
    "Flatten",
    "Block",
    "DenseBlock",
    "Conv2dBlock",
    "RecurrentLIF",
    "RecurrentLIFState",
    "LeakyIntegrator",
    "SpikeCount",
    "MaxOverTime",
    "MeanOverTime",
    "MaxMembrane",
    "reset_states",
    "trusted_inputs",
]

WeightHook = Optional[Union[str, Callable[[torch.Tensor], torch.Tensor]]]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
_TRUSTED = False


class trusted_inputs:
    """Context manager: skip the input checks of the layers in this module (shape, dtype,
    NaN/inf) inside a model whose public entry point has already validated its input. The
    NaN check costs a device synchronisation per layer on GPUs.

    >>> with trusted_inputs():
    ...     Dense(2, 1)(torch.rand(3, 1, 2)).shape
    torch.Size([3, 1, 1])
    """

    def __enter__(self):
        global _TRUSTED
        self._old, _TRUSTED = _TRUSTED, True
        return self

    def __exit__(self, *exc):
        global _TRUSTED
        _TRUSTED = self._old
        return False


def inputs_trusted() -> bool:
    """True inside :class:`trusted_inputs`: a model entry point whose caller has already
    scanned the input's values (e.g. the training loop, once per data split) skips its own
    NaN/inf scan and keeps its type and shape checks.

    >>> with trusted_inputs():
    ...     inputs_trusted()
    True
    """
    return _TRUSTED


def _check_seq(name: str, x, min_ndim: int = 2):
    if not _TRUSTED:
        check_sequence(name, x, min_ndim=min_ndim)
    return x


def _check_input(name: str, x, ndim: int, what: str) -> torch.Tensor:
    if _TRUSTED:
        return x
    check_sequence(name, x)
    if x.dim() != ndim:
        raise ValueError(f"{name}: expected a time-first sequence {what} ({ndim} dimensions), "
                         f"got shape {tuple(x.shape)}")
    return x


def _conv_hint(x: torch.Tensor, channels: int) -> str:
    """:func:`~spikefuse.neuron.base.time_last_hint` for a convolution input (channels known)."""
    return time_last_hint(x, (channels,) + tuple(x.shape[2:-1]))


def _resolve_hook(weight_hook: WeightHook):
    if weight_hook is None:
        return None
    if isinstance(weight_hook, str):
        check_choice("weight_hook", weight_hook, ("8bit",))
        return quantize_8bit
    if not callable(weight_hook):
        raise TypeError(f"weight_hook: expected None, '8bit' or a callable, got "
                        f"{type(weight_hook).__name__}")
    return weight_hook


def _check_dtype(dtype) -> None:
    """A layer's parameter ``dtype``: None (torch's default) or a floating dtype."""
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"dtype: expected None or a floating torch.dtype (float16/bfloat16/float32/float64), "
                        f"got {dtype!r}")


def _state_dtype(x: torch.Tensor) -> torch.dtype:
    """Neuron state is fp32 (fp64 kept for float64 inputs, e.g. gradient checks)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _fold(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _unfold(y: torch.Tensor, T: int) -> torch.Tensor:
    return y.reshape(T, y.shape[0] // T, *y.shape[1:])


class _HookedWeight:
    """Mixin: ``effective_weight()`` applies the weight hook (if any) to ``self.weight``;
    ``_weights_for(x)`` gives the weight and bias in the input's dtype (the parameters keep the
    layer's ``dtype``, fp32 by default; a fp16/bf16/fp64 input computes and returns in its own
    dtype, gradients reach the parameters through the cast)."""

    weight_hook = None

    def effective_weight(self) -> torch.Tensor:
        w = self.weight
        return w if self.weight_hook is None else self.weight_hook(w)

    def _weights_for(self, x: torch.Tensor):
        w, b = self.effective_weight(), self.bias
        if w.dtype != x.dtype:
            w = w.to(x.dtype)
        if b is not None and b.dtype != x.dtype:
            b = b.to(x.dtype)
        return w, b


_CONV_SIZE_ARGS = ("stride", "dilation")


def _check_conv_args(cls, args, kwargs) -> None:
    """The sizes of a convolution as torch's constructor would bind them, checked by name
    (torch would truncate a fractional size or raise an error without the argument's name)."""
    import inspect

    bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs).arguments
    n = 1 if issubclass(cls, nn.Conv1d) else 2
    check_size("in_channels", bound.get("in_channels"))
    check_size("out_channels", bound.get("out_channels"))
    check_sizes("kernel_size", bound.get("kernel_size"), n=n)
    for name in _CONV_SIZE_ARGS:
        if name in bound:
            check_sizes(name, bound[name], n=n)
    if "padding" in bound and not isinstance(bound["padding"], str):
        check_sizes("padding", bound["padding"], ge=0, n=n)
    if "groups" in bound:
        check_size("groups", bound["groups"])
    if "bias" in bound:
        check_bool("bias", bound["bias"])


def reset_states(model: nn.Module) -> None:
    """Clear the state of every neuron of ``model``: ``reset_state()`` on each spikefuse neuron
    (every family, Loihi ``persistent_state`` included), ``reset()`` on any other submodule
    with one callable without arguments (:func:`spikefuse.neuron.base.reset_states`).

    >>> import torch
    >>> reset_states(torch.nn.Sequential(Dense(2, 2)))   # no stateful module: nothing to do
    """
    _reset_states(model)


# --------------------------------------------------------------------------------------------
# synapses
# --------------------------------------------------------------------------------------------
class TimeDistributed(nn.Module):
    """Apply any per-step module to a ``(T, B, ...)`` sequence by folding time into batch.

    >>> m = TimeDistributed(torch.nn.BatchNorm1d(3))
    >>> m(torch.rand(5, 2, 3)).shape
    torch.Size([5, 2, 3])
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
        self.module = module

    def forward(self, x):
        _check_seq("x", x)
        return _unfold(self.module(_fold(x)), x.shape[0])


class Dense(_HookedWeight, nn.Linear):
    """Fully connected synapse on ``(T, B, in_features) -> (T, B, out_features)``.

    ``weight_hook``: ``None``, ``"8bit"`` (Loihi 8-bit quantisation) or a callable on the weight.

    >>> Dense(3, 2, weight_hook="8bit")(torch.rand(4, 1, 3)).shape
    torch.Size([4, 1, 2])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_hook: WeightHook = None, device=None, dtype=None):
        check_size("in_features", in_features)
        check_size("out_features", out_features)
        check_bool("bias", bias)
        _check_dtype(dtype)
        super().__init__(int(in_features), int(out_features), bias=bias, device=device, dtype=dtype)
        self.weight_hook = _resolve_hook(weight_hook)

    def forward(self, x):
        _check_input("x", x, 3, "(T, B, in_features)")
        if not _TRUSTED and x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected {self.in_features} input features (last dim), "
                             f"got shape {tuple(x.shape)}{time_last_hint(x, (self.in_features,))}")
        return F.linear(x, *self._weights_for(x))


class Conv1d(_HookedWeight, nn.Conv1d):
    """1-d convolution on ``(T, B, C, L)``; arguments as :class:`torch.nn.Conv1d` plus ``weight_hook``.

    >>> Conv1d(2, 4, 3, padding=1)(torch.rand(5, 2, 2, 8)).shape
    torch.Size([5, 2, 4, 8])
    """

    def __init__(self, *args, weight_hook: WeightHook = None, **kwargs):
        _check_conv_args(nn.Conv1d if isinstance(self, nn.Conv1d) else nn.Conv2d, args, kwargs)
        _check_dtype(kwargs.get("dtype"))
        super().__init__(*args, **kwargs)
        self.weight_hook = _resolve_hook(weight_hook)

    def forward(self, x):
        _check_input("x", x, 4, "(T, B, C, L)")
        if not _TRUSTED and x.shape[2] != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} channels (dim 2), got shape {tuple(x.shape)}"
                             f"{_conv_hint(x, self.in_channels)}")
        return _unfold(self._conv_forward(_fold(x), *self._weights_for(x)), x.shape[0])


class Conv2d(_HookedWeight, nn.Conv2d):
    """2-d convolution on ``(T, B, C, H, W)``; arguments as :class:`torch.nn.Conv2d` plus ``weight_hook``.

    >>> Conv2d(2, 4, 3, padding=1)(torch.rand(5, 2, 2, 8, 8)).shape
    torch.Size([5, 2, 4, 8, 8])
    """

    def __init__(self, *args, weight_hook: WeightHook = None, **kwargs):
        _check_conv_args(nn.Conv1d if isinstance(self, nn.Conv1d) else nn.Conv2d, args, kwargs)
        _check_dtype(kwargs.get("dtype"))
        super().__init__(*args, **kwargs)
        self.weight_hook = _resolve_hook(weight_hook)

    def forward(self, x):
        _check_input("x", x, 5, "(T, B, C, H, W)")
        if not _TRUSTED and x.shape[2] != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} channels (dim 2), got shape {tuple(x.shape)}"
                             f"{_conv_hint(x, self.in_channels)}")
        return _unfold(self._conv_forward(_fold(x), *self._weights_for(x)), x.shape[0])


class _Pool2d(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        check_sizes("kernel_size", kernel_size)
        if stride is not None:
            check_sizes("stride", stride)
        check_sizes("padding", padding, ge=0)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _pool(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        _check_input("x", x, 5, "(T, B, C, H, W)")
        return _unfold(self._pool(_fold(x)), x.shape[0])


class AvgPool2d(_Pool2d):
    """Average pooling on ``(T, B, C, H, W)`` (padding counts as zeros).

    >>> AvgPool2d(2)(torch.ones(3, 1, 1, 4, 4)).shape
    torch.Size([3, 1, 1, 2, 2])
    """

    def _pool(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class MaxPool2d(_Pool2d):
    """Max pooling on ``(T, B, C, H, W)``.

    >>> MaxPool2d(2)(torch.ones(3, 1, 1, 4, 4)).shape
    torch.Size([3, 1, 1, 2, 2])
    """

    def _pool(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class SumPool2d(_Pool2d):
    """Sum pooling (lava-dl's pool synapse with unit weight) on ``(T, B, C, H, W)``.

    >>> SumPool2d(2)(torch.ones(1, 1, 1, 4, 4))[0, 0, 0]
    tensor([[4., 4.],
            [4., 4.]])
    """

    def _pool(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=1)


class Flatten(nn.Module):
    """``(T, B, *features) -> (T, B, prod(features))``.

    >>> Flatten()(torch.rand(3, 2, 4, 5)).shape
    torch.Size([3, 2, 20])
    """

    def forward(self, x):
        _check_seq("x", x)
        return x.reshape(x.shape[0], x.shape[1], -1)


# --------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------
def _make_neuron(neuron) -> nn.Module:
    if isinstance(neuron, nn.Module):
        return neuron
    if callable(neuron):
        m = neuron()
        if not isinstance(m, nn.Module):
            raise TypeError(f"neuron: the factory returned {type(m).__name__}, expected a torch.nn.Module")
        return m
    raise TypeError(f"neuron: expected an nn.Module or a zero-argument factory, got {type(neuron).__name__}")


class Block(nn.Module):
    """A synapse followed by a neuron: ``neuron(synapse(x))`` on ``(T, B, ...)``.

    ``neuron`` is any module mapping ``(T, B, ...)`` to ``(T, B, ...)`` (every spikefuse neuron
    family, or a :class:`LeakyIntegrator`), or a zero-argument factory returning one.

    The block shows its neuron's surface: ``params()``, ``reset()`` / ``reset_state()``
    (clear the neuron's state) and ``backend`` (the neuron's; ``backend=`` sets it).

    >>> blk = Block(Dense(3, 4), LeakyIntegrator())
    >>> blk(torch.rand(6, 2, 3)).shape
    torch.Size([6, 2, 4])
    """

    def __init__(self, synapse: nn.Module, neuron, *, backend: Optional[str] = None):
        super().__init__()
        if not isinstance(synapse, nn.Module):
            raise TypeError(f"synapse: expected a torch.nn.Module, got {type(synapse).__name__}")
        self.synapse = synapse
        self.neuron = _make_neuron(neuron)
        if backend is not None:
            self.backend = backend

    @property
    def backend(self) -> Optional[str]:
        """The neuron's kernel backend (``None`` if it has none)."""
        return getattr(self.neuron, "backend", None)

    @backend.setter
    def backend(self, value) -> None:
        check_backend(value)
        if not hasattr(self.neuron, "backend"):
            if value is None:
                return
            raise ValueError(f"backend: the block's neuron {type(self.neuron).__name__} has no kernel "
                             f"backend, got {value!r}")
        self.neuron.backend = value

    @property
    def last_traces(self):
        """The neuron's :attr:`last_traces` (``None`` if it records none)."""
        return getattr(self.neuron, "last_traces", None)

    def params(self):
        """The functional parameters of the block's neuron."""
        fn = getattr(self.neuron, "params", None)
        if not callable(fn):
            raise TypeError(f"params: the block's neuron {type(self.neuron).__name__} has no functional parameters")
        return fn()

    def reset_state(self) -> None:
        """Clear the state of the block's neuron (:func:`reset_states`)."""
        _reset_states(self.neuron)

    #: :func:`reset_states` of a model walks into the neuron itself and skips this method
    #: (which would reset the neuron a second time); an override in a subclass is called
    reset_state.resets_only_submodules = True
    reset = reset_state

    def forward(self, x):
        return self.neuron(self.synapse(x))


class DenseBlock(Block):
    """:class:`Dense` synapse + neuron.

    >>> DenseBlock(3, 4, LeakyIntegrator(), weight_hook="8bit")(torch.rand(6, 2, 3)).shape
    torch.Size([6, 2, 4])
    """

    def __init__(self, in_features: int, out_features: int, neuron, bias: bool = True,
                 weight_hook: WeightHook = None, *, backend: Optional[str] = None):
        super().__init__(Dense(in_features, out_features, bias=bias, weight_hook=weight_hook), neuron,
                         backend=backend)


class Conv2dBlock(Block):
    """:class:`Conv2d` synapse + neuron; convolution arguments as :class:`torch.nn.Conv2d`.

    >>> Conv2dBlock(1, 2, 3, LeakyIntegrator(), padding=1)(torch.rand(4, 1, 1, 5, 5)).shape
    torch.Size([4, 1, 2, 5, 5])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, neuron, *,
                 weight_hook: WeightHook = None, backend: Optional[str] = None, **conv_kwargs):
        super().__init__(Conv2d(in_channels, out_channels, kernel_size, weight_hook=weight_hook,
                                **conv_kwargs), neuron, backend=backend)


# --------------------------------------------------------------------------------------------
# recurrent LIF
# --------------------------------------------------------------------------------------------
@checked_record(v=tensor_field(floating=True), s=tensor_field(floating=True))
class RecurrentLIFState(NamedTuple):
    """Membrane ``v`` (after reset) and last spikes ``s``, both ``(B, out_features)``."""

    v: torch.Tensor
    s: torch.Tensor


class RecurrentLIF(NeuronModule, nn.Module):
    """LIF layer with recurrent spike feedback (SpikingJelly LIF charge, SPEC.md 15.1-15.2);
    each step is the functional LIF step of :mod:`spikefuse.functional.lif`.

    Per step, with ``h[t] = W x[t] + b + V s[t-1]``::

        decay_input:      H = v + (h - (v - v_reset)) / tau
        not decay_input:  H = v - (v - v_reset) / tau + h
        s = 1[H - v_threshold >= 0]         (surrogate gradient)
        hard reset (v_reset is a number): v = s * v_reset + (1 - s) * H
        soft reset (v_reset=None):        v = H - s * v_threshold

    ``detach_reset`` cuts the reset's dependence on ``s`` from the graph. With ``v_reset=None``
    the charge uses 0 in place of ``v_reset``. The initial state is ``v = v_reset`` (0 for soft
    reset) and ``s = 0``; the layer keeps no state between calls (pass ``state`` to continue).
    ``params()`` returns the :class:`~spikefuse.functional.lif.LIFParams`; ``backend`` may be
    ``None``, ``"auto"`` or ``"reference"`` (the feedback needs the per-step loop, there is no
    fused kernel). Values are checked when built and when assigned.

    >>> rnn = RecurrentLIF(3, 5)
    >>> rnn(torch.rand(8, 2, 3)).shape
    torch.Size([8, 2, 5])
    >>> spikes, state = rnn(torch.rand(8, 2, 3), return_state=True)
    >>> state.v.shape
    torch.Size([2, 5])
    """

    def __init__(self, in_features: int, out_features: int, tau: float = 2.0,
                 v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                 surrogate="atan", detach_reset: bool = False, decay_input: bool = True,
                 bias: bool = True, weight_hook: WeightHook = None, *, backend: Optional[str] = None):
        super().__init__()
        check_size("in_features", in_features)
        check_size("out_features", out_features)
        tau = check_scalar("tau", tau, ge=1.0)
        v_threshold = check_scalar("v_threshold", v_threshold)
        if v_reset is not None:
            v_reset = check_scalar("v_reset", v_reset)
        check_bool("detach_reset", detach_reset)
        check_bool("decay_input", decay_input)
        check_bool("bias", bias)
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.surrogate = _surrogate.get(surrogate)
        self.detach_reset = detach_reset
        self.decay_input = decay_input
        self.backend = backend
        self.input = Dense(in_features, out_features, bias=bias, weight_hook=weight_hook)
        self.recurrent = Dense(out_features, out_features, bias=False, weight_hook=weight_hook)
        # recurrent weights start small so that the layer is not dominated by its own feedback
        nn.init.uniform_(self.recurrent.weight, -0.5 / math.sqrt(out_features), 0.5 / math.sqrt(out_features))

    _PARAM_CHECKS = {
        "tau": number_check(ge=1.0),
        "v_threshold": number_check(),
        "v_reset": number_check(optional=True),
        "detach_reset": bool_check,
        "decay_input": bool_check,
    }

    @NeuronModule.backend.setter
    def backend(self, value) -> None:
        self.__dict__["_backend"] = check_plain_backend(
            "RecurrentLIF", value, "its recurrent feedback needs the per-step loop")

    @property
    def out_features(self) -> int:
        return self.input.out_features

    def params(self) -> LIFParams:
        """The :class:`~spikefuse.functional.lif.LIFParams` of every step."""
        return LIFParams(tau=self.tau, v_threshold=self.v_threshold, v_reset=self.v_reset,
                         decay_input=self.decay_input, detach_reset=self.detach_reset,
                         surrogate=self.surrogate)

    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> RecurrentLIFState:
        v0 = 0.0 if self.v_reset is None else self.v_reset
        shape = (batch, self.out_features)
        return RecurrentLIFState(torch.full(shape, v0, device=device, dtype=dtype),
                                 torch.zeros(shape, device=device, dtype=dtype))

    def step(self, h_in: torch.Tensor, state: RecurrentLIFState, w_rec: torch.Tensor,
             params: Optional[LIFParams] = None):
        """One step given the feed-forward current ``h_in = W x[t] + b``: the functional LIF
        update (:func:`~spikefuse.functional.lif.lif_update`, with this layer's surrogate) of
        the charge ``h_in + V s[t-1]``."""
        v, s_prev = state
        h = h_in + F.linear(s_prev, w_rec)
        s, _, v_new = lif_update(h, v, self.params() if params is None else params)
        return s, RecurrentLIFState(v_new, s)

    def forward(self, x, state: Optional[RecurrentLIFState] = None, return_state: bool = False):
        _check_input("x", x, 3, "(T, B, in_features)")
        sdt = _state_dtype(x)
        h_in = self.input(x).to(sdt)
        T, B = x.shape[0], x.shape[1]
        if state is None:
            state = self.initial_state(B, device=x.device, dtype=sdt)
        else:
            if not isinstance(state, tuple) or len(state) != 2:
                raise TypeError("state: expected a RecurrentLIFState(v, s)")
            for name, t in zip(("state.v", "state.s"), state):
                check_tensor(name, t, ndim=2)
                if tuple(t.shape) != (B, self.out_features):
                    raise ValueError(f"{name}: expected shape {(B, self.out_features)}, got {tuple(t.shape)}")
            state = RecurrentLIFState(*(t.to(sdt) for t in state))
        w_rec = self.recurrent.effective_weight().to(sdt)
        params = self.params()
        out = []
        for t in range(T):
            s, state = self.step(h_in[t], state, w_rec, params)
            out.append(s)
        spikes = torch.stack(out).to(x.dtype)
        return (spikes, state) if return_state else spikes


# --------------------------------------------------------------------------------------------
# readouts
# --------------------------------------------------------------------------------------------
class LeakyIntegrator(nn.Module):
    """Non-spiking leaky integrator (LI) neuron; returns the membrane over time ``(T, B, ...)``.

    ``decay_input=True``: ``v[t] = v[t-1] + (x[t] - v[t-1]) / tau``;
    ``decay_input=False``: ``v[t] = (1 - 1/tau) v[t-1] + x[t]``. ``v[-1] = 0``; ``tau >= 1``
    (``tau = 1`` passes the input through). No state is kept between calls.

    >>> LeakyIntegrator(tau=2.0)(torch.ones(3, 1, 1)).flatten()
    tensor([0.5000, 0.7500, 0.8750])
    """

    def __init__(self, tau: float = 2.0, decay_input: bool = True):
        super().__init__()
        tau = check_scalar("tau", tau, ge=1.0)
        check_bool("decay_input", decay_input)
        self.tau = float(tau)
        self.decay_input = decay_input

    def extra_repr(self):
        return f"tau={self.tau}, decay_input={self.decay_input}"

    def forward(self, x):
        _check_seq("x", x)
        decay = 1.0 - 1.0 / self.tau
        gain = 1.0 / self.tau if self.decay_input else 1.0
        xf = x.to(_state_dtype(x))
        if _li_fused_ok(xf):
            return _LIScan.apply(xf, decay, gain).to(x.dtype)
        return _li_loop(xf, decay, gain).to(x.dtype)


def _li_loop(xf: torch.Tensor, decay: float, gain: float) -> torch.Tensor:
    """The leaky integrator's recurrence ``v[t] = decay v[t-1] + gain x[t]`` (``v[-1] = 0``) as
    a loop of torch ops: autograd differentiates it (to any order); torch.compile unrolls it."""
    v = torch.zeros_like(xf[0])
    out = []
    for t in range(xf.shape[0]):
        v = decay * v + gain * xf[t]
        out.append(v)
    return torch.stack(out)


def _li_fused_ok(xf: torch.Tensor) -> bool:
    """Eager calls on plain tensors take :class:`_LIScan` (no tracer, mode or tensor subclass)."""
    if _core_compiling() or type(xf) not in (torch.Tensor, nn.Parameter):
        return False
    return not (torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled())


def _core_compiling() -> bool:
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - very old torch
        return False


class _LIScan(torch.autograd.Function):
    """:func:`_li_loop` with one autograd node instead of ~4 per step (issue 15 item 3): the
    forward writes each step into one output buffer and the backward runs the reverse
    recurrence ``g_v[t] = g[t] + decay g_v[t+1]``, ``g_x = gain g_v``; every element is
    computed with the loop's operations in the loop's order, so the outputs and the gradients
    equal the loop's bit for bit (the trailing ``+ 0.0`` is the loop's summation of the
    per-step gradients into zeros, which turns a -0.0 into +0.0).

    On CPU both recurrences run on NumPy views of the tensors (:func:`_li_ops`): the same
    IEEE operations in the tensors' dtype, at a fraction of torch's per-op dispatch cost, which
    is most of the time of a readout of a few neurons. A backward that builds a graph
    (``create_graph=True``) runs the torch ops."""

    @staticmethod
    def forward(ctx, xf, decay, gain):
        ctx.decay, ctx.gain, ctx.T = decay, gain, xf.shape[0]
        xp, wrap, (d, g0, zero) = _li_ops(xf, decay, gain, 0.0)
        nb = _li_kernels(xp)
        if nb is not None:
            return _li_compiled(nb.li_fwd, xf, d, g0, zero)
        return wrap(_li_forward(xp, _xp_view(xp, xf) * g0, d))

    @staticmethod
    def backward(ctx, g):
        if g is None:  # pragma: no cover - autograd materialises the output gradient
            return None, None, None
        xp, wrap, (d, g0, zero) = _li_ops(g, ctx.decay, ctx.gain, 0.0)
        nb = _li_kernels(xp)
        if nb is not None:
            return _li_compiled(nb.li_bwd, g, d, g0, zero), None, None
        gx = _li_backward(xp, _xp_view(xp, g), d) * g0
        return wrap(gx + zero if ctx.T > 1 else gx), None, None


def _li_kernels(xp):
    """The compiled recurrences (:mod:`spikefuse.kernels.cpu._nb_li`: the same operations in the
    same order, without NumPy's per-step calls) for the NumPy path, or None (the torch path, or
    no numba: then the NumPy loops run)."""
    if xp is torch:
        return None
    return _jit().kernels("li")


def _jit():
    jit = _JIT.get("jit")
    if jit is None:
        from .kernels.cpu import jit

        _JIT["jit"] = jit
    return jit


_JIT: dict = {}


def _li_compiled(k, t: torch.Tensor, decay, gain, zero) -> torch.Tensor:
    """Kernel ``k`` of :mod:`spikefuse.kernels.cpu._nb_li` over ``t`` viewed as ``(T, M)``: a
    new tensor of ``t``'s shape and dtype."""
    src = t.detach().contiguous()
    T = src.shape[0]
    out = torch.empty(src.shape, dtype=src.dtype)
    a, o = src.view(T, -1).numpy(), out.view(T, -1).numpy()
    _jit().run(k, a.shape[1], 4096, a, decay, gain, zero, o, steps=T)
    return out


def _li_ops(t: torch.Tensor, *scalars):
    """``(namespace, to_tensor, scalars)`` for running the leaky-integrator recurrences on
    ``t``: NumPy (scalars as ``t``'s dtype, results wrapped back into tensors) for a CPU
    tensor when no graph is being recorded, torch (Python floats) otherwise."""
    if t.device.type != "cpu" or torch.is_grad_enabled() or type(t) not in (torch.Tensor, nn.Parameter):
        return torch, (lambda a: a), scalars
    import numpy as np

    cast = _NP_SCALAR.get(t.dtype)
    if cast is None:
        cast = _NP_SCALAR[t.dtype] = np.dtype(str(t.dtype).replace("torch.", "")).type
    return np, torch.from_numpy, tuple(cast(v) for v in scalars)


_NP_SCALAR: dict = {}   # torch dtype -> its NumPy scalar type


def _xp_view(xp, t: torch.Tensor):
    """``t`` itself for torch, a contiguous NumPy view for NumPy."""
    return t if xp is torch else t.detach().contiguous().numpy()


def _li_forward(xp, gx, decay):
    """``v[t] = decay v[t-1] + gx[t]`` from ``v[-1] = 0`` into one buffer (torch or NumPy)."""
    out = xp.empty_like(gx)
    prev = xp.zeros_like(gx[0])
    for t in range(gx.shape[0]):
        xp.multiply(prev, decay, out=out[t])
        xp.add(out[t], gx[t], out=out[t])
        prev = out[t]
    return out


def _li_backward(xp, g, decay):
    """The reverse recurrence ``g_v[t] = g[t] + decay g_v[t+1]`` (torch or NumPy)."""
    gv = [g[-1]]
    for t in range(g.shape[0] - 2, -1, -1):
        gv.append(g[t] + gv[-1] * decay)
    return xp.stack(gv[::-1])


class SpikeCount(nn.Module):
    """Sum over time: ``(T, B, ...) -> (B, ...)``.

    >>> SpikeCount()(torch.ones(4, 2, 3))[0]
    tensor([4., 4., 4.])
    """

    def forward(self, x):
        _check_seq("x", x)
        return x.sum(0)


class MaxOverTime(nn.Module):
    """Maximum over time: ``(T, B, ...) -> (B, ...)`` (gradient flows to the arg-max step).

    >>> MaxOverTime()(torch.tensor([[[1.0]], [[3.0]], [[2.0]]]))
    tensor([[3.]])
    """

    def forward(self, x):
        _check_seq("x", x)
        return x.amax(0)


class MeanOverTime(nn.Module):
    """Mean over time: ``(T, B, ...) -> (B, ...)``.

    >>> MeanOverTime()(torch.tensor([[[1.0]], [[3.0]]]))
    tensor([[2.]])
    """

    def forward(self, x):
        _check_seq("x", x)
        return x.mean(0)


class MaxMembrane(nn.Module):
    """Leaky integrator followed by the maximum over time: ``(T, B, ...) -> (B, ...)``.

    >>> MaxMembrane(tau=2.0)(torch.ones(3, 1, 1))
    tensor([[0.8750]])
    """

    def __init__(self, tau: float = 2.0, decay_input: bool = True):
        super().__init__()
        self.integrator = LeakyIntegrator(tau, decay_input)

    def forward(self, x):
        return self.integrator(x).amax(0)
