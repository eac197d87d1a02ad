import pytest
import torch

from spikefuse import kernels


@pytest.fixture
def fake_family():
    calls = []

    def fn(x):
        calls.append(x)
        return "cpu-kernel"

    def supports(x, **opts):
        return "too big" if opts.get("big") else None

    kernels.register("fake", "cpu", fn, supports)
    yield calls
    kernels._REGISTRY.pop(("fake", "cpu"), None)


def test_reference_always_none(fake_family):
    assert kernels.resolve("fake", "reference", torch.zeros(2)) is None


def test_auto_picks_supporting_backend_else_reference(fake_family):
    x = torch.zeros(2)
    assert kernels.resolve("fake", "auto", x)(x) == "cpu-kernel"
    assert kernels.resolve("fake", "auto", x, big=True) is None


def test_explicit_backend_errors(fake_family):
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="too big"):
        kernels.resolve("fake", "cpu", x, big=True)
    with pytest.raises(ValueError, match="no 'triton' implementation"):
        kernels.resolve("fake", "triton", x)
    with pytest.raises(ValueError, match="backend"):
        kernels.resolve("fake", "gpu", x)


def test_global_default(fake_family):
    x = torch.zeros(2)
    assert kernels.get_backend() == "auto"
    with kernels.use_backend("reference"):
        assert kernels.resolve("fake", None, x) is None
    assert kernels.resolve("fake", None, x) is not None
    with pytest.raises(ValueError, match="backend"):
        kernels.set_backend("fast")
    with pytest.raises(ValueError, match="backend"):
        kernels.register("fake", "auto", lambda: None)
    assert "cpu" in kernels.available("fake")
