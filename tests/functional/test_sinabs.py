"""spikefuse.functional.sinabs and spikefuse.neuron.sinabs: sinabs' LIF / IAF layers.

Expected values are derived by hand from sinabs' documented dynamics (restated in the module
docstring of functional/sinabs.py): synaptic current ``alpha_syn * (i_syn + x)``, membrane
``alpha_mem * v + (1 - alpha_mem) * i_syn`` (norm_input), spike count ``floor(v / thr)`` for
positive ``v``, then the reset and the clamp. Gradients are compared with an independent
float64 loop written here (straight-through spike counts with the surrogate's primitive)."""
from __future__ import annotations

import math

import pytest
import torch

from spikefuse import surrogate as sg
from spikefuse.functional.sinabs import (SinabsParams, SinabsState, single_exponential, sinabs_multistep,
                                         sinabs_step)
from spikefuse.neuron.base import reset_states
from spikefuse.neuron.sinabs import SinabsIAF, SinabsLIF

IAF = SinabsParams(alpha_mem=1.0, norm_input=False)


def _seq(*vals):
    return torch.tensor(vals, dtype=torch.float32).reshape(len(vals), 1, 1)


def _flat(t):
    return [round(v, 5) for v in t.flatten().tolist()]


def _run(x, p):
    s, st, tr = sinabs_multistep(x, p, return_traces=True)
    return s.flatten().tolist(), _flat(tr.v_mem), tr


def test_multi_spike_counts_by_hand():
    # IAF, threshold 1, subtract: v = 1.0 -> floor(1/1) = 1 spike (the count fires at the threshold),
    # v = 0; v = 2.0 -> 2 spikes, v = 0; v = -0.5 -> (v > 0) is false: 0 spikes, v stays -0.5
    assert _run(_seq(1.0, 2.0, -0.5), IAF)[:2] == ([1.0, 2.0, 0.0], [0.0, 0.0, -0.5])
    # threshold 0.5: v = 1.3 -> floor(2.6) = 2, v = 1.3 - 1.0 = 0.3
    assert _run(_seq(1.3), IAF._replace(spike_threshold=0.5))[:2] == ([2.0], [0.3])


def test_single_and_max_spikes_by_hand():
    # single: 1[v - thr >= 0]; x = 1.0 fires (v = 0), x = 2.0: one spike, v = 1.0, x = -0.5: v = 0.5
    assert _run(_seq(1.0, 2.0, -0.5), IAF._replace(spike_fn="single"))[:2] == ([1.0, 1.0, 0.0], [0.0, 1.0, 0.5])
    # max 2: v = 3.5 -> min(3, 2) = 2 spikes, v = 1.5; then v = 1.5 + 0 -> 1 spike, v = 0.5
    p = IAF._replace(spike_fn="max", max_num_spikes_per_bin=2)
    assert _run(_seq(3.5, 0.0), p)[:2] == ([2.0, 1.0], [1.5, 0.5])


def test_membrane_reset_adds_reset_value_to_every_neuron():
    # sinabs' MembraneReset: v * 1[S == 0] + reset_value, for spiking and silent neurons alike
    # x = 0.5: no spike, v = 0.5 + 0.2 = 0.7; x = 0.7: v = 1.4, single spike, v = 0 + 0.2;
    # x = 0.1: v = 0.3, no spike, v = 0.5
    p = IAF._replace(spike_fn="single", reset_fn="reset", reset_value=0.2)
    assert _run(_seq(0.5, 0.7, 0.1), p)[:2] == ([0.0, 1.0, 0.0], [0.7, 0.2, 0.5])
    # multi with a membrane reset: v = 2.5 -> 2 spikes, v = 0
    assert _run(_seq(2.5), IAF._replace(reset_fn="reset"))[:2] == ([2.0], [0.0])


def test_synaptic_lif_with_norm_input_by_hand():
    # alpha_mem = alpha_syn = 0.5, x = 2, 2, 0:
    # t0: i = 0.5 (0 + 2) = 1.0, v = 0 + 0.5 * 1.0 = 0.5
    # t1: i = 0.5 (1 + 2) = 1.5, v = 0.25 + 0.75 = 1.0 -> 1 spike, v = 0
    # t2: i = 0.75, v = 0 + 0.375
    p = SinabsParams(alpha_mem=0.5, alpha_syn=0.5)
    s, v, tr = _run(_seq(2.0, 2.0, 0.0), p)
    assert s == [0.0, 1.0, 0.0] and v == [0.5, 0.0, 0.375] and _flat(tr.i_syn) == [1.0, 1.5, 0.75]
    # without norm_input: t0 v = 1.0 -> spike, v = 0; t1: v = 1.5 -> 1, v = 0.5; t2: 0.25 + 0.75
    s, v, _ = _run(_seq(2.0, 2.0, 0.0), p._replace(norm_input=False))
    assert s == [1.0, 1.0, 1.0] and v == [0.0, 0.5, 0.0]


def test_min_v_mem_and_subtract_value():
    assert _run(_seq(-3.0, 0.5), IAF._replace(min_v_mem=-1.0))[1] == [-1.0, -0.5]
    # subtract_value 0.25 with 2 spikes: v = 2.2 - 0.5
    assert _run(_seq(2.2), IAF._replace(subtract_value=0.25))[:2] == ([2.0], [1.7])


def _ref(x, alpha_mem, alpha_syn, thr, surrogate):
    """Float64 sinabs LIF (multi, subtract, norm_input) with straight-through spike counts."""
    v, i = torch.zeros_like(x[0]), torch.zeros_like(x[0])
    spikes, vs = [], []
    for x_t in x.unbind(0):
        i = alpha_syn * (i + x_t)
        v = alpha_mem * v + (1 - alpha_mem) * i
        p = surrogate.primitive(v - thr)
        s = torch.where(v > 0, torch.floor(v / thr), torch.zeros_like(v)) + (p - p.detach())
        v = v - s * thr
        spikes.append(s)
        vs.append(v)
    return torch.stack(spikes), torch.stack(vs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_independent_float64_loop(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 3, 4, generator=g) * 2 + 1.5
    w = torch.randn(10, 3, 4, generator=g)
    am, asyn = torch.tensor(math.exp(-1 / 5), requires_grad=True), torch.tensor(math.exp(-1 / 3), requires_grad=True)
    xr = x.clone().requires_grad_(True)
    s, _, tr = sinabs_multistep(xr, SinabsParams(am, asyn), return_traces=True)
    grads = torch.autograd.grad((s * w).sum() + tr.v_mem.sum(), (xr, am, asyn))
    x64, a64, s64 = (t.detach().double().requires_grad_(True) for t in (x, am, asyn))
    s_ref, v_ref = _ref(x64, a64, s64, 1.0, single_exponential(1.0))
    ref = torch.autograd.grad((s_ref * w.double()).sum() + v_ref.sum(), (x64, a64, s64))
    assert torch.equal(s.double(), s_ref.detach()) and s.sum() > 0
    assert torch.allclose(tr.v_mem.double(), v_ref.detach(), atol=1e-5)
    for a, b in zip(grads, ref):
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-4)


def test_single_exponential_is_sinabs_formula():
    v = torch.linspace(-1, 3, 41, dtype=torch.float64)
    thr, width, scale = 0.8, 0.5, 1.3
    sinabs = scale / (thr * width) * torch.exp(-torch.abs(v - thr) / (thr * width))
    assert torch.allclose(single_exponential(thr, width, scale).grad(v - thr), sinabs, rtol=1e-12)


def test_periodic_exponential_by_hand():
    # thr = 1, width 0.5: below the threshold d = v - thr, above it d = thr (2 frac(v/thr - 1/2) - 1),
    # twice the signed distance to the nearest multiple of thr: v = 0.5 -> -0.5; v = 1.0 -> 0;
    # v = 1.4 -> 2 (0.9) - 1 = 0.8; v = 1.6 -> 2 (0.1) - 1 = -0.8; v = 3.0 -> 0; then exp(-|d| / 0.5)
    from spikefuse.functional.sinabs import Heaviside, PeriodicExponential

    v = torch.tensor([0.5, 1.0, 1.4, 1.6, 3.0], dtype=torch.float64)
    d = torch.tensor([-0.5, 0.0, 0.8, -0.8, 0.0], dtype=torch.float64)
    pe = PeriodicExponential(1.0, 0.5)
    assert torch.allclose(pe.grad_of_v(v, 1.0), torch.exp(-d.abs() / 0.5), atol=1e-12)
    assert torch.allclose(pe.grad(v - 1.0), pe.grad_of_v(v, 1.0), atol=1e-12)
    # Heaviside(window 0.5) at thr 2: 1[v >= 1.5] / 2
    assert Heaviside(2.0, 0.5).grad_of_v(torch.tensor([1.4, 1.5, 3.0]), 2.0).tolist() == [0.0, 0.5, 0.5]


def test_membrane_surrogate_reaches_the_input_gradient():
    from spikefuse.functional.sinabs import PeriodicExponential

    x = torch.tensor([[[2.4]]], requires_grad=True)   # one step: v = 2.4, 2 spikes, d = 2 (0.9) - 1
    s, _ = sinabs_multistep(x, IAF._replace(surrogate=PeriodicExponential(1.0, 0.5)))
    (g,) = torch.autograd.grad(s.sum(), x)
    assert torch.allclose(g, torch.exp(torch.tensor(-0.8 / 0.5)).reshape(1, 1, 1))


@pytest.mark.parametrize("p", [SinabsParams(0.8, 0.6), IAF, IAF._replace(spike_fn="single", reset_fn="reset")],
                         ids=["lif-syn", "iaf", "iaf-single-reset"])
def test_multistep_equals_looped_step(p):
    x = torch.randn(8, 2, 3, generator=torch.Generator().manual_seed(4)) * 2 + 0.5
    s, last = sinabs_multistep(x, p)
    state, outs = None, []
    for x_t in x:
        o, state = sinabs_step(x_t, state, p)
        outs.append(o)
    assert isinstance(state, SinabsState) and torch.equal(s, torch.stack(outs))
    assert torch.equal(last.v_mem, state.v_mem)
    assert (last.i_syn is None) == (p.alpha_syn is None)


def test_errors_name_the_argument():
    x = torch.ones(2, 1, 3)
    with pytest.raises(ValueError, match="params.spike_fn: expected one of"):
        sinabs_multistep(x, IAF._replace(spike_fn="double"))
    with pytest.raises(ValueError, match="params.spike_threshold: must be > 0"):
        sinabs_multistep(x, IAF._replace(spike_threshold=0.0))
    with pytest.raises(ValueError, match="params.max_num_spikes_per_bin"):
        sinabs_multistep(x, IAF._replace(spike_fn="max", max_num_spikes_per_bin=0))
    with pytest.raises(ValueError, match="state.i_syn: expected a tensor"):
        sinabs_multistep(x, SinabsParams(0.5, 0.5), state=SinabsState(torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="pass a surrogate explicitly"):
        sinabs_multistep(x, IAF._replace(spike_threshold=torch.ones(3)))
    with pytest.raises(ValueError, match="backend: 'cpu' cannot run this 'sinabs_lif' case: input dtype torch.float64"):
        sinabs_multistep(x.double(), IAF, backend="cpu")   # the fused scans name what they refuse


# --------------------------------------------------------------------------- modules


def test_lif_module_taus_are_parameters():
    n = SinabsLIF(tau_mem=5.0, tau_syn=3.0)
    assert {k for k, _ in n.named_parameters()} == {"tau_mem", "tau_syn"}
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(0)) * 2 + 1
    s = n(x)
    (s.sum() + n.v_mem.sum()).backward()
    assert n.tau_mem.grad is not None and n.tau_syn.grad is not None
    p = SinabsParams(torch.exp(-1.0 / torch.tensor(5.0)), torch.exp(-1.0 / torch.tensor(3.0)))
    assert torch.equal(s, sinabs_multistep(x, p)[0])
    a = SinabsLIF(tau_mem=5.0, train_alphas=True)
    assert {k for k, _ in a.named_parameters()} == {"alpha_mem"}
    assert torch.equal(a(x), SinabsLIF(tau_mem=5.0)(x))


def test_iaf_module_and_reset_states():
    n = SinabsIAF(tau_syn=2.0, spike_fn="max", max_num_spikes_per_bin=3)
    assert n.params().alpha_mem == 1.0 and n.params().norm_input is False
    x = torch.full((3, 2, 2), 0.7)
    first = n(x)
    assert not torch.equal(n(x), first) and n.last_traces.i_syn.shape == (3, 2, 2)
    reset_states(torch.nn.Sequential(n))
    assert n.v_mem is None and n.i_syn is None and n.last_traces is None
    assert torch.equal(n(x), first)


def test_module_checks():
    with pytest.raises(ValueError, match="reset_fn: expected one of"):
        SinabsLIF(tau_mem=5.0, reset_fn="zero")
    with pytest.raises(ValueError, match="tau_mem: must be > 0"):
        SinabsLIF(tau_mem=-1.0)
    with pytest.raises(ValueError, match="max_num_spikes_per_bin"):
        SinabsIAF(max_num_spikes_per_bin=-2)
    with pytest.raises(TypeError, match="surrogate_grad_fn"):
        SinabsIAF(surrogate_grad_fn=lambda v, t: v)
    assert isinstance(SinabsIAF(surrogate_grad_fn=sg.ATan()).params().surrogate, sg.ATan)
