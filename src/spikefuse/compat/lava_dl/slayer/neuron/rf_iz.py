"""``slayer.neuron.rf_iz``: resonate-and-fire with Izhikevich reset in lava-dl's time-last
layout, over :mod:`spikefuse.neuron.loihi.rf_iz` (SPEC 7). Same constructor as ``rf``."""
from spikefuse.neuron.loihi import rf_iz as _native
from . import rf as _rf
from ._layout import ResonatorProperties, TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]

neuron_params = _native.neuron_params


class Neuron(ResonatorProperties, TimeLastNeuron, _native.Neuron):
    """lava-dl ``rf_iz.Neuron`` (the signature of ``rf.Neuron``); time-last in and out."""

    _native = _native.Neuron
    _lava_complex_input = True
    __init__ = _rf.Neuron.__init__
