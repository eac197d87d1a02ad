"""The data splits of a training run, as in-memory tensors where they fit."""
from __future__ import annotations

import torch

from .._validate import all_finite
from .config import TrainConfig


_HINT = 'pip install -e ".[data]" from the spikefuse checkout'
#: the optional package each data set reads with
_NEEDS = {"digits": "scikit-learn", "shd": "h5py", "ssc": "h5py"}


class MissingDependency(ImportError):
    """An optional package a data set or command needs is not installed (one-line message)."""


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
        self._finite = None
        inputs, labels = getattr(ds, "inputs", None), getattr(ds, "labels", None)
        if (not self.time_first and isinstance(inputs, torch.Tensor) and isinstance(labels, torch.Tensor)
                and getattr(ds, "transform", None) is None and len(inputs) == n):
            self.x, self.y = inputs.float(), labels.long()
        elif n * max(1, info.n_inputs) * max(1, info.n_steps or 1) <= 50_000_000:
            xs, ys = zip(*(ds[i] for i in range(n)))
            self.x = torch.stack(xs, dim=1 if self.time_first else 0).float()
            self.y = torch.as_tensor(ys, dtype=torch.int64)

    def batch(self, idx):
        """Inputs and labels of the samples ``idx`` (a list of ints or an int64 tensor)."""
        if self.x is not None:
            t = idx if isinstance(idx, torch.Tensor) else torch.as_tensor(idx, dtype=torch.int64)
            x = self.x[:, t] if self.time_first else self.x[t]
            return x, self.y[t]
        if isinstance(idx, torch.Tensor):
            idx = idx.tolist()
        collate = self.info.collate_fn or torch.utils.data.default_collate
        return collate([self.ds[i] for i in idx])

    def values_checked(self) -> bool:
        """True when the split is held in memory and holds no NaN/inf (scanned once, on the
        first call): the models need not scan each of its batches again. False otherwise (a
        split read sample by sample, or one with a NaN/inf: its batches keep their per-call
        check, which names the bad input where it is used, as before)."""
        if self._finite is None:
            self._finite = bool(self.x is not None and self.x.is_floating_point() and self.x.numel()
                                and all_finite(self.x))
        return self._finite


def load_split(cfg: TrainConfig, split: str, max_samples=None):
    """``(split, info)`` of one split of ``cfg.data``."""
    from ..data import get_dataset

    kw = {}
    if cfg.data == "randman" and cfg.T is not None:
        kw["n_steps"] = cfg.T
    if cfg.data == "eventdigits" and cfg.T is not None:
        kw["T"] = cfg.T
    if cfg.data in ("shd", "ssc", "nmnist", "dvsgesture", "cifar10dvs") and cfg.data_root is not None:
        kw["root"] = cfg.data_root
    try:
        ds, info = get_dataset(cfg.data, split, **kw)
    except ImportError as e:  # an optional dependency of this data set is missing
        pkg = _NEEDS.get(cfg.data, e.name or "an optional package")
        raise MissingDependency(f"data: {cfg.data!r} needs {pkg}, which is not installed: {_HINT} "
                                f"(or pip install {pkg})") from None
    return _Split(ds, info, max_samples), info


def load_data(cfg: TrainConfig):
    """``(train, val, test, info)`` splits of ``cfg.data`` (val = test where there is none)."""
    out = {}
    info = None
    for split in ("train", "val", "test"):
        out[split], info_s = load_split(cfg, split, cfg.max_samples)
        info = info if info is not None else info_s
    return out["train"], out["val"], out["test"], info
