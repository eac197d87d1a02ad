"""lava-dl drop-in: ``from spikefuse.compat.lava_dl import slayer`` replaces
``import lava.lib.dl.slayer as slayer``.

Covered (what spikefuse models): ``slayer.neuron.{base, cuba, alif, rf, rf_iz, adrf, adrf_iz,
sigma_delta}``, ``slayer.neuron.dropout.Dropout`` (also ``slayer.neuron.Dropout``),
``slayer.neuron.norm.{MeanOnlyBatchNorm, WgtScaleBatchNorm}``, ``slayer.spike.Spike``
(``slayer.spike.spike.Spike``) and ``slayer.spike.complex.Spike``.

Layout and defaults are lava-dl's: tensors are time-last ``(N, C, [H, W,] T)`` in and out;
decay gradients follow lava-dl (``decay_grad="lava"``), ``neuron_params`` translate as lava-dl
does (``faithful=True``), the RF family's ``decay``/``frequency``/``period``/``lam`` are float32
NumPy arrays. spikefuse's fixes are opt-in keywords: ``decay_grad="exact"`` on every neuron,
``faithful=False`` on the adaptive models' ``neuron_params``.
"""
from . import slayer

__all__ = ["slayer"]
