"""``slayer.spike.complex.Spike``: lava-dl's phase-threshold spike over
:func:`spikefuse.spike.complex_spike`, in lava's time-last layout ``(N, C, ..., T)``.

The zero crossing of the imaginary part is tested along the **last** axis; ``imag_last`` is
the imaginary state before the first step (a number or an ``(N, C, ...)`` tensor).

>>> import torch
>>> from spikefuse.compat.lava_dl import slayer
>>> re = torch.tensor([[[1.0, 1.0, 1.0]]]); im = torch.tensor([[[-0.5, 0.2, 0.3]]])
>>> slayer.spike.complex.Spike.apply(re, im, 0.5, 1.0, 1.0, False, 0.0, 1).tolist()
[[[0.0, 1.0, 0.0]]]
"""
import torch

from spikefuse.spike import complex_spike
from ..neuron._layout import time_first, time_last

__all__ = ["Spike"]


def _threshold_time_first(threshold, ndim: int):
    """A tensor threshold broadcasts against the time-last traces aligned on the right (its
    last dim is time); give it the full rank, then move time first."""
    if not isinstance(threshold, torch.Tensor) or threshold.dim() == 0:
        return threshold
    if threshold.dim() > ndim:
        raise ValueError(
            f"threshold: expected a number or a tensor broadcastable to the (N, C, ..., T) traces "
            f"of rank {ndim}, got shape {tuple(threshold.shape)}"
        )
    return threshold.reshape((1,) * (ndim - threshold.dim()) + tuple(threshold.shape)).movedim(-1, 0)


class Spike:
    """lava-dl's complex ``Spike``: ``Spike.apply(real, imag, threshold, tau_rho, scale_rho,
    graded_spike, imag_last, scale)`` on time-last tensors (SPEC 2.2); returns time-last spikes."""

    @staticmethod
    def apply(real, imag, threshold, tau_rho, scale_rho, graded_spike, imag_last, scale):
        re = time_first("real", real, min_ndim=2)
        im = time_first("imag", imag, min_ndim=2)
        th = _threshold_time_first(threshold, real.dim())
        return time_last(complex_spike(re, im, th, tau_rho, scale_rho, graded_spike, imag_last, scale))
