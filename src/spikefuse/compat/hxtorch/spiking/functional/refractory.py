"""``hxtorch.spiking.functional.refractory.refractory_update(z, v, ref_state, spikes_hw,
membrane_hw, *, reset, refractory_time, dt)`` -> ``(z, v, ref_state)`` (SPEC 13.3), over
:func:`spikefuse.functional.cuba.refractory_update`.

>>> import torch
>>> z, v, ref = refractory_update(torch.ones(1), torch.zeros(1), torch.zeros(1), None, None,
...                               reset=torch.tensor(0.), refractory_time=torch.tensor(2.5e-6), dt=1e-6)
>>> ref.item()
2.5
"""
import torch

from spikefuse.functional import cuba as _cuba

from ._params import REQUIRED

__all__ = ["refractory_update"]


def refractory_update(z, v, ref_state, spikes_hw, membrane_hw, *, reset=REQUIRED, refractory_time=REQUIRED,
                      dt=REQUIRED):
    missing = [n for n, a in (("reset", reset), ("refractory_time", refractory_time), ("dt", dt)) if a is REQUIRED]
    if missing:
        raise TypeError(f"refractory_update() missing required keyword-only argument(s): {', '.join(map(repr, missing))}")
    if isinstance(ref_state, torch.Tensor) and isinstance(v, torch.Tensor) and not ref_state.is_floating_point():
        ref_state = ref_state.to(v.dtype)   # hxtorch starts the counter as an int tensor
    return _cuba.refractory_update(z, v, ref_state, spikes_hw, membrane_hw, reset=reset,
                                   refractory_time=refractory_time, dt=dt)
