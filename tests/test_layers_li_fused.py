"""The fused leaky-integrator readout (layers._LIScan, issue 15 item 3) against the loop of torch
ops it replaces on the eager path (layers._li_loop, which autograd differentiates): outputs and
input gradients equal bit for bit (the loop's -0.0 -> +0.0 of its gradient sum included), second
derivatives too, and the module takes the fused path only in eager mode."""
from __future__ import annotations

import pytest
import torch

from spikefuse import layers as L


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(-1).view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def _case(T, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, 3, 5, generator=g, dtype=dtype) * 10
    x[0, 0, :3] = -0.0
    gy = torch.randn(T, 3, 5, generator=g, dtype=dtype)
    gy[:, 1] = -0.0   # a zero gradient of either sign: the loop's sum gives +0.0 for T > 1
    gy[:, 2, 0] = 1e-45 if dtype == torch.float32 else 5e-324   # denormals decay to +-0
    return x, gy


@pytest.mark.parametrize("T", [1, 2, 10, 23])
@pytest.mark.parametrize("tau,decay_input", [(1.0, True), (2.0, True), (3.7, True), (3.7, False)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_li_equals_the_loop_bit_for_bit(T, tau, decay_input, dtype):
    decay, gain = 1.0 - 1.0 / tau, (1.0 / tau if decay_input else 1.0)
    x, gy = _case(T, dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = L._li_loop(a, decay, gain), L._LIScan.apply(b, decay, gain)
    (ga,), (gb,) = torch.autograd.grad(ya, a, gy), torch.autograd.grad(yb, b, gy)
    assert torch.equal(_bits(ya), _bits(yb))
    assert torch.equal(_bits(ga), _bits(gb))


def test_module_runs_the_fused_path_with_the_loops_numbers(monkeypatch):
    calls = []
    real = L._LIScan.apply
    monkeypatch.setattr(L._LIScan, "apply", lambda *a: calls.append(1) or real(*a))
    li = L.LeakyIntegrator(tau=2.0)
    x = torch.randn(10, 4, 3, requires_grad=True)
    y = li(x)
    (g,) = torch.autograd.grad(y.amax(0).sum(), x)
    ref_x = x.detach().clone().requires_grad_()
    ref = L._li_loop(ref_x, 0.5, 0.5)
    (g_ref,) = torch.autograd.grad(ref.amax(0).sum(), ref_x)
    assert calls == [1]
    assert torch.equal(_bits(y), _bits(ref)) and torch.equal(_bits(g), _bits(g_ref))


def test_fused_li_second_derivative_equals_the_loop():
    x, gy = _case(6, torch.float64)
    out = []
    for fn in (L._li_loop, L._LIScan.apply):
        xi = x.clone().requires_grad_()
        w = gy.clone().requires_grad_()
        (g,) = torch.autograd.grad(fn(xi, 0.6, 0.4), xi, w, create_graph=True)
        out.append(torch.autograd.grad((g * g).sum(), w)[0])
    assert torch.equal(out[0], out[1])
    torch.autograd.gradgradcheck(lambda v: L._LIScan.apply(v, 0.6, 0.4), (x[:, :1, :2].clone().requires_grad_(),))


def test_half_input_keeps_its_dtype_and_the_loops_numbers():
    x = torch.randn(5, 2, 3).to(torch.bfloat16).requires_grad_()
    y = L.LeakyIntegrator(tau=2.0)(x)
    (g,) = torch.autograd.grad(y.float().sum(), x)
    xr = x.detach().clone().requires_grad_()
    yr = L._li_loop(xr.float(), 0.5, 0.5).to(torch.bfloat16)
    (gr,) = torch.autograd.grad(yr.float().sum(), xr)
    assert y.dtype == torch.bfloat16 and torch.equal(y, yr) and torch.equal(g, gr)


def test_fused_path_only_in_eager_mode():
    x = torch.zeros(3, 1, 1)
    assert L._li_fused_ok(x)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        assert not L._li_fused_ok(torch.empty(3, 1, 1))


def test_cpu_recurrences_run_in_numpy_and_a_graph_building_backward_in_torch(monkeypatch):
    # the bit-for-bit tests above cover the NumPy path (CPU, no graph recorded); this checks it
    # is the one taken, also for a non-contiguous output gradient, and that create_graph=True
    # takes the torch ops (the second-derivative test above)
    import numpy as np

    seen = []
    real = L._li_ops
    monkeypatch.setattr(L, "_li_ops", lambda t, *s: seen.append(real(t, *s)[0]) or real(t, *s))
    x, gy = _case(7, torch.float32)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    g_nc = gy[:, :1].expand_as(gy)   # stride 0 along the batch
    ya, yb = L._li_loop(a, 0.6, 0.4), L._LIScan.apply(b, 0.6, 0.4)
    (ga,), (gb,) = torch.autograd.grad(ya, a, g_nc), torch.autograd.grad(yb, b, g_nc)
    assert seen == [np, np]
    assert torch.equal(_bits(ya), _bits(yb)) and torch.equal(_bits(ga), _bits(gb))
    seen.clear()
    torch.autograd.grad(L._LIScan.apply(b, 0.6, 0.4), b, gy.requires_grad_(), create_graph=True)
    assert seen == [np, torch]


@pytest.mark.parametrize("T", [1, 2, 17])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_and_numpy_recurrences_agree_bit_for_bit(monkeypatch, T, dtype):
    """With numba the CPU recurrences run kernels/cpu/_nb_li.py; without it (``_li_kernels`` None)
    the NumPy loops: both give the torch loop's bits, forward and backward (a non-contiguous
    upstream gradient included)."""
    from spikefuse.kernels.cpu import jit

    if jit.kernels("li") is None:
        pytest.skip("numba is unavailable: only the NumPy loops run")
    used = []
    real = L._li_compiled
    monkeypatch.setattr(L, "_li_compiled", lambda *a: used.append(a[0].__name__) or real(*a))
    x, gy = _case(T, dtype, seed=5)
    gy = gy.transpose(1, 2).contiguous().transpose(1, 2)     # same values, not contiguous
    outs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(L, "_li_kernels", lambda xp: None)
        a = x.clone().requires_grad_()
        y = L._LIScan.apply(a, 0.75, 0.25)
        (g,) = torch.autograd.grad(y, a, gy)
        outs.append((y, g))
    assert used == ["li_fwd", "li_bwd"]
    ref_x = x.clone().requires_grad_()
    ref = L._li_loop(ref_x, 0.75, 0.25)
    (g_ref,) = torch.autograd.grad(ref, ref_x, gy)
    for y, g in outs:
        assert torch.equal(_bits(y), _bits(ref)) and torch.equal(_bits(g), _bits(g_ref))
