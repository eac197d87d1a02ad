"""Triton RF / RF-Iz / AdRF / AdRF-Iz scans (interpreter) against spikefuse.functional.resonator:
bit-identical spikes, traces and final state (int64 dynamics), gradients w.r.t. both inputs, the
sin/cos decays (both ``decay_grad`` rules) and the initial state, with the fused complex/real
spike surrogates; SPEC 17 L3-L6 and the lava-dl RF fixture through the triton backend."""
import itertools

import pytest
import torch

from resonator_cases import B, C, FN, MODELS, P4, PA, T, check, check_edges, check_lava_fixture, lava_cases
from resonator_cases import params as _params, q as _q, state as _state
from spikefuse import kernels
from spikefuse.functional import resonator as R

pytest.importorskip("spikefuse.kernels.triton")


def _check(*args, **kw):
    check("triton", *args, **kw)


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


def test_edges_reset_at_threshold_and_float_vs_int_phase():
    check_edges("triton")


# --------------------------------------------------------------------------- SPEC 17 vectors

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
        # auto on CPU tensors: the cpu kernel (tests/kernels/test_kernels_cpu_resonator.py)
        assert kernels.resolve(fam, "auto", x, params=p, state=st, return_traces=False) is not None


# --------------------------------------------------------------------------- lava-dl fixture

RF_CASES = lava_cases()


@pytest.mark.parametrize("path,model", RF_CASES, ids=[p.name for p, _ in RF_CASES])
def test_triton_matches_lava_fixture(path, model):
    """lava-dl's own outputs (tests/fixtures/lava_dl) through the triton backend with lava's decay
    gradient rule: bit-exact spikes and traces, input and decay gradients."""
    check_lava_fixture("triton", path, model)


@pytest.mark.parametrize("model", ["rf", "adrf_iz"])
def test_one_tensor_as_both_inputs(model):
    """``f((x, x))`` through the Triton scan: the op returns the sum of both input gradients in
    one slot (``_resonator_host.input_grads``); the gradients equal those of two inputs
    (``(x, x.view_as(x))``, which autograd adds) bit for bit."""
    p, leaves = _params(model, False, "exact", True)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(T, B, C, generator=g) * 0.6
    w = torch.randn(T, B, C, generator=g)

    def run(alias):
        xx = x.clone().requires_grad_()
        ls = [t.detach().clone().requires_grad_() for t in leaves]
        s, _, tr = FN[model]((xx, xx if alias else xx.view_as(xx)), p._replace(sin_decay=ls[0], cos_decay=ls[1]),
                             backend="triton", return_traces=True)
        return torch.autograd.grad((s * w).sum() + (tr[0] * w).sum(), [xx, *ls])

    for k, (a, b) in enumerate(zip(run(True), run(False))):
        assert a.abs().sum() > 0, k
        assert torch.equal(a, b), k
