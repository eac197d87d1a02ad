"""scikit-learn's 8x8 handwritten digits as static features or spike rasters.

The 1797 images of ``sklearn.datasets.load_digits`` (shipped inside scikit-learn, no network)
have 64 pixels with integer values 0..16; spikefuse scales them to ``[0, 1]`` (``/ 16``).
scikit-learn is an optional dependency (the ``data`` extra: ``pip install -e ".[data]"`` from the checkout).

Split: a fixed, class-stratified train/test split drawn from ``seed``: for every class its
sample indices are permuted by a ``torch.Generator`` seeded with ``seed`` and the first
``round(test_fraction * n_class)`` go to the test set. The same ``seed`` always gives the same
split, and train and test never overlap.

Encodings (``encoding=``):

- ``None`` — static features ``(64,)`` in ``[0, 1]`` (the trainer encodes them);
- ``"rate"`` — Bernoulli rate code ``(T, 64)``, ``P(spike) = gain * x`` per step;
- ``"poisson"`` — Poisson code ``(T, 64)``, ``P(spike) = 1 - exp(-gain * x)`` per step;
- ``"latency"`` — one spike per pixel, linear (``latency_method="linear"``) or log latency;
- ``"current"`` — ``gain * x`` repeated over ``T`` steps.

The random codes draw from the global torch RNG, or, with ``encode_seed`` set, from a generator
seeded per sample (``encode_seed * 1000003 + index``) so that every access gives the same raster.

Example::

    >>> from spikefuse.data.digits import Digits
    >>> ds = Digits("train", encoding="latency", T=10)
    >>> x, y = ds[0]
    >>> len(ds), x.shape
    (1438, torch.Size([10, 64]))
"""
from __future__ import annotations

import functools
from numbers import Integral
from typing import Optional

import torch
from torch.utils.data import Dataset

from .._validate import check_choice, check_number
from . import encoders
from ._checks import check_scalar

__all__ = ["Digits", "load_digits_tensors", "ENCODINGS"]

ENCODINGS = (None, "rate", "poisson", "latency", "current")
_SPLITS = ("train", "test", "all")


def _sklearn_load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - exercised via monkeypatch in tests
        raise ImportError(
            "spikefuse.data.digits needs scikit-learn, an optional dependency: install it with "
            "`pip install -e \".[data]\"` (from the spikefuse checkout) or `pip install scikit-learn`"
        ) from e
    return load_digits()


@functools.lru_cache(maxsize=1)
def _cached():
    d = _sklearn_load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(d.target, dtype=torch.int64)
    return x, y


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as ``(features (1797, 64) float32 in [0, 1], labels (1797,) int64)``.

    Example::

        >>> x, y = load_digits_tensors()
        >>> x.shape, float(x.max()), y.unique().tolist() == list(range(10))
        (torch.Size([1797, 64]), 1.0, True)
    """
    x, y = _cached()
    return x.clone(), y.clone()


def _split_indices(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_test = int(round(test_fraction * idx.numel()))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


class Digits(Dataset):
    """The 8x8 digits as a torch ``Dataset``: ``(features (64,) or raster (T, 64), label)``.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        encoding: ``None`` (static features), ``"rate"``, ``"poisson"``, ``"latency"``,
            ``"current"`` (see module docstring).
        T: time steps of the encoded rasters.
        test_fraction: share of every class held out for ``"test"`` (default 0.2).
        seed: seed of the train/test split.
        gain: gain of the rate/poisson/current codes.
        latency_method, latency_threshold: passed to :func:`spikefuse.data.encoders.latency`.
        encode_seed: make the random codes deterministic per sample (see module docstring).
        transform: optional callable applied to the features/raster.

    Encoded samples collate to ``(T, B, 64)`` with ``spikefuse.data.collate_time_first``.

    Example::

        >>> ds = Digits("test", encoding="rate", T=8, encode_seed=0)
        >>> bool((ds[3][0] == ds[3][0]).all()), ds.n_classes
        (True, 10)
    """

    n_inputs = 64
    n_classes = 10

    def __init__(
        self,
        split: str = "train",
        *,
        encoding: Optional[str] = None,
        T: int = 20,
        test_fraction: float = 0.2,
        seed: int = 0,
        gain: float = 1.0,
        latency_method: str = "linear",
        latency_threshold: float = 0.01,
        encode_seed: Optional[int] = None,
        transform=None,
    ) -> None:
        super().__init__()
        check_choice("split", split, _SPLITS)
        check_choice("encoding", encoding, ENCODINGS)
        if isinstance(T, bool) or not isinstance(T, Integral) or T < 1:
            raise ValueError(f"T: expected a positive int number of time steps, got {T!r}")
        check_number("test_fraction", test_fraction, gt=0, lt=1)
        for name, v in (("seed", seed), ("encode_seed", encode_seed)):
            if v is None and name == "encode_seed":
                continue
            if isinstance(v, bool) or not isinstance(v, Integral) or v < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
        check_scalar("gain", gain, ge=0)
        check_choice("latency_method", latency_method, ["linear", "log"])
        check_number("latency_threshold", latency_threshold, ge=0, lt=1)
        if encoding == "rate" and gain > 1:
            raise ValueError(f"gain: the rate code needs gain * x <= 1 for x in [0, 1], so gain <= 1; got {gain}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")

        x, y = _cached()
        if split == "all":
            idx = torch.arange(y.numel())
        else:
            tr, te = _split_indices(y, float(test_fraction), int(seed))
            idx = tr if split == "train" else te
        self.indices = idx
        self.features = x[idx].clone()
        self.labels = y[idx].clone()
        self.split = split
        self.encoding = encoding
        self.T = int(T)
        self.gain = float(gain)
        self.latency_method = latency_method
        self.latency_threshold = float(latency_threshold)
        self.encode_seed = encode_seed
        self.transform = transform
        self.time_first = encoding is not None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def encode(self, x: torch.Tensor, index: int = 0) -> torch.Tensor:
        """Encode features ``x`` (``(64,)`` or ``(B, 64)``) with this dataset's encoding."""
        if self.encoding is None:
            return x
        g = None
        if self.encode_seed is not None and self.encoding in ("rate", "poisson"):
            g = torch.Generator().manual_seed(self.encode_seed * 1000003 + int(index))
        if self.encoding == "rate":
            return encoders.rate(x, self.T, gain=self.gain, generator=g)
        if self.encoding == "poisson":
            return encoders.poisson(x, self.T, gain=self.gain, generator=g)
        if self.encoding == "latency":
            return encoders.latency(
                x, self.T, method=self.latency_method, threshold=self.latency_threshold
            )
        return encoders.current(x, self.T, gain=self.gain)

    def __getitem__(self, index: int):
        x = self.encode(self.features[index].clone(), index)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])
