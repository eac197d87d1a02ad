"""``slayer.neuron.adrf_iz``: adaptive RF with Izhikevich spike in lava-dl's time-last layout,
over :mod:`spikefuse.neuron.loihi.adrf_iz` (SPEC 9). Same constructor as ``adrf``; ``forward``
is ``spike(*dynamics(input))`` (upstream's ``forward`` is broken, SPEC 18 #6)."""
from spikefuse.neuron.loihi import adrf_iz as _native
from . import adrf as _adrf
from ._layout import ResonatorProperties, TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]


def neuron_params(device_params, scale=1 << 6, p_scale=1 << 12, *, faithful=True):
    """lava-dl's ``adrf_iz.neuron_params`` (see :func:`..adrf.neuron_params`)."""
    return _native.neuron_params(device_params, scale, p_scale, faithful=faithful)


class Neuron(ResonatorProperties, TimeLastNeuron, _native.Neuron):
    """lava-dl ``adrf_iz.Neuron`` (the signature of ``adrf.Neuron``); time-last in and out."""

    _native = _native.Neuron
    _lava_complex_input = True
    __init__ = _adrf.Neuron.__init__
