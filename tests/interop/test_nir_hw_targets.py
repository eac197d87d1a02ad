"""to_nir(target="hxtorch" | "lava-dl"): spikefuse's hxtorch and Loihi modules exported in the
form those systems write and read, read back with the matching from_nir convention (same
spikes bit for bit), and the graphs checked against the importers' requirements as read from
their source (neither library is installable here):

- hxtorch ``src/pyhxtorch/hxtorch/spiking/utils/from_nir.py`` and ``to_nir.py``
  (electronicvisions/hxtorch commit 1033578): ``_map_nir_to_hxtorch`` maps Input, Linear, CubaLI,
  CubaLIF only, needs homogeneous layer parameters, reads ``tau * 1e-3`` (ms),
  ``membrane_capacitance = tau_mem / r``, keeps the LIF default ``refractory_time = 1e-6`` and the
  LI default capacitance 1e-5; ``forward`` walks ``graph.edges`` in order from the one Input;
  ``to_nir`` writes ``CubaLIF(tau_mem*1e3, tau_syn*1e3, r = tau_mem/c_mem, v_leak, v_reset,
  v_threshold)`` and ``CubaLI(..., r = 1)`` without w_in.
- lava-dl ``src/lava/lib/dl/netx/nir_lava.py`` (lava-nc/lava-dl commit 87e6dfb, unmerged branch):
  ``read_neuron`` writes ``CubaLIF(1/iDecay, 1/vDecay, r = 1, v_leak = 0, vThMant, w_in =
  tau_syn)`` after the layer's ``Linear`` (HDF5 weight mantissas); ``nir_to_lavadl_net`` needs an
  acyclic chain without splits or joins from one Input, each Linear/Affine followed by a CubaLIF.
"""
import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikefuse import layers  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, NIRCubaLIF, from_nir, to_nir  # noqa: E402
from spikefuse.interop.nir._hardware import HxtorchLI  # noqa: E402
from spikefuse.neuron.cuba import CubaLIF, CubaRefractoryLIF  # noqa: E402
from spikefuse.neuron.eventprop import EventPropLIF  # noqa: E402
from spikefuse.neuron.lif import LIF  # noqa: E402
from spikefuse.neuron.loihi import cuba as loihi_cuba  # noqa: E402

_HX_IMPORTS = (nir.Input, nir.Output, nir.Linear, nir.CubaLI, nir.CubaLIF)  # _map_nir_to_hxtorch


def _x(T=40, B=3, n=4, seed=0, scale=1.0):
    return torch.rand(T, B, n, generator=torch.Generator().manual_seed(seed)) * scale


# ------------------------------------------------------------------------------------ hxtorch
def _hx_net(dt=1e-6, tau_mem=10e-6, tau_syn=5e-6):
    g = torch.Generator().manual_seed(3)
    d1, d2 = layers.Dense(4, 12, bias=False), layers.Dense(12, 2, bias=False)
    with torch.no_grad():
        d1.weight.copy_(torch.randn(12, 4, generator=g) * 0.6)
        d2.weight.copy_(torch.randn(2, 12, generator=g))
    lif = CubaRefractoryLIF(leak=0.1, reset=-0.05, threshold=0.4, tau_syn=tau_syn, tau_mem=tau_mem,
                            refractory_time=1e-6, dt=dt)
    return nn.Sequential(d1, lif, d2, HxtorchLI(leak=0.0, tau_syn=tau_syn, tau_mem=10e-6, dt=dt))


def _check_hxtorch_graph(graph):
    """What hxtorch's from_nir requires of a graph (module docstring)."""
    assert all(isinstance(n, _HX_IMPORTS) for n in graph.nodes.values())
    ins = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    assert len(ins) == len(outs) == 1
    # forward: each edge's source already computed when its edge comes (edges in chain order)
    done = {ins[0]}
    for a, b in graph.edges:
        assert a in done and b not in done
        done.add(b)
    assert done == set(graph.nodes)
    for n in graph.nodes.values():
        if isinstance(n, (nir.CubaLIF, nir.CubaLI)):
            keys = ("tau_mem", "tau_syn", "v_leak") + (("v_reset", "v_threshold", "r") if isinstance(n, nir.CubaLIF)
                                                       else ())
            assert all(np.unique(getattr(n, k)).size == 1 for k in keys)  # "must be homogeneous"
            assert n.input_type["input"][0] > 0


def test_hxtorch_export_is_hxtorchs_graph_and_reads_back_bit_for_bit():
    net = _hx_net()
    graph = to_nir(net, dt=1e-6, target="hxtorch")
    _check_hxtorch_graph(graph)
    assert graph.metadata["spikefuse"]["convention"] == "hxtorch"
    lif, li = graph.nodes["1"], graph.nodes["3"]
    # the fields hxtorch's to_nir writes: ms, r = tau_mem / c_mem = 1, no w_in (default 1)
    assert type(lif) is nir.CubaLIF and type(li) is nir.CubaLI
    assert lif.tau_mem[0] * 1e-3 == 10e-6 and lif.tau_syn[0] * 1e-3 == 5e-6  # exact in the importer's units
    np.testing.assert_allclose(lif.tau_mem, np.full(12, 10e-3))
    assert (lif.r == 1).all() and (lif.w_in == 1).all() and (li.r == 1).all()
    assert (lif.v_leak[0], lif.v_reset[0], lif.v_threshold[0]) == (0.1, -0.05, 0.4)
    assert type(graph.nodes["0"]) is nir.Linear and np.array_equal(graph.nodes["0"].weight, net[0].weight.detach())
    x = _x(scale=2.0)
    for back in (from_nir(graph), from_nir(graph, convention="hxtorch")):
        s, s_ref = back[:2](x), net[:2](x)
        assert torch.equal(s, s_ref) and 0 < s_ref.sum() < s_ref.numel()
        assert torch.equal(back(x), net(x))
    # through a file too
    assert torch.equal(from_nir(nir.read(_roundtrip_file(graph)))(x), net(x))


def _roundtrip_file(graph):
    import tempfile
    path = tempfile.mktemp(suffix=".nir")
    nir.write(path, graph)
    return path


def test_hxtorch_graph_read_as_nir_is_another_network():
    # the graph is hxtorch's dialect (ms, the one-step delay inside CubaLIF): its metadata marker is
    # what makes from_nir read it so; NIR's reading (seconds, same-step current) gives other spikes
    net, x = _hx_net(), _x(scale=2.0)
    graph = to_nir(net, dt=1e-6, target="hxtorch")
    plain = from_nir(graph, dt=1e-6, use_metadata=False)
    assert type(plain[1]).__name__ == "NIRCubaLIF"
    assert not torch.equal(plain[:2](x), net[:2](x))


def test_hxtorch_capacitance_scale_round_trips_as_r():
    # hxtorch's graph with r = tau_mem / c_mem = 2.5 imports as Scale(2.5) -> neuron and exports back to r
    lif = nir.CubaLIF(tau_mem=np.array(4 * [8e-3]), tau_syn=np.array(4 * [4e-3]), r=np.array(4 * [2.5]),
                      v_leak=np.array(4 * [0.1]), v_reset=np.array(4 * [-0.1]), v_threshold=np.array(4 * [0.9]))
    g = nir.NIRGraph({"s_0_0": nir.Input(input_type=np.array([4])), "0": nir.Linear(weight=np.eye(4)), "1": lif,
                      "t_1": nir.Output(output_type=np.array([4]))}, [("s_0_0", "0"), ("0", "1"), ("1", "t_1")])
    m = from_nir(g, convention="hxtorch")
    g2 = to_nir(m, dt=1e-6, target="hxtorch")
    _check_hxtorch_graph(g2)
    out = [n for n in g2.nodes.values() if isinstance(n, nir.CubaLIF)]
    assert len(out) == 1 and (out[0].r == 2.5).all() and not any(isinstance(n, nir.Scale) for n in g2.nodes.values())
    x = _x(T=60, scale=0.6)
    assert torch.equal(from_nir(g2)(x), m(x)) and m(x).sum() > 0


@pytest.mark.parametrize("model, match", [
    (lambda: nn.Sequential(layers.Dense(2, 3, bias=False), CubaLIF()), r"refractory_time = 1e-6 s.*CubaLIF does not"),
    (lambda: EventPropLIF(2, 3), r"EventPropLIF does not have"),
    (lambda: nn.Sequential(layers.Dense(2, 3, bias=False), CubaRefractoryLIF(refractory_time=2e-6)),
     r"refractory_time must be 1e-06 s.*got 2e-06"),
    (lambda: nn.Sequential(layers.Dense(2, 3, bias=False), HxtorchLI(tau_mem=20e-6)),
     r"tau_mem must be 1e-05 s.*hxtorch bug"),
    (lambda: nn.Sequential(layers.Dense(2, 3, bias=False), CubaRefractoryLIF(threshold=torch.tensor([1.0, 2, 3]))),
     r"threshold must be the same for every neuron"),
    (lambda: nn.Sequential(layers.Dense(2, 3, bias=False), CubaRefractoryLIF(dt=2e-6)), r"dt=2e-06 but.*dt=1e-06"),
])
def test_hxtorch_refuses_modules_it_would_run_otherwise(model, match):
    with pytest.raises(NIRConversionError, match=r"target='hxtorch': model\[.*\] cannot run in hxtorch.*" + match):
        to_nir(model(), dt=1e-6, target="hxtorch")


def test_hxtorch_refuses_graphs_its_importer_cannot_run():
    lif = CubaRefractoryLIF(threshold=0.4)
    dense = layers.Dense(2, 3)
    with torch.no_grad():
        dense.bias.fill_(0.5)
    with pytest.raises(NIRConversionError, match=r"graph node '0' \(nir.Affine\).*Synapse has no bias"):
        to_nir(nn.Sequential(dense, lif), dt=1e-6, target="hxtorch")
    with torch.no_grad():
        dense.bias.zero_()  # a zero bias is a Linear
    assert type(to_nir(nn.Sequential(dense, lif), dt=1e-6, target="hxtorch").nodes["0"]) is nir.Linear
    with pytest.raises(NIRConversionError, match=r"graph node '1' \(nir.LIF\).*maps Input, Linear, CubaLI and CubaLIF"):
        to_nir(nn.Sequential(layers.Dense(2, 3, bias=False), LIF(tau=2.0)), dt=1e-6, target="hxtorch")
    with pytest.raises(NIRConversionError, match=r"same-step CUBA node in seconds"):
        to_nir(nn.Sequential(layers.Dense(2, 3, bias=False), NIRCubaLIF(*(np.full(3, v) for v in (2e-6, 2e-6, 1.0, 0.0, 1.0, 0.0, 1.0)),
                                                                dt=1e-6)),
               dt=1e-6, target="hxtorch")
    with pytest.raises(NIRConversionError, match=r"alternate Synapse \(Linear\) and neuron"):
        to_nir(nn.Sequential(layers.Dense(2, 3, bias=False), layers.Dense(3, 3, bias=False), lif), dt=1e-6,
               target="hxtorch")
    with pytest.raises(NIRConversionError, match=r"alternate Synapse"):
        to_nir(lif, dt=1e-6, input_shape=(3,), target="hxtorch")


def test_hxtorch_dt_other_than_its_importers_warns_and_reads_back():
    net = _hx_net(dt=2e-6, tau_mem=20e-6, tau_syn=10e-6)
    net[3] = HxtorchLI(tau_syn=10e-6, tau_mem=10e-6, dt=2e-6)
    with pytest.warns(UserWarning, match=r"dt=2e-06 s, but hxtorch's NIR importer assumes dt=1e-06 s.*"
                                         r"ConversionConfig\(dt=2e-06\)"):
        graph = to_nir(net, dt=2e-6, target="hxtorch")
    x = _x(scale=2.0)
    with pytest.warns(UserWarning, match="written for dt=1e-06"):
        back = from_nir(graph, dt=2e-6)
    assert torch.equal(back(x), net(x))


# ------------------------------------------------------------------------------------ lava-dl
def _lava_net(seed=0):
    torch.manual_seed(seed)
    d1 = layers.Dense(4, 8, bias=False, weight_hook="8bit")
    d2 = layers.Dense(8, 3, bias=False, weight_hook="8bit")
    with torch.no_grad():
        d1.weight.mul_(4.0)
        d2.weight.mul_(3.0)
    n1 = loihi_cuba.Neuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03125, requires_grad=False)
    n2 = loihi_cuba.Neuron(threshold=0.5, current_decay=1.0, voltage_decay=0.125, requires_grad=False)
    return nn.Sequential(d1, n1, d2, n2)


def _netx_cuba(neuron, n):
    """read_neuron's CubaLIF for a netx CUBA layer (lava-dl commit 87e6dfb)."""
    dp = neuron.device_params
    tau_syn, tau_mem = 1.0 / float(dp["iDecay"]), 1.0 / float(dp["vDecay"])
    return dict(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.ones(n), v_leak=np.zeros(n),
                v_threshold=np.full(n, float(dp["vThMant"])), w_in=np.full(n, tau_syn))


def test_lava_dl_export_is_netx_graph_and_reads_back_bit_for_bit():
    net = _lava_net()
    with pytest.warns(UserWarning, match=r"no lava-dl release imports NIR.*copies no weights"):
        graph = to_nir(net, dt=1.0, target="lava-dl")
    assert graph.metadata["spikefuse"]["convention"] == "lava-dl"
    kinds = [type(graph.nodes[b]).__name__ for _, b in graph.edges]
    assert kinds == ["Linear", "CubaLIF", "Linear", "CubaLIF", "Output"]  # each Linear followed by a CubaLIF
    for lin, neu, n in (("0", net[1], 8), ("2", net[3], 3)):
        dense = net[int(lin)]
        w = np.rint(neu.quantize_8bit(dense.weight.detach(), descale=True).numpy())  # the HDF5 mantissas
        assert np.array_equal(graph.nodes[lin].weight, w)
        node = graph.nodes[str(int(lin) + 1)]
        for k, v in _netx_cuba(neu, n).items():
            assert np.array_equal(getattr(node, k), v), k
    x = (torch.rand(60, 3, 4, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    s_ref = net(x)
    for back in (from_nir(graph), from_nir(graph, convention="lava-dl")):
        s = back(x)
        assert torch.equal(s, s_ref) and 0 < s_ref.sum() < s_ref.numel()
        assert torch.equal(back[:2](x), net[:2](x))


def test_lava_dl_refusals_and_dt():
    net = _lava_net()
    plain = nn.Sequential(layers.Dense(4, 8, bias=False), net[1])
    with pytest.raises(NIRConversionError, match=r"graph node '0' \(nir.Linear\).*weight x 64 must be integers"):
        to_nir(plain, dt=1.0, target="lava-dl")
    with pytest.raises(NIRConversionError, match=r"every Linear/Affine followed by a CubaLIF"):
        to_nir(nn.Sequential(net[0], net[2]), dt=1.0, target="lava-dl")
    with pytest.raises(NIRConversionError, match=r"only after its Linear/Affine"):
        to_nir(net[1], dt=1.0, input_shape=(8,), target="lava-dl")
    with pytest.raises(NIRConversionError, match=r"graph node .2. \(nir.LIF\).*netx dense CUBA layers"):
        to_nir(nn.Sequential(net[0], net[1], LIF(tau=2.0)), dt=1.0, target="lava-dl")
    wide = loihi_cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.5, scale=128, requires_grad=False)
    with pytest.raises(NIRConversionError, match=r"w_scale must be 64"):
        to_nir(nn.Sequential(net[0], wide), dt=1.0, target="lava-dl")
    with pytest.warns(UserWarning, match=r"lava-dl's NIR importer assumes dt=1 steps.*convention='lava-dl', "
                                         r"dt=0.001\)"):
        with pytest.warns(UserWarning, match="no lava-dl release imports NIR"):
            graph = to_nir(net, dt=1e-3, target="lava-dl")
    x = (torch.rand(30, 2, 4, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    with pytest.warns(UserWarning, match="written for dt=1"):
        assert torch.equal(from_nir(graph, dt=1e-3)(x), net(x))


def test_target_names_both_kinds():
    net = nn.Sequential(layers.Dense(3, 4), LIF(tau=2.0))
    with pytest.raises(ValueError, match=r"\['hxtorch', 'lava-dl'\] \(hardware systems\), got 'loihi'.*without a NIR "
                                         r"importer"):
        to_nir(net, dt=1e-3, target="loihi")


def test_scalar_scale_exports_per_feature():
    # a scalar Scale (how convention="hxtorch" reads r != 1) is written per feature, so that nir's
    # type inference of the graph works (it failed with a 0-d scale before)
    from spikefuse.interop.nir import Scale

    net = nn.Sequential(layers.Dense(2, 3), Scale(2.5))
    graph = to_nir(net, dt=1e-3)
    assert np.array_equal(graph.nodes["1"].scale, np.full(3, 2.5, np.float32))
    x = _x(T=5, n=2)
    assert torch.equal(from_nir(graph, dt=1e-3)(x), net(x))
