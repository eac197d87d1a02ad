"""numba CPU scans of the peer families (kernels/cpu/peers.py) against the reference loops (the
cases of peers_cases.py), and their fallback: without numba ``"auto"`` runs the reference loop
and ``backend="cpu"`` names the reason."""
import pytest
import torch

from spikefuse.functional.norse import NorseLIFParams, NorseLIFState, norse_lif_multistep
from spikefuse.functional.snntorch import (LeakyParams, LeakyState, SynapticParams, leaky_multistep,
                                           synaptic_multistep)

pytest.importorskip("numba")  # no_numba, two_threads: tests/kernels/conftest.py

from peers_cases import *  # noqa: E402,F401,F403  (the shared tests)


@pytest.fixture
def backend():
    return "cpu"


def test_without_numba_auto_runs_the_reference_and_cpu_says_why(no_numba):
    x = torch.rand(4, 2, 3) * 2
    with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
        with pytest.raises(ValueError, match="numba is unavailable"):
            leaky_multistep(x, LeakyParams(beta=0.5), backend="cpu")
    with pytest.raises(ValueError, match="numba is unavailable"):
        norse_lif_multistep(x, NorseLIFParams(), backend="cpu")
    for f, p in ((leaky_multistep, LeakyParams(beta=0.5)), (norse_lif_multistep, NorseLIFParams())):
        assert torch.equal(f(x, p, backend="auto")[0], f(x, p, backend="reference")[0])


def test_several_tiles_on_two_threads(two_threads):
    """M = 2 TILE + 76: three tiles (the last one partial), split over two threads (jit.run's neuron
    ranges)."""
    from spikefuse.kernels.cpu._nb_peers import TILE

    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, TILE + 38, generator=g) * 2 + 1
    for f, p in ((leaky_multistep, LeakyParams(beta=0.8, reset_delay=False)), (norse_lif_multistep, NorseLIFParams())):
        outs = {}
        for be in ("cpu", "reference"):
            xx = x.clone().requires_grad_()
            s = f(xx, p, backend=be)[0]
            (gx,) = torch.autograd.grad((s * torch.linspace(-1, 1, s.numel()).reshape(s.shape)).sum(), [xx])
            outs[be] = (s, gx)
        assert torch.equal(outs["cpu"][0], outs["reference"][0]) and torch.equal(outs["cpu"][1], outs["reference"][1])


def test_gradients_broadcast_over_time_are_read_as_one_row():
    """A loss whose gradient is the same at every step (``spikes.sum(0) @ w``: stride 0 over
    time) reaches the kernels as one ``(1, M)`` row (``jit.grad_rows``), not a
    materialised copy; input and initial-state gradients still bit-identical to the reference,
    for the spike and the trace outputs."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, 37, generator=g) * 1.5 + 0.8
    w = torch.randn(37, generator=g)
    cases = ((leaky_multistep, LeakyParams(beta=0.8, reset_delay=False), LeakyState(mem=torch.rand(2, 37))),
             (synaptic_multistep, SynapticParams(alpha=0.6, beta=0.8), None),
             (norse_lif_multistep, NorseLIFParams(), NorseLIFState(v=torch.rand(2, 37), i=torch.rand(2, 37))))
    for f, p, st in cases:
        grads = {}
        for be in ("cpu", "reference"):
            xx = x.clone().requires_grad_()
            s0 = None if st is None else type(st)(*(t.clone().requires_grad_() for t in st))
            s, _, tr = f(xx, p, s0, backend=be, return_traces=True)
            loss = (s.sum(0) * w).sum() + sum(t.sum() for t in tr)
            ins = [xx] + ([] if s0 is None else list(s0))
            grads[be] = torch.autograd.grad(loss, ins)
        for a, b in zip(grads["cpu"], grads["reference"]):
            assert torch.equal(a, b), f.__name__
