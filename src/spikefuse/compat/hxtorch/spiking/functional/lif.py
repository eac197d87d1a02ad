"""``hxtorch.spiking.functional.lif``: ``cuba_lif_step``, ``cuba_lif_integration``,
``cuba_refractory_lif_integration`` and ``CUBALIFParams`` over :mod:`spikefuse.functional.cuba`
(SPEC 13). Tensors are ``(time, batch, neurons)`` (hxtorch's code; its docstrings say
``(batch, time, neurons)``). Returns ``(spikes, membrane, current, membrane_madc)`` with the
post-reset membrane; the MADC trace is ``hw_data[2]`` passed through.

>>> import torch
>>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
>>> z, v, i, madc = cuba_lif_integration(x, leak=torch.tensor(0.), reset=torch.tensor(0.),
...     threshold=torch.tensor(0.3), tau_syn=torch.tensor(2e-6), tau_mem=torch.tensor(2e-6),
...     method="superspike", alpha=50.0, dt=1e-6)
>>> z.flatten().tolist(), madc is None
([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], True)
"""
from __future__ import annotations

import torch

from spikefuse._validate import _describe
from spikefuse.functional import cuba as _cuba

from ._params import REQUIRED, CUBALIFParams, resolve_params, to_device

__all__ = ["CUBALIFParams", "cuba_lif_step", "cuba_lif_integration", "cuba_refractory_lif_integration"]


def _check_input(input):
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input: expected a torch.Tensor (time, batch, neurons), got {_describe(input)}")
    if input.dim() != 3:
        raise ValueError(f"input: expected shape (time, batch, neurons), got {tuple(input.shape)}")


def cuba_lif_step(z, v, i, input, spikes_hw=None, membrane_hw=None, params=None, dt=1e-6, *,
                  leak=REQUIRED, reset=REQUIRED, threshold=REQUIRED, tau_syn=REQUIRED,
                  tau_mem=REQUIRED, method=REQUIRED, alpha=REQUIRED):
    """One step; returns ``(z, v, i)`` of the next step (SPEC 13.1). hxtorch's keyword-only
    parameters, or (older hxtorch) a ``params`` tuple as 7th argument."""
    kw = dict(leak=leak, reset=reset, threshold=threshold, tau_syn=tau_syn, tau_mem=tau_mem,
              method=method, alpha=alpha)
    p = resolve_params("cuba_lif_step", params, kw, dt)
    for name, t in (("z", z), ("v", v), ("i", i), ("input", input)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(t)}")
    state = _cuba.CubaState(z, v, i)
    z, st = _cuba.cuba_lif_step(input, state, p, dt=dt, spikes_hw=spikes_hw, membrane_hw=membrane_hw)
    return z, st.v, st.i


def cuba_lif_integration(input, params=None, hw_data=None, dt=1e-6, *, leak=REQUIRED, reset=REQUIRED,
                         threshold=REQUIRED, tau_syn=REQUIRED, tau_mem=REQUIRED, method=REQUIRED,
                         alpha=REQUIRED):
    """``(spikes, membrane, current, membrane_madc)`` over ``input (time, batch, neurons)``
    (SPEC 13.2); ``hw_data = (spikes, membrane_cadc, membrane_madc)``, entries optional."""
    kw = dict(leak=leak, reset=reset, threshold=threshold, tau_syn=tau_syn, tau_mem=tau_mem,
              method=method, alpha=alpha)
    p = resolve_params("cuba_lif_integration", params, kw, dt)
    _check_input(input)
    return _cuba.cuba_lif_integration(input, p, to_device(hw_data, input.device), dt)


def cuba_refractory_lif_integration(input, params=None, hw_data=None, dt=1e-6, *, leak=REQUIRED,
                                    reset=REQUIRED, threshold=REQUIRED, tau_syn=REQUIRED,
                                    tau_mem=REQUIRED, refractory_time=REQUIRED, method=REQUIRED,
                                    alpha=REQUIRED):
    """As :func:`cuba_lif_integration` with hxtorch's refractory update after every step
    (SPEC 13.3); the refractory counter is ``refractory_time / dt`` in the input's dtype."""
    kw = dict(leak=leak, reset=reset, threshold=threshold, tau_syn=tau_syn, tau_mem=tau_mem,
              refractory_time=refractory_time, method=method, alpha=alpha)
    p = resolve_params("cuba_refractory_lif_integration", params, kw, dt, refractory=True)
    _check_input(input)
    return _cuba.cuba_refractory_lif_integration(input, p, to_device(hw_data, input.device), dt)
