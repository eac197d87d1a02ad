"""spikefuse.functional.snntorch and spikefuse.neuron.snntorch: snnTorch's Leaky and Synaptic.

Expected values are derived by hand from snnTorch's documented equations (the module docstring
of functional/snntorch.py restates them): decay, then the reset computed from the previous
membrane (detached), then a strict ``mem - threshold > 0`` spike. Gradients are compared with an
independent float64 loop written here (straight-through spikes: Heaviside + the surrogate's
primitive minus its detached value)."""
from __future__ import annotations

import pytest
import torch

from spikefuse import surrogate as sg
from spikefuse.functional.snntorch import (LeakyParams, LeakyState, SynapticParams, SynapticState,
                                           leaky_multistep, leaky_step, synaptic_multistep, synaptic_step)
from spikefuse.neuron.base import reset_states
from spikefuse.neuron.snntorch import Leaky, Synaptic


def _seq(*vals):
    return torch.tensor(vals, dtype=torch.float32).reshape(len(vals), 1, 1)


def _flat(t):
    return [round(v, 5) for v in t.flatten().tolist()]


# --------------------------------------------------------------------------- hand-derived vectors
# Leaky, beta = 0.5, threshold = 1, x = 1.0, 0.8, 0.4, 0.3
#   t0: R = 0, mem = 1.0 (at the threshold: 1.0 > 1.0 is false, no spike)
#   t1: R = 0, mem = 0.5 + 0.8 = 1.3, spike
#   t2: R = 1 (1.3 > 1) subtract: 0.65 + 0.4 - 1 = 0.05 | zero: 0.5 * 0 + 0.4 = 0.4 | none: 1.05, spike
#   t3: R = 0 subtract: 0.025 + 0.3 = 0.325 | zero: 0.2 + 0.3 = 0.5 | none: R = 1 (1.05): 0.825
LEAKY = {
    "subtract": ([0, 1, 0, 0], [1.0, 1.3, 0.05, 0.325]),
    "zero": ([0, 1, 0, 0], [1.0, 1.3, 0.4, 0.5]),
    "none": ([0, 1, 1, 0], [1.0, 1.3, 1.05, 0.825]),
}


@pytest.mark.parametrize("mechanism", list(LEAKY))
def test_leaky_by_hand(mechanism):
    spikes, mem = LEAKY[mechanism]
    s, st, tr = leaky_multistep(_seq(1.0, 0.8, 0.4, 0.3), LeakyParams(beta=0.5, reset_mechanism=mechanism),
                                return_traces=True)
    assert s.flatten().tolist() == spikes
    assert _flat(tr.mem) == mem and _flat(st.mem) == mem[-1:]


def test_leaky_without_reset_delay_by_hand():
    # reset_delay=False: D = S - R at once. t0: mem = 1.0, no spike. t1: 1.3, spike, D = 1:
    # mem = 0.3. t2: R = 0 (0.3), mem = 0.15 + 0.4 = 0.55. t3: 0.275 + 0.3 = 0.575.
    p = LeakyParams(beta=0.5, reset_delay=False)
    s, _, tr = leaky_multistep(_seq(1.0, 0.8, 0.4, 0.3), p, return_traces=True)
    assert s.flatten().tolist() == [0, 1, 0, 0] and _flat(tr.mem) == [1.0, 0.3, 0.55, 0.575]
    # zero: t1 spikes, mem = 1.3 - 1 * 1.3 = 0; t2: 0 + 0.4; t3: 0.2 + 0.3
    s, _, tr = leaky_multistep(_seq(1.0, 0.8, 0.4, 0.3), p._replace(reset_mechanism="zero"), return_traces=True)
    assert _flat(tr.mem) == [1.0, 0.0, 0.4, 0.5]


def test_leaky_graded_spikes_and_negative_threshold_start():
    s, _ = leaky_multistep(_seq(1.0, 0.8), LeakyParams(beta=0.5, graded_spikes_factor=2.5))
    assert s.flatten().tolist() == [0.0, 2.5]
    # threshold -0.5: the initial reset is H(0 - (-0.5)) = 1, subtracted at t0: 0 + 0.2 + 0.5
    s, st = leaky_multistep(_seq(0.2), LeakyParams(beta=0.5, threshold=-0.5))
    assert _flat(st.mem) == [0.7] and s.item() == 1.0


# Synaptic, alpha = beta = 0.5, threshold 1, x = 1.5, 0.0, 0.5
#   t0: syn = 1.5, mem = 1.5, spike
#   t1: R = 1, syn = 0.75; subtract: mem = 0.75 + 0.75 - 1 = 0.5 | zero: mem = 1.5 - 1.5 = 0 (all of it)
#   t2: R = 0, syn = 0.375 + 0.5 = 0.875; subtract: 0.25 + 0.875 = 1.125, spike | zero: 0.875
SYNAPTIC = {
    "subtract": ([1, 0, 1], [1.5, 0.5, 1.125]),
    "zero": ([1, 0, 0], [1.5, 0.0, 0.875]),
    "none": ([1, 1, 1], [1.5, 1.5, 1.625]),
}


@pytest.mark.parametrize("mechanism", list(SYNAPTIC))
def test_synaptic_by_hand(mechanism):
    spikes, mem = SYNAPTIC[mechanism]
    p = SynapticParams(alpha=0.5, beta=0.5, reset_mechanism=mechanism)
    s, st, tr = synaptic_multistep(_seq(1.5, 0.0, 0.5), p, return_traces=True)
    assert s.flatten().tolist() == spikes and _flat(tr.mem) == mem
    assert _flat(tr.syn) == [1.5, 0.75, 0.875] and _flat(st.syn) == [0.875]


def test_synaptic_at_threshold_does_not_fire():
    # t0: syn = 1, mem = 1 (not > 1); t1: syn = 0.5, mem = 0.5 + 0.5 = 1.0 (again at threshold)
    s, _, tr = synaptic_multistep(_seq(1.0, 0.0), SynapticParams(alpha=0.5, beta=0.5), return_traces=True)
    assert s.flatten().tolist() == [0, 0] and _flat(tr.mem) == [1.0, 1.0]


def test_decays_are_clamped_to_unit_interval():
    s1, st1 = leaky_multistep(_seq(0.3, 0.3), LeakyParams(beta=1.7))
    s2, st2 = leaky_multistep(_seq(0.3, 0.3), LeakyParams(beta=1.0))
    assert torch.equal(st1.mem, st2.mem)
    _, st = synaptic_multistep(_seq(0.3, 0.3), SynapticParams(alpha=-0.2, beta=0.5))
    assert _flat(st.syn) == [0.3]   # alpha clamped to 0


# --------------------------------------------------------------------------- loop, gradients


def _ref_leaky(x, beta, thr, mechanism, surrogate):
    """Float64 straight from the equations; straight-through spike with the surrogate's primitive."""
    mem = torch.zeros_like(x[0])
    spikes, mems = [], []
    for x_t in x.unbind(0):
        reset = (mem - thr > 0).to(x.dtype)
        b = beta.clamp(0, 1)
        if mechanism == "subtract":
            mem = b * mem + x_t - reset * thr
        elif mechanism == "zero":
            mem = b * (1 - reset) * mem + x_t
        else:
            mem = b * mem + x_t
        z = mem - thr
        p = surrogate.primitive(z)
        spikes.append((z > 0).to(x.dtype) + (p - p.detach()))
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("mechanism", ["subtract", "zero", "none"])
@pytest.mark.parametrize("seed", [0, 1])
def test_leaky_gradients_match_independent_float64_loop(mechanism, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 3, 4, generator=g) * 0.7 + 0.5
    x[0, 0] = 1.0   # at the threshold from rest
    w = torch.randn(10, 3, 4, generator=g)
    beta = torch.tensor(0.8, requires_grad=True)
    thr = torch.tensor(1.0, requires_grad=True)
    xr = x.clone().requires_grad_(True)
    s, _, tr = leaky_multistep(xr, LeakyParams(beta, thr, mechanism), return_traces=True)
    grads = torch.autograd.grad((s * w).sum() + tr.mem.sum(), (xr, beta, thr))
    x64, b64, t64 = (t.detach().double().requires_grad_(True) for t in (x, beta, thr))
    s_ref, m_ref = _ref_leaky(x64, b64, t64, mechanism, sg.ATan(2.0))
    ref = torch.autograd.grad((s_ref * w.double()).sum() + m_ref.sum(), (x64, b64, t64))
    assert torch.equal(s.double(), s_ref.detach())
    assert torch.allclose(tr.mem.double(), m_ref.detach(), atol=1e-5)
    for a, b in zip(grads, ref):
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("delay", [True, False])
@pytest.mark.parametrize("mechanism", ["subtract", "zero", "none"])
def test_multistep_equals_looped_step(mechanism, delay):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 2, 3, generator=g) + 0.6
    lp = LeakyParams(beta=0.7, reset_mechanism=mechanism, reset_delay=delay, surrogate=sg.FastSigmoid(25.0))
    sp = SynapticParams(alpha=0.6, beta=0.7, reset_mechanism=mechanism, reset_delay=delay)
    for multi, step, p, st_cls in ((leaky_multistep, leaky_step, lp, LeakyState),
                                   (synaptic_multistep, synaptic_step, sp, SynapticState)):
        s, last = multi(x, p)
        state, outs = None, []
        for x_t in x:
            o, state = step(x_t, state, p)
            outs.append(o)
        assert isinstance(state, st_cls)
        assert torch.equal(s, torch.stack(outs)) and all(torch.equal(a, b) for a, b in zip(last, state))


def test_state_continues_a_sequence():
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(2)) + 0.5
    p = SynapticParams(alpha=0.6, beta=0.7)
    s, st = synaptic_multistep(x, p)
    s1, st1 = synaptic_multistep(x[:3], p)
    s2, st2 = synaptic_multistep(x[3:], p, state=st1)
    assert torch.equal(torch.cat([s1, s2]), s) and torch.equal(st2.mem, st.mem)


def test_errors_name_the_argument():
    x = torch.ones(2, 1, 3)
    with pytest.raises(ValueError, match="params.reset_mechanism: expected one of"):
        leaky_multistep(x, LeakyParams(beta=0.5, reset_mechanism="soft"))
    with pytest.raises(TypeError, match="params: expected a LeakyParams"):
        leaky_multistep(x, SynapticParams(0.5, 0.5))
    with pytest.raises(ValueError, match="state.mem: expected shape"):
        leaky_multistep(x, LeakyParams(beta=0.5), state=LeakyState(torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="params.beta: shape"):
        leaky_multistep(x, LeakyParams(beta=torch.ones(4)))
    with pytest.raises(TypeError, match="params: expected a SynapticParams"):
        synaptic_multistep(x, LeakyParams(beta=0.5), backend="cpu")
    assert torch.equal(synaptic_multistep(x, SynapticParams(0.5, 0.5), backend="auto")[0],
                       synaptic_multistep(x, SynapticParams(0.5, 0.5), backend="reference")[0])


# --------------------------------------------------------------------------- modules


def test_leaky_module_learns_beta_and_threshold():
    n = Leaky(0.8, 1.0, learn_beta=True, learn_threshold=True, reset_mechanism="zero")
    assert {k for k, _ in n.named_parameters()} == {"beta", "threshold"}
    assert n.params().reset_mechanism == "zero" and isinstance(n.params().surrogate, sg.ATan)
    x = torch.randn(7, 2, 3, generator=torch.Generator().manual_seed(0)) + 0.6
    s = n(x)
    (s.sum() + n.mem.sum()).backward()
    assert n.beta.grad is not None and n.threshold.grad is not None
    ref, _ = leaky_multistep(x, LeakyParams(0.8, 1.0, "zero"))
    assert torch.equal(s, ref)


def test_modules_single_step_and_return_mem():
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1)) + 0.6
    m = Synaptic(0.6, 0.7, return_mem=True)
    s_m, mem_m = m(x)
    single = Synaptic(0.6, 0.7, step_mode="s", return_mem=True)
    outs = [single(x_t) for x_t in x]
    assert torch.equal(torch.stack([o[0] for o in outs]), s_m)
    assert torch.equal(torch.stack([o[1] for o in outs]), mem_m)
    assert torch.equal(m.last_traces.mem, mem_m.detach()) and torch.equal(single.syn, m.syn)


@pytest.mark.parametrize("make", [lambda: Leaky(0.7), lambda: Synaptic(0.6, 0.7)], ids=["Leaky", "Synaptic"])
def test_reset_states_clears_the_module(make):
    n = make()
    x = torch.full((3, 2, 2), 0.45)
    first = n(x)
    assert not torch.equal(n(x), first)   # the state carried over
    reset_states(torch.nn.Sequential(n))
    assert n.mem is None and n.last_traces is None
    assert torch.equal(n(x), first)
    n(torch.ones(3, 4, 2))               # another batch size: the state restarts at zero
    assert n.mem.shape == (4, 2)


def test_module_checks_and_surrogate_names():
    with pytest.raises(ValueError, match="reset_mechanism: expected one of"):
        Leaky(0.5, reset_mechanism="soft")
    n = Leaky(0.5, spike_grad="fast_sigmoid")
    assert isinstance(n.spike_grad, sg.FastSigmoid)
    with pytest.raises(ValueError, match="step_mode"):
        n.step_mode = "x"
    with pytest.raises(ValueError, match="backend"):
        Synaptic(0.5, 0.5, backend="gpu")  # "cpu" / "triton" are accepted: fused kernels (kernels/*/peers.py)
    assert Synaptic(0.5, 0.5, backend="cpu").backend == "cpu"
    assert "reset_mechanism='subtract'" in repr(Synaptic(0.5, 0.5))
