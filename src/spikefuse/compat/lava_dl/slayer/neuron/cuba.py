"""``slayer.neuron.cuba``: Loihi CUBA neuron in lava-dl's time-last layout, over
:mod:`spikefuse.neuron.loihi.cuba` (SPEC 4).

>>> import torch
>>> from spikefuse.compat.lava_dl import slayer
>>> n = slayer.neuron.cuba.Neuron(1.0, 0.5, 0.25)
>>> n(torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(1, 1, 5)).flatten().tolist()
[0.0, 1.0, 0.0, 0.0, 0.0]
>>> slayer.neuron.cuba.neuron_params({'vThMant': 80, 'iDecay': 1024, 'vDecay': 128})
{'threshold': 1.25, 'current_decay': 0.25, 'voltage_decay': 0.03125}
"""
from spikefuse.neuron.loihi import cuba as _native
from ._layout import TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]

neuron_params = _native.neuron_params


class Neuron(TimeLastNeuron, _native.Neuron):
    """lava-dl ``cuba.Neuron(threshold, current_decay, voltage_decay, tau_grad=1, scale_grad=1,
    scale=64, norm=None, dropout=None, shared_param=True, persistent_state=False,
    requires_grad=False, graded_spike=False)``; input and output ``(N, C, ..., T)``.
    ``dynamics(input)`` returns time-last ``(current, voltage)``; ``spike(voltage)`` the spikes.
    Decay gradients follow lava-dl; ``decay_grad="exact"`` (keyword) gives the true chain rule."""

    _native = _native.Neuron

    def __init__(self, threshold, current_decay, voltage_decay, tau_grad=1, scale_grad=1,
                 scale=1 << 6, norm=None, dropout=None, shared_param=True, persistent_state=False,
                 requires_grad=False, graded_spike=False, *, decay_grad="lava"):
        self._lava_init(locals())
