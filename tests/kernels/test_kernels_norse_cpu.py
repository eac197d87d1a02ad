"""numba CPU scans of norse's refractory LIF and AdEx LIF (kernels/cpu/norse.py) against the
reference loops (the cases of norse_cases.py; the ``no_numba`` / ``two_threads`` fixtures:
tests/kernels/conftest.py), their fallback (without numba ``"auto"`` runs the
reference loop, ``backend="cpu"`` names the reason), several tiles on two threads, and the
modules on the kernel."""
import pytest
import torch

from spikefuse.functional.norse import (NorseLIFAdExParams, NorseLIFRefracParams, norse_lif_adex_multistep,
                                        norse_lif_refrac_multistep)
from spikefuse.neuron.norse import NorseLIFAdEx, NorseLIFRefrac

pytest.importorskip("numba")

from norse_cases import *  # noqa: E402,F401,F403  (the shared tests)
from norse_cases import X, _adex_leaves, _adex_run, _adex_tols, _compare, _gen, _refrac_leaves, _refrac_run, _x  # noqa: E402

_MODELS = ((norse_lif_refrac_multistep, NorseLIFRefracParams()), (norse_lif_adex_multistep, NorseLIFAdExParams()))


@pytest.fixture
def backend():
    return "cpu"


def test_without_numba_auto_runs_the_reference_and_cpu_says_why(no_numba):
    x = torch.rand(4, 2, 3) * 4
    for f, p in _MODELS:
        with pytest.raises(ValueError, match="numba is unavailable"):
            f(x, p, backend="cpu")
        assert torch.equal(f(x, p, backend="auto")[0], f(x, p, backend="reference")[0])


def test_several_tiles_on_two_threads(two_threads):
    """M = 2 TILE + 76: three tiles (the last one partial), split over two threads (jit.run's
    neuron ranges)."""
    from spikefuse.kernels.cpu._nb_norse import TILE

    x = torch.randn(4, 2, TILE + 38, generator=torch.Generator().manual_seed(2)) * 4 + 3
    for f, p in _MODELS:
        outs = {}
        for be in ("cpu", "reference"):
            xx = x.clone().requires_grad_()
            s = f(xx, p, backend=be)[0]
            (gx,) = torch.autograd.grad((s * torch.linspace(-1, 1, s.numel()).reshape(s.shape)).sum(), [xx])
            outs[be] = (s, gx)
        assert torch.equal(outs["cpu"][0], outs["reference"][0])
        torch.testing.assert_close(outs["cpu"][1], outs["reference"][1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [NorseLIFRefrac, NorseLIFAdEx])
def test_modules_run_the_kernel(cls, monkeypatch):
    """``backend="auto"`` on CPU picks the kernel (spied on), with the reference's spikes."""
    from spikefuse.kernels.cpu import norse as K

    calls = []
    name = "norse_lif_refrac_cpu" if cls is NorseLIFRefrac else "norse_lif_adex_cpu"
    real = getattr(K, name)
    from spikefuse import kernels

    key = "norse_lif_refrac" if cls is NorseLIFRefrac else "norse_lif_adex"
    kern = kernels._REGISTRY[(key, "cpu")]
    monkeypatch.setitem(kernels._REGISTRY, (key, "cpu"),
                        kernels.Kernel(lambda *a, **k: calls.append(1) or real(*a, **k), kern.supports))
    x = torch.rand(5, 2, 7) * 8
    z, _ = cls(backend="auto")(x)
    assert calls and torch.equal(z, cls(backend="reference")(x)[0])


@pytest.mark.parametrize("f,p", _MODELS)
def test_output_gradient_broadcast_over_time(f, p):
    """A loss that sums the outputs gives gradients broadcast over time (stride 0): the kernel
    reads their one row (jit.grad_rows) and gives the gradient of a materialised copy, bit for bit
    (and the reference's within the suite's tolerance)."""
    x = torch.randn(7, 2, 33, generator=torch.Generator().manual_seed(4)) * 4 + 3
    grads = []
    for be, copy in (("cpu", False), ("cpu", True), ("reference", False)):
        xx = x.clone().requires_grad_()
        s, st, tr = f(xx, p, backend=be, return_traces=True)
        outs = [s, tr.lif.v if hasattr(tr, "lif") else tr.v]   # spikes and the membrane trace
        if copy:   # the same upstream gradient, materialised
            loss = sum((o * torch.ones_like(o)).sum() for o in outs)
        else:
            loss = sum(o.sum() for o in outs)
        (gx,) = torch.autograd.grad(loss, [xx])
        grads.append(gx)
    assert torch.equal(grads[0], grads[1])
    torch.testing.assert_close(grads[0], grads[2], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("model", ["refrac", "adex"])
@pytest.mark.parametrize("layout", ["numbers", "mixed"])
def test_parameters_with_one_value_and_mixed_tiles(two_threads, model, layout):
    """Parameters with one value (numbers) run the lane loops with them as scalars: the forward's
    ``uni`` variant (every neuron) and the backward's per-tile test; ``mixed``: one per-neuron
    parameter equal over the first tile only (the forward's per-neuron variant, a backward with
    one scalar tile and per-neuron tiles), three tiles on two threads. Both give the reference's
    bits (outputs, traces, input and initial-state gradients; parameter gradients to 5e-5)."""
    from spikefuse.kernels.cpu._nb_norse import TILE

    n = TILE + 38
    x = _x((4, 2, n), **X)
    leaves = (_refrac_leaves if model == "refrac" else _adex_leaves)(x)
    key, value = ("tau_mem_inv", 100.0) if model == "refrac" else ("adaptation_current", 4.0)
    if layout == "numbers":
        leaves[key] = torch.tensor(value)
    else:
        p = torch.full((n,), value)
        p[TILE:] = value * (0.8 + 0.4 * torch.rand(n - TILE, generator=_gen(11)))
        leaves[key] = p
    if model == "refrac":
        _compare("cpu", _refrac_run("super"), leaves, tol=5e-5)
    else:
        exact, out_tol = _adex_tols("cpu")
        _compare("cpu", _adex_run("super"), leaves, exact_grads=exact, out_tol=out_tol, tol=5e-5)


def test_all_uniform_compares_bits():
    """``all_uniform``: one value per row, bit for bit (-0.0 and 0.0 differ; a NaN row is one
    value), any number of rows; no neurons is uniform."""
    import numpy as np

    from spikefuse.kernels.cpu import jit

    nb = jit.kernels("norse")
    P = np.ones((3, 50), np.float32)
    assert nb.all_uniform(P)
    P[2, 49] = 1.0000001
    assert not nb.all_uniform(P)
    P[2, 49] = 1.0
    P[0, :] = 0.0
    P[0, 7] = -0.0
    assert not nb.all_uniform(P)
    P[0, :] = np.nan
    assert nb.all_uniform(P)
    assert nb.all_uniform(np.ones((11, 0), np.float32))
