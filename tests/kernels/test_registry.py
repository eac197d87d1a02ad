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


def test_gpu_machine_loads_the_triton_backend_at_import():
    """On a machine with a GPU, importing spikefuse registers the Triton kernels at once, so a
    model compiled before any eager call has no graph break at a lazy backend import; without
    a GPU, triton waits for the first call that needs it."""
    import subprocess
    import sys

    code = ("import torch; torch.cuda.is_available = lambda: {gpu}\n"
            "from spikefuse.neuron import LIF\n"
            "from spikefuse import kernels\n"
            "print(kernels._loaded, ('lif', 'triton') in kernels._REGISTRY)\n")
    for gpu, want in ((True, "True True"), (False, "False False")):
        out = subprocess.run([sys.executable, "-c", code.format(gpu=gpu)], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[-2] == want
