"""The network of a training run: :class:`SpikingClassifier`, its neuron factory, the
optimizer and the learning-rate schedule."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import families as _families
from .. import layers as L
from .._validate import check_tensor
from .config import TrainConfig


def _train_spec(cfg: TrainConfig):
    """How the registry (:mod:`spikefuse.families`) builds family ``cfg.neuron`` for training."""
    return _families.get(cfg.neuron).train


def _make_neuron(cfg: TrainConfig) -> nn.Module:
    """A (T, B, N) neuron of family ``cfg.neuron`` (not eventprop, which owns its synapse)."""
    spec = _train_spec(cfg)
    if spec is None or spec.owns_synapse:
        raise ValueError(f"neuron: no module for {cfg.neuron!r}")  # pragma: no cover
    return _families.load(spec.make)(cfg)


class SpikingClassifier(nn.Module):
    """Feed-forward spiking classifier used by ``spikefuse train``.

    Input: static features ``(B, *input_shape)`` (presented as a constant current for ``T``
    steps) or a time-first sequence ``(T, B, *input_shape)``. ``layers`` hidden blocks
    (``Dense`` + neuron; for ``neuron="eventprop"`` an :class:`~spikefuse.neuron.EventPropLIF`
    layer), then ``Dense`` into a non-spiking leaky integrator (``tau``) whose membrane is
    reduced over time (``readout``: ``max``, ``mean``, ``last``) into class scores. With
    ``readout="count"`` the output layer spikes and the scores are spike counts.

    >>> cfg = TrainConfig(hidden=8, neuron="lif").resolve()
    >>> m = SpikingClassifier(4, 3, cfg)
    >>> m(torch.rand(5, 4)).shape
    torch.Size([5, 3])
    """

    def __init__(self, n_inputs: int, n_classes: int, cfg: TrainConfig, time_first: bool = False):
        super().__init__()
        self.T = cfg.T
        self.n_inputs = int(n_inputs)
        self.time_first = time_first
        self.input_gain = cfg.input_gain
        self.readout = cfg.readout
        spec = _train_spec(cfg)
        hook = spec.weight_hook
        blocks = []
        n = n_inputs
        for _ in range(cfg.layers):
            if spec.owns_synapse:  # e.g. eventprop: the family builds the whole layer
                blocks.append(_families.load(spec.make)(cfg, n, cfg.hidden))
            else:
                blocks.append(L.DenseBlock(n, cfg.hidden, _make_neuron(cfg), weight_hook=hook))
            n = cfg.hidden
        self.hidden = nn.ModuleList(blocks)
        self.output = L.Dense(n, n_classes, weight_hook=hook)
        if cfg.readout == "count":
            self.integrator = L.LeakyIntegrator(cfg.tau) if spec.owns_synapse else _make_neuron(cfg)
        else:
            self.integrator = L.LeakyIntegrator(cfg.tau)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Static ``(B, *f)`` -> constant current ``input_gain * x`` for ``T`` steps,
        ``(T, B, F)``; sequences are flattened to ``(T, B, F)``."""
        if not self.time_first:
            if self.T is None:
                raise ValueError("T: static inputs need a number of time steps")
            x = x.reshape(x.shape[0], -1) * self.input_gain
            return x.unsqueeze(0).expand(self.T, *x.shape)
        return x.reshape(x.shape[0], x.shape[1], -1)

    def forward(self, x: torch.Tensor, record: bool = False):
        # inside trusted_inputs (the training loop, whose split was scanned once) no NaN/inf scan
        check_tensor("x", x, min_ndim=3 if self.time_first else 2, finite=not L.inputs_trusted())
        L.reset_states(self)
        h = self.encode(x)
        if h.shape[-1] != self.n_inputs:
            raise ValueError(f"x: expected {self.n_inputs} input features per step, got shape {tuple(x.shape)}")
        spikes = []
        neurons = [getattr(blk, "neuron", blk) for blk in self.hidden]
        flags = _store_traces(neurons, record)
        inputs: dict = {}
        hooks = _keep_inputs(neurons, self.hidden, inputs) if record else []
        try:
            with L.trusted_inputs():  # validated once here; the inner layers skip their checks
                for blk in self.hidden:
                    h = blk(h)
                    if record:
                        spikes.append(h.detach())
                mem = self.integrator(self.output(h))
        finally:
            for n, old in flags:
                n.store_v_seq = old
            for h_ in hooks:
                h_.remove()
        logits = _readout(mem, self.readout)
        if record:
            return logits, {"spikes": spikes, "output": mem.detach(),
                            "membranes": [_membrane_of(n) for n in neurons],
                            "charges": [_charge_of(n, inputs.get(i)) for i, n in enumerate(neurons)]}
        return logits


def _readout(mem: torch.Tensor, readout: str) -> torch.Tensor:
    """Class scores from the readout membrane ``(T, B, C)``: max, mean, last or sum (count)."""
    if readout == "max":
        return mem.amax(0)
    if readout == "mean":
        return mem.mean(0)
    if readout == "last":
        return mem[-1]
    return mem.sum(0)


def _store_traces(neurons, record: bool) -> list:
    """Ask SpikingJelly-style neurons to keep their membrane trace while recording; returns
    ``(neuron, old flag)`` pairs to restore."""
    if not record:
        return []
    flags = [(n, n.store_v_seq) for n in neurons if isinstance(getattr(n, "store_v_seq", None), bool)]
    for n, _ in flags:
        n.store_v_seq = True
    return flags


def _membrane_of(neuron) -> Optional[torch.Tensor]:
    """The membrane trace ``(T, B, ...)`` of the last forward, where the neuron exposes one."""
    v = getattr(neuron, "v_seq", None)
    if isinstance(v, torch.Tensor):
        return v.detach()
    traces = getattr(neuron, "last_traces", None)
    v = getattr(traces, "membrane", None)
    return v.detach() if isinstance(v, torch.Tensor) else None


def _keep_inputs(neurons, blocks, store: dict) -> list:
    """Forward pre-hooks that keep each block neuron's input (for :func:`_charge_of`); returns
    the hook handles to remove."""
    return [n.register_forward_pre_hook(_keep_input(store, i))
            for i, (n, blk) in enumerate(zip(neurons, blocks)) if n is not blk]


def _keep_input(store: dict, i: int):
    def hook(module, args):
        store[i] = args[0].detach()
    return hook


@torch.no_grad()
def _charge_of(neuron, x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The membrane before the reset ``(T, B, ...)`` for input ``x``, where the family has one
    (IF/LIF/PLIF: the charge ``h`` of the functional LIF traces; Loihi: the pre-reset voltage
    of ``dynamics``); None otherwise. For a neuron that fires on every step this is what moves
    (its post-reset membrane sits at the reset value)."""
    if x is None:
        return None
    from ..functional.lif import LIFParams, lif_multistep

    params = neuron.params() if callable(getattr(neuron, "params", None)) else None
    if isinstance(params, LIFParams):
        return lif_multistep(x, params, None, getattr(neuron, "backend", None), return_traces=True)[2].h
    if callable(getattr(neuron, "dynamics", None)):
        return neuron.dynamics(x)[1].detach()
    return None


def build_model(cfg: TrainConfig, n_inputs: int, n_classes: int, time_first: bool = False,
                input_shape=None) -> nn.Module:
    """The ``cfg.model`` network of a resolved config (seed the RNG first for a reproducible
    initialisation): :class:`SpikingClassifier` (dense), or the conv / recurrent networks of
    :mod:`~spikefuse.train.nets`. ``input_shape`` (per step) shapes the conv model's input."""
    from . import nets

    if cfg.model == "conv":
        shape = nets.conv_input_shape(n_inputs, input_shape)
        return nets.ConvClassifier(shape, n_classes, cfg, time_first)
    if cfg.model == "recurrent":
        return nets.RecurrentClassifier(n_inputs, n_classes, cfg, time_first)
    return SpikingClassifier(n_inputs, n_classes, cfg, time_first)


def _fused_ok(params) -> bool:
    """Whether torch's fused Adam/AdamW kernel takes these parameters: all floating, on the CPU
    or one CUDA device (torch >= 2.4 has the CPU kernel)."""
    devs = {p.device.type for p in params}
    return bool(params) and devs <= {"cpu", "cuda"} and len({p.device for p in params}) == 1 \
        and all(p.is_floating_point() for p in params)


def build_optimizer(cfg: TrainConfig, params):
    """The optimizer of ``cfg``. Adam / AdamW run torch's fused kernel where it applies (one
    kernel for all parameters instead of a dozen small ops each: 114 -> 44 us per step on the
    default Yin-Yang network, 1 CPU thread; its rounding differs from the loop implementation's
    by an ulp here and there, so a run is reproducible with itself, not bit-identical with one of
    the unfused optimizer)."""
    params = list(params)
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        flat = [p for g in params for p in (list(g["params"]) if isinstance(g, dict) else [g])]
        extra = {"fused": True} if _fused_ok(flat) else {}
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _build_schedule(cfg: TrainConfig, opt, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)

