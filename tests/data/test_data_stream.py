"""Streamed loading (events binned on the fly, DataLoader with workers) equals in-memory loading."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikefuse.data import collate_time_first
from spikefuse.data.event_digits import EventDigits
from spikefuse.data.events import NMNIST, SHD
from spikefuse.data.frames import make_events, to_frames
from spikefuse.data.stream import EventStream, stream_loader

from test_data_events import SHD_SAMPLES, make_nmnist, write_heidelberg


def _in_memory(ds):
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs, 1), torch.tensor(ys)


def _streamed(ds, **kw):
    xs, ys = zip(*stream_loader(ds, batch_size=2, **kw))
    return torch.cat(xs, 1), torch.cat(ys)


def test_structured_arrays_streamed_equal_in_memory():
    rng = np.random.default_rng(1)
    evs = [make_events(rng.integers(0, 5, 40), rng.integers(0, 3, 40), np.sort(rng.integers(0, 999, 40)),
                       rng.integers(0, 2, 40)) for _ in range(5)]
    ds = EventStream(evs, labels=[0, 1, 2, 1, 0], sensor_size=(5, 3, 2), n_time_bins=4)
    x, y = _streamed(ds, num_workers=2)
    assert x.shape == (4, 5, 2, 3, 5) and y.tolist() == [0, 1, 2, 1, 0]
    assert torch.equal(x, torch.stack([to_frames(e, (5, 3, 2), 4) for e in evs], 1))
    assert torch.equal(x, _in_memory(ds)[0])


def test_readers_streamed_equal_in_memory(tmp_path):
    make_nmnist(tmp_path)
    nm = EventStream(NMNIST(tmp_path, "train"), n_time_bins=3, flatten=True)
    assert nm.sensor_size == (34, 34, 2)
    x, y = _streamed(nm, num_workers=1)
    assert x.shape == (3, 2, 2 * 34 * 34) and torch.equal(x, _in_memory(nm)[0]) and y.tolist() == [3, 7]
    write_heidelberg(tmp_path / "shd_train.h5", SHD_SAMPLES, [4, 19, 0])
    sh = EventStream(SHD(tmp_path, "train"), n_time_bins=2)
    xs, ys = _streamed(sh, num_workers=2)  # h5py handles reopen per worker
    assert xs.shape == (2, 3, 1, 700) and ys.tolist() == [4, 19, 0] and torch.equal(xs, _in_memory(sh)[0])
    # t in us: sample 0 [0, .05, .35, .35, 1.39, 1.5] s, width 750000: 4 + 1 events, t1 dropped
    assert xs[:, 0].sum((1, 2)).tolist() == [4, 1] and xs[0, 0, 0, 3] == 2
    assert xs[:, 1].sum((1, 2)).tolist() == [1, 0]  # [0.2, 0.6] s: bins [.2, .4), [.4, .6)


def test_event_digits_shuffled_workers_deterministic():
    ds = EventDigits("test", T=4)
    sub = torch.utils.data.Subset(ds, range(12))
    a = _streamed(sub, shuffle=True, seed=3, num_workers=2)
    b = _streamed(sub, shuffle=True, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    xm, ym = _in_memory(sub)
    match = [[j for j in range(12) if torch.equal(a[0][:, i], xm[:, j])] for i in range(12)]
    perm = [m[0] for m in match]
    assert all(len(m) == 1 for m in match) and sorted(perm) == list(range(12)) and perm != list(range(12))
    assert torch.equal(a[1], ym[perm])


def test_tonic_dataset_accepted():
    tonic = pytest.importorskip("tonic")

    class Fake(tonic.Dataset):  # a tonic data set without download: (events, target) pairs
        sensor_size = (4, 4, 2)
        dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])

        def __init__(self):
            super().__init__("unused")
            self.items = [make_events([0, 3], [1, 2], [0, 10], [0, 1]).astype(self.dtype)] * 2

        def __getitem__(self, i):
            return self.items[i], i

        def __len__(self):
            return 2

    ds = EventStream(Fake(), n_time_bins=2)
    ref = tonic.transforms.ToFrame(sensor_size=(4, 4, 2), n_time_bins=2)
    x, y = ds[1]
    assert y == 1 and np.array_equal(x.numpy(), ref(Fake().items[1]))


def test_errors():
    with pytest.raises(ValueError, match="sensor_size"):
        EventStream([make_events([0], [0], [0], [0])], labels=[0], n_time_bins=2)
    with pytest.raises(ValueError, match="labels"):
        EventStream([make_events([0], [0], [0], [0])], labels=[0, 1], sensor_size=(1, 1, 1), n_time_bins=2)
    with pytest.raises(TypeError, match="source"):
        EventStream(iter([]), sensor_size=(1, 1, 1), n_time_bins=2)
    with pytest.raises(ValueError, match="overlap"):
        EventStream([], sensor_size=(1, 1, 1), n_time_bins=2, overlap=2)
    ds = EventStream([make_events([0], [0], [0], [0])], sensor_size=(1, 1, 1), n_time_bins=2)
    with pytest.raises(TypeError, match="labels="):
        ds[0]
    with pytest.raises(TypeError, match="shuffle"):
        stream_loader(ds, 2, shuffle="yes")
    with pytest.raises(TypeError, match="batch_size"):
        stream_loader(ds, 2.0)
    assert isinstance(stream_loader(ds, 1), DataLoader) and collate_time_first
