"""Layout helpers.

spikefuse is time-first ``(T, B, *features)``; lava-dl is time-last ``(N, C, ..., T)``.

    >>> import torch
    >>> x = torch.zeros(2, 3, 5)          # lava (N, C, T)
    >>> to_time_first(x).shape
    torch.Size([5, 2, 3])
    >>> to_time_last(to_time_first(x)).shape
    torch.Size([2, 3, 5])

A ``(real, imag)`` pair (tuple or list) is converted element by element.
"""
from __future__ import annotations

import torch

from ._validate import _describe, check_tensor

__all__ = ["to_time_first", "to_time_last"]


def _check(name, x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor (or a tuple of them), got {_describe(x)}")
    if x.dim() < 2:
        raise ValueError(f"{name}: expected at least 2 dimensions, got shape {tuple(x.shape)}")
    check_tensor(name, x, floating=False)  # NaN/inf (floating tensors, finite checks on)


def to_time_first(x):
    """lava-dl ``(N, C, ..., T)`` -> ``(T, N, C, ...)`` (a view)."""
    if isinstance(x, (tuple, list)):
        return type(x)(to_time_first(v) for v in x)
    _check("x", x)
    return x.permute((x.dim() - 1,) + tuple(range(x.dim() - 1)))


def to_time_last(x):
    """``(T, N, C, ...)`` -> lava-dl ``(N, C, ..., T)`` (a view)."""
    if isinstance(x, (tuple, list)):
        return type(x)(to_time_last(v) for v in x)
    _check("x", x)
    return x.permute(tuple(range(1, x.dim())) + (0,))
