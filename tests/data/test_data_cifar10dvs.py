"""CIFAR10-DVS reader on small files in the original AER-DAT 2.0 layout."""
import numpy as np
import pytest
import torch

from spikefuse.data import get_dataset
from spikefuse.data.cifar10dvs import CIFAR10DVS, CLASSES, read_cifar10dvs_aedat
from spikefuse.data.events import CorruptDatasetError, DatasetNotFoundError


def aedat_bytes(events, t0=1000):
    """events: (x, y, p, t_us) as the reader returns them; encoded as the camera wrote them."""
    out = bytearray(b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n")
    for x, y, p, t in events:
        addr = ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)
        out += int(addr).to_bytes(4, "big") + int(t + t0).to_bytes(4, "big")
    return bytes(out)


EVENTS = [(0, 0, 1, 0), (127, 5, 0, 40), (3, 127, 1, 100)]


def make_cifar(root, n_per_class=3):
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            (root / c / f"cifar10_{c}_{i}.aedat").write_bytes(aedat_bytes(EVENTS[: i + 1]))


def test_read_aedat_decoding(tmp_path):
    p = tmp_path / "a.aedat"
    p.write_bytes(aedat_bytes(EVENTS))
    ev = read_cifar10dvs_aedat(p)
    assert ev["x"].tolist() == [0, 127, 3] and ev["y"].tolist() == [0, 5, 127]
    assert ev["p"].tolist() == [1, 0, 1] and ev["t"].tolist() == [0, 40, 100]  # shifted to start at 0


def test_dataset_split_and_binning(tmp_path):
    make_cifar(tmp_path / "CIFAR10DVS")
    tr, te = (CIFAR10DVS(tmp_path, s, T=2, test_fraction=1 / 3) for s in ("train", "test"))
    assert len(tr) == 20 and len(te) == 10  # per class: round(2/3 * 3) = 2 train files, the last for test
    assert len(CIFAR10DVS(tmp_path, "test")) == 0  # default 0.1: round(0.9 * 3) = 3 train files per class
    assert sorted(set(tr.labels.tolist())) == list(range(10))
    x, y = te[0]
    assert x.shape == (2, 2, 128, 128) and y == 0 and x.sum() == 3
    # per-sample span 100 us, T = 2: k = floor(t * 2 / 100) clipped to 1 ([t, p, y, x])
    assert x[0, 1, 0, 0] == 1 and x[0, 0, 5, 127] == 1 and x[1, 1, 127, 3] == 1
    ds, info = get_dataset("cifar10dvs", "val", root=tmp_path, T=2, downsample=4)
    assert info.input_shape == (2, 32, 32) and info.n_classes == 10 and "val" in info.note


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="CIFAR10-DVS.*airplane"):
        CIFAR10DVS(tmp_path, "train")
    make_cifar(tmp_path)
    (tmp_path / "truck" / "cifar10_truck_0.aedat").write_bytes(aedat_bytes(EVENTS) + b"\x00" * 3)
    ds = CIFAR10DVS(tmp_path, "train", test_fraction=0.5)
    with pytest.raises(CorruptDatasetError, match="truck_0.aedat.*8-byte"):
        ds[ds.files.index(str(tmp_path / "truck" / "cifar10_truck_0.aedat"))]
    with pytest.raises(ValueError, match="test_fraction"):
        CIFAR10DVS(tmp_path, "train", test_fraction=1.5)
    with pytest.raises(ValueError, match="split"):
        CIFAR10DVS(tmp_path, "val")
    assert torch.is_tensor(ds.labels) and np.unique(ds.labels.numpy()).size == 10
