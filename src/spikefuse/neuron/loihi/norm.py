"""Neuron normalisation — lava-dl ``slayer.neuron.norm`` (SPEC.md 12), time-first.

Inputs are ``(T, B, C, *spatial)``: the feature (channel) dim is **dim 2**; statistics reduce
over every other dim, time included. ``num_features=None`` is inferred at the first call. The
mean is passed through ``pre_hook_fx`` (default identity; a Loihi neuron installs its
``quantize_8bit``) before it is subtracted. ``bias`` = ``-pre_hook_fx(running_mean,
descale=True)`` (the identity hook accepts and ignores ``descale``, SPEC 18 #9).

    >>> import torch
    >>> from spikefuse.neuron.loihi.norm import MeanOnlyBatchNorm
    >>> bn = MeanOnlyBatchNorm()
    >>> x = torch.tensor([[1.0, 3.0], [3.0, 5.0]]).reshape(1, 2, 2)   # (T=1, B=2, C=2)
    >>> bn(x).flatten().tolist(), bn.running_mean.tolist()
    ([-1.0, -1.0, 1.0, 1.0], [0.20000000298023224, 0.4000000059604645])
"""
from __future__ import annotations

import torch
from torch import nn

from ..._validate import _describe, check_number, check_scalar, check_tensor

__all__ = ["MeanOnlyBatchNorm", "WgtScaleBatchNorm", "identity_hook"]

CHANNEL_DIM = 2


def identity_hook(x: torch.Tensor, descale: bool = False) -> torch.Tensor:
    """Default ``pre_hook_fx``: returns ``x`` (accepts and ignores ``descale``)."""
    return x


def _check_common(num_features, momentum, pre_hook_fx):
    if num_features is not None:
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"num_features: expected a positive int or None, got {num_features!r}")
    if isinstance(momentum, bool):
        raise TypeError(f"momentum: expected a float in [0, 1], got {_describe(momentum)}")
    check_number("momentum", momentum, ge=0, le=1)
    if pre_hook_fx is not None and not callable(pre_hook_fx):
        raise TypeError(f"pre_hook_fx: expected a callable or None, got {_describe(pre_hook_fx)}")


class _Base(nn.Module):
    def __init__(self, num_features, momentum, pre_hook_fx):
        super().__init__()
        _check_common(num_features, momentum, pre_hook_fx)
        self.num_features = num_features
        self.momentum = float(momentum)
        self.pre_hook_fx = identity_hook if pre_hook_fx is None else pre_hook_fx
        self.register_buffer("running_mean", torch.zeros(1 if num_features is None else num_features))
        self.update = True

    @property
    def bias(self) -> torch.Tensor:
        """Equivalent (hardware) bias: ``-pre_hook_fx(running_mean, descale=True)``."""
        return -self.pre_hook_fx(self.running_mean, descale=True)

    def _check_input(self, x):
        if isinstance(x, (tuple, list)):
            raise TypeError(f"input: expected one tensor (T, B, C, ...), got a {type(x).__name__}")
        check_tensor("input", x, min_ndim=3)
        C = x.shape[CHANNEL_DIM]
        if self.num_features is None:
            self.num_features = int(C)
            if self.running_mean.numel() != C:
                self.running_mean = self.running_mean.expand(C).clone()
        elif C != self.num_features:
            raise ValueError(
                f"input: expected {self.num_features} features in dim 2 of (T, B, C, ...), got shape {tuple(x.shape)}"
            )
        if self.running_mean.device != x.device:
            raise ValueError(f"input: expected a tensor on {self.running_mean.device}, got one on {x.device}")
        return x

    @staticmethod
    def _dims(x):
        return [d for d in range(x.dim()) if d != CHANNEL_DIM]

    @staticmethod
    def _view(v, x):
        shape = [1] * x.dim()
        shape[CHANNEL_DIM] = -1
        return v.reshape(shape)


class MeanOnlyBatchNorm(_Base):
    """Mean-only batch norm: ``out = x - q(μ)`` (SPEC 12).

    Training with ``update``: μ is the per-feature batch mean (differentiable) and
    ``running_mean ← (1-m)·running_mean + m·μ``; otherwise μ = ``running_mean``.

    Parameters: ``num_features`` (None: inferred), ``momentum`` (0.1), ``pre_hook_fx``.

    >>> import torch
    >>> MeanOnlyBatchNorm()(torch.tensor([1.0, 3.0]).reshape(2, 1, 1)).flatten().tolist()
    [-1.0, 1.0]
    """

    def __init__(self, num_features=None, momentum=0.1, pre_hook_fx=None):
        super().__init__(num_features, momentum, pre_hook_fx)

    def reset_parameters(self) -> None:
        self.running_mean.zero_()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = self._check_input(input)
        if self.training and self.update:
            mean = x.mean(dim=self._dims(x))
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean.detach()
        else:
            mean = self.running_mean
        return x - self.pre_hook_fx(self._view(mean, x))


class WgtScaleBatchNorm(_Base):
    """Batch norm with a power-of-two scale (SPEC 12): ``out = (x - q(μ)) / std`` with
    ``std = 2 ** clamp(ceil(log2(sqrt(var + eps))), -weight_exp_bits, weight_exp_bits)``.

    Training with ``update``: μ per feature, **one scalar** biased variance over the whole
    tensor, ``running_var ← (1-m)·running_var + m·var·n/(n+1)`` with ``n = numel / C`` (as
    upstream, SPEC 18 #10). ``std`` is a constant for the gradient (``ceil``).

    >>> import torch
    >>> WgtScaleBatchNorm().eval()(torch.ones(1, 1, 2)).flatten().tolist()
    [8.0, 8.0]
    """

    def __init__(self, num_features=None, momentum=0.1, weight_exp_bits=3, eps=1e-5, pre_hook_fx=None):
        super().__init__(num_features, momentum, pre_hook_fx)
        if isinstance(weight_exp_bits, bool) or not isinstance(weight_exp_bits, int) or weight_exp_bits < 0:
            raise ValueError(f"weight_exp_bits: expected a non-negative int, got {weight_exp_bits!r}")
        check_scalar("eps", eps, gt=0)
        self.weight_exp_bits = weight_exp_bits
        self.eps = float(eps)
        self.register_buffer("running_var", torch.zeros(1))

    def reset_parameters(self) -> None:
        self.running_mean.zero_()
        self.running_var.zero_()

    def std(self, var: torch.Tensor) -> torch.Tensor:
        """Power-of-two standard deviation (no gradient)."""
        with torch.no_grad():
            e = torch.ceil(torch.log2(torch.sqrt(var.detach() + self.eps)))
            return torch.pow(2.0, e.clamp(-self.weight_exp_bits, self.weight_exp_bits))

    @property
    def weight_exp(self) -> torch.Tensor:
        """``ceil(log2(sqrt(running_var + eps)))`` (unclamped)."""
        return torch.ceil(torch.log2(torch.sqrt(self.running_var + self.eps)))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = self._check_input(input)
        if self.training and self.update:
            mean = x.mean(dim=self._dims(x))
            var = torch.var(x.detach(), unbiased=False)
            n = x.numel() / x.shape[CHANNEL_DIM]
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean.detach()
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * n / (n + 1)
        else:
            mean = self.running_mean
            var = self.running_var
        return (x - self.pre_hook_fx(self._view(mean, x))) / self.std(var)
