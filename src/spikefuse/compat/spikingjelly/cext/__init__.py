"""``spikingjelly.cext``: the ``neuron`` module (see :mod:`.neuron`)."""
from . import neuron

__all__ = ["neuron"]
