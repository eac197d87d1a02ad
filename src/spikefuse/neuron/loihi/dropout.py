"""Neuron dropout — lava-dl ``slayer.neuron.dropout.Dropout`` (SPEC.md 11), time-first.

A neuron (one sample, one feature position) is kept or dropped for **all** time steps; kept
values are scaled by ``1/(1-p)``. Identity in eval mode.

    >>> import torch
    >>> from spikefuse.neuron.loihi.dropout import Dropout
    >>> d = Dropout(p=0.5)
    >>> y = d(torch.ones(4, 2, 3))            # (T, B, features)
    >>> bool(((y == 0) | (y == 2)).all()), bool((y == y[:1]).all())
    (True, True)
"""
from __future__ import annotations

import torch
from torch import nn

from ..._validate import _describe, check_bool, check_number, check_tensor

__all__ = ["Dropout"]


class Dropout(nn.Module):
    """Dropout with one mask per (sample, neuron) shared over time.

    Parameters
    ----------
    p : float
        drop probability in [0, 1].
    inplace : bool
        modify the input in place.

    Input ``(T, B, *features)`` (at least 2 dims). The mask has shape ``(1, B, *features)``
    and is drawn from the global RNG.

    >>> import torch
    >>> Dropout(p=0.5).eval()(torch.ones(2, 1, 3)).tolist()
    [[[1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0]]]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool):
            raise TypeError(f"p: expected a float in [0, 1], got {_describe(p)}")
        check_number("p", p, ge=0, le=1)
        check_bool("inplace", inplace)
        self.p = float(p)
        self.inplace = inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        check_tensor("input", input, min_ndim=2, finite=False)
        if not self.training or self.p == 0:
            return input
        if self.p == 1:
            return input.zero_() if self.inplace else torch.zeros_like(input)
        keep = 1.0 - self.p
        mask = torch.empty((1,) + tuple(input.shape[1:]), dtype=input.dtype, device=input.device)
        mask.bernoulli_(keep).div_(keep)
        if self.inplace:
            return input.mul_(mask)
        return input * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
