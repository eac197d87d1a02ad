"""Mirror of ``lava.lib.dl.slayer`` for the parts spikefuse models (see :mod:`spikefuse.compat.lava_dl`)."""
from . import neuron, spike

__all__ = ["neuron", "spike"]
