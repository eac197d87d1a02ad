"""Loaders for local copies of standard event datasets, binned into time-first frames.

Nothing is downloaded: every loader reads files you put on disk and, when they are missing,
raises :class:`DatasetNotFoundError` (a ``FileNotFoundError``) saying what to download, from
where, and where to put it. Truncated or malformed files raise :class:`CorruptDatasetError`
(a ``ValueError``) naming the file; a dataset is never half-loaded.

Datasets and the file layouts read
----------------------------------
**SHD / SSC** (Spiking Heidelberg Digits / Spiking Speech Commands, Cramer et al. 2020) — the
HDF5 files of the Heidelberg spiking data sets page of the Zenke lab (zenkelab.org, "Datasets"),
gunzipped, in ``root``: ``shd_train.h5``, ``shd_test.h5``; ``ssc_train.h5``, ``ssc_valid.h5``,
``ssc_test.h5``. Layout: ``/spikes/times`` (variable-length float arrays, seconds),
``/spikes/units`` (variable-length int arrays, channel 0..699), ``/labels`` (int). 700 channels;
20 classes (SHD) or 35 (SSC). A sample becomes ``(T, 700)``.

**N-MNIST** (Orchard et al. 2015) — the ``Train.zip``/``Test.zip`` of Garrick Orchard's N-MNIST
page (garrickorchard.com, "Datasets"), extracted into ``root`` as ``Train/<digit>/*.bin`` and
``Test/<digit>/*.bin`` (tonic's cache ``<root>/NMNIST/Train/...`` is found too). Each event is
40 bits, big-endian: byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity, the remaining 23 bits =
timestamp in microseconds. An event with ``y == 240`` is a timestamp-overflow marker: it adds
``2**13`` µs to all later timestamps and is not an event. Sensor 34 x 34, 2 polarities, 10
classes. A sample becomes ``(T, 2, 34, 34)``.

**DVS128 Gesture** (Amir et al. 2017) — the preprocessed ``ibmGestureTrain.tar.gz`` /
``ibmGestureTest.tar.gz`` that tonic uses (derived from the DVS128 Gesture data set of IBM
Research's page "DVS128 Gesture Dataset"), extracted into ``root`` as
``ibmGestureTrain/<user_lighting>/<label>.npy`` and ``ibmGestureTest/...`` (tonic's cache
``<root>/DVSGesture/ibmGestureTrain/...`` is found too). Each ``.npy`` holds one gesture as
either a plain ``(N, 4)`` numeric array with columns ``x, y, p, t`` and ``t`` in
**milliseconds** (the layout of those archives and of tonic's cache), or a structured array with
fields ``x, y, p, t`` and ``t`` in **microseconds** (tonic's in-memory event format, e.g. saved
with ``np.save``). The label is the file name (``0.npy`` .. ``10.npy``). Sensor 128 x 128,
2 polarities, 11 classes. A sample becomes ``(T, 2, 128 / downsample, 128 / downsample)``.

Binning (all loaders, see :func:`bin_events`)
--------------------------------------------
With ``max_time`` (seconds) the window is ``[0, max_time)`` and an event at time ``t`` goes to
step ``floor(t * T / max_time)``; later events are dropped. With ``max_time=None`` the window is
the sample's own span: ``k = floor((t - t_first) * T / (t_last - t_first))``, clipped to
``T - 1`` so the last event lands in the last step. A frame holds event **counts** per
(step, channel) (``binary=True`` clips them to 1), as float32. Frames are indexed
``[t, polarity, y, x]`` for the cameras; ``flatten=True`` gives ``(T, 2 * H * W)`` instead.
Batches collate to ``(T, B, ...)`` with ``spikefuse.data.collate_time_first``.

Example (with SHD files in ``./data``)::

    ds = SHD("./data", "train", T=100, max_time=1.4)
    frames, label = ds[0]          # frames: (100, 700)
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validate import check_choice, check_number
from ._checks import check_flags
from ._checks import check_int as _check_int
from ._hdf5 import check_heidelberg_layout
from ._limits import MAX_EVENTS_PER_SAMPLE, check_file_size

__all__ = [
    "DatasetNotFoundError",
    "CorruptDatasetError",
    "bin_events",
    "read_nmnist_bin",
    "read_gesture_npy",
    "SHD",
    "SSC",
    "NMNIST",
    "DVSGesture",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file or folder is missing; the message says what to download and where to put it."""


class CorruptDatasetError(ValueError):
    """A dataset file is truncated or malformed; the message names the file."""


# --------------------------------------------------------------------------- binning
def bin_events(
    times,
    channels,
    n_channels: int,
    T: int,
    *,
    duration: Optional[float] = None,
    binary: bool = False,
) -> torch.Tensor:
    """Bin events ``(times, channels)`` into a ``(T, n_channels)`` float32 count raster.

    Args:
        times: 1-D array of event times (any unit, >= 0 when ``duration`` is given).
        channels: 1-D int array, same length, values in ``[0, n_channels)``.
        n_channels: number of channels.
        T: number of time steps.
        duration: window length in the unit of ``times``: step ``floor(t * T / duration)``,
            events at ``t >= duration`` dropped. ``None``: the sample's own span (module doc).
        binary: clip counts to 1.

    Example::

        >>> bin_events([0.0, 0.1, 0.1, 0.75], [0, 1, 1, 0], 2, T=4, duration=1.0)
        tensor([[1., 2.],
                [0., 0.],
                [0., 0.],
                [1., 0.]])
    """
    T = _check_int("T", T, ge=1)
    n_channels = _check_int("n_channels", n_channels, ge=1)
    check_flags(binary=binary)
    try:
        t = np.asarray(times, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise TypeError(f"times: expected an array of numbers, got {type(times).__name__}") from e
    c = np.asarray(channels).reshape(-1)
    if t.shape != c.shape:
        raise ValueError(f"channels: expected {t.shape[0]} entries like times, got {c.shape[0]}")
    if c.size and (c.min() < 0 or c.max() >= n_channels):
        raise ValueError(f"channels: values must lie in [0, {n_channels}), got [{c.min()}, {c.max()}]")
    if t.size and not np.isfinite(t).all():
        raise ValueError("times: contains NaN or inf")
    if duration is not None:
        check_number("duration", duration, gt=0)
        k = np.floor(t * T / float(duration))
        keep = (k >= 0) & (k < T)
        k, c = k[keep], c[keep]
    elif t.size:
        t0, span = t.min(), t.max() - t.min()
        k = np.zeros_like(t) if span == 0 else np.minimum(np.floor((t - t0) * T / span), T - 1)
    else:
        k = t
    flat = k.astype(np.int64) * n_channels + c.astype(np.int64)
    counts = np.bincount(flat, minlength=T * n_channels).astype(np.float32)
    out = torch.from_numpy(counts.reshape(T, n_channels))
    return out.clamp_(max=1.0) if binary else out


# --------------------------------------------------------------------------- common helpers
def _check_common(T, max_time, binary, transform):
    T = _check_int("T", T, ge=1)
    if max_time is not None:
        check_number("max_time", max_time, gt=0)
        max_time = float(max_time)
    if not isinstance(binary, bool):
        raise TypeError(f"binary: expected bool, got {type(binary).__name__}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
    return T, max_time


def _check_index(index, n: int) -> int:
    """A sample index as an int in ``[0, n)`` (negative counts from the end); IndexError outside."""
    index = int(index)
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for {n} samples")
    return index


def _check_root(root) -> str:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root: expected a path (str or os.PathLike), got {type(root).__name__}")
    return os.fspath(root)


# --------------------------------------------------------------------------- SHD / SSC
class _HeidelbergBase(Dataset):
    name = ""
    n_inputs = 700
    sensor_size = (700, 1, 1)  # tonic's (W, H, P) for spikefuse.data.stream.EventStream
    n_classes = 0
    files: dict = {}
    _how = ""

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        T: int = 100,
        max_time: Optional[float] = 1.4,
        binary: bool = False,
        preload: bool = False,
        transform=None,
    ) -> None:
        super().__init__()
        root = _check_root(root)
        split = {"validation": "val", "valid": "val"}.get(split, split) if isinstance(split, str) else split
        check_choice("split", split, list(self.files))
        self.T, self.max_time = _check_common(T, max_time, binary, transform)
        if not isinstance(preload, bool):
            raise TypeError(f"preload: expected bool, got {type(preload).__name__}")
        self.binary = binary
        self.transform = transform
        self.split = split
        self.path = os.path.join(root, self.files[split])
        self._file = None
        self._pid = None
        if not os.path.isfile(self.path):
            gz = self.path + ".gz"
            hint = (
                f" Found {gz}: decompress it first (`gunzip {gz}`)." if os.path.isfile(gz) else ""
            )
            raise DatasetNotFoundError(
                f"{self.name} {split} split not found at {self.path}.{hint} Download "
                f"{self.files[split]}.gz from the Heidelberg spiking data sets page of the Zenke lab "
                f"(zenkelab.org, 'Datasets'; {self._how}), gunzip it and put {self.files[split]} in "
                f"{root} (or pass root=<folder holding it>; on the command line: spikefuse train --data-root <folder>)."
            )
        try:
            import h5py  # noqa: F401
        except ImportError as e:  # pragma: no cover
            raise ImportError(
                "reading SHD/SSC needs h5py, an optional dependency: pip install -e \".[data]\" from the spikefuse checkout"
            ) from e
        f = self._open()
        try:
            self.labels, self._lengths = self._check_layout(f)
            self._cache = None
            if preload:
                self._cache = [self._read(i, f) for i in range(len(self.labels))]
        finally:
            self._close()

    def _check_layout(self, f):
        """Labels and per-sample event counts, every declared size checked before reading."""
        import h5py

        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise CorruptDatasetError(
                    f"{self.path}: not an {self.name} file: missing dataset /{key} "
                    "(expected /spikes/times, /spikes/units, /labels)"
                )
        n, lengths = check_heidelberg_layout(self.path, f)
        try:
            labels = np.asarray(f["labels"][()])
        except Exception as e:
            raise CorruptDatasetError(f"{self.path}: cannot read /labels ({e}); the file is corrupt") from e
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise CorruptDatasetError(f"{self.path}: /labels must be a 1-D int array, got {labels.dtype} {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise CorruptDatasetError(
                f"{self.path}: labels must lie in [0, {self.n_classes}) for {self.name}, got "
                f"[{labels.min()}, {labels.max()}]"
            )
        return torch.from_numpy(labels.astype(np.int64)), lengths

    # h5py handles are per process: open lazily (DataLoader workers fork)
    def _open(self):
        import h5py

        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as e:
                raise CorruptDatasetError(
                    f"{self.path}: cannot open as HDF5 ({e}); the file is truncated or corrupt - "
                    "download it again"
                ) from e
            self._pid = os.getpid()
        return self._file

    def _close(self):
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # pragma: no cover
                pass
        self._file = None

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_file"] = None
        return st

    def _read(self, i: int, f=None):
        f = f if f is not None else self._open()
        if self._lengths is not None and self._lengths[0][i] != self._lengths[1][i]:
            raise CorruptDatasetError(
                f"{self.path}: sample {i} has {self._lengths[0][i]} spike times but "
                f"{self._lengths[1][i]} units (corrupt file)"
            )
        try:
            t = np.asarray(f["spikes/times"][i], dtype=np.float64)
            u = np.asarray(f["spikes/units"][i])
        except Exception as e:
            raise CorruptDatasetError(f"{self.path}: cannot read sample {i} ({e}); the file is corrupt") from e
        if t.shape != u.shape or t.ndim != 1:
            raise CorruptDatasetError(
                f"{self.path}: sample {i} has {t.size} spike times but {u.size} units (corrupt file)"
            )
        if u.size and (not np.issubdtype(u.dtype, np.integer) or u.min() < 0 or u.max() >= self.n_inputs):
            raise CorruptDatasetError(f"{self.path}: sample {i} has unit ids outside [0, {self.n_inputs})")
        if t.size and (not np.isfinite(t).all() or t.min() < 0):
            raise CorruptDatasetError(f"{self.path}: sample {i} has negative or non-finite spike times")
        return t, u.astype(np.int64)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def events(self, index: int):
        """Raw ``(times in s, units)`` numpy arrays of one sample."""
        if self._cache is not None:
            return self._cache[index]
        return self._read(int(index))

    def __getitem__(self, index: int):
        index = _check_index(index, len(self))
        t, u = self.events(index)
        x = bin_events(t, u, self.n_inputs, self.T, duration=self.max_time, binary=self.binary)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])


class SHD(_HeidelbergBase):
    """Spiking Heidelberg Digits: ``((T, 700) counts, label in 0..19)``; splits train/test.

    Args: ``root`` (folder with ``shd_train.h5``/``shd_test.h5``), ``split``, ``T`` steps,
    ``max_time`` window in seconds (default 1.4; ``None`` = per-sample span), ``binary``,
    ``preload`` (read and check every sample now), ``transform``.

    Example::

        ds = SHD("data", "test", T=50)
        x, y = ds[0]               # x: (50, 700)
    """

    name = "SHD"
    n_classes = 20
    files = {"train": "shd_train.h5", "test": "shd_test.h5"}
    _how = "files shd_train.h5.gz and shd_test.h5.gz"


class SSC(_HeidelbergBase):
    """Spiking Speech Commands: ``((T, 700) counts, label in 0..34)``; splits train/val/test.

    Same arguments as :class:`SHD`; files ``ssc_train.h5``, ``ssc_valid.h5``, ``ssc_test.h5``.
    """

    name = "SSC"
    n_classes = 35
    files = {"train": "ssc_train.h5", "val": "ssc_valid.h5", "test": "ssc_test.h5"}
    _how = "files ssc_train.h5.gz, ssc_valid.h5.gz and ssc_test.h5.gz"


# --------------------------------------------------------------------------- camera datasets
def _structured(x, y, p, t):
    ev = np.empty(len(x), dtype=[("x", np.int64), ("y", np.int64), ("p", np.int64), ("t", np.float64)])
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
    return ev


def read_nmnist_bin(path) -> np.ndarray:
    """Read one N-MNIST ``.bin`` file into a structured array with fields x, y, p, t (µs).

    Overflow markers (``y == 240``) advance the timestamps of all later events by ``2**13`` µs
    and are removed. Raises :class:`CorruptDatasetError` if the file size is not a multiple of
    5 bytes (truncated) or an address lies outside the 34 x 34 sensor.

    Example::

        ev = read_nmnist_bin("data/Train/3/00001.bin")
        ev["x"], ev["t"]
    """
    path = os.fspath(path)
    check_file_size(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise CorruptDatasetError(
            f"{path}: {raw.size} bytes is not a whole number of 5-byte N-MNIST events "
            "(truncated or corrupt file - extract it again)"
        )
    r = raw.reshape(-1, 5).astype(np.int64)
    x, y = r[:, 0], r[:, 1]
    p = r[:, 2] >> 7
    t = ((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]
    overflow = y == 240
    t = t + (np.cumsum(overflow) << 13)
    keep = ~overflow
    x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    if x.size and (x.max() >= 34 or y.max() >= 34):
        raise CorruptDatasetError(
            f"{path}: event address outside the 34 x 34 sensor (x max {x.max()}, y max {y.max()}); "
            "not an N-MNIST file or corrupt"
        )
    return _structured(x, y, p, t.astype(np.float64))


def read_gesture_npy(path) -> np.ndarray:
    """Read one DVS128 Gesture ``.npy`` (tonic layout) into a structured array x, y, p, t (µs).

    A plain ``(N, 4)`` array has columns x, y, p, t with t in milliseconds; a structured array
    has fields x, y, p, t with t in microseconds (module docstring). Raises
    :class:`CorruptDatasetError` on unreadable/truncated files, other shapes, or addresses
    outside the 128 x 128 sensor.

    Example::

        ev = read_gesture_npy("data/ibmGestureTrain/user01_fluorescent/0.npy")
    """
    path = os.fspath(path)
    check_file_size(path)
    shape, _ = _npy_header(path)  # declared shape checked against the real size before loading
    if shape and shape[0] > MAX_EVENTS_PER_SAMPLE:
        raise CorruptDatasetError(f"{path}: declares {shape[0]} events, above the limit {MAX_EVENTS_PER_SAMPLE}")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:
        raise CorruptDatasetError(f"{path}: cannot read as .npy ({e}); truncated or corrupt file") from e
    if a.dtype.names is not None:
        missing = [n for n in ("x", "y", "p", "t") if n not in a.dtype.names]
        if missing or a.ndim != 1:
            raise CorruptDatasetError(
                f"{path}: structured events need fields x, y, p, t in a 1-D array, got fields "
                f"{a.dtype.names} and shape {a.shape}"
            )
        x, y, p, t = (np.asarray(a[n]) for n in ("x", "y", "p", "t"))
        t = t.astype(np.float64)
    else:
        if a.ndim != 2 or a.shape[1] != 4 or not np.issubdtype(a.dtype, np.number):
            raise CorruptDatasetError(
                f"{path}: expected an (N, 4) numeric array with columns x, y, p, t (ms), got "
                f"dtype {a.dtype} and shape {a.shape}"
            )
        x, y, p = a[:, 0], a[:, 1], a[:, 2]
        t = a[:, 3].astype(np.float64) * 1000.0
    cols = []
    for name, v in (("x", x), ("y", y), ("p", p)):
        vf = np.asarray(v, dtype=np.float64)
        if vf.size and (not np.isfinite(vf).all() or (vf != np.floor(vf)).any()):
            raise CorruptDatasetError(f"{path}: column {name} must hold integers")
        cols.append(vf.astype(np.int64))
    x, y, p = cols
    if x.size and (x.min() < 0 or y.min() < 0 or x.max() >= 128 or y.max() >= 128):
        raise CorruptDatasetError(f"{path}: event address outside the 128 x 128 sensor")
    if p.size and ((p < 0) | (p > 1)).any():
        raise CorruptDatasetError(f"{path}: polarity must be 0 or 1")
    if t.size and (not np.isfinite(t).all() or t.min() < 0):
        raise CorruptDatasetError(f"{path}: timestamps must be finite and >= 0")
    return _structured(x, y, p, t)


def _hidden(name: str) -> bool:
    """Hidden or system entries that archives and file managers leave beside the data
    (``.DS_Store``, ``._0.npy`` resource forks, ``__MACOSX``): skipped when a folder is indexed."""
    return name.startswith(".") or name == "__MACOSX"


def _npy_header(path: str):
    """Shape and structured-ness of a .npy file from its header; checks the size (truncation)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except Exception as e:
        raise CorruptDatasetError(f"{path}: not a readable .npy file ({e}); corrupt - extract again") from e
    if dtype.hasobject:
        raise CorruptDatasetError(f"{path}: object arrays are not event files")
    expected = offset + math.prod(int(d) for d in shape) * dtype.itemsize  # Python ints: no overflow
    size = os.path.getsize(path)
    if size < expected:
        raise CorruptDatasetError(
            f"{path}: truncated .npy file ({size} bytes, header promises {expected}); extract again"
        )
    return tuple(shape), dtype.names is not None


class _CameraBase(Dataset):
    name = ""
    sensor = (0, 0)  # (H, W)
    sensor_size = (0, 0, 0)  # tonic's (W, H, P) for spikefuse.data.stream.EventStream
    n_classes = 0
    folders: dict = {}
    tonic_dir = ""
    ext = ""
    _how = ""

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        T: int = 30,
        max_time: Optional[float] = None,
        binary: bool = False,
        downsample: int = 1,
        flatten: bool = False,
        transform=None,
    ) -> None:
        super().__init__()
        root = _check_root(root)
        check_choice("split", split, list(self.folders))
        self.T, self.max_time = _check_common(T, max_time, binary, transform)
        self.downsample = _check_int("downsample", downsample, ge=1)
        if not isinstance(flatten, bool):
            raise TypeError(f"flatten: expected bool, got {type(flatten).__name__}")
        self.binary, self.flatten, self.transform, self.split = binary, flatten, transform, split
        H, W = self.sensor
        k = self.downsample
        self.frame_shape = (2, -(-H // k), -(-W // k))
        self.n_inputs = int(np.prod(self.frame_shape))
        folder = self._find(root, self.folders[split])
        self.files, labels = self._index(folder)
        self.labels = torch.tensor(labels, dtype=torch.int64)

    def _find(self, root: str, sub: str) -> str:
        for cand in (os.path.join(root, sub), os.path.join(root, self.tonic_dir, sub)):
            if os.path.isdir(cand):
                return cand
        raise DatasetNotFoundError(
            f"{self.name} {self.split} split not found: no folder {os.path.join(root, sub)} "
            f"(nor {os.path.join(root, self.tonic_dir, sub)}). {self._how} "
            f"(or pass root=<folder holding {sub}/>; on the command line: spikefuse train --data-root <folder>)."
        )

    def _index(self, folder: str):  # pragma: no cover - overridden
        raise NotImplementedError

    def _read(self, path: str) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.files)

    def events(self, index: int) -> np.ndarray:
        """Structured events (x, y, p, t in µs) of one sample."""
        return self._read(self.files[int(index)])

    def __getitem__(self, index: int):
        index = _check_index(index, len(self))
        ev = self.events(index)
        _, h, w = self.frame_shape
        k = self.downsample
        ch = ev["p"] * (h * w) + (ev["y"] // k) * w + (ev["x"] // k)
        dur = None if self.max_time is None else self.max_time * 1e6
        x = bin_events(ev["t"], ch, self.n_inputs, self.T, duration=dur, binary=self.binary)
        if not self.flatten:
            x = x.reshape(self.T, *self.frame_shape)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index])


class NMNIST(_CameraBase):
    """N-MNIST as ``((T, 2, 34, 34) counts, digit)``; splits train/test (module docstring).

    Args: ``root`` (folder holding ``Train/`` and ``Test/``), ``split``, ``T`` steps,
    ``max_time`` window in seconds (``None`` = per-sample span), ``binary``, ``downsample``
    (spatial pooling factor: x // k, y // k), ``flatten`` (``(T, 2*H*W)``), ``transform``.
    File sizes are checked when the dataset is built (truncated files are reported then).

    Example::

        ds = NMNIST("data", "train", T=30)
        x, y = ds[0]               # x: (30, 2, 34, 34)
    """

    name = "N-MNIST"
    sensor = (34, 34)
    sensor_size = (34, 34, 2)
    n_classes = 10
    folders = {"train": "Train", "test": "Test"}
    tonic_dir = "NMNIST"
    ext = ".bin"
    _how = (
        "Download Train.zip and Test.zip from Garrick Orchard's N-MNIST page "
        "(garrickorchard.com, 'Datasets') and extract them into root, giving root/Train/<digit>/*.bin "
        "and root/Test/<digit>/*.bin"
    )

    def _index(self, folder: str):
        files, labels, bad = [], [], []
        for d in sorted(os.listdir(folder)):
            sub = os.path.join(folder, d)
            if not os.path.isdir(sub) or _hidden(d):
                continue
            if not (d.isdigit() and 0 <= int(d) <= 9):
                raise CorruptDatasetError(f"{sub}: unexpected folder; N-MNIST class folders are 0..9")
            for fn in sorted(os.listdir(sub)):
                if fn.endswith(".bin") and not _hidden(fn):
                    path = os.path.join(sub, fn)
                    if os.path.getsize(path) % 5:
                        bad.append(path)
                    files.append(path)
                    labels.append(int(d))
        if bad:
            raise CorruptDatasetError(
                f"{len(bad)} N-MNIST file(s) are truncated (size not a multiple of 5 bytes), e.g. "
                f"{bad[0]}; extract the archive again"
            )
        if not files:
            raise DatasetNotFoundError(f"{folder} holds no <digit>/*.bin files. {self._how}.")
        return files, labels

    def _read(self, path: str) -> np.ndarray:
        return read_nmnist_bin(path)


class DVSGesture(_CameraBase):
    """DVS128 Gesture as ``((T, 2, H, W) counts, label 0..10)``; splits train/test.

    Same arguments as :class:`NMNIST`; ``H = W = 128 / downsample`` (e.g. ``downsample=4`` for
    32 x 32). Every file's header is checked when the dataset is built (truncated or foreign
    files are reported then); event values are checked on access.

    Example::

        ds = DVSGesture("data", "test", T=20, downsample=4)
        x, y = ds[0]               # x: (20, 2, 32, 32)
    """

    name = "DVS128 Gesture"
    sensor = (128, 128)
    sensor_size = (128, 128, 2)
    n_classes = 11
    folders = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
    tonic_dir = "DVSGesture"
    ext = ".npy"
    _how = (
        "Download ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz (the preprocessed DVS128 Gesture "
        "archives used by the tonic library, hosted on the neuromorphic-vision.com downloads page; "
        "the original recordings are on IBM Research's 'DVS128 Gesture Dataset' page) and extract "
        "them into root, giving root/ibmGestureTrain/<user>/<label>.npy"
    )

    def _index(self, folder: str):
        files, labels = [], []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for fn in sorted(filenames):
                if not fn.endswith(".npy") or _hidden(fn):
                    continue
                path = os.path.join(dirpath, fn)
                stem = fn[:-4]
                if not (stem.isdigit() and 0 <= int(stem) < self.n_classes):
                    raise CorruptDatasetError(
                        f"{path}: DVS Gesture files are named by their label 0.npy .. 10.npy"
                    )
                shape, is_struct = _npy_header(path)
                ok = (is_struct and len(shape) == 1) or (not is_struct and len(shape) == 2 and shape[1] == 4)
                if not ok:
                    raise CorruptDatasetError(
                        f"{path}: expected (N, 4) x, y, p, t events or a 1-D structured event "
                        f"array, got shape {shape}"
                    )
                files.append(path)
                labels.append(int(stem))
        if not files:
            raise DatasetNotFoundError(f"{folder} holds no <user>/<label>.npy files. {self._how}.")
        return files, labels

    def _read(self, path: str) -> np.ndarray:
        return read_gesture_npy(path)
