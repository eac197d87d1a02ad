"""The generic Triton scan template (kernels/triton/generic.py) in the interpreter: LIF/IF and
hxtorch CUBA through the one forward / one backward scan are torch.equal to the per-family
Triton kernels (outputs and every gradient) and to the reference loop (outputs), with gradients
close to autograd of the reference. Small shapes: the interpreter is slow. ``SPIKEFUSE_LONG=1``
adds every option combination with every surrogate."""
import dataclasses
import itertools
import os

import pytest
import torch

from spikefuse import kernels, surrogate as sg
from spikefuse.functional.cuba import CubaParams, cuba_lif_integration, cuba_refractory_lif_integration
from spikefuse.functional.lif import LIFParams, LIFState, lif_multistep

pytest.importorskip("spikefuse.kernels.triton")
generic = pytest.importorskip("spikefuse.kernels.triton.generic", reason="needs triton>=3.4")
from spikefuse.kernels.triton import cuba as tcuba, lif as tlif  # noqa: E402

LONG = os.environ.get("SPIKEFUSE_LONG", "") not in ("", "0")
SURROGATES = [sg.ATan(2.0), sg.Sigmoid(4.0), sg.SuperSpike(5.0), sg.SLAYERExp(0.5, 2.0), sg.Triangle(0.8, 1.2)]
T, B, N = 4, 2, 23  # M = 46: two interpreter blocks of 32, the second one partial


def _grad_tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)


def _leaf(p, grad=True):
    return p.detach().clone().requires_grad_(grad) if isinstance(p, torch.Tensor) else p


def _outputs_and_grads(run, leaves, seed=7):
    """``run(leaves) -> outputs``; returns (detached outputs, grads of a random projection)."""
    leaves = {k: _leaf(v) for k, v in leaves.items()}
    outs = [o for o in run(leaves) if o is not None]
    g = torch.Generator().manual_seed(seed)
    loss = sum((o.float() * torch.randn(o.shape, generator=g)).sum() for o in outs)
    tensors = {k: v for k, v in leaves.items() if isinstance(v, torch.Tensor)}
    grads = torch.autograd.grad(loss, list(tensors.values()))
    return [o.detach() for o in outs], dict(zip(tensors, grads))


def _compare(runs, dtype):
    """runs: {"generic", "triton", "reference"} -> (outputs, grads)."""
    (og, gg), (ot, gt), (orf, grf) = runs["generic"], runs["triton"], runs["reference"]
    assert 0 < orf[0].sum() < orf[0].numel(), "spikes are all 0 or all 1: a weak case"
    assert len(og) == len(ot) == len(orf)
    for a, b, r in zip(og, ot, orf):
        assert a.dtype == b.dtype == r.dtype and a.shape == r.shape
        assert torch.equal(a, b), "generic output differs from the per-family Triton kernel"
        assert torch.equal(a, r), "generic output differs from the reference"
    assert gg.keys() == gt.keys() == grf.keys()
    for k in grf:
        assert gg[k].dtype == grf[k].dtype and gg[k].shape == grf[k].shape, k
        assert torch.equal(gg[k], gt[k]), f"grad {k}: generic differs from the per-family Triton kernel"
        torch.testing.assert_close(gg[k].float(), grf[k].float(), **_grad_tol(dtype), msg=lambda m: f"grad {k}: {m}")


# --------------------------------------------------------------------------- LIF / IF

def _lif_leaves(kind, hard, tensor_params, dtype):
    g = torch.Generator().manual_seed(1234)
    leaves = {"x": (torch.randn(T, B, N, generator=g) * 1.2 + 0.45).to(dtype),
              "v0": torch.randn(B, N, generator=g) * 0.3}
    if tensor_params:
        leaves.update(tau=(torch.rand(N, generator=g) * 1.5 + 1.5) if kind != "if" else None,
                      v_threshold=torch.rand(N, generator=g) * 0.5 + 0.75,
                      v_reset=torch.tensor(-0.1) if hard else None)
    else:
        leaves.update(tau=2.5 if kind != "if" else None, v_threshold=1.0, v_reset=0.0 if hard else None)
    return leaves


def _lif_run(backend, kind, detach, surrogate, traces, threshold=">="):
    def run(lv):
        p = LIFParams(tau=lv["tau"], v_threshold=lv["v_threshold"], v_reset=lv["v_reset"],
                      decay_input=kind != "lif_nodecay", detach_reset=detach, surrogate=surrogate,
                      threshold=threshold)
        if backend == "reference":
            s, st, *tr = lif_multistep(lv["x"], p, LIFState(lv["v0"]), backend="reference", return_traces=traces)
            return (s, st.v, tr[0].h, tr[0].v) if traces else (s, st.v)
        fn = generic.lif_generic if backend == "generic" else tlif.lif_triton
        (s,), (v,), tr = fn(lv["x"], p, (lv["v0"],), traces)  # the raw kernel contract
        return (s, v) + (tuple(tr) if tr is not None else (None, None))
    return run


def _lif_check(kind, hard, detach, surrogate, traces, tensor_params=True, dtype=torch.float32,
               threshold=">=", leaves=None):
    leaves = leaves or _lif_leaves(kind, hard, tensor_params, dtype)
    runs = {be: _outputs_and_grads(_lif_run(be, kind, detach, surrogate, traces, threshold), leaves)
            for be in ("generic", "triton", "reference")}
    _compare(runs, dtype)
    return runs


LIF_COMBOS = list(itertools.product(["if", "lif", "lif_nodecay"], [True, False], [False, True]))
#: covers every pair of (kind, hard reset, detach_reset) values and every surrogate
LIF_DEFAULT = [("if", True, False), ("if", False, True), ("lif", True, True), ("lif", False, False),
               ("lif_nodecay", True, False), ("lif_nodecay", False, True)]


@pytest.mark.parametrize("i", range(len(LIF_DEFAULT)), ids=lambda i: "-".join(map(str, LIF_DEFAULT[i])))
def test_lif_options(i):
    """outputs (traces for odd i) and gradients of x, v0, tau, v_threshold, v_reset."""
    _lif_check(*LIF_DEFAULT[i], SURROGATES[i % len(SURROGATES)], traces=i % 2 == 1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_lif_half_precision_io(dtype):
    """fp16 with scalar parameters and hard reset, bf16 with per-neuron ones and soft reset."""
    fp16 = dtype == torch.float16
    _lif_check("lif", fp16, False, sg.Sigmoid(4.0), traces=True, tensor_params=not fp16, dtype=dtype)


@pytest.mark.parametrize("i", range(len(LIF_DEFAULT)), ids=lambda i: "-".join(map(str, LIF_DEFAULT[i])))
def test_lif_strict_threshold(i):
    """threshold=">" on charges on a grid of quarters (many exactly at the threshold): the
    generic template equals the per-family kernel (outputs, gradients) and the reference."""
    kind, hard, detach = LIF_DEFAULT[i]
    g = torch.Generator().manual_seed(i)
    leaves = {"x": torch.randint(-2, 9, (T, B, N), generator=g).float() / 4,
              "v0": torch.randint(-2, 4, (B, N), generator=g).float() / 4,
              "tau": torch.tensor([2.0, 4.0])[torch.randint(0, 2, (N,), generator=g)] if kind != "if" else None,
              "v_threshold": torch.tensor([0.5, 1.0])[torch.randint(0, 2, (N,), generator=g)],
              "v_reset": torch.tensor(-0.5) if hard else None}
    runs = _lif_check(kind, hard, detach, SURROGATES[i % len(SURROGATES)], traces=True, threshold=">",
                      leaves=leaves)
    s, _, h, _ = runs["reference"][0]
    ties = h == leaves["v_threshold"].expand_as(h)
    assert ties.any() and not s[ties].any()


def test_lif_no_grad_inference_saves_nothing():
    x = torch.randn(T, B, N) + 0.5
    p = LIFParams(tau=3.0)
    with torch.no_grad():
        (s,), (v,), tr = generic.lif_generic(x, p)
        (s_t,), (v_t,), _ = tlif.lif_triton(x, p)
    assert tr is None and s.grad_fn is None
    assert torch.equal(s, s_t) and torch.equal(v, v_t)


@pytest.mark.skipif(not LONG, reason="long sweep: set SPIKEFUSE_LONG=1")
def test_lif_every_option_every_surrogate_long():
    for (kind, hard, detach), surrogate, traces in itertools.product(LIF_COMBOS, SURROGATES, (False, True)):
        _lif_check(kind, hard, detach, surrogate, traces=traces)


# --------------------------------------------------------------------------- hxtorch CUBA

def _cuba_leaves(tensor_params, dtype):
    g = torch.Generator().manual_seed(21)
    leaves = {"x": (torch.randn(T, B, N, generator=g) * 0.6 + 0.3).to(dtype)}
    if not tensor_params:
        return dict(leaves, leak=0.02, reset=-0.03, threshold=0.3, tau_syn=4e-6, tau_mem=3e-6)
    return dict(leaves, leak=torch.randn(N, generator=g) * 0.05, reset=torch.tensor(-0.05),
                threshold=torch.rand(N, generator=g) * 0.2 + 0.2,
                tau_syn=torch.rand(N, generator=g) * 3e-6 + 3e-6, tau_mem=torch.tensor(4e-6))


def _cuba_run(backend, refractory):
    def run(lv):
        p = CubaParams(**{k: v for k, v in lv.items() if k != "x"},
                       refractory_time=torch.full((N,), 2.5e-6), alpha=torch.linspace(10.0, 50.0, N))
        if backend == "reference":
            f = cuba_refractory_lif_integration if refractory else cuba_lif_integration
            return f(lv["x"], p, dt=1e-6, backend="reference")[:3]
        fn = generic.cuba_generic if backend == "generic" else tcuba.cuba_triton
        return fn(lv["x"], p, None, False, dt=1e-6, refractory_time=p.refractory_time if refractory else None)[0]
    return run


def _cuba_check(refractory, tensor_params=True, dtype=torch.float32):
    leaves = _cuba_leaves(tensor_params, dtype)
    runs = {be: _outputs_and_grads(_cuba_run(be, refractory), leaves) for be in ("generic", "triton", "reference")}
    _compare(runs, dtype)


@pytest.mark.parametrize("refractory", [False, True])
def test_cuba_plain_and_refractory(refractory):
    """spikes, membrane, current and gradients of x, leak, reset, threshold, tau_syn, tau_mem."""
    _cuba_check(refractory)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuba_half_precision_io_scalar_params(dtype):
    _cuba_check(dtype == torch.bfloat16, tensor_params=False, dtype=dtype)


# --------------------------------------------------------------------------- A/B hook

def test_generic_as_triton_swaps_the_registry_and_restores_it():
    x = torch.randn(T, B, N)
    lif_opts = dict(params=LIFParams(tau=2.0), v0=None)
    cuba_opts = dict(params=CubaParams(), refractory=False, dt=1e-6)
    with generic.generic_as_triton():
        assert kernels.resolve("lif", "triton", x, **lif_opts) is generic.lif_generic
        assert kernels.resolve("cuba", "triton", x, **cuba_opts) is generic.cuba_generic
    assert kernels.resolve("lif", "triton", x, **lif_opts) is tlif.lif_triton
    assert kernels.resolve("cuba", "triton", x, **cuba_opts) is tcuba.cuba_triton


@dataclasses.dataclass
class _Case:  # the fields of benchmarks/neurons.py's Case that ab_cases reads or copies
    family: str
    impl: str
    run: object
    bytes_fwd: float = 0.0


def test_ab_cases_run_the_generic_kernel_through_the_functional_path(monkeypatch):
    calls = []

    def spy(*args, **kw):
        calls.append(1)
        return generic.lif_generic(*args, **kw)

    monkeypatch.setitem(generic.PORTED, "lif", ((spy, generic.lif_generic_supports), generic.PORTED["lif"][1]))
    p = LIFParams(tau=2.0, v_threshold=1.0, v_reset=0.0)
    cases = [_Case("lif", be, lambda x, be=be: lif_multistep(x, p, backend=be)[0], 10.0)
             for be in ("reference", "triton")]
    rows = generic.ab_cases("lif", cases)
    assert [(r.family, r.impl, r.bytes_fwd) for r in rows] == [("lif", "triton-generic", 10.0)]
    x = torch.randn(T, B, N) + 0.5
    assert torch.equal(rows[0].run(x), cases[0].run(x)) and calls == [1]
    assert kernels.resolve("lif", "triton", x, params=p, v0=None) is tlif.lif_triton
    assert generic.ab_cases("loihi_cuba", cases) == []
    assert len(generic.ab_cases("cuba_refractory", [_Case("cuba_refractory", "triton", None)])) == 1
