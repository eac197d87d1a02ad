"""Functional layer: one module per neuron family, each with a ``State`` NamedTuple, a
``step`` function (the readable truth) and a multi-step function that returns the same
numbers as looping ``step`` (and dispatches to fused kernels).

- :mod:`spikefuse.functional.lif` — SpikingJelly IF / LIF / parametric LIF
- :mod:`spikefuse.functional.cuba` — BrainScaleS-2 (hxtorch) CUBA LIF in physical units
- :mod:`spikefuse.functional.loihi` — Loihi fixed-point CUBA / ALIF dynamics
- :mod:`spikefuse.functional.resonator` — Loihi resonate-and-fire family
- :mod:`spikefuse.functional.sigma_delta` — Loihi sigma-delta
- :mod:`spikefuse.functional.eventprop` — exact adjoint (EventProp) gradients for the CUBA LIF
- :mod:`spikefuse.functional.euler` — forward-Euler NIR nodes (LI / I / LIF / IF / CubaLIF / CubaLI)
- :mod:`spikefuse.functional.snntorch` — snnTorch Leaky / Synaptic
- :mod:`spikefuse.functional.sinabs` — sinabs LIF / IAF (multi-spike counts)
"""
import importlib

_SUBMODULES = ("lif", "cuba", "loihi", "resonator", "sigma_delta", "eventprop", "euler", "snntorch", "sinabs")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikefuse.functional' has no attribute {name!r}")
