"""NIR export / import (spikefuse.interop.nir).

The reference for imported graphs is an independent forward-Euler integration of the NIR ODEs
written below in numpy (float64) straight from the equations in the nir package docstrings:

    LI:      tau dv/dt = (v_leak - v) + r I
    LIF:     the same, z = 1[v > v_threshold], v -> v_reset on a spike
    IF / I:  dv/dt = r I
    CubaLIF: tau_syn dI/dt = -I + w_in S;  tau_mem dv/dt = (v_leak - v) + r I

one Euler step of dt: state[t] = state[t-1] + dt * f(state[t-1], input[t]).
"""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikefuse import layers  # noqa: E402
from spikefuse.interop import nir as snir  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, from_nir, to_nir  # noqa: E402
from spikefuse.neuron.lif import IF, LIF, ParametricLIF, reset_net  # noqa: E402

DT = 1e-3
F32 = np.float32


# ------------------------------------------------------------------------------------------
# independent forward-Euler integrators of the NIR ODEs (numpy, float64)
# ------------------------------------------------------------------------------------------
def euler_lif(I, dt, tau, r, v_leak, v_th=None, v_reset=None, v0=None):
    """I: (T, B, N) input current. Leaky node; spiking when v_th is given. Returns (out, v)."""
    T = I.shape[0]
    v = np.broadcast_to(v_leak if v0 is None else v0, I.shape[1:]).astype(np.float64).copy()
    out, vs = np.zeros_like(I), np.zeros_like(I)
    for t in range(T):
        dvdt = ((v_leak - v) + r * I[t]) / tau
        v = v + dt * dvdt
        if v_th is None:
            out[t] = v
        else:
            z = v > v_th
            out[t] = z
            v = np.where(z, v_reset, v)
        vs[t] = v
    return out, vs


def euler_if(I, dt, r, v_th=None, v_reset=None, v0=0.0):
    T = I.shape[0]
    v = np.broadcast_to(v0, I.shape[1:]).astype(np.float64).copy()
    out = np.zeros_like(I)
    for t in range(T):
        v = v + dt * r * I[t]
        if v_th is None:
            out[t] = v
        else:
            z = v > v_th
            out[t] = z
            v = np.where(z, v_reset, v)
    return out


def euler_cuba(S, dt, tau_syn, tau_mem, r, v_leak, w_in, v_th=None, v_reset=None):
    T = S.shape[0]
    i = np.zeros(S.shape[1:])
    v = np.broadcast_to(v_leak, S.shape[1:]).astype(np.float64).copy()
    out, vs, is_ = np.zeros_like(S), np.zeros_like(S), np.zeros_like(S)
    for t in range(T):
        i = i + dt * (-i + w_in * S[t]) / tau_syn
        v = v + dt * ((v_leak - v) + r * i) / tau_mem   # current first: v sees the same step's i
        if v_th is None:
            out[t] = v
        else:
            z = v > v_th
            out[t] = z
            v = np.where(z, v_reset, v)
        vs[t], is_[t] = v, i
    return out, vs, is_


def affine(x, W, b):
    return np.einsum("tbi,oi->tbo", x, W) + b


def run(module, x):
    reset_net(module)
    with torch.no_grad():
        y = module(x)
    reset_net(module)
    return y


# ------------------------------------------------------------------------------------------
# models used for the round trips
# ------------------------------------------------------------------------------------------
def _dense_model():
    return nn.Sequential(
        layers.Dense(4, 8), LIF(tau=2.0),
        layers.Dense(8, 6), IF(v_threshold=0.8, v_reset=-0.1),
        layers.Dense(6, 5), ParametricLIF(init_tau=3.0, v_threshold=0.3, detach_reset=True, surrogate="sigmoid"),
        layers.Dense(5, 3, bias=False), layers.LeakyIntegrator(tau=4.0),
    )


def _nested_model():
    return nn.Sequential(
        layers.DenseBlock(4, 6, LIF(tau=3.0, decay_input=False, v_threshold=0.7, detach_reset=True,
                                    surrogate="superspike")),
        nn.Sequential(layers.Dense(6, 5), nn.Sequential(
            LIF(tau=torch.linspace(1.5, 4.0, 5), v_threshold=torch.linspace(0.5, 1.0, 5)))),
        nn.Identity(),
        layers.Dense(5, 2), layers.LeakyIntegrator(tau=2.5, decay_input=False),
    )


def _conv_model():
    return nn.Sequential(
        layers.Conv2d(2, 4, 3, padding=1),
        LIF(tau=torch.tensor([2.0, 2.5, 3.0, 4.0]).view(4, 1, 1),
            v_threshold=torch.tensor([0.4, 0.5, 0.6, 0.7]).view(4, 1, 1)),
        layers.AvgPool2d(2),
        layers.Conv2dBlock(4, 6, 3, IF(v_threshold=0.4), stride=2, padding=(1, 0), bias=False),
        layers.SumPool2d(kernel_size=(2, 1), stride=1),
        layers.Flatten(), layers.Dense(6 * 1 * 1, 5), LIF(tau=3.0, v_threshold=0.3),
    )


def _conv1d_model():
    return nn.Sequential(
        layers.Conv1d(3, 4, 3, padding="same", dilation=2), IF(v_threshold=0.5),
        layers.Conv1d(4, 2, 2, stride=2, groups=2), LIF(tau=2.0, v_threshold=0.3),
        layers.Flatten(), layers.Dense(2 * 5, 3), layers.LeakyIntegrator(tau=3.0),
    )


MODELS = {
    "dense": (_dense_model, None, (4,)),
    "nested": (_nested_model, None, (4,)),
    "conv2d": (_conv_model, (2, 8, 6), (2, 8, 6)),
    "conv1d": (_conv1d_model, (3, 10), (3, 10)),
}


def _excite(model):
    """Positive-leaning weights so that spikes reach the last layer (the tests are not vacuous)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) - 0.3) * 3.0 / math.sqrt(fan_in))
    return model


def _input(shape, T=12, B=3):
    return torch.rand(T, B, *shape) * 2.0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_identical(name):
    make, input_shape, feat = MODELS[name]
    model = _excite(make())
    graph = to_nir(model, dt=DT, input_shape=input_shape)
    assert isinstance(graph, nir.NIRGraph)
    back = from_nir(graph, dt=DT)
    x = _input(feat)
    y0 = run(model, x)
    y1 = run(back, x)
    assert y0.abs().sum() > 0  # the test is not vacuous
    assert torch.equal(y0, y1)
    # the restored neurons carry the same surrogate / detach_reset: identical input gradients
    xg0, xg1 = x.clone().requires_grad_(), x.clone().requires_grad_()
    reset_net(model), reset_net(back)
    model(xg0).sum().backward()
    back(xg1).sum().backward()
    reset_net(model), reset_net(back)
    assert torch.allclose(xg0.grad, xg1.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_plain_nir_semantics(name):
    """Without the spikefuse metadata every node runs as its NIR ODE (forward Euler); the
    numbers agree with the spikefuse modules up to float rounding."""
    make, input_shape, feat = MODELS[name]
    model = _excite(make())
    back = from_nir(to_nir(model, dt=DT, input_shape=input_shape), dt=DT, use_metadata=False)
    kinds = {type(m).__name__ for m in back.modules()}
    assert not kinds & {"LIF", "IF", "ParametricLIF", "LeakyIntegrator"}
    x = _input(feat)
    y0, y1 = run(model, x), run(back, x)
    assert torch.allclose(y0, y1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["dense", "conv2d"])
def test_file_round_trip(name, tmp_path):
    make, input_shape, feat = MODELS[name]
    model = _excite(make())
    path = tmp_path / f"{name}.nir"
    nir.write(path, to_nir(model, dt=DT, input_shape=input_shape))
    graph = nir.read(path)
    back = from_nir(graph, dt=DT)
    x = _input(feat)
    assert torch.equal(run(model, x), run(back, x))
    # and without metadata (what another NIR tool would see)
    plain = from_nir(graph, dt=DT, use_metadata=False)
    assert torch.allclose(run(model, x), run(plain, x), rtol=1e-5, atol=1e-5)


def test_export_parameters_follow_the_mapping():
    model = nn.Sequential(layers.Dense(3, 2), LIF(tau=4.0, v_threshold=0.7, v_reset=0.1),
                          layers.Dense(2, 2), LIF(tau=2.0, decay_input=False), layers.Dense(2, 2), IF(),
                          layers.Dense(2, 2), layers.LeakyIntegrator(tau=5.0))
    g = to_nir(model, dt=0.5e-3)
    lif, lif_nodi, if_, li = g.nodes["1"], g.nodes["3"], g.nodes["5"], g.nodes["7"]
    assert isinstance(g.nodes["0"], nir.Affine)
    np.testing.assert_array_equal(g.nodes["0"].weight, model[0].weight.detach().numpy())
    assert isinstance(lif, nir.LIF)
    np.testing.assert_allclose(lif.tau, [2e-3, 2e-3], rtol=1e-6)       # tau steps * dt
    np.testing.assert_allclose(lif.r, [1, 1])
    np.testing.assert_allclose(lif.v_leak, [0.1, 0.1], rtol=1e-6)       # rest = v_reset
    np.testing.assert_allclose(lif.v_reset, [0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(lif.v_threshold, [0.7, 0.7], rtol=1e-6)
    np.testing.assert_allclose(lif_nodi.r, [2, 2])                      # decay_input=False: r = tau
    assert isinstance(if_, nir.IF)
    np.testing.assert_allclose(if_.r, [2000, 2000], rtol=1e-6)          # dt * r = 1
    assert isinstance(li, nir.LI)
    np.testing.assert_allclose(li.tau, [2.5e-3, 2.5e-3], rtol=1e-6)
    np.testing.assert_allclose(li.v_leak, [0, 0])
    assert g.metadata["spikefuse"]["dt"] == 0.5e-3
    assert lif.metadata["spikefuse"]["module"] == "LIF"


def test_weight_hook_applied_before_export():
    d = layers.Dense(4, 3, weight_hook="8bit")
    with torch.no_grad():
        d.weight.mul_(3.0)
    g = to_nir(nn.Sequential(d, LIF()), dt=DT)
    np.testing.assert_array_equal(g.nodes["0"].weight, d.effective_weight().detach().numpy())
    back = from_nir(g, dt=DT)
    x = _input((4,))
    assert torch.equal(run(nn.Sequential(d, LIF()), x), run(back, x))


def test_single_module_and_input_shape():
    g = to_nir(LIF(tau=2.0), dt=DT, input_shape=(3,))
    assert [type(n).__name__ for n in g.nodes.values()].count("LIF") == 1
    back = from_nir(g, dt=DT)
    x = _input((3,))
    assert torch.equal(run(LIF(tau=2.0), x), run(back, x))


# ------------------------------------------------------------------------------------------
# hand-built NIR graphs against the independent Euler integrators
# ------------------------------------------------------------------------------------------
def _rng():
    return np.random.default_rng(1)


def test_affine_lif_matches_euler():
    rng = _rng()
    N_in, N = 3, 5
    W = rng.normal(0, 1.0, (N, N_in)).astype(F32)
    b = rng.normal(0, 0.2, N).astype(F32)
    tau = np.linspace(2e-3, 6e-3, N).astype(F32)
    r = np.linspace(0.5, 2.0, N).astype(F32)
    v_leak = np.linspace(-0.2, 0.2, N).astype(F32)
    v_th = np.full(N, 0.6, F32)
    v_reset = np.full(N, -0.3, F32)
    g = nir.NIRGraph.from_list(nir.Affine(weight=W, bias=b),
                               nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=v_th, v_reset=v_reset))
    model = from_nir(g, dt=DT).double()
    x = rng.uniform(0, 2, (40, 2, N_in))
    z = model(torch.tensor(x)).detach().numpy()      # float64 end to end
    ref, _ = euler_lif(affine(x, W.astype(np.float64), b), DT, tau.astype(np.float64), r, v_leak, v_th, v_reset)
    assert ref.sum() > 5 and ref.sum() < ref.size - 5
    np.testing.assert_array_equal(z, ref)


def test_affine_cubalif_matches_euler():
    rng = _rng()
    N_in, N = 4, 6
    W = rng.normal(0, 1.0, (N, N_in)).astype(F32)
    b = np.zeros(N, F32)
    tau_syn = np.linspace(2e-3, 5e-3, N).astype(F32)
    tau_mem = np.linspace(3e-3, 8e-3, N).astype(F32)
    r = np.linspace(1.0, 3.0, N).astype(F32)
    v_leak = np.full(N, 0.1, F32)
    w_in = np.linspace(0.5, 2.0, N).astype(F32)
    v_th = np.full(N, 0.3, F32)
    v_reset = np.zeros(N, F32)
    g = nir.NIRGraph.from_list(nir.Affine(weight=W, bias=b),
                               nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=v_leak,
                                           v_threshold=v_th, v_reset=v_reset, w_in=w_in))
    model = from_nir(g, dt=DT).double()
    x = rng.uniform(0, 2, (50, 2, N_in))
    z = model(torch.tensor(x)).detach().numpy()
    ref, _, _ = euler_cuba(affine(x, W.astype(np.float64), b), DT, tau_syn.astype(np.float64),
                           tau_mem.astype(np.float64), r, v_leak, w_in, v_th, v_reset)
    assert ref.sum() > 5 and ref.sum() < ref.size - 5
    np.testing.assert_array_equal(z, ref)


def test_li_readout_matches_euler():
    rng = _rng()
    W1 = rng.normal(0, 1.0, (5, 3)).astype(F32)
    W2 = rng.normal(0, 1.0, (2, 5)).astype(F32)
    lif = dict(tau=np.full(5, 3e-3, F32), r=np.ones(5, F32), v_leak=np.zeros(5, F32),
               v_threshold=np.full(5, 0.5, F32), v_reset=np.zeros(5, F32))
    li = dict(tau=np.array([2e-3, 5e-3], F32), r=np.array([1.0, 4.0], F32), v_leak=np.array([0.0, -1.0], F32))
    g = nir.NIRGraph.from_list(nir.Linear(weight=W1), nir.LIF(**lif), nir.Affine(weight=W2, bias=np.ones(2, F32)),
                               nir.LI(**li))
    model = from_nir(g, dt=DT).double()
    assert [type(m).__name__ for m in model] == ["Dense", "NIRLIF", "Dense", "NIRLI"]
    x = rng.uniform(0, 2, (30, 2, 3))
    y = model(torch.tensor(x)).detach().numpy()
    s, _ = euler_lif(affine(x, W1.astype(np.float64), 0.0), DT, 3e-3, 1.0, 0.0, 0.5, 0.0)
    ref, _ = euler_lif(affine(s, W2.astype(np.float64), 1.0), DT, li["tau"].astype(np.float64),
                       li["r"].astype(np.float64), li["v_leak"].astype(np.float64))
    assert s.sum() > 0
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_if_integrator_threshold_scale_match_euler():
    rng = _rng()
    N = 4
    r_if = np.array([100.0, 200.0, 300.0, 400.0], F32)
    g = nir.NIRGraph.from_list(nir.Scale(scale=np.array([1.0, -1.0, 2.0, 0.5], F32)),
                               nir.IF(r=r_if, v_threshold=np.full(N, 0.5, F32), v_reset=np.full(N, 0.1, F32)))
    x = rng.uniform(0, 2, (25, 2, N))
    z = from_nir(g, dt=DT).double()(torch.tensor(x)).detach().numpy()
    ref = euler_if(x * np.array([1.0, -1.0, 2.0, 0.5]), DT, r_if.astype(np.float64), 0.5, 0.1, v0=0.1)
    assert ref.sum() > 3
    np.testing.assert_array_equal(z, ref)

    gi = nir.NIRGraph.from_list(nir.I(r=np.array([2.0, 3.0], F32)), nir.Threshold(threshold=np.array([0.01, 0.05], F32)))
    x2 = rng.uniform(-1, 2, (20, 3, 2))
    z2 = from_nir(gi, dt=DT).double()(torch.tensor(x2)).detach().numpy()
    v = euler_if(x2, DT, np.array([2.0, 3.0]))
    np.testing.assert_array_equal(z2, (v > np.array([0.01, 0.05])).astype(np.float64))


def test_cuba_nir_node_reproduces_spec_h1():
    """SPEC 17 H1 (hxtorch CUBA LIF, hand-derived): dt=1e-6, tau_syn=tau_mem=2e-6, leak=reset=0,
    threshold 0.3, x[0]=1, x[3]=0.8; as NIR's same-step CubaLIF with w_in = tau_syn/dt (input as
    a jump) behind a one-step Delay (hxtorch's voltage uses the previous step's current)."""
    g = nir.NIRGraph.from_list(nir.Delay(delay=np.array([1e-6])),
                               nir.CubaLIF(tau_syn=np.array([2e-6]), tau_mem=np.array([2e-6]), r=np.array([1.0]),
                                           v_leak=np.array([0.0]), v_threshold=np.array([0.3]),
                                           v_reset=np.array([0.0]), w_in=np.array([2.0])))
    m = from_nir(g, dt=1e-6)
    x = torch.zeros(6, 1, 1, dtype=torch.float64)
    x[0], x[3] = 1.0, 0.8
    assert m(x).flatten().tolist() == [0, 1, 0, 0, 1, 0]
    _, _, (i, v) = snir.cuba_euler_multistep(m[0](x), m[1].params, return_traces=True)
    np.testing.assert_allclose(v.flatten().numpy(), [0, 0, 0.25, 0.25, 0, 0.23125], atol=1e-12)
    # the current one step later than hxtorch's [1, 0.5, 0.25, 0.925, 0.4625, 0.23125]
    np.testing.assert_allclose(i.flatten().numpy(), [0, 1, 0.5, 0.25, 0.925, 0.4625], atol=1e-12)
    # without the Delay the same node is the same-step reading: the spike comes at once
    assert from_nir(nir.NIRGraph.from_list(g.nodes["cubalif"]), dt=1e-6)(x).flatten().tolist() == [1, 0, 0, 1, 0, 0]


def test_lif_hand_vector():
    # tau = 2 dt, r = 1, v_leak = 0: v = v/2 + x/2; threshold 0.6 (strict), reset 0
    # x = 1: v = .5, .75 -> spike -> 0, .5, .75 -> spike; x = 0.2 then: .1
    g = nir.NIRGraph.from_list(nir.LIF(tau=np.array([2.0]), r=np.array([1.0]), v_leak=np.array([0.0]),
                                       v_threshold=np.array([0.6]), v_reset=np.array([0.0])))
    m = from_nir(g, dt=1.0)
    x = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.2]).reshape(5, 1, 1)
    assert m(x).flatten().tolist() == [0, 1, 0, 1, 0]
    # exactly at threshold: NIR is strict (v > thr); v = 0.6 does not spike
    assert m(torch.tensor([1.2]).reshape(1, 1, 1)).item() == 0.0


def test_imported_network_trains():
    rng = _rng()
    g = nir.NIRGraph.from_list(
        nir.Affine(weight=rng.normal(0, 1, (6, 3)).astype(F32), bias=np.zeros(6, F32)),
        nir.LIF(tau=np.full(6, 2e-3, F32), r=np.ones(6, F32), v_leak=np.zeros(6, F32),
                v_threshold=np.full(6, 0.3, F32), v_reset=np.zeros(6, F32)),
        nir.Affine(weight=rng.normal(0, 1, (2, 6)).astype(F32), bias=np.zeros(2, F32)),
        nir.LI(tau=np.full(2, 4e-3, F32), r=np.ones(2, F32), v_leak=np.zeros(2, F32)))
    m = from_nir(g, dt=DT, surrogate="superspike")
    assert m[1].surrogate.name == "superspike"
    m(torch.rand(10, 4, 3)).sum().backward()
    assert m[0].weight.grad is not None and m[0].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------
# graphs that are not chains
# ------------------------------------------------------------------------------------------
def test_branching_graph_sums_inputs():
    rng = _rng()
    W1, W2 = rng.normal(0, 1, (4, 3)).astype(F32), rng.normal(0, 1, (4, 3)).astype(F32)
    lif = dict(tau=np.full(4, 2e-3, F32), r=np.ones(4, F32), v_leak=np.zeros(4, F32),
               v_threshold=np.full(4, 0.4, F32), v_reset=np.zeros(4, F32))
    g = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([3])), "a": nir.Linear(weight=W1), "b": nir.Linear(weight=W2),
               "lif": nir.LIF(**lif), "out": nir.Output(output_type=np.array([4]))},
        edges=[("in", "a"), ("in", "b"), ("a", "lif"), ("b", "lif"), ("lif", "out")])
    m = from_nir(g, dt=DT).double()
    assert isinstance(m, snir.NIRGraphModule) and not m.recurrent
    x = rng.uniform(0, 2, (20, 2, 3))
    z = m(torch.tensor(x)).detach().numpy()
    ref, _ = euler_lif(affine(x, (W1 + W2).astype(np.float64), 0.0), DT, 2e-3, 1.0, 0.0, 0.4, 0.0)
    assert ref.sum() > 0
    np.testing.assert_array_equal(z, ref)


def test_recurrent_lif_round_trip():
    """RecurrentLIF exports as a cycle LIF -> Linear -> LIF; the imported graph runs step by step
    with the feedback delayed by one step, like h[t] = W x[t] + V s[t-1]."""
    torch.manual_seed(3)
    model = nn.Sequential(layers.RecurrentLIF(3, 6, tau=2.0, v_threshold=0.5), layers.Dense(6, 2),
                          layers.LeakyIntegrator(tau=2.0))
    with torch.no_grad():
        model[0].recurrent.weight.mul_(4.0)
    g = to_nir(model, dt=DT)
    assert ("0.lif", "0.recurrent") in g.edges and ("0.recurrent", "0.lif") in g.edges
    x = _input((3,), T=15)
    y0 = run(model, x)
    assert model[0](x).sum() > 0
    # plain NIR semantics: a graph with a cycle, run step by step
    plain = from_nir(g, dt=DT, use_metadata=False)
    assert isinstance(plain, snir.NIRGraphModule) and plain.recurrent
    assert torch.allclose(y0, run(plain, x), rtol=1e-5, atol=1e-6)
    # with the metadata: the three nodes become one RecurrentLIF again, identical outputs
    back = from_nir(g, dt=DT)
    assert isinstance(back, nn.Sequential) and isinstance(back[0], layers.RecurrentLIF)
    assert torch.equal(y0, run(back, x))


def test_nested_nir_graph_is_inlined():
    rng = _rng()
    W = rng.normal(0, 1, (3, 2)).astype(F32)
    inner = nir.NIRGraph.from_list(nir.Linear(weight=W), nir.Scale(scale=np.array([2.0, 1.0, -1.0], F32)))
    outer = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "sub": inner,
                                "li": nir.LI(tau=np.full(3, 1e-3, F32), r=np.ones(3, F32), v_leak=np.zeros(3, F32)),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "sub"), ("sub", "li"), ("li", "output")])
    m = from_nir(outer, dt=DT)
    x = torch.rand(4, 2, 2)
    expected = (x @ torch.tensor(W).T) * torch.tensor([2.0, 1.0, -1.0])  # tau = dt: v = r x
    assert torch.allclose(m(x), expected, atol=1e-6)


def test_import_export_import_is_stable():
    rng = _rng()
    g = nir.NIRGraph.from_list(
        nir.Affine(weight=rng.normal(0, 1, (4, 3)).astype(F32), bias=np.ones(4, F32)),
        nir.CubaLIF(tau_syn=np.full(4, 2e-3, F32), tau_mem=np.full(4, 4e-3, F32), r=np.full(4, 2.0, F32),
                    v_leak=np.zeros(4, F32), v_threshold=np.full(4, 0.5, F32), v_reset=np.zeros(4, F32),
                    w_in=np.full(4, 1.5, F32)),
        nir.Linear(weight=rng.normal(0, 1, (2, 4)).astype(F32)),
        nir.CubaLI(tau_syn=np.full(2, 2e-3, F32), tau_mem=np.full(2, 4e-3, F32), r=np.ones(2, F32),
                   v_leak=np.zeros(2, F32), w_in=np.ones(2, F32)))
    m = from_nir(g, dt=DT)
    g2 = to_nir(m, dt=DT)
    for k in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
        np.testing.assert_array_equal(getattr(g2.nodes["cubalif"], k), getattr(g.nodes["cubalif"], k))
    np.testing.assert_array_equal(g2.nodes["affine"].weight, g.nodes["affine"].weight)
    x = torch.rand(10, 2, 3)
    assert torch.equal(m(x), from_nir(g2, dt=DT)(x))


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt, exc", [(0.0, ValueError), (-1e-3, ValueError), (float("nan"), ValueError),
                                     (float("inf"), ValueError), ("1e-3", TypeError), (True, TypeError),
                                     (None, TypeError)])
def test_bad_dt(dt, exc):
    with pytest.raises(exc, match="dt"):
        to_nir(nn.Sequential(layers.Dense(2, 2), LIF()), dt=dt)
    g = to_nir(nn.Sequential(layers.Dense(2, 2), LIF()), dt=DT)
    with pytest.raises(exc, match="dt"):
        from_nir(g, dt=dt)


def test_dt_larger_than_tau_is_refused():
    g = nir.NIRGraph.from_list(nir.LI(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2)))
    with pytest.raises(ValueError, match="dt"):
        from_nir(g, dt=2e-3)
    gc = nir.NIRGraph.from_list(nir.CubaLIF(tau_syn=np.full(2, 1e-3), tau_mem=np.full(2, 5e-3), r=np.ones(2),
                                            v_leak=np.zeros(2), v_threshold=np.ones(2)))
    with pytest.raises(ValueError, match="tau_syn"):
        from_nir(gc, dt=2e-3)


def test_unsupported_modules_raise():
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*MaxPool2d"):
        to_nir(nn.Sequential(layers.Conv2d(1, 2, 3), layers.MaxPool2d(2)), dt=DT, input_shape=(1, 6, 6))
    with pytest.raises(NIRConversionError, match=r"model\['2'\].*SpikeCount.*over time"):
        to_nir(nn.Sequential(layers.Dense(2, 2), LIF(), layers.SpikeCount()), dt=DT)

    class Custom(nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(NIRConversionError, match=r"model\['1'\].*Custom"):
        to_nir(nn.Sequential(layers.Dense(2, 2), Custom()), dt=DT)
    with pytest.raises(NIRConversionError, match="MaxMembrane"):
        to_nir(nn.Sequential(layers.Dense(2, 2), layers.MaxMembrane()), dt=DT)
    with pytest.raises(NIRConversionError, match="padding_mode"):
        to_nir(nn.Sequential(layers.Conv2d(1, 1, 3, padding=1, padding_mode="circular")), dt=DT,
               input_shape=(1, 4, 4))


def test_loihi_neurons():
    from spikefuse.neuron.loihi import alif, cuba
    n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25)
    model = nn.Sequential(layers.Dense(2, 3), n)
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*Loihi CUBA.*lossy=True"):
        to_nir(model, dt=DT)
    with pytest.warns(UserWarning, match="fixed-point"):
        g = to_nir(model, dt=DT, lossy=True)
    node = g.nodes["1"]
    # Euler: i += dt/tau_syn (w_in x - i) = (1 - du) i + x;  v += dt/tau_mem (r i - v) = (1 - dv) v + i
    np.testing.assert_allclose(node.tau_syn, 2e-3, rtol=1e-6)
    np.testing.assert_allclose(node.tau_mem, 4e-3, rtol=1e-6)
    np.testing.assert_allclose(node.w_in, 2.0, rtol=1e-6)
    np.testing.assert_allclose(node.r, 4.0, rtol=1e-6)
    np.testing.assert_allclose(node.v_threshold, 1.0)
    # per-channel decays need the first forward; norm / graded spikes / other Loihi models refuse
    pc = cuba.Neuron(threshold=1.0, current_decay=(0.2, 0.4), voltage_decay=0.5, shared_param=False)
    with pytest.raises(NIRConversionError, match="first forward"):
        to_nir(nn.Sequential(layers.Dense(2, 3), pc), dt=DT, lossy=True)
    pc(torch.rand(2, 1, 3))
    with pytest.warns(UserWarning):
        g = to_nir(nn.Sequential(layers.Dense(2, 3), pc), dt=DT, lossy=True)
    np.testing.assert_allclose(g.nodes["1"].tau_syn, DT * 4096 / torch.round(pc.current_decay).detach().numpy(),
                               rtol=1e-6)
    with pytest.raises(NIRConversionError, match="graded_spike"):
        to_nir(nn.Sequential(layers.Dense(2, 3), cuba.Neuron(1.0, 0.5, 0.5, graded_spike=True)), dt=DT, lossy=True)
    with pytest.raises(NIRConversionError, match="decay of 0"):
        to_nir(nn.Sequential(layers.Dense(2, 3), cuba.Neuron(1.0, 0.5, 0.0)), dt=DT, lossy=True)
    a = alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=1.0, voltage_decay=0.5,
                    threshold_decay=0.25, refractory_decay=0.5)
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*Loihi module"):
        to_nir(nn.Sequential(layers.Dense(2, 2), a), dt=DT, lossy=True)


def test_soft_reset_needs_lossy():
    model = nn.Sequential(layers.Dense(3, 4), LIF(tau=2.0, v_reset=None))
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*soft reset.*lossy=True"):
        to_nir(model, dt=DT)
    with pytest.warns(UserWarning, match="soft reset"):
        g = to_nir(model, dt=DT, lossy=True)
    np.testing.assert_array_equal(g.nodes["1"].v_reset, np.zeros(4))
    # spikefuse restores the soft reset from the metadata; plain NIR resets to 0
    x = _input((3,), T=20)
    assert torch.equal(run(model, x), run(from_nir(g, dt=DT), x))
    assert isinstance(from_nir(g, dt=DT, use_metadata=False)[1], snir.NIRLIF)
    rnn = nn.Sequential(layers.RecurrentLIF(2, 3, v_reset=None, v_threshold=0.3))
    with pytest.raises(NIRConversionError, match="soft reset"):
        to_nir(rnn, dt=DT)
    with pytest.warns(UserWarning, match="soft reset"):
        g = to_nir(rnn, dt=DT, lossy=True)
    x2 = _input((2,), T=20)
    assert torch.equal(rnn(x2), from_nir(g, dt=DT)(x2))


def test_missing_input_shape():
    with pytest.raises(NIRConversionError, match="input_shape"):
        to_nir(nn.Sequential(layers.Conv2d(1, 2, 3), LIF()), dt=DT)
    with pytest.raises(NIRConversionError, match="input_shape"):
        to_nir(nn.Sequential(LIF(), layers.Dense(2, 2)), dt=DT)
    with pytest.raises(ValueError, match="input_shape"):
        to_nir(nn.Sequential(layers.Dense(2, 2)), dt=DT, input_shape=(0,))
    with pytest.raises(TypeError, match="input_shape"):
        to_nir(nn.Sequential(layers.Dense(2, 2)), dt=DT, input_shape="abc")
    with pytest.raises(NIRConversionError, match="expects 2 input features"):
        to_nir(nn.Sequential(layers.Dense(2, 2)), dt=DT, input_shape=(3,))
    with pytest.raises(NIRConversionError, match="in_channels|C=2"):
        to_nir(nn.Sequential(layers.Conv2d(2, 2, 3)), dt=DT, input_shape=(1, 5, 5))


def test_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        to_nir("not a model", dt=DT)
    with pytest.raises(TypeError, match="lossy"):
        to_nir(nn.Sequential(layers.Dense(2, 2)), dt=DT, lossy=1)
    with pytest.raises(TypeError, match="graph"):
        from_nir({"nodes": {}}, dt=DT)
    g = to_nir(nn.Sequential(layers.Dense(2, 2)), dt=DT)
    with pytest.raises(TypeError, match="use_metadata"):
        from_nir(g, dt=DT, use_metadata="yes")
    with pytest.raises(TypeError, match="surrogate"):
        from_nir(g, dt=DT, surrogate=3)
    with pytest.raises(ValueError, match="surrogate"):
        from_nir(g, dt=DT, surrogate="nope")


def test_unsupported_nir_node_raises():
    from dataclasses import dataclass

    @dataclass(eq=False)
    class Resonator(nir.NIRNode):  # a node type spikefuse does not know
        freq: np.ndarray

        def __post_init__(self):
            self.input_type = {"input": np.array(self.freq.shape)}
            self.output_type = {"output": np.array(self.freq.shape)}

    g = nir.NIRGraph.from_list(nir.Linear(weight=np.eye(2, dtype=F32)), Resonator(freq=np.ones(2, F32)))
    with pytest.raises(NIRConversionError, match=r"'resonator'.*nir\.Resonator has no spikefuse equivalent"):
        from_nir(g, dt=DT)
    gd = nir.NIRGraph.from_list(nir.Delay(delay=np.array([1e-3, 2.5e-3], F32)))
    with pytest.raises(NIRConversionError, match=r"'delay'.*whole number of steps"):
        from_nir(gd, dt=DT)
    g3 = nir.NIRGraph.from_list(nir.Affine(weight=np.ones((2, 2, 2), F32), bias=np.zeros((2, 2), F32)))
    with pytest.raises(NIRConversionError, match="2-d"):
        from_nir(g3, dt=DT)


def test_native_module_validation():
    m = snir.NIRLIF(tau=[2e-3, 2e-3], r=[1, 1], v_leak=[0, 0], v_threshold=[1, 1], dt=DT)
    with pytest.raises(ValueError, match="x"):
        m(torch.rand(3, 2, 5))
    with pytest.raises(TypeError, match="x"):
        m(torch.ones(3, 2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        m(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="tau"):
        snir.NIRLIF(tau=[-1.0], r=[1], v_leak=[0], v_threshold=[1], dt=DT)
    with pytest.raises(ValueError, match="v_threshold"):
        snir.NIRLIF(tau=[1.0], r=[1], v_leak=[0], v_threshold=[float("inf")], dt=DT)
    with pytest.raises(TypeError, match="r"):
        snir.NIRIF(r="a", v_threshold=[1.0], dt=DT)
    with pytest.raises(ValueError, match="does not broadcast"):
        snir.NIRLI(tau=[1.0, 1.0], r=[1.0, 1.0, 1.0], v_leak=[0.0], dt=DT)
    with pytest.raises(ValueError, match="flatten"):
        snir.NIRFlatten(1, 3)(torch.zeros(2, 1, 3, 4))
    gm = snir.NIRGraphModule({"a": snir.Scale([1.0])}, [("i", "a"), ("a", "o")], ["i"], ["o"])
    with pytest.raises(ValueError, match="unknown graph input"):
        gm(**{"zz": torch.ones(1, 1, 1)})
    with pytest.raises(NIRConversionError, match="unknown node"):
        snir.NIRGraphModule({"a": snir.Scale([1.0])}, [("i", "b"), ("a", "o")], ["i"], ["o"])


# ------------------------------------------------------------------------------------------
# hxtorch CUBA LIF and EventProp layers
# ------------------------------------------------------------------------------------------
def _cuba_model():
    from spikefuse.neuron.cuba import CubaLIF
    from spikefuse.neuron.eventprop import EventPropLIF
    return nn.Sequential(
        layers.Dense(3, 5),
        CubaLIF(threshold=0.3, tau_syn=torch.linspace(2e-6, 5e-6, 5), tau_mem=7e-6, leak=0.05, reset=-0.1,
                alpha=nn.Parameter(torch.tensor(30.0))),
        EventPropLIF(5, 4, threshold=0.2, tau_syn=5e-6, tau_mem=1e-5, weight_scale=3.0),
        layers.Dense(4, 2))


def test_cuba_and_eventprop_round_trip(tmp_path):
    from spikefuse.neuron.cuba import CubaLIF
    from spikefuse.neuron.eventprop import EventPropLIF
    model = _cuba_model()
    g = to_nir(model, dt=1e-6)
    node = g.nodes["1"]
    assert isinstance(node, nir.CubaLIF)
    np.testing.assert_allclose(node.w_in, np.linspace(2, 5, 5), rtol=1e-6)   # tau_syn / dt
    np.testing.assert_allclose(node.r, 1.0)
    np.testing.assert_allclose(node.v_leak, 0.05, rtol=1e-6)
    assert isinstance(g.nodes["2.synapse"], nir.Linear) and isinstance(g.nodes["2.neuron"], nir.CubaLIF)
    nir.write(tmp_path / "cuba.nir", g)
    back = from_nir(nir.read(tmp_path / "cuba.nir"), dt=1e-6)
    assert isinstance(back[1], CubaLIF) and isinstance(back[1].alpha, nn.Parameter)
    assert isinstance(back[2], EventPropLIF)
    x = torch.rand(30, 2, 3) * 3
    y0, y1 = model(x), back(x)
    assert model[1](model[0](x)).sum() > 0 and model[2](model[1](model[0](x))).sum() > 0
    assert torch.equal(y0, y1)
    # the plain NIR reading (forward Euler CubaLIF) is the same dynamics
    plain = from_nir(g, dt=1e-6, use_metadata=False)
    assert [type(m).__name__ for m in plain] == ["Dense", "Delay", "NIRCubaLIF", "Dense", "Delay", "NIRCubaLIF",
                                                 "Dense"]
    assert torch.allclose(plain(x), y0, rtol=1e-5, atol=1e-5)


def test_cuba_export_errors():
    from spikefuse.neuron.cuba import CubaLIF, CubaRefractoryLIF
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*dt=1e-06.*dt=0.001"):
        to_nir(nn.Sequential(layers.Dense(2, 2), CubaLIF()), dt=1e-3)
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*refractory"):
        to_nir(nn.Sequential(layers.Dense(2, 2), CubaRefractoryLIF()), dt=1e-6)


def test_recurrent_graph_module_re_exports():
    torch.manual_seed(4)
    model = nn.Sequential(layers.RecurrentLIF(3, 5, tau=2.0, v_threshold=0.4), layers.Dense(5, 2))
    g = to_nir(model, dt=DT)
    back = from_nir(g, dt=DT, use_metadata=False)
    assert isinstance(back, snir.NIRGraphModule)
    g2 = to_nir(back, dt=DT)
    assert set(g2.edges) == set(g.edges)
    for k in ("0.input", "0.lif", "0.recurrent", "1"):
        assert type(g2.nodes[k]) is type(g.nodes[k])
    np.testing.assert_array_equal(g2.nodes["0.recurrent"].weight, g.nodes["0.recurrent"].weight)
    x = _input((3,), T=10)
    assert torch.equal(back(x), from_nir(g2, dt=DT)(x))


def test_threshold_scale_integrator_re_export():
    g = nir.NIRGraph.from_list(nir.Scale(scale=np.array([2.0, -1.0], F32)), nir.I(r=np.array([1.0, 2.0], F32)),
                               nir.Threshold(threshold=np.array([0.1, 0.2], F32)),
                               nir.IF(r=np.full(2, 1e3, F32), v_threshold=np.ones(2, F32)))
    m = from_nir(g, dt=DT)
    assert [type(c).__name__ for c in m] == ["Scale", "NIRIntegrator", "Threshold", "NIRIF"]
    g2 = to_nir(m, dt=DT)
    np.testing.assert_array_equal(g2.nodes["scale"].scale, g.nodes["scale"].scale)
    np.testing.assert_array_equal(g2.nodes["i"].r, g.nodes["i"].r)
    np.testing.assert_array_equal(g2.nodes["threshold"].threshold, g.nodes["threshold"].threshold)
    np.testing.assert_array_equal(g2.nodes["if"].v_threshold, g.nodes["if"].v_threshold)
    x = torch.rand(10, 2, 2)
    assert torch.equal(m(x), from_nir(g2, dt=DT)(x))


def test_multiple_outputs_and_dropout_skipped():
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "s": nir.Scale(scale=np.array([2.0, 3.0], F32)),
               "li": nir.LI(tau=np.full(2, 2e-3, F32), r=np.ones(2, F32), v_leak=np.zeros(2, F32)),
               "o1": nir.Output(output_type=np.array([2])), "o2": nir.Output(output_type=np.array([2]))},
        edges=[("x", "s"), ("s", "o1"), ("x", "li"), ("li", "o2")])
    m = from_nir(g, dt=DT)
    x = torch.ones(3, 1, 2)
    out = m(x)
    assert set(out) == {"o1", "o2"}
    assert torch.equal(out["o1"], x * torch.tensor([2.0, 3.0]))
    assert torch.allclose(out["o2"][:, 0, 0], torch.tensor([0.5, 0.75, 0.875]))
    with pytest.raises(ValueError, match="missing graph input"):
        m()
    g2 = to_nir(nn.Sequential(layers.Dense(2, 3), nn.Dropout(0.5), LIF()), dt=DT)
    assert [type(n).__name__ for n in g2.nodes.values()] == ["Input", "Affine", "LIF", "Output"]


def test_multi_output_graph_module_re_exports():
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])),
               "a": nir.Affine(weight=np.array([[1.0, 2.0], [0.5, -1.0]], F32), bias=np.zeros(2, F32)),
               "li": nir.LI(tau=np.full(2, 2e-3, F32), r=np.ones(2, F32), v_leak=np.zeros(2, F32)),
               "o1": nir.Output(output_type=np.array([2])), "o2": nir.Output(output_type=np.array([2]))},
        edges=[("x", "a"), ("a", "o1"), ("a", "li"), ("li", "o2")])
    m = from_nir(g, dt=DT)
    g2 = to_nir(m, dt=DT)
    assert set(g2.edges) == set(g.edges)
    x = torch.rand(4, 2, 2)
    o, o2 = m(x), from_nir(g2, dt=DT)(x)
    assert all(torch.equal(o[k], o2[k]) for k in ("o1", "o2"))


def test_more_export_errors():
    m = snir.NIRLIF(tau=[2e-3], r=[1], v_leak=[0], v_threshold=[1], dt=1e-3)
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*dt=0.001.*dt=0.002"):
        to_nir(nn.Sequential(layers.Dense(2, 1), m), dt=2e-3)
    with pytest.raises(NIRConversionError, match=r"AvgPool2d expects \(C, H, W\)"):
        to_nir(nn.Sequential(layers.AvgPool2d(2)), dt=DT, input_shape=(4, 4))
    with pytest.raises(NIRConversionError, match="nothing to export"):
        to_nir(nn.Sequential(), dt=DT, input_shape=(2,))
    from spikefuse.neuron.eventprop import EventPropLIF
    with pytest.raises(NIRConversionError, match=r"model\['1'\].*EventPropLIF expects 4"):
        to_nir(nn.Sequential(layers.Dense(2, 3), EventPropLIF(4, 2)), dt=1e-6)


def test_graph_module_errors():
    gm = snir.NIRGraphModule({"a": snir.Scale([1.0]), "b": snir.Scale([1.0])},
                             [("i", "a"), ("j", "b"), ("a", "o"), ("b", "o")], ["i", "j"], ["o"])
    x = torch.ones(2, 1, 1)
    assert torch.equal(gm(x, 2 * x), 3 * x) and torch.equal(gm(i=x, j=x), 2 * x)
    with pytest.raises(ValueError, match="expected 2 tensors"):
        gm(x, x, x)
    with pytest.raises(TypeError, match="inputs\\['i'\\]"):
        gm(torch.ones(2, 1, 1, dtype=torch.int64), x)
    with pytest.raises(NIRConversionError, match="no incoming edge"):
        snir.NIRGraphModule({"a": snir.Scale([1.0]), "b": snir.Scale([1.0])}, [("i", "a"), ("a", "o")], ["i"], ["o"])
    with pytest.raises(NIRConversionError, match="cannot run in a graph with cycles"):
        snir.NIRGraphModule({"a": LIF(), "b": snir.Scale([1.0])}, [("i", "a"), ("a", "b"), ("b", "a"), ("a", "o")],
                            ["i"], ["o"])
    # a cycle that no outside input enters
    cyc = snir.NIRGraphModule({"a": snir.Scale([1.0]), "b": snir.Scale([1.0]), "c": snir.Scale([1.0])},
                              [("i", "a"), ("a", "o"), ("b", "c"), ("c", "b")], ["i"], ["o"])
    with pytest.raises(NIRConversionError, match="receives no input"):
        cyc(x)
    # node names that clash with nn.Module attributes still work
    ok = snir.NIRGraphModule({"forward": snir.Scale([2.0]), "forward.x": snir.Scale([3.0])},
                             [("i", "forward"), ("forward", "forward.x"), ("forward.x", "o")], ["i"], ["o"])
    assert torch.equal(ok(x), 6 * x)


def test_more_import_errors():
    inner = nir.NIRGraph(nodes={"a": nir.Input(input_type=np.array([2])), "b": nir.Input(input_type=np.array([2])),
                                "s": nir.Scale(scale=np.ones(2, F32)), "o": nir.Output(output_type=np.array([2]))},
                         edges=[("a", "s"), ("b", "s"), ("s", "o")])
    outer = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([2])), "sub": inner,
                                "o": nir.Output(output_type=np.array([2]))},
                         edges=[("i", "sub"), ("sub", "o")], type_check=False)
    with pytest.raises(NIRConversionError, match="nested NIRGraphs must have one input"):
        from_nir(outer, dt=DT)
    conv = nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3), F32), stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(2, F32))
    g = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([1, 5, 5])), "c": conv,
                            "o": nir.Output(output_type=np.array([2, 3, 3]))},
                     edges=[("i", "c"), ("c", "o")], type_check=False)
    with pytest.raises(NIRConversionError, match=r"'c'.*Conv2d weight must have 4 dims"):
        from_nir(g, dt=DT)
    no_out = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([2])), "s": nir.Scale(scale=np.ones(2, F32))},
                          edges=[("i", "s")], type_check=False)
    with pytest.raises(NIRConversionError, match="no nir.Output"):
        from_nir(no_out, dt=DT)


def test_native_gradients():
    """Non-spiking nodes: gradcheck against finite differences (float64). Spiking nodes: the
    one-step gradient is the surrogate derivative times du/dx = dt/tau * r (hand-derived)."""
    li = snir.NIRLI(tau=[2e-3, 4e-3], r=[1.0, 3.0], v_leak=[0.1, -0.2], dt=DT).double()
    cli = snir.NIRCubaLI(tau_syn=[2e-3, 3e-3], tau_mem=[4e-3, 5e-3], r=[1.0, 2.0], v_leak=[0.0, 0.5],
                         w_in=[1.0, 0.5], dt=DT).double()
    integ = snir.NIRIntegrator(r=[2.0, 0.5], dt=DT).double()
    x = torch.rand(6, 2, 2, dtype=torch.float64, requires_grad=True)
    for m in (li, cli, integ):
        assert torch.autograd.gradcheck(lambda inp: m(inp), (x,))
    lif = snir.NIRLIF(tau=[4.0], r=[2.0], v_leak=[0.0], v_threshold=[0.25], dt=1.0, surrogate="sigmoid").double()
    x1 = torch.tensor([[[0.7]]], dtype=torch.float64, requires_grad=True)
    z = lif(x1)
    z.sum().backward()
    u = 0.25 * 2.0 * 0.7                       # dt/tau * r * x from v = 0
    sig = torch.sigmoid(torch.tensor(4.0 * (u - 0.25), dtype=torch.float64))
    assert math.isclose(x1.grad.item(), (4.0 * sig * (1 - sig)).item() * 0.25 * 2.0, rel_tol=1e-12)


def test_loihi_cuba_lossy_export_is_the_float_model():
    """With current_decay=1 (u = x) and exact fixed-point arithmetic (inputs on a 1/16 grid,
    voltage decay 1/2, few steps), NIR's same-step CubaLIF is the Loihi step (current first, then
    the voltage with that current): the spikes are the Loihi spikes."""
    from spikefuse.neuron.loihi import cuba
    n = cuba.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=0.5)
    with pytest.warns(UserWarning):
        g = to_nir(n, dt=DT, input_shape=(3,), lossy=True)
    m = from_nir(g, dt=DT)
    x = torch.randint(0, 24, (8, 2, 3)).float() / 16
    s_loihi = n(x)
    s_nir = m(x)
    assert s_loihi.sum() > 2
    assert torch.equal(s_nir, s_loihi)


def test_delay_node():
    g = nir.NIRGraph.from_list(nir.Linear(weight=np.eye(3, dtype=F32)),
                               nir.Delay(delay=np.array([0.0, 1e-3, 3e-3], F32)))
    m = from_nir(g, dt=DT)
    assert isinstance(m[1], snir.Delay) and m[1].steps.tolist() == [0, 1, 3]
    x = torch.rand(6, 2, 3)
    y = m(x)
    assert torch.equal(y[:, :, 0], x[:, :, 0])
    assert torch.equal(y[1:, :, 1], x[:-1, :, 1]) and torch.equal(y[0, :, 1], torch.zeros(2))
    assert torch.equal(y[3:, :, 2], x[:-3, :, 2]) and torch.equal(y[:3, :, 2], torch.zeros(3, 2))
    # continuing a sequence with the returned state == one long sequence
    y1, st = m[1](x[:4], return_state=True)
    y2, _ = m[1](x[4:], st, return_state=True)
    assert torch.equal(torch.cat([y1, y2]), m[1](x))
    g2 = to_nir(m, dt=DT)
    np.testing.assert_allclose(g2.nodes["delay"].delay, [0.0, 1e-3, 3e-3], rtol=1e-6)
    # a delayed feedback loop runs step by step: v[t] = x[t] + 0.5 v[t - 1 - 2]
    loop = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([1])), "s": nir.Scale(scale=np.ones(1, F32)),
                               "d": nir.Delay(delay=np.array([2e-3], F32)),
                               "h": nir.Scale(scale=np.array([0.5], F32)),
                               "o": nir.Output(output_type=np.array([1]))},
                        edges=[("i", "s"), ("s", "d"), ("d", "h"), ("h", "s"), ("s", "o")])
    lm = from_nir(loop, dt=DT)
    assert lm.recurrent
    xs = torch.rand(10, 1, 1)
    out = lm(xs)
    ref = []
    for t in range(10):
        fb = 0.5 * ref[t - 3] if t >= 3 else 0.0
        ref.append(xs[t] + fb)
    assert torch.allclose(out, torch.stack(ref))
    with pytest.raises(ValueError, match="steps"):
        snir.Delay([-1])


def test_native_state_validation_and_continuation():
    m = snir.NIRCubaLIF(tau_syn=[2e-3], tau_mem=[3e-3], r=[1.0], v_leak=[0.0], v_threshold=[0.2], dt=DT)
    x = torch.rand(8, 2, 1)
    y1, st = m(x[:5], return_state=True)
    y2 = m(x[5:], st)
    assert torch.equal(torch.cat([y1, y2]), m(x))
    with pytest.raises(TypeError, match="CubaEulerState"):
        m(x, state=(torch.zeros(2, 1), torch.zeros(2, 1)))
    with pytest.raises(ValueError, match=r"state\.i.*shape"):
        m(x, state=snir.CubaEulerState(torch.zeros(3, 1), torch.zeros(2, 1)))
    lif = snir.NIRLIF(tau=[2e-3], r=[1.0], v_leak=[0.0], v_threshold=[0.2], dt=DT)
    with pytest.raises(ValueError, match="NaN"):
        lif(x, state=snir.EulerState(torch.full((2, 1), float("nan"))))
