"""numba CPU scan of sinabs LIF / IAF (kernels/cpu/sinabs.py) against the reference loop (the
cases of sinabs_cases.py), and its fallback: without numba ``"auto"`` runs the reference loop and
``backend="cpu"`` names the reason."""
import pytest
import torch

from spikefuse import surrogate as sg
from spikefuse.functional.sinabs import SinabsParams, sinabs_multistep

pytest.importorskip("numba")  # no_numba, two_threads: tests/kernels/conftest.py

from sinabs_cases import *  # noqa: E402,F401,F403  (the shared tests)
from spikefuse.kernels.cpu import _nb_vml  # noqa: E402


@pytest.fixture
def backend():
    return "cpu"


def test_without_numba_auto_runs_the_reference_and_cpu_says_why(no_numba):
    x = torch.rand(4, 2, 3) * 2
    p = SinabsParams(alpha_mem=0.8)
    with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
        with pytest.raises(ValueError, match="numba is unavailable"):
            sinabs_multistep(x, p, backend="cpu")
    assert torch.equal(sinabs_multistep(x, p, backend="auto")[0], sinabs_multistep(x, p, backend="reference")[0])


def test_several_tiles_on_two_threads(two_threads):
    """M = 2 TILE + 76: three tiles (the last one partial), split over two threads (jit.run's neuron
    ranges)."""
    from spikefuse.kernels.cpu._nb_sinabs import TILE

    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, TILE + 38, generator=g) * 2 + 1
    p = SinabsParams(alpha_mem=0.8, alpha_syn=0.7)
    outs = {}
    for be in ("cpu", "reference"):
        xx = x.clone().requires_grad_()
        s = sinabs_multistep(xx, p, backend=be)[0]
        (gx,) = torch.autograd.grad((s * torch.linspace(-1, 1, s.numel()).reshape(s.shape)).sum(), [xx])
        outs[be] = (s, gx)
    assert torch.equal(outs["cpu"][0], outs["reference"][0])
    if _nb_vml.AVAILABLE:    # the default surrogate's exp is torch's (MKL VML): the same bits
        assert torch.equal(outs["cpu"][1], outs["reference"][1])
    else:
        torch.testing.assert_close(outs["cpu"][1], outs["reference"][1], rtol=1e-5, atol=1e-6)


def test_gradients_broadcast_over_time_are_read_as_one_row():
    """A loss whose gradient is the same at every step (``spikes.sum(0) @ w``, ``v_seq.sum()``:
    stride 0 over time) reaches the kernel as one ``(1, M)`` row (``jit.grad_rows``);
    the input and initial-state gradients are still those of the reference (ATan: bit-identical)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, 37, generator=g) * 1.5 + 0.8
    w = torch.randn(37, generator=g)
    p = SinabsParams(alpha_mem=0.8, alpha_syn=0.7, surrogate=sg.ATan())
    grads = {}
    for be in ("cpu", "reference"):
        xx = x.clone().requires_grad_()
        s, _, tr = sinabs_multistep(xx, p, backend=be, return_traces=True)
        loss = (s.sum(0) * w).sum() + tr.v_mem.sum() + tr.i_syn.sum()
        grads[be] = torch.autograd.grad(loss, [xx])[0]
    assert torch.equal(grads["cpu"], grads["reference"])


def test_sigmoid_surrogate_bit_exact_in_torchs_vector_lanes():
    """Sigmoid's exp in the kernel is SLEEF's expf, as torch's sigmoid computes it in its vector
    lanes: with M = 64 (a multiple of torch's vector step, one thread: no scalar remainder) the
    input and initial-state gradients are the reference's bits (libm's expf gave ~6 % of them an
    ulp off)."""
    from spikefuse.kernels.cpu.lif import _VEC_STEP

    if torch.backends.cpu.get_cpu_capability() not in _VEC_STEP:
        pytest.skip(f"the vector-lane exp is reproduced for {sorted(_VEC_STEP)} only")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 2, 32, generator=g) * 1.5 + 0.8
    w = torch.randn(x.shape, generator=g)
    p = SinabsParams(alpha_mem=0.8, alpha_syn=0.7, spike_threshold=0.6, surrogate=sg.Sigmoid(4.0))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for be in ("cpu", "reference"):
            xx = x.clone().requires_grad_()
            s = sinabs_multistep(xx, p, backend=be)[0]
            out[be] = (s, *torch.autograd.grad((s * w).sum(), [xx]))
    finally:
        torch.set_num_threads(old)
    assert 0 < out["reference"][0].sum() < out["reference"][0].numel()
    for a, b in zip(out["cpu"], out["reference"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("spike_fn,reset_fn", [("multi", "subtract"), ("single", "reset"), ("max", "subtract")])
def test_exp_surrogates_bit_exact_over_tiles(two_threads, spike_fn, reset_fn):
    """sinabs' default SingleExponential, PeriodicExponential and Gaussian over three tiles (the
    last partial) on two threads: the surrogate's exp is one vexp per row (torch.exp's MKL VML),
    so the input and initial-state gradients are the reference's bits; with a membrane reset and
    only a v_seq gradient the surrogate is not evaluated (no exp row)."""
    from spikefuse.functional.sinabs import Gaussian, PeriodicExponential, SinabsState
    from spikefuse.kernels.cpu._nb_sinabs import TILE

    if not _nb_vml.AVAILABLE:
        pytest.skip(f"no VML: {_nb_vml.REASON}")
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 2, TILE + 38, generator=g) * 1.5 + 0.8
    v0, i0 = torch.rand(x.shape[1:], generator=g), torch.rand(x.shape[1:], generator=g)
    w = torch.randn(x.shape, generator=g)
    for sur in (None, PeriodicExponential(0.6), Gaussian(0.6, sigma=0.3)):
        p = SinabsParams(alpha_mem=0.8, alpha_syn=0.7, spike_threshold=0.6, spike_fn=spike_fn, reset_fn=reset_fn,
                         max_num_spikes_per_bin=2, surrogate=sur)
        out = {}
        for be in ("cpu", "reference"):
            leaves = [t.clone().requires_grad_() for t in (x, v0, i0)]
            s, _, tr = sinabs_multistep(leaves[0], p, SinabsState(*leaves[1:]), backend=be, return_traces=True)
            losses = ((s * w).sum() + (tr.v_mem * w).sum(), (tr.v_mem * w).sum())
            out[be] = (s, *(g for loss in losses for g in torch.autograd.grad(loss, leaves, retain_graph=True)))
        assert 0 < out["reference"][0].sum() < out["reference"][0].numel()
        for k, (a, b) in enumerate(zip(out["cpu"], out["reference"])):
            assert torch.equal(a, b), (sur, k)
