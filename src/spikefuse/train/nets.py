"""The convolutional and the recurrent networks of ``spikefuse train --model conv|recurrent``.

- :class:`ConvClassifier` (``--model conv``): a small VGG-style SNN for event cameras and images
  ``(T, B, C, H, W)``: ``layers`` blocks of 3x3 convolution (``hidden`` channels in the first
  block, doubling per block) -> batch norm (per step) -> neuron -> 2x2 max pooling, then a
  linear readout into a leaky integrator whose membrane is reduced over time (``readout``).
  Neuron families: every trainable family of :mod:`spikefuse.families` whose module takes
  ``(T, B, *features)`` - lif, if, plif, cuba, loihi.cuba (with its 8-bit weight hook); not
  eventprop (its layer owns a dense synapse).
- :class:`RecurrentClassifier` (``--model recurrent``): ``layers`` explicitly recurrent LIF layers
  (:class:`spikefuse.layers.RecurrentLIF`, SHD-style: ``h[t] = W x[t] + V s[t-1]``) of ``hidden``
  neurons, then the same readout; neuron family lif.

Both take time-first inputs ``(T, B, ...)`` or static ones ``(B, ...)`` (presented as a constant
current ``input_gain * x`` for ``T`` steps) and return class scores ``(B, n_classes)``;
``forward(x, record=True)`` also returns the per-layer spikes ``(T, B, N)`` (flattened), the
readout membrane and the hidden membranes where the neurons keep them, as
:class:`~spikefuse.train.model.SpikingClassifier` does.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .. import layers as L
from .._validate import check_tensor
from .config import MODEL_NEURONS, TrainConfig
from .. import surrogate as _surrogate
from .model import _make_neuron, _membrane_of, _readout, _store_traces, _train_spec

__all__ = ["ConvClassifier", "RecurrentClassifier", "conv_input_shape"]

CONV_NEURONS = MODEL_NEURONS["conv"]
RECURRENT_NEURONS = MODEL_NEURONS["recurrent"]


def conv_input_shape(n_inputs: int, input_shape=None) -> tuple:
    """``(C, H, W)`` of a conv model's input: ``input_shape`` when it is image-shaped, else a
    square two-polarity event frame ``(2, H, H)`` with ``2 * H * H == n_inputs``."""
    if input_shape is not None and len(tuple(input_shape)) == 3:
        return tuple(int(v) for v in input_shape)
    side = math.isqrt(max(int(n_inputs) // 2, 0))
    if 2 * side * side != int(n_inputs):
        raise ValueError(
            f"model: 'conv' needs image-shaped inputs (C, H, W), got {n_inputs} features per step "
            f"(input shape {tuple(input_shape) if input_shape is not None else None}); "
            "use --model dense or recurrent for this data set"
        )
    return (2, side, side)


class _SequenceClassifier(nn.Module):
    """Shared input encoding, readout and recording of the conv and recurrent networks."""

    def __init__(self, cfg: TrainConfig, time_first: bool, input_shape: tuple):
        super().__init__()
        self.T, self.time_first, self.input_gain = cfg.T, time_first, cfg.input_gain
        self.readout, self.input_shape = cfg.readout, tuple(input_shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(T, B, *input_shape)`` from time-first or static inputs."""
        if not self.time_first:
            if self.T is None:
                raise ValueError("T: static inputs need a number of time steps")
            x = x.reshape(x.shape[0], *self.input_shape) * self.input_gain
            return x.unsqueeze(0).expand(self.T, *x.shape)
        return x.reshape(x.shape[0], x.shape[1], *self.input_shape)

    def _check(self, x):
        check_tensor("x", x, min_ndim=3 if self.time_first else 2, finite=not L.inputs_trusted())
        per_step = x[0, 0] if self.time_first else x[0]
        if per_step.numel() != math.prod(self.input_shape):
            raise ValueError(f"x: expected {math.prod(self.input_shape)} input features per step "
                             f"(shape {self.input_shape}), got shape {tuple(x.shape)}")

    def _finish(self, h, spikes, neurons, record):
        mem = self.integrator(self.output(h.reshape(h.shape[0], h.shape[1], -1)))
        logits = _readout(mem, self.readout)
        if record:
            return logits, {"spikes": [s.reshape(s.shape[0], s.shape[1], -1) for s in spikes],
                            "output": mem.detach(), "membranes": [_flat(_membrane_of(n)) for n in neurons]}
        return logits


def _flat(v: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if v is None else v.reshape(v.shape[0], v.shape[1], -1)


class ConvClassifier(_SequenceClassifier):
    """VGG-style convolutional SNN (module docstring).

    >>> cfg = TrainConfig(data="eventdigits", model="conv", hidden=4, layers=2).resolve()
    >>> m = ConvClassifier((2, 16, 16), 10, cfg, time_first=True)
    >>> m(torch.rand(5, 3, 2, 16, 16)).shape
    torch.Size([3, 10])
    """

    def __init__(self, input_shape, n_classes: int, cfg: TrainConfig, time_first: bool = True):

        if cfg.neuron not in CONV_NEURONS:
            raise ValueError(f"neuron: model 'conv' supports {list(CONV_NEURONS)}, got {cfg.neuron!r}")
        super().__init__(cfg, time_first, input_shape)
        hook = _train_spec(cfg).weight_hook
        c, h, w = self.input_shape
        blocks = []
        for i in range(cfg.layers):
            out = cfg.hidden * 2 ** i
            parts = [L.Conv2d(c, out, 3, padding=1, bias=False, weight_hook=hook),
                     L.TimeDistributed(nn.BatchNorm2d(out)), _make_neuron(cfg)]
            if min(h, w) >= 2:
                parts.append(L.MaxPool2d(2))
                h, w = h // 2, w // 2
            blocks.append(nn.Sequential(*parts))
            c = out
        self.hidden = nn.ModuleList(blocks)
        self.output = L.Dense(c * h * w, n_classes, weight_hook=hook)
        self.integrator = L.LeakyIntegrator(cfg.tau)

    def forward(self, x: torch.Tensor, record: bool = False):
        self._check(x)
        L.reset_states(self)
        h = self.encode(x)
        neurons = [blk[2] for blk in self.hidden]
        flags = _store_traces(neurons, record)
        spikes = []
        try:
            with L.trusted_inputs():  # validated once here; the inner layers skip their checks
                for blk in self.hidden:
                    s = blk[2](blk[1](blk[0](h)))
                    spikes.append(s.detach())
                    h = blk[3](s) if len(blk) > 3 else s
                return self._finish(h, spikes, neurons, record)
        finally:
            for n, old in flags:
                n.store_v_seq = old


class RecurrentClassifier(_SequenceClassifier):
    """Explicitly recurrent LIF network (module docstring).

    >>> cfg = TrainConfig(data="randman", model="recurrent", hidden=6).resolve()
    >>> m = RecurrentClassifier(4, 3, cfg, time_first=True)
    >>> m(torch.rand(7, 2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_inputs: int, n_classes: int, cfg: TrainConfig, time_first: bool = True):
        if cfg.neuron not in RECURRENT_NEURONS:
            raise ValueError(f"neuron: model 'recurrent' supports {list(RECURRENT_NEURONS)}, got {cfg.neuron!r}")
        super().__init__(cfg, time_first, (int(n_inputs),))
        n, blocks = int(n_inputs), []
        for _ in range(cfg.layers):
            blocks.append(L.RecurrentLIF(n, cfg.hidden, tau=cfg.tau, surrogate=_surrogate.get(cfg.gradient)))
            n = cfg.hidden
        self.hidden = nn.ModuleList(blocks)
        self.output = L.Dense(n, n_classes)
        self.integrator = L.LeakyIntegrator(cfg.tau)

    def forward(self, x: torch.Tensor, record: bool = False):
        self._check(x)
        h = self.encode(x)
        spikes = []
        with L.trusted_inputs():
            for blk in self.hidden:
                h = blk(h)
                spikes.append(h.detach())
            return self._finish(h, spikes, list(self.hidden), record)

