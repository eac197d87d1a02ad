"""``slayer.neuron.sigma_delta``: sigma-delta neuron in lava-dl's time-last layout, over
:mod:`spikefuse.neuron.loihi.sigma_delta` (SPEC 10).

>>> import torch
>>> from spikefuse.compat.lava_dl import slayer
>>> n = slayer.neuron.sigma_delta.Neuron(0.1, torch.relu)
>>> x = torch.tensor([0.5, 0, 0, 0.02, 0.1, -0.3, 0]).reshape(1, 1, 7)
>>> (n(x) * 4096).flatten().tolist()
[2048.0, 0.0, 0.0, 0.0, 491.0, -1229.0, 0.0]
"""
from spikefuse.neuron.loihi import sigma_delta as _native
from ._layout import TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]

neuron_params = _native.neuron_params


class Neuron(TimeLastNeuron, _native.Neuron):
    """lava-dl ``sigma_delta.Neuron(threshold, activation, tau_grad=1, scale_grad=1, scale=64,
    cum_error=False, norm=None, dropout=None, shared_param=True, persistent_state=False,
    requires_grad=False)``; input and output ``(N, C, ..., T)``."""

    _native = _native.Neuron

    def __init__(self, threshold, activation, tau_grad=1, scale_grad=1, scale=1 << 6, cum_error=False,
                 norm=None, dropout=None, shared_param=True, persistent_state=False,
                 requires_grad=False):
        self._lava_init(locals())
