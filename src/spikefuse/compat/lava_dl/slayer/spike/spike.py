"""``slayer.spike.spike.Spike``: lava-dl's real spike function over :func:`spikefuse.spike.real_spike`.

It is elementwise, so the layout does not matter (time-last tensors work as they are).

>>> import torch
>>> from spikefuse.compat.lava_dl import slayer
>>> v = torch.tensor([[[0.5, 1.2]]])
>>> slayer.spike.Spike.apply(v, 1.0, 1.0, 1.0, False, None, 1).tolist()
[[[0.0, 1.0]]]
"""
from spikefuse.spike import real_spike

__all__ = ["Spike"]


class Spike:
    """lava-dl's ``Spike`` autograd function: call ``Spike.apply(voltage, threshold, tau_rho,
    scale_rho, graded_spike, voltage_last, scale)`` (SPEC 2.1; ``voltage_last`` is accepted and
    has no effect, as upstream)."""

    @staticmethod
    def apply(voltage, threshold, tau_rho, scale_rho, graded_spike, voltage_last, scale):
        return real_spike(voltage, threshold, tau_rho, scale_rho, graded_spike, voltage_last, scale)
