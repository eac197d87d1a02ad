"""numba CPU scans of the peer families (kernels/cpu/peers.py) against the reference loops (the
cases of peers_cases.py), and their fallback: without numba ``"auto"`` runs the reference loop
and ``backend="cpu"`` names the reason."""
import pytest
import torch

from spikefuse.functional.norse import NorseLIFParams, norse_lif_multistep
from spikefuse.functional.snntorch import LeakyParams, leaky_multistep
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

from peers_cases import *  # noqa: E402,F401,F403  (the shared tests)


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
    with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
        with pytest.raises(ValueError, match="numba is unavailable"):
            leaky_multistep(x, LeakyParams(beta=0.5), backend="cpu")
    with pytest.raises(ValueError, match="numba is unavailable"):
        norse_lif_multistep(x, NorseLIFParams(), backend="cpu")
    for f, p in ((leaky_multistep, LeakyParams(beta=0.5)), (norse_lif_multistep, NorseLIFParams())):
        assert torch.equal(f(x, p, backend="auto")[0], f(x, p, backend="reference")[0])
