"""Structured event arrays (tonic's format) and their binning into frames.

Event format: a 1-D numpy structured array with integer fields ``x``, ``p``, a time field ``t``
(any unit, tonic uses µs) and, for cameras, ``y`` - the format of tonic's data sets and readers,
in any field order. ``sensor_size`` follows tonic: ``(W, H, P)`` (``(n_channels, 1, P)`` for
audio without ``y``).

:func:`to_frames` equals ``tonic.transforms.ToFrame(sensor_size, n_time_bins=T, overlap=o)``
element for element: with ``t0, t1`` the first and last event time, the bin width is
``w = (t1 - t0) // T * (1 + o)`` (floor division, so events past ``t0 + T * w`` - always the
last event when the span is a multiple of ``T`` - fall in no bin), the stride ``w * (1 - o)``,
bin ``i`` covers ``[t0 + i * stride, t0 + i * stride + w)``, and the bins are located with
``searchsorted`` on the times exactly as tonic does. Differences: frames are float32 tensors
(tonic: int16 arrays), events are sorted by time first (tonic assumes sorted input), and an
empty sample gives ``(T, P, H, W)`` zeros (tonic: ``(T, P, W, H)``).

Example::

    >>> import numpy as np
    >>> ev = make_events(x=[0, 1, 1, 0], y=[0, 0, 1, 1], t=[0, 10, 20, 40], p=[1, 0, 1, 1])
    >>> to_frames(ev, (2, 2, 2), n_time_bins=2)[:, 1].tolist()  # w = 40 // 2: t=40 is dropped
    [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]
"""
from __future__ import annotations

from numbers import Real

import numpy as np
import torch

from ._checks import check_int

__all__ = ["EVENT_DTYPE", "make_events", "check_events", "check_sensor_size", "to_frames"]

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def make_events(x, y, t, p) -> np.ndarray:
    """A structured event array (fields x, y, t, p; dtype :data:`EVENT_DTYPE`) from four columns."""
    cols = [np.asarray(v).reshape(-1) for v in (x, y, t, p)]
    if len({c.size for c in cols}) != 1:
        raise ValueError(f"x, y, t, p: expected equal lengths, got {[c.size for c in cols]}")
    ev = np.empty(cols[0].size, dtype=EVENT_DTYPE)
    for name, c in zip("xytp", cols):
        ev[name] = c
    return ev


def check_sensor_size(sensor_size) -> tuple:
    """``(W, H, P)`` as three ints >= 1 (tonic's order)."""
    if not isinstance(sensor_size, (tuple, list)) or len(sensor_size) != 3:
        raise ValueError(f"sensor_size: expected (W, H, P), three ints, got {sensor_size!r}")
    return tuple(check_int(f"sensor_size[{i}]", v, ge=1) for i, v in enumerate(sensor_size))


def _field_ints(name: str, ev, limit: int) -> np.ndarray:
    v = np.asarray(ev[name])
    if v.dtype.kind not in "iub":
        raise TypeError(f"events: field {name!r} must hold integers, got dtype {v.dtype}")
    v = v.astype(np.int64)
    if v.size and (v.min() < 0 or v.max() >= limit):
        raise ValueError(f"events: field {name!r} must lie in [0, {limit}) for this sensor_size, got [{v.min()}, {v.max()}]")
    return v


def check_events(events, sensor_size) -> tuple:
    """Validate a structured event array; returns ``(x, y, t, p)`` columns sorted by time.

    ``y`` is zeros for audio events (no ``y`` field); a single-polarity sensor (``P == 1``)
    maps every polarity to 0 and refuses events of two polarities (as tonic does).
    """
    W, H, P = check_sensor_size(sensor_size)
    names = getattr(getattr(events, "dtype", None), "names", None)
    if not isinstance(events, np.ndarray) or names is None or events.ndim != 1:
        raise TypeError(
            "events: expected a 1-D numpy structured array with fields x, t, p (and y), got "
            f"{type(events).__name__}" + (f" of dtype {events.dtype}" if isinstance(events, np.ndarray) else "")
        )
    missing = [n for n in ("x", "t", "p") if n not in names]
    if missing:
        raise ValueError(f"events: missing field(s) {missing}; expected x, t, p (and y), got {list(names)}")
    t = np.asarray(events["t"])
    if t.dtype.kind not in "iuf" or (t.size and not np.isfinite(t.astype(np.float64)).all()):
        raise ValueError(f"events: field 't' must hold finite numbers, got dtype {t.dtype}")
    order = np.argsort(t, kind="stable")
    ev = events[order]
    x = _field_ints("x", ev, W)
    y = _field_ints("y", ev, H) if "y" in names else np.zeros_like(x)
    p_raw = np.asarray(ev["p"]).astype(np.int64)
    if P == 1:
        if np.unique(p_raw).size > 1:
            raise ValueError("events: single-polarity sensor (P = 1) but the events hold two polarities")
        p = np.zeros_like(p_raw)
    else:
        p = _field_ints("p", ev, P)
    return x, y, t[order], p


def _bin_bounds(t: np.ndarray, T: int, overlap: float):
    """Start/end event index of each bin, computed as tonic's SliceByTimeBins does."""
    window = (t[-1] - t[0]) // T * (1 + overlap)
    stride = window * (1 - overlap)
    starts = np.arange(T) * stride + t[0]
    ends = starts + window
    return np.searchsorted(t, starts), np.searchsorted(t, ends)


def _check_overlap(overlap) -> float:
    if isinstance(overlap, bool) or not isinstance(overlap, Real) or not (0.0 <= float(overlap) < 1.0):
        raise ValueError(f"overlap: expected a number in [0, 1), got {overlap!r}")
    return float(overlap)


def to_frames(events, sensor_size, n_time_bins: int, *, overlap: float = 0.0, binary: bool = False) -> torch.Tensor:
    """Bin structured events into ``(T, P, H, W)`` float32 counts (``(T, P, W)`` without ``y``).

    Equal to ``tonic.transforms.ToFrame(sensor_size, n_time_bins=T, overlap=overlap)`` (module
    docstring); ``binary=True`` clips counts to 1.
    """
    T = check_int("n_time_bins", n_time_bins, ge=1)
    overlap = _check_overlap(overlap)
    if not isinstance(binary, bool):
        raise TypeError(f"binary: expected bool, got {type(binary).__name__}")
    x, y, t, p = check_events(events, sensor_size)
    W, H, P = sensor_size
    has_y = "y" in events.dtype.names
    shape = (T, P, H, W) if has_y else (T, P, W)
    if t.size == 0:
        return torch.zeros(shape)
    s, e = _bin_bounds(t, T, overlap)
    n = e - s
    win = np.repeat(np.arange(T), n)
    idx = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(s, n)
    flat = ((win * P + p[idx]) * H + y[idx]) * W + x[idx]
    counts = np.bincount(flat, minlength=T * P * H * W).astype(np.float32).reshape(shape)
    out = torch.from_numpy(counts)
    return out.clamp_(max=1.0) if binary else out

