"""Tests of spikefuse.functional.lif and spikefuse.neuron.lif (SPEC.md 2.4, 15, 17 S1-S3).

Reference values come from SPEC.md section 17 (hand-derived) and from independent float64
implementations written here: a straight-through step loop (forward Heaviside, backward the
surrogate's primitive) and the cext hand-written BPTT of SPEC 15.3 (gs2h / gv2h recurrence).
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from spikefuse import kernels
from spikefuse import surrogate as sg
from spikefuse.functional.lif import (
    LIFParams,
    LIFState,
    LIFTraces,
    if_multistep,
    if_step,
    lif_multistep,
    lif_step,
)
from spikefuse.neuron.lif import IF, LIF, ParametricLIF, reset_net

REF = "reference"

# --------------------------------------------------------------------------- independent references


def ref_loop(x, tau, vth, vr, decay_input, detach_reset, surrogate, v0=None):
    """Float64 step loop straight from SPEC 15.1/15.2; spike = Heaviside + (P - P.detach())
    with P the surrogate's primitive, so its backward is surrogate.grad (independent of
    surrogate.__call__). Returns spikes, h, v (T, ...), v_last."""
    rest = 0.0 if vr is None else vr
    v = torch.zeros_like(x[0]) + rest if v0 is None else v0
    S, H, V = [], [], []
    for t in range(x.shape[0]):
        if tau is None:
            h = v + x[t]
        elif decay_input:
            h = v + (x[t] - (v - rest)) / tau
        else:
            h = v - (v - rest) / tau + x[t]
        z = h - vth
        p = surrogate.primitive(z)
        s = (z >= 0).to(z.dtype) + (p - p.detach())
        sr = s.detach() if detach_reset else s
        v = h - sr * vth if vr is None else sr * vr + (1 - sr) * h
        S.append(s)
        H.append(h)
        V.append(v)
    return torch.stack(S), torch.stack(H), torch.stack(V), v


def cext_bptt(x, tau, vth, vr, decay_input, detach_reset, surrogate, v0, gS, gV_last):
    """SPEC 15.3: forward saving gs2h/gv2h, then the reverse-time recurrence (no autograd)."""
    rest = 0.0 if vr is None else vr
    v = v0
    gs2h, gv2h = [], []
    dr = 1.0 if detach_reset else 0.0
    for t in range(x.shape[0]):
        if tau is None:
            h = v + x[t]
        elif decay_input:
            h = v + (x[t] - (v - rest)) / tau
        else:
            h = v - (v - rest) / tau + x[t]
        s = (h - vth >= 0).to(h.dtype)
        g = surrogate.grad(h - vth)
        if vr is None:
            gv = 1 - vth * g * (1 - dr)
            v = h - s * vth
        else:
            gv = 1 - s + (vr - h) * g * (1 - dr)
            v = s * vr + (1 - s) * h
        gs2h.append(g)
        gv2h.append(gv)
    dhdx = 1.0 if (tau is None or not decay_input) else 1.0 / tau
    dhdv = 1.0 if tau is None else 1.0 - 1.0 / tau
    gV = gV_last
    gX = torch.empty_like(x)
    for t in reversed(range(x.shape[0])):
        gH = gS[t] * gs2h[t] + gV * gv2h[t]
        gX[t] = gH * dhdx
        gV = gH * dhdv
    return gX, gV


def _col(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype).reshape(-1, 1, 1)


# --------------------------------------------------------------------------- SPEC 17 vectors

S1_X = [1.5, 1.5, 0.5, 3.0, 0.0]
S1_GS = [0.0, 1.0, 0.0, 1.0, 0.0]
S1_ROWS = {
    # (v_reset, detach_reset): (H, S, V, gX)
    (0.0, False): ([.75, 1.125, .25, 1.625, 0], [0, 1, 0, 1, 0], [.75, 0, .25, 0, 0],
                   [.109656, .40906, .049525, .10298, 0]),
    (0.0, True): ([.75, 1.125, .25, 1.625, 0], [0, 1, 0, 1, 0], [.75, 0, .25, 0, 0],
                  [.216598, .433196, .05149, .10298, 0]),
    (None, False): ([.75, 1.125, .3125, 1.65625, .328125], [0, 1, 0, 1, 0],
                    [.75, .125, .3125, .65625, .328125], [.083135, .435815, .039209, .095229, 0]),
    (None, True): ([.75, 1.125, .3125, 1.65625, .328125], [0, 1, 0, 1, 0],
                   [.75, .125, .3125, .65625, .328125], [.228502, .457003, .047615, .095229, 0]),
}


@pytest.mark.parametrize("v_reset,detach_reset", list(S1_ROWS), ids=["hard", "hard-det", "soft", "soft-det"])
def test_S1_lif_tau2(v_reset, detach_reset):
    H, S, V, GX = S1_ROWS[(v_reset, detach_reset)]
    x = _col(S1_X).requires_grad_(True)
    p = LIFParams(tau=2.0, v_threshold=1.0, v_reset=v_reset, detach_reset=detach_reset, surrogate=sg.ATan(2.0))
    s, st, tr = lif_multistep(x, p, backend=REF, return_traces=True)
    assert isinstance(tr, LIFTraces) and isinstance(st, LIFState)
    torch.testing.assert_close(tr.h, _col(H), atol=1e-5, rtol=0)
    torch.testing.assert_close(s, _col(S), atol=0, rtol=0)
    torch.testing.assert_close(tr.v, _col(V), atol=1e-5, rtol=0)
    torch.testing.assert_close(st.v, _col(V)[-1], atol=1e-5, rtol=0)
    # upstream gradient gS on the spikes, gV_last = 0
    (gx,) = torch.autograd.grad(s, x, grad_outputs=_col(S1_GS))
    torch.testing.assert_close(gx, _col(GX), atol=1e-5, rtol=0)


def test_S1_gradients_equal_cext_bptt():
    """The same S1 cases, gradients from the SPEC 15.3 recurrence in float64."""
    for (vr, dr), (_, _, _, GX) in S1_ROWS.items():
        x = _col(S1_X, torch.float64)
        gX, _ = cext_bptt(x, 2.0, 1.0, vr, True, dr, sg.ATan(2.0), torch.zeros(1, 1, dtype=torch.float64),
                          _col(S1_GS, torch.float64), torch.zeros(1, 1, dtype=torch.float64))
        torch.testing.assert_close(gX, _col(GX, torch.float64), atol=1e-5, rtol=0)


def test_S2_if_hard():
    x = _col(S1_X)
    s, st, tr = lif_multistep(x, LIFParams(tau=None, v_threshold=1.0, v_reset=0.0), backend=REF,
                              return_traces=True)
    torch.testing.assert_close(tr.h, _col([1.5, 1.5, 0.5, 3.5, 0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(s, _col([1, 1, 0, 1, 0]), atol=0, rtol=0)
    torch.testing.assert_close(tr.v, _col([0, 0, 0.5, 0, 0]), atol=1e-6, rtol=0)
    # the IF helpers give the same
    s2, st2, tr2 = if_multistep(x, backend=REF, return_traces=True)
    torch.testing.assert_close(s2, s)
    torch.testing.assert_close(tr2.h, tr.h)
    s3, _ = if_step(x[0])
    assert s3.item() == 1.0


def test_S3_lif_no_decay_input():
    x = _col([0.5, 0.8, 0.2, 1.2, 0.0])
    p = LIFParams(tau=2.0, decay_input=False)
    s, st, tr = lif_multistep(x, p, backend=REF, return_traces=True)
    torch.testing.assert_close(tr.h, _col([0.5, 1.05, 0.2, 1.3, 0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(s, _col([0, 1, 0, 1, 0]), atol=0, rtol=0)
    # dH/dX = 1 without input decay: dS[1]/dx[1] = surrogate'(0.05)
    x = x.requires_grad_(True)
    s, _ = lif_multistep(x, p, backend=REF)
    (g,) = torch.autograd.grad(s[1].sum(), x)
    expect = 1.0 / (1 + (math.pi / 2 * 2.0 * 0.05) ** 2)
    assert abs(g[1].item() - expect) < 1e-5


@pytest.mark.parametrize("surrogate,value", [(sg.ATan(2.0), 1.0), (sg.Sigmoid(2.0), 0.5), (sg.Sigmoid(4.0), 1.0)])
def test_surrogate_value_at_threshold(surrogate, value):
    """IF from V=0 with x = V_th: H - V_th = 0, spike fires (x >= 0) and dS/dx = surrogate(0)."""
    x = torch.full((1, 3), 1.0, requires_grad=True)
    s, _ = lif_step(x, None, LIFParams(tau=None, surrogate=surrogate))
    assert torch.equal(s, torch.ones(1, 3))
    (g,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, torch.full((1, 3), value), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- multi-step == looped step

FEAT = (2, 3)


def _make_params(kind, decay_input, reset, detach_reset, thr, surr, dtype=torch.float32):
    if kind == "if":
        tau = None
    elif kind == "lif":
        tau = 2.5
    else:  # per-channel tensor tau (broadcast over the last feature dim)
        tau = torch.tensor([1.5, 2.0, 4.0], dtype=dtype)
    vr = {"hard0": 0.0, "hardneg": -0.3, "hardtensor": torch.tensor([0.0, -0.2, 0.1], dtype=dtype),
          "soft": None}[reset]
    vth = 1.0 if thr == "scalar" else torch.tensor([[0.8, 1.0, 1.3], [1.0, 0.6, 1.1]], dtype=dtype)
    s = {"atan": sg.ATan(2.0), "sigmoid": sg.Sigmoid(4.0), "superspike": sg.SuperSpike(10.0)}[surr]
    return LIFParams(tau=tau, v_threshold=vth, v_reset=vr, decay_input=decay_input,
                     detach_reset=detach_reset, surrogate=s)


COMBOS = [
    c for c in itertools.product(
        ["if", "lif", "lif_tensor_tau"], [True, False], ["hard0", "hardneg", "hardtensor", "soft"],
        [False, True], ["scalar", "tensor"], ["atan", "sigmoid", "superspike"],
    )
    # decay_input is meaningless for IF; keep one value
    if not (c[0] == "if" and c[1] is False)
]


def _tensor_leaves(params):
    return [p for p in (params.tau, params.v_threshold, params.v_reset) if isinstance(p, torch.Tensor)]


@pytest.mark.parametrize("combo", COMBOS, ids=["-".join(map(str, c)) for c in COMBOS])
def test_multistep_equals_looped_step(combo):
    params = _make_params(*combo)
    for p in _tensor_leaves(params):
        p.requires_grad_(True)
    T = 7
    x = (torch.rand(T, *FEAT) * 2.8 - 0.2).requires_grad_(True)
    v0 = (torch.rand(*FEAT) * 0.5).requires_grad_(True)
    R = torch.randn(T, *FEAT)
    Q = torch.randn(T, *FEAT)

    s_m, st_m, tr_m = lif_multistep(x, params, LIFState(v0), backend=REF, return_traces=True)
    s_plain, st_plain = lif_multistep(x, params, LIFState(v0), backend=REF)
    torch.testing.assert_close(s_plain, s_m, atol=0, rtol=0)
    torch.testing.assert_close(st_plain.v, st_m.v, atol=0, rtol=0)

    state = LIFState(v0)
    s_l, v_l = [], []
    for t in range(T):
        s, state = lif_step(x[t], state, params)
        s_l.append(s)
        v_l.append(state.v)
    s_l, v_l = torch.stack(s_l), torch.stack(v_l)
    torch.testing.assert_close(s_m, s_l, atol=0, rtol=0)
    torch.testing.assert_close(tr_m.v, v_l, atol=0, rtol=0)
    torch.testing.assert_close(st_m.v, state.v, atol=0, rtol=0)
    assert s_m.sum() > 0, "the case should produce spikes"

    leaves = [x, v0] + _tensor_leaves(params)
    g_m = torch.autograd.grad((s_m * R).sum() + (tr_m.v * Q).sum(), leaves)
    g_l = torch.autograd.grad((s_l * R).sum() + (v_l * Q).sum(), leaves)
    for a, b in zip(g_m, g_l):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------- BPTT vs float64 references


BPTT_CASES = list(itertools.product(["if", "lif", "lif_tensor_tau"], [True, False], ["hardneg", "soft"],
                                    [False, True]))


@pytest.mark.parametrize("case", BPTT_CASES, ids=["-".join(map(str, c)) for c in BPTT_CASES])
def test_bptt_vs_float64_reference(case):
    kind, di, reset, dr = case
    p64 = _make_params(kind, di, reset, dr, "tensor", "atan", dtype=torch.float64)
    T = 10
    x64 = torch.rand(T, *FEAT, dtype=torch.float64) * 1.4 - 0.1
    v064 = torch.rand(*FEAT, dtype=torch.float64) * 0.3
    R = torch.randn(T, *FEAT, dtype=torch.float64)
    Q = torch.randn(T, *FEAT, dtype=torch.float64)

    # float64 straight-through reference with autograd (inputs, v0 and tensor params)
    l64 = [x64.clone().requires_grad_(True), v064.clone().requires_grad_(True)]
    prm64 = [None if not isinstance(v, torch.Tensor) else v.clone().requires_grad_(True)
             for v in (p64.tau, p64.v_threshold, p64.v_reset)]
    tau = prm64[0] if prm64[0] is not None else p64.tau
    vth = prm64[1] if prm64[1] is not None else p64.v_threshold
    vr = prm64[2] if prm64[2] is not None else p64.v_reset
    S, H, V, _ = ref_loop(l64[0], tau, vth, vr, di, dr, p64.surrogate, l64[1])
    leaves64 = l64 + [p for p in prm64 if p is not None]
    ref = torch.autograd.grad((S * R).sum() + (V * Q).sum(), leaves64)

    # ours, float32
    p32 = p64._replace(**{k: (v.float().requires_grad_(True) if isinstance(v, torch.Tensor) else v)
                          for k, v in p64._asdict().items() if k in ("tau", "v_threshold", "v_reset")})
    x32 = x64.float().requires_grad_(True)
    v032 = v064.float().requires_grad_(True)
    s, st, tr = lif_multistep(x32, p32, LIFState(v032), backend=REF, return_traces=True)
    torch.testing.assert_close(s.double(), S.detach(), atol=0, rtol=0)
    torch.testing.assert_close(tr.h.double(), H.detach(), atol=1e-5, rtol=1e-5)
    leaves32 = [x32, v032] + _tensor_leaves(p32)
    got = torch.autograd.grad((s * R.float()).sum() + (tr.v * Q.float()).sum(), leaves32)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=1e-4)

    # ours in float64 equals the reference to round-off
    s64, st64, tr64 = lif_multistep(l64[0], p64._replace(tau=tau, v_threshold=vth, v_reset=vr),
                                    LIFState(l64[1]), backend=REF, return_traces=True)
    assert s64.dtype == torch.float64 and st64.v.dtype == torch.float64
    got64 = torch.autograd.grad((s64 * R).sum() + (tr64.v * Q).sum(), leaves64)
    for a, b in zip(got64, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("case", BPTT_CASES, ids=["-".join(map(str, c)) for c in BPTT_CASES])
def test_bptt_equals_cext_recurrence(case):
    """Autograd through lif_multistep == the hand-written SPEC 15.3 backward (float64),
    for a loss on the spikes and on the final V (the gradients cext propagates)."""
    kind, di, reset, dr = case
    p = _make_params(kind, di, reset, dr, "tensor", "sigmoid", dtype=torch.float64)
    T = 9
    x = (torch.rand(T, *FEAT, dtype=torch.float64) * 1.4 - 0.1).requires_grad_(True)
    v0 = (torch.rand(*FEAT, dtype=torch.float64) * 0.3).requires_grad_(True)
    gS = torch.randn(T, *FEAT, dtype=torch.float64)
    gVl = torch.randn(*FEAT, dtype=torch.float64)
    s, st = lif_multistep(x, p, LIFState(v0), backend=REF)
    gx, gv0 = torch.autograd.grad((s * gS).sum() + (st.v * gVl).sum(), [x, v0])
    ex, ev0 = cext_bptt(x.detach(), p.tau, p.v_threshold, p.v_reset, di, dr, p.surrogate, v0.detach(), gS, gVl)
    torch.testing.assert_close(gx, ex, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(gv0, ev0, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("v_reset", [0.0, -0.4, None])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_single_step_gv2h_formula(v_reset, detach_reset):
    """dV/dH of one step equals SPEC 15.1's gv2h, with and without detach_reset; for LIF
    dV/dV_prev = gv2h * (1 - 1/tau) and dS/dH = gs2h."""
    vth = 1.0
    surr = sg.ATan(2.0)
    dr = 1.0 if detach_reset else 0.0

    def gv2h_formula(h):
        gs2h = surr.grad(h - vth)
        S = (h >= vth).double()
        if v_reset is None:
            return 1 - vth * gs2h * (1 - dr), gs2h
        return 1 - S + (v_reset - h) * gs2h * (1 - dr), gs2h

    h = torch.tensor([[0.2, 0.95, 1.0, 1.05, 1.7, -0.5]], dtype=torch.float64)
    # IF from V=0: H = x, so dV/dx = dV/dH
    x = h.clone().requires_grad_(True)
    s, st = lif_step(x, LIFState(torch.zeros_like(h)), LIFParams(tau=None, v_threshold=vth, v_reset=v_reset,
                                                                 detach_reset=detach_reset, surrogate=surr))
    gv2h, gs2h = gv2h_formula(h)
    (gv,) = torch.autograd.grad(st.v.sum(), x, retain_graph=True)
    torch.testing.assert_close(gv, gv2h, atol=1e-12, rtol=0)
    (gs,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(gs, gs2h, atol=1e-12, rtol=0)
    # the term that detach_reset removes is not negligible here
    term = -vth * gs2h if v_reset is None else (v_reset - h) * gs2h
    assert (term.abs() > 1e-3).any()
    # LIF: the previous V enters H with factor (1 - 1/tau); H values kept off the threshold
    tau = 3.0
    rest = 0.0 if v_reset is None else v_reset
    h = torch.tensor([[0.2, 0.95, 1.05, 1.7, -0.5]], dtype=torch.float64)
    v_prev = torch.full_like(h, 0.3, requires_grad=True)
    xl = (h - v_prev.detach()) * tau + (v_prev.detach() - rest)  # decay_input: H == h
    s, st = lif_step(xl, LIFState(v_prev), LIFParams(tau=tau, v_threshold=vth, v_reset=v_reset,
                                                     detach_reset=detach_reset, surrogate=surr))
    assert torch.equal(s, (h >= vth).double())
    gv2h, _ = gv2h_formula(h)
    (gvp,) = torch.autograd.grad(st.v.sum(), v_prev)
    torch.testing.assert_close(gvp, gv2h * (1 - 1 / tau), atol=1e-10, rtol=1e-8)


# --------------------------------------------------------------------------- parametric LIF


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_parametric_tau_gradient_finite_differences(decay_input, v_reset):
    """dL/dw for tau = 1/sigmoid(w), float64. With detach_reset=True and a loss on h and v
    only, L(w) is smooth while the spike pattern is fixed, so central differences are exact
    up to O(eps^2); the spike pattern is checked to stay the same."""
    T = 12
    x = torch.rand(T, 3, 4, dtype=torch.float64) * 2.2
    Q = torch.randn(T, 3, 4, dtype=torch.float64)
    P = torch.randn(T, 3, 4, dtype=torch.float64)

    def run(w):
        p = LIFParams(tau=1.0 / torch.sigmoid(w), v_reset=v_reset, decay_input=decay_input, detach_reset=True)
        s, _, tr = lif_multistep(x, p, backend=REF, return_traces=True)
        return (tr.v * Q).sum() + (tr.h * P).sum(), s

    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    L, s0 = run(w)
    assert s0.sum() > 0
    (g,) = torch.autograd.grad(L, w)
    eps = 1e-6
    with torch.no_grad():
        Lp, sp = run(w + eps)
        Lm, sm = run(w - eps)
    assert torch.equal(sp, s0) and torch.equal(sm, s0)
    fd = (Lp - Lm) / (2 * eps)
    torch.testing.assert_close(g, fd, atol=1e-6, rtol=1e-6)


def test_parametric_lif_module_w_gradient_matches_functional():
    m = ParametricLIF(init_tau=3.0, decay_input=False, v_reset=None, backend=REF)
    assert abs(m.w.item() - (-math.log(2.0))) < 1e-7
    assert abs(m.tau.item() - 3.0) < 1e-5
    x = torch.rand(6, 2, 5) * 1.5
    s = m(x)
    s.sum().backward()
    assert m.w.grad is not None and m.w.grad.abs() > 0
    w = m.w.detach().clone().requires_grad_(True)
    s2, _ = lif_multistep(x, LIFParams(tau=1 / torch.sigmoid(w), v_reset=None, decay_input=False), backend=REF)
    torch.testing.assert_close(s2, s)
    (g,) = torch.autograd.grad(s2.sum(), w)
    torch.testing.assert_close(g, m.w.grad)


def test_parametric_lif_saturated_w_still_runs():
    """1/sigmoid(w) rounds to exactly 1.0 in fp32 for large w; the module must keep working."""
    m = ParametricLIF(backend=REF)
    with torch.no_grad():
        m.w.fill_(40.0)
    assert m.tau.item() == 1.0
    x = torch.tensor([0.5, 1.2]).reshape(2, 1, 1)
    s = m(x)  # tau == 1: H = X + V_reset
    assert s.flatten().tolist() == [0.0, 1.0]


# --------------------------------------------------------------------------- dtypes, hook


def test_half_input_state_in_fp32():
    x = torch.rand(5, 2, 3) * 2
    s32, st32 = lif_multistep(x, LIFParams(), backend=REF)
    s16, st16 = lif_multistep(x.half(), LIFParams(), backend=REF)
    assert s16.dtype == torch.float16 and st16.v.dtype == torch.float32
    # the state is computed in fp32 from the fp16 values: same numbers as fp32 on x.half().float()
    s_ref, st_ref = lif_multistep(x.half().float(), LIFParams(), backend=REF)
    assert torch.equal(s16.float(), s_ref) and torch.equal(st16.v, st_ref.v)
    sb, stb = lif_step(x[0].bfloat16(), None, LIFParams())
    assert sb.dtype == torch.bfloat16 and stb.v.dtype == torch.float32


def test_initial_state_is_v_reset():
    x = torch.zeros(1, 2, 3)
    _, st = lif_multistep(x, LIFParams(tau=None, v_reset=-0.7), backend=REF)
    assert torch.allclose(st.v, torch.full((2, 3), -0.7))
    _, st = lif_multistep(x, LIFParams(tau=None, v_reset=None), backend=REF)
    assert torch.equal(st.v, torch.zeros(2, 3))
    _, st = lif_step(x[0], None, LIFParams(tau=None, v_reset=torch.tensor([0.1, 0.2, 0.3])))
    assert torch.allclose(st.v, torch.tensor([0.1, 0.2, 0.3]).expand(2, 3))


def test_kernel_hook_contract(monkeypatch):
    """lif_multistep asks kernels.resolve('lif', backend, x_seq, params=, v0=, return_traces=)
    and wraps impl(x_seq, params, (v0,) or None (at rest), return_traces) -> ((spikes,), (v_last,),
    (h_seq, v_seq) or None), the raw kernel contract."""
    x = torch.rand(4, 2, 3)
    v0 = torch.full((2, 3), 0.25)
    params = LIFParams(tau=3.0)
    seen = {}

    def impl(x_seq, p, state, rt):
        v = torch.zeros(x_seq.shape[1:]) if state is None else state[0]   # None: at rest
        seen["impl"] = (x_seq, p, v, rt)
        traces = (torch.full_like(x_seq, 7.0), torch.full_like(x_seq, 8.0)) if rt else None
        return (torch.full_like(x_seq, 5.0),), (torch.full_like(v, 6.0),), traces

    def fake_resolve(family, backend, x_seq, **options):
        seen["resolve"] = (family, backend, x_seq, options)
        return impl

    monkeypatch.setattr(kernels, "resolve", fake_resolve)
    s, st = lif_multistep(x, params, LIFState(v0), backend="cpu")
    family, backend, xs, opts = seen["resolve"]
    assert family == "lif" and backend == "cpu" and xs is x
    assert set(opts) == {"params", "v0", "return_traces"} and opts["params"] is params
    assert opts["return_traces"] is False and torch.equal(opts["v0"], v0)
    assert seen["impl"][3] is False and torch.equal(seen["impl"][2], v0)
    assert torch.equal(s, torch.full_like(x, 5.0)) and torch.equal(st.v, torch.full_like(v0, 6.0))
    # at rest (no state, a number v_reset) the kernel gets state None and makes V0 = v_reset
    s, st, tr = lif_multistep(x, params, None, backend="cpu", return_traces=True)
    assert seen["resolve"][3]["v0"] is None
    assert isinstance(tr, LIFTraces) and tr.h[0, 0, 0] == 7.0 and tr.v[0, 0, 0] == 8.0


def test_reference_backend_never_dispatches(monkeypatch):
    called = []
    real = kernels.resolve

    def spy(*a, **k):
        called.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(kernels, "resolve", spy)
    lif_multistep(torch.rand(3, 1, 2), LIFParams(), backend="reference")
    assert called == ["reference"]


# --------------------------------------------------------------------------- modules


def test_module_matches_functional_and_repr():
    x = torch.rand(6, 2, 4) * 1.5
    for m, p in [
        (IF(v_reset=None, backend=REF), LIFParams(tau=None, v_reset=None)),
        (LIF(tau=3.0, decay_input=False, v_reset=-0.1, detach_reset=True, surrogate="sigmoid", backend=REF),
         LIFParams(tau=3.0, decay_input=False, v_reset=-0.1, detach_reset=True, surrogate=sg.Sigmoid())),
    ]:
        s = m(x)
        s_ref, st = lif_multistep(x, p, backend=REF)
        torch.testing.assert_close(s, s_ref, atol=0, rtol=0)
        torch.testing.assert_close(m.v, st.v, atol=0, rtol=0)
    r = repr(LIF(tau=3.0, v_reset=None, surrogate="ATan"))
    assert "tau=3.0" in r and "v_reset=None" in r and "ATan" in r and "step_mode='m'" in r
    assert "init_tau" not in repr(ParametricLIF()) and "tau=" in repr(ParametricLIF())
    assert "v_threshold=1.0" in repr(IF())


def test_module_state_persistence_and_reset():
    x = torch.rand(8, 3, 5) * 1.5
    full = LIF(backend=REF)
    s_full = full(x)
    split = LIF(backend=REF)
    assert split.v is None
    s_a = split(x[:3])
    v_mid = split.v.clone()
    s_b = split(x[3:])
    torch.testing.assert_close(torch.cat([s_a, s_b]), s_full, atol=0, rtol=0)
    torch.testing.assert_close(split.v, full.v, atol=0, rtol=0)
    assert not torch.equal(v_mid, split.v)
    split.reset()
    assert split.v is None
    split.v = 0.5  # SpikingJelly style uniform initial potential
    s_half, st_half = lif_multistep(x, LIFParams(), LIFState(torch.full((3, 5), 0.5)), backend=REF)
    torch.testing.assert_close(split(x), s_half, atol=0, rtol=0)
    split.reset()
    torch.testing.assert_close(split(x), s_full, atol=0, rtol=0)
    # stored v stays attached within a sequence: BPTT across two calls
    xg = x.clone().requires_grad_(True)
    m = LIF(backend=REF)
    out = torch.cat([m(xg[:4]), m(xg[4:])])
    (g,) = torch.autograd.grad(out[4:].sum(), xg)
    assert g[:4].abs().sum() > 0, "gradient must reach the first call through the stored v"


def test_module_batch_change_recreates_state():
    m = LIF(v_reset=-0.2, backend=REF)
    m(torch.rand(4, 3, 5))
    assert m.v.shape == (3, 5)
    x2 = torch.rand(4, 7, 5)
    s = m(x2)
    assert m.v.shape == (7, 5)
    s_ref, _ = lif_multistep(x2, LIFParams(v_reset=-0.2), backend=REF)
    torch.testing.assert_close(s, s_ref, atol=0, rtol=0)


def test_step_mode_single_equals_multi():
    x = torch.rand(6, 2, 3, 2) * 1.5
    for cls, kw in [(IF, {}), (LIF, {"tau": 2.5, "v_reset": None}), (ParametricLIF, {"init_tau": 1.7})]:
        mm = cls(step_mode="m", store_v_seq=True, backend=REF, **kw)
        ms = cls(step_mode="s", backend=REF, **kw)
        s_m = mm(x)
        outs, vs = [], []
        for t in range(x.shape[0]):
            outs.append(ms(x[t]))
            vs.append(ms.v)
        torch.testing.assert_close(torch.stack(outs), s_m, atol=0, rtol=0)
        torch.testing.assert_close(torch.stack(vs), mm.v_seq, atol=0, rtol=0)
        torch.testing.assert_close(ms.v, mm.v, atol=0, rtol=0)
    # step mode can be switched on an existing module
    m = LIF(backend=REF)
    m.step_mode = "s"
    assert m(x[0]).shape == x[0].shape


def test_module_tensor_params_and_to():
    tau = torch.tensor([1.5, 2.0, 3.0])
    m = LIF(tau=tau, v_threshold=torch.tensor([0.5, 1.0, 1.5]), backend=REF)
    assert "tau" in dict(m.named_buffers())
    m = m.double()
    x = torch.rand(4, 2, 3, dtype=torch.float64)
    s = m(x)
    s_ref, _ = lif_multistep(x, LIFParams(tau=tau.double(), v_threshold=torch.tensor([0.5, 1.0, 1.5],
                                                                                    dtype=torch.float64)),
                             backend=REF)
    torch.testing.assert_close(s, s_ref)


def test_reset_net():
    class Other(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.count = 0

        def reset(self):
            self.count += 1

    class NeedsArg(torch.nn.Module):
        def reset(self, value):  # not a state reset: must not be called
            raise AssertionError("called")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(3, 3), LIF(backend=REF),
                                            torch.nn.Sequential(IF(backend=REF)))
            self.other = Other()
            self.needs_arg = NeedsArg()

        def forward(self, x):
            return self.body(x)

    net = Net()
    net(torch.rand(2, 4, 3))
    assert net.body[1].v is not None and net.body[2][0].v is not None
    reset_net(net)
    assert net.body[1].v is None and net.body[2][0].v is None and net.other.count == 1
    with pytest.raises(TypeError, match="net"):
        reset_net("model")


# --------------------------------------------------------------------------- validation errors

X = torch.rand(3, 2, 4)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (lambda: dict(x_seq=[1.0, 2.0]), TypeError, "x_seq"),
        (lambda: dict(x_seq=torch.ones(3, 2, dtype=torch.int64)), TypeError, "x_seq"),
        (lambda: dict(x_seq=torch.ones(3)), ValueError, "x_seq"),
        (lambda: dict(x_seq=torch.ones(0, 2)), ValueError, "x_seq"),
        (lambda: dict(x_seq=torch.tensor([[0.1], [float("nan")]])), ValueError, "x_seq"),
        (lambda: dict(x_seq=torch.tensor([[0.1], [float("inf")]])), ValueError, "x_seq"),
        (lambda: dict(params=(2.0, 1.0, 0.0, True, False, sg.ATan())), TypeError, "params"),
        (lambda: dict(params=LIFParams(tau=1.0)), ValueError, r"params\.tau.*> 1"),
        (lambda: dict(params=LIFParams(tau=0.5)), ValueError, r"params\.tau"),
        (lambda: dict(params=LIFParams(tau=torch.tensor([2.0, 1.0, 3.0, 4.0]))), ValueError, r"params\.tau"),
        (lambda: dict(params=LIFParams(tau=float("nan"))), ValueError, r"params\.tau"),
        (lambda: dict(params=LIFParams(tau="2")), TypeError, r"params\.tau"),
        (lambda: dict(params=LIFParams(tau=True)), TypeError, r"params\.tau"),
        (lambda: dict(params=LIFParams(v_threshold=float("inf"))), ValueError, r"params\.v_threshold"),
        (lambda: dict(params=LIFParams(v_threshold=torch.tensor([1.0, float("nan"), 1.0, 1.0]))), ValueError,
         r"params\.v_threshold"),
        (lambda: dict(params=LIFParams(v_threshold="1")), TypeError, r"params\.v_threshold"),
        (lambda: dict(params=LIFParams(v_reset=float("-inf"))), ValueError, r"params\.v_reset"),
        (lambda: dict(params=LIFParams(v_reset="None")), TypeError, r"params\.v_reset"),
        (lambda: dict(params=LIFParams(decay_input=1)), TypeError, r"params\.decay_input"),
        (lambda: dict(params=LIFParams(detach_reset="no")), TypeError, r"params\.detach_reset"),
        (lambda: dict(params=LIFParams(surrogate="atan")), TypeError, r"params\.surrogate"),
        (lambda: dict(params=LIFParams(surrogate=lambda z: z)), TypeError, r"params\.surrogate"),
        (lambda: dict(params=LIFParams(tau=torch.full((5,), 2.0))), ValueError, r"params\.tau.*broadcast"),
        (lambda: dict(params=LIFParams(v_threshold=torch.ones(3, 2, 4))), ValueError, r"params\.v_threshold.*enlarge"),
        (lambda: dict(params=LIFParams(v_reset=torch.zeros(2, 1, device="meta"))), ValueError, r"params\.v_reset.*device|params\.v_reset.*meta"),
        (lambda: dict(state=torch.zeros(2, 4)), TypeError, "state"),
        (lambda: dict(state=LIFState(torch.zeros(3, 4))), ValueError, r"state\.v.*shape"),
        (lambda: dict(state=LIFState(torch.zeros(2, 4, dtype=torch.int32))), TypeError, r"state\.v"),
        (lambda: dict(state=LIFState(torch.full((2, 4), float("nan")))), ValueError, r"state\.v"),
        (lambda: dict(state=LIFState(torch.zeros(2, 4, device="meta"))), ValueError, r"state\.v.*meta"),
        (lambda: dict(return_traces=1), TypeError, "return_traces"),
        (lambda: dict(backend="gpu"), ValueError, "backend"),
    ],
)
def test_multistep_validation(kwargs, exc, match):
    args = dict(x_seq=X, params=LIFParams(), state=None, backend=REF, return_traces=False)
    with pytest.raises(exc, match=match):  # a bad record is refused where it is built, or by the step
        args.update(kwargs())
        lif_multistep(**args)


def test_step_validation():
    with pytest.raises(TypeError, match="x"):
        lif_step(1.0, None, LIFParams())
    with pytest.raises(ValueError, match="x"):
        lif_step(torch.tensor(1.0), None, LIFParams())
    with pytest.raises(ValueError, match="x"):
        lif_step(torch.tensor([float("nan")]), None, LIFParams())
    with pytest.raises(ValueError, match=r"state\.v.*shape"):
        lif_step(torch.ones(2, 3), LIFState(torch.zeros(2, 4)), LIFParams())
    with pytest.raises(ValueError, match=r"params\.tau"):
        lif_step(torch.ones(2, 3), None, LIFParams(tau=1.0))
    with pytest.raises(TypeError, match="params"):
        lif_step(torch.ones(2, 3), None, {"tau": 2.0})
    with pytest.raises(ValueError, match=r"params\.tau.*IF"):
        if_multistep(X, LIFParams(tau=2.0))
    with pytest.raises(ValueError, match=r"params\.tau.*IF"):
        if_step(X[0], None, LIFParams())


@pytest.mark.parametrize(
    "ctor,exc,match",
    [
        (lambda: LIF(tau=1.0), ValueError, "tau"),
        (lambda: LIF(tau=0.3), ValueError, "tau"),
        (lambda: LIF(tau=torch.tensor([2.0, 0.9])), ValueError, "tau"),
        (lambda: ParametricLIF(init_tau=1.0), ValueError, "init_tau"),
        (lambda: ParametricLIF(init_tau=torch.tensor(2.0)), TypeError, "init_tau"),
        (lambda: IF(v_threshold=float("nan")), ValueError, "v_threshold"),
        (lambda: IF(v_reset=float("inf")), ValueError, "v_reset"),
        (lambda: IF(v_reset="none"), TypeError, "v_reset"),
        (lambda: IF(surrogate="nope"), ValueError, "surrogate"),
        (lambda: IF(surrogate=3), TypeError, "surrogate"),
        (lambda: IF(detach_reset="yes"), TypeError, "detach_reset"),
        (lambda: LIF(decay_input=1), TypeError, "decay_input"),
        (lambda: IF(store_v_seq=None), TypeError, "store_v_seq"),
        (lambda: IF(step_mode="x"), ValueError, "step_mode"),
        (lambda: IF(backend="gpu"), ValueError, "backend"),
    ],
)
def test_module_constructor_validation(ctor, exc, match):
    with pytest.raises(exc, match=match):
        ctor()


def test_module_forward_validation():
    m = LIF(backend=REF)
    with pytest.raises(ValueError, match="x"):
        m(torch.ones(3))  # 'm' mode needs (T, B, ...)
    with pytest.raises(TypeError, match="x"):
        m(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="x"):
        m(torch.full((3, 2), float("nan")))
    with pytest.raises(TypeError, match="x"):
        m([1.0])
    s = LIF(step_mode="s", backend=REF)
    with pytest.raises(ValueError, match="x"):
        s(torch.tensor(1.0))
    m.step_mode = "both"
    with pytest.raises(ValueError, match="step_mode"):
        m(torch.ones(3, 2))
    m = LIF(tau=torch.tensor([2.0, 3.0]), backend=REF)
    with pytest.raises(ValueError, match=r"params\.tau"):
        m(torch.ones(3, 2, 5))


def test_package_exports():
    import spikefuse.neuron as neuron

    assert neuron.LIF is LIF and neuron.IF is IF and neuron.ParametricLIF is ParametricLIF
    assert neuron.reset_net is reset_net


def test_detach_input_alias_of_cext():
    import torch as _t
    from spikefuse.neuron import LIF as _LIF, ParametricLIF as _PLIF
    x = _t.tensor([0.5, 0.8, 0.2, 1.2, 0.0]).reshape(5, 1, 1)
    a = _LIF(tau=2.0, detach_input=True)
    b = _LIF(tau=2.0, decay_input=False)
    assert a.decay_input is False
    assert _t.equal(a(x), b(x))
    assert _LIF(tau=2.0, detach_input=True)(x).flatten().tolist() == [0, 1, 0, 1, 0]  # SPEC 17 S3
    assert _PLIF(detach_input=True).decay_input is False
    assert _LIF(detach_input=False).decay_input is True
    with pytest.raises(ValueError, match="detach_input"):
        _LIF(decay_input=False, detach_input=False)
    with pytest.raises(TypeError, match="detach_input"):
        _LIF(detach_input=1)
