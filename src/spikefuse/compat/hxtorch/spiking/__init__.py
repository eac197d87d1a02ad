"""``hxtorch.spiking``: the ``functional`` package (see :mod:`.functional`)."""
from . import functional

__all__ = ["functional"]
