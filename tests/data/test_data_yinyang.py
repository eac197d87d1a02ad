import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikefuse.data.yinyang import SPLITS, YinYang, make_yinyang, yinyang_class


# Hand-derived points (r_small = 0.1, r_big = 0.5; dots at (0.25, 0.5) and (0.75, 0.5)).
@pytest.mark.parametrize(
    "x, y, label",
    [
        (0.25, 0.5, 2),   # centre of the left dot
        (0.75, 0.5, 2),   # centre of the right dot
        (0.80, 0.55, 2),  # inside the right dot (d = 0.0707)
        (0.5, 0.9, 1),    # top of the disc: y > r_big, d_right = 0.47 > 0.25
        (0.5, 0.1, 0),    # bottom of the disc
        (0.25, 0.7, 1),   # ring around the left dot, upper half (d_left = 0.2)
        (0.25, 0.3, 1),   # ring around the left dot reaches below the middle line
        (0.75, 0.7, 0),   # ring around the right dot, upper half (d_right = 0.2)
        (0.75, 0.3, 0),   # ring around the right dot, lower half
        (0.05, 0.6, 1),   # far left, upper: d_right = 0.707 > 0.25
        (0.95, 0.4, 0),   # far right, lower
    ],
)
def test_hand_checked_geometry(x, y, label):
    assert int(yinyang_class(x, y)) == label


def test_class_rule_vectorised_matches_points():
    xs = np.array([0.25, 0.5, 0.5, 0.75])
    ys = np.array([0.5, 0.9, 0.1, 0.7])
    assert yinyang_class(xs, ys).tolist() == [2, 1, 0, 0]


def test_published_splits_shapes_and_balance():
    for split, (n, _) in SPLITS.items():
        ds = YinYang(split)
        assert len(ds) == n
        assert ds.inputs.shape == (n, 4) and ds.inputs.dtype == torch.float32
        counts = torch.bincount(ds.labels, minlength=3)
        # goal classes are drawn uniformly: counts ~ Binomial(n, 1/3); 5 sigma band
        sigma = math.sqrt(n * (1 / 3) * (2 / 3))
        assert ((counts - n / 3).abs() < 5 * sigma).all(), counts


def test_points_inside_unit_square_disc_and_mirrored():
    x, lab = make_yinyang(2000, 7, dtype=torch.float64)
    assert (x >= 0).all() and (x <= 1).all()
    assert torch.allclose(x[:, 2], 1 - x[:, 0]) and torch.allclose(x[:, 3], 1 - x[:, 1])
    r = torch.sqrt((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2)
    assert (r <= 0.5).all()
    # labels agree with the geometric rule (independent vectorised implementation)
    assert np.array_equal(yinyang_class(x[:, 0].numpy(), x[:, 1].numpy()), lab.numpy())


def test_rng_call_order_is_the_published_one():
    """Each sample is the first pair of rng.rand(2)*2*r_big after its rng.randint(3) goal
    that lies in the disc and has the goal's class; every pair before it was rejected."""
    n, seed = 300, 42
    x, lab = make_yinyang(n, seed, dtype=torch.float64)
    rng = np.random.RandomState(seed)
    for i in range(n):
        goal = rng.randint(3)
        for _ in range(1000):
            px, py = rng.rand(2) * 2.0 * 0.5
            inside = math.sqrt((px - 0.5) ** 2 + (py - 0.5) ** 2) <= 0.5
            if inside and int(yinyang_class(px, py)) == goal:
                break
        assert (px, py) == (x[i, 0].item(), x[i, 1].item()), i
        assert lab[i].item() == goal


def test_determinism_and_seed_dependence():
    a = YinYang("test")
    b = YinYang("test")
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    c = YinYang("test", seed=123)
    assert not torch.equal(a.inputs, c.inputs)
    v = YinYang("val")
    assert not torch.equal(a.inputs, v.inputs)


def test_dataset_items_transform_and_loader():
    ds = YinYang("val", size=50, transform=lambda t: t * 2)
    x, y = ds[3]
    assert isinstance(y, int) and x.shape == (4,) and x.dtype == torch.float32
    assert torch.equal(x, ds.inputs[3] * 2)
    xb, yb = next(iter(DataLoader(ds, batch_size=8)))
    assert xb.shape == (8, 4) and yb.dtype == torch.int64
    assert YinYang("validation", size=5).split == "val"


def test_custom_radii():
    x, lab = make_yinyang(200, 1, r_small=0.05, r_big=0.5, dtype=torch.float64)
    assert np.array_equal(
        yinyang_class(x[:, 0].numpy(), x[:, 1].numpy(), r_small=0.05), lab.numpy()
    )


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(split="training"), ValueError, "split"),
        (dict(size=-1), ValueError, "size"),
        (dict(size=2.5), TypeError, "size"),
        (dict(seed="a"), TypeError, "seed"),
        (dict(seed=-3), ValueError, "seed"),
        (dict(seed=2**33), ValueError, "seed"),
        (dict(transform=5), TypeError, "transform"),
        (dict(r_small=0.3), ValueError, "r_small"),
        (dict(r_small=0.0), ValueError, "r_small"),
        (dict(r_big=-1.0), ValueError, "r_big"),
        (dict(r_big=float("nan")), ValueError, "r_big"),
    ],
)
def test_validation_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        YinYang(**kwargs)


def test_make_yinyang_dtype_error():
    with pytest.raises(TypeError, match="dtype"):
        make_yinyang(10, 0, dtype=torch.int32)
