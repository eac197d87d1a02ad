"""The peer families' fused scans (kernels/triton/peers.py through the generic template,
kernels/cpu/peers.py with numba) against the reference loops (functional/snntorch.py,
functional/norse.py), shared by test_kernels_peers_triton.py and test_kernels_peers_cpu.py
(each defines the ``backend`` fixture and imports these tests): spikes, final states and
traces bit-identical, input and initial-state gradients bit-identical (the VJPs sum in
autograd's order), parameter gradients to tolerance. Cases: every snnTorch reset mechanism with
and without reset_delay (Leaky and Synaptic), learnable alpha / beta (some out of [0, 1]: the
clamp) and threshold, norse's
super / triangle / heaviside methods with tensor parameters, odd N (a partial block),
non-contiguous input, T=1, at-threshold inputs, norse's tanh / circ / heavi_erfc (gradients to
1e-6) (strict ``>``: no spike), fp16 input;
``supports`` reasons and the ``"auto"`` fallback. Small shapes: the Triton interpreter is slow."""
import pytest
import torch

from equivalence import GRAD_TOL, outputs_and_grads
from spikefuse import surrogate as sg
from spikefuse.functional.norse import NorseLIFParams, NorseLIFState, norse_lif_multistep
from spikefuse.functional.snntorch import (LeakyParams, LeakyState, SynapticParams, SynapticState, leaky_multistep,
                                           synaptic_multistep)

T, B, N = 5, 2, 23  # M = 46: two interpreter blocks of 32, the second one partial


def _x(shape=(T, B, N), scale=0.8, shift=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale + shift


def _compare(backend, run, leaves, exact=("x",), min_spikes=True):
    """Outputs bit for bit; the ``exact`` gradients bit for bit, the others to tolerance."""
    ok, gk = outputs_and_grads(run, backend, leaves)
    orf, gr = outputs_and_grads(run, "reference", leaves)
    if min_spikes:
        assert 0 < orf[0].sum() < orf[0].numel(), "spikes are all 0 or all 1: a weak case"
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


def _exp_exact(backend) -> bool:
    """Whether ``backend``'s kernels compute a surrogate's exp as torch.exp does: the numba CPU
    kernels with MKL VML (kernels/cpu/_nb_vml.py: each step's row of exps by torch.exp's own
    routine); then SLAYER's exp / HeaviErfc give the reference's input / state gradient bits."""
    if backend != "cpu":
        return False
    from spikefuse.kernels.cpu import _nb_vml

    return bool(_nb_vml.AVAILABLE)


def _sigmoid_exact(backend) -> bool:
    """Whether ``backend``'s kernels compute Sigmoid's exp as torch's CPU sigmoid does (SLEEF's
    expf in its vector lanes, libm's in the remainder: kernels/cpu/lif.py ``torch_vec_lanes``):
    the numba CPU kernels on an AVX2 / AVX512 CPU."""
    if backend != "cpu":
        return False
    from spikefuse.kernels.cpu.lif import _VEC_STEP

    return torch.backends.cpu.get_cpu_capability() in _VEC_STEP


def _compare_runs(backend, run, leaves):
    """(kernel outputs, kernel grads, reference grads) after asserting the outputs bit for bit,
    some spikes and no spikes, and the same gradient keys."""
    ok, gk = outputs_and_grads(run, backend, leaves)
    orf, gr = outputs_and_grads(run, "reference", leaves)
    assert 0 < orf[0].sum() < orf[0].numel()
    assert all(torch.equal(a, b) for a, b in zip(ok, orf))
    assert gk.keys() == gr.keys()
    return ok, gk, gr


# --------------------------------------------------------------------------- snnTorch Leaky


def _leaky_run(mech, delay, surrogate=sg.ATan(2.0)):
    def run(backend, lv):
        p = LeakyParams(beta=lv["beta"], threshold=lv["threshold"], reset_mechanism=mech, reset_delay=delay,
                        surrogate=surrogate)
        s, st, tr = leaky_multistep(lv["x"], p, LeakyState(lv["mem0"]), backend=backend, return_traces=True)
        return [s, st.mem, tr.mem]
    return run


def _leaky_leaves(x):
    g = torch.Generator().manual_seed(3)
    beta = torch.rand(x.shape[-1], generator=g) * 1.2 - 0.1  # some outside [0, 1]: clamped
    return dict(x=x, beta=beta, threshold=torch.tensor(0.9), mem0=torch.rand(x.shape[1:], generator=g))


@pytest.mark.parametrize("delay", [True, False], ids=["delay", "no_delay"])
@pytest.mark.parametrize("mech", ["subtract", "zero", "none"])
def test_leaky_matches_reference(backend, mech, delay):
    _compare(backend, _leaky_run(mech, delay), _leaky_leaves(_x()), exact=("x", "mem0"))


@pytest.mark.parametrize("surrogate", [sg.FastSigmoid(25.0), sg.Triangle(0.8, 1.2)], ids=["fast_sigmoid", "triangle"])
def test_leaky_surrogates(backend, surrogate):
    _compare(backend, _leaky_run("subtract", True, surrogate), _leaky_leaves(_x()), exact=("x", "mem0"))


@pytest.mark.parametrize("delay", [True, False], ids=["delay", "no_delay"])
@pytest.mark.parametrize("mech", ["subtract", "zero"])
def test_leaky_slayer_exp(backend, mech, delay):
    """SLAYER's exp: outputs bit for bit; x / mem0 gradients bit for bit where the kernels take
    torch.exp's bits (:func:`_exp_exact`), else to tolerance; beta / threshold to tolerance."""
    exact = ("x", "mem0") if _exp_exact(backend) else ()
    _compare(backend, _leaky_run(mech, delay, sg.SLAYERExp(0.5, 1.0)), _leaky_leaves(_x()), exact=exact)


@pytest.mark.parametrize("mech,delay", [("subtract", True), ("zero", False)])
def test_leaky_sigmoid(backend, mech, delay):
    """Sigmoid: outputs bit for bit; x / mem0 gradients bit for bit where the kernels reproduce
    torch's sigmoid (:func:`_sigmoid_exact`), else to tolerance; beta / threshold to tolerance."""
    exact = ("x", "mem0") if _sigmoid_exact(backend) else ()
    _compare(backend, _leaky_run(mech, delay, sg.Sigmoid(4.0)), _leaky_leaves(_x()), exact=exact)


def test_leaky_noncontiguous_and_t1(backend):
    x = _x((N, B, T)).permute(2, 1, 0)  # (T, B, N), not contiguous
    assert not x.is_contiguous()
    _compare(backend, _leaky_run("zero", False), _leaky_leaves(x), exact=("x", "mem0"))
    _compare(backend, _leaky_run("subtract", True), _leaky_leaves(_x((1, B, N), shift=1.0)), exact=("x", "mem0"))


def test_leaky_at_threshold_and_fp16(backend):
    # beta = 0.5, x = 0.5 from mem = 1: mem' = 1.0 = threshold exactly, which snnTorch's ">" does not fire
    x = torch.full((3, 1, 3), 0.5)
    p = LeakyParams(beta=0.5, threshold=1.0)
    s, st, tr = leaky_multistep(x, p, LeakyState(torch.ones(1, 3)), backend=backend, return_traces=True)
    assert s.sum() == 0 and torch.equal(tr.mem[0], torch.ones(1, 3))
    ref = leaky_multistep(x, p, LeakyState(torch.ones(1, 3)), backend="reference", return_traces=True)
    assert all(torch.equal(a, b) for a, b in zip((s, st.mem, tr.mem), (ref[0], ref[1].mem, ref[2].mem)))
    xh = _x().half()
    a, b = leaky_multistep(xh, p, backend=backend), leaky_multistep(xh, p, backend="reference")
    assert a[0].dtype == torch.float16 and torch.equal(a[0], b[0]) and torch.equal(a[1].mem, b[1].mem)


def test_leaky_refusals_and_auto_fallback(backend):
    x = _x()
    gsf = torch.tensor(1.0, requires_grad=True)
    p = LeakyParams(beta=0.5, graded_spikes_factor=gsf)
    with pytest.raises(ValueError, match="graded_spikes_factor that requires grad"):
        leaky_multistep(x, p, backend=backend)
    with pytest.raises(ValueError, match="no in-kernel formula"):
        leaky_multistep(x, LeakyParams(beta=0.5, surrogate=sg.Custom(torch.sigmoid)), backend=backend)
    with pytest.raises(ValueError, match="float64"):
        leaky_multistep(x.double(), LeakyParams(beta=0.5), backend=backend)
    assert torch.equal(leaky_multistep(x, p, backend="auto")[0], leaky_multistep(x, p, backend="reference")[0])


def test_leaky_graded_spikes_factor(backend):
    p = dict(graded_spikes_factor=0.5)
    for delay in (True, False):
        x = _x()
        a = leaky_multistep(x, LeakyParams(beta=0.7, reset_delay=delay, **p), backend=backend, return_traces=True)
        b = leaky_multistep(x, LeakyParams(beta=0.7, reset_delay=delay, **p), backend="reference", return_traces=True)
        assert torch.equal(a[0], b[0]) and torch.equal(a[2].mem, b[2].mem) and a[0].max() == 0.5


# --------------------------------------------------------------------------- snnTorch Synaptic


def _synaptic_run(mech, delay, surrogate=sg.ATan(2.0)):
    def run(backend, lv):
        p = SynapticParams(alpha=lv["alpha"], beta=lv["beta"], threshold=lv["threshold"], reset_mechanism=mech,
                           reset_delay=delay, surrogate=surrogate)
        s, st, tr = synaptic_multistep(lv["x"], p, SynapticState(lv["syn0"], lv["mem0"]), backend=backend,
                                       return_traces=True)
        return [s, st.syn, st.mem, tr.syn, tr.mem]
    return run


def _synaptic_leaves(x):
    g = torch.Generator().manual_seed(5)
    n = x.shape[-1]
    return dict(x=x, alpha=torch.rand(n, generator=g) * 1.2 - 0.1, beta=torch.rand(n, generator=g) * 1.2 - 0.1,
                threshold=torch.tensor(1.1), syn0=torch.rand(x.shape[1:], generator=g) * 0.5,
                mem0=torch.rand(x.shape[1:], generator=g) * 1.5)


SYN_X = dict(scale=0.8, shift=0.3)
SYN_EXACT = ("x", "syn0", "mem0")


@pytest.mark.parametrize("delay", [True, False], ids=["delay", "no_delay"])
@pytest.mark.parametrize("mech", ["subtract", "zero", "none"])
def test_synaptic_matches_reference(backend, mech, delay):
    _compare(backend, _synaptic_run(mech, delay), _synaptic_leaves(_x(**SYN_X)), exact=SYN_EXACT)


@pytest.mark.parametrize("surrogate", [sg.FastSigmoid(25.0), sg.Triangle(0.8, 1.2)], ids=["fast_sigmoid", "triangle"])
def test_synaptic_surrogates(backend, surrogate):
    _compare(backend, _synaptic_run("zero", True, surrogate), _synaptic_leaves(_x(**SYN_X)), exact=SYN_EXACT)


@pytest.mark.parametrize("mech,delay", [("subtract", False), ("zero", True), ("none", False)])
@pytest.mark.parametrize("surrogate", [sg.Sigmoid(4.0), sg.SLAYERExp(0.5, 1.0)], ids=["sigmoid", "slayer_exp"])
def test_synaptic_exp_surrogates(backend, surrogate, mech, delay):
    """Surrogates with an exp: outputs bit for bit; SLAYER's x / syn0 / mem0 gradients bit for bit
    where the kernels take torch.exp's bits (:func:`_exp_exact`), Sigmoid's where they reproduce
    torch's sigmoid (:func:`_sigmoid_exact`); the others to 1e-5."""
    run, leaves = _synaptic_run(mech, delay, surrogate), _synaptic_leaves(_x(**SYN_X))
    ok, gk = outputs_and_grads(run, backend, leaves)
    orf, gr = outputs_and_grads(run, "reference", leaves)
    assert all(torch.equal(a, b) for a, b in zip(ok, orf))
    sig = isinstance(surrogate, sg.Sigmoid)
    exact = SYN_EXACT if (_sigmoid_exact(backend) if sig else _exp_exact(backend)) else ()
    for k in gr:
        if k in exact:
            assert torch.equal(gk[k], gr[k]), k
        torch.testing.assert_close(gk[k], gr[k], **GRAD_TOL[torch.float32])


def test_synaptic_noncontiguous_t1_and_default_state(backend):
    x = _x((N, B, T), **SYN_X).permute(2, 1, 0)  # (T, B, N), not contiguous
    assert not x.is_contiguous()
    _compare(backend, _synaptic_run("zero", False), _synaptic_leaves(x), exact=SYN_EXACT)
    _compare(backend, _synaptic_run("subtract", True), _synaptic_leaves(_x((1, B, N), shift=1.0)), exact=SYN_EXACT)
    x = _x(scale=1.0, shift=0.5)
    p = SynapticParams(alpha=0.6, beta=0.9, reset_mechanism="zero", reset_delay=False)
    a, b = synaptic_multistep(x, p, backend=backend), synaptic_multistep(x, p, backend="reference")
    assert 0 < b[0].sum() < b[0].numel()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].syn, b[1].syn) and torch.equal(a[1].mem, b[1].mem)


def test_synaptic_at_threshold_zero_wipes_the_input_and_fp16(backend):
    # alpha = beta = 0.5, x = 0.5 from zero: syn 0.5, 0.75; mem 0.5, 1.0 = threshold (no spike:
    # strict >), then 1.375 > 1: a spike. "zero" (reset_delay=False) wipes the whole new membrane,
    # input included: mem 0 (snnTorch's Synaptic, unlike its Leaky)
    x = torch.full((3, 1, 3), 0.5)
    x[:, 0, 2] = torch.tensor([0.5, 0.5, 0.125])  # the third step of neuron 2 lands on 1.0 (0.5 + 0.375 + 0.125)
    p = SynapticParams(alpha=0.5, beta=0.5, reset_mechanism="zero", reset_delay=False)
    s, st, tr = synaptic_multistep(x, p, backend=backend, return_traces=True)
    assert s[:, 0, 0].tolist() == [0.0, 0.0, 1.0] and tr.mem[:, 0, 0].tolist() == [0.5, 1.0, 0.0]
    assert tr.syn[:, 0, 0].tolist() == [0.5, 0.75, 0.875] and s[2, 0, 2] == 0 and tr.mem[2, 0, 2] == 1.0
    ref = synaptic_multistep(x, p, backend="reference", return_traces=True)
    assert all(torch.equal(a, b) for a, b in zip((s, st.syn, st.mem, tr.syn, tr.mem),
                                                 (ref[0], ref[1].syn, ref[1].mem, ref[2].syn, ref[2].mem)))
    xh = _x(**SYN_X).half()
    a, b = synaptic_multistep(xh, p, backend=backend), synaptic_multistep(xh, p, backend="reference")
    assert a[0].dtype == torch.float16 and torch.equal(a[0], b[0]) and torch.equal(a[1].mem, b[1].mem)


def test_synaptic_refusals_and_auto_fallback(backend):
    x = _x(**SYN_X)
    p = SynapticParams(alpha=0.5, beta=0.5, surrogate=sg.Custom(torch.sigmoid))
    with pytest.raises(ValueError, match="no in-kernel formula"):
        synaptic_multistep(x, p, backend=backend)
    with pytest.raises(ValueError, match="float64"):
        synaptic_multistep(x.double(), SynapticParams(alpha=0.5, beta=0.5), backend=backend)
    assert torch.equal(synaptic_multistep(x, p, backend="auto")[0], synaptic_multistep(x, p, backend="reference")[0])


# --------------------------------------------------------------------------- norse LIF


def _norse_run(method, alpha=10.0):
    def run(backend, lv):
        p = NorseLIFParams(tau_syn_inv=lv["tau_syn_inv"], tau_mem_inv=lv["tau_mem_inv"], v_leak=lv["v_leak"],
                           v_th=lv.get("v_th", 1.0), v_reset=lv["v_reset"], method=method, alpha=alpha)
        z, st, tr = norse_lif_multistep(lv["x"], p, NorseLIFState(lv["v0"], lv["i0"]), backend=backend,
                                        return_traces=True)
        return [z, st.v, st.i, tr.v, tr.i]
    return run


def _norse_leaves(x, v_th=True):
    g = torch.Generator().manual_seed(4)
    n = x.shape[-1]
    lv = dict(x=x, tau_syn_inv=torch.tensor(200.0), tau_mem_inv=80.0 + 60.0 * torch.rand(n, generator=g),
              v_leak=torch.tensor(0.1), v_reset=torch.tensor(-0.1), v0=torch.rand(x.shape[1:], generator=g),
              i0=torch.rand(x.shape[1:], generator=g))
    if v_th:
        lv["v_th"] = torch.tensor(1.0)
    return lv


NORSE_X = dict(scale=4.0, shift=3.0)


@pytest.mark.parametrize("method", ["super", "triangle", "heaviside"])
def test_norse_lif_matches_reference(backend, method):
    # heaviside: the spike carries no gradient, so v_th receives none (not a leaf here)
    leaves = _norse_leaves(_x(**NORSE_X), v_th=method != "heaviside")
    if method == "triangle":  # alpha 10 makes the gradients grow over time: compare relative
        ok, gk = outputs_and_grads(_norse_run(method), backend, leaves)
        orf, gr = outputs_and_grads(_norse_run(method), "reference", leaves)
        assert all(torch.equal(a, b) for a, b in zip(ok, orf))
        assert all(torch.equal(gk[k], gr[k]) for k in ("x", "v0", "i0"))
        for k in gr:
            torch.testing.assert_close(gk[k], gr[k], rtol=1e-5, atol=1e-5 * gr[k].abs().max().item())
        return
    _compare(backend, _norse_run(method), leaves, exact=("x", "v0", "i0"))


def test_norse_lif_noncontiguous_t1_and_default_state(backend):
    x = _x((N, B, T), **NORSE_X).permute(2, 1, 0)
    _compare(backend, _norse_run("super"), _norse_leaves(x), exact=("x", "v0", "i0"))
    _compare(backend, _norse_run("super"), _norse_leaves(_x((1, B, N), scale=4.0, shift=12.0)), exact=("x", "v0", "i0"))
    x = _x(**NORSE_X)
    p = NorseLIFParams(v_leak=0.2)
    a, b = norse_lif_multistep(x, p, backend=backend), norse_lif_multistep(x, p, backend="reference")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].v, b[1].v) and torch.equal(a[1].i, b[1].i)


def test_norse_lif_at_threshold(backend):
    # v = 0, i = 0, a_m = 0.5 (dt 1e-3, tau_mem_inv 500), x = 2: v_dec = 0.5 * 2 = 1.0 = v_th: no spike (strict)
    # (fp32(1e-3) * 500 rounds to 0.5); one ulp more input fires
    p = NorseLIFParams(tau_mem_inv=500.0, v_th=1.0)
    x = torch.tensor([2.0, 2.0, 2.0000002]).reshape(1, 1, 3)
    a = norse_lif_multistep(x, p, backend=backend, return_traces=True)
    b = norse_lif_multistep(x, p, backend="reference", return_traces=True)
    assert a[0].flatten().tolist() == [0.0, 0.0, 1.0] and a[2].v[0, 0, :2].eq(1.0).all()
    assert torch.equal(a[0], b[0]) and torch.equal(a[2].v, b[2].v) and torch.equal(a[2].i, b[2].i)


@pytest.mark.parametrize("method,alpha", [("tanh", 0.5), ("circ", 0.3), ("heavi_erfc", 0.7),
                                          ("circ", torch.tensor(0.3))], ids=["tanh", "circ", "heavi_erfc", "circ_t"])
def test_norse_lif_transcendental_surrogates(backend, method, alpha):
    """norse's HeaviTanh / HeaviCirc / HeaviErfc in the kernels: spikes and states bit for bit,
    gradients to 1e-6 (libm / libdevice tanh and pow against torch's: an ulp apart); HeaviErfc's
    x / v0 / i0 gradients bit for bit where the kernels take torch.exp's bits (:func:`_exp_exact`)."""
    ok, gk, gr = _compare_runs(backend, _norse_run(method, alpha), _norse_leaves(_x(**NORSE_X)))
    for k in gr:
        tol = 1e-6 if k in ("x", "v0", "i0") else 1e-5
        assert gr[k].abs().max() > 0, k
        if method == "heavi_erfc" and k in ("x", "v0", "i0") and _exp_exact(backend):
            assert torch.equal(gk[k], gr[k]), k
        torch.testing.assert_close(gk[k], gr[k], rtol=tol, atol=tol * gr[k].abs().max().item(), msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("method", ["super", "triangle", "circ", "heavi_erfc"])
def test_norse_lif_per_neuron_alpha(backend, method):
    """A per-neuron ``alpha`` (the surrogate's constants as per-neuron rows, as the refractory /
    AdEx kernels read them): outputs bit for bit, the x / state gradients bit for bit where the
    surrogate has no transcendental (HeaviErfc: where :func:`_exp_exact`), every gradient to 1e-5."""
    alpha = 0.5 + 2.0 * torch.rand(N, generator=torch.Generator().manual_seed(9))
    leaves = _norse_leaves(_x(**NORSE_X))
    ok, gk, gr = _compare_runs(backend, _norse_run(method, alpha), leaves)
    exact = method in ("super", "triangle") or (method == "heavi_erfc" and _exp_exact(backend))
    for k in gr:
        assert gr[k].abs().max() > 0, k
        if exact and k in ("x", "v0", "i0"):
            assert torch.equal(gk[k], gr[k]), k
        torch.testing.assert_close(gk[k], gr[k], rtol=1e-5, atol=1e-5 * gr[k].abs().max().item(),
                                   msg=lambda m: f"{k}: {m}")
    # alpha varies per neuron: the gradient differs from the one with a shared alpha
    shared, gs = outputs_and_grads(_norse_run(method, float(alpha.mean())), backend, leaves)
    assert not torch.equal(gs["x"], gk["x"])


def test_norse_lif_refusals_and_auto_fallback(backend):
    x = _x(**NORSE_X)
    p = NorseLIFParams(alpha=torch.full((B, N), 5.0))  # alpha per neuron and per sample: (B, N) is the state shape
    a, b = norse_lif_multistep(x, p, backend=backend), norse_lif_multistep(x, p, backend="reference")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].v, b[1].v)
    with pytest.raises(ValueError, match="float64"):
        norse_lif_multistep(x.double(), NorseLIFParams(), backend=backend)
    xd = x.double()
    assert torch.equal(norse_lif_multistep(xd, p, backend="auto")[0], norse_lif_multistep(xd, p, backend="reference")[0])
