"""Shared pieces of :mod:`spikefuse.interop.nir`: the error type, the optional ``nir`` import,
the ``dt`` check and the lazy look-ups of the spikefuse neuron classes."""
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


def _lif_classes():
    try:
        from ...neuron import lif as _lif
    except ImportError:  # pragma: no cover - neuron.lif not present
        return ()
    return tuple(getattr(_lif, n) for n in ("IF", "LIF", "ParametricLIF") if hasattr(_lif, n))


def _cuba_classes():
    try:
        from ...neuron import cuba as _cuba
    except ImportError:  # pragma: no cover
        return None, None
    return getattr(_cuba, "CubaLIF", None), getattr(_cuba, "CubaRefractoryLIF", None)


def _eventprop_class():
    try:
        from ...neuron import eventprop as _ep
    except ImportError:  # pragma: no cover
        return None
    return getattr(_ep, "EventPropLIF", None)
