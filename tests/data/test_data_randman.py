import math

import pytest
import torch
from torch.utils.data import DataLoader

from spikefuse.data import collate_time_first
from spikefuse.data.randman import RandMan, RandomManifold, make_randman, randman_raster


def test_manifold_matches_scalar_fourier_series():
    rm = RandomManifold(3, 2, alpha=2.0, seed=11)
    assert rm.f_cutoff == 32  # ceil(1e-3 ** -0.5) = ceil(31.62)
    x = torch.tensor([[0.3, 0.7], [0.9, 0.1]], dtype=torch.float64)
    y = rm(x)
    for n in range(2):
        for e in range(3):
            prod = 1.0
            for d in range(2):
                acc = 0.0
                for i in range(rm.f_cutoff):
                    a, b, c = (rm.params[e, d, j, i].item() for j in range(3))
                    s = 1.0 / ((i + 1) ** 2 + 1)
                    acc += a * s * math.sin(2 * math.pi * (i * x[n, d].item() * b + c))
                prod *= acc
            assert abs(y[n, e].item() - prod) < 1e-12
    # no bias: the constant term's amplitude is zero
    assert (rm.params[:, :, 0, 0] == 0).all()
    assert (RandomManifold(3, 2, seed=11, use_bias=True).params[:, :, 0, 0] != 0).any()


def test_manifold_seed_and_cutoff():
    a = RandomManifold(4, 1, seed=5)
    assert torch.equal(a.params, RandomManifold(4, 1, seed=5).params)
    assert not torch.equal(a.params, RandomManifold(4, 1, seed=6).params)
    assert RandomManifold(2, 1, alpha=1.0, max_f_cutoff=50).f_cutoff == 50
    assert RandomManifold(2, 1, alpha=3.0, prec=1e-3).f_cutoff == 10


def test_make_randman_times_standardised_and_balanced():
    d = make_randman(n_classes=3, n_units=12, n_steps=40, n_samples=30, seed=2)
    assert d.times.shape == (90, 12) and d.labels.bincount().tolist() == [30, 30, 30]
    assert (d.times >= 0).all() and (d.times < 40).all()
    for k in range(3):
        t = d.times[d.labels == k]
        assert torch.allclose(t.min(0).values, torch.zeros(12, dtype=torch.float64))
        assert torch.allclose(t.max(0).values, torch.full((12,), 40.0, dtype=torch.float64), atol=1e-3)
    half = make_randman(n_classes=2, n_units=5, n_steps=10, n_samples=20, step_frac=0.5, seed=0)
    assert (half.times < 5).all()


def test_make_randman_determinism():
    a = make_randman(n_classes=2, n_units=6, n_steps=10, n_samples=8, seed=9)
    b = make_randman(n_classes=2, n_units=6, n_steps=10, n_samples=8, seed=9)
    c = make_randman(n_classes=2, n_units=6, n_steps=10, n_samples=8, seed=10)
    assert torch.equal(a.times, b.times) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.times, c.times)
    torch.manual_seed(0)
    g = make_randman(n_classes=2, n_units=6, n_steps=10, n_samples=8)
    torch.manual_seed(0)
    h = make_randman(n_classes=2, n_units=6, n_steps=10, n_samples=8)
    assert torch.equal(g.times, h.times)


def test_raster_binning():
    times = torch.tensor([[0.0, 0.999, 3.5, 4.0], [2.2, -0.1, 1.0, float("inf")]])
    units = torch.tensor([0, 1, 2, 1])
    r = randman_raster(times, units, 4, 3)
    assert r.shape == (4, 2, 3)
    exp0 = torch.zeros(4, 3)
    exp0[0, 0] = exp0[0, 1] = exp0[3, 2] = 1  # 4.0 is outside [0, 4)
    exp1 = torch.zeros(4, 3)
    exp1[2, 0] = exp1[1, 2] = 1
    assert torch.equal(r[:, 0], exp0) and torch.equal(r[:, 1], exp1)


def test_dataset_splits_disjoint_and_collate():
    kw = dict(n_classes=3, n_units=10, n_steps=20, n_samples=40, seed=4)
    tr, va, te, al = (RandMan(s, **kw) for s in ("train", "val", "test", "all"))
    assert (len(tr), len(va), len(te), len(al)) == (96, 12, 12, 120)
    assert torch.equal(torch.cat([tr.data.times, va.data.times, te.data.times]), al.data.times)
    x, y = tr[5]
    assert x.shape == (20, 10) and x.sum() == 10 and isinstance(y, int)
    assert torch.equal(x, randman_raster(tr.data.times[5:6], tr.data.units, 20, 10)[:, 0])
    xb, yb = next(iter(DataLoader(tr, batch_size=7, collate_fn=collate_time_first)))
    assert xb.shape == (20, 7, 10) and yb.shape == (7,) and yb.dtype == torch.int64
    two = RandMan("train", n_spikes=2, **kw)
    assert two.data.times.shape == (96, 20) and two[0][0].sum() <= 20


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: RandomManifold(0, 2), ValueError, "embedding_dim"),
        (lambda: RandomManifold(3, 1.5), TypeError, "manifold_dim"),
        (lambda: RandomManifold(3, 1, alpha=0.0), ValueError, "alpha"),
        (lambda: RandomManifold(3, 1, prec=2.0), ValueError, "prec"),
        (lambda: RandomManifold(3, 1, seed=-1), ValueError, "seed"),
        (lambda: RandomManifold(3, 1, use_bias=1), TypeError, "use_bias"),
        (lambda: RandomManifold(3, 2, seed=0)(torch.zeros(4, 3)), ValueError, "x"),
        (lambda: make_randman(n_classes=0), ValueError, "n_classes"),
        (lambda: make_randman(step_frac=1.5), ValueError, "step_frac"),
        (lambda: make_randman(n_samples=2.0), TypeError, "n_samples"),
        (lambda: make_randman(shuffle=None), TypeError, "shuffle"),
        (lambda: randman_raster(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 4, 3), ValueError, "units"),
        (lambda: randman_raster(torch.zeros(1, 2), torch.tensor([0, 5]), 4, 3), ValueError, "units"),
        (lambda: RandMan("training"), ValueError, "split"),
        (lambda: RandMan("train", fractions=(0.5, 0.5, 0.5)), ValueError, "fractions"),
        (lambda: RandMan("train", seed=None), ValueError, "seed"),
        (lambda: RandMan("train", n_units=0), ValueError, "n_units"),
        (lambda: RandMan("train", alpha=torch.tensor(-1.0)), ValueError, "alpha"),
        (lambda: RandMan("train", transform=3), TypeError, "transform"),
    ],
)
def test_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
