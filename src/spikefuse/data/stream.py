"""Streamed event data: per-sample event arrays binned on the fly, batches through a DataLoader.

Nothing is materialised: a sample's events are read (or generated) and binned when the
``DataLoader`` asks for it, so memory holds the current batches (``batch_size`` x
``prefetch`` x workers), never the split.

- :class:`EventStream` wraps any indexable source of ``(events, label)`` pairs - a tonic data set
  (``tonic.datasets.NMNIST(...)``, ``SHD``, ``DVSGesture``, ``CIFAR10DVS``: anything returning
  ``(structured events, target)``), a list of structured arrays with ``labels=``, or a
  spikefuse reader/generator with an ``events(i)`` method (:class:`~spikefuse.data.events.NMNIST`,
  :class:`~spikefuse.data.event_digits.EventDigits`, ...; the SHD/SSC readers' ``(times in s,
  units)`` become tonic's audio events ``t`` in integer µs, ``x`` = unit, ``p`` = 0, as tonic's
  own SHD reader gives them) - and bins each sample with
  :func:`~spikefuse.data.frames.to_frames` (tonic's ``ToFrame(n_time_bins=T)``): frames
  ``(T, P, H, W)`` for cameras, time bins ``(T, P, W)`` for audio (``flatten=True``: ``(T, F)``).
- :func:`stream_loader` builds the ``DataLoader`` (workers allowed) whose batches are time-first
  ``(T, B, ...)`` (:func:`~spikefuse.data.collate_time_first`).

Example::

    >>> import numpy as np
    >>> from spikefuse.data.frames import make_events
    >>> evs = [make_events([0, 1], [0, 0], [0, 100], [1, 0]), make_events([1], [1], [5], [1])]
    >>> ds = EventStream(evs, labels=[0, 1], sensor_size=(2, 2, 2), n_time_bins=4)
    >>> xb, yb = next(iter(stream_loader(ds, batch_size=2)))
    >>> xb.shape, yb.tolist()
    (torch.Size([4, 2, 2, 2, 2]), [0, 1])
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ._checks import check_flags, check_int
from .frames import check_sensor_size, to_frames

__all__ = ["EventStream", "stream_loader"]


def _labels(labels) -> list:
    try:
        return [int(v) for v in labels]
    except (TypeError, ValueError) as e:
        raise TypeError(f"labels: expected a sequence of int class labels, got {type(labels).__name__}") from e


def _source_len(source) -> int:
    try:
        return len(source)
    except TypeError:
        raise TypeError(
            f"source: expected an indexable data set (tonic data set, list of event arrays, reader with "
            f"events(i)), got {type(source).__name__} without len()"
        ) from None


class EventStream(Dataset):
    """Bin the events of ``source`` on access (module docstring).

    Args:
        source: tonic data set / sequence of ``(events, label)`` / sequence of structured
            arrays (with ``labels``) / object with ``events(i)`` and ``labels``.
        sensor_size: ``(W, H, P)``; default ``source.sensor_size`` (tonic data sets and
            spikefuse readers have one).
        n_time_bins: T, the number of frames per sample.
        labels: one label per sample when ``source`` yields bare event arrays.
        overlap, binary: as :func:`~spikefuse.data.frames.to_frames`.
        flatten: ``(T, P*H*W)`` samples instead of ``(T, P, H, W)``.
        transform: applied to the binned tensor.
    """

    def __init__(self, source, *, n_time_bins: int, sensor_size=None, labels=None, overlap: float = 0.0,
                 binary: bool = False, flatten: bool = False, transform=None) -> None:
        super().__init__()
        self.n = _source_len(source)
        size = sensor_size if sensor_size is not None else getattr(source, "sensor_size", None)
        if size is None:
            raise ValueError("sensor_size: required (W, H, P) - the source has no sensor_size attribute")
        self.sensor_size = check_sensor_size(tuple(size) if isinstance(size, (tuple, list)) else size)
        self.T = check_int("n_time_bins", n_time_bins, ge=1)
        if labels is not None:
            labels = _labels(labels)
            if len(labels) != self.n:
                raise ValueError(f"labels: expected {self.n} labels (one per sample), got {len(labels)}")
        check_flags(transform, binary=binary, flatten=flatten)
        self.source, self.labels, self.overlap = source, labels, overlap
        self.binary, self.flatten, self.transform = binary, flatten, transform
        to_frames(np.zeros(0, dtype=[("x", "i8"), ("t", "i8"), ("p", "i8")]), self.sensor_size, self.T,
                  overlap=overlap)  # checks overlap now, not in a worker

    def __len__(self) -> int:
        return self.n

    def sample(self, index: int):
        """The raw ``(events, label)`` of sample ``index``."""
        src = self.source
        if hasattr(src, "events") and callable(src.events):
            ev, label = src.events(index), (src.labels[index] if self.labels is None else self.labels[index])
        else:
            item = src[index]
            if self.labels is not None:
                ev, label = item, self.labels[index]
            elif isinstance(item, tuple) and len(item) == 2:
                ev, label = item
            else:
                raise TypeError(f"source[{index}]: expected (events, label), got {type(item).__name__}; pass labels=")
        if isinstance(ev, tuple) and len(ev) == 2:  # (times in s, channels) of the SHD/SSC readers
            times, chans = (np.asarray(v).reshape(-1) for v in ev)
            ev = np.empty(times.size, dtype=[("t", np.int64), ("x", np.int64), ("p", np.int8)])
            ev["t"] = (times.astype(np.float64) * 1e6).astype(np.int64)  # µs as int, as tonic's SHD
            ev["x"], ev["p"] = chans, 0
        return ev, int(label)

    def __getitem__(self, index: int):
        index = int(index)
        if not -self.n <= index < self.n:
            raise IndexError(f"index: {index} out of range for {self.n} samples")
        ev, label = self.sample(index % self.n)
        x = to_frames(ev, self.sensor_size, self.T, overlap=self.overlap, binary=self.binary)
        if self.flatten:
            x = x.reshape(self.T, -1)
        if self.transform is not None:
            x = self.transform(x)
        return x, label


def stream_loader(dataset, batch_size: int, *, shuffle: bool = False, num_workers: int = 0,
                  seed: Optional[int] = None, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` over a per-sample data set with time-first batches ``(T, B, ...)``.

    ``num_workers > 0`` reads and bins in worker processes (readers reopen their files per
    process); ``seed`` fixes the shuffling order.
    """
    from . import collate_time_first

    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"dataset: expected a map-style data set (__getitem__ and __len__), got {type(dataset).__name__}")
    batch_size = check_int("batch_size", batch_size, ge=1)
    num_workers = check_int("num_workers", num_workers, ge=0)
    for name, v in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(v, bool):
            raise TypeError(f"{name}: expected bool, got {type(v).__name__}")
    g = torch.Generator().manual_seed(check_int("seed", seed, ge=0)) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_time_first, generator=g, drop_last=drop_last,
                      persistent_workers=num_workers > 0)
