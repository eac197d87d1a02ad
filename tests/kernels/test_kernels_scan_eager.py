"""The eager path of ScanFunction (issue 15 item 3): eager calls on plain tensors run the spec's
forward / save / backward through a torch.autograd.Function instead of the
``spikefuse::scan_fwd`` torch.library op; the op path stays for torch.compile, dispatch modes
and ``scan.through_op()``. Both paths give the same outputs, final state and every gradient bit
for bit, CPU LIF (tensor and number parameters, traces) and CUBA, and a second derivative is
still refused."""
from __future__ import annotations

import pytest
import torch

from spikefuse.functional.lif import LIFParams, LIFState, lif_multistep
from spikefuse.kernels import scan


def _bits(t):
    return t.contiguous().view(-1).view(torch.int32)


def _lif_run(params_fn, traces):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(7, 4, 6, generator=g) + 0.6).requires_grad_()
    v0 = (torch.rand(4, 6, generator=g) * 0.5).requires_grad_()
    tau = torch.full((6,), 2.5, requires_grad=True)
    params = params_fn(tau)
    out = lif_multistep(x, params, LIFState(v0), backend="cpu", return_traces=traces)
    loss = (out[0] * torch.linspace(0.5, 1.5, 6)).sum() + (out[1].v ** 2).sum()
    if traces:
        loss = loss + out[2].h.sum() * 0.3 + (out[2].v * 0.7).sum()
    leaves = [x, v0] + ([tau] if isinstance(params.tau, torch.Tensor) else [])
    grads = torch.autograd.grad(loss, leaves)
    return [out[0], out[1].v] + (list(out[2]) if traces else []) + list(grads)


@pytest.mark.parametrize("traces", [False, True])
@pytest.mark.parametrize("params_fn", [lambda tau: LIFParams(tau=2.0),
                                       lambda tau: LIFParams(tau=tau, v_reset=None, decay_input=True)],
                         ids=["numbers", "tensor-tau-soft"])
def test_lif_eager_path_equals_the_op_path(params_fn, traces):
    calls = []
    real = scan.scan_fwd

    def spy(*a):
        calls.append(a[0])
        return real(*a)

    scan.scan_fwd = spy
    try:
        eager = _lif_run(params_fn, traces)
        assert calls == []  # eager: no op dispatch
        with scan.through_op():
            op = _lif_run(params_fn, traces)
        assert calls == ["lif_cpu"]
    finally:
        scan.scan_fwd = real
    assert len(eager) == len(op)
    for a, b in zip(eager, op):
        assert a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def test_cuba_eager_path_equals_the_op_path():
    from spikefuse.functional.cuba import CubaParams, cuba_lif_integration

    def run():
        x = (torch.randn(6, 3, 5, generator=torch.Generator().manual_seed(1)) * 0.4).requires_grad_()
        z, v, i, _ = cuba_lif_integration(x, CubaParams(threshold=0.3), backend="cpu")
        loss = (z * 1.5).sum() + (v ** 2).sum() + (i * 0.5).sum()
        return [z, v, i, *torch.autograd.grad(loss, [x])]

    eager = run()
    with scan.through_op():
        op = run()
    for a, b in zip(eager, op):
        assert torch.equal(_bits(a), _bits(b))


def test_no_grad_and_double_backward_on_the_eager_path():
    x = (torch.randn(5, 2, 3) + 0.5).requires_grad_()
    with torch.no_grad():
        s0, st0 = lif_multistep(x, LIFParams(), backend="cpu")
    s, st = lif_multistep(x, LIFParams(), backend="cpu")
    assert not s0.requires_grad and torch.equal(s0, s.detach()) and torch.equal(st0.v, st.v.detach())
    (gx,) = torch.autograd.grad(s.sum() + (st.v ** 2).sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        gx.sum().backward()


def test_the_op_path_under_tracing_modes():
    assert scan._eager_ok([torch.zeros(1)])
    with scan.through_op():
        assert not scan._eager_ok([torch.zeros(1)])
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        assert not scan._eager_ok([torch.empty(1)])
