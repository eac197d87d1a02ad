"""Fused CPU (numba) RF / RF-Iz / AdRF / AdRF-Iz scans against spikefuse.functional.resonator:
bit-identical spikes, traces and final state (int64 dynamics), gradients w.r.t. both inputs, the
sin/cos decays (both ``decay_grad`` rules) and the initial state, with the fused complex/real
spike surrogates (tests/resonator_cases.py, shared with the Triton tests); odd N, a
non-contiguous input, T = 1, fp16/bf16 I/O, one vs two threads, SPEC 17 L5, the lava-dl RF
fixtures, the reasons and the reference fallback without numba."""
import itertools

import pytest
import torch

from equivalence import check_compile_variant
from resonator_cases import B, C, FN, MODELS, PA, T, check, check_edges, check_lava_fixture, lava_cases, params, q, same
from spikefuse import kernels
from spikefuse.functional import resonator as R
from spikefuse.kernels import scan
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

#: (graded, decay_grad, tensor decays) per model, alternating initial-state gradients
COMBOS = [(g, d, t) for (g, d), t in zip(itertools.product([False, True], ["exact", "lava"]), (True, False, True, True))]


def _check(*args, **kw):
    """resonator_cases.check on the CPU kernels: fp32 gradients equal to the reference's."""
    check("cpu", *args, grad_exact=True, **kw)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_matches_reference(model, combo):
    graded, decay_grad, tensor = COMBOS[combo]
    _check(model, graded, decay_grad, tensor, state_grad=combo % 2 == 0)


@pytest.mark.parametrize("model,dtype", [("rf", torch.bfloat16), ("adrf_iz", torch.float16)])
def test_half_precision_io(model, dtype):
    _check(model, dtype == torch.float16, "exact", True, dtype=dtype)


@pytest.mark.parametrize("model", MODELS)
def test_odd_n_t1_large_values_and_odd_scale(model):
    """More than one tile of an odd N with per-channel decays and a (T, B, C, H) input; T = 1;
    states beyond 2**24 LSB (float32 rounding of int64 -> float); a non-power-of-two s_scale."""
    _check(model, True, "lava", True, shape=(5, 2, 3, 101), state_grad=False, spikes=False)
    _check(model, False, "exact", True, shape=(1, 2, 7), state_grad=True, spikes=False)
    _check(model, False, "exact", False, scale=3000.0, theta=1500.0, spikes=False)
    _check(model, True, "exact", True, s_scale=1000)


def test_strided_input_threads_and_state_chaining():
    """A non-contiguous input; two threads give the one-thread bits; two calls chained through
    the returned state equal one call over the whole sequence."""
    g = torch.Generator().manual_seed(4)
    x = [torch.randn(2 * T, C, B, generator=g).transpose(1, 2) * 0.5 for _ in range(2)]
    old = torch.get_num_threads()
    for model in MODELS:
        p, _ = params(model, False, "exact", True)
        s_all, st_all = FN[model](tuple(x), p, backend="reference")
        torch.set_num_threads(2)
        try:
            s1, st1 = FN[model]((x[0][:T], x[1][:T]), p, backend="cpu")
        finally:
            torch.set_num_threads(old)
        s2, st2 = FN[model]((x[0][T:], x[1][T:]), p, state=st1, backend="cpu")
        assert torch.equal(torch.cat([s1, s2]).detach(), s_all.detach()), model
        assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(st2, st_all)), model


def test_edges_and_spec_l5():
    check_edges("cpu")
    xr = torch.zeros(9, 1, 1)
    xr[0] = 1.0
    s, st, tr = R.adrf_multistep((xr, torch.zeros_like(xr)), R.AdRFParams(**PA), backend="cpu", return_traces=True)
    assert q(tr.threshold) == [2048, 2048, 2048, 2048, 2048, 2560, 2304, 2176, 2112]
    assert q(tr.refractory) == [0, 0, 0, 0, 0, 2048, 1024, 512, 256]
    assert s.flatten().nonzero().flatten().tolist() == [4, 8]


RF_CASES = lava_cases()


@pytest.mark.parametrize("path,model", RF_CASES, ids=[p.name for p, _ in RF_CASES])
def test_cpu_matches_lava_fixture(path, model):
    check_lava_fixture("cpu", path, model)


def test_specs_and_reasons():
    for fam, saved in (("loihi_rf", 8), ("loihi_rf_iz", 8), ("loihi_adrf", 12), ("loihi_adrf_iz", 12)):
        s = scan.find("cpu", fam)
        assert s is not None and s.saved_bytes == saved and s.moved_bytes == 12 + saved
    x = torch.rand(4, 2, 5)
    p = R.RFParams(2607.0, 2607.0, threshold=0.5)
    st = R.initial_state("rf", (2, 5), p)
    assert kernels.resolve("loihi_rf", "auto", x, params=p, state=st, return_traces=False) is not None
    with pytest.raises(ValueError, match="float64"):
        R.rf_multistep((x.double(), x.double()), p, backend="cpu")
    with pytest.raises(ValueError, match="s_scale"):
        R.rf_multistep((x, x), p._replace(s_scale=2 ** 24), backend="cpu")


def test_fallback_without_numba(monkeypatch):
    """SPIKEFUSE_NO_NUMBA=1: "auto" runs the reference loop (one RuntimeWarning), "cpu" says why."""
    g = torch.Generator().manual_seed(1)
    x = tuple(torch.randn(6, 2, 5, generator=g) for _ in range(2))
    p, _ = params("rf_iz", False, "exact", False)
    ref = FN["rf_iz"](x, p, backend="reference")[0]
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
            s, _ = FN["rf_iz"](x, p, backend="auto")
        assert torch.equal(s, ref)
        with pytest.raises(ValueError, match="numba is unavailable"):
            FN["rf_iz"](x, p, backend="cpu")
    finally:
        monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
        jit.reset_for_tests()
    assert torch.equal(FN["rf_iz"](x, p, backend="cpu")[0], ref)


def int64_chunks(M, bad_cols):
    """How many ``SPLIT``-neuron chunks the forward flags for an int64 rerun when the columns
    ``bad_cols`` leave the float64 bounds: every chunk of each tile (``TILE`` neurons, from the
    start of a thread's range of :func:`jit.ranges`) that holds one of them."""
    from spikefuse.kernels.cpu import _nb_resonator as nb
    from spikefuse.kernels.cpu import jit

    flagged = set()
    for j0, j1 in jit.ranges(M, nb.SPLIT):
        for a in range(j0, j1, nb.TILE):
            b = min(j1, a + nb.TILE)
            if any(a <= c < b for c in bad_cols):
                flagged |= set(range(a // nb.SPLIT, -(-b // nb.SPLIT)))
    return len(flagged)


@pytest.mark.parametrize("model", MODELS)
def test_float64_path_bounds_and_int64_rerun(model):
    """The float64 path (integer-valued doubles, exact below 2**40) next to tiles that leave its
    bounds and run again in int64 (values beyond 2**40, int64 wrap-around), the decays at their
    extremes (sin 4096, cos 0 and sin 0, cos 4096) and negative inputs: bit-identical to the
    reference in one call of three tiles, and the rerun tiles counted."""
    from spikefuse.kernels.cpu import resonator as cr

    M, big = 600, 2.0 ** 40 / 4096
    x = torch.zeros(5, 1, M)
    x[:, :, :256] = torch.linspace(-1, 1, 256) * big * 0.05  # |re + i im| <= 5 sqrt(2) 0.05 2**40
    x[:, :, 256:512] = big * 3
    x[:, :, 512:] = -1e15
    kw = dict(threshold=0.5)
    if model.startswith("adrf"):
        kw.update(threshold_step=0.25, threshold_decay=1024.0, refractory_decay=2048.0)
    for sin, cos in ((2607.0, 2607.0), (4096.0, 0.0), (0.0, 4096.0)):
        p = (R.AdRFParams if model.startswith("adrf") else R.RFParams)(sin, cos, **kw)
        same("cpu", model, (x, -x), p)
        assert cr.LAST["int64_chunks"] == int64_chunks(M, range(256, M))
        xs = (x[:, :, :256] * 1e-6).contiguous()
        same("cpu", model, (xs, -xs * 0.5), p)
        assert cr.LAST["int64_chunks"] == 0



@pytest.mark.parametrize("model", MODELS)
def test_gradient_broadcast_over_time(model):
    """A spike gradient that autograd broadcasts over time (``s.sum()``, stride 0) is read as one
    row (jit.grad_rows), not materialised: the same input and decay gradients as the
    materialised one and as the reference's, bit for bit (binary and graded spikes)."""
    g = torch.Generator().manual_seed(8)
    x = [torch.randn(12, B, C, generator=g) * 0.5 + 0.1 for _ in range(2)]
    for graded in (False, True):
        p, _ = params(model, graded, "exact", True)
        grads = []
        for be, dense in (("cpu", False), ("cpu", True), ("reference", False)):
            xr, xi, S, Cd = (t.detach().clone().requires_grad_() for t in (*x, p.sin_decay, p.cos_decay))
            s = FN[model]((xr, xi), p._replace(sin_decay=S, cos_decay=Cd), backend=be)[0]
            loss = (s * torch.ones_like(s)).sum() if dense else s.sum()
            grads.append(torch.autograd.grad(loss, [xr, xi, S, Cd]))
        for k in range(4):
            assert torch.equal(grads[0][k], grads[1][k]), (model, graded, k)
            assert torch.equal(grads[0][k], grads[2][k]), (model, graded, k)
        assert grads[0][0].abs().sum() > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_tensor_as_both_inputs(model, dtype):
    """``f((x, x))``, one tensor as the real and the imaginary input: the fused backward returns
    the sum of both input gradients in one slot (the kernel adds them for fp32 I/O, the glue adds
    the rounded ones for bf16, as autograd does); the input and decay gradients equal those of
    the unfused call (``(x, x.view_as(x))``: two inputs, autograd adds) and the reference's, bit
    for bit, with spike and trace gradients; without gradients the outputs are the same too."""
    p, leaves = params(model, model in ("rf", "adrf_iz"), "exact", True)
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(T, B, C, generator=g) * 0.6).to(dtype)
    w = torch.randn(T, B, C, generator=g)

    def run(backend, alias):
        xx = x.clone().requires_grad_()
        ls = [t.detach().clone().requires_grad_() for t in leaves]
        pp = p._replace(sin_decay=ls[0], cos_decay=ls[1])
        s, _, tr = FN[model]((xx, xx if alias else xx.view_as(xx)), pp, backend=backend, return_traces=True)
        loss = (s.float() * w).sum() + (tr[0].float() * w).sum() + tr[1].float().sum()
        return [s.detach(), *torch.autograd.grad(loss, [xx, *ls])]

    fused, unfused, ref = run("cpu", True), run("cpu", False), run("reference", True)
    assert 0 < fused[0].sum() < fused[0].numel()
    for k, (a, b, r) in enumerate(zip(fused, unfused, ref)):
        assert a.abs().sum() > 0, k
        assert torch.equal(a, b), k
        assert torch.equal(a, r), k
    with torch.no_grad():
        s1 = FN[model]((x, x), p._replace(sin_decay=leaves[0].detach(), cos_decay=leaves[1].detach()),
                       backend="cpu")[0]
    assert torch.equal(s1, fused[0])


@pytest.mark.parametrize("model", MODELS)
def test_wide_vectors_change_no_bits(model, monkeypatch):
    """The float64 forward compiled for 512-bit vectors (``make_fwd(wide=1)``, the default)
    gives the spikes, traces and final state of the kernel without the hint (``wide=0``) and of
    the reference, bit for bit."""
    nb = jit.kernels("resonator")
    p, _ = params(model, False, "exact", True)
    g = torch.Generator().manual_seed(12)
    x = tuple(torch.randn(T, 32, C, generator=g) * 0.6 for _ in range(2))

    def outs(backend):
        s, st, tr = FN[model](x, p, backend=backend, return_traces=True)
        return [s, *st, *tr]

    check_compile_variant(monkeypatch, nb, "make_fwd", lambda orig: lambda *a: orig(*a, nb.TILE, nb.SPLIT, 0), outs)


@pytest.mark.parametrize("model", MODELS)
def test_int32_path_at_and_past_its_bounds(model, monkeypatch):
    """The int32 forward tiles (``make_fwd(i32=1)``, the default) against the float64 ones
    (``i32=0``) and the reference, bit for bit, in one call of several tiles: ordinary inputs;
    columns whose re / im cross the int32 bound (2**18 LSB: 64 at s_scale 4096) after some steps;
    an input ``x s`` past 2**20 at the first step; a threshold (theta0) past 2**18 in a second
    call, and an odd scale (a division in the float conversions)."""
    nb = jit.kernels("resonator")
    g = torch.Generator().manual_seed(34)
    M = 2 * nb.TILE + 300
    x = [torch.randn(30, 1, M, generator=g) * 0.6 for _ in range(2)]
    x[0][:, :, 5000:5004] = 40.0           # |re + i im| grows past 64 within a few steps
    x[0][:, :, 6000], x[1][:, :, 6000] = 250.0, 250.0    # x s just below 2**20; C re past 2**31
    x[1][10:, :, 12000] = -63.0
    x[0][0, :, 300] = 256.0                # x s = 2**20 at t = 0
    base = params(model, False, "exact", False)[0]

    def outs(p, scale_x=1.0):
        def run(backend):
            s, st, tr = FN[model](tuple(t * scale_x for t in x), p, backend=backend, return_traces=True)
            return [s, *st, *tr]
        return run

    patched = lambda orig: lambda *a, **k: orig(*a, **{**k, "i32": 0})  # noqa: E731
    got = check_compile_variant(monkeypatch, nb, "make_fwd", patched, outs(base))
    assert any(t.abs().max() * 4096 > 2 ** 18 for t in got[1:])    # some state did leave the bound
    check_compile_variant(monkeypatch, nb, "make_fwd", patched, outs(base._replace(threshold=70.0), 60.0))
    check_compile_variant(monkeypatch, nb, "make_fwd", patched, outs(base._replace(s_scale=3000)))
