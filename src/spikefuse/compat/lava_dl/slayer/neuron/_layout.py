"""lava-dl's time-last layout ``(N, C, [H, W,] T)`` over spikefuse's time-first modules.

Conversions are views (``movedim``): the native module sees ``(T, N, C, ...)``, the user sees
lava's layout in and out. Modules a lava neuron applies internally (its ``norm`` instances and
its ``dropout``) are given lava's layout too: the compat ``Dropout`` / norms are switched to
the native layout when a neuron owns them, any other ``nn.Module`` gets forward hooks that move
time last before it runs and first again after it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spikefuse._validate import _describe

__all__ = ["time_first", "time_last", "TimeLastNeuron", "ResonatorProperties", "lava_kwargs"]

LAYOUT = "(N, C, ..., T)"


def time_first(name: str, x, min_ndim: int = 3):
    """A lava tensor ``(N, C, ..., T)`` as a time-first view ``(T, N, C, ...)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {LAYOUT}, got {_describe(x)}")
    if x.dim() < min_ndim:
        raise ValueError(
            f"{name}: expected a time-last tensor {LAYOUT} with at least {min_ndim} dimensions "
            f"(batch, channels, ..., time), got shape {tuple(x.shape)}"
        )
    return x.movedim(-1, 0)


def time_last(y):
    """Time-first results (a tensor or a tuple of them) back in lava's layout."""
    if isinstance(y, torch.Tensor):
        return y.movedim(0, -1)
    if isinstance(y, (tuple, list)):
        return type(y)(time_last(a) for a in y)
    return y


def _complex_time_first(x, name: str = "input"):
    if isinstance(x, torch.Tensor) and x.is_complex():
        return time_first(name, x)
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"{name}: expected a (real, imag) pair of {LAYOUT} tensors, got {len(x)} items")
        return (time_first(f"{name} (real)", x[0]), time_first(f"{name} (imag)", x[1]))
    raise TypeError(
        f"{name}: resonator neurons take a (real, imag) pair of {LAYOUT} tensors or a complex tensor, "
        f"got {_describe(x)}"
    )


def input_shape(x):
    return x[0].shape if isinstance(x, (tuple, list)) else x.shape


def lava_kwargs(local_vars: dict) -> dict:
    """The constructor arguments of a compat ``__init__`` (its ``locals()``) as keywords."""
    return {k: v for k, v in local_vars.items() if k not in ("self", "__class__")}


# ----------------------------------------------------------------------------- submodules
def _to_tl(module, args):
    return tuple(a.movedim(0, -1) if isinstance(a, torch.Tensor) else a for a in args)


def _to_tf(module, args, output):
    return time_last_to_first(output)


def time_last_to_first(y):
    if isinstance(y, torch.Tensor):
        return y.movedim(-1, 0)
    if isinstance(y, (tuple, list)):
        return type(y)(time_last_to_first(a) for a in y)
    return y


def _inner(module):
    """Make a module that a neuron applies to its time-first internals see lava's layout."""
    if module is None:
        return None
    if getattr(module, "_lava_time_last", False):
        module._lava_inner = True        # a compat module: run it on the native layout
        return module
    if isinstance(module, nn.Module):
        if not getattr(module, "_lava_hooked", False):
            module.register_forward_pre_hook(_to_tl)
            module.register_forward_hook(_to_tf)
            module._lava_hooked = True
        return module

    def adapted(x):
        return time_last_to_first(module(x.movedim(0, -1)))

    return adapted


class TimeLastModule:
    """Mixin of the compat norms and dropout: lava's layout standalone, the native layout when
    a compat neuron owns the module (``_lava_inner``)."""

    _lava_time_last = True
    _lava_inner = False


class TimeLastNeuron:
    """Mixin of the compat neurons (put before the native class): ``forward``, ``dynamics`` and
    ``spike`` take and return lava's time-last tensors."""

    _lava_complex_input = False
    _native = None  # the native class whose __init__ builds the neuron

    def _lava_init(self, local_vars: dict) -> None:
        type(self)._native.__init__(self, **lava_kwargs(local_vars))
        for attr in ("norm", "real_norm", "imag_norm"):
            if getattr(self, attr, None) is not None:
                _inner(getattr(self, attr))
        if getattr(self, "drop", None) is not None:
            drop = _inner(self.drop)
            if not isinstance(self.drop, nn.Module):
                self.drop = drop

    def _tf_input(self, input):
        if self._lava_complex_input:
            x = _complex_time_first(input)
        elif isinstance(input, (tuple, list)):
            raise TypeError(
                f"input: {type(self).__module__.rsplit('.', 1)[-1]} neurons are real-valued and take one "
                f"tensor {LAYOUT}, got a {type(input).__name__} of {len(input)} items"
            )
        else:
            x = time_first("input", input)
        lava_shape = tuple((x[0] if isinstance(x, tuple) else x).shape[2:])
        if getattr(self, "shape", None) is not None and lava_shape != tuple(self.shape):
            raise ValueError(
                f"input: neuron shape input.shape[1:-1] = {lava_shape} does not match the shape "
                f"{tuple(self.shape)} fixed at the first call (input shape {tuple(input_shape(input))})"
            )
        return x

    def forward(self, input):
        return time_last(super().forward(self._tf_input(input)))

    def dynamics(self, input):
        return time_last(super().dynamics(self._tf_input(input)))

    def spike(self, *traces):
        names = ("real", "imag") if self._lava_complex_input else ("voltage",)
        names = names + ("threshold", "refractory")
        tf = tuple(time_first(n, t, min_ndim=3) for n, t in zip(names, traces))
        return time_last(super().spike(*tf))


class ResonatorProperties:
    """lava-dl's float32 NumPy ``decay``, ``lam``, ``frequency`` and ``period`` of the RF family
    (arrays of shape ``(1,)`` or ``(C,)``, computed from the rounded sin/cos decays)."""

    def _lava_rounded(self):
        self.clamp()
        s = torch.round(self.sin_decay.detach()).cpu().numpy()
        c = torch.round(self.cos_decay.detach()).cpu().numpy()
        return s, c

    @property
    def decay(self):
        s, c = self._lava_rounded()
        return 1 - np.sqrt((s / self.p_scale) ** 2 + (c / self.p_scale) ** 2)

    @property
    def lam(self):
        return -np.log(1 - self.decay)

    @property
    def frequency(self):
        s, c = self._lava_rounded()
        return np.arctan2(s, c) / 2 / np.pi

    @property
    def period(self):
        return 1 / self.frequency
