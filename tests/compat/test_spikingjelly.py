"""spikefuse.compat.spikingjelly: spikingjelly.cext.neuron calls, written as cext users write
them, equal the native spikefuse results bit for bit, and the explicit backward / BPTT
functions return the documented gradients (= autograd through the forward)."""
import math

import pytest
import torch

from spikefuse import surrogate as sg
from spikefuse.compat.spikingjelly import neuron as top_level
from spikefuse.compat.spikingjelly.cext import neuron
from spikefuse.functional.lif import LIFParams, LIFState, lif_multistep
from spikefuse.neuron.lif import LIF, ParametricLIF

T, Nn = 12, (3, 4)


def _x(seed=0):
    torch.manual_seed(seed)
    return torch.rand(T, *Nn) * 1.5


def test_defaults_and_index_numbering():
    n = neuron.MultiStepLIFNode()
    assert (n.reciprocal_tau, n.detach_input, n.v_threshold, n.v_reset) == (1 / 100.0, False, 1.0, 0.0)
    assert (n.surrogate_function, n.alpha, n.grad_surrogate_function_index, n.detach_reset) == ("ATan", 2.0, 0, False)
    assert n.v == 0.0 and not isinstance(n.v, torch.Tensor)
    assert neuron.surrogate_function_dict == {"ATan": 0, "Sigmoid": 1}
    assert neuron.ParametricLIFNode().w.shape == (1,) and neuron.ParametricLIFNode().w.item() == 0.0
    assert neuron.IFNode(surrogate_function="Sigmoid").grad_surrogate_function_index == 1
    assert top_level is neuron


@pytest.mark.parametrize("detach_input", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, -0.2, None])
def test_port_multistep_lif_node_equals_native(detach_input, v_reset):
    node = neuron.MultiStepLIFNode(tau=3.0, detach_input=detach_input, v_reset=v_reset, surrogate_function="Sigmoid",
                                   alpha=2.0, detach_reset=True)
    xa = (_x() * 2).requires_grad_()
    s = node(xa)
    xb = (_x() * 2).requires_grad_()
    p = LIFParams(tau=None, reciprocal_tau=1 / 3.0, v_threshold=1.0, v_reset=v_reset, decay_input=not detach_input,
                  detach_reset=True, surrogate=sg.Sigmoid(2.0))
    v0 = torch.full(Nn, 0.0 if v_reset is None else v_reset)
    sn, st = lif_multistep(xb, p, LIFState(v0))
    assert torch.equal(s, sn) and torch.equal(node.v, st.v) and s.sum() > 0
    ga, = torch.autograd.grad(s.sum() + node.v.sum(), xa)
    gb, = torch.autograd.grad(sn.sum() + st.v.sum(), xb)
    assert torch.equal(ga, gb)


def test_port_lif_tau2_equals_native_lif_module():
    """With tau = 2 (1/tau = 0.5 exactly) the cext node equals spikefuse's LIF module."""
    node, ref = neuron.MultiStepLIFNode(tau=2.0), LIF(tau=2.0)
    xa, xb = _x().requires_grad_(), _x().requires_grad_()
    s, sn = node(xa), ref(xb)
    assert torch.equal(s, sn) and torch.equal(node.v, ref.v)
    assert torch.equal(*(torch.autograd.grad(a.sum(), b)[0] for a, b in ((s, xa), (sn, xb))))


@pytest.mark.parametrize("init_tau", [2.0, 3.0, 7.5])
def test_port_parametric_lif_equals_native(init_tau):
    node = neuron.MultiStepParametricLIFNode(init_tau=init_tau)
    ref = ParametricLIF(init_tau=init_tau)
    xa, xb = _x(1).requires_grad_(), _x(1).requires_grad_()
    s, sn = node(xa), ref(xb)
    assert torch.equal(s, sn) and torch.equal(node.v, ref.v)
    ga = torch.autograd.grad((s * xa).sum(), [xa, node.w])
    gb = torch.autograd.grad((sn * xb).sum(), [xb, ref.w])
    assert torch.equal(ga[0], gb[0]) and torch.equal(ga[1].reshape(()), gb[1])


def test_single_step_nodes_loop_equals_multistep():
    x = _x()
    for single, multi in ((neuron.LIFNode(tau=4.0), neuron.MultiStepLIFNode(tau=4.0)),
                          (neuron.IFNode(v_reset=None), neuron.MultiStepIFNode(v_reset=None)),
                          (neuron.ParametricLIFNode(3.0), neuron.MultiStepParametricLIFNode(3.0))):
        s1 = torch.stack([single(x[t]) for t in range(T)])
        assert torch.equal(s1, multi(x)) and torch.equal(single.v, multi.v)
        single.reset()
        assert single.v == single.v_reset


def test_eval_mode_has_no_graph_and_same_values():
    node = neuron.MultiStepLIFNode(tau=2.0)
    x = _x().requires_grad_()
    s_train = node(x)
    node.reset(), node.eval()
    s_eval = node(x)
    assert torch.equal(s_train, s_eval) and not s_eval.requires_grad


def test_spec_s1_bptt_functions():
    """SPEC 17 S1 (tau = 2, hard reset, ATan 2): forward_with_grad + bptt give the table's gX."""
    x = torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1)
    gS = torch.tensor([0.0, 1, 0, 1, 0]).reshape(5, 1)
    for det, want in ((False, [0.109656, 0.40906, 0.049525, 0.10298, 0.0]),
                      (True, [0.216598, 0.433196, 0.05149, 0.10298, 0.0])):
        s, v, gs2h, gv2h = neuron.LIF_hard_reset_fptt_with_grad(x, torch.zeros(1), 1.0, 0.0, 2.0, det, 0, 0.5, False)
        assert s.flatten().tolist() == [0, 1, 0, 1, 0] and gs2h.shape == gv2h.shape == (5, 1)
        gx, gv = neuron.LIF_bptt(gS, torch.zeros(1), gs2h, gv2h, 0.5, False)
        torch.testing.assert_close(gx.flatten(), torch.tensor(want), rtol=0, atol=2e-6)


@pytest.mark.parametrize("kind", ["LIF", "IF", "ParametricLIF"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_explicit_bptt_equals_autograd(kind, detach_reset):
    x = _x(2)
    v0 = torch.rand(*Nn) * 0.5
    gS, gV = torch.randn(T, *Nn), torch.randn(*Nn)
    rtau = torch.tensor(0.3, requires_grad=True) if kind == "ParametricLIF" else 0.3
    args = (1.0, 0.0, 2.0, detach_reset, 0)
    xa, va = x.clone().requires_grad_(), v0.clone().requires_grad_()
    if kind == "IF":
        s, v = neuron.IFMultiStep.apply(xa, va, *args)
        saved = neuron.IF_hard_reset_fptt_with_grad(x, v0, *args)
        gx, gv = neuron.IF_bptt(gS, gV, *saved[2:])
    elif kind == "LIF":
        s, v = neuron.LIFMultiStep.apply(xa, va, *args, rtau, True)
        saved = neuron.LIF_hard_reset_fptt_with_grad(x, v0, *args, rtau, True)
        gx, gv = neuron.LIF_bptt(gS, gV, *saved[2:], rtau, True)
    else:
        s, v = neuron.ParametricLIFMultiStep.apply(xa, va, *args, rtau, False)
        saved = neuron.ParametricLIF_hard_reset_fptt_with_grad(x, v0, *args, rtau.detach(), False)
        gx, gv, grt = neuron.ParametricLIF_bptt(gS, gV, *saved[2:], rtau.detach(), False)
    assert torch.equal(saved[0], s.detach()) and torch.equal(saved[1], v.detach())
    leaves = [xa, va] + ([rtau] if kind == "ParametricLIF" else [])
    auto = torch.autograd.grad((s * gS).sum() + (v * gV).sum(), leaves)
    torch.testing.assert_close(gx, auto[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gv, auto[1], rtol=1e-5, atol=1e-6)
    if kind == "ParametricLIF":
        torch.testing.assert_close(grt.reshape(()), auto[2], rtol=1e-5, atol=1e-5)


def test_single_step_functions_and_templates():
    x, v = _x()[0], torch.rand(*Nn)
    s, vn = neuron.LIF_hard_reset_forward(x, v, 1.0, 0.0, 0.25, False)
    assert all(torch.equal(a, b) for a, b in zip((s, vn), neuron.LIFStep.apply(x, v, 1.0, 0.0, 2.0, False, 0, 0.25, False)))
    assert all(torch.equal(a, b) for a, b in zip((s, vn), neuron.hard_reset_forward_template(x, v, 1.0, 0.0, 0.25, False)))
    s_if, v_if = neuron.IF_hard_reset_forward(x, v, 1.0, 0.0)
    assert torch.equal(s_if, (x + v >= 1.0).float())
    s_soft, v_soft = neuron.soft_reset_forward_template(x, v, 1.0)
    torch.testing.assert_close(v_soft, x + v - s_soft)
    out = neuron.LIF_hard_reset_forward_with_grad(x, v, 1.0, 0.0, 2.0, False, 1, 0.25, False)
    h = v + (x - v) * 0.25
    torch.testing.assert_close(out[2], sg.Sigmoid(2.0).grad(h - 1.0))
    gx, gv = neuron.LIF_backward(torch.ones(*Nn), torch.zeros(*Nn), out[2], out[3], 0.25, False)
    torch.testing.assert_close(gx, out[2] * 0.25) and torch.testing.assert_close(gv, out[2] * 0.75)
    gx_t, gv_t = neuron.backward_template(torch.ones(*Nn), torch.zeros(*Nn), out[2], out[3], 0.25, False)
    assert torch.equal(gx, gx_t) and torch.equal(gv, gv_t)
    gx_if, gv_if = neuron.IF_backward(torch.ones(*Nn), torch.zeros(*Nn), out[2], out[3])
    assert torch.equal(gx_if, gv_if) and torch.equal(gx_if, out[2])


@pytest.mark.parametrize("call,exc,words", [
    (lambda: neuron.LIFNode(surrogate_function="atan"), ValueError, "surrogate_function"),
    (lambda: neuron.LIFNode(tau=0.5), ValueError, "tau"),
    (lambda: neuron.ParametricLIFNode(init_tau=1.0), ValueError, "init_tau"),
    (lambda: neuron.LIF_hard_reset_forward(torch.ones(2), torch.ones(3), 1.0, 0.0, 0.5, False), ValueError, "v:"),
    (lambda: neuron.LIF_hard_reset_fptt(torch.ones(2), torch.ones(()), 1.0, 0.0, 0.5, False), ValueError, "x_seq"),
    (lambda: neuron.LIF_hard_reset_forward(torch.ones(2), torch.ones(2), 1.0, 0.0, 1.5, False), ValueError,
     "reciprocal_tau"),
    (lambda: neuron.LIFStep.apply(torch.ones(2), torch.ones(2), 1.0, 0.0, 2.0, False, 2, 0.5, False), ValueError,
     "grad_surrogate_function_index"),
    (lambda: neuron.MultiStepIFNode()([1.0, 2.0]), TypeError, "dv_seq"),
    (lambda: neuron.IFNode(alpha=0.0), ValueError, "alpha"),
])
def test_bad_inputs_name_the_argument(call, exc, words):
    with pytest.raises(exc) as e:
        call()
    assert words in str(e.value)


def test_init_w_matches_cext():
    assert neuron.ParametricLIFNode(init_tau=3.0).w.item() == pytest.approx(-math.log(2.0))


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, -0.1, None])
def test_reciprocal_tau_runs_on_the_fused_cpu_kernel(decay_input, v_reset):
    """The cext charge (multiply by 1/tau) on the fused CPU kernel equals the reference loop:
    forward bit for bit, gradients (input, initial v, a learnable 1/tau, thresholds) to 1e-5."""
    from spikefuse import kernels
    from spikefuse.kernels.cpu import lif as cpu_lif

    x = _x(3)
    vth = torch.linspace(0.8, 1.2, Nn[1])
    res = {}
    for be in ("cpu", "reference"):
        rtau = torch.tensor(0.37, requires_grad=True)
        th = vth.clone().requires_grad_()
        xx, v0 = x.clone().requires_grad_(), torch.full(Nn, 0.1, requires_grad=True)
        p = LIFParams(tau=None, reciprocal_tau=rtau, v_threshold=th, v_reset=v_reset, decay_input=decay_input,
                      surrogate=sg.ATan(2.0))
        s, st, tr = lif_multistep(xx, p, LIFState(v0), backend=be, return_traces=True)
        loss = (s * torch.linspace(-1, 1, s.numel()).view(s.shape)).sum() + (tr.v ** 2).sum()
        res[be] = (s, st.v, tr.h) + torch.autograd.grad(loss, [xx, v0, rtau, th])
    assert kernels.resolve("lif", "auto", x, params=p, v0=None) is cpu_lif.lif_cpu
    for k, (a, b) in enumerate(zip(res["cpu"], res["reference"])):
        if k < 3:
            assert torch.equal(a, b), k
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reciprocal_tau"):
        kernels.resolve("lif", "triton", x, params=p, v0=None)
