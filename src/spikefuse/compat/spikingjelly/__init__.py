"""SpikingJelly cext drop-in: ``from spikefuse.compat.spikingjelly.cext import neuron`` replaces
``from spikingjelly.cext import neuron`` (SpikingJelly's CUDA-extension neurons, releases
0.0.0.0.4 - 0.0.0.0.6). See :mod:`spikefuse.compat.spikingjelly.cext.neuron`."""
from . import cext
from .cext import neuron

__all__ = ["cext", "neuron"]
