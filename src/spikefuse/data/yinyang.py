"""The Yin-Yang dataset (Kriener, Göltz & Petrovici 2021, arXiv:2102.08211).

A small 2-D classification problem that a linear classifier cannot solve (about 64 % accuracy)
but a shallow hidden layer does (about 98 %). Points ``(x, y)`` are drawn uniformly inside a
disc of radius ``r_big`` centred at ``(r_big, r_big)`` and labelled by the region of the
yin-yang symbol they fall in. Every sample is presented with its mirrored coordinates,
``(x, y, 1 - x, 1 - y)``, so that neurons without a bias still see a symmetric input.

This module reproduces the published generator point for point: it draws from a
``numpy.random.RandomState(seed)`` in the same order as the reference implementation, so
``YinYang("train")`` yields exactly the 5000 points of the published training set (seed 42),
``"val"`` the 1000 validation points (seed 41) and ``"test"`` the 1000 test points (seed 40).

Sampling procedure (per sample):

1. ``goal = rng.randint(3)`` — the class the next sample must have (class balancing).
2. Repeat: ``x, y = rng.rand(2) * 2 * r_big``; reject if outside the big disc; otherwise
   compute the class; accept when it equals ``goal``.

Class rule (``d_left``/``d_right`` = distance to the centres ``(r_big/2, r_big)`` and
``(3 r_big/2, r_big)`` of the two dots):

- label 2 (``"dot"``): ``d_left < r_small`` or ``d_right < r_small``;
- label 1 (``"yang"``): otherwise, if ``d_right <= r_small``, or
  ``r_small < d_left <= r_big/2``, or ``y > r_big and d_right > r_big/2``;
- label 0 (``"yin"``): everything else.

(The published code calls the region that receives label 1 ``is_yin`` while its list of class
names is ``['yin', 'yang', 'dot']``; spikefuse keeps the published *labels* and the published
*names list*, i.e. label 0 = "yin", 1 = "yang", 2 = "dot", so the numbers match the paper's
data files.)

Example::

    >>> from spikefuse.data.yinyang import YinYang
    >>> ds = YinYang("train")
    >>> len(ds), ds[0][0].shape, ds.n_classes
    (5000, torch.Size([4]), 3)
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validate import check_choice, check_number
from ._checks import check_data_tensor, check_scalar
from ._checks import check_int as _check_int

__all__ = ["YinYang", "make_yinyang", "yinyang_class", "SPLITS", "CLASS_NAMES"]

#: split name -> (size, seed) of the published data set
SPLITS = {"train": (5000, 42), "val": (1000, 41), "test": (1000, 40)}
_SPLIT_ALIASES = {"validation": "val", "valid": "val"}
CLASS_NAMES = ("yin", "yang", "dot")


def _check_radii(r_small, r_big) -> tuple[float, float]:
    r_big = check_scalar("r_big", r_big, gt=0)
    r_small = check_scalar("r_small", r_small, gt=0)
    if not r_small < r_big / 2:
        raise ValueError(
            f"r_small: must be smaller than r_big / 2 = {r_big / 2:g} so that the dots fit "
            f"inside the half discs, got r_small={r_small:g}"
        )
    return r_small, r_big


def _class_scalar(x: float, y: float, r_small: float, r_big: float) -> int:
    d_right = math.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = math.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_right < r_small or d_left < r_small:
        return 2
    upper = (
        d_right <= r_small
        or (r_small < d_left <= 0.5 * r_big)
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return 1 if upper else 0


def yinyang_class(x, y, r_small: float = 0.1, r_big: float = 0.5) -> np.ndarray:
    """Label of the point(s) ``(x, y)`` by the Yin-Yang rule (0 = yin, 1 = yang, 2 = dot).

    ``x`` and ``y`` are numbers or arrays of equal shape (coordinates in ``[0, 2 r_big]``;
    points outside the big disc get a label too, the rule does not check it).

    Example::

        >>> int(yinyang_class(0.25, 0.5))   # centre of the left dot
        2
        >>> int(yinyang_class(0.5, 0.9))    # top of the disc
        1
    """
    r_small, r_big = _check_radii(r_small, r_big)
    x, y = _coords("x", x), _coords("y", y)
    d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    upper = (
        (d_right <= r_small)
        | ((d_left > r_small) & (d_left <= 0.5 * r_big))
        | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    dots = (d_right < r_small) | (d_left < r_small)
    return np.where(dots, 2, upper.astype(np.int64)).astype(np.int64)


def _coords(name: str, v) -> np.ndarray:
    """Finite float64 coordinates from numbers, arrays or (any-dtype, CPU-readable) tensors."""
    if isinstance(v, torch.Tensor):
        check_data_tensor(name, v, floating=False, finite=False)
        v = v.detach().cpu().double().numpy()
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected numbers or an array of coordinates, got {type(v).__name__}") from e
    if a.size and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf values")
    return a


def _generate(size: int, seed: int, r_small: float, r_big: float):
    """The published rejection sampler; same RandomState call order."""
    rng = np.random.RandomState(seed)
    vals = np.empty((size, 4), dtype=np.float64)
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            u = rng.rand(2) * 2.0 * r_big  # same arithmetic order as the published code
            x, y = float(u[0]), float(u[1])
            if math.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            c = _class_scalar(x, y, r_small, r_big)
            if c == goal:
                break
        vals[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = c
    return vals, labels


def make_yinyang(
    size: int = 1000,
    seed: int = 42,
    *,
    r_small: float = 0.1,
    r_big: float = 0.5,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate a Yin-Yang set as whole tensors ``(inputs (size, 4), labels (size,) int64)``.

    ``inputs[:, :2]`` are ``(x, y)`` and ``inputs[:, 2:]`` are ``(1 - x, 1 - y)``. The points
    are identical to the published generator for the same ``size``/``seed``/radii (the values
    are computed in float64 and then cast to ``dtype``).

    Example::

        >>> x, y = make_yinyang(300, seed=0)
        >>> x.shape, y.shape, y.bincount().tolist() != [0, 0, 0]
        (torch.Size([300, 4]), torch.Size([300]), True)
    """
    size = _check_int("size", size, ge=0)
    seed = _check_int("seed", seed, ge=0)
    if seed >= 2**32:
        raise ValueError(f"seed: must be < 2**32 (numpy RandomState), got {seed}")
    r_small, r_big = _check_radii(r_small, r_big)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    vals, labels = _generate(size, seed, r_small, r_big)
    return torch.from_numpy(vals).to(dtype), torch.from_numpy(labels)


class YinYang(Dataset):
    """The Yin-Yang dataset as a torch ``Dataset`` of ``(float32 tensor (4,), int label)``.

    Args:
        split: ``"train"`` (5000 points, seed 42), ``"val"`` (1000, seed 41) or ``"test"``
            (1000, seed 40) — the published splits.
        size: override the number of samples of the split.
        seed: override the split's seed (different splits must use different seeds, or they
            contain the same points).
        transform: optional callable applied to the input tensor of each sample.
        r_small, r_big: radii of the dots and of the whole symbol (published: 0.1, 0.5).

    Attributes: ``inputs`` (N, 4) float32, ``labels`` (N,) int64, ``class_names``,
    ``n_inputs`` = 4, ``n_classes`` = 3.

    Example::

        >>> from torch.utils.data import DataLoader
        >>> ds = YinYang("val")
        >>> xb, yb = next(iter(DataLoader(ds, batch_size=20)))
        >>> xb.shape, yb.dtype
        (torch.Size([20, 4]), torch.int64)
    """

    n_inputs = 4
    n_classes = 3
    class_names = CLASS_NAMES

    def __init__(
        self,
        split: str = "train",
        size: Optional[int] = None,
        seed: Optional[int] = None,
        transform: Optional[Callable] = None,
        *,
        r_small: float = 0.1,
        r_big: float = 0.5,
    ) -> None:
        super().__init__()
        split = _SPLIT_ALIASES.get(split, split) if isinstance(split, str) else split
        check_choice("split", split, list(SPLITS))
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
        default_size, default_seed = SPLITS[split]
        self.split = split
        self.size = default_size if size is None else size
        self.seed = default_seed if seed is None else seed
        self.transform = transform
        self.inputs, self.labels = make_yinyang(
            self.size, self.seed, r_small=r_small, r_big=r_big
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int):
        x = self.inputs[index].clone()
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])

    def __repr__(self) -> str:
        return f"YinYang(split={self.split!r}, size={self.size}, seed={self.seed})"
