"""NIR graphs written the way hxtorch's and lava-dl's exporters write them (neither library is
installable here; the rules come from their source, see spikefuse.interop.nir._hardware and
docs/nir.md), read with ``from_nir(convention="hxtorch" / "lava-dl")`` and checked against
spikefuse's hxtorch CUBA and Loihi CUBA families, and against the exporters' equations by hand."""
import warnings

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from spikefuse import layers  # noqa: E402
from spikefuse.functional.cuba import CubaParams, cuba_lif_integration  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, from_nir  # noqa: E402
from spikefuse.interop.nir._hardware import HxtorchLI  # noqa: E402
from spikefuse.neuron.cuba import CubaRefractoryLIF  # noqa: E402
from spikefuse.neuron.loihi import cuba as loihi_cuba  # noqa: E402


def _x(T=40, B=3, n=4, seed=0, scale=1.0):
    return torch.rand(T, B, n, generator=torch.Generator().manual_seed(seed)) * scale


# ------------------------------------------------------------------------------------ hxtorch
def _hx_lif(size, tau_mem, tau_syn, c_mem, leak, reset, thr):
    # hxtorch.spiking.utils.to_nir._map_hxtorch_to_nir for a firing AELIF (commit 1033578)
    return nir.CubaLIF(tau_mem=np.array(size * [tau_mem * 1e3]), tau_syn=np.array(size * [tau_syn * 1e3]),
                       r=np.array(size * [tau_mem / c_mem]), v_leak=np.array(size * [leak]),
                       v_reset=np.array(size * [reset]), v_threshold=np.array(size * [thr]))


def _hx_li(size, tau_mem, tau_syn, leak):
    return nir.CubaLI(tau_mem=np.array(size * [tau_mem * 1e3]), tau_syn=np.array(size * [tau_syn * 1e3]),
                      r=np.array(size * [1.0]), v_leak=np.array(size * [leak]))


def _hx_graph(*modules, n_in, n_out):
    """hxtorch's to_nir graph: nodes named by module index, the open source 's_0_0' as Input and
    the open target 't_<last>' as Output, edges along the chain."""
    last = len(modules) - 1
    nodes = {"s_0_0": nir.Input(input_type=np.array([n_in])), **{str(k): m for k, m in enumerate(modules)},
             f"t_{last}": nir.Output(output_type=np.array([n_out]))}
    names = ["s_0_0", *map(str, range(len(modules))), f"t_{last}"]
    return nir.NIRGraph(nodes, list(zip(names[:-1], names[1:])))


def test_hxtorch_yinyang_graph_runs_as_spikefuse_hxtorch_families():
    # the shape of hxtorch's Yin-Yang example exported: Synapse -> LIF -> Synapse -> LI, with
    # membrane_capacitance = tau_mem (r = 1) as the example sets it
    g = torch.Generator().manual_seed(3)
    w_h, w_o = torch.randn(12, 4, generator=g) * 0.6, torch.randn(2, 12, generator=g)
    tau_mem, tau_syn = 10e-6, 5e-6
    graph = _hx_graph(nir.Linear(w_h.numpy()), _hx_lif(12, tau_mem, tau_syn, tau_mem, 0.0, 0.0, 0.4),
                      nir.Linear(w_o.numpy()), _hx_li(2, tau_mem, tau_syn, 0.0), n_in=4, n_out=2)
    model = from_nir(graph, convention="hxtorch")
    ref_lif = CubaRefractoryLIF(leak=0.0, reset=0.0, threshold=0.4, tau_syn=tau_syn, tau_mem=tau_mem,
                                refractory_time=1e-6, dt=1e-6)
    ref_li = HxtorchLI(leak=0.0, tau_syn=tau_syn, tau_mem=tau_mem)
    x = _x(scale=2.0)
    s_ref = ref_lif(torch.nn.functional.linear(x, w_h))
    out_ref = ref_li(torch.nn.functional.linear(s_ref, w_o))
    spikes = model[:2](x)
    assert torch.equal(spikes, s_ref) and 0 < s_ref.sum() < s_ref.numel()
    assert torch.equal(model(x), out_ref)


def test_hxtorch_step_by_hand_one_step_delay_and_refractory_step():
    # dt = 1 us, tau_mem = tau_syn = 2 us: a = 0.5; threshold 0.2; x = 1 at t0 only
    # t0: dv = 0.5 (0 - 0 + i=0) = 0, i = 1, v = 0        (the input reaches v one step later)
    # t1: dv = 0.5 (0 + 1) = 0.5, i = 0.5, v = 0.5 > 0.2: spike, v = 0, counter 1e-6/1e-6 = 1
    # t2: dv = 0.5 * 0.5 = 0.25, v = 0.25 > 0.2, but refractory: v = reset = 0, no spike
    # t3: dv = 0.5 * 0.25 = 0.125, v = 0.125: no spike
    graph = _hx_graph(_hx_lif(1, 2e-6, 2e-6, 2e-6, 0.0, 0.0, 0.2), n_in=1, n_out=1)
    x = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(4, 1, 1)
    m = from_nir(graph, convention="hxtorch")
    assert m(x).flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    # NIR's reading of the same node spikes at t0 already (current first) and again at t2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = from_nir(graph, dt=1e-3)  # the graph's unit is ms: dt = 1 us = 1e-3 ms
    assert plain(x).flatten().tolist() != [0.0, 1.0, 0.0, 0.0]


def _hx_reference(x, tau_mem, tau_syn, c_mem, leak, reset, thr, dt=1e-6, fire=True):
    """hxtorch's CuBaStepCode step in float64, written out from its source (refractory 1 step)."""
    g_l = c_mem / tau_mem
    v = torch.full(x.shape[1:], leak, dtype=torch.float64)
    i = torch.zeros_like(v)
    ref = torch.zeros_like(v)
    zs, vs = [], []
    for x_t in x.double():
        dv = dt / c_mem * (i + g_l * (leak - v))
        i = i * (1 - dt / tau_syn) + x_t
        v = v + dv
        z = (v > thr).double() if fire else torch.zeros_like(v)
        v = (1 - z) * v + z * reset
        if fire:
            m = (ref > 0).double()
            v, z = (1 - m) * v + m * reset, (1 - m) * z
            ref = (1 - z) * torch.relu(ref - m) + z * (1e-6 / dt)
        zs.append(z)
        vs.append(v)
    return torch.stack(zs), torch.stack(vs)


def test_hxtorch_capacitance_other_than_tau_mem_scales_the_current():
    # r = tau_mem / c_mem = 2.5: the current enters 2.5x stronger (read as a Scale(r) in front)
    tau_mem, tau_syn, c_mem = 8e-6, 4e-6, 3.2e-6
    graph = _hx_graph(_hx_lif(4, tau_mem, tau_syn, c_mem, 0.1, -0.1, 0.9), n_in=4, n_out=4)
    x = _x(T=60, scale=0.6)
    z_ref, _ = _hx_reference(x, tau_mem, tau_syn, c_mem, 0.1, -0.1, 0.9)
    z = from_nir(graph, convention="hxtorch")(x)
    assert torch.equal(z, z_ref.float()) and 0 < z.sum() < z.numel()


def test_hxtorch_li_has_the_default_capacitance_of_hxtorchs_importer():
    # hxtorch's from_nir leaves the LI's membrane_capacitance at 10 us: with tau_mem = 20 us
    # its current enters with gain tau_mem / c = 2
    graph = _hx_graph(_hx_li(4, 20e-6, 5e-6, 0.25), n_in=4, n_out=4)
    x = _x(T=30)
    _, v_ref = _hx_reference(x, 20e-6, 5e-6, 10e-6, 0.25, 0.0, 0.0, fire=False)
    v = from_nir(graph, convention="hxtorch")(x)
    torch.testing.assert_close(v.double(), v_ref, rtol=1e-5, atol=1e-6)
    assert v[0].eq(0.25).all()  # the first step still sees the old (zero) current


def test_hxtorch_convention_dt_and_refusals():
    graph = _hx_graph(_hx_lif(2, 10e-6, 5e-6, 10e-6, 0.0, 0.0, 1.0), n_in=2, n_out=2)
    assert from_nir(graph, convention="hxtorch")[0].dt == 1e-6
    with pytest.warns(UserWarning, match="written for dt=1e-06"):
        from_nir(graph, dt=2e-6, convention="hxtorch")
    uneven = _hx_lif(2, 10e-6, 5e-6, 10e-6, 0.0, 0.0, 1.0)
    uneven.v_threshold = np.array([1.0, 2.0])
    with pytest.raises(NIRConversionError, match="the same v_threshold for every neuron"):
        from_nir(_hx_graph(uneven, n_in=2, n_out=2), convention="hxtorch")


# ------------------------------------------------------------------------------------ lava-dl
def _lava_network(n_in=4, n=6, seed=0):
    torch.manual_seed(seed)
    neuron = loihi_cuba.Neuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03125, requires_grad=False)
    dense = layers.Dense(n_in, n, bias=False, weight_hook="8bit")
    with torch.no_grad():
        dense.weight.mul_(4.0)
    return dense, neuron


def _lava_graph(dense, neuron):
    """lava.lib.dl.netx.nir_lava.read_node on the netx HDF5 of one dense CUBA layer (commit
    87e6dfb): Input, Linear(HDF5 weight mantissas), CubaLIF(1/iDecay, 1/vDecay, r=1, v_leak=0,
    vThMant, w_in=tau_syn). (Written with nir 1.0's Input(input_type) and string edges; the
    exporter used nir 0.x's Input(shape) and integer edges.)"""
    dp = neuron.device_params
    w = np.rint(neuron.quantize_8bit(dense.weight.detach(), descale=True).numpy())
    n = w.shape[0]
    tau_syn, tau_mem = 1.0 / float(dp["iDecay"]), 1.0 / float(dp["vDecay"])
    cuba = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.ones(n),
                       v_leak=np.zeros(n), v_threshold=np.full(n, float(dp["vThMant"])), w_in=np.full(n, tau_syn))
    nodes = {"0": nir.Input(input_type=np.array([w.shape[1]])), "1": nir.Linear(weight=w), "2": cuba}
    return nir.NIRGraph(nodes, [("0", "1"), ("1", "2")]), dp


def test_lava_dl_graph_runs_as_the_loihi_network_it_was_exported_from():
    dense, neuron = _lava_network()
    graph, dp = _lava_graph(dense, neuron)
    assert (dp["iDecay"], dp["vDecay"], dp["vThMant"]) == (1024, 128, 80)
    model = from_nir(graph, convention="lava-dl")
    n2 = model[-1]
    assert (n2.cx_current_decay, n2.cx_voltage_decay, n2.v_th_mant) == (1024, 128, 80)
    x = (torch.rand(50, 3, 4, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    s_ref = neuron(dense(x))
    s = model(x)
    assert torch.equal(s, s_ref) and 0 < s_ref.sum() < s_ref.numel()
    # lava-dl's own importer would build decays 1/tau = 1024 (slayer clamps to a full decay):
    # NIR's Euler reading of the graph is another network as well
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            from_nir(graph, dt=1.0)(x)  # dt = 1 step is longer than tau = 1/1024: refused


def test_lava_dl_convention_refuses_what_is_not_a_loihi_cuba_layer():
    dense, neuron = _lava_network()
    graph, _ = _lava_graph(dense, neuron)
    graph.nodes["2"].v_threshold = np.full(6, 80.5)
    with pytest.raises(NIRConversionError, match="vThMant"):
        from_nir(graph, convention="lava-dl")
    graph.nodes["2"].v_threshold = np.full(6, 80.0)
    graph.nodes["2"].tau_syn = np.full(6, 1e-5)
    with pytest.raises(NIRConversionError, match="must give 1..4096"):
        from_nir(graph, convention="lava-dl")
