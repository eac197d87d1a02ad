"""``slayer.neuron``: lava-dl's neuron modules in lava's time-last layout (see
:mod:`spikefuse.compat.lava_dl`)."""
from . import adrf, adrf_iz, alif, base, cuba, norm, rf, rf_iz, sigma_delta
from . import dropout
from .dropout import Dropout

__all__ = ["base", "cuba", "alif", "rf", "rf_iz", "adrf", "adrf_iz", "sigma_delta", "norm", "dropout", "Dropout"]
