"""The one surface every spikefuse neuron module shares (ARCHITECTURE.md 6.2).

============================  ==============================================================
member                        meaning
============================  ==============================================================
``params()``                  a method (never a property) returning the family's functional
                              Params (``LIFParams``, ``CubaParams``, ``loihi.CubaParams``,
                              ``AlifParams``, ``RFParams``, ``AdRFParams``,
                              ``SigmaDeltaParams``); learnable values keep their graph
``reset_state()``             forget the state carried between calls (persistent membrane,
                              Loihi ``persistent_state`` buffers, ``last_traces``)
``reset()``                   the same, under SpikingJelly's name; the hxtorch families
                              (:class:`~spikefuse.neuron.cuba.CubaLIF`, ...,
                              :class:`~spikefuse.neuron.eventprop.EventPropLIF`) use
                              ``reset`` for their reset potential, as hxtorch does, and offer
                              ``reset_state()`` only
``backend``                   ``None`` (the global default) or one of
                              :data:`spikefuse.kernels.BACKENDS`; accepted by every
                              constructor (keyword ``backend=``), checked when set
``last_traces``               the detached traces of the last forward where the family
                              records them (``None`` otherwise)
============================  ==============================================================

:func:`reset_states` (also ``spikefuse.layers.reset_states`` and
``spikefuse.neuron.reset_net``) clears every neuron of a model through ``reset_state()``, and
calls ``reset()`` on any other submodule that has one callable without arguments.

Parameter values are checked when a module is built (and, for the SpikingJelly and hxtorch
families, when a parameter attribute is assigned afterwards), so a forward does not re-read
parameter data.

>>> import torch
>>> from spikefuse.neuron import LIF
>>> from spikefuse.neuron.base import NeuronBase, reset_states
>>> net = torch.nn.Sequential(torch.nn.Identity(), LIF())
>>> _ = net(torch.ones(3, 1, 2))
>>> isinstance(net[1], NeuronBase), net[1].v is not None
(True, True)
>>> reset_states(net); net[1].v is None
True
"""
from __future__ import annotations

import inspect
import types
import weakref
from typing import Optional

from torch import nn

from .._validate import _describe, check_bool, check_number

__all__ = [
    "NeuronBase", "NeuronModule", "check_backend", "check_plain_backend", "number_check", "bool_check",
    "reset_states", "reset_net", "time_last_hint",
]


def check_backend(backend) -> Optional[str]:
    """``None`` or a name of :data:`spikefuse.kernels.BACKENDS`; anything else is refused
    with an error naming ``backend``.

    >>> check_backend("cpu")
    'cpu'
    >>> check_backend("cuda")
    Traceback (most recent call last):
    ...
    ValueError: backend: expected None or one of ['auto', 'reference', 'triton', 'cpu'], got 'cuda'
    """
    from ..kernels import BACKENDS

    if backend is None:
        return None
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected None or one of {list(BACKENDS)}, got {_describe(backend)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected None or one of {list(BACKENDS)}, got {backend!r}")
    return backend


def time_last_hint(x, features) -> str:
    """A sentence for a shape error that is raised anyway, when ``x`` has the shape of
    lava-dl's time-last layout ``(B, *features, T)`` for the known ``features`` (time-first
    modules take ``(T, B, *features)``); ``""`` otherwise. It only names a likely cause: a
    time-first tensor can have that shape too.

    >>> import torch
    >>> time_last_hint(torch.zeros(2, 3, 7), (3,))
    "; if this is lava-dl's time-last layout (B, *features, T), pass input.movedim(-1, 0): spikefuse is time-first (T, B, *features)"
    >>> time_last_hint(torch.zeros(7, 2, 4), (3,))
    ''
    """
    if features is not None and x.dim() >= 3 and tuple(x.shape[1:-1]) == tuple(features):
        return ("; if this is lava-dl's time-last layout (B, *features, T), pass input.movedim(-1, 0): "
                "spikefuse is time-first (T, B, *features)")
    return ""


def check_plain_backend(owner: str, backend, why: str) -> Optional[str]:
    """``backend`` of a module without a fused kernel: ``None``, ``"auto"`` or
    ``"reference"`` (all run the same plain-torch loop); a kernel backend is refused.

    >>> check_plain_backend("RecurrentLIF", "triton", "its feedback needs the step loop")
    Traceback (most recent call last):
    ...
    ValueError: backend: RecurrentLIF has no fused kernel (its feedback needs the step loop); expected None, 'auto' or 'reference', got 'triton'
    """
    check_backend(backend)
    if backend not in (None, "auto", "reference"):
        raise ValueError(
            f"backend: {owner} has no fused kernel ({why}); expected None, 'auto' or 'reference', "
            f"got {backend!r}"
        )
    return backend


def number_check(optional: bool = False, **bounds):
    """A ``_PARAM_CHECKS`` entry: ``check_number(name, value, **bounds)`` (``None`` allowed
    when ``optional``)."""

    def check(module, name, value):
        if not (optional and value is None):
            check_number(name, value, **bounds)

    return check


def bool_check(module, name, value) -> None:
    """A ``_PARAM_CHECKS`` entry for a flag."""
    check_bool(name, value)


class NeuronBase:
    """Mixin (before :class:`torch.nn.Module` in the bases) holding the shared surface:
    ``params()``, ``reset_state()``, a checked ``backend`` and ``last_traces``.

    Subclasses implement :meth:`params` and extend :meth:`reset_state` (calling
    ``super().reset_state()``). ``_PARAM_CHECKS`` maps attribute names to a check
    ``fn(module, name, value)`` that runs whenever the attribute is assigned (in the
    constructor and afterwards), so a forward need not check values again.
    """

    #: detached traces of the last forward (families that record them overwrite it)
    last_traces = None
    #: attribute name -> check(module, name, value), run on every assignment
    _PARAM_CHECKS: dict = {}

    @property
    def backend(self) -> Optional[str]:
        """Kernel backend of :meth:`forward` (``None``: the global default)."""
        return self.__dict__.get("_backend")

    @backend.setter
    def backend(self, value) -> None:
        self.__dict__["_backend"] = check_backend(value)

    def params(self):  # pragma: no cover - every family overrides it
        """The functional parameters this module runs with."""
        raise NotImplementedError(f"{type(self).__name__}.params()")

    def reset_state(self) -> None:
        """Forget the state carried between calls (here: :attr:`last_traces`)."""
        self.last_traces = None

    def __setattr__(self, name, value):
        check = self._PARAM_CHECKS.get(name)
        if check is not None:
            check(self, name, value)
        super().__setattr__(name, value)


class NeuronModule(NeuronBase):
    """:class:`NeuronBase` plus ``reset()`` (SpikingJelly's name for :meth:`reset_state`)."""

    def reset(self) -> None:
        """Forget the state carried between calls (same as :meth:`reset_state`)."""
        self.reset_state()


#: function -> (its signature key, whether its bound method is callable without arguments):
#: :func:`reset_states` runs once per forward and ``inspect.signature`` was most of its cost
#: (issue 15 item 3)
_NO_ARGS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _signature_no_required_args(fn) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return not any(
        p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in sig.parameters.values()
    )


def _no_required_args(fn) -> bool:
    """True if ``fn()`` binds. For a bound Python method the answer depends only on its
    function's code and which parameters have defaults, so it is computed once per function
    (and again if those change); anything else is inspected on each call."""
    func = getattr(fn, "__func__", None)
    if (not isinstance(func, types.FunctionType) or getattr(fn, "__self__", None) is None
            or hasattr(func, "__signature__") or hasattr(func, "__wrapped__")):
        return _signature_no_required_args(fn)
    key = (func.__code__, len(func.__defaults__ or ()), frozenset(func.__kwdefaults__ or ()))
    hit = _NO_ARGS_CACHE.get(func)
    if hit is None or hit[0] != key:
        hit = _NO_ARGS_CACHE[func] = (key, _signature_no_required_args(fn))
    return hit[1]


def _reset_all(model, argname: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{argname}: expected a torch.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        if isinstance(m, NeuronBase):
            m.reset_state()
            continue
        fn = getattr(m, "reset", None)
        if getattr(getattr(fn, "__func__", None), "resets_only_submodules", False):
            continue  # e.g. a layers.Block: the walk reaches its neuron anyway
        if callable(fn) and not isinstance(fn, nn.Module) and _no_required_args(fn):
            fn()


def reset_states(model: nn.Module) -> None:
    """Clear the state of every neuron in ``model`` (itself included): ``reset_state()`` on
    each spikefuse neuron (every family, Loihi ``persistent_state`` buffers included), and
    ``reset()`` on any other submodule with a ``reset`` method callable without arguments
    (SpikingJelly's ``functional.reset_net`` convention).

    >>> import torch
    >>> reset_states(torch.nn.Sequential(torch.nn.Linear(2, 2)))   # nothing stateful
    >>> reset_states("net")
    Traceback (most recent call last):
    ...
    TypeError: model: expected a torch.nn.Module, got str
    """
    _reset_all(model, "model")


def reset_net(net: nn.Module) -> None:
    """:func:`reset_states` under SpikingJelly's name (``functional.reset_net``)."""
    _reset_all(net, "net")
