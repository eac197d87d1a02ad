"""hxtorch drop-in: ``import spikefuse.compat.hxtorch.spiking.functional as F`` replaces
``import hxtorch.spiking.functional as F`` (every name is also importable from
``spikefuse.compat.hxtorch`` directly). See :mod:`.spiking.functional`."""
from .spiking import functional
from .spiking.functional import *  # noqa: F401,F403
from .spiking.functional import __all__ as _functional_all

__all__ = ["functional"] + list(_functional_all)
