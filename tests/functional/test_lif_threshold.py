"""The ``threshold`` comparison option of the SpikingJelly-style IF/LIF/PLIF (">=" SpikingJelly,
">" snnTorch/norse/NIR): hand-derived steps at the threshold, the strict loop against an
independent float64 loop, multistep == looped step, the fused kernels agreeing with the loop on
">" (the full option sweep is in tests/kernels/test_kernels_lif.py) and the modules passing it
through."""
from __future__ import annotations

import pytest
import torch

from spikefuse import surrogate as sg
from spikefuse.functional.lif import LIFParams, if_multistep, lif_multistep, lif_step
from spikefuse.neuron.base import reset_states
from spikefuse.neuron.lif import IF, LIF, ParametricLIF


def _seq(*vals):
    return torch.tensor(vals, dtype=torch.float32).reshape(len(vals), 1, 1)


def test_if_at_threshold_by_hand():
    # IF, v_th = 1, hard reset to 0; x = 1.0, 0.0, 0.5
    # ">=": H = 1.0 fires (V = 0); H = 0.0; H = 0.5            -> S = 1, 0, 0
    # ">" : H = 1.0 does not fire (V = 1); H = 1.0 again; H = 1.5 fires -> S = 0, 0, 1
    x = _seq(1.0, 0.0, 0.5)
    s, _, tr = if_multistep(x, LIFParams(tau=None), backend="reference", return_traces=True)
    assert s.flatten().tolist() == [1.0, 0.0, 0.0] and tr.v.flatten().tolist() == [0.0, 0.0, 0.5]
    s, st, tr = if_multistep(x, LIFParams(tau=None, threshold=">"), backend="reference", return_traces=True)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0]
    assert tr.h.flatten().tolist() == [1.0, 1.0, 1.5] and tr.v.flatten().tolist() == [1.0, 1.0, 0.0]
    assert st.v.item() == 0.0


def test_lif_soft_reset_at_threshold_by_hand():
    # LIF tau = 2, soft reset (rest 0), v_th = 1: H = V + (X - V)/2
    # x = 2.0: H = 1.0 (at threshold: ">" no spike, V = 1.0)
    # x = 1.0: H = 1 + (1 - 1)/2 = 1.0 (again exactly at threshold, no spike)
    # x = 3.0: H = 1 + (3 - 1)/2 = 2.0 > 1: spike, V = 2 - 1 = 1.0
    p = LIFParams(tau=2.0, v_reset=None, threshold=">")
    s, st, tr = lif_multistep(_seq(2.0, 1.0, 3.0), p, backend="reference", return_traces=True)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0]
    assert tr.h.flatten().tolist() == [1.0, 1.0, 2.0] and tr.v.flatten().tolist() == [1.0, 1.0, 1.0]
    s, _ = lif_multistep(_seq(2.0, 1.0, 3.0), p._replace(threshold=">="), backend="reference")
    assert s.flatten().tolist() == [1.0, 0.0, 1.0]   # H = 1.0, 0.5, 1.75


def _ref_strict(x, tau, vth, vr, surrogate):
    """Float64 loop straight from SPEC 15.2 (decay_input=True, hard reset) with a strict
    spike: Heaviside(z > 0) + (P - P.detach()), P the surrogate's primitive."""
    v = torch.zeros_like(x[0]) + vr
    out = []
    for x_t in x.unbind(0):
        h = v + (x_t - (v - vr)) / tau
        z = h - vth
        p = surrogate.primitive(z)
        s = (z > 0).to(z.dtype) + (p - p.detach())
        v = s * vr + (1 - s) * h
        out.append(s)
    return torch.stack(out), v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strict_loop_matches_independent_reference_and_gradients(seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(8, 3, 4, generator=g) + 0.7)
    x[2, 0, :] = 2.0          # from rest: H = 1.0 exactly at the threshold
    x64 = x.double().requires_grad_(True)
    s_ref, v_ref = _ref_strict(x64, 2.0, 1.0, 0.0, sg.ATan(2.0))
    xr = x.clone().requires_grad_(True)
    s, st = lif_multistep(xr, LIFParams(tau=2.0, threshold=">"), backend="reference")
    assert torch.equal(s.double(), s_ref.detach())
    assert torch.allclose(st.v.double(), v_ref.detach(), atol=1e-6)
    w = torch.randn(8, 3, 4, generator=g)
    (gx,) = torch.autograd.grad((s * w).sum() + st.v.sum(), xr)
    (gx_ref,) = torch.autograd.grad((s_ref * w.double()).sum() + v_ref.sum(), x64)
    assert torch.allclose(gx.double(), gx_ref, atol=1e-5)


def test_multistep_equals_looped_step():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, 5, generator=g) + 0.8
    x[0] = 2.0
    p = LIFParams(tau=2.0, threshold=">", detach_reset=True)
    s, st = lif_multistep(x, p, backend="reference")
    state, outs = None, []
    for x_t in x:
        o, state = lif_step(x_t, state, p)
        outs.append(o)
    assert torch.equal(s, torch.stack(outs)) and torch.equal(st.v, state.v)


def test_cpu_kernel_runs_strict_and_auto_picks_it():
    from spikefuse import kernels
    from spikefuse.kernels.cpu import lif as cpu_lif

    x = torch.full((3, 1, 2), 2.0)
    p = LIFParams(tau=2.0, threshold=">")
    assert kernels.resolve("lif", "auto", x, params=p, v0=None) is cpu_lif.lif_cpu
    s_ref, st_ref = lif_multistep(x, p, backend="reference")
    assert s_ref[0].sum() == 0   # H = 1.0 at step 0: no spike
    for be in ("cpu", "auto"):
        s, st = lif_multistep(x, p, backend=be)
        assert torch.equal(s, s_ref) and torch.equal(st.v, st_ref.v)
    assert torch.equal(lif_multistep(x, p._replace(threshold=">="), backend="cpu")[0],
                       lif_multistep(x, p._replace(threshold=">="), backend="reference")[0])


def test_triton_runs_strict_like_the_reference():
    pytest.importorskip("spikefuse.kernels.triton")
    x = torch.full((3, 1, 2), 2.0)
    x[1, 0, 1] = 1.0                     # H = 1.0 again on the second neuron: a second tie
    for thr in (">", ">="):
        p = LIFParams(tau=2.0, threshold=thr)
        xs = [x.clone().requires_grad_() for _ in range(2)]
        outs = [lif_multistep(xi, p, backend=be, return_traces=True) for xi, be in zip(xs, ("triton", "reference"))]
        (s_t, st_t, tr_t), (s_r, st_r, tr_r) = outs
        assert torch.equal(s_t, s_r) and torch.equal(st_t.v, st_r.v)
        assert torch.equal(tr_t.h, tr_r.h) and torch.equal(tr_t.v, tr_r.v)
        g_t, g_r = (torch.autograd.grad((s * torch.arange(6.0).view(3, 1, 2)).sum() + st.v.sum(), xi)[0]
                    for (s, st, _), xi in zip(outs, xs))
        torch.testing.assert_close(g_t, g_r, rtol=1e-6, atol=1e-7)
        assert s_r[0].sum() == (0 if thr == ">" else 2)     # H = 1.0 at step 0


def test_bad_threshold_is_refused():
    with pytest.raises(ValueError, match=r"params.threshold: expected one of \['>=', '>'\], got '=>'"):
        lif_multistep(torch.ones(2, 1, 1), LIFParams(threshold="=>"))
    with pytest.raises(ValueError, match="threshold: expected one of"):
        LIF(threshold="gt")
    n = IF()
    with pytest.raises(ValueError, match="threshold"):
        n.threshold = 1.0


@pytest.mark.parametrize("make", [lambda **k: IF(**k), lambda **k: LIF(tau=2.0, **k),
                                  lambda **k: ParametricLIF(init_tau=2.0, **k)], ids=["IF", "LIF", "PLIF"])
def test_modules_pass_the_option_and_reset(make):
    n = make(threshold=">")
    assert n.params().threshold == ">" and "threshold='>'" in repr(n)
    assert make().params().threshold == ">="
    x = torch.full((3, 2, 2), 2.0 if not isinstance(n, IF) else 1.0)   # charge exactly 1.0 at step 0
    s = n(x)
    assert s[0].sum() == 0 and torch.equal(s, make(threshold=">")(x))
    assert make()(x)[0].sum() == 4                                      # ">=" fires at 1.0
    reset_states(n)
    assert n.v is None and torch.equal(n(x), s)
