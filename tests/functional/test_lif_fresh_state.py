"""The resting state of functional/lif.py (issue 15 item 3): ``initial_state`` fills
``0 + v_reset`` in one op with the numbers of the former ``zeros + v_reset``, and a state it made
that nobody changed skips the NaN/inf scan in ``lif_multistep`` (it cannot fail); an in-place
change (the tensor's version counter) or any other tensor keeps the scan."""
from __future__ import annotations

import pytest
import torch

from spikefuse import _validate
from spikefuse.functional.lif import LIFParams, initial_state, lif_multistep


@pytest.mark.parametrize("v_reset", [0.0, -0.0, -0.5, 1.0 / 3.0, 0, None, 1e-40, 3.4e38])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_initial_state_equals_zeros_plus_v_reset(v_reset, dtype):
    v = initial_state((2, 3), LIFParams(v_reset=v_reset), dtype=dtype).v
    ref = torch.zeros((2, 3), dtype=dtype)
    if v_reset is not None:
        ref = ref + v_reset
    assert v.dtype == dtype and torch.equal(v, ref)
    assert torch.equal(torch.signbit(v), torch.signbit(ref))  # -0.0 -> +0.0 as the sum gives


def test_tensor_v_reset_keeps_the_sum():
    vr = torch.tensor([-0.0, 0.25, -1.5])
    v = initial_state((2, 3), LIFParams(v_reset=vr)).v
    assert torch.equal(v, torch.zeros(2, 3) + vr) and not torch.signbit(v[0, 0])


def _scans(monkeypatch):
    calls = []
    real = _validate.all_finite
    monkeypatch.setattr(_validate, "all_finite", lambda t: calls.append(tuple(t.shape)) or real(t))
    return calls


def test_a_fresh_state_skips_its_scan_and_others_keep_it(monkeypatch):
    x = torch.rand(4, 2, 3)
    p = LIFParams()
    st = initial_state((2, 3), p)
    other = type(st)(st.v.clone())  # (a record built here scans its fields once, now)
    calls = _scans(monkeypatch)
    lif_multistep(x, p, st, backend="reference")
    assert calls == [(2, 3)]  # x_seq through the final state only (check_finite_after)
    calls.clear()
    lif_multistep(x, p, other, backend="reference")
    assert calls == [(2, 3), (2, 3)]  # the given state, then the final state


def test_a_fresh_state_changed_in_place_is_scanned_and_refused():
    p = LIFParams()
    st = initial_state((2, 3), p)
    st.v[0, 0] = float("nan")
    with pytest.raises(ValueError, match="state.v: contains NaN or inf"):
        lif_multistep(torch.rand(4, 2, 3), p, st)


def _run(backend, x, params, state):
    x = x.clone().requires_grad_()
    out = lif_multistep(x, params, state, backend=backend, return_traces=True)
    s, st, tr = out
    (s * torch.linspace(-1, 1, s.numel()).view_as(s)).sum().backward(retain_graph=True)
    grads = [x.grad] + [p.grad.clone() if isinstance(p, torch.Tensor) and p.grad is not None else None
                        for p in (params.tau, params.v_threshold, params.v_reset)]
    for p in (params.tau, params.v_threshold, params.v_reset):
        if isinstance(p, torch.Tensor) and p.grad is not None:
            p.grad = None
    return s, st.v, tr.h, tr.v, grads


@pytest.mark.parametrize("v_reset", [0.0, -0.0, -0.3, None, "tensor"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_at_rest_the_kernel_starts_from_v_reset(v_reset, decay_input):
    """With no state (at rest) the fused CPU LIF gets state None and starts from ``0 + v_reset``
    itself (no state tensor is made; a -0.0 v_reset starts from +0.0): outputs, traces, final
    state and gradients are the reference's, bit for bit; a learnable tensor v_reset still gets
    its gradient through the initial state ``V0 = 0 + v_reset``."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, 5, generator=g)
    vr = torch.tensor(-0.2, requires_grad=True) if v_reset == "tensor" else v_reset
    p = LIFParams(tau=2.0, v_reset=vr, decay_input=decay_input)
    ref = _run("reference", x, p, None)
    got = _run("cpu", x, p, None)
    for a, b in zip(ref[:4], got[:4]):
        assert torch.equal(a, b) and torch.equal(torch.signbit(a), torch.signbit(b))
    for a, b in zip(ref[4], got[4]):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)
    if v_reset == "tensor":
        assert got[4][3] is not None and got[4][3].abs().sum() > 0


def test_module_at_rest_matches_a_given_resting_state():
    """The LIF module after a reset passes no state; a second call continues from the stored one."""
    from spikefuse.neuron import LIF

    x = torch.rand(5, 2, 3) * 2
    m = LIF(tau=2.0, v_reset=-0.25)
    s1 = m(x)
    v1 = m.v.clone()
    s2 = m(x)
    st = initial_state((2, 3), LIFParams(tau=2.0, v_reset=-0.25))
    r1, rst = lif_multistep(x, LIFParams(tau=2.0, v_reset=-0.25), st, backend="reference")
    r2, _ = lif_multistep(x, LIFParams(tau=2.0, v_reset=-0.25), rst, backend="reference")
    assert torch.equal(s1, r1) and torch.equal(v1, rst.v) and torch.equal(s2, r2)
