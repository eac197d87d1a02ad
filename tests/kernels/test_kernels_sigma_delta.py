"""Triton sigma-delta scan (interpreter) against spikefuse.functional.sigma_delta: bit-identical
outputs, traces and final state (float64 running sum, Delta unit with and without cum_error,
floor quantisation), gradients w.r.t. the input, threshold, bias and initial state; SPEC 17 L7 /
L8 through the triton backend; reasons for what the kernel does not fuse."""
import itertools

import pytest
import torch

from equivalence import check_backend, scaled_tol
from spikefuse import kernels
from spikefuse.functional import sigma_delta as SD

pytest.importorskip("spikefuse.kernels.triton")

T, B, C = 9, 3, 37
ACTS = {"relu": torch.relu, "F.relu": torch.nn.functional.relu, "nn.ReLU": torch.nn.ReLU(), "identity": None}


def _params(act, cum, tensor, n=C, s_scale=4096):
    g = torch.Generator().manual_seed(5)
    if tensor:  # per-channel learnable threshold, learnable bias
        th = (torch.rand(n, generator=g) * 0.1 + 0.05).requires_grad_()
        bias = (torch.randn(n, generator=g) * 0.1).requires_grad_()
        leaves = [th, bias]
    else:
        th, bias, leaves = 0.09375, None, []
    p = SD.SigmaDeltaParams(threshold=th, activation=ACTS[act], bias=bias, tau_grad=0.7, scale_grad=1.3,
                            cum_error=cum, s_scale=s_scale)
    return p, leaves


def _state(shape, grad):
    g = torch.Generator().manual_seed(2)
    sig = (torch.randn(shape, generator=g, dtype=torch.float64) * 0.3).requires_grad_(grad)
    pre = (torch.rand(shape, generator=g) * 0.3).requires_grad_(grad)
    res = torch.randn(shape, generator=g) * 0.05
    err = torch.randn(shape, generator=g) * 0.05
    return SD.SigmaDeltaState(sig, pre, res, err)


def _check(act="relu", cum=False, tensor=True, dtype=torch.float32, state_grad=None, traces=True,
           s_scale=4096, shape=(T, B, C)):
    """tests/equivalence.check_backend: every output, state and trace bit-identical, the same
    outputs differentiable, gradients w.r.t. x, threshold, bias and initial state close."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 0.3 + 0.05).to(dtype)
    st = None if state_grad is None else _state(shape[1:], state_grad)
    p, params = _params(act, cum, tensor, n=shape[-1], s_scale=s_scale)
    leaves = dict(x=x, **dict(zip(("threshold", "bias"), params)))
    if state_grad:
        leaves.update(sigma=st.sigma, pre=st.pre)

    def run(backend, lv):
        pp = p._replace(**{k: lv[k] for k in ("threshold", "bias") if k in lv})
        s0 = st._replace(sigma=lv["sigma"], pre=lv["pre"]) if state_grad else st
        out = SD.sigma_delta_multistep(lv["x"], pp, state=s0, backend=backend, return_traces=traces)
        return [out[0]] + list(out[1]) + (list(out[2]) if traces else [])

    tol = 1e-5 if dtype == torch.float32 else 2e-2
    outs_r, _ = check_backend(run, leaves, "triton", exact="all", differentiable_only=True, seed=1,
                              loss_dtype=torch.float64, grad_dtype=torch.float64, grad_tol=scaled_tol(tol))
    assert 0 < (outs_r[0] != 0).sum() < outs_r[0].numel()


COMBOS = list(itertools.product(ACTS, [False, True], [False, True]))  # act, cum_error, tensor params


@pytest.mark.parametrize("combo", range(len(COMBOS)), ids=["-".join(map(str, c)) for c in COMBOS])
def test_matches_reference(combo):
    act, cum, tensor = COMBOS[combo]
    _check(act, cum, tensor, state_grad=combo % 2 == 0, traces=combo % 3 != 1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cum", [False, True])
def test_half_precision_io(dtype, cum):
    _check("relu", cum, True, dtype=dtype, state_grad=True)


def test_odd_scale_conv_shape_and_partial_grads():
    """Non-power-of-two s_scale (IEEE division by the step); a (T, B, C, H, W) input with a
    (C, 1, 1) threshold; only the threshold / only the bias / only the state learning."""
    _check("relu", True, True, s_scale=1000)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 2, 3, 4, 5, generator=g) * 0.3
    outs = []
    for be in ("triton", "reference"):
        th = torch.tensor([0.05, 0.1, 0.2]).reshape(3, 1, 1).requires_grad_()
        bias = torch.full((3, 4, 5), 0.02).requires_grad_()
        p = SD.SigmaDeltaParams(threshold=th, bias=bias)
        y, st, tr = SD.sigma_delta_multistep(x, p, backend=be, return_traces=True)
        flags = [o.requires_grad for o in (y, *st, *tr)]
        gth, gb = torch.autograd.grad((y * x).sum() + tr.activation.sum(), [th, bias])
        outs.append((y, flags, gth, gb))
    (y1, f1, t1, b1), (y2, f2, t2, b2) = outs
    assert torch.equal(y1, y2) and f1 == f2
    torch.testing.assert_close(t1, t2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b1, b2, rtol=1e-5, atol=1e-6)
    # no input gradient at all: only the initial pre and the threshold learn
    st = _state((B, C), False)
    st = st._replace(pre=st.pre.clone().requires_grad_())
    grads = []
    for be in ("triton", "reference"):
        th = torch.tensor(0.1, requires_grad=True)
        y, st2 = SD.sigma_delta_multistep(torch.randn(T, B, C, generator=torch.Generator().manual_seed(1)) * 0.3,
                                          SD.SigmaDeltaParams(threshold=th), state=st, backend=be)
        assert [o.requires_grad for o in st2] == [False, False, False, False]
        grads.append(torch.autograd.grad(y.sum(), [th, st.pre]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_inference_and_state_chaining():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2 * T, B, C, generator=g) * 0.3
    p = SD.SigmaDeltaParams(threshold=0.1, cum_error=True)
    y_all, st_all = SD.sigma_delta_multistep(x, p, backend="reference")
    with torch.no_grad():
        y1, st1 = SD.sigma_delta_multistep(x[:T], p, backend="triton")
        y2, st2 = SD.sigma_delta_multistep(x[T:], p, state=st1, backend="triton")
    assert torch.equal(torch.cat([y1, y2]), y_all)
    assert all(torch.equal(a, b) for a, b in zip(st2, st_all))


def test_cum_error_kept_when_delta_is_zero():
    """cum_error: |err| >= θ with Δ = 0 sends a zero, so the error is not cleared (|y| > 0 rule)."""
    x = torch.zeros(3, 1, 2)
    x[1, 0, 1] = 0.3
    st = SD.SigmaDeltaState(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 2), torch.zeros(1, 2),
                            torch.full((1, 2), 0.5))
    p = SD.SigmaDeltaParams(threshold=0.1, cum_error=True)
    yk, stk = SD.sigma_delta_multistep(x, p, state=st, backend="triton")
    yr, str_ = SD.sigma_delta_multistep(x, p, state=st, backend="reference")
    assert torch.equal(yk, yr) and all(torch.equal(a, b) for a, b in zip(stk, str_))
    assert stk.error.flatten().tolist() == [0.5, 0.0]


# --------------------------------------------------------------------------- SPEC 17 vectors


def test_spec_l7():
    x = torch.tensor([0.5, 0, 0, 0.02, 0.1, -0.3, 0]).reshape(7, 1, 1).requires_grad_()
    p = SD.SigmaDeltaParams(threshold=0.09375)
    y, st = SD.sigma_delta_multistep(x, p, backend="triton")
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 0, 491, -1229, 0]
    (gx,) = torch.autograd.grad(y[4].sum(), [x])
    assert gx.flatten().tolist() == [0, 0, 0, 0, 1, 0, 0]
    x = torch.tensor([0.5, 0, 0, 0.05, 0.05, 0.05, 0]).reshape(7, 1, 1)
    y, _ = SD.sigma_delta_multistep(x, p, backend="triton")
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 0, 409, 0, 0]
    y, _ = SD.sigma_delta_multistep(x, p._replace(cum_error=True), backend="triton")
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 0, 409, 0, 204]


def test_spec_l8_threshold_gradient():
    """Delta(θ=0.1, tau_grad=scale_grad=1) on a = [0.5, 0.55, 0.55, 0.7] (identity activation, the
    input is the difference sequence so that Sigma rebuilds a): dL/dθ = -7.1613 for L = Σ y."""
    a = torch.tensor([0.5, 0.55, 0.55, 0.7])
    x = torch.cat([a[:1], a[1:] - a[:-1]]).reshape(4, 1, 1)
    th = torch.tensor(0.1, requires_grad=True)
    y, _ = SD.sigma_delta_multistep(x, SD.SigmaDeltaParams(threshold=th, activation=None), backend="triton")
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 819]
    (g,) = torch.autograd.grad(y.sum(), [th])
    assert g.item() == pytest.approx(-7.1613, abs=2e-4)


# --------------------------------------------------------------------------- dispatch


def test_reasons(monkeypatch):
    x = torch.rand(4, 2, 5)
    p = SD.SigmaDeltaParams(threshold=0.1, activation=torch.tanh)
    st = SD.initial_state((2, 5))
    assert "triton" in kernels.available("loihi_sigma_delta")
    with pytest.raises(ValueError, match="activation"):
        SD.sigma_delta_multistep(x, p, backend="triton")
    with pytest.raises(ValueError, match="activation"):
        SD.sigma_delta_multistep(x, p._replace(activation=torch.nn.ReLU(inplace=True)), backend="triton")
    with pytest.raises(ValueError, match="float64"):
        SD.sigma_delta_multistep(x.double(), p._replace(activation=None), backend="triton")
    # auto: no cpu implementation -> the reference loop, tanh included
    assert kernels.resolve("loihi_sigma_delta", "auto", x, params=p, state=st, return_traces=False) is None
    y, _ = SD.sigma_delta_multistep(x, p, backend="auto")
    assert torch.equal(y, SD.sigma_delta_multistep(x, p, backend="reference")[0])
    from spikefuse.kernels.triton import common as tcommon
    monkeypatch.setattr(tcommon, "INTERPRET", False)
    with pytest.raises(ValueError, match="needs CUDA tensors or TRITON_INTERPRET=1"):
        kernels.resolve("loihi_sigma_delta", "triton", x, params=p._replace(activation=None), state=st,
                        return_traces=False)
