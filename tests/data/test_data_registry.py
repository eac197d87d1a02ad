import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikefuse.data import DatasetInfo, collate_time_first, dataset_names, get_dataset
from spikefuse.data.events import DatasetNotFoundError

from test_data_events import SHD_SAMPLES, make_gesture, make_nmnist, write_heidelberg


def first_batch(ds, info, n=4):
    return next(iter(DataLoader(ds, batch_size=n, collate_fn=info.collate_fn)))


def test_names():
    assert set(dataset_names()) == {"yinyang", "randman", "digits", "shd", "ssc", "nmnist", "dvsgesture",
                                   "cifar10dvs", "eventdigits"}


def test_yinyang_entry():
    ds, info = get_dataset("yinyang", "train")
    assert isinstance(info, DatasetInfo)
    assert (len(ds), info.n_inputs, info.n_classes, info.time_first) == (5000, 4, 3, False)
    assert info.collate_fn is None and info.input_shape == (4,)
    v, info_v = get_dataset("yinyang", "validation")
    assert len(v) == 1000 and v.seed == 41 and info_v.note == ""
    xb, yb = first_batch(ds, info)
    assert xb.shape == (4, 4)


def test_digits_entry_static_and_encoded():
    ds, info = get_dataset("digits", "train")
    assert not info.time_first and info.n_inputs == 64 and info.n_classes == 10
    ds2, info2 = get_dataset("digits", "test", encoding="latency", T=12)
    assert info2.time_first and info2.n_steps == 12
    xb, _ = first_batch(ds2, info2)
    assert xb.shape == (12, 4, 64)
    ds3, info3 = get_dataset("digits", "val")
    assert "no validation split" in info3.note and torch.equal(ds3.indices, get_dataset("digits", "test")[0].indices)


def test_randman_entry():
    ds, info = get_dataset("randman", "test", n_classes=2, n_units=6, n_steps=9, n_samples=20, seed=1)
    assert info.time_first and info.n_inputs == 6 and info.n_classes == 2 and info.n_steps == 9
    xb, yb = first_batch(ds, info)
    assert xb.shape == (9, 4, 6)


def test_file_entries(tmp_path, monkeypatch):
    write_heidelberg(tmp_path / "shd_train.h5", SHD_SAMPLES, [1, 2, 3])
    write_heidelberg(tmp_path / "shd_test.h5", SHD_SAMPLES, [1, 2, 3])
    ds, info = get_dataset("shd", "train", root=tmp_path, T=7)
    assert (info.n_inputs, info.n_classes, info.n_steps, info.input_shape) == (700, 20, 7, (700,))
    assert first_batch(ds, info, 3)[0].shape == (7, 3, 700)
    monkeypatch.setenv("SPIKEFUSE_DATA", str(tmp_path))
    ds, info = get_dataset("SHD", "val")  # root from the environment; val -> test
    assert "no validation split" in info.note and ds.split == "test"
    with pytest.raises(DatasetNotFoundError, match="ssc_train.h5"):
        get_dataset("ssc", "train")
    make_nmnist(tmp_path)
    ds, info = get_dataset("nmnist", "train", T=3)
    assert info.input_shape == (2, 34, 34) and info.n_inputs == 2312 and info.n_classes == 10
    assert first_batch(ds, info, 2)[0].shape == (3, 2, 2, 34, 34)
    ds, info = get_dataset("nmnist", "train", T=3, flatten=True, downsample=2)
    assert info.input_shape == (578,) and first_batch(ds, info, 2)[0].shape == (3, 2, 578)
    make_gesture(tmp_path)
    ds, info = get_dataset("dvs-gesture", "train", T=5, downsample=4)
    assert info.name == "dvsgesture" and info.input_shape == (2, 32, 32) and info.n_classes == 11


def test_default_root_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEFUSE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"data"):
        get_dataset("nmnist", "test")


@pytest.mark.parametrize(
    "args, kw, exc, match",
    [
        (("mnist",), {}, ValueError, "unknown dataset"),
        ((3,), {}, TypeError, "name"),
        (("yinyang", "dev"), {}, ValueError, "split"),
        (("yinyang", 1), {}, TypeError, "split"),
        (("yinyang", "train"), {"size": -5}, ValueError, "size"),
    ],
)
def test_registry_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        get_dataset(*args, **kw)


def test_collate_time_first():
    xb, yb = collate_time_first([(torch.full((3, 2), float(i)), i) for i in range(4)])
    assert xb.shape == (3, 4, 2) and torch.equal(xb[:, 2], torch.full((3, 2), 2.0))
    assert yb.tolist() == [0, 1, 2, 3] and yb.dtype == torch.int64
    with pytest.raises(ValueError, match="empty"):
        collate_time_first([])
    with pytest.raises(ValueError, match="shape"):
        collate_time_first([(torch.zeros(3, 2), 0), (torch.zeros(4, 2), 1)])
    with pytest.raises(ValueError, match="time-first"):
        collate_time_first([(torch.tensor(1.0), 0)])
