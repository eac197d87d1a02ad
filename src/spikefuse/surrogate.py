"""Surrogate-gradient families.

A surrogate is a Heaviside step in forward and a smooth pseudo-derivative in backward. Every
family here is a small frozen object with

- ``grad(x)``: the pseudo-derivative dS/dx at ``x = v - threshold`` (plain torch, any dtype);
- ``primitive(x)``: a smooth function whose derivative is ``grad`` (used by tests and as a
  documentation of the shape of the family);
- ``kernel_id`` and ``kernel_params``: an integer and two floats that a fused kernel uses to
  evaluate the same formula (``kernel_id = -1``: not expressible in a kernel; dispatch then
  falls back to the reference path);
- ``__call__(x, strict=False)``: the spike, ``1[x >= 0]`` (``1[x > 0]`` with ``strict=True``)
  with ``grad`` as its backward.

Formulas (SPEC.md section 2):

================  =====================================================  =========
family            dS/dx                                                  at x = 0
================  =====================================================  =========
ATan(alpha)       (alpha/2) / (1 + (pi/2 * alpha * x)^2)                  alpha/2
Sigmoid(alpha)    alpha * s * (1 - s),  s = sigmoid(alpha * x)            alpha/4
SuperSpike(alpha) 1 / (alpha * |x| + 1)^2                                 1
FastSigmoid(slope) same formula as SuperSpike (snnTorch's name)           1
SLAYERExp(tau_rho, scale_rho)  scale_rho/(2 tau_rho) * exp(-|x|/tau_rho)  scale_rho/(2 tau_rho)
Triangle(width, height)  height * max(0, 1 - |x|/width)                   height
Custom(fn)        fn(x)                                                   fn(0)
================  =====================================================  =========
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable

import torch

from ._validate import check_number

__all__ = [
    "Surrogate",
    "ATan",
    "Sigmoid",
    "SuperSpike",
    "FastSigmoid",
    "SLAYERExp",
    "Triangle",
    "Custom",
    "heaviside",
    "get",
    "KERNEL_IDS",
]

#: kernel ids shared with the fused kernels (keep in sync with kernels/triton/common.py)
KERNEL_IDS = {"atan": 0, "sigmoid": 1, "superspike": 2, "slayer_exp": 3, "triangle": 4}


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, surrogate, strict):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype) if strict else (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return ctx.surrogate.backward(grad_out, x), None, None


class Surrogate:
    """Base class. Subclasses define ``grad``, ``primitive``, ``kernel_id``, ``kernel_params``."""

    name: str = "surrogate"
    kernel_id: int = -1

    @property
    def kernel_params(self) -> tuple[float, float]:
        return (0.0, 0.0)

    def grad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The gradient of the spike at ``x`` given the output gradient: ``grad_out * grad(x)``."""
        return grad_out * self.grad(x)

    def __call__(self, x: torch.Tensor, strict: bool = False) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x: expected a floating tensor, got dtype {x.dtype}")
        return _SpikeFn.apply(x, self, bool(strict))


class _Parametric(Surrogate):
    """Base of the built-in families (frozen dataclasses): every field is a shape parameter
    that must be ``> 0``, checked in field order; ``kernel_params`` are the fields as floats,
    padded with 0.0 to two."""

    def __post_init__(self):
        for f in fields(self):
            check_number(f.name, getattr(self, f.name), gt=0)

    @property
    def kernel_params(self):
        vals = tuple(float(getattr(self, f.name)) for f in fields(self))
        return vals + (0.0,) * (2 - len(vals))


@dataclass(frozen=True)
class ATan(_Parametric):
    """SpingJelly's ATan (index 0); primitive ``arctan(pi/2 alpha x)/pi + 1/2``."""

    alpha: float = 2.0
    name = "atan"
    kernel_id = KERNEL_IDS["atan"]

    def grad(self, x):
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)

    def primitive(self, x):
        return torch.atan(math.pi / 2 * self.alpha * x) / math.pi + 0.5


@dataclass(frozen=True)
class Sigmoid(_Parametric):
    """SpikingJelly's Sigmoid (index 1); primitive ``sigmoid(alpha x)``."""

    alpha: float = 4.0
    name = "sigmoid"
    kernel_id = KERNEL_IDS["sigmoid"]

    def grad(self, x):
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)

    def primitive(self, x):
        return torch.sigmoid(self.alpha * x)


@dataclass(frozen=True)
class SuperSpike(_Parametric):
    """SuperSpike (Zenke & Ganguli 2018; hxtorch, norse): ``1/(alpha|x| + 1)^2``;
    primitive ``x / (1 + alpha |x|)``. hxtorch modules default alpha to 50, norse to 100.

    ``alpha`` may be a tensor broadcasting against ``x`` (hxtorch's per-neuron slopes; it is
    used detached, as hxtorch does); a fused kernel then takes only a one-element tensor
    (``kernel_id`` is -1 for more elements). The backward divides the output gradient by
    ``(alpha|x| + 1)^2``, the operation order of hxtorch's ``SuperSpike``; the hxtorch CUBA
    spike (``functional.cuba.superspike``) is this surrogate with ``strict=True``.

    >>> g = torch.tensor([1.0, 1.0])
    >>> SuperSpike(torch.tensor([1.0, 3.0])).backward(g, torch.tensor([1.0, 1.0])).tolist()
    [0.25, 0.0625]
    """

    alpha: float = 100.0
    name = "superspike"

    @classmethod
    def trusted(cls, alpha) -> "SuperSpike":
        """An instance built without the ``alpha > 0`` check (which reads tensor data): for
        inner loops whose ``alpha`` was checked once when its parameters were built."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "alpha", alpha)
        return obj

    @property
    def kernel_id(self) -> int:
        a = self.alpha
        if isinstance(a, torch.Tensor) and a.numel() != 1:
            return -1
        return KERNEL_IDS["superspike"]

    def _denominator(self, x):
        return (self.alpha * x.abs() + 1.0) ** 2

    def grad(self, x):
        return 1.0 / self._denominator(x)

    def backward(self, grad_out, x):
        return grad_out / self._denominator(x)

    def primitive(self, x):
        return x / (1 + self.alpha * x.abs())

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        a, b = self.alpha, other.alpha
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
        return a == b

    def __hash__(self):
        return hash((type(self), self.alpha))   # a tensor alpha hashes by identity


@dataclass(frozen=True)
class FastSigmoid(SuperSpike):
    """snnTorch's fast sigmoid: the SuperSpike formula with ``slope`` (default 25)."""

    alpha: float = 25.0
    name = "fast_sigmoid"

    @classmethod
    def from_slope(cls, slope: float = 25.0) -> "FastSigmoid":
        return cls(alpha=slope)


@dataclass(frozen=True)
class SLAYERExp(_Parametric):
    """SLAYER's exponential pseudo-derivative (lava-dl real spike, binary case):
    ``scale_rho / (2 tau_rho) * exp(-|x| / tau_rho)``; primitive
    ``scale_rho/2 * sign(x) * (1 - exp(-|x|/tau_rho))``."""

    tau_rho: float = 1.0
    scale_rho: float = 1.0
    name = "slayer_exp"
    kernel_id = KERNEL_IDS["slayer_exp"]

    def grad(self, x):
        return self.scale_rho / (2 * self.tau_rho) * torch.exp(-x.abs() / self.tau_rho)

    def primitive(self, x):
        return self.scale_rho / 2 * torch.sign(x) * (1 - torch.exp(-x.abs() / self.tau_rho))


@dataclass(frozen=True)
class Triangle(_Parametric):
    """Triangular pseudo-derivative (Bellec et al. 2018): ``height * max(0, 1 - |x|/width)``."""

    width: float = 1.0
    height: float = 1.0
    name = "triangle"
    kernel_id = KERNEL_IDS["triangle"]

    def grad(self, x):
        return self.height * torch.clamp(1 - x.abs() / self.width, min=0)

    def primitive(self, x):
        c = x.clamp(-self.width, self.width)
        return self.height * (c - torch.sign(c) * c * c / (2 * self.width))


class Custom(Surrogate):
    """A user-supplied derivative ``fn(x) -> dS/dx``; evaluated in plain torch (kernels fall
    back to the reference path for it)."""

    name = "custom"
    kernel_id = -1

    def __init__(self, derivative: Callable[[torch.Tensor], torch.Tensor], primitive=None):
        if not callable(derivative):
            raise TypeError(f"derivative: expected a callable, got {type(derivative).__name__}")
        self._derivative = derivative
        self._primitive = primitive

    def grad(self, x):
        g = self._derivative(x)
        if not isinstance(g, torch.Tensor) or g.shape != x.shape:
            raise ValueError(
                "derivative: must return a tensor of the same shape as its input, got "
                f"{type(g).__name__} {tuple(getattr(g, 'shape', ()))} for input {tuple(x.shape)}"
            )
        return g

    def primitive(self, x):
        if self._primitive is None:
            raise NotImplementedError("this Custom surrogate was built without a primitive")
        return self._primitive(x)

    def __repr__(self):
        return f"Custom({getattr(self._derivative, '__name__', self._derivative)!r})"


def heaviside(x: torch.Tensor, surrogate: Surrogate, strict: bool = False) -> torch.Tensor:
    """Spike ``1[x >= 0]`` (``1[x > 0]`` if ``strict``) with ``surrogate.grad`` as backward."""
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"surrogate: expected a spikefuse.surrogate.Surrogate, got {type(surrogate).__name__}")
    return surrogate(x, strict=strict)


_BY_NAME = {
    "atan": ATan,
    "sigmoid": Sigmoid,
    "superspike": SuperSpike,
    "fast_sigmoid": FastSigmoid,
    "slayer_exp": SLAYERExp,
    "slayer": SLAYERExp,
    "triangle": Triangle,
}


def get(spec, **params) -> Surrogate:
    """Build a surrogate from a name (``"atan"``, ``"sigmoid"``, ``"superspike"``,
    ``"fast_sigmoid"``, ``"slayer_exp"``, ``"triangle"``; case-insensitive, SpikingJelly's
    ``"ATan"``/``"Sigmoid"`` accepted) and keyword parameters, or pass a Surrogate through."""
    if isinstance(spec, Surrogate):
        if params:
            raise ValueError("surrogate: parameters given together with a Surrogate instance")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"surrogate: expected a name or a Surrogate (spec), got {type(spec).__name__}")
    key = spec.lower().replace("-", "_")
    if key not in _BY_NAME:
        raise ValueError(f"surrogate: expected one of {sorted(_BY_NAME)} (spec), got {spec!r}")
    return _BY_NAME[key](**params)
