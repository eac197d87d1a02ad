"""The sinabs LIF / IAF fused scans (kernels/triton/sinabs.py through the generic template,
kernels/cpu/sinabs.py with numba) against the reference loop (functional/sinabs.py), shared by
test_kernels_sinabs_triton.py and test_kernels_sinabs_cpu.py (each defines the ``backend``
fixture and imports these tests): spikes, final states and traces bit-identical; input and
initial-state gradients bit-identical through the surrogates without an ``exp`` (ATan,
Heaviside, Triangle) and, on CPU with MKL VML (torch.exp's routine), through SingleExponential /
PeriodicExponential / Gaussian too (elsewhere to tolerance: an ulp of ``exp``); learnable alpha_mem / alpha_syn / tau_mem gradients to 1e-5. Cases: every
spike function and reset, synapse or not, norm_input or not (IAF), the min_v_mem clamp, inputs
at exactly k * threshold, large inputs (many spikes per step), odd N (a partial block),
non-contiguous input, T=1, fp16 input; ``supports`` reasons and the ``"auto"`` fallback. Small
shapes: the Triton interpreter is slow."""
import math

import pytest
import torch

from equivalence import GRAD_TOL, outputs_and_grads
from spikefuse import surrogate as sg
from spikefuse.functional.sinabs import (Gaussian, Heaviside, PeriodicExponential, SinabsParams, SinabsState,
                                         sinabs_multistep)
from spikefuse.neuron.sinabs import SinabsIAF, SinabsLIF

T, B, N = 5, 2, 23  # M = 46: two interpreter blocks of 32, the second one partial
EXACT = ("x", "v0", "i0")


def _x(shape=(T, B, N), scale=1.5, shift=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale + shift


def _compare(backend, run, leaves, exact=EXACT, min_spikes=True):
    """Outputs bit for bit; the ``exact`` gradients bit for bit, the others to tolerance."""
    ok, gk = outputs_and_grads(run, backend, leaves)
    orf, gr = outputs_and_grads(run, "reference", leaves)
    if min_spikes:
        assert 0 < orf[0].sum() and (orf[0] == 0).any(), "spikes are all 0 or never 0: a weak case"
    for n, (a, b) in enumerate(zip(ok, orf)):
        assert a.dtype == b.dtype and a.shape == b.shape, n
        assert torch.equal(a, b), f"output {n} differs"
    assert gk.keys() == gr.keys()
    for k in gr:
        assert gk[k] is not None and gr[k] is not None, k
        if k in exact:
            assert torch.equal(gk[k], gr[k]), f"grad {k} is not bit-identical"
        else:
            torch.testing.assert_close(gk[k], gr[k], **GRAD_TOL[torch.float32], msg=lambda m: f"grad {k}: {m}")


def _run(**kw):
    """A run over leaves x, v0 (and i0 with a synapse; alpha_mem / alpha_syn when given as leaves)."""
    def run(backend, lv):
        p = SinabsParams(**{**kw, **{k: lv[k] for k in ("alpha_mem", "alpha_syn") if k in lv}})
        st = SinabsState(lv["v0"], lv.get("i0"))
        s, last, tr = sinabs_multistep(lv["x"], p, st, backend=backend, return_traces=True)
        if p.alpha_syn is None:
            return [s, last.v_mem, tr.v_mem]
        return [s, last.v_mem, last.i_syn, tr.v_mem, tr.i_syn]
    return run


def _leaves(x, syn=False, **params):
    g = torch.Generator().manual_seed(3)
    lv = dict(x=x, v0=torch.rand(x.shape[1:], generator=g) * 0.5, **params)
    if syn:
        lv["i0"] = torch.rand(x.shape[1:], generator=g) * 0.5
    return lv


ATAN = sg.ATan(2.0)


def _exp_exact(backend) -> bool:
    """Whether the backend's surrogate ``exp`` is torch's (bit-exact gradients through
    SingleExponential / PeriodicExponential / Gaussian): the CPU kernels' with MKL VML
    (kernels/cpu/_nb_vml.py); Triton's exp is not torch's CPU exp."""
    if backend != "cpu":
        return False
    from spikefuse.kernels.cpu import _nb_vml

    return _nb_vml.AVAILABLE


@pytest.mark.parametrize("spike_fn,reset_fn,syn", [
    ("multi", "subtract", False), ("multi", "reset", True), ("single", "subtract", True), ("single", "reset", False),
    ("max", "subtract", True), ("max", "reset", False)])  # each spike function with each reset, synapse or not
def test_lif_matches_reference(backend, spike_fn, reset_fn, syn):
    kw = dict(alpha_mem=math.exp(-1 / 3), spike_threshold=0.7, spike_fn=spike_fn, reset_fn=reset_fn,
              max_num_spikes_per_bin=2, reset_value=-0.1, surrogate=ATAN)
    if syn:
        kw["alpha_syn"] = math.exp(-0.5)
    _compare(backend, _run(**kw), _leaves(_x(), syn))


@pytest.mark.parametrize("syn", [False, True], ids=["nosyn", "syn"])
def test_iaf_clamp_and_subtract_value(backend, syn):
    kw = dict(alpha_mem=1.0, norm_input=False, spike_threshold=0.5, subtract_value=0.3, min_v_mem=-0.4,
              surrogate=sg.Triangle(0.8, 1.2), alpha_syn=0.6 if syn else None)
    _compare(backend, _run(**kw), _leaves(_x(shift=0.2), syn))


def test_learnable_alphas(backend):
    g = torch.Generator().manual_seed(5)
    leaves = _leaves(_x(), True, alpha_mem=0.5 + 0.4 * torch.rand(N, generator=g), alpha_syn=torch.tensor(0.6))
    _compare(backend, _run(spike_threshold=0.6, surrogate=ATAN), leaves)
    leaves = _leaves(_x(), False, alpha_mem=torch.tensor(0.9))
    _compare(backend, _run(spike_fn="single", norm_input=False, surrogate=ATAN), leaves)


@pytest.mark.parametrize("which", ["single_exponential", "periodic", "gaussian", "heaviside"])
def test_sinabs_surrogates(backend, which):
    thr = 0.6
    sur = {"single_exponential": None, "periodic": PeriodicExponential(thr), "gaussian": Gaussian(thr),
           "heaviside": Heaviside(thr, window=0.4)}[which]
    exact = EXACT if which == "heaviside" or _exp_exact(backend) else ()
    kw = dict(alpha_mem=0.8, alpha_syn=0.7, spike_threshold=thr, surrogate=sur)
    _compare(backend, _run(**kw), _leaves(_x(), True), exact=exact)


def test_at_k_times_threshold_and_many_spikes(backend):
    # IAF from v = 0: 0.5 / 0.25 = 2 spikes exactly, remainder 0; 0.9 / 0.3 at the float edge of 3;
    # 1.0 / 0.25 = 4; 0.25 single spike at >= (fires, v back to 0)
    for thr, vals in ((0.25, [0.5, 0.75, 1.0, 0.25, 0.0]), (0.3, [0.9, 0.6, 0.3, 0.6000001, 1.2])):
        x = torch.tensor(vals).reshape(5, 1, 1).expand(5, 1, 3).contiguous()
        for fn in ("multi", "single", "max"):
            p = SinabsParams(alpha_mem=1.0, norm_input=False, spike_threshold=thr, spike_fn=fn, max_num_spikes_per_bin=3)
            a = sinabs_multistep(x, p, backend=backend, return_traces=True)
            b = sinabs_multistep(x, p, backend="reference", return_traces=True)
            assert torch.equal(a[0], b[0]) and torch.equal(a[2].v_mem, b[2].v_mem) and torch.equal(a[1].v_mem, b[1].v_mem)
            if thr == 0.25 and fn == "multi":  # hand-derived: counts 2, 3, 4, 1, 0 and v = 0 throughout
                assert a[0][:, 0, 0].tolist() == [2.0, 3.0, 4.0, 1.0, 0.0] and a[2].v_mem.eq(0).all()
    # large inputs: tens of spikes per step
    kw = dict(alpha_mem=0.9, alpha_syn=0.8, spike_threshold=0.5, surrogate=ATAN)
    _compare(backend, _run(**kw), _leaves(_x(scale=20.0, shift=10.0), True))


def test_noncontiguous_t1_default_state_fp16(backend):
    kw = dict(alpha_mem=0.8, alpha_syn=0.7, spike_threshold=0.6, surrogate=ATAN)
    x = _x((N, B, T)).permute(2, 1, 0)
    assert not x.is_contiguous()
    _compare(backend, _run(**kw), _leaves(x, True))
    _compare(backend, _run(**kw), _leaves(_x((1, B, N), shift=2.0), True), min_spikes=False)
    p = SinabsParams(alpha_mem=0.8)
    for xx in (_x(), _x().half()):
        a, b = sinabs_multistep(xx, p, backend=backend), sinabs_multistep(xx, p, backend="reference")
        assert a[0].dtype == xx.dtype and torch.equal(a[0], b[0]) and torch.equal(a[1].v_mem, b[1].v_mem)


def test_modules_and_tau_gradients(backend):
    x = _x()
    for make in (lambda be: SinabsLIF(tau_mem=3.0, tau_syn=2.0, spike_threshold=0.6, backend=be),
                 lambda be: SinabsIAF(spike_threshold=0.6, tau_syn=2.0, backend=be),
                 lambda be: SinabsLIF(tau_mem=3.0, train_alphas=True, surrogate_grad_fn=ATAN, backend=be)):
        res = {}
        for be in (backend, "reference"):
            m = make(be)
            xx = x.clone().requires_grad_()
            s = m(xx)
            loss = (s * torch.linspace(-1, 1, s.numel()).reshape(s.shape)).sum() + m.v_mem.sum()
            loss.backward()
            res[be] = (s, m.v_mem.detach(), xx.grad, [p.grad for p in m.parameters()])
        (s1, v1, g1, p1), (s2, v2, g2, p2) = res[backend], res["reference"]
        assert torch.equal(s1, s2) and torch.equal(v1, v2)
        if _exp_exact(backend):   # the default surrogate (SingleExponential) and ATan: bit-exact input gradients
            assert torch.equal(g1, g2)
        else:
            torch.testing.assert_close(g1, g2, **GRAD_TOL[torch.float32])
        assert len(p1) == len(p2) > 0
        for a, b in zip(p1, p2):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, b.abs().max().item()))


def test_refusals_and_auto_fallback(backend):
    x = _x()
    thr = torch.tensor(0.7, requires_grad=True)
    p = SinabsParams(alpha_mem=0.8, spike_threshold=thr, surrogate=ATAN)
    with pytest.raises(ValueError, match="spike_threshold that requires grad"):
        sinabs_multistep(x, p, backend=backend)
    with pytest.raises(ValueError, match="no in-kernel formula"):
        sinabs_multistep(x, SinabsParams(alpha_mem=0.8, surrogate=sg.Custom(torch.sigmoid)), backend=backend)
    with pytest.raises(ValueError, match="float64"):
        sinabs_multistep(x.double(), SinabsParams(alpha_mem=0.8), backend=backend)
    assert torch.equal(sinabs_multistep(x, p, backend="auto")[0], sinabs_multistep(x, p, backend="reference")[0])
