"""``slayer.neuron.alif``: Loihi adaptive LIF in lava-dl's time-last layout, over
:mod:`spikefuse.neuron.loihi.alif` (SPEC 5).

>>> from spikefuse.compat.lava_dl import slayer
>>> p = {'vThMant': 64, 'vThStep': 32, 'iDecay': 4096, 'vDecay': 2048, 'thDecay': 1024, 'refDecay': 2048}
>>> slayer.neuron.alif.neuron_params(p)['threshold_step']   # lava-dl reads vThMant (sic)
1.0
>>> slayer.neuron.alif.neuron_params(p, faithful=False)['threshold_step']
0.5
"""
from spikefuse.neuron.loihi import alif as _native
from ._layout import TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]


def neuron_params(device_params, scale=1 << 6, p_scale=1 << 12, *, faithful=True):
    """lava-dl's ``alif.neuron_params``; ``faithful=False`` reads ``threshold_step`` from
    ``vThStep`` instead of lava-dl's ``vThMant`` (SPEC 18 #4)."""
    return _native.neuron_params(device_params, scale, p_scale, faithful=faithful)


class Neuron(TimeLastNeuron, _native.Neuron):
    """lava-dl ``alif.Neuron(threshold, threshold_step, current_decay, voltage_decay,
    threshold_decay, refractory_decay, tau_grad=1, scale_grad=1, scale=64, norm=None,
    dropout=None, shared_param=True, persistent_state=False, requires_grad=False,
    graded_spike=False)``; time-last in and out; ``decay_grad="exact"`` opt-in."""

    _native = _native.Neuron

    def __init__(self, threshold, threshold_step, current_decay, voltage_decay, threshold_decay,
                 refractory_decay, tau_grad=1, scale_grad=1, scale=1 << 6, norm=None, dropout=None,
                 shared_param=True, persistent_state=False, requires_grad=False, graded_spike=False,
                 *, decay_grad="lava"):
        self._lava_init(locals())
