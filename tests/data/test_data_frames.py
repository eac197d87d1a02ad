"""to_frames equals tonic.transforms.ToFrame(n_time_bins=...) exactly; event-format checks."""
import numpy as np
import pytest
import torch

from spikefuse.data.frames import EVENT_DTYPE, check_events, make_events, to_frames


def _random_events(rng, n, W, H, P, *, int_time, audio=False):
    fields = [("x", np.int64), ("t", np.int64 if int_time else np.float64), ("p", np.int64)]
    if not audio:
        fields.insert(1, ("y", np.int64))
    ev = np.zeros(n, dtype=fields)
    ev["x"], ev["p"] = rng.integers(0, W, n), rng.integers(0, P, n)
    if not audio:
        ev["y"] = rng.integers(0, H, n)
    scale = float(rng.choice([7, 1000, 10**6]))
    ev["t"] = np.sort(rng.integers(0, int(scale), n) if int_time else rng.random(n) * scale)
    return ev


def test_to_frames_hand_derived():
    ev = make_events(x=[0, 1, 1, 0, 1], y=[0, 0, 1, 1, 1], t=[10, 19, 20, 35, 50], p=[1, 0, 1, 1, 0])
    f = to_frames(ev, (2, 2, 2), 2)  # w = (50 - 10) // 2 = 20: bins [10, 30), [30, 50); t = 50 dropped
    exp = torch.zeros(2, 2, 2, 2)
    exp[0, 1, 0, 0] = exp[0, 0, 0, 1] = exp[0, 1, 1, 1] = 1
    exp[1, 1, 1, 0] = 1
    assert torch.equal(f, exp)
    assert torch.equal(to_frames(ev[::-1].copy(), (2, 2, 2), 2), exp)  # sorted by time first
    assert to_frames(ev, (2, 2, 2), 100).sum() == 0  # span 40 < 100 bins: width 0, tonic gives zeros
    assert torch.equal(to_frames(make_events([0, 0], [0, 0], [0, 1], [1, 1]), (1, 1, 2), 1, binary=True).sum(), torch.tensor(1.0))


def test_to_frames_errors():
    ev = make_events([0, 3], [0, 0], [0, 5], [0, 1])
    with pytest.raises(ValueError, match="field 'x' must lie in \\[0, 2\\)"):
        to_frames(ev, (2, 2, 2), 2)
    with pytest.raises(ValueError, match="single-polarity"):
        to_frames(ev, (4, 1, 1), 2)
    with pytest.raises(TypeError, match="structured"):
        to_frames(np.zeros((3, 4)), (4, 4, 2), 2)
    with pytest.raises(ValueError, match="missing field"):
        to_frames(np.zeros(3, dtype=[("x", int), ("y", int)]), (4, 4, 2), 2)
    with pytest.raises(ValueError, match="sensor_size"):
        to_frames(ev, (4, 4), 2)
    with pytest.raises(ValueError, match="overlap"):
        to_frames(ev, (4, 4, 2), 2, overlap=1.0)
    with pytest.raises(TypeError, match="n_time_bins"):
        to_frames(ev, (4, 4, 2), True)
    bad_t = ev.astype([("x", "i2"), ("y", "i2"), ("t", "f8"), ("p", "i1")])
    bad_t["t"][0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        to_frames(bad_t, (4, 4, 2), 2)
    assert check_events(make_events([], [], [], []), (1, 1, 1))[0].size == 0
    assert make_events([1], [2], [3], [1]).dtype == EVENT_DTYPE


def test_to_frames_equals_tonic():
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(0)
    for trial in range(120):
        W, H, P = (int(v) for v in rng.integers(1, 9, 3))
        P = min(P, 2)
        T, n = int(rng.integers(1, 20)), int(rng.integers(1, 300))
        overlap = float(rng.choice([0.0, 0.0, 0.25, 0.5]))
        audio = trial % 5 == 0
        ev = _random_events(rng, n, W, 1 if audio else H, P, int_time=trial % 2 == 0, audio=audio)
        size = (W, 1, P) if audio else (W, H, P)
        ref = tonic.transforms.ToFrame(sensor_size=size, n_time_bins=T, overlap=overlap)(ev.copy())
        got = to_frames(ev, size, T, overlap=overlap)
        assert got.shape == ref.shape, (trial, got.shape, ref.shape)
        assert np.array_equal(got.numpy(), ref.astype(np.float32)), trial


def test_to_frames_equals_tonic_last_bin():
    """The span a multiple of T: tonic's floor-divided width leaves the last event out."""
    tonic = pytest.importorskip("tonic")
    ev = make_events(x=[0, 1, 2, 3], y=[0, 0, 0, 0], t=[0, 100, 200, 300], p=[1, 1, 1, 1])
    ref = tonic.transforms.ToFrame(sensor_size=(4, 1, 2), n_time_bins=3)(ev.copy())
    got = to_frames(ev, (4, 1, 2), 3)
    assert np.array_equal(got.numpy(), ref) and got.sum() == 3 and got[:, 1, 0, 3].sum() == 0
