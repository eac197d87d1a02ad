"""``slayer.neuron.norm``: lava-dl's ``MeanOnlyBatchNorm`` and ``WgtScaleBatchNorm`` (SPEC 12)
on lava's ``(N, C, ...)`` tensors (rank 2 to 5, channel dim 1, statistics over every other dim
including time), over :mod:`spikefuse.neuron.loihi.norm`.

>>> import torch
>>> from spikefuse.compat.lava_dl import slayer
>>> bn = slayer.neuron.norm.MeanOnlyBatchNorm()
>>> x = torch.tensor([[[.1, .2, .3], [1, 1.1, 1.2]], [[.3, .4, .5], [2, 2, 2]]])
>>> bn(x).shape, bn.num_features
(torch.Size([2, 2, 3]), 2)
"""
import torch

from spikefuse.neuron.loihi import norm as _native
from ._layout import TimeLastModule, time_first, time_last

__all__ = ["MeanOnlyBatchNorm", "WgtScaleBatchNorm"]


def _lava_norm_forward(module, native_forward, inp):
    if module._lava_inner:
        return native_forward(inp)
    if isinstance(inp, torch.Tensor) and not 2 <= inp.dim() <= 5:
        raise ValueError(f"inp: expected a tensor (N, C, ...) of rank 2 to 5, got shape {tuple(inp.shape)}")
    if isinstance(inp, torch.Tensor) and inp.dim() == 2:   # (N, C): no time axis
        return native_forward(inp.unsqueeze(0))[0]
    return time_last(native_forward(time_first("inp", inp)))


class MeanOnlyBatchNorm(TimeLastModule, _native.MeanOnlyBatchNorm):
    """lava-dl ``MeanOnlyBatchNorm(num_features=None, momentum=0.1, pre_hook_fx=None)``."""

    def __init__(self, num_features=None, momentum=0.1, pre_hook_fx=None):
        super().__init__(num_features=num_features, momentum=momentum, pre_hook_fx=pre_hook_fx)

    def forward(self, inp):
        return _lava_norm_forward(self, super().forward, inp)


class WgtScaleBatchNorm(TimeLastModule, _native.WgtScaleBatchNorm):
    """lava-dl ``WgtScaleBatchNorm(num_features=None, momentum=0.1, weight_exp_bits=3,
    eps=1e-5, pre_hook_fx=None)``."""

    def __init__(self, num_features=None, momentum=0.1, weight_exp_bits=3, eps=1e-5, pre_hook_fx=None):
        super().__init__(num_features=num_features, momentum=momentum, weight_exp_bits=weight_exp_bits,
                         eps=eps, pre_hook_fx=pre_hook_fx)

    def forward(self, inp):
        return _lava_norm_forward(self, super().forward, inp)
