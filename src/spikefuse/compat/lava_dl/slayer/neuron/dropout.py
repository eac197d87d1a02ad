"""``slayer.neuron.dropout.Dropout``: neuron dropout in lava-dl's time-last layout (one mask
per sample and neuron, shared over time, kept entries scaled by ``1/(1-p)``; SPEC 11), over
:class:`spikefuse.neuron.loihi.dropout.Dropout`.

>>> import torch
>>> from spikefuse.compat.lava_dl import slayer
>>> y = slayer.neuron.Dropout(p=0.5)(torch.ones(2, 3, 4))
>>> bool(((y == 0) | (y == 2)).all()), bool((y.amax(-1) == y.amin(-1)).all())
(True, True)
"""
import torch

from spikefuse.neuron.loihi import dropout as _native
from ._layout import TimeLastModule, time_first, time_last

__all__ = ["Dropout"]


class Dropout(TimeLastModule, _native.Dropout):
    """lava-dl ``Dropout(p=0.5, inplace=False)``; input ``(N, C, ..., T)`` (at least 2 dims:
    batch and time)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__(p=p, inplace=inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self._lava_inner:
            return super().forward(input)
        return time_last(super().forward(time_first("input", input, min_ndim=2)))
