"""Interoperability with other neuromorphic tools.

- :mod:`spikefuse.interop.nir` — export to and import from the Neuromorphic Intermediate
  Representation (NIR): :func:`~spikefuse.interop.nir.to_nir`,
  :func:`~spikefuse.interop.nir.from_nir`. Needs the optional ``nir`` package
  (``pip install -e ".[nir]"`` from the spikefuse checkout).

The submodule is imported on first use, so ``import spikefuse.interop`` does not need ``nir``.

>>> from spikefuse import interop
>>> callable(interop.to_nir)   # doctest: +SKIP
True
"""
import importlib

_NAMES = {"to_nir": "nir", "from_nir": "nir", "NIRConversionError": "nir"}


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if name == "nir":
        return importlib.import_module(".nir", __name__)
    raise AttributeError(f"module 'spikefuse.interop' has no attribute {name!r}")


__all__ = ["nir", "to_nir", "from_nir", "NIRConversionError"]
