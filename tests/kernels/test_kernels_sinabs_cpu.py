"""numba CPU scan of sinabs LIF / IAF (kernels/cpu/sinabs.py) against the reference loop (the
cases of sinabs_cases.py), and its fallback: without numba ``"auto"`` runs the reference loop and
``backend="cpu"`` names the reason."""
import pytest
import torch

from spikefuse.functional.sinabs import SinabsParams, sinabs_multistep
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

from sinabs_cases import *  # noqa: E402,F401,F403  (the shared tests)


@pytest.fixture
def backend():
    return "cpu"


@pytest.fixture
def no_numba(monkeypatch):
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    yield
    monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
    jit.reset_for_tests()


def test_without_numba_auto_runs_the_reference_and_cpu_says_why(no_numba):
    x = torch.rand(4, 2, 3) * 2
    p = SinabsParams(alpha_mem=0.8)
    with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
        with pytest.raises(ValueError, match="numba is unavailable"):
            sinabs_multistep(x, p, backend="cpu")
    assert torch.equal(sinabs_multistep(x, p, backend="auto")[0], sinabs_multistep(x, p, backend="reference")[0])


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_several_tiles_on_two_threads(two_threads):
    """M = 1100: three 512-neuron tiles, split over two threads (jit.run's neuron ranges)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, 550, generator=g) * 2 + 1
    p = SinabsParams(alpha_mem=0.8, alpha_syn=0.7)
    outs = {}
    for be in ("cpu", "reference"):
        xx = x.clone().requires_grad_()
        s = sinabs_multistep(xx, p, backend=be)[0]
        (gx,) = torch.autograd.grad((s * torch.linspace(-1, 1, s.numel()).reshape(s.shape)).sum(), [xx])
        outs[be] = (s, gx)
    assert torch.equal(outs["cpu"][0], outs["reference"][0])
    torch.testing.assert_close(outs["cpu"][1], outs["reference"][1], rtol=1e-5, atol=1e-6)
