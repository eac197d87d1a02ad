"""Shared pieces of :mod:`spikefuse.interop.nir`: the error type, the optional ``nir`` import,
the ``dt`` check."""
from __future__ import annotations

import math
from numbers import Real

from torch import Tensor

from ..._validate import _describe

try:  # optional dependency
    import nir as _nir
except ImportError:  # pragma: no cover - exercised only without nir installed
    _nir = None


class NIRConversionError(ValueError):
    """A module (export) or a NIR node (import) has no counterpart on the other side.

    >>> issubclass(NIRConversionError, ValueError)
    True
    """


def _require_nir():
    if _nir is None:  # pragma: no cover
        raise ImportError("spikefuse.interop.nir needs the 'nir' package: pip install -e \".[nir]\" from the spikefuse checkout")
    return _nir


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, Real):
        if isinstance(dt, Tensor) and dt.numel() == 1 and dt.is_floating_point():
            dt = float(dt)
        else:
            raise TypeError(f"dt: expected a positive number (the time step in seconds), got {_describe(dt)}")
    dt = float(dt)
    if not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt: expected a finite number > 0 (the time step in seconds), got {dt!r}")
    return dt
