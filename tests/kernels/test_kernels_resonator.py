"""Triton RF / RF-Iz / AdRF / AdRF-Iz scans (interpreter) against spikefuse.functional.resonator:
bit-identical spikes, traces and final state (int64 dynamics), gradients w.r.t. both inputs, the
sin/cos decays (both ``decay_grad`` rules) and the initial state, with the fused complex/real
spike surrogates; SPEC 17 L3-L6 and the lava-dl RF fixture through the triton backend."""
import itertools
import math

import pytest
import torch

from equivalence import check_backend, scaled_tol
from spikefuse import kernels
from spikefuse.functional import resonator as R

pytest.importorskip("spikefuse.kernels.triton")

T, B, C = 9, 3, 37
MODELS = ("rf", "rf_iz", "adrf", "adrf_iz")
FN = {m: getattr(R, f"{m}_multistep") for m in MODELS}
# spikes need an input scale that reaches the threshold and a phase that crosses zero
THETA = {"rf": 0.5, "rf_iz": 0.5, "adrf": 0.4, "adrf_iz": 0.5}


def _decays(tensor, n=C, g=None):
    """sin/cos decays (4096 gain (sin, cos)(2 pi / period)); per channel (learnable) or numbers."""
    g = g or torch.Generator().manual_seed(5)
    if tensor:
        period = torch.rand(n, generator=g) * 12 + 4
        gain = 4096 * (0.8 + 0.15 * torch.rand(n, generator=g))
        S = (gain * torch.sin(2 * math.pi / period)).requires_grad_()
        Cd = (gain * torch.cos(2 * math.pi / period)).requires_grad_()
        return S, Cd, [S, Cd]
    return 2607.0, 2607.0, []


def _params(model, graded, decay_grad, tensor, n=C, s_scale=4096, theta=None):
    g = torch.Generator().manual_seed(5)
    S, Cd, leaves = _decays(tensor, n, g)
    th = THETA[model] if theta is None else theta
    if model.startswith("adrf"):
        dth = torch.rand(n, generator=g) * 4096 if tensor else 1024.0
        dr = 2048.3 if tensor else 2048.0
        p = R.AdRFParams(S, Cd, dth, dr, threshold=th, threshold_step=0.25 * th / 0.5, tau_grad=0.7,
                         scale_grad=1.3, graded_spike=graded, s_scale=s_scale, decay_grad=decay_grad)
    else:
        p = R.RFParams(S, Cd, threshold=th, tau_grad=0.7, scale_grad=1.3, graded_spike=graded,
                       s_scale=s_scale, decay_grad=decay_grad)
    return p, leaves


def _state(model, shape, grad):
    g = torch.Generator().manual_seed(2)
    n = 4 if model.startswith("adrf") else 2
    vals = [torch.randn(shape, generator=g) * 0.3 for _ in range(n)]
    if n == 4:
        vals[2] = vals[2].abs() + 0.3  # threshold
        vals[3] = vals[3].abs()  # refractory
    vals = [v.requires_grad_(grad and i < 2) for i, v in enumerate(vals)]
    return R._STATES[model](*vals)


def _check(model, graded, decay_grad, tensor, dtype=torch.float32, scale=1.0, state_grad=None,
           shape=(T, B, C), s_scale=4096, theta=None, spikes=True):
    """tests/equivalence.check_backend: every output, state and trace bit-identical, the same
    outputs differentiable, gradients w.r.t. both inputs, the decays and the initial state close."""
    g = torch.Generator().manual_seed(0)
    x = [((torch.randn(shape, generator=g) * 0.5 + 0.1) * scale).to(dtype) for _ in range(2)]
    st = None if state_grad is None else _state(model, shape[1:], state_grad)
    p, decays = _params(model, graded, decay_grad, tensor, n=shape[2], s_scale=s_scale, theta=theta)
    leaves = dict(xr=x[0], xi=x[1], **dict(zip(("sin_decay", "cos_decay"), decays)))
    if state_grad:
        leaves.update(real0=st[0], imag0=st[1])

    def run(backend, lv):
        pp = p._replace(**{k: lv[k] for k in ("sin_decay", "cos_decay") if k in lv})
        s0 = st if not state_grad else type(st)(lv["real0"], lv["imag0"], *st[2:])
        out = FN[model]((lv["xr"], lv["xi"]), pp, state=s0, backend=backend, return_traces=True)
        return [out[0]] + list(out[1]) + list(out[2])

    tol = 2e-5 if dtype == torch.float32 else 2e-2
    outs_r, _ = check_backend(run, leaves, "triton", exact="all", differentiable_only=True, seed=1,
                              grad_dtype=torch.float64, grad_tol=scaled_tol(tol), allow_none_grads=True)
    if spikes:
        assert 0 < (outs_r[0] != 0).sum() < outs_r[0].numel()


COMBOS = list(itertools.product([False, True], ["exact", "lava"]))  # (graded, decay_grad)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("combo", range(4))
def test_matches_reference(model, combo):
    graded, decay_grad = COMBOS[combo]
    _check(model, graded, decay_grad, tensor=combo != 1)


@pytest.mark.parametrize("model,dtype", [("rf", torch.float16), ("rf_iz", torch.bfloat16),
                                         ("adrf", torch.bfloat16), ("adrf_iz", torch.float16)])
def test_half_precision_io(model, dtype):
    _check(model, dtype == torch.float16, "exact", True, dtype=dtype)


@pytest.mark.parametrize("model", MODELS)
def test_initial_state_gradients(model):
    """A non-zero initial state (float im0 < 0 can fire at t = 0) with gradients to re0, im0."""
    _check(model, False, "exact", True, state_grad=True)


@pytest.mark.parametrize("model", ["rf_iz", "adrf"])
def test_conv_shape_per_channel_lava(model):
    """(T, B, C, H): 1-D decays are per channel along the first feature dim."""
    _check(model, True, "lava", True, shape=(7, 2, 5, 7), state_grad=False)


@pytest.mark.parametrize("model", MODELS)
def test_large_values(model):
    """States beyond 2**24 LSB: float32 rounding of int64 -> float as in the reference."""
    _check(model, False, "exact", False, scale=3000.0, theta=1500.0, spikes=False)


@pytest.mark.parametrize("model", ["rf", "adrf_iz"])
def test_odd_scale(model):
    """A non-power-of-two s_scale (IEEE division by s)."""
    _check(model, True, "lava", True, s_scale=1000)


@pytest.mark.parametrize("model", MODELS)
def test_inference_stores_nothing(model):
    """Without gradients or traces the kernel writes spikes and the final state only."""
    g = torch.Generator().manual_seed(3)
    x = [torch.randn(T, B, C, generator=g) * 0.5 for _ in range(2)]
    p, _ = _params(model, False, "exact", False)
    with torch.no_grad():
        sk, stk = FN[model](tuple(x), p, backend="triton")
    sr, str_ = FN[model](tuple(x), p, backend="reference")
    assert torch.equal(sk, sr) and all(torch.equal(a, b) for a, b in zip(stk, str_))
    assert not sk.requires_grad


@pytest.mark.parametrize("model", ["rf_iz", "adrf"])
def test_partial_gradients(model):
    """Only the decays learn (input without grad), or only the initial state."""
    g = torch.Generator().manual_seed(6)
    x = tuple(torch.randn(T, B, C, generator=g) * 0.5 for _ in range(2))
    res = []
    for be in ("triton", "reference"):
        p, leaves = _params(model, False, "exact", True)
        s, st = FN[model](x, p, backend=be)
        res.append(torch.autograd.grad(s.sum() + st.imag.sum(), leaves))
        st0 = _state(model, (B, C), True)
        s, st = FN[model](x, _params(model, True, "lava", False)[0], state=st0, backend=be)
        res[-1] += torch.autograd.grad((s * x[0]).sum() + st.real.sum(), [st0.real, st0.imag])
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * max(1.0, b.abs().max().item()))


def test_state_carries_across_calls():
    """Two calls chained through the returned state equal one call over the whole sequence."""
    g = torch.Generator().manual_seed(4)
    x = [torch.randn(2 * T, B, C, generator=g) * 0.5 for _ in range(2)]
    for model in ("rf_iz", "adrf"):
        p, _ = _params(model, False, "exact", True)
        s_all, st_all = FN[model](tuple(x), p, backend="reference")
        s1, st1 = FN[model]((x[0][:T], x[1][:T]), p, backend="triton")
        s2, st2 = FN[model]((x[0][T:], x[1][T:]), p, state=st1, backend="triton")
        assert torch.equal(torch.cat([s1, s2]).detach(), s_all.detach()), model
        assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(st2, st_all)), model


def _same(model, x, p, state=None):
    outs = []
    for be in ("triton", "reference"):
        s, st, tr = FN[model](x, p, state=state, backend=be, return_traces=True)
        outs.append([s] + list(st) + list(tr))
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    return outs[0]


def test_edges_reset_at_threshold_and_float_vs_int_phase():
    """RF-Iz resets when im equals θ exactly; the adaptive update of AdRF uses the integer
    previous imaginary part (a float state of -1e-5 truncates to 0: spike output, no θ step)."""
    xi = torch.tensor([0.5, 0, 0, 0]).reshape(4, 1, 1)
    s, re, im, re_tr, im_tr = _same("rf_iz", (torch.zeros_like(xi), xi), R.RFParams(**P4))
    assert s.flatten().tolist() == [1, 0, 0, 0]
    assert (re_tr.flatten()[1] * 4096).item() == -2046  # restarted from im = 2047, not 2048
    x = torch.tensor([0.9, 0.0]).reshape(2, 1, 1)
    st = R.AdRFState(torch.zeros(1, 1), torch.full((1, 1), -1e-5), torch.full((1, 1), 0.5), torch.zeros(1, 1))
    out = _same("adrf", (x, torch.zeros_like(x)), R.AdRFParams(**PA), state=st)
    assert out[0].flatten().tolist() == [1, 0]
    assert _q(out[7]) == [2048, 2048]  # θ trace: no threshold step after the float-only spike


# --------------------------------------------------------------------------- SPEC 17 vectors

P4 = dict(sin_decay=4095.0, cos_decay=0.0, threshold=0.5)  # period 4, decay 0
PA = dict(P4, threshold_decay=2048.0, refractory_decay=2048.0, threshold_step=0.25)


def _q(t):
    return (t.flatten() * 4096).tolist()


def test_spec_l3_rf():
    xr = torch.tensor([1.0, 0, 0, 0, 0, 0]).reshape(6, 1, 1).requires_grad_()
    s, st, tr = R.rf_multistep((xr, torch.zeros_like(xr)), R.RFParams(**P4), backend="triton",
                               return_traces=True)
    assert _q(tr.real) == [4096, 0, -4094, 0, 4092, 0]
    assert _q(tr.imag) == [0, 4095, 0, -4093, 0, 4091]
    assert s.flatten().tolist() == [0, 0, 0, 0, 1, 0]
    (gx,) = torch.autograd.grad(s[4].sum(), [xr])
    want = torch.tensor([5.4292936, 0, -5.4319453, 0, 5.4345989, 0])
    torch.testing.assert_close(gx.flatten(), want, rtol=1e-5, atol=1e-6)


def test_spec_l4_rf_iz():
    xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    s, st, tr = R.rf_iz_multistep((xr, xi), R.RFParams(**P4), backend="triton", return_traces=True)
    assert _q(tr.real) == [0, 411, 0, -409, 0, 407]
    assert _q(tr.imag) == [2457, 0, 410, 0, -408, 0]
    assert s.flatten().tolist() == [1, 0, 0, 0, 0, 0]


def test_spec_l5_adrf():
    xr = torch.zeros(9, 1, 1)
    xr[0] = 1.0
    s, st, tr = R.adrf_multistep((xr, torch.zeros_like(xr)), R.AdRFParams(**PA), backend="triton",
                                 return_traces=True)
    assert _q(tr.real) == [4096, 0, -4094, 0, 4092, 0, -4090, 0, 4088]
    assert _q(tr.imag) == [0, 4095, 0, -4093, 0, 4091, 0, -4089, 0]
    assert _q(tr.threshold) == [2048, 2048, 2048, 2048, 2048, 2560, 2304, 2176, 2112]
    assert _q(tr.refractory) == [0, 0, 0, 0, 0, 2048, 1024, 512, 256]
    assert s.flatten().nonzero().flatten().tolist() == [4, 8]


def test_spec_l6_adrf_iz():
    xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    s, st, tr = R.adrf_iz_multistep((xr, xi), R.AdRFParams(**PA), backend="triton", return_traces=True)
    assert _q(tr.real) == [0, 1, 0, 0, 0, 0]
    assert _q(tr.imag) == [2457, 0, 0, 0, 0, 0]
    assert _q(tr.threshold) == [2048, 2560, 2304, 2176, 2112, 2080]
    assert _q(tr.refractory) == [0, 2048, 1024, 512, 256, 128]
    assert s.flatten().tolist() == [1, 0, 0, 0, 0, 0]


# --------------------------------------------------------------------------- dispatch


def test_reasons(monkeypatch):
    x = torch.rand(4, 2, 5)
    p = R.RFParams(2607.0, 2607.0, threshold=0.5)
    st = R.initial_state("rf", (2, 5), p)
    with pytest.raises(ValueError, match="float64"):
        R.rf_multistep((x.double(), x.double()), p, backend="triton")
    with pytest.raises(ValueError, match="s_scale"):
        R.rf_multistep((x, x), p._replace(s_scale=2 ** 24), backend="triton")
    from spikefuse.kernels.triton import common as tcommon
    monkeypatch.setattr(tcommon, "INTERPRET", False)
    for fam in ("loihi_rf", "loihi_rf_iz", "loihi_adrf", "loihi_adrf_iz"):
        assert "triton" in kernels.available(fam)
        with pytest.raises(ValueError, match="needs CUDA tensors or TRITON_INTERPRET=1"):
            kernels.resolve(fam, "triton", x, params=p, state=st, return_traces=False)
        # auto on CPU tensors: no cpu implementation -> reference loop
        assert kernels.resolve(fam, "auto", x, params=p, state=st, return_traces=False) is None


# --------------------------------------------------------------------------- lava-dl fixture

lava_rf = pytest.importorskip("test_fixtures_lava_rf")
RF_CASES = [(p, m) for p, m in lava_rf.CASES if m != "sigma_delta"]


@pytest.mark.parametrize("path,model", RF_CASES, ids=[p.name for p, _ in RF_CASES])
def test_triton_matches_lava_fixture(path, model):
    """lava-dl's own outputs (tests/fixtures/lava_dl) through the triton backend with lava's decay
    gradient rule: bit-exact spikes and traces, input and decay gradients."""
    from load_fixture import load_fixture

    d = load_fixture(path)
    n = lava_rf._build(model, d)
    x = d["input"].clone().requires_grad_()
    xi = d["input_imag"].clone().requires_grad_()
    lava_rf._load_stored_params(n, d, x)
    s, st, tr = FN[model]((x, xi), n.params(), backend="triton", return_traces=True)
    assert torch.equal(s, d["spikes"])
    assert torch.equal(tr.real, d["v_real"]) and torch.equal(tr.imag, d["v_imag"])
    loss = (s * d["R"]).sum() + (tr.real * d["Q"]).sum() + (tr.imag * d["Q2"]).sum()
    assert loss.item() == pytest.approx(float(d["loss"]), rel=1e-5, abs=1e-5)
    loss.backward()
    lava_rf._rel_close("grad_input", x.grad, d["grad_input"])
    lava_rf._rel_close("grad_input_imag", xi.grad, d["grad_input_imag"])
    for name in ("sin_decay", "cos_decay"):
        key = f"grad_{name}"
        if key in d:
            cand = [v for k, v in n.named_parameters() if k.endswith(name) or k.endswith(name + "_param")]
            assert cand, name
            lava_rf._rel_close(key, cand[0].grad, d[key])
