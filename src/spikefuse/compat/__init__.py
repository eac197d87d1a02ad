"""Drop-in APIs of the modelled systems, as thin adapters over spikefuse (docs/porting.md).

========================================  ============================================
upstream import                           spikefuse import (change only this line)
========================================  ============================================
``import lava.lib.dl.slayer as slayer``   ``from spikefuse.compat.lava_dl import slayer``
``import hxtorch.spiking.functional as F``  ``import spikefuse.compat.hxtorch.spiking.functional as F``
``from spikingjelly.cext import neuron``  ``from spikefuse.compat.spikingjelly.cext import neuron``
========================================  ============================================

Each entry keeps the upstream names, signatures, defaults, layouts and return types, and runs
the numbers through :mod:`spikefuse.functional` and :mod:`spikefuse.neuron` (the same fused
kernels as the native API; no second copy of any neuron equation). Subpackages are imported
on first use.
"""
import importlib

_SUBPACKAGES = ("lava_dl", "hxtorch", "spikingjelly")

__all__ = list(_SUBPACKAGES)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
