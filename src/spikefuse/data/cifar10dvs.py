"""CIFAR10-DVS (Li et al. 2017) from local copies of its original ``.aedat`` recordings.

Files: the ten per-class archives ``airplane.zip`` .. ``truck.zip`` of the CIFAR10-DVS figshare
record (linked from the paper, "CIFAR10-DVS: an event-stream dataset for object
classification"), extracted into ``root`` as ``<class>/*.aedat`` (or ``root/CIFAR10DVS/<class>/``).
Classes, in label order: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck.

Format (AER-DAT 2.0): text header lines starting with ``#``, then pairs of big-endian uint32
``(address, timestamp in µs)``. From the address: ``p = 1 - (a & 1)``,
``x = 127 - ((a >> 8) & 0x7F)``, ``y = 127 - ((a >> 1) & 0x7F)`` (the DVS128 sensor, mirrored
to the upright image). Timestamps are shifted so that each recording starts at 0.

Split: the data set has no official one. ``train`` is the first 90 % (``round(0.9 * n)``) of each
class's files in sorted order, ``test`` the rest (the 9:1 per-class convention of the SNN
literature); ``test_fraction`` changes the ratio.

tonic's re-encoded ``.aedat4`` copy needs tonic's ``aedat`` decoder: pass
``tonic.datasets.CIFAR10DVS(...)`` to :class:`spikefuse.data.stream.EventStream` instead.

Example::

    ds = CIFAR10DVS("data", "train", T=10, downsample=4)
    x, y = ds[0]               # x: (10, 2, 32, 32)
"""
from __future__ import annotations

import os

import numpy as np

from ._limits import check_file_size
from .events import CorruptDatasetError, DatasetNotFoundError, _CameraBase, _hidden, _structured

__all__ = ["CIFAR10DVS", "read_cifar10dvs_aedat", "CLASSES"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_MAX_HEADER = 1 << 20


def _data_start(path: str, fh) -> int:
    """Offset of the first event: after the ``#`` header lines."""
    pos = 0
    while True:
        line = fh.readline(_MAX_HEADER)
        if not line.startswith(b"#"):
            return pos
        pos += len(line)
        if pos > _MAX_HEADER:
            raise CorruptDatasetError(f"{path}: header longer than {_MAX_HEADER} bytes; not an .aedat file")


def read_cifar10dvs_aedat(path) -> np.ndarray:
    """Read one CIFAR10-DVS ``.aedat`` file into structured events x, y, p, t (µs from 0).

    Raises :class:`~spikefuse.data.events.CorruptDatasetError` for an event section that is not
    a whole number of 8-byte events or a file above the size limit (:mod:`._limits`).
    """
    path = os.fspath(path)
    size = check_file_size(path)
    with open(path, "rb") as fh:
        start = _data_start(path, fh)
        if (size - start) % 8:
            raise CorruptDatasetError(
                f"{path}: {size - start} event bytes is not a whole number of 8-byte AER-DAT 2.0 "
                "events (truncated or corrupt file - extract it again)"
            )
        fh.seek(start)
        raw = np.frombuffer(fh.read(), dtype=">u4").reshape(-1, 2).astype(np.int64)
    a, t = raw[:, 0], raw[:, 1]
    x = 127 - ((a >> 8) & 0x7F)
    y = 127 - ((a >> 1) & 0x7F)
    p = 1 - (a & 1)
    t = (t - t[0]) if t.size else t
    if t.size and t.min() < 0:
        raise CorruptDatasetError(f"{path}: timestamps go backwards past the first event; corrupt file")
    return _structured(x, y, p, t.astype(np.float64))


class CIFAR10DVS(_CameraBase):
    """CIFAR10-DVS as ``((T, 2, H, W) counts, label 0..9)``; splits train/test (module docstring).

    Same arguments as :class:`~spikefuse.data.events.NMNIST`, plus ``test_fraction`` (0.1);
    ``H = W = 128 / downsample``.
    """

    name = "CIFAR10-DVS"
    sensor = (128, 128)
    sensor_size = (128, 128, 2)
    n_classes = 10
    folders = {"train": "", "test": ""}
    tonic_dir = "CIFAR10DVS"
    ext = ".aedat"
    _how = (
        "Download airplane.zip .. truck.zip from the CIFAR10-DVS figshare record (linked from Li et "
        "al. 2017, 'CIFAR10-DVS: an event-stream dataset for object classification') and extract them "
        "into root, giving root/<class>/*.aedat"
    )

    def __init__(self, root, split: str = "train", *, test_fraction: float = 0.1, **kw) -> None:
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
            0.0 < test_fraction < 1.0
        ):
            raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
        self.test_fraction = float(test_fraction)
        super().__init__(root, split, **kw)

    def _find(self, root: str, sub: str) -> str:
        for cand in (root, os.path.join(root, self.tonic_dir)):
            if os.path.isdir(cand) and any(os.path.isdir(os.path.join(cand, c)) for c in CLASSES):
                return cand
        raise DatasetNotFoundError(
            f"{self.name} not found: no class folders ({', '.join(CLASSES[:2])}, ...) in {root} nor in "
            f"{os.path.join(root, self.tonic_dir)}. {self._how} (or pass root=<folder holding them>; "
            "on the command line: spikefuse train --data-root <folder>)."
        )

    def _index(self, folder: str):
        files, labels = [], []
        for label, cls in enumerate(CLASSES):
            sub = os.path.join(folder, cls)
            names = sorted(f for f in os.listdir(sub) if f.endswith(".aedat") and not _hidden(f)) if (
                os.path.isdir(sub)
            ) else []
            if not names:
                raise DatasetNotFoundError(f"{sub} holds no *.aedat files. {self._how}.")
            n_train = int(round((1.0 - self.test_fraction) * len(names)))
            chosen = names[:n_train] if self.split == "train" else names[n_train:]
            files += [os.path.join(sub, f) for f in chosen]
            labels += [label] * len(chosen)
        return files, labels

    def _read(self, path: str) -> np.ndarray:
        return read_cifar10dvs_aedat(path)
