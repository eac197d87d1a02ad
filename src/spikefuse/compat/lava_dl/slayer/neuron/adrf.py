"""``slayer.neuron.adrf``: adaptive resonate-and-fire (phase threshold) in lava-dl's time-last
layout, over :mod:`spikefuse.neuron.loihi.adrf` (SPEC 8)."""
from spikefuse.neuron.loihi import adrf as _native
from ._layout import ResonatorProperties, TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]


def neuron_params(device_params, scale=1 << 6, p_scale=1 << 12, *, faithful=True):
    """lava-dl's ``adrf.neuron_params`` (its evident formula: upstream's trailing commas make
    tuples, SPEC 18 #5); ``faithful=False`` reads ``threshold_step`` from ``vThStep``."""
    return _native.neuron_params(device_params, scale, p_scale, faithful=faithful)


class Neuron(ResonatorProperties, TimeLastNeuron, _native.Neuron):
    """lava-dl ``adrf.Neuron(threshold, threshold_step, period, decay, threshold_decay,
    refractory_decay, tau_grad=1, scale_grad=1, scale=64, norm=None, dropout=None,
    shared_param=True, persistent_state=False, requires_grad=False, graded_spike=False,
    log_init=True)``; time-last in and out; ``decay_grad="exact"`` opt-in."""

    _native = _native.Neuron
    _lava_complex_input = True

    def __init__(self, threshold, threshold_step, period, decay, threshold_decay, refractory_decay,
                 tau_grad=1, scale_grad=1, scale=1 << 6, norm=None, dropout=None, shared_param=True,
                 persistent_state=False, requires_grad=False, graded_spike=False, log_init=True,
                 *, decay_grad="lava"):
        self._lava_init(locals())
