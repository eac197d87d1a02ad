"""The CPU LIF backend gives the reference's bits in both of its implementations: the numba
kernels and the torch-op fallback (no numba). The fallback is checked against the reference loop
for every option and surrogate (including Sigmoid / SLAYER's exp, whose per-step torch ops it
shares with the reference), and a few optimizer steps of a small network give bit-identical
weights with the numba kernels, the fallback and the reference (the check that would have caught
the fallback's reordered reverse scan: 99.00 % vs 98.30 % after the default ``spikefuse train``)."""
import contextlib

import pytest
import torch
from torch import nn

from lif_cpu_cases import assert_bits, lif_grads
from spikefuse import layers as L, surrogate as sg
from spikefuse.functional.lif import LIFParams, LIFState, lif_multistep
from spikefuse.kernels.cpu import jit
from spikefuse.neuron import LIF

SURROGATES = [sg.ATan(2.0), sg.Sigmoid(4.0), sg.SuperSpike(5.0), sg.SLAYERExp(0.5, 2.0), sg.Triangle(0.8, 1.2),
              sg.Custom(lambda x: 1.0 / (1.0 + x * x))]


@contextlib.contextmanager
def _numba(enabled: bool):
    """Runs the block with the numba kernels (skipped when numba is missing) or the fallback."""
    if enabled:
        pytest.importorskip("numba")
        yield
        return
    mods = jit._STATE.setdefault("mods", {})
    old = mods.get("lif", "absent")
    mods["lif"] = None
    try:
        yield
    finally:
        if old == "absent":
            mods.pop("lif", None)
        else:
            mods["lif"] = old


CASES = [  # (kind, hard, detach, traces)
    ("lif", True, False, False), ("lif", False, True, True), ("if", True, True, True), ("nodecay", False, False, True),
    ("lif", True, False, True), ("if", False, False, False), ("nodecay", True, True, False),
]


def _params():
    """Fallback: every case with every surrogate; numba (compiles a kernel per variant): every
    case with ATan and two with each other kernel surrogate, SLAYER's exp included (the kernel
    takes torch.exp's routine, MKL VML: kernels/cpu/_nb_vml.py; skipped without VML)."""
    out = [(c, s, False) for c in CASES for s in SURROGATES]
    out += [(c, SURROGATES[0], True) for c in CASES]
    out += [(c, s, True) for c in CASES[3:5] for s in SURROGATES[1:5]]
    return out


@pytest.mark.parametrize("case,surrogate,use_numba", _params(),
                         ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else
                         (("numba" if v else "fallback") if isinstance(v, bool) else type(v).__name__))
def test_bit_exact_against_reference(case, surrogate, use_numba):
    """Every output and the input / initial-state gradients, with gradients into both traces."""
    kind, hard, detach, traces = case
    if use_numba and isinstance(surrogate, sg.SLAYERExp):
        pytest.importorskip("numba")
        from spikefuse.kernels.cpu import _nb_vml

        if not _nb_vml.AVAILABLE:
            pytest.skip("no MKL VML: the kernel's SLAYER exp is libm's expf (test_kernels_cpu_lif.py)")
    g = torch.Generator().manual_seed(21)
    T, B, N = 6, 3, 37
    x = torch.randn(T, B, N, generator=g) * 1.2 + 0.45
    tau = None if kind == "if" else torch.rand(N, generator=g) * 1.5 + 1.5
    params = LIFParams(tau=tau, v_threshold=torch.rand(N, generator=g) * 0.5 + 0.75,
                       v_reset=torch.tensor(-0.1) if hard else None, decay_input=kind != "nodecay",
                       detach_reset=detach, surrogate=surrogate)
    v0 = torch.randn(B, N, generator=g) * 0.3
    with _numba(use_numba):
        a = lif_grads("cpu", x, v0, params, traces)
    assert_bits(a, lif_grads("reference", x, v0, params, traces))
    assert 0 < a[0].sum() < a[0].numel()


def test_fallback_scalar_params_and_reciprocal_tau():
    g = torch.Generator().manual_seed(22)
    x = torch.randn(5, 2, 33, generator=g) + 0.6
    for params in (LIFParams(tau=2.5, v_threshold=1.0, v_reset=0.0, surrogate=sg.ATan(2.0)),
                   LIFParams(tau=None, reciprocal_tau=torch.rand(33, generator=g) * 0.4 + 0.3, v_reset=None,
                             surrogate=sg.Sigmoid(4.0))):
        with _numba(False):
            a = lif_grads("cpu", x, torch.zeros(2, 33), params, True)
        assert_bits(a, lif_grads("reference", x, torch.zeros(2, 33), params, True))


def _train(backend, use_numba: bool, surrogate, steps: int = 6):
    """A few Adam steps of the default training network's shape (static input for T steps ->
    Dense -> LIF(tau 2, hard reset) -> Dense -> leaky integrator, max readout); the weights."""
    torch.manual_seed(0)
    net = nn.ModuleList([L.Dense(4, 24), LIF(tau=2.0, surrogate=surrogate, backend=backend), L.Dense(24, 3)])
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    g = torch.Generator().manual_seed(1)
    li = L.LeakyIntegrator(2.0)
    with _numba(use_numba):
        for _ in range(steps):
            x = torch.rand(8, 4, generator=g) * 3.0
            y = torch.randint(0, 3, (8,), generator=g)
            L.reset_states(net)
            h = net[0](x.unsqueeze(0).expand(10, 8, 4))
            logits = li(net[2](net[1](h))).amax(0)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("surrogate", [sg.ATan(2.0), sg.Triangle(0.8, 1.2), sg.Sigmoid(4.0)],
                         ids=lambda s: type(s).__name__)
def test_training_steps_give_the_reference_weights(surrogate):
    """numba kernels, fallback and reference: the same weights after a few optimizer steps
    (Sigmoid included: the kernel computes torch's vector-lane exp, see test_kernels_cpu_lif.py)."""
    ref = _train("reference", False, surrogate)
    runs = [_train("cpu", False, surrogate), _train("cpu", True, surrogate)]
    for w in runs:
        assert_bits(w, ref)
    assert any(not torch.equal(a, b) for a, b in zip(ref, _train("reference", False, surrogate, steps=5)))




# parameter gradients: every tensor parameter learnable, in the shapes a layer gives them (one per
# feature, one value for all neurons, one per neuron), so that autograd of the reference reduces
# each step's term over the batch / all neurons / nothing before adding the steps
PARAM_SHAPES = {"feature": (37,), "scalar": (), "neuron": (3, 37), "row": (1, 37)}

PARAM_CASES = [  # (kind, hard, detach, traces, shape of tau, of v_threshold, of v_reset, 1/tau)
    ("lif", True, False, False, "feature", "feature", "scalar", False),
    ("lif", False, True, True, "scalar", "neuron", None, False),
    ("nodecay", True, False, True, "neuron", "neuron", "neuron", False),
    ("if", True, True, False, None, "row", "feature", False),
    ("lif", False, False, False, "scalar", "scalar", None, True),       # ParametricLIF: 1/tau = sigmoid(w)
    ("nodecay", True, True, True, "feature", "scalar", "neuron", True),
]


def _learnable(case):
    """``make()`` for :func:`lif_grads`: the case's parameters from fresh leaves."""
    kind, hard, detach, traces, s_tau, s_th, s_r, recip = case

    def leaf(shape, seed, lo, span):
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(PARAM_SHAPES[shape], generator=g) * span + lo).requires_grad_()

    def make():
        th = leaf(s_th, 1, 0.75, 0.5)
        vr = leaf(s_r, 2, -0.2, 0.2) if hard else None
        w = leaf(s_tau, 3, 1.5, 1.5) if kind != "if" else None
        tau = None if (kind == "if" or recip) else w
        rtau = torch.sigmoid(w - 2.0) if recip else None
        params = LIFParams(tau=tau, v_threshold=th, v_reset=vr, decay_input=kind != "nodecay", detach_reset=detach,
                           surrogate=sg.ATan(2.0), reciprocal_tau=rtau)
        return params, [p for p in (w, th, vr) if p is not None]

    return make


@pytest.mark.parametrize("use_numba", [True, False], ids=["numba", "fallback"])
@pytest.mark.parametrize("case", PARAM_CASES, ids=lambda c: "-".join(map(str, c)))
def test_parameter_gradients_bit_exact(case, use_numba):
    """tau (or ParametricLIF's w), v_threshold and v_reset gradients: torch.equal to autograd of
    the reference loop (same per-step terms, reduced to the parameter's shape step by step and
    added in autograd's order), as are every output and the other gradients."""
    g = torch.Generator().manual_seed(23)
    x = torch.randn(6, 3, 37, generator=g) * 1.2 + 0.45
    v0 = torch.randn(3, 37, generator=g) * 0.3
    make = _learnable(case)
    with _numba(use_numba):
        a = lif_grads("cpu", x, v0, make, case[3])
    b = lif_grads("reference", x, v0, make, case[3])
    assert_bits(a, b)
    nparams = len(make()[1])
    for u, w in zip(a[4:4 + nparams], b[4:4 + nparams]):
        assert torch.equal(u, w) and bool(u.ne(0).any())


# threshold=">" (strict): values on a grid of quarters, so that every charge is exact in fp32 and
# many land exactly on the threshold, where ">" and ">=" part
STRICT_SURROGATES = [sg.ATan(2.0), sg.SuperSpike(5.0), sg.Triangle(0.8, 1.2), sg.Sigmoid(4.0)]


def _strict_learnable(case, k):
    """``make()`` for :func:`lif_grads`: the case's parameters (shapes of PARAM_CASES) as leaves
    drawn from grids: tau 2 / 4 (1/tau 0.5 / 0.25), v_threshold 0.5 / 1 / 1.25, v_reset 0 / -0.5."""
    kind, hard, detach, traces, s_tau, s_th, s_r, recip = case

    def leaf(shape, seed, values):
        g = torch.Generator().manual_seed(seed)
        vals = torch.tensor(values)
        return vals[torch.randint(0, len(values), PARAM_SHAPES[shape], generator=g)].requires_grad_()

    def make():
        th = leaf(s_th, 1, [0.5, 1.0, 1.25])
        vr = leaf(s_r, 2, [0.0, -0.5]) if hard else None
        w = leaf(s_tau, 3, [0.5, 0.25] if recip else [2.0, 4.0]) if kind != "if" else None
        params = LIFParams(tau=None if recip else w, reciprocal_tau=w if recip else None, v_threshold=th,
                           v_reset=vr, decay_input=kind != "nodecay", detach_reset=detach,
                           surrogate=STRICT_SURROGATES[k % len(STRICT_SURROGATES)], threshold=">")
        return params, [p for p in (w, th, vr) if p is not None]

    return make


@pytest.mark.parametrize("use_numba", [True, False], ids=["numba", "fallback"])
@pytest.mark.parametrize("k", range(len(PARAM_CASES)), ids=lambda k: "-".join(map(str, PARAM_CASES[k])))
def test_strict_threshold_bit_exact_at_ties(k, use_numba):
    """threshold=">": spikes, final state, traces, the input / initial-state gradients and every
    parameter gradient torch.equal to the reference loop, on inputs where charges hit the
    threshold exactly (they do: counted from the traces); there ">" does not fire and ">=" does."""
    case = PARAM_CASES[k]
    g = torch.Generator().manual_seed(31 + k)
    x = torch.randint(-2, 9, (6, 3, 37), generator=g).float() / 4
    v0 = torch.randint(-2, 4, (3, 37), generator=g).float() / 4
    make = _strict_learnable(case, k)
    with _numba(use_numba):
        a = lif_grads("cpu", x, v0, make, True)
    b = lif_grads("reference", x, v0, make, True)
    assert_bits(a, b)
    params, leaves = make()
    nparams = len(leaves)
    for u, w in zip(a[4:4 + nparams], b[4:4 + nparams]):
        assert torch.equal(u, w) and bool(u.ne(0).any())
    s, h = a[0], a[4 + nparams]
    vth = params.v_threshold.detach().expand_as(h)
    ties = h == vth
    assert int(ties.sum()) >= 3 and not s[ties].any() and torch.equal(s.bool(), h > vth)
    with _numba(use_numba), torch.no_grad():
        s_ge, _, tr_ge = lif_multistep(x, params._replace(threshold=">="), LIFState(v0), backend="cpu",
                                       return_traces=True)
    assert torch.equal(s_ge.bool(), tr_ge.h >= vth) and not torch.equal(s_ge, s)
