"""from_nir(convention=...) on hand-written graphs in each peer's documented convention (no peer
needed; tests/interop/test_nir_peers.py runs the same against the installed peers), the CUBA
discretisation (current first; hxtorch's one-step synaptic delay as a Delay node) and
to_nir(target=...)'s refusals. Expected values are derived by hand from the peers' equations."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikefuse import families, layers  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, from_nir, to_nir  # noqa: E402
from spikefuse.neuron.lif import IF, LIF  # noqa: E402

F = np.float32


def _seq(*values):
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1)


def _lif(tau, r, thr, v_leak=0.0, v_reset=0.0):
    return nir.LIF(tau=np.array([tau], F), r=np.array([r], F), v_leak=np.array([v_leak], F),
                   v_threshold=np.array([thr], F), v_reset=np.array([v_reset], F))


def _cuba(tau_syn, tau_mem, r, w_in, thr, v_leak=0.0):
    return nir.CubaLIF(tau_syn=np.array([tau_syn], F), tau_mem=np.array([tau_mem], F), r=np.array([r], F),
                       w_in=np.array([w_in], F), v_leak=np.array([v_leak], F), v_threshold=np.array([thr], F),
                       v_reset=np.zeros(1, F))


def _run(node, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = from_nir(nir.NIRGraph.from_list(node), **kw)
    return m(x).flatten().tolist()


# ------------------------------------------------------------------------------------ snnTorch
def test_snntorch_convention_hand_vector():
    """snnTorch writes a Leaky(beta = 0.8) as LIF(tau = dt/(1 - beta) = 5e-4, r = tau/dt = 5) at its
    fixed dt = 1e-4: mem = 0.8 mem + x, spike on mem > 0.5 (strict), reset to zero.
    x = 0.3, 0.3, 0.3, 0.5: mem = 0.3, 0.54 -> 0, 0.3, 0.74 -> 0; and mem == 0.5 exactly: no spike."""
    node = _lif(5e-4, 5.0, 0.5)
    assert _run(node, _seq(0.3, 0.3, 0.3, 0.5), convention="snntorch") == [0, 1, 0, 1]
    assert _run(node, _seq(0.5, 0.0), convention="snntorch") == [0, 0]        # at threshold: > is strict
    m = from_nir(nir.NIRGraph.from_list(node), convention="snntorch")
    assert all(getattr(c, "dt", 1e-4) == 1e-4 for c in m)                       # snnTorch's dt by default


def test_snntorch_convention_synaptic_hand_vector():
    """Synaptic(alpha = 0.5, beta = 0.75): CubaLIF(tau_syn = 2e-4, tau_mem = 4e-4, r = 4, w_in = 2):
    syn = 0.5 syn + x, mem = 0.75 mem + syn (same step), x = 0.25, 0, 0: syn = 0.25, 0.125, 0.0625,
    mem = 0.25, 0.3125, 0.296875; threshold 0.3: one spike at step 1."""
    assert _run(_cuba(2e-4, 4e-4, 4.0, 2.0, 0.3), _seq(0.25, 0.0, 0.0), convention="snntorch") == [0, 1, 0]


def test_peer_dt_other_than_the_conventions_warns():
    with pytest.warns(UserWarning, match=r"convention='snntorch' graphs are written for dt=0.0001.*dt=0.001"):
        from_nir(nir.NIRGraph.from_list(_lif(5e-3, 5.0, 0.5)), 1e-3, convention="snntorch")


# ------------------------------------------------------------------------------------ SpikingJelly
def test_spikingjelly_convention_thresholds_are_inclusive():
    """LIF(tau = 2 dt, r = 1, v_leak = v_reset = 0) at SpikingJelly's dt: its LIFNode(tau = 2),
    H = V + (X - V)/2; x = 1 gives H = 0.5 = v_threshold: a spike (>=), none in NIR's reading (>)."""
    node = _lif(2e-4, 1.0, 0.5)
    assert _run(node, _seq(1.0, 0.0), convention="spikingjelly") == [1, 0]
    assert _run(node, _seq(1.0, 0.0), dt=1e-4, convention="nir") == [0, 0]
    m = from_nir(nir.NIRGraph.from_list(node), convention="spikingjelly")
    assert isinstance(m[0], LIF) and m[0].tau == pytest.approx(2.0)
    assert isinstance(from_nir(nir.NIRGraph.from_list(nir.IF(r=np.array([1e4], F), v_threshold=np.ones(1, F),
                                                             v_reset=np.zeros(1, F))),
                               convention="spikingjelly")[0], IF)


def test_spikingjelly_convention_cuba_hand_vector():
    """CUBALIFNode(c_decay = 0.5, v_decay = 0.75): c = 0.5 c + x, v = 0.75 v + c; x = 0.25 gives
    c = v = 0.25 = v_threshold: a spike with >=, not with NIR's >."""
    node = _cuba(2e-4, 4e-4, 4.0, 2.0, 0.25)
    assert _run(node, _seq(0.25, 0.0), convention="spikingjelly") == [1, 0]
    assert _run(node, _seq(0.25, 0.0), dt=1e-4) == [0, 1]     # NIR: 0.25 is not > 0.25; v = 0.3125 next


# ------------------------------------------------------------------------------------ norse
def test_norse_convention_cuba_hand_vector():
    """norse writes a LIFCell(tau_syn_inv = 200, tau_mem_inv = 100) at dt = 1e-3 as CubaLIF(tau_syn =
    dt/200 = 5e-6, tau_mem = 1e-5, r = w_in = 1); it runs i = i + x, v += 0.1 (v_leak - v + i),
    i *= 0.8. x = 5, 0, 0, 0 with v_th = 1 (norse's docstring example): v = 0.5, 0.85, 1.085 -> 0, 0.256."""
    node = _cuba(5e-6, 1e-5, 1.0, 1.0, 1.0)
    x = _seq(5.0, 0.0, 0.0, 0.0)
    assert _run(node, x, convention="norse") == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="dt <= tau_syn"):     # NIR's reading of the written tau at norse's dt
        _run(node, x, dt=1e-3)


def test_norse_convention_lif_and_if():
    """LIFBoxCell(tau_mem_inv = 100) written as LIF(tau = 1e-5): v += 0.1 (x - v), x = 1: v = 0.1,
    0.19, 0.271 > 0.25 -> spike; IAFCell written as IF(r = 1): v += x, 0.2, 0.4 > 0.3 -> spike."""
    assert _run(_lif(1e-5, 1.0, 0.25), _seq(1.0, 1.0, 1.0), convention="norse") == [0, 0, 1]
    node = nir.IF(r=np.ones(1, F), v_threshold=np.array([0.3], F), v_reset=np.zeros(1, F))
    assert _run(node, _seq(0.2, 0.2), convention="norse") == [0, 1]


# ------------------------------------------------------------------------------------ sinabs
def test_sinabs_convention_needs_the_sinabs_family():
    node = _lif(10.0, 1.0, 1.0)
    if "sinabs.lif" not in families.FAMILIES:
        with pytest.raises(NIRConversionError, match="'sinabs.lif' family, which this version"):
            from_nir(nir.NIRGraph.from_list(node), convention="sinabs")
        return
    # sinabs LIF(tau_mem = 2 steps), normalised input: v = a v + (1 - a) x, a = exp(-1/2); multi-spikes
    a = float(np.exp(np.float32(-0.5)))
    x = _seq(4.0, 0.0)
    v0 = (1 - a) * 4.0
    out = _run(_lif(2.0, 1.0, 0.5), x, convention="sinabs")
    assert out[0] == float(int(v0 / 0.5))
    with pytest.raises(NIRConversionError, match="convention='sinabs'"):
        from_nir(nir.NIRGraph.from_list(nir.LI(tau=np.ones(1, F) * 2, r=np.ones(1, F), v_leak=np.zeros(1, F))),
                 convention="sinabs")


# ------------------------------------------------------------------------------------ choosing
def test_convention_defaults_and_errors():
    net = nn.Sequential(layers.Dense(2, 2), LIF(tau=2.0))
    g = to_nir(net, dt=1e-3)
    x = torch.rand(5, 1, 2)
    assert isinstance(from_nir(g, dt=1e-3)[1], LIF)                                   # spikefuse metadata
    assert type(from_nir(g, dt=1e-3, convention="nir")[1]).__name__ == "NIRLIF"       # metadata ignored
    assert torch.equal(from_nir(g, dt=1e-3, convention="spikefuse")(x), net(x))
    with pytest.raises(TypeError, match="dt"):
        from_nir(g)                                                                   # nir/spikefuse need dt
    with pytest.raises(ValueError, match=r"convention: expected None or one of \['hxtorch', 'lava-dl', 'nir', "
                                         r"'norse', 'sinabs', 'snntorch', 'spikefuse', 'spikingjelly'\], got 'lava'"):
        from_nir(g, dt=1e-3, convention="lava")
    with pytest.raises(TypeError, match="convention"):
        from_nir(g, dt=1e-3, convention=1)


# ------------------------------------------------------------------------------------ CUBA and Delay
def _hx(dt=1e-6):
    from spikefuse.neuron.cuba import CubaLIF
    torch.manual_seed(0)
    return nn.Sequential(layers.Dense(3, 4), CubaLIF(threshold=0.3, tau_syn=3 * dt, tau_mem=5 * dt, dt=dt))


def test_hxtorch_cuba_exports_its_synaptic_delay_as_a_delay_node():
    """hxtorch's voltage uses the previous step's current: NIR's same-step CubaLIF behind a
    one-step Delay. Without metadata (any other tool's reading) the graph gives hxtorch's numbers."""
    net = _hx()
    g = to_nir(net, dt=1e-6)
    assert isinstance(g.nodes["1.delay"], nir.Delay) and np.allclose(g.nodes["1.delay"].delay, 1e-6)
    assert ("0", "1.delay") in g.edges and ("1.delay", "1") in g.edges
    x = torch.rand(40, 2, 3) * 3
    y = net(x)
    assert y.sum() > 5
    plain = from_nir(g, dt=1e-6, use_metadata=False)
    assert [type(m).__name__ for m in plain] == ["Dense", "Delay", "NIRCubaLIF"]
    assert torch.equal(plain(x), y)
    back = from_nir(g, dt=1e-6)
    assert type(back[1]).__name__ == "CubaLIF" and len(back) == 2 and torch.equal(back(x), y)


def test_first_format_cuba_files_still_restore_and_a_removed_delay_is_not_guessed():
    """Files written before the Delay node (a lone CubaLIF with spikefuse metadata) meant hxtorch's
    step and are restored as it; a current graph whose Delay was removed is read as NIR's step."""
    net = _hx()
    g = to_nir(net, dt=1e-6)
    nodes = {k: v for k, v in g.nodes.items() if k != "1.delay"}
    edges = [e for e in g.edges if "1.delay" not in e] + [("0", "1")]
    cut = nir.NIRGraph(nodes=nodes, edges=edges)
    assert type(from_nir(cut, dt=1e-6)[1]).__name__ == "NIRCubaLIF"
    del nodes["1"].metadata["spikefuse"]["synaptic_delay"]
    old = nir.NIRGraph(nodes=nodes, edges=edges)
    x = torch.rand(20, 2, 3) * 3
    assert torch.equal(from_nir(old, dt=1e-6)(x), net(x))


# ------------------------------------------------------------------------------------ export targets
@pytest.mark.parametrize("model, target, match", [
    (lambda: _hx(1e-4), "snntorch", r"delay'.*no Delay node.*one-step synaptic delay"),
    (lambda: nn.Sequential(layers.Dense(2, 2), IF()), "snntorch", r"IF.*beta = 0.9"),
    (lambda: nn.Sequential(layers.Dense(2, 2), LIF(v_reset=0.1)), "norse", r"v_reset must be 0"),
    (lambda: nn.Sequential(layers.Dense(2, 2), LIF()), "sinabs", r"multiple spikes per step"),
    (lambda: nn.Sequential(layers.Dense(2, 2), layers.LeakyIntegrator(2.0)), "snntorch", r"no nir.LI"),
    (lambda: nn.Sequential(layers.Dense(2, 2), LIF(decay_input=False, tau=3.0, v_reset=0.2)), "snntorch",
     r"v_leak must be 0"),
])
def test_target_refuses_what_the_peer_cannot_run(model, target, match):
    from spikefuse.interop.nir._targets import PEER_IMPORT_DT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NIRConversionError, match=rf"target='{target}': graph node '1.*{match}"):
            to_nir(model(), dt=PEER_IMPORT_DT[target] if target != "sinabs" else 1.0, target=target)


# ------------------------------------------------------------------------------------ peer families -> NIR
def _snn_family():
    return pytest.importorskip("spikefuse.neuron.snntorch", reason="spikefuse's snnTorch families are not in this version")


def _norse_family():
    return pytest.importorskip("spikefuse.neuron.norse", reason="spikefuse's norse families are not in this version")


def _round_trip(net, dt, x):
    g = to_nir(net, dt=dt)
    back = from_nir(g, dt=dt)
    plain = from_nir(g, dt=dt, use_metadata=False)
    layers.reset_states(net)
    y = net(x)
    return g, y, back, plain


def test_snntorch_leaky_and_synaptic_export_and_round_trip():
    """Leaky(beta) -> LIF(tau = dt/(1 - beta), r = tau/dt) and Synaptic(alpha, beta) -> CubaLIF(
    tau_syn = dt/(1 - alpha), w_in = tau_syn/dt, ...), snnTorch's own mapping; back exactly, and
    NIR's reading gives the same spikes."""
    snn = _snn_family()
    torch.manual_seed(0)
    x = torch.rand(30, 2, 3) * 1.5
    for neuron in (snn.Leaky(beta=0.8, threshold=0.5, reset_mechanism="zero", reset_delay=False),
                   snn.Synaptic(alpha=0.6, beta=0.8, threshold=0.5, reset_mechanism="zero", reset_delay=False)):
        net = nn.Sequential(layers.Dense(3, 4), neuron)
        g, y, back, plain = _round_trip(net, 1e-4, x)
        node = g.nodes["1"]
        tau = node.tau if isinstance(node, nir.LIF) else node.tau_mem
        np.testing.assert_allclose(tau, 1e-4 / (1 - 0.8), rtol=1e-6)
        assert type(back[1]) is type(neuron) and y.sum() > 5
        assert torch.equal(back(x), y) and torch.equal(plain(x), y)


def test_snntorch_subtractive_reset_needs_lossy():
    snn = _snn_family()
    net = nn.Sequential(layers.Dense(3, 4), snn.Leaky(beta=0.8))
    with pytest.raises(NIRConversionError, match=r"model\['1'\]: snnTorch Leaky with reset_mechanism='subtract'"):
        to_nir(net, dt=1e-4)
    with pytest.warns(UserWarning, match="reset to zero at once"):
        to_nir(net, dt=1e-4, lossy=True)
    syn = nn.Sequential(layers.Dense(3, 4), snn.Synaptic(alpha=0.5, beta=0.5, reset_mechanism="zero"))
    with pytest.raises(NIRConversionError, match="reset_delay=True"):
        to_nir(syn, dt=1e-4)


def test_norse_lif_export_and_round_trip():
    """norse's feed-forward LIF -> CubaLIF(tau = 1/tau_inv, r = 1, w_in = tau_syn/dt): the same-step
    CUBA; back exactly, and NIR's reading gives the same spikes."""
    nf = _norse_family()
    from spikefuse.functional.norse import NorseLIFParams
    torch.manual_seed(0)
    x = torch.rand(30, 2, 3) * 3
    net = nn.Sequential(layers.Dense(3, 4), nf.NorseLIF(NorseLIFParams(v_th=0.3), return_state=False))
    g, y, back, plain = _round_trip(net, 1e-3, x)
    np.testing.assert_allclose(g.nodes["1"].tau_syn, 5e-3, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["1"].w_in, 5.0, rtol=1e-6)
    assert type(back[1]) is nf.NorseLIF and y.sum() > 5
    assert torch.equal(back(x), y)
    assert torch.equal(plain(x), y)
