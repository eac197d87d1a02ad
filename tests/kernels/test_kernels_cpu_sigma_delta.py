"""Fused CPU (numba) sigma-delta scan against spikefuse.functional.sigma_delta: bit-identical
outputs, traces and final state (float64 running sum, Delta unit with and without cum_error,
floor quantisation), gradients w.r.t. the input (bit-identical without traces), threshold and
bias (bit-identical, any broadcast shape) and initial state; odd N, a non-contiguous input, T = 1, fp16/bf16 I/O, one vs two threads, the
reasons, and the reference fallback without numba."""
import itertools
import warnings

import pytest
import torch

from equivalence import check_backend, scaled_tol
from spikefuse import kernels
from spikefuse.functional import sigma_delta as SD
from spikefuse.kernels import scan
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

ACTS = {"relu": torch.relu, "nn.ReLU": torch.nn.ReLU(), "identity": None}


def _params(act, cum, tensor, n, s_scale=4096):
    g = torch.Generator().manual_seed(5)
    if tensor:  # per-channel learnable threshold, learnable bias
        th = (torch.rand(n, generator=g) * 0.1 + 0.05).requires_grad_()
        bias = (torch.randn(n, generator=g) * 0.1).requires_grad_()
        extra = dict(threshold=th, bias=bias)
    else:
        th, bias, extra = 0.09375, None, {}
    return SD.SigmaDeltaParams(threshold=th, activation=ACTS[act], bias=bias, tau_grad=0.7, scale_grad=1.3,
                               cum_error=cum, s_scale=s_scale), extra


def _state(shape, grad):
    g = torch.Generator().manual_seed(2)
    sig = (torch.randn(shape, generator=g, dtype=torch.float64) * 0.3).requires_grad_(grad)
    pre = (torch.rand(shape, generator=g) * 0.3).requires_grad_(grad)
    return SD.SigmaDeltaState(sig, pre, torch.randn(shape, generator=g) * 0.05, torch.randn(shape, generator=g) * 0.05)


def _check(act="relu", cum=False, tensor=True, dtype=torch.float32, state_grad=None, traces=True, s_scale=4096,
           shape=(9, 3, 37), transpose=False, mixed=True):
    """check_backend: every output, state and trace bit-identical, the same outputs
    differentiable, every gradient close (fp64 comparison scaled by the gradient's size)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 0.3 + 0.05).to(dtype)
    st = None if state_grad is None else _state(shape[1:], state_grad)
    p, leaves = _params(act, cum, tensor, shape[-1], s_scale)
    leaves = dict(x=x, **leaves)
    if state_grad:
        leaves.update(sigma=st.sigma, pre=st.pre)

    def run(backend, lv):
        pp = p._replace(**{k: lv[k] for k in ("threshold", "bias") if k in lv})
        s0 = st._replace(sigma=lv["sigma"], pre=lv["pre"]) if state_grad else st
        xx = lv["x"].transpose(1, 2).contiguous().transpose(1, 2) if transpose else lv["x"]
        out = SD.sigma_delta_multistep(xx, pp, state=s0, backend=backend, return_traces=traces)
        return [out[0]] + list(out[1]) + (list(out[2]) if traces else [])

    tol = 1e-5 if dtype == torch.float32 else 2e-2
    outs_r, _ = check_backend(run, leaves, "cpu", exact="all", differentiable_only=True, seed=1,
                              loss_dtype=torch.float64, grad_dtype=torch.float64, grad_tol=scaled_tol(tol))
    if mixed:  # some steps send, some do not
        assert 0 < (outs_r[0] != 0).sum() < outs_r[0].numel()
    if tensor:
        _check_param_grads_equal(x, p, st, leaves)


def _check_param_grads_equal(x, p, st, leaves):
    """The threshold and bias gradients (and the input's: no traces) are the reference's bits
    (torch.equal): the kernel's per-step terms reduced by torch in the reference's ops."""
    gy = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    grads = []
    for be in ("reference", "cpu"):
        lv = {k: leaves[k].detach().clone().requires_grad_() for k in ("x", "threshold", "bias")}
        pp = p._replace(threshold=lv["threshold"], bias=lv["bias"])
        y, s1 = SD.sigma_delta_multistep(lv["x"], pp, state=None if st is None else SD.SigmaDeltaState(
            *(v.detach() for v in st)), backend=be)
        grads.append(torch.autograd.grad((y.float() * gy).sum() + s1.pre.float().sum(), list(lv.values())))
    for name, a, b in zip(("x", "threshold", "bias"), *grads):
        assert torch.equal(a, b), name


#: act, cum_error, tensor params, fp16/bf16 I/O (traces and initial-state gradients alternate)
COMBOS = [c + (torch.float32,) for c in itertools.product(ACTS, [False, True], [False, True])] + [
    ("relu", True, True, torch.float16), ("identity", False, True, torch.bfloat16)]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(str(v).replace("torch.", "") for v in c))
def test_matches_reference(combo):
    act, cum, tensor, dtype = combo
    n = COMBOS.index(combo)
    _check(act, cum, tensor, dtype=dtype, state_grad=n % 2 == 0, traces=n % 3 != 1)


def test_odd_n_strided_input_t1_and_odd_scale():
    _check("relu", False, True, shape=(1, 1, 5), state_grad=True, mixed=False)  # T = 1, N = 5
    _check("identity", True, True, shape=(6, 1, 1037), transpose=False, s_scale=1000)  # > 2 tiles, odd
    _check("relu", True, False, shape=(5, 7, 3), transpose=True)  # a non-contiguous input


def test_input_gradient_bit_identical_and_threads():
    """Without traces the input gradient is the reference's bit for bit (the float64 reverse
    cumulative sum of autograd's cumsum backward); two threads give the one-thread bits."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 4, 301, generator=g) * 0.3
    gy = torch.randn(x.shape, generator=g)
    p = SD.SigmaDeltaParams(threshold=0.05, bias=torch.randn(301, generator=g) * 0.1, cum_error=True)
    res = []
    old = torch.get_num_threads()
    for be, threads in (("reference", 1), ("cpu", 1), ("cpu", 2)):
        torch.set_num_threads(threads)
        try:
            xx = x.clone().requires_grad_()
            y, st = SD.sigma_delta_multistep(xx, p, backend=be)
            (gx,) = torch.autograd.grad((y * gy).sum(), [xx])
        finally:
            torch.set_num_threads(old)
        res.append((y, gx, st))
    for y, gx, st in res[1:]:
        assert torch.equal(y, res[0][0]) and torch.equal(gx, res[0][1])
        assert all(torch.equal(a, b) for a, b in zip(st, res[0][2]))


def test_inference_state_chaining_and_spec_l7():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(18, 3, 37, generator=g) * 0.3
    p = SD.SigmaDeltaParams(threshold=0.1, cum_error=True)
    y_all, st_all = SD.sigma_delta_multistep(x, p, backend="reference")
    with torch.no_grad():
        y1, st1 = SD.sigma_delta_multistep(x[:9], p, backend="cpu")
        y2, st2 = SD.sigma_delta_multistep(x[9:], p, state=st1, backend="cpu")
    assert torch.equal(torch.cat([y1, y2]), y_all)
    assert all(torch.equal(a, b) for a, b in zip(st2, st_all))
    x = torch.tensor([0.5, 0, 0, 0.05, 0.05, 0.05, 0]).reshape(7, 1, 1)
    y, _ = SD.sigma_delta_multistep(x, SD.SigmaDeltaParams(threshold=0.09375, cum_error=True), backend="cpu")
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 0, 409, 0, 204]  # SPEC 17 L7


def test_spec_and_reasons():
    s = scan.find("cpu", "loihi_sigma_delta")
    assert s is not None and s.saved_bytes == 1 and s.moved_bytes == 9
    x = torch.rand(4, 2, 5)
    st = SD.initial_state((2, 5))
    p = SD.SigmaDeltaParams(threshold=0.1)
    assert kernels.resolve("loihi_sigma_delta", "auto", x, params=p, state=st, return_traces=False) is not None
    tanh = p._replace(activation=torch.tanh)
    assert kernels.resolve("loihi_sigma_delta", "auto", x, params=tanh, state=st, return_traces=False) is None
    with pytest.raises(ValueError, match="activation"):
        SD.sigma_delta_multistep(x, tanh, backend="cpu")
    with pytest.raises(ValueError, match="float32 sigma state"):
        SD.sigma_delta_multistep(x, p, state=st._replace(sigma=st.sigma.float()), backend="cpu")


def test_fallback_without_numba(monkeypatch):
    """SPIKEFUSE_NO_NUMBA=1: "auto" runs the reference loop (one RuntimeWarning), "cpu" says why."""
    x = torch.randn(6, 2, 5, generator=torch.Generator().manual_seed(1))
    p = SD.SigmaDeltaParams(threshold=0.05)
    ref = SD.sigma_delta_multistep(x, p, backend="reference")[0]
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
            y, _ = SD.sigma_delta_multistep(x, p, backend="auto")
        assert torch.equal(y, ref)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="numba is unavailable"):
                SD.sigma_delta_multistep(x, p, backend="cpu")
    finally:
        monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
        jit.reset_for_tests()
    assert torch.equal(SD.sigma_delta_multistep(x, p, backend="cpu")[0], ref)


def test_gradient_broadcast_over_time():
    """An output gradient that autograd broadcasts over time (``y.sum()``: stride 0) goes in as
    one row: the same input, threshold and bias gradients as a materialised all-ones gradient
    (with the final ``pre`` gradient, a run-time flag of the last step)."""
    p, extra = _params("relu", False, True, 37)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(9, 3, 37, generator=g) * 0.3
    grads = []
    for dense in (False, True):
        xx = x.clone().requires_grad_()
        lv = {k: v.detach().clone().requires_grad_() for k, v in extra.items()}
        y, st = SD.sigma_delta_multistep(xx, p._replace(**lv), backend="cpu")
        loss = ((y * torch.ones_like(y)).sum() if dense else y.sum()) + st.pre.sum()
        grads.append(torch.autograd.grad(loss, [xx, *lv.values()]))
    assert grads[0][0].abs().sum() > 0
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_several_tiles_and_ranges_inside_a_tile():
    """More neurons than a forward tile (and several backward tiles, the last ones partial): one
    thread (tiles from 0) and two (a range starting at a SPLIT multiple inside what is one tile on
    one thread) give the reference's outputs, final state and gradients of the input, the
    per-channel threshold and the bias, bit for bit."""
    from spikefuse.kernels.cpu import _nb_sigma_delta as nb

    n = nb.TILE + nb.BWD_TILE + 37
    g = torch.Generator().manual_seed(21)
    x = torch.randn(5, 1, n, generator=g) * 0.3 + 0.05
    gy = torch.randn(x.shape, generator=g)
    th = (torch.rand(n, generator=g) * 0.1 + 0.05).requires_grad_()
    bias = (torch.randn(n, generator=g) * 0.1).requires_grad_()
    p = SD.SigmaDeltaParams(threshold=th, bias=bias, tau_grad=0.7, scale_grad=1.3, cum_error=True)
    res = []
    old = torch.get_num_threads()
    for be, threads in (("reference", 1), ("cpu", 1), ("cpu", 2)):
        torch.set_num_threads(threads)
        try:
            xx = x.clone().requires_grad_()
            y, st = SD.sigma_delta_multistep(xx, p, backend=be)
            grads = torch.autograd.grad((y * gy).sum(), [xx, th, bias])
        finally:
            torch.set_num_threads(old)
        res.append((y, st, grads))
    assert len(jit.ranges(n, nb.SPLIT, 2)) == 2 and jit.ranges(n, nb.SPLIT, 2)[1][0] % nb.TILE != 0
    for y, st, grads in res[1:]:
        assert torch.equal(y, res[0][0])
        assert all(torch.equal(a, b) for a, b in zip(st, res[0][1]))
        assert all(torch.equal(a, b) for a, b in zip(grads, res[0][2]))


@pytest.mark.parametrize("bshape,tshape", [((8, 1), (4, 8, 5)), ((), (1, 8, 5)), ((4, 8, 5), ()), ((5,), (8, 1))])
def test_param_gradients_bit_identical_any_broadcast(bshape, tshape):
    """Threshold and bias of any broadcast shape (per channel, 0-d, full step shape): their
    gradients are the reference's bits, with one thread and two."""
    g = torch.Generator().manual_seed(12)
    x = torch.randn(40, 4, 8, 5, generator=g) * 0.3 + 0.05
    th = torch.rand(tshape, generator=g) * 0.1 + 0.05
    p = SD.SigmaDeltaParams(threshold=th, bias=torch.randn(bshape, generator=g) * 0.1, tau_grad=0.7,
                            scale_grad=1.3, cum_error=True)
    old = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            _check_param_grads_equal(x, p, None, dict(x=x, threshold=th, bias=p.bias))
        finally:
            torch.set_num_threads(old)


@pytest.mark.parametrize("cum", [False, True])
def test_threshold_gradient_terms_bit_identical(cum):
    """The threshold gradient's per-element terms (SPEC 10.3: its relaxation exp is torch.exp's,
    through _nb_vml): with one step and one batch row the per-channel gradient is one term, so
    it equals the reference's bit for bit (over T steps torch sums the kernel's per-step terms:
    bit-identical too, see _check_param_grads_equal)."""
    g = torch.Generator().manual_seed(11)
    n = 4000
    th = (torch.rand(n, generator=g) * 0.1 + 0.05)
    x = torch.randn(1, 1, n, generator=g) * 0.2
    p = SD.SigmaDeltaParams(threshold=th, activation=torch.relu, tau_grad=0.7, scale_grad=1.3, cum_error=cum)
    grads = []
    for be in ("cpu", "reference"):
        tt = th.clone().requires_grad_()
        y = SD.sigma_delta_multistep(x, p._replace(threshold=tt), backend=be)[0]
        (y * torch.linspace(-1, 1, n)).sum().backward()
        grads.append(tt.grad)
    assert (grads[1] != 0).sum() > n // 2
    assert torch.equal(grads[0], grads[1])
