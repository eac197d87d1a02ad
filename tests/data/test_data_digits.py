import builtins

import pytest
import torch
from torch.utils.data import DataLoader

from spikefuse.data import collate_time_first, digits as dmod
from spikefuse.data.digits import Digits, load_digits_tensors


def test_load_digits_tensors():
    x, y = load_digits_tensors()
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    # values are k / 16 exactly
    assert torch.equal(x * 16, torch.round(x * 16))
    assert y.bincount().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_split_fixed_stratified_disjoint():
    tr, te = Digits("train"), Digits("test")
    assert len(tr) + len(te) == 1797
    assert set(tr.indices.tolist()).isdisjoint(te.indices.tolist())
    counts = te.labels.bincount()
    full = load_digits_tensors()[1].bincount()
    assert torch.equal(counts, torch.round(0.2 * full.double()).long())
    assert torch.equal(Digits("test").indices, te.indices)  # same seed, same split
    assert not torch.equal(Digits("test", seed=1).indices, te.indices)
    assert len(Digits("all")) == 1797
    x, y = tr[0]
    xs, ys = load_digits_tensors()
    assert torch.equal(x, xs[tr.indices[0]]) and y == int(ys[tr.indices[0]])


def test_static_and_encoded_samples():
    ds = Digits("test", encoding=None)
    x, _ = ds[0]
    assert x.shape == (64,) and not ds.time_first
    lat = Digits("test", encoding="latency", T=17)
    s, _ = lat[0]
    assert s.shape == (17, 64)
    feats = ds.features[0]
    # each pixel > threshold fires exactly once, at round((1 - x) * 16)
    fired = feats > 0.01
    assert torch.equal(s.sum(0), fired.float())
    assert torch.equal(s.argmax(0)[fired], torch.round((1 - feats[fired]) * 16).long())
    cur = Digits("test", encoding="current", T=3, gain=2.0)[0][0]
    assert torch.equal(cur, 2.0 * feats.expand(3, 64))


def test_rate_poisson_deterministic_with_encode_seed():
    ds = Digits("train", encoding="rate", T=400, encode_seed=5)
    a, _ = ds[7]
    b, _ = ds[7]
    assert torch.equal(a, b)
    assert not torch.equal(a, ds[8][0])
    p = ds.features[7]
    assert (a.sum(0)[p == 0] == 0).all() and (a.sum(0)[p == 1] == 400).all()
    assert (a.mean(0) - p).abs().max() < 0.12
    po = Digits("train", encoding="poisson", T=10, encode_seed=1)
    assert set(po[0][0].unique().tolist()) <= {0.0, 1.0}


def test_loader_collates_time_first():
    ds = Digits("test", encoding="latency", T=9)
    xb, yb = next(iter(DataLoader(ds, batch_size=6, collate_fn=collate_time_first)))
    assert xb.shape == (9, 6, 64) and yb.shape == (6,)


def test_missing_sklearn_gives_clear_import_error(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"scikit-learn.*pip install -e \"\.\[data\]\""):
        dmod._sklearn_load_digits()


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(split="val"), ValueError, "split"),
        (dict(encoding="morse"), ValueError, "encoding"),
        (dict(T=0), ValueError, "T"),
        (dict(test_fraction=1.0), ValueError, "test_fraction"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(encode_seed=1.5), ValueError, "encode_seed"),
        (dict(gain=-1.0), ValueError, "gain"),
        (dict(encoding="rate", gain=2.0), ValueError, "gain"),
        (dict(latency_method="exp"), ValueError, "latency_method"),
        (dict(transform="x"), TypeError, "transform"),
    ],
)
def test_validation(kw, exc, match):
    with pytest.raises(exc, match=match):
        Digits(**kw)
