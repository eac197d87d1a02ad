"""Event-camera digits: the shipped 8x8 digits seen by a simulated event camera (no download).

Each of scikit-learn's 1797 digit images (see :mod:`~spikefuse.data.digits`) is placed on a
16 x 16 sensor and moved along three straight saccades (right, down-left, up-left: a closed
triangle, as N-MNIST moves its camera) in ``n_substeps`` sub-frames over ``duration_us``. The
simulated camera follows the DVS model: every pixel keeps a reference log intensity
``L_ref``; at each sub-frame with ``L = log(I + eps)`` it emits ``floor(|L - L_ref| / C)``
events of polarity 1 (ON, brighter) or 0 (OFF), moving ``L_ref`` by ``C`` per event. Event
times are the sub-frame's time plus a uniform jitter within the sub-frame; optional background
noise adds ``noise_rate`` random events per pixel per second.

Randomness (start offset of the path in whole pixels, jitter, noise) comes from
``numpy.random.default_rng([seed, index])``: the same ``seed`` gives the same events for every
sample, on every access and in every worker process.

Events use tonic's format (fields x, y, t in µs, p; :data:`~spikefuse.data.frames.EVENT_DTYPE`)
and ``sensor_size = (16, 16, 2)`` (W, H, P). Samples bin on access with
:func:`~spikefuse.data.frames.to_frames` (tonic's ``ToFrame(n_time_bins=T)``) into
``(T, 2, 16, 16)`` counts; the train/test split is :class:`~spikefuse.data.digits.Digits`'s
stratified split for the same ``split_seed``.

Example::

    >>> ds = EventDigits("test", T=8)
    >>> x, y = ds[0]
    >>> x.shape, ds.sensor_size, ds.events(0).dtype.names
    (torch.Size([8, 2, 16, 16]), (16, 16, 2), ('x', 'y', 't', 'p'))
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ._checks import check_flags, check_int, check_scalar
from .frames import EVENT_DTYPE, to_frames

__all__ = ["EventDigits", "simulate_event_camera", "digit_events", "SENSOR_SIZE"]

SENSOR_SIZE = (16, 16, 2)
_SACCADES = ((0.0, 0.0), (4.0, 0.0), (2.0, 4.0), (0.0, 0.0))  # (dx, dy) corners, pixels


def _render(img: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """Frames ``(S, size, size)``: ``img`` (h, w) at sub-pixel offsets ``(S, 2)`` (dx, dy) on black.

    Bilinear interpolation: canvas pixel (X, Y) reads the image at (X - dx, Y - dy).
    """
    h, w = img.shape
    grid = np.arange(size, dtype=np.float64)
    sx = grid[None, :] - offsets[:, :1]  # (S, size)
    sy = grid[None, :] - offsets[:, 1:]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = sx - x0, sy - y0
    out = np.zeros((len(offsets), size, size))
    for oy, wy in ((0, 1 - fy), (1, fy)):
        iy = y0 + oy
        for ox, wx in ((0, 1 - fx), (1, fx)):
            ix = x0 + ox
            ok = ((iy >= 0) & (iy < h))[:, :, None] & ((ix >= 0) & (ix < w))[:, None, :]
            v = img[np.clip(iy, 0, h - 1)[:, :, None], np.clip(ix, 0, w - 1)[:, None, :]]
            out += np.where(ok, v, 0.0) * wy[:, :, None] * wx[:, None, :]
    return out


def _path(n: int) -> np.ndarray:
    """``n`` (dx, dy) points along the closed saccade triangle, equally spaced in time."""
    corners = np.asarray(_SACCADES)
    s = np.linspace(0.0, len(corners) - 1, n)
    k = np.minimum(s.astype(int), len(corners) - 2)
    f = (s - k)[:, None]
    return corners[k] * (1 - f) + corners[k + 1] * f


def _floats(name: str, v) -> np.ndarray:
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected an array of numbers, got {type(v).__name__}") from e


def simulate_event_camera(frames, times_us, *, threshold: float = 0.25, eps: float = 0.1, rng=None) -> np.ndarray:
    """DVS events from intensity frames ``(S, H, W)`` at ``times_us`` (S,), sorted by time.

    The first frame sets the reference; see the module docstring for the model. Without ``rng``
    event times are the frame times (no jitter).
    """
    frames, times = _floats("frames", frames), _floats("times_us", times_us)
    if frames.ndim != 3 or times.shape != frames.shape[:1] or frames.shape[0] < 2:
        raise ValueError(f"frames, times_us: expected (S, H, W) with S >= 2 and (S,), got {frames.shape}, {times.shape}")
    threshold = check_scalar("threshold", threshold, gt=0)
    eps = check_scalar("eps", eps, gt=0)
    if frames.size and (not np.isfinite(frames).all() or frames.min() < 0):
        raise ValueError("frames: intensities must be finite and >= 0")
    logs = np.log(frames + eps)
    ref = logs[0].copy()
    counts = np.zeros((len(frames) - 1,) + frames.shape[1:], dtype=np.int64)
    on = np.zeros(counts.shape, dtype=bool)
    for k in range(1, len(frames)):
        d = logs[k] - ref
        counts[k - 1] = np.floor(np.abs(d) / threshold)
        on[k - 1] = d > 0
        ref += np.sign(d) * counts[k - 1] * threshold
    kk, yy, xx = np.nonzero(counts)
    cnt = counts[kk, yy, xx]
    kk = np.repeat(kk, cnt)
    dt = np.diff(times)[kk]
    t = times[kk] + (rng.random(kk.size) * dt if rng is not None else dt)
    x, y, p = np.repeat(xx, cnt), np.repeat(yy, cnt), np.repeat(on[counts > 0], cnt)
    order = np.argsort(t, kind="stable")
    ev = np.empty(t.size, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x[order], y[order], np.floor(t[order]), p[order]
    return ev


def digit_events(image, rng, *, n_substeps: int = 48, duration_us: int = 300_000,
                 threshold: float = 0.25, noise_rate: float = 0.0) -> np.ndarray:
    """Events of one 8x8 image in ``[0, 1]`` moved along the saccades (module docstring)."""
    img = np.asarray(image, dtype=np.float64).reshape(8, 8)
    W, H, _ = SENSOR_SIZE
    start = rng.integers(0, 3, size=2)  # whole-pixel start offset: the path stays on the sensor
    frames = _render(img, _path(n_substeps) + start[None, :], W)
    times = np.linspace(0.0, float(duration_us), n_substeps)
    ev = simulate_event_camera(frames, times, threshold=threshold, rng=rng)
    n_noise = rng.poisson(noise_rate * W * H * duration_us * 1e-6) if noise_rate > 0 else 0
    if n_noise:
        noise = np.empty(n_noise, dtype=EVENT_DTYPE)
        noise["x"], noise["y"] = rng.integers(0, W, n_noise), rng.integers(0, H, n_noise)
        noise["t"], noise["p"] = rng.integers(0, duration_us, n_noise), rng.integers(0, 2, n_noise)
        ev = np.concatenate([ev, noise])
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


class EventDigits(Dataset):
    """The event-camera digits: ``((T, 2, 16, 16) counts, digit)``; splits train/test/all.

    Args: ``split``; ``T`` time bins (tonic ``ToFrame(n_time_bins=T)``); ``seed`` of the camera
    randomness; ``split_seed``/``test_fraction`` of the digit split (as :class:`Digits`);
    ``n_substeps``, ``duration_us``, ``threshold`` (log-intensity contrast C), ``noise_rate``
    (events per pixel per second); ``binary``; ``flatten`` (``(T, 512)``); ``transform``.
    ``events(i)`` gives the raw structured events, ``sensor_size`` is ``(16, 16, 2)``.
    """

    sensor_size = SENSOR_SIZE
    n_classes = 10

    def __init__(self, split: str = "train", *, T: int = 8, seed: int = 0, split_seed: int = 0,
                 test_fraction: float = 0.2, n_substeps: int = 48, duration_us: int = 300_000,
                 threshold: float = 0.25, noise_rate: float = 0.0, binary: bool = False,
                 flatten: bool = False, transform=None) -> None:
        from .digits import Digits

        super().__init__()
        self.T = check_int("T", T, ge=1)
        self.seed = check_int("seed", seed, ge=0)
        self.n_substeps = check_int("n_substeps", n_substeps, ge=2)
        self.duration_us = check_int("duration_us", duration_us, ge=1)
        self.threshold = check_scalar("threshold", threshold, gt=0)
        self.noise_rate = check_scalar("noise_rate", noise_rate, ge=0)
        check_int("split_seed", split_seed, ge=0)
        check_flags(transform, binary=binary, flatten=flatten)
        self.binary, self.flatten, self.transform = binary, flatten, transform
        base = Digits(split, seed=split_seed, test_fraction=test_fraction)
        self.images, self.labels = base.features.numpy(), base.labels.clone()
        self.frame_shape = (2, SENSOR_SIZE[1], SENSOR_SIZE[0])
        self.n_inputs = int(np.prod(self.frame_shape))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def events(self, index: int) -> np.ndarray:
        """Structured events (x, y, t in µs, p) of sample ``index``; the same on every call."""
        index = int(index)
        rng = np.random.default_rng([self.seed, index])
        return digit_events(self.images[index], rng, n_substeps=self.n_substeps, duration_us=self.duration_us,
                            threshold=self.threshold, noise_rate=self.noise_rate)

    def __getitem__(self, index: int):
        n = len(self)
        i = int(index) + (n if int(index) < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index: {index} out of range for {n} samples")
        x = to_frames(self.events(i), SENSOR_SIZE, self.T, binary=self.binary)
        if self.flatten:
            x = x.reshape(self.T, -1)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])
