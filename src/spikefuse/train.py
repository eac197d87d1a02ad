"""The training job behind ``spikefuse train``: configuration, data, model, loop, run folder.

A run is described by a :class:`TrainConfig`. :func:`train` builds the data set (via
:func:`spikefuse.data.get_dataset`), a feed-forward spiking classifier
(:class:`SpikingClassifier`: ``layers`` hidden blocks of ``Dense`` + neuron, then a ``Dense``
readout into a non-spiking leaky integrator whose membrane is reduced over time), trains it
with cross entropy and writes a run folder:

==================  ======================================================================
``config.toml``     the resolved configuration (every field, defaults filled in)
``metrics.jsonl``   one JSON object per epoch (train/val loss and accuracy, lr, firing rates)
``metrics.json``    the final result (test accuracy and loss, best validation accuracy, time)
``checkpoint.pt``   model, optimizer, schedule, RNG states and history after the last epoch;
                    written atomically (temporary file + ``os.replace``) with a SHA-256
                    checksum that :func:`load_checkpoint` verifies
``*.png``           ``curves.png`` (loss/accuracy), ``raster.png`` (spikes and output
                    membrane of one test sample), ``rates.png`` (firing rates per layer)
==================  ======================================================================

Resuming (``resume=True``) continues from ``checkpoint.pt`` after its last finished epoch and
gives the same final numbers as an uninterrupted run: the data order of epoch ``e`` is a
pure function of ``(seed, e)`` (``DistributedSampler`` with ``set_epoch``), and the RNG states
are restored from the checkpoint.

Under ``torchrun`` (``WORLD_SIZE > 1``) the job initialises ``torch.distributed`` (NCCL on
CUDA, Gloo on CPU), wraps the model in ``DistributedDataParallel`` and shards every epoch with
a ``DistributedSampler``; each process takes ``batch_size / world_size`` samples per step,
so one step of ``N`` processes equals one single-process step on the combined batch. Only
rank 0 prints and writes files.

Example::

    >>> from spikefuse.train import TrainConfig, train
    >>> result = train(TrainConfig(epochs=1, max_samples=64, out=None, plots=False),
    ...                progress=False, verbose=False)       # doctest: +SKIP
    >>> 0.0 <= result["test_acc"] <= 1.0                     # doctest: +SKIP
    True
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import layers as L
from . import surrogate as _surrogate
from ._validate import check_tensor

__all__ = [
    "TrainConfig",
    "DATA_DEFAULTS",
    "GRADIENT_DATA_DEFAULTS",
    "NEURONS",
    "GRADIENTS",
    "OPTIMIZERS",
    "READOUTS",
    "SCHEDULES",
    "SpikingClassifier",
    "CheckpointError",
    "DistInfo",
    "build_model",
    "build_optimizer",
    "init_distributed",
    "load_config_file",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]

NEURONS = ("lif", "if", "plif", "cuba", "loihi-cuba", "eventprop")
GRADIENTS = ("atan", "sigmoid", "superspike", "fast_sigmoid", "triangle", "slayer_exp", "eventprop")
OPTIMIZERS = ("adam", "adamw", "sgd")
READOUTS = ("max", "mean", "last", "count")
SCHEDULES = ("onecycle", "cosine", "none")
DEVICES = ("auto", "cpu", "cuda")
#: gradient used when ``gradient`` is not given, per neuron
DEFAULT_GRADIENT = {"lif": "atan", "if": "atan", "plif": "atan", "cuba": "superspike",
                    "loihi-cuba": "slayer_exp", "eventprop": "eventprop"}
#: surrogate families each neuron can use
NEURON_GRADIENTS = {
    "lif": ("atan", "sigmoid", "superspike", "fast_sigmoid", "triangle", "slayer_exp"),
    "if": ("atan", "sigmoid", "superspike", "fast_sigmoid", "triangle", "slayer_exp"),
    "plif": ("atan", "sigmoid", "superspike", "fast_sigmoid", "triangle", "slayer_exp"),
    "cuba": ("superspike",),
    "loihi-cuba": ("slayer_exp",),
    "eventprop": ("eventprop", "superspike"),
}

#: per-dataset defaults of the fields left as None (tuned on 2 CPU cores, see the report)
DATA_DEFAULTS: dict[str, dict[str, Any]] = {
    "yinyang": dict(hidden=128, layers=1, T=10, epochs=40, batch_size=32, lr=3e-2, input_gain=3.0),
    "digits": dict(hidden=128, layers=1, T=10, epochs=30, batch_size=32, lr=1e-2, input_gain=3.0),
    "randman": dict(hidden=128, layers=1, T=None, epochs=30, batch_size=32, lr=5e-3),
    "shd": dict(hidden=256, layers=1, T=None, epochs=30, batch_size=64, lr=2e-3),
    "ssc": dict(hidden=256, layers=1, T=None, epochs=20, batch_size=128, lr=2e-3),
    "nmnist": dict(hidden=256, layers=1, T=None, epochs=10, batch_size=64, lr=2e-3),
    "dvsgesture": dict(hidden=256, layers=2, T=None, epochs=30, batch_size=32, lr=2e-3),
}
_FALLBACK_DEFAULTS = dict(hidden=128, layers=1, T=10, epochs=20, batch_size=32, lr=5e-3)
#: per-(gradient, data set) defaults that take precedence over :data:`DATA_DEFAULTS` (fields
#: left None only). EventProp gradients on Yin-Yang (time in steps, see SpikingClassifier):
#: lr 3e-2 gave 95.5-97.9 % test accuracy over seeds 0-4, lr 1e-2 gives 98.0-98.9 %. (The
#: same network with the SuperSpike surrogate keeps 3e-2: 98.1-99.0 %; at 1e-2 seed 2 got 81.8 %.)
GRADIENT_DATA_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("eventprop", "yinyang"): dict(lr=1e-2),
}


def _data_names() -> tuple:
    try:
        from .data import dataset_names

        return tuple(dataset_names())
    except ImportError:  # pragma: no cover - data package always present in a full install
        return ("yinyang",)


# =============================================================================================
# configuration
# =============================================================================================
@dataclass
class TrainConfig:
    """Every setting of a training run. Fields left ``None`` get per-dataset defaults from
    :data:`DATA_DEFAULTS` (and ``gradient`` a per-neuron default) in :meth:`resolve`.

    >>> cfg = TrainConfig(data="yinyang").resolve()
    >>> cfg.hidden, cfg.epochs, cfg.gradient
    (128, 40, 'atan')
    """

    data: str = "yinyang"
    neuron: str = "lif"
    gradient: Optional[str] = None
    hidden: Optional[int] = None
    layers: Optional[int] = None
    T: Optional[int] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    tau: float = 2.0
    input_gain: Optional[float] = None
    readout: str = "max"
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    out: Optional[str] = None
    backend: Optional[str] = None
    plots: bool = True
    max_samples: Optional[int] = None
    data_root: Optional[str] = None

    # ------------------------------------------------------------------ validation
    def resolve(self) -> "TrainConfig":
        """Fill the ``None`` fields with defaults and validate; returns a new config."""
        c = dataclasses.replace(self)
        _check_str("data", c.data)
        key = c.data.lower().replace("-", "").replace("_", "")
        names = _data_names()
        if key not in names:
            raise ValueError(f"data: expected one of {list(names)}, got {c.data!r}")
        c.data = key
        _check_str("neuron", c.neuron)
        c.neuron = c.neuron.lower().replace("_", "-")
        if c.neuron not in NEURONS:
            raise ValueError(f"neuron: expected one of {list(NEURONS)}, got {self.neuron!r}")
        if c.gradient is None:
            c.gradient = DEFAULT_GRADIENT[c.neuron]
        _check_str("gradient", c.gradient)
        c.gradient = c.gradient.lower().replace("-", "_")
        if c.gradient not in GRADIENTS:
            raise ValueError(f"gradient: expected one of {list(GRADIENTS)}, got {self.gradient!r}")
        if c.gradient not in NEURON_GRADIENTS[c.neuron]:
            raise ValueError(
                f"gradient: neuron {c.neuron!r} supports {list(NEURON_GRADIENTS[c.neuron])}, "
                f"got {c.gradient!r}"
            )
        defaults = DATA_DEFAULTS.get(c.data, _FALLBACK_DEFAULTS)
        defaults = {**defaults, **GRADIENT_DATA_DEFAULTS.get((c.gradient, c.data), {})}
        for k, v in {"input_gain": 1.0, **defaults}.items():
            if getattr(c, k) is None:
                setattr(c, k, v)
        for name in ("hidden", "layers", "epochs", "batch_size", "seed"):
            _check_int(name, getattr(c, name), ge=0 if name == "seed" else 1)
        if c.T is not None:
            _check_int("T", c.T, ge=1)
        if c.max_samples is not None:
            _check_int("max_samples", c.max_samples, ge=1)
        for name, lo_open in (("lr", True), ("weight_decay", False), ("tau", False), ("input_gain", False)):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TypeError(f"{name}: expected a finite number, got {v!r}")
            setattr(c, name, float(v))
        if c.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {c.lr}")
        if c.weight_decay < 0:
            raise ValueError(f"weight_decay: must be >= 0, got {c.weight_decay}")
        if c.input_gain <= 0:
            raise ValueError(f"input_gain: must be > 0, got {c.input_gain}")
        if c.tau < 1:
            raise ValueError(f"tau: must be >= 1 (membrane decay 1 - 1/tau in [0, 1)), got {c.tau}")
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("readout", READOUTS), ("device", DEVICES)):
            v = getattr(c, name)
            _check_str(name, v)
            if v.lower() not in choices:
                raise ValueError(f"{name}: expected one of {list(choices)}, got {v!r}")
            setattr(c, name, v.lower())
        if c.backend is not None:
            from .kernels import BACKENDS

            if c.backend not in BACKENDS:
                raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {c.backend!r}")
        for name in ("amp", "plots"):
            if not isinstance(getattr(c, name), bool):
                raise TypeError(f"{name}: expected true/false, got {getattr(c, name)!r}")
        if c.out is not None and not isinstance(c.out, (str, os.PathLike)):
            raise TypeError(f"out: expected a folder path, got {c.out!r}")
        if c.out is not None:
            c.out = str(c.out)
        if c.data_root is not None and not isinstance(c.data_root, (str, os.PathLike)):
            raise TypeError(f"data_root: expected a folder path, got {c.data_root!r}")
        if c.data_root is not None:
            c.data_root = str(c.data_root)
        return c

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a mapping (keys may use dashes, e.g. ``batch-size``); unknown keys raise."""
        if not isinstance(d, dict):
            raise TypeError(f"config: expected a table/dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {}
        for k, v in d.items():
            key = str(k).replace("-", "_")
            if key == "no_plots":
                kw["plots"] = not v
                continue
            if key not in names:
                raise ValueError(f"config: unknown key {k!r}; expected one of {sorted(names)}")
            kw[key] = v
        return cls(**kw)


def _check_str(name, v):
    if not isinstance(v, str):
        raise TypeError(f"{name}: expected a string, got {type(v).__name__} {v!r}")


def _check_int(name, v, *, ge):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an integer, got {type(v).__name__} {v!r}")
    if v < ge:
        raise ValueError(f"{name}: must be >= {ge}, got {v}")


def load_config_file(path) -> dict:
    """Read a TOML config (top level or a ``[train]`` table) into a dict of fields.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.toml")
    >>> _ = open(p, "w").write('epochs = 3\\nbatch-size = 16\\n')
    >>> load_config_file(p)
    {'epochs': 3, 'batch-size': 16}
    """
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config: file not found: {str(p)!r}")
    try:
        with open(p, "rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config: {str(p)!r} is not valid TOML: {e}") from None
    if "train" in d and isinstance(d["train"], dict):
        rest = {k: v for k, v in d.items() if k != "train"}
        d = {**rest, **d["train"]}
    return d


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # JSON string escapes are valid TOML basic strings


def config_to_toml(cfg: TrainConfig) -> str:
    """Serialise a config as TOML (``None`` fields are omitted, they mean "default")."""
    lines = ["# spikefuse train: resolved configuration", "[train]"]
    for k, v in cfg.to_dict().items():
        if v is not None:
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


# =============================================================================================
# distributed
# =============================================================================================
@dataclass
class DistInfo:
    """Process-group facts of this process (``world_size == 1`` when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(pref: str, local_rank: int = 0) -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise ``torch.distributed`` when launched by ``torchrun`` (``WORLD_SIZE > 1``):
    NCCL on CUDA, Gloo on CPU. Returns this process's :class:`DistInfo`.

    >>> init_distributed("cpu").world_size        # not under torchrun
    1
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = _pick_device(device, local_rank)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, dev)


# =============================================================================================
# model
# =============================================================================================
def _surrogate_for(cfg: TrainConfig):
    return _surrogate.get(cfg.gradient)


def _make_neuron(cfg: TrainConfig) -> nn.Module:
    """A (T, B, N) neuron of family ``cfg.neuron`` (not eventprop, which owns its synapse)."""
    from . import neuron as N

    if cfg.neuron == "lif":
        return N.LIF(tau=cfg.tau, surrogate=_surrogate_for(cfg), backend=cfg.backend)
    if cfg.neuron == "if":
        return N.IF(surrogate=_surrogate_for(cfg), backend=cfg.backend)
    if cfg.neuron == "plif":
        return N.ParametricLIF(init_tau=cfg.tau, surrogate=_surrogate_for(cfg), backend=cfg.backend)
    if cfg.neuron == "cuba":
        # normalised units: dt = 1, tau_syn = tau_mem = tau steps
        return N.CubaLIF(threshold=1.0, tau_syn=cfg.tau * 1e-6, tau_mem=cfg.tau * 1e-6, dt=1e-6,
                         backend=cfg.backend)
    if cfg.neuron == "loihi-cuba":
        from .neuron.loihi import cuba

        decay = 1.0 / cfg.tau
        n = cuba.Neuron(threshold=1.0, current_decay=decay, voltage_decay=decay, requires_grad=False)
        n.backend = cfg.backend
        return n
    raise ValueError(f"neuron: no module for {cfg.neuron!r}")  # pragma: no cover


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
        hook = "8bit" if cfg.neuron == "loihi-cuba" else None
        blocks = []
        n = n_inputs
        for _ in range(cfg.layers):
            if cfg.neuron == "eventprop":
                from .neuron import EventPropLIF

                grad = "eventprop" if cfg.gradient == "eventprop" else "surrogate"
                # time in steps: dt = 1, tau_mem = 2 tau_syn = tau. The layer reads the gradient
                # arriving at its spikes (here the readout's dL/dz[t], per step) as -dL/dt_k in
                # the unit of dt; with dt = 1e-6 (seconds) every hidden-weight gradient came out
                # 1e6 too small (~1e-8 per element, the size of Adam's eps), which damped the
                # hidden layer's learning and left some seeds on a ~65 % plateau. The forward
                # only depends on dt/tau, so it is unchanged.
                blocks.append(EventPropLIF(n, cfg.hidden, threshold=1.0, tau_syn=cfg.tau * 0.5,
                                           tau_mem=cfg.tau, dt=1.0, gradient=grad,
                                           weight_scale=4.0))
            else:
                blocks.append(L.DenseBlock(n, cfg.hidden, _make_neuron(cfg), weight_hook=hook))
            n = cfg.hidden
        self.hidden = nn.ModuleList(blocks)
        self.output = L.Dense(n, n_classes, weight_hook=hook)
        if cfg.readout == "count":
            self.integrator = _make_neuron(cfg) if cfg.neuron != "eventprop" else L.LeakyIntegrator(cfg.tau)
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
        check_tensor("x", x, min_ndim=3 if self.time_first else 2)
        L.reset_states(self)
        h = self.encode(x)
        if h.shape[-1] != self.n_inputs:
            raise ValueError(f"x: expected {self.n_inputs} input features per step, got shape {tuple(x.shape)}")
        spikes = []
        neurons = [getattr(blk, "neuron", blk) for blk in self.hidden]
        flags = []
        if record:  # ask SpikingJelly-style neurons to keep their membrane trace
            flags = [(n, n.store_v_seq) for n in neurons if isinstance(getattr(n, "store_v_seq", None), bool)]
            for n, _ in flags:
                n.store_v_seq = True
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
        if self.readout == "max":
            logits = mem.amax(0)
        elif self.readout == "mean":
            logits = mem.mean(0)
        elif self.readout == "last":
            logits = mem[-1]
        else:
            logits = mem.sum(0)
        if record:
            return logits, {"spikes": spikes, "output": mem.detach(),
                            "membranes": [_membrane_of(n) for n in neurons]}
        return logits


def _membrane_of(neuron) -> Optional[torch.Tensor]:
    """The membrane trace ``(T, B, ...)`` of the last forward, where the neuron exposes one."""
    v = getattr(neuron, "v_seq", None)
    if isinstance(v, torch.Tensor):
        return v.detach()
    traces = getattr(neuron, "last_traces", None)
    v = getattr(traces, "membrane", None)
    return v.detach() if isinstance(v, torch.Tensor) else None


def build_model(cfg: TrainConfig, n_inputs: int, n_classes: int, time_first: bool = False) -> SpikingClassifier:
    """The model of a resolved config (seed the RNG first for a reproducible initialisation)."""
    return SpikingClassifier(n_inputs, n_classes, cfg, time_first)


def build_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _build_schedule(cfg: TrainConfig, opt, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


# =============================================================================================
# data
# =============================================================================================
class _Split:
    """A data split as in-memory tensors (fast path) or a Dataset with a collate function."""

    def __init__(self, ds, info, max_samples=None):
        self.info = info
        self.time_first = bool(info.time_first)
        n = len(ds)
        if max_samples is not None and max_samples < n:
            ds = torch.utils.data.Subset(ds, range(max_samples))
            n = max_samples
        self.n = n
        self.ds = ds
        self.x = self.y = None
        inputs, labels = getattr(ds, "inputs", None), getattr(ds, "labels", None)
        if (not self.time_first and isinstance(inputs, torch.Tensor) and isinstance(labels, torch.Tensor)
                and getattr(ds, "transform", None) is None and len(inputs) == n):
            self.x, self.y = inputs.float(), labels.long()
        elif n * max(1, info.n_inputs) * max(1, info.n_steps or 1) <= 50_000_000:
            xs, ys = zip(*(ds[i] for i in range(n)))
            self.x = torch.stack(xs, dim=1 if self.time_first else 0).float()
            self.y = torch.as_tensor(ys, dtype=torch.int64)

    def batch(self, idx: list[int]):
        if self.x is not None:
            t = torch.as_tensor(idx, dtype=torch.int64)
            x = self.x[:, t] if self.time_first else self.x[t]
            return x, self.y[t]
        collate = self.info.collate_fn or torch.utils.data.default_collate
        return collate([self.ds[i] for i in idx])


def load_data(cfg: TrainConfig):
    """``(train, val, test, info)`` splits of ``cfg.data`` (val = test where there is none)."""
    from .data import get_dataset

    kw = {}
    if cfg.data == "randman" and cfg.T is not None:
        kw["n_steps"] = cfg.T
    if cfg.data in ("shd", "ssc", "nmnist", "dvsgesture") and cfg.data_root is not None:
        kw["root"] = cfg.data_root
    out = {}
    info = None
    for split in ("train", "val", "test"):
        ds, info_s = get_dataset(cfg.data, split, **kw)
        info = info if info is not None else info_s
        out[split] = _Split(ds, info_s, cfg.max_samples)
    return out["train"], out["val"], out["test"], info


# =============================================================================================
# checkpoints
# =============================================================================================
class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a spikefuse checkpoint."""


_MAGIC = b"SPIKEFUSE-CHECKPOINT\x00v1\n"
_HEADER = struct.Struct("<Q32s")  # payload length, sha256 digest


def save_checkpoint(path, obj: dict) -> None:
    """Write ``obj`` (``torch.save``-able) atomically with a length and SHA-256 header.

    The bytes go to ``<path>.tmp`` in the same folder, are flushed and fsync'ed, then the
    temporary file replaces ``path`` (``os.replace``), so a reader never sees a half file.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.pt")
    >>> save_checkpoint(p, {"w": torch.ones(2)}); load_checkpoint(p)["w"]
    tensor([1., 1.])
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = _MAGIC + _HEADER.pack(len(payload), hashlib.sha256(payload).digest())
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying length and checksum.

    Raises :class:`CheckpointError` (a ``ValueError``) naming the file and the problem for a
    missing, truncated, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: file not found: {str(path)!r}")
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        if len(data) < len(_MAGIC) and _MAGIC.startswith(data):
            raise CheckpointError(f"checkpoint {str(path)!r} is truncated ({len(data)} bytes, header incomplete)")
        raise CheckpointError(f"checkpoint {str(path)!r} is not a spikefuse checkpoint (bad header)")
    off = len(_MAGIC)
    if len(data) < off + _HEADER.size:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated ({len(data)} bytes, header incomplete)")
    length, digest = _HEADER.unpack_from(data, off)
    payload = data[off + _HEADER.size:]
    if len(payload) != length:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or padded: expected {length} payload bytes, "
            f"found {len(payload)}"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: SHA-256 checksum mismatch")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # checksum fine but unreadable: written by something else
        raise CheckpointError(f"checkpoint {str(path)!r} could not be decoded: {e}") from None


def _schedule_state(sched) -> dict:
    """The scheduler state without callables (some torch versions keep the annealing function
    there), so that the checkpoint loads with ``weights_only=True``; the rebuilt scheduler
    already holds them."""
    return {k: v for k, v in sched.state_dict().items() if not callable(v)}


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
          "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_version"], tuple(st["python"]), st["python_gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# =============================================================================================
# training loop
# =============================================================================================
def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _autocast(cfg: TrainConfig, device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp)


@torch.no_grad()
def evaluate(model: nn.Module, split: _Split, cfg: TrainConfig, device, batch_size: int = 1000):
    """Mean loss, accuracy and per-layer firing rates (first batch) of ``model`` on ``split``."""
    model.eval()
    total_loss, correct, rates = 0.0, 0, None
    for start in range(0, split.n, batch_size):
        idx = list(range(start, min(split.n, start + batch_size)))
        x, y = split.batch(idx)
        x, y = x.to(device), y.to(device)
        with _autocast(cfg, device):
            logits, rec = model(x, record=True)
        logits = logits.float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        if rates is None:
            rates = [float(s.float().mean()) for s in rec["spikes"]]
    model.train()
    n = max(1, split.n)
    return total_loss / n, correct / n, rates or []


def _run_folder(cfg: TrainConfig) -> Optional[Path]:
    if cfg.out is None:
        return None
    return Path(cfg.out)


def _default_out(cfg: TrainConfig) -> str:
    return os.path.join("runs", f"{cfg.data}-{cfg.neuron}-{time.strftime('%Y%m%d-%H%M%S')}")


def _write_jsonl(path: Path, history: list) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _log(verbose: bool, dist: DistInfo, msg: str) -> None:
    if verbose and dist.is_main:
        print(msg, flush=True)


def train(cfg: TrainConfig, *, resume: bool | str = False, progress: bool = True,
          verbose: bool = True, stop_after_epoch: Optional[int] = None,
          overrides: Optional[dict] = None) -> dict:
    """Run a training job; returns the final metrics (also written to ``metrics.json``).

    - ``resume``: ``False``; ``True`` (continue from ``<cfg.out>/checkpoint.pt``); or a path
      to a run folder or checkpoint file. The checkpoint's config is used, updated with
      ``overrides`` (e.g. the command-line flags that were given explicitly).
    - ``progress``: a tqdm bar per epoch (rank 0 only); ``verbose``: per-epoch summary lines.
    - ``stop_after_epoch``: stop (after writing the checkpoint) once this many epochs are done,
      as if the job had been interrupted; used to test resuming.

    ``neuron="eventprop"`` on the CPU runs with one intra-op thread (restored afterwards): its
    layer is a Python loop over time of small tensor ops, where thread synchronisation costs
    more than it saves (5x slower with 2 threads on a shared 2-core machine).
    """
    threads = torch.get_num_threads()
    try:
        return _train(cfg, resume=resume, progress=progress, verbose=verbose,
                      stop_after_epoch=stop_after_epoch, overrides=overrides)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _train(cfg: TrainConfig, *, resume, progress, verbose, stop_after_epoch, overrides) -> dict:
    dist_info = init_distributed(cfg.device if isinstance(cfg.device, str) else "auto")
    ckpt = None
    if resume:
        ckpt_path = _resolve_resume(resume, cfg)
        ckpt = load_checkpoint(ckpt_path)
        saved = TrainConfig.from_dict(ckpt["config"])
        upd = dict(overrides or {})
        upd.setdefault("out", str(ckpt_path.parent))
        cfg = dataclasses.replace(saved, **upd)
    cfg = cfg.resolve()
    if cfg.out is None:
        cfg.out = _default_out(cfg)
        if dist_info.distributed:  # every process uses rank 0's time-stamped folder name
            import torch.distributed as dist

            name = [cfg.out]
            dist.broadcast_object_list(name, src=0)
            cfg.out = name[0]
    device = _pick_device(cfg.device, dist_info.local_rank)
    dist_info.device = device
    if cfg.neuron == "eventprop" and device.type == "cpu":
        torch.set_num_threads(1)
    if cfg.batch_size % dist_info.world_size:
        raise ValueError(f"batch_size: must be divisible by the number of processes "
                         f"({dist_info.world_size}), got {cfg.batch_size}")
    local_bs = cfg.batch_size // dist_info.world_size
    # ---- data first (a missing data set fails before anything is written)
    train_s, val_s, test_s, info = load_data(cfg)
    if info.time_first and cfg.T is None:
        cfg.T = info.n_steps
    out = _run_folder(cfg)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_to_toml(cfg))

    # ---- model, optimizer (seeded identically on every process)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(cfg, info.n_inputs, info.n_classes, bool(info.time_first)).to(device)
    net: nn.Module = model
    if dist_info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  broadcast_buffers=False)
    opt = build_optimizer(cfg, model.parameters())
    sampler = torch.utils.data.DistributedSampler(
        range(train_s.n), num_replicas=dist_info.world_size, rank=dist_info.rank,
        shuffle=True, seed=cfg.seed, drop_last=False)
    steps_per_epoch = math.ceil(len(sampler) / local_bs)
    sched = _build_schedule(cfg, opt, steps_per_epoch)
    history: list = []
    start_epoch = 0
    train_time = 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        saved_epochs = int(ckpt["config"].get("epochs") or cfg.epochs)
        if saved_epochs == cfg.epochs:
            sched.load_state_dict(ckpt["schedule"])
        else:
            # the run was extended/shortened: a fresh schedule over the remaining epochs
            for g in opt.param_groups:
                g["lr"] = cfg.lr
                g.pop("initial_lr", None)
                g.pop("max_lr", None)
                g.pop("min_lr", None)
            sched = _build_schedule(dataclasses.replace(cfg, epochs=max(1, cfg.epochs - start_epoch)),
                                    opt, steps_per_epoch)
            _log(verbose, dist_info, f"epochs changed from {saved_epochs} to {cfg.epochs}: "
                                     f"the {cfg.schedule} schedule restarts for the remaining epochs")
        train_time = float(ckpt.get("train_time_s", 0.0))
        _set_rng_state(ckpt["rng"])
        _log(verbose, dist_info, f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")
    if dist_info.is_main:
        _write_jsonl(out / "metrics.jsonl", history)

    _log(verbose, dist_info,
         f"spikefuse train: data={cfg.data} neuron={cfg.neuron} gradient={cfg.gradient} "
         f"hidden={cfg.hidden}x{cfg.layers} T={cfg.T} epochs={cfg.epochs} device={device} "
         f"processes={dist_info.world_size} -> {out}")

    for epoch in range(start_epoch, cfg.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        t0 = time.time()
        sampler.set_epoch(epoch)
        order = list(iter(sampler))
        net.train()
        sum_loss, sum_correct, seen = 0.0, 0, 0
        bar = None
        if progress and dist_info.is_main:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       leave=False, dynamic_ncols=True, file=sys.stderr)
        for b in range(steps_per_epoch):
            idx = order[b * local_bs:(b + 1) * local_bs]
            x, y = train_s.batch(idx)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(cfg, device):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sum_loss += loss.item() * len(idx)
            sum_correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sum_loss / seen:.4f}", acc=f"{sum_correct / seen:.4f}")
        if bar is not None:
            bar.close()
        if dist_info.distributed:
            import torch.distributed as dist

            t = torch.tensor([sum_loss, float(sum_correct), float(seen)], dtype=torch.float64,
                             device=device)
            dist.all_reduce(t)
            sum_loss, sum_correct, seen = t[0].item(), int(t[1].item()), int(t[2].item())
        val_loss, val_acc, rates = evaluate(model, val_s, cfg, device)
        train_time += time.time() - t0
        rec = {"epoch": epoch + 1, "train_loss": sum_loss / max(1, seen),
               "train_acc": sum_correct / max(1, seen), "val_loss": val_loss, "val_acc": val_acc,
               "lr": opt.param_groups[0]["lr"], "firing_rates": rates,
               "epoch_time_s": time.time() - t0}
        history.append(rec)
        _log(verbose, dist_info,
             f"epoch {epoch + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4f} acc "
             f"{rec['train_acc']:.4f} | val loss {val_loss:.4f} acc {val_acc:.4f} "
             f"({rec['epoch_time_s']:.1f}s)")
        if dist_info.is_main:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            save_checkpoint(out / "checkpoint.pt", {
                "format": 1, "epoch": epoch + 1, "config": cfg.to_dict(),
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "schedule": _schedule_state(sched), "history": history, "rng": _rng_state(),
                "train_time_s": train_time,
            })

    done = len(history)
    test_loss, test_acc, test_rates = evaluate(model, test_s, cfg, device)
    result = {
        "data": cfg.data, "neuron": cfg.neuron, "gradient": cfg.gradient,
        "epochs_completed": done, "epochs": cfg.epochs, "finished": done >= cfg.epochs,
        "test_loss": test_loss, "test_acc": test_acc, "test_firing_rates": test_rates,
        "best_val_acc": max((h["val_acc"] for h in history), default=None),
        "final_val_acc": history[-1]["val_acc"] if history else None,
        "train_time_s": train_time, "world_size": dist_info.world_size,
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    if dist_info.is_main:
        _write_json(out / "metrics.json", result)
        if cfg.plots:
            try:
                _make_plots(out, model, test_s, history, cfg, device)
            except ImportError as e:  # matplotlib missing: the run's results still stand
                print(f"spikefuse train: no plots: {e}", file=sys.stderr)
        _log(verbose, dist_info, f"test accuracy: {100 * test_acc:.2f}% (loss {test_loss:.4f}, "
                                 f"{done}/{cfg.epochs} epochs, {train_time:.1f}s) -> {out}")
    result["out"] = str(out)
    if dist_info.distributed:
        import torch.distributed as dist

        dist.barrier()
    return result


def _resolve_resume(resume, cfg: TrainConfig) -> Path:
    if resume is True:
        if cfg.out is None:
            raise ValueError("resume: needs the run folder (--out) or a path (--resume PATH)")
        p = Path(cfg.out)
    else:
        p = Path(resume)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise CheckpointError(f"checkpoint: file not found: {str(p)!r} (nothing to resume)")
    return p


def _make_plots(out: Path, model, test_s: _Split, history, cfg, device) -> None:
    from . import plots

    x, y = test_s.batch(list(range(min(test_s.n, 256))))
    with torch.no_grad():
        model.eval()
        logits, rec = model(x.to(device), record=True)
        model.train()
    spikes = [s.float().cpu() for s in rec["spikes"]]
    plots.plot_curves(history, out / "curves.png")
    mems = [None if m is None else m[:, 0].float().cpu() for m in rec["membranes"]]
    plots.plot_raster([s[:, 0] for s in spikes], rec["output"][:, 0].float().cpu(),
                      out / "raster.png", label=int(y[0]), prediction=int(logits[0].argmax()),
                      hidden_membranes=mems)
    plots.plot_rates(spikes, out / "rates.png")
