"""spikefuse: faithful, fused spiking neural network training in PyTorch.

Submodules are imported on first use (``spikefuse.neuron``, ``spikefuse.functional``, ...), so
``import spikefuse`` stays cheap and optional dependencies (triton, nir, h5py, matplotlib)
are only needed by the parts that use them.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "surrogate", "spike", "fixed_point", "kernels", "functional", "neuron", "layers",
    "data", "utils", "interop", "train", "cli", "bench", "losses",
)

from ._validate import finite_checks, set_finite_checks  # noqa: E402

__all__ = list(_SUBMODULES) + ["__version__", "finite_checks", "set_finite_checks", "load_run"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "load_run":  # spikefuse.load_run(path) -> (model, config) of a trained run
        return importlib.import_module(".train", __name__).load_run
    raise AttributeError(f"module 'spikefuse' has no attribute {name!r}")
