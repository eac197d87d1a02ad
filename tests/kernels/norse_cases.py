"""The fused scans of norse's refractory LIF and AdEx LIF (kernels/triton/norse.py through the
generic template, kernels/cpu/norse.py with numba) against the reference loops
(functional/norse.py ``_refrac_step`` / ``_adex_step``), shared by test_kernels_norse_triton.py
and test_kernels_norse_cpu.py (each defines the ``backend`` fixture and imports these tests).

Refractory LIF: spikes, final state and traces bit-identical, the input and initial-state
gradients (v, i and the counter rho, which gets the surrogate's gradient through norse's
``threshold(rho)``) bit-identical, parameter gradients (tau_syn_inv, tau_mem_inv, v_leak, v_th,
v_reset, rho_reset) to 1e-5; every norse method. AdEx: on the CPU kernel with MKL VML (torch.exp's
routine, kernels/cpu/_nb_vml.py) outputs, states, traces and input / state gradients bit-identical
(with tanh / circ: the gradients to 1e-6; HeaviErfc's exp is torch.exp's there too, bit for bit,
as is the refractory LIF's HeaviErfc); elsewhere (Triton's exp, libm) spikes
equal, states and traces to 1e-6, gradients to 1e-5. Plus a hand-derived refractory period, the strict threshold, T=1, non-contiguous input,
fp16, the ``supports`` reasons and the ``"auto"`` fallback. Small shapes: the Triton
interpreter is slow."""
import pytest
import torch

from equivalence import outputs_and_grads
from peers_cases import _norse_leaves as _lif_leaves  # norse.lif's leaves: x, LIF parameters, v0, i0
from spikefuse.functional.norse import (NorseLIFAdExParams, NorseLIFAdExState, NorseLIFParams, NorseLIFRefracParams,
                                        NorseLIFRefracState, NorseLIFState, norse_lif_adex_multistep,
                                        norse_lif_refrac_multistep)

T, B, N = 6, 2, 23  # M = 46: two interpreter blocks of 32, the second one partial
X = dict(scale=4.0, shift=3.0)
STATE_KEYS = ("x", "v0", "i0", "s0")


def _x(shape=(T, B, N), scale=4.0, shift=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale + shift


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _lif_params(lv, method, alpha):
    return NorseLIFParams(tau_syn_inv=lv["tau_syn_inv"], tau_mem_inv=lv["tau_mem_inv"], v_leak=lv["v_leak"],
                          v_th=lv.get("v_th", 1.0), v_reset=lv["v_reset"], method=method, alpha=alpha)


# --------------------------------------------------------------------------- refractory LIF


def _refrac_run(method, alpha=10.0):
    def run(backend, lv):
        p = NorseLIFRefracParams(_lif_params(lv, method, alpha), rho_reset=lv["rho_reset"])
        st = NorseLIFRefracState(NorseLIFState(lv["v0"], lv["i0"]), lv["s0"])
        z, s, tr = norse_lif_refrac_multistep(lv["x"], p, st, backend=backend, return_traces=True)
        return [z, s.lif.v, s.lif.i, s.rho, tr.lif.v, tr.lif.i, tr.rho]
    return run


def _refrac_leaves(x, v_th=True):
    lv = _lif_leaves(x, v_th)
    g = _gen(7)
    # some neurons start refractory (fractional counters too: relu(rho - 1) and threshold(rho) on them)
    lv.update(rho_reset=torch.tensor(2.0), s0=torch.rand(x.shape[1:], generator=g) * 3 * (torch.rand(
        x.shape[1:], generator=g) > 0.5))
    return lv


def _compare(backend, run, leaves, exact_grads=STATE_KEYS, out_tol=None, tol=1e-5, state_tol=1e-6):
    ok, gk = outputs_and_grads(run, backend, leaves)
    orf, gr = outputs_and_grads(run, "reference", leaves)
    assert 0 < orf[0].sum() < orf[0].numel(), "spikes are all 0 or all 1: a weak case"
    for n, (a, b) in enumerate(zip(ok, orf)):
        assert a.dtype == b.dtype and a.shape == b.shape, n
        if out_tol is None or n == 0:
            assert torch.equal(a, b), f"output {n} differs"
        else:
            torch.testing.assert_close(a, b, **out_tol, msg=lambda m: f"output {n}: {m}")
    assert gk.keys() == gr.keys()
    for k in gr:
        assert gk[k] is not None and gr[k] is not None, k
        if k in exact_grads:
            assert torch.equal(gk[k], gr[k]), f"grad {k} is not bit-identical"
        else:
            scale, t = gr[k].abs().max().item(), state_tol if k in STATE_KEYS else tol
            assert scale > 0, k
            torch.testing.assert_close(gk[k], gr[k], rtol=t, atol=t * scale, msg=lambda m: f"grad {k}: {m}")
    return orf


@pytest.mark.parametrize("method", ["super", "triangle", "heaviside"])
def test_refrac_matches_reference(backend, method):
    # heaviside: neither the spike nor the refractory mask carries a gradient (v_th gets none)
    leaves = _refrac_leaves(_x(**X), v_th=method != "heaviside")
    orf = _compare(backend, _refrac_run(method), leaves)
    refractory = (orf[6][:-1] > 0) & (orf[0][1:] == 0)  # counting down, no spike
    assert refractory.any() and (orf[6] == 2.0).any(), "no refractory period in the case"


@pytest.mark.parametrize("method,alpha", [("tanh", 0.5), ("circ", 0.3), ("heavi_erfc", 0.7)])
def test_refrac_transcendental_surrogates(backend, method, alpha):
    """HeaviTanh / HeaviCirc / HeaviErfc (the surrogate of the spike and of the counter):
    outputs bit for bit, input / state gradients to 1e-6 and the parameters' (sums over every
    neuron-step) to 5e-5 (libm / libdevice tanh, pow, exp against torch's: an ulp apart);
    HeaviErfc's input / state gradients bit for bit where the kernel's exp is torch.exp's
    (:func:`_adex_exact`: the CPU kernel with MKL VML)."""
    exact = STATE_KEYS if (method == "heavi_erfc" and _adex_exact(backend)) else ()
    _compare(backend, _refrac_run(method, alpha), _refrac_leaves(_x(**X)), exact_grads=exact, tol=5e-5)


def test_refrac_period_by_hand(backend):
    # norse's defaults (a_m = 0.1, a_s = 0.2, v_th = 1, rho_reset = 5), one input of 5 at t = 0:
    # v 0.5, 0.85, then 0.85 + 0.1 (3.2 - 0.85) = 1.085 > 1: a spike at t = 2, v reset to 0 and
    # rho = 5; t = 3..7 are refractory (rho 4, 3, 2, 1, 0): v held at 0 while i decays; free at t = 8
    x = torch.zeros(10, 1, 1)
    x[0] = 5.0
    z, s, tr = norse_lif_refrac_multistep(x, NorseLIFRefracParams(), backend=backend, return_traces=True)
    assert z.flatten().tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert tr.rho.flatten().tolist() == [0, 0, 5, 4, 3, 2, 1, 0, 0, 0]
    assert tr.lif.v.flatten()[2:8].eq(0).all() and tr.lif.v.flatten()[8] > 0
    torch.testing.assert_close(tr.lif.v.flatten()[:2], torch.tensor([0.5, 0.85]))
    ref = norse_lif_refrac_multistep(x, NorseLIFRefracParams(), backend="reference", return_traces=True)
    assert torch.equal(z, ref[0]) and all(torch.equal(a, b) for a, b in zip((*tr.lif, tr.rho), (*ref[2].lif, ref[2].rho)))


def test_refrac_at_threshold_t1_noncontiguous_fp16(backend):
    # a_m = 0.5 (fp32(1e-3) * 500), x = 2 from rest: v_dec = 1.0 = v_th: no spike (strict); one ulp more fires
    p = NorseLIFRefracParams(NorseLIFParams(tau_mem_inv=500.0))
    x = torch.tensor([2.0, 2.0, 2.0000002]).reshape(1, 1, 3)
    a = norse_lif_refrac_multistep(x, p, backend=backend, return_traces=True)
    assert a[0].flatten().tolist() == [0.0, 0.0, 1.0] and a[2].rho.flatten().tolist() == [0.0, 0.0, 5.0]
    xn = _x((N, B, T), **X).permute(2, 1, 0)
    assert not xn.is_contiguous()
    _compare(backend, _refrac_run("super"), _refrac_leaves(xn))
    xh = _x(**X).half()
    a, b = (norse_lif_refrac_multistep(xh, NorseLIFRefracParams(), backend=be) for be in (backend, "reference"))
    assert a[0].dtype == torch.float16 and torch.equal(a[0], b[0]) and torch.equal(a[1].rho, b[1].rho)
    assert torch.equal(a[1].lif.v, b[1].lif.v) and isinstance(a[1].lif, NorseLIFState)


# --------------------------------------------------------------------------- AdEx

#: AdEx's exp is the backend's (module docstring): states and traces to this tolerance
ADEX_TOL = dict(rtol=1e-6, atol=1e-6)


def _adex_exact(backend) -> bool:
    """Whether ``backend``'s AdEx exp is torch.exp's (the numba kernel with MKL VML)."""
    if backend != "cpu":
        return False
    from spikefuse.kernels.cpu import _nb_vml

    return _nb_vml.AVAILABLE


def _adex_tols(backend, method="super"):
    """(exact_grads, out_tol) of :func:`_compare` for an AdEx case on ``backend``."""
    if not _adex_exact(backend):
        return (), ADEX_TOL
    return (STATE_KEYS if method in ("super", "triangle", "heaviside", "heavi_erfc") else ()), None


def _adex_run(method, alpha=10.0):
    def run(backend, lv):
        p = NorseLIFAdExParams(adaptation_current=lv["adaptation_current"], adaptation_spike=lv["adaptation_spike"],
                               delta_T=lv["delta_T"], tau_ada_inv=lv["tau_ada_inv"],
                               **_lif_params(lv, method, alpha)._asdict())
        z, s, tr = norse_lif_adex_multistep(lv["x"], p, NorseLIFAdExState(lv["v0"], lv["i0"], lv["s0"]),
                                            backend=backend, return_traces=True)
        return [z, s.v, s.i, s.a, tr.v, tr.i, tr.a]
    return run


def _adex_leaves(x, v_th=True):
    lv = _lif_leaves(x, v_th)
    g, n = _gen(8), x.shape[-1]
    lv.update(adaptation_current=4.0 + torch.rand(n, generator=g), adaptation_spike=torch.tensor(0.5),
              delta_T=torch.tensor(0.5), tau_ada_inv=torch.tensor(20.0), s0=torch.rand(x.shape[1:], generator=g))
    return lv


@pytest.mark.parametrize("method,alpha", [("super", 10.0), ("triangle", 10.0), ("heaviside", 10.0), ("tanh", 0.5),
                                          ("circ", 0.3), ("heavi_erfc", 0.7)])
def test_adex_matches_reference(backend, method, alpha):
    leaves = _adex_leaves(_x(**X), v_th=method != "heaviside")
    exact, out_tol = _adex_tols(backend, method)
    _compare(backend, _adex_run(method, alpha), leaves, exact_grads=exact, out_tol=out_tol, tol=5e-5)


def test_adex_t1_noncontiguous_default_params_fp16(backend):
    xn = _x((N, B, T), **X).permute(2, 1, 0)
    exact, out_tol = _adex_tols(backend)
    _compare(backend, _adex_run("super"), _adex_leaves(xn), exact_grads=exact, out_tol=out_tol)
    _compare(backend, _adex_run("super"), _adex_leaves(_x((1, B, N), scale=4.0, shift=12.0)), exact_grads=exact,
             out_tol=out_tol)
    xh = _x(**X).half()
    a, b = (norse_lif_adex_multistep(xh, NorseLIFAdExParams(), backend=be) for be in (backend, "reference"))
    assert a[0].dtype == torch.float16 and 0 < b[0].sum() and torch.equal(a[0], b[0])
    for f in ("v", "i", "a"):
        if out_tol is None:
            assert torch.equal(getattr(a[1], f), getattr(b[1], f)), f
        else:
            torch.testing.assert_close(getattr(a[1], f), getattr(b[1], f), **out_tol)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("method", ["super", "circ"])
def test_refrac_per_neuron_alpha(backend, method):
    """A per-neuron ``alpha`` (as norse.lif's kernels, peers_cases.py): read per neuron;
    bit for bit for SuperSpike (circ: its ``r ** 1.5`` is ``r sqrt(r)`` in the kernels, 1e-6)."""
    alpha = 5.0 + 10.0 * torch.rand(N, generator=_gen(9))
    exact = STATE_KEYS if method == "super" else ()
    _compare(backend, _refrac_run(method, alpha), _refrac_leaves(_x(**X)), exact_grads=exact, tol=5e-5)


@pytest.mark.parametrize("model", ["refrac", "adex"])
def test_auto_picks_the_kernel_for_per_neuron_alpha_and_refuses_float64(backend, model):
    x = _x(**X)
    f = norse_lif_refrac_multistep if model == "refrac" else norse_lif_adex_multistep

    def params(**kw):
        return NorseLIFRefracParams(NorseLIFParams(**kw)) if model == "refrac" else NorseLIFAdExParams(**kw)

    p = params(alpha=torch.linspace(1.0, 20.0, N))
    a, b = f(x, p, backend=backend), f(x, p, backend="reference")
    assert 0 < b[0].sum() and torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="float64"):
        f(x.double(), params(), backend=backend)
    assert torch.equal(f(x.double(), p, backend="auto")[0], f(x.double(), p, backend="reference")[0])
