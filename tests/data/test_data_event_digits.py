"""The embedded event set: determinism per seed, tonic event format, sensor size, the camera model."""
import numpy as np
import pytest
import torch

from spikefuse.data import get_dataset
from spikefuse.data.event_digits import SENSOR_SIZE, EventDigits, simulate_event_camera
from spikefuse.data.frames import EVENT_DTYPE, to_frames


@pytest.fixture(scope="module")
def test_split():
    return EventDigits("test", T=6)


def test_format_and_sensor_size(test_split):
    ds = test_split
    ev = ds.events(3)
    assert ev.dtype == EVENT_DTYPE and ev.dtype.names == ("x", "y", "t", "p") and ev.ndim == 1
    W, H, P = ds.sensor_size
    assert (W, H, P) == SENSOR_SIZE == (16, 16, 2)
    assert 0 <= ev["x"].min() and ev["x"].max() < W and 0 <= ev["y"].min() and ev["y"].max() < H
    assert set(np.unique(ev["p"])) == {0, 1} and (np.diff(ev["t"]) >= 0).all()
    assert 0 <= ev["t"].min() and ev["t"].max() <= ds.duration_us
    x, y = ds[3]
    assert x.shape == (6, 2, 16, 16) and x.dtype == torch.float32 and y == int(ds.labels[3])
    assert torch.equal(x, to_frames(ev, SENSOR_SIZE, 6))
    assert len(ds) == 359 and len(EventDigits("train")) == 1438


def test_deterministic_per_seed(test_split):
    a, b = test_split.events(7), EventDigits("test", T=6).events(7)
    assert np.array_equal(a, b)
    c = EventDigits("test", seed=1).events(7)
    assert not np.array_equal(a, c)
    assert not np.array_equal(test_split.events(7), test_split.events(8))


def test_camera_model_hand_derived():
    # one pixel brightening from 0 to 1: log(1.1) - log(0.1) = 2.398 -> floor(2.398 / 0.5) = 4 ON events
    frames = np.zeros((3, 1, 2))
    frames[1, 0, 1] = 1.0
    ev = simulate_event_camera(frames, [0.0, 10.0, 20.0], threshold=0.5)
    assert ev["p"].tolist() == [1] * 4 + [0] * 4 and ev["x"].tolist() == [1] * 8
    assert ev["t"].tolist() == [10] * 4 + [20] * 4  # no rng: at the end of the sub-frame
    with pytest.raises(ValueError, match="threshold"):
        simulate_event_camera(frames, [0.0, 1.0, 2.0], threshold=0.0)
    with pytest.raises(ValueError, match="frames"):
        simulate_event_camera(frames[:1], [0.0])


def test_registry_and_arguments():
    ds, info = get_dataset("event-digits", "val", T=4, flatten=True)
    assert info.name == "eventdigits" and info.time_first and info.n_steps == 4
    assert info.n_inputs == 512 and info.input_shape == (512,) and info.n_classes == 10 and "val" in info.note
    assert ds[0][0].shape == (4, 512)
    with pytest.raises(TypeError, match="binary"):
        EventDigits("test", binary="yes")
    with pytest.raises(ValueError, match="threshold"):
        EventDigits("test", threshold=float("nan"))
    with pytest.raises(IndexError):
        ds[len(ds)]
    noisy = EventDigits("test", noise_rate=50.0)
    assert len(noisy.events(0)) > len(EventDigits("test").events(0))
