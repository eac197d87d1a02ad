"""spikefuse.data — datasets generated in code, shipped small ones, event-file loaders, encoders.

Modules
-------
- :mod:`~spikefuse.data.yinyang` — the Yin-Yang set, point-identical to the published generator.
- :mod:`~spikefuse.data.randman` — random-manifold spike-timing sets (Zenke & Vogels 2021).
- :mod:`~spikefuse.data.digits` — scikit-learn's 8x8 digits, static or spike-encoded.
- :mod:`~spikefuse.data.events` — SHD/SSC (HDF5), N-MNIST (.bin), DVS128 Gesture (.npy) from
  local files, binned to time-first frames.
- :mod:`~spikefuse.data.cifar10dvs` — CIFAR10-DVS (original ``.aedat``) from local files.
- :mod:`~spikefuse.data.event_digits` — the 8x8 digits seen by a simulated event camera
  (``eventdigits``: no download, tonic's event format).
- :mod:`~spikefuse.data.frames` — tonic's structured events and ``ToFrame(n_time_bins)`` binning.
- :mod:`~spikefuse.data.stream` — tonic data sets / event arrays binned on the fly, streamed loaders.
- :mod:`~spikefuse.data.encoders` — rate, Poisson, latency, delta, level-crossing, current codes.

Registry: ``get_dataset(name, split="train", **kw) -> (dataset, info)``
----------------------------------------------------------------------
Used by ``spikefuse train --data NAME``. ``name`` is one of

==============  =========================  ==========================================  =========
name            splits                     sample ``x``                                 time-first
==============  =========================  ==========================================  =========
``yinyang``     train, val, test           ``(4,)`` features (x, y, 1-x, 1-y)           no
``digits``      train, test (val = test)   ``(64,)`` features in [0, 1]; with          no / yes
                                           ``encoding=`` ``(T, 64)`` spikes
``randman``     train, val, test           ``(T, n_units)`` spikes                      yes
``shd``         train, test (val = test)   ``(T, 700)`` spike counts                    yes
``ssc``         train, val, test           ``(T, 700)`` spike counts                    yes
``nmnist``      train, test (val = test)   ``(T, 2, 34, 34)`` counts (or flattened)     yes
``dvsgesture``  train, test (val = test)   ``(T, 2, H, W)`` counts (or flattened)       yes
``cifar10dvs``  train, test (val = test)   ``(T, 2, H, W)`` counts (or flattened)       yes
``eventdigits`` train, test (val = test)   ``(T, 2, 16, 16)`` event counts, generated   yes
==============  =========================  ==========================================  =========

``split`` accepts ``"val"``/``"validation"``; for data sets without a validation split it
returns the test split and says so in ``info.note``. ``**kw`` go to the dataset class
(``YinYang``, ``Digits``, ``RandMan``, ``SHD``, ``SSC``, ``NMNIST``, ``DVSGesture``,
``CIFAR10DVS``, ``EventDigits``); the
file-based sets take ``root`` (default: the ``SPIKEFUSE_DATA`` environment variable, else
``./data``) and raise :class:`~spikefuse.data.events.DatasetNotFoundError` with download
instructions when their files are missing.

``info`` is a :class:`DatasetInfo`: ``name``, ``n_inputs`` (features per time step, flattened),
``input_shape`` (per-step shape), ``n_classes``, ``time_first`` (True: samples are already
``(T, *input_shape)`` sequences; False: static features the trainer encodes), ``n_steps``
(T of time-first samples, else None), ``collate_fn`` (:func:`collate_time_first` for
time-first samples, else None = torch's default) and ``note``.

Example::

    >>> from torch.utils.data import DataLoader
    >>> from spikefuse.data import get_dataset
    >>> ds, info = get_dataset("randman", "train", n_classes=2, n_units=8, n_steps=10, n_samples=20)
    >>> xb, yb = next(iter(DataLoader(ds, batch_size=4, collate_fn=info.collate_fn)))
    >>> xb.shape, info.n_inputs, info.n_classes, info.time_first
    (torch.Size([10, 4, 8]), 8, 2, True)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .yinyang import YinYang, make_yinyang, yinyang_class

__all__ = [
    "DatasetInfo",
    "get_dataset",
    "dataset_names",
    "collate_time_first",
    "YinYang",
    "make_yinyang",
    "yinyang_class",
]


def collate_time_first(batch: Sequence):
    """Collate ``[(x (T, *f), label), ...]`` into ``(x (T, B, *f), labels (B,) int64)``.

    Example::

        >>> import torch
        >>> xb, yb = collate_time_first([(torch.zeros(5, 3), 1), (torch.ones(5, 3), 0)])
        >>> xb.shape, yb.tolist()
        (torch.Size([5, 2, 3]), [1, 0])
    """
    if not isinstance(batch, Sequence) or isinstance(batch, (str, bytes)):
        raise TypeError(f"batch: expected a sequence of (x, label) samples, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("batch: expected at least one (x, label) sample, got an empty batch")
    xs, ys = zip(*batch)
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"batch: samples must share one shape (T, *features), got {sorted(shapes)}")
    if len(next(iter(shapes))) < 1:
        raise ValueError("batch: samples must be time-first sequences (T, *features), got scalars")
    return torch.stack(xs, dim=1), torch.as_tensor(ys, dtype=torch.int64)


@dataclass(frozen=True)
class DatasetInfo:
    """What a trainer needs to know about a dataset (see module docstring)."""

    name: str
    n_inputs: int
    input_shape: tuple
    n_classes: int
    time_first: bool
    n_steps: Optional[int] = None
    collate_fn: Optional[Callable] = None
    note: str = ""


_NAMES = ("yinyang", "randman", "digits", "shd", "ssc", "nmnist", "dvsgesture", "cifar10dvs", "eventdigits")


def dataset_names() -> tuple:
    """Names accepted by :func:`get_dataset`."""
    return _NAMES


def _split(name: str, split: str, available: Sequence[str]):
    if not isinstance(split, str):
        raise TypeError(f"split: expected a str, got {type(split).__name__}")
    s = {"validation": "val", "valid": "val"}.get(split, split)
    if s not in ("train", "val", "test"):
        raise ValueError(f"split: expected one of ['train', 'val', 'test'], got {split!r}")
    if s == "val" and "val" not in available:
        return "test", f"{name} has no validation split; 'val' returns the test split"
    return s, ""


def _default_root(kw: dict) -> str:
    root = kw.pop("root", None)
    if root is None:
        root = os.environ.get("SPIKEFUSE_DATA", "data")
    return root


def get_dataset(name: str, split: str = "train", **kw):
    """Build dataset ``name`` for ``split``; returns ``(torch Dataset, DatasetInfo)``.

    See the module docstring for names, splits, keyword arguments and the metadata.

    Example::

        >>> ds, info = get_dataset("yinyang", "test")
        >>> len(ds), info.n_inputs, info.n_classes, info.time_first
        (1000, 4, 3, False)
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a dataset name (str), got {type(name).__name__}")
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _NAMES:
        raise ValueError(f"name: unknown dataset {name!r}; expected one of {list(_NAMES)}")

    if key == "yinyang":
        s, note = _split(key, split, ("train", "val", "test"))
        ds = YinYang(s, **kw)
        return ds, DatasetInfo("yinyang", 4, (4,), 3, False, None, None, note)

    if key == "digits":
        from .digits import Digits

        s, note = _split(key, split, ("train", "test"))
        ds = Digits(s, **kw)
        if ds.encoding is None:
            return ds, DatasetInfo("digits", 64, (64,), 10, False, None, None, note)
        return ds, DatasetInfo("digits", 64, (64,), 10, True, ds.T, collate_time_first, note)

    if key == "randman":
        from .randman import RandMan

        s, note = _split(key, split, ("train", "val", "test"))
        ds = RandMan(s, **kw)
        return ds, DatasetInfo(
            "randman", ds.n_inputs, (ds.n_inputs,), ds.n_classes, True, ds.n_steps, collate_time_first, note
        )

    if key == "eventdigits":
        from .event_digits import EventDigits

        s, note = _split(key, split, ("train", "test"))
        return _camera_info(key, EventDigits(s, **kw), note)

    from . import events

    root = _default_root(kw)
    if key in ("shd", "ssc"):
        cls = events.SHD if key == "shd" else events.SSC
        s, note = _split(key, split, tuple(cls.files))
        ds = cls(root, s, **kw)
        return ds, DatasetInfo(key, 700, (700,), cls.n_classes, True, ds.T, collate_time_first, note)

    if key == "cifar10dvs":
        from .cifar10dvs import CIFAR10DVS as cls
    else:
        cls = events.NMNIST if key == "nmnist" else events.DVSGesture
    s, note = _split(key, split, tuple(cls.folders))
    return _camera_info(key, cls(root, s, **kw), note)


def _camera_info(key: str, ds, note: str):
    shape = (ds.n_inputs,) if ds.flatten else ds.frame_shape
    return ds, DatasetInfo(key, ds.n_inputs, tuple(shape), ds.n_classes, True, ds.T, collate_time_first, note)
