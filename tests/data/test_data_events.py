import os

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikefuse.data import collate_time_first
from spikefuse.data.events import (
    NMNIST,
    SHD,
    SSC,
    CorruptDatasetError,
    DatasetNotFoundError,
    DVSGesture,
    bin_events,
    read_gesture_npy,
    read_nmnist_bin,
)


# --------------------------------------------------------------------------- writers (real formats)
def write_heidelberg(path, samples, labels, *, labels_dtype=np.uint8):
    with h5py.File(path, "w") as f:
        sp = f.create_group("spikes")
        t = sp.create_dataset("times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        u = sp.create_dataset("units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (ti, ui) in enumerate(samples):
            t[i] = np.asarray(ti, dtype=np.float32)
            u[i] = np.asarray(ui, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=labels_dtype))


def nmnist_bytes(events):
    """events: (x, y, p, ts_us) with ts < 2**23; ('overflow',) for an overflow marker."""
    out = bytearray()
    for ev in events:
        if ev == ("overflow",):
            out += bytes([0, 240, 0, 0, 0])
            continue
        x, y, p, ts = ev
        out += bytes([x, y, (p << 7) | ((ts >> 16) & 0x7F), (ts >> 8) & 0xFF, ts & 0xFF])
    return bytes(out)


SHD_SAMPLES = [
    ([0.0, 0.05, 0.35, 0.35, 1.39, 1.5], [0, 699, 3, 3, 10, 5]),
    ([0.2, 0.6], [1, 2]),
    ([], []),
]


@pytest.fixture
def shd_root(tmp_path):
    write_heidelberg(tmp_path / "shd_train.h5", SHD_SAMPLES, [4, 19, 0])
    write_heidelberg(tmp_path / "shd_test.h5", SHD_SAMPLES[:1], [7])
    return tmp_path


# --------------------------------------------------------------------------- bin_events
def test_bin_events_fixed_window_and_span():
    r = bin_events([0.0, 0.24, 0.25, 0.99, 1.0, 2.0], [0, 1, 1, 2, 0, 0], 3, T=4, duration=1.0)
    exp = torch.zeros(4, 3)
    exp[0, 0] = exp[0, 1] = exp[1, 1] = exp[3, 2] = 1
    assert torch.equal(r, exp)
    s = bin_events([10.0, 20.0, 30.0], [0, 0, 1], 2, T=2)  # span 20: k = floor((t-10)*2/20)
    assert torch.equal(s, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert torch.equal(bin_events([5.0, 5.0], [1, 1], 2, T=3), torch.tensor([[0.0, 2.0], [0, 0], [0, 0]]))
    assert torch.equal(bin_events([5.0, 5.0], [1, 1], 2, T=3, binary=True)[0], torch.tensor([0.0, 1.0]))
    assert bin_events([], [], 4, T=2).shape == (2, 4)
    with pytest.raises(ValueError, match="channels"):
        bin_events([0.0], [5], 3, T=2)
    with pytest.raises(ValueError, match="channels"):
        bin_events([0.0, 1.0], [0], 3, T=2)
    with pytest.raises(ValueError, match="times"):
        bin_events([float("nan")], [0], 3, T=2)
    with pytest.raises(ValueError, match="duration"):
        bin_events([0.0], [0], 3, T=2, duration=0.0)
    with pytest.raises(ValueError, match="T"):
        bin_events([0.0], [0], 3, T=0)


# --------------------------------------------------------------------------- SHD / SSC
def test_shd_binning_exact(shd_root):
    ds = SHD(shd_root, "train", T=14, max_time=1.4)
    assert len(ds) == 3 and ds.labels.tolist() == [4, 19, 0]
    x, y = ds[0]
    assert x.shape == (14, 700) and x.dtype == torch.float32 and y == 4
    exp = torch.zeros(14, 700)
    exp[0, 0] = exp[0, 699] = 1  # t = 0, 0.05 -> floor(t * 10)
    exp[3, 3] = 2                # two spikes at 0.35
    exp[13, 10] = 1              # 1.39 ; 1.5 >= max_time is dropped
    assert torch.equal(x, exp)
    assert torch.equal(ds[2][0], torch.zeros(14, 700))  # empty sample
    xb = SHD(shd_root, "train", T=14, max_time=1.4, binary=True)[0][0]
    assert xb[3, 3] == 1
    # per-sample span: sample 1 spans 0.2 .. 0.6
    x1 = SHD(shd_root, "train", T=4, max_time=None)[1][0]
    assert x1[0, 1] == 1 and x1[3, 2] == 1 and x1.sum() == 2


def test_shd_preload_and_loader(shd_root):
    ds = SHD(shd_root, "train", T=14, preload=True)
    lazy = SHD(shd_root, "train", T=14)
    for i in range(3):
        assert torch.equal(ds[i][0], lazy[i][0])
    xb, yb = next(iter(DataLoader(lazy, batch_size=3, collate_fn=collate_time_first)))
    assert xb.shape == (14, 3, 700) and yb.tolist() == [4, 19, 0]
    assert SHD(shd_root, "test")[0][1] == 7
    with pytest.raises(IndexError):
        lazy[3]


def test_ssc_splits(tmp_path):
    for fn in ("ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"):
        write_heidelberg(tmp_path / fn, SHD_SAMPLES[:2], [34, 1])
    ds = SSC(tmp_path, "validation", T=5)
    assert ds.split == "val" and len(ds) == 2 and ds[0][1] == 34


def test_shd_missing_file_message(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"shd_train\.h5.*zenkelab") as ei:
        SHD(tmp_path, "train")
    assert isinstance(ei.value, FileNotFoundError) and str(tmp_path) in str(ei.value)
    (tmp_path / "shd_test.h5.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DatasetNotFoundError, match="gunzip"):
        SHD(tmp_path, "test")


def test_shd_truncated_and_corrupt(tmp_path):
    write_heidelberg(tmp_path / "shd_train.h5", SHD_SAMPLES, [1, 2, 3])
    data = (tmp_path / "shd_train.h5").read_bytes()
    (tmp_path / "shd_train.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDatasetError, match="truncated or corrupt"):
        SHD(tmp_path, "train")
    (tmp_path / "shd_test.h5").write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(CorruptDatasetError, match="HDF5"):
        SHD(tmp_path, "test")


def test_shd_malformed_content(tmp_path):
    d = tmp_path
    with h5py.File(d / "shd_train.h5", "w") as f:
        f.create_dataset("labels", data=np.zeros(2, dtype=np.uint8))
    with pytest.raises(CorruptDatasetError, match="spikes/times"):
        SHD(d, "train")
    write_heidelberg(d / "shd_test.h5", SHD_SAMPLES, [1, 2])  # 3 samples, 2 labels
    with pytest.raises(CorruptDatasetError, match="inconsistent lengths"):
        SHD(d, "test")
    write_heidelberg(d / "shd_test.h5", SHD_SAMPLES, [1, 2, 20])
    with pytest.raises(CorruptDatasetError, match="labels"):
        SHD(d, "test")
    write_heidelberg(d / "shd_test.h5", [([0.1, 0.2], [1]), ([0.1], [800])], [1, 2])
    ds = SHD(d, "test")  # lazily read: errors at access
    with pytest.raises(CorruptDatasetError, match="sample 0"):
        ds[0]
    with pytest.raises(CorruptDatasetError, match="sample 1"):
        ds[1]
    with pytest.raises(CorruptDatasetError, match="sample 0"):
        SHD(d, "test", preload=True)  # preload checks everything up front


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(split="val"), ValueError, "split"),
        (dict(T=0), ValueError, "T"),
        (dict(max_time=-1.0), ValueError, "max_time"),
        (dict(binary=1), TypeError, "binary"),
        (dict(preload="yes"), TypeError, "preload"),
        (dict(transform=3), TypeError, "transform"),
    ],
)
def test_shd_argument_validation(shd_root, kw, exc, match):
    with pytest.raises(exc, match=match):
        SHD(shd_root, **kw)


def test_root_type_error():
    with pytest.raises(TypeError, match="root"):
        SHD(123)


# --------------------------------------------------------------------------- N-MNIST
NM_EVENTS = [(1, 2, 1, 100), (33, 33, 0, 5000), ("overflow",), (0, 0, 1, 10)]


def make_nmnist(root, split="Train"):
    for digit, evs in ((3, NM_EVENTS), (7, [(5, 6, 0, 0), (5, 6, 0, 1)])):
        d = root / split / str(digit)
        d.mkdir(parents=True, exist_ok=True)
        (d / "00001.bin").write_bytes(nmnist_bytes(evs))


def test_read_nmnist_bin_overflow(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(nmnist_bytes(NM_EVENTS))
    ev = read_nmnist_bin(p)
    assert ev["x"].tolist() == [1, 33, 0] and ev["y"].tolist() == [2, 33, 0]
    assert ev["p"].tolist() == [1, 0, 1]
    assert ev["t"].tolist() == [100, 5000, 8192 + 10]
    big = tmp_path / "b.bin"
    big.write_bytes(nmnist_bytes([(0, 0, 0, 2**23 - 1)]))
    assert read_nmnist_bin(big)["t"].tolist() == [2**23 - 1]


def test_nmnist_binning_exact(tmp_path):
    make_nmnist(tmp_path)
    ds = NMNIST(tmp_path, "train", T=4)  # per-sample span: t0 = 100, span = 8102
    assert len(ds) == 2 and ds.labels.tolist() == [3, 7]
    x, y = ds[0]
    assert x.shape == (4, 2, 34, 34) and y == 3
    exp = torch.zeros(4, 2, 34, 34)
    exp[0, 1, 2, 1] = 1      # [t, p, y, x]
    exp[2, 0, 33, 33] = 1    # floor(4900 * 4 / 8102) = 2
    exp[3, 1, 0, 0] = 1      # last event -> last step
    assert torch.equal(x, exp)
    fx = NMNIST(tmp_path, "train", T=5, max_time=0.01)[0][0]  # window 10000 us: k = floor(t / 2000)
    assert fx[0, 1, 2, 1] == 1 and fx[2, 0, 33, 33] == 1 and fx[4, 1, 0, 0] == 1 and fx.sum() == 3
    flat = NMNIST(tmp_path, "train", T=4, flatten=True)[0][0]
    assert flat.shape == (4, 2 * 34 * 34) and torch.equal(flat, exp.reshape(4, -1))
    ds2 = NMNIST(tmp_path, "train", T=4, downsample=2)
    x2 = ds2[0][0]
    assert x2.shape == (4, 2, 17, 17) and x2[2, 0, 16, 16] == 1 and x2[0, 1, 1, 0] == 1
    assert ds2.n_inputs == 2 * 17 * 17
    x7 = ds[1][0]
    assert x7[0, 0, 6, 5] == 1 and x7[3, 0, 6, 5] == 1


def test_nmnist_tonic_layout_and_loader(tmp_path):
    make_nmnist(tmp_path / "NMNIST", "Test")
    ds = NMNIST(tmp_path, "test", T=3)
    xb, yb = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_time_first)))
    assert xb.shape == (3, 2, 2, 34, 34) and yb.tolist() == [3, 7]


def test_nmnist_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"Orchard.*Train") as ei:
        NMNIST(tmp_path, "train")
    assert isinstance(ei.value, FileNotFoundError)
    (tmp_path / "Train").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no <digit>"):
        NMNIST(tmp_path, "train")
    make_nmnist(tmp_path)
    p = tmp_path / "Train" / "3" / "00002.bin"
    p.write_bytes(nmnist_bytes(NM_EVENTS)[:-2])
    with pytest.raises(CorruptDatasetError, match="truncated"):
        NMNIST(tmp_path, "train")
    p.write_bytes(nmnist_bytes([(40, 1, 0, 5)]))
    ds = NMNIST(tmp_path, "train")
    with pytest.raises(CorruptDatasetError, match="34 x 34"):
        ds[1]
    with pytest.raises(CorruptDatasetError, match="truncated"):
        read_nmnist_bin(_write(tmp_path / "t.bin", b"\x00" * 7))
    (tmp_path / "Test" / "x").mkdir(parents=True)
    with pytest.raises(CorruptDatasetError, match="0..9"):
        NMNIST(tmp_path, "test")


def _write(p, data):
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(split="val"), ValueError, "split"),
        (dict(downsample=0), ValueError, "downsample"),
        (dict(flatten=None), TypeError, "flatten"),
        (dict(T=2.5), TypeError, "T"),
    ],
)
def test_nmnist_argument_validation(tmp_path, kw, exc, match):
    make_nmnist(tmp_path)
    with pytest.raises(exc, match=match):
        NMNIST(tmp_path, **kw)


# --------------------------------------------------------------------------- DVS Gesture
def make_gesture(root):
    d1 = root / "ibmGestureTrain" / "user01_led"
    d2 = root / "ibmGestureTrain" / "user02_natural"
    d1.mkdir(parents=True)
    d2.mkdir(parents=True)
    plain = np.array([[127, 0, 1, 0], [5, 9, 0, 2], [64, 64, 1, 3], [64, 65, 1, 3]], dtype=np.int64)
    np.save(d1 / "3.npy", plain)  # t in ms
    ev = np.zeros(2, dtype=[("x", np.int16), ("y", np.int16), ("p", np.int8), ("t", np.int64)])
    ev["x"], ev["y"], ev["p"], ev["t"] = [1, 2], [3, 4], [0, 1], [500, 1500]  # t in us
    np.save(d2 / "10.npy", ev)


def test_gesture_binning_exact(tmp_path):
    make_gesture(tmp_path)
    ds = DVSGesture(tmp_path, "train", T=4, max_time=0.004)  # window 4000 us: k = t_ms
    assert len(ds) == 2 and ds.labels.tolist() == [3, 10]
    x, y = ds[0]
    assert x.shape == (4, 2, 128, 128) and y == 3
    exp = torch.zeros(4, 2, 128, 128)
    exp[0, 1, 0, 127] = 1
    exp[2, 0, 9, 5] = 1
    exp[3, 1, 64, 64] = 1
    exp[3, 1, 65, 64] = 1
    assert torch.equal(x, exp)
    x4 = DVSGesture(tmp_path, "train", T=4, max_time=0.004, downsample=4)[0][0]
    assert x4.shape == (4, 2, 32, 32)
    assert x4[0, 1, 0, 31] == 1 and x4[2, 0, 2, 1] == 1 and x4[3, 1, 16, 16] == 2
    s, y2 = DVSGesture(tmp_path, "train", T=2, max_time=0.002)[1]
    assert y2 == 10 and s[0, 0, 3, 1] == 1 and s[1, 1, 4, 2] == 1 and s.sum() == 2
    ev = read_gesture_npy(tmp_path / "ibmGestureTrain" / "user01_led" / "3.npy")
    assert ev["t"].tolist() == [0.0, 2000.0, 3000.0, 3000.0]


def test_gesture_tonic_layout(tmp_path):
    make_gesture(tmp_path / "DVSGesture")
    ds = DVSGesture(tmp_path, "train", T=3, flatten=True, downsample=8)
    assert ds[0][0].shape == (3, 2 * 16 * 16)


def test_gesture_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"ibmGestureTrain.*DVS128 Gesture"):
        DVSGesture(tmp_path, "train")
    make_gesture(tmp_path)
    f = tmp_path / "ibmGestureTrain" / "user01_led" / "3.npy"
    data = f.read_bytes()
    f.write_bytes(data[:-9])
    with pytest.raises(CorruptDatasetError, match="truncated"):
        DVSGesture(tmp_path, "train")
    f.write_bytes(b"garbage" * 20)
    with pytest.raises(CorruptDatasetError, match="npy"):
        DVSGesture(tmp_path, "train")
    np.save(f, np.zeros((3, 3)))
    with pytest.raises(CorruptDatasetError, match=r"\(N, 4\)"):
        DVSGesture(tmp_path, "train")
    np.save(f, np.array([[200, 0, 1, 0]]))
    ds = DVSGesture(tmp_path, "train")
    with pytest.raises(CorruptDatasetError, match="128 x 128"):
        ds[0]
    np.save(f, np.array([[2, 0, 3, 0]]))
    with pytest.raises(CorruptDatasetError, match="polarity"):
        ds[0]
    np.save(f, np.array([[2, 0, 1, 0.5], [1.5, 0, 1, 1]]))
    with pytest.raises(CorruptDatasetError, match="integers"):
        ds[0]
    np.save(tmp_path / "ibmGestureTrain" / "user01_led" / "hello.npy", np.zeros((1, 4)))
    with pytest.raises(CorruptDatasetError, match="label"):
        DVSGesture(tmp_path, "train")


def test_cli_style_path_object(tmp_path):
    make_gesture(tmp_path)
    assert len(DVSGesture(str(tmp_path), "train")) == 2
    assert os.fspath(tmp_path) in DVSGesture(tmp_path, "train").files[0]
