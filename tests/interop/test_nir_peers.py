"""NIR graphs that move between spikefuse and the installed peers (snnTorch, norse, SpikingJelly,
sinabs): a graph a peer exports runs in spikefuse (``from_nir(convention=peer)``) with the numbers
of the peer's own simulation, and a graph spikefuse exports runs in the peer's importer with
spikefuse's numbers. Each test is skipped, with the reason, when its peer is not installed; the
hand-written-graph tests of the same conventions (test_nir_conventions.py) run without peers.

Where a peer's exporter loses something (a reset rule, a time constant) the test states the
peer-side difference instead of hiding it: docs/nir.md's matrix is built from these tests.
"""
import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikefuse import layers  # noqa: E402
from spikefuse.interop.nir import from_nir, to_nir  # noqa: E402
from spikefuse.neuron.lif import IF, LIF  # noqa: E402

T, B, N_IN, N = 60, 4, 6, 16
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _x(seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, N_IN, generator=g) * scale


def _linear(seed=1):
    torch.manual_seed(seed)
    return nn.Linear(N_IN, N)


def _loop(step, x):
    """Run a peer's single-step module over a time-first sequence (the loop its docs write)."""
    with torch.no_grad():
        return torch.stack([step(x[t]) for t in range(x.shape[0])])


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _fresh(m, x):
    """Run ``m`` from its initial state: the peer families keep their state between calls, as
    the peers do (snnTorch's init_hidden, norse's and sinabs' modules); reset_states clears it."""
    layers.reset_states(m)
    return m(x)


def _assert_spikes(ours, theirs, min_spikes=20):
    assert theirs.sum() > min_spikes and theirs.sum() < theirs.numel() - min_spikes
    assert torch.equal(ours.to(theirs.dtype), theirs), f"{int((ours != theirs).sum())} of {theirs.numel()} differ"


# ------------------------------------------------------------------------------------ snnTorch
def _snn_export(net, x):
    from snntorch.export_nir import export_to_nir
    # snnTorch 1.0's own example (sample data with the batch dim) fails its own type inference:
    # ignore_dims=[0] drops the batch dim from the input node
    return export_to_nir(net, x[0, :1], ignore_dims=[0])


def _snn_reset(net):
    import snntorch as snn
    for m in net.modules():
        if isinstance(m, snn.SpikingNeuron):
            m.reset_hidden() if hasattr(m, "reset_hidden") else None
            m.mem = torch.zeros(0)
            if hasattr(m, "syn"):
                m.syn = torch.zeros(0)


def _snn_seq(net, x):
    _snn_reset(net)
    with torch.no_grad():
        out = []
        for t in range(x.shape[0]):
            o = net(x[t])
            out.append(o[0] if isinstance(o, tuple) else o)
        return torch.stack(out)


def _snn_neuron(kind, **kw):
    snn = pytest.importorskip("snntorch")
    full = lambda v: torch.full((N,), v)  # noqa: E731 - per-neuron values: scalars fail snnTorch's export
    if kind == "leaky":
        return snn.Leaky(beta=full(0.8), threshold=full(0.5), init_hidden=True, **kw)
    return snn.Synaptic(alpha=full(0.7), beta=full(0.8), threshold=full(0.5), init_hidden=True, **kw)


@pytest.mark.parametrize("kind", ["leaky", "synaptic"])
def test_snntorch_export_runs_in_spikefuse_as_in_snntorch(kind):
    """snnTorch Leaky / Synaptic (reset to zero, no reset delay: what its NIR graph says) ->
    from_nir(convention="snntorch") gives snnTorch's spikes, bit for bit, and so does snnTorch's
    own import_from_nir of the same graph."""
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir
    net = nn.Sequential(_linear(), _snn_neuron(kind, reset_mechanism="zero", reset_delay=False))
    x = _x(scale=1.5)
    s_peer = _snn_seq(net, x)
    g = _snn_export(net, x)
    ours = from_nir(g, convention="snntorch")
    _assert_spikes(_fresh(ours, x), s_peer)
    back = _quiet(import_from_nir, g)
    _assert_spikes(_fresh(ours, x), _snn_seq(back, x))


def test_snntorch_export_loses_the_reset_mechanism():
    """Peer-side loss: snnTorch writes every Leaky as a NIR LIF with v_reset = 0 (a reset to zero),
    whatever its reset_mechanism; a default Leaky (subtract) therefore differs from its own graph,
    and spikefuse runs the graph (as snnTorch's importer does), not the lost rule."""
    net = nn.Sequential(_linear(), _snn_neuron("leaky"))     # snnTorch default: reset by subtraction
    x = _x(scale=1.5)
    s_subtract = _snn_seq(net, x)
    g = _snn_export(net, x)
    np.testing.assert_array_equal(g.nodes["1"].v_reset, 0.0)
    net_zero = nn.Sequential(net[0], _snn_neuron("leaky", reset_mechanism="zero", reset_delay=False))
    s_zero = _snn_seq(net_zero, x)
    ours = _fresh(from_nir(g, convention="snntorch"), x)
    _assert_spikes(ours, s_zero)
    assert not torch.equal(ours, s_subtract)


# ------------------------------------------------------------------------------------ norse
def _norse_cell(kind):
    norse = pytest.importorskip("norse.torch")
    if kind == "lif":
        return norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.full((N,), 200.0), tau_mem_inv=torch.full((N,), 100.0),
                                                 v_th=torch.full((N,), 0.3), v_leak=torch.zeros(N)))
    if kind == "lifbox":
        return norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.full((N,), 100.0), v_th=torch.full((N,), 0.3),
                                                       v_leak=torch.zeros(N)))
    return norse.IAFCell(norse.IAFParameters(v_th=torch.full((N,), 0.3)))


def _norse_seq(net, x):
    with torch.no_grad():
        s, out = None, []
        for t in range(x.shape[0]):
            o, s = net(x[t], s)
            out.append(o)
        return torch.stack(out)


def _norse_export(net, x):
    from norse.torch.utils.export_nir import to_nir as norse_to_nir
    return _quiet(norse_to_nir, net, x[0])


@pytest.mark.parametrize("kind", ["lif", "lifbox", "iaf"])
def test_norse_export_runs_in_spikefuse_as_in_norse(kind):
    """norse LIFCell (CubaLIF), LIFBoxCell (LIF), IAFCell (IF) -> from_nir(convention="norse")
    gives norse's spikes, bit for bit (the exported time constants are dt * tau: read back as
    tau; the LIFCell's input jumps into the current unscaled; IAF adds r x per step)."""
    norse = pytest.importorskip("norse.torch")
    net = norse.SequentialState(_linear(), _norse_cell(kind))
    x = _x(scale=0.5)
    s_peer = _norse_seq(net, x)
    ours = from_nir(_norse_export(net, x), convention="norse")
    _assert_spikes(_fresh(ours, x), s_peer)


def test_norse_own_round_trip_of_iaf_is_exact():
    norse = pytest.importorskip("norse.torch")
    from norse.torch.utils.import_nir import from_nir as norse_from_nir
    net = norse.SequentialState(_linear(), _norse_cell("iaf"))
    x = _x(scale=0.5)
    _assert_spikes(_norse_seq(_quiet(norse_from_nir, _norse_export(net, x)), x), _norse_seq(net, x))


@pytest.mark.parametrize("kind", ["lif", "lifbox"])
def test_norse_own_round_trip_is_broken_peer_side(kind):
    """Peer-side bug (norse 1.1.0): to_nir writes tau = dt / tau_inv (= dt * tau, 1e-5 s for
    tau = 10 ms at dt = 1 ms) and its from_nir reads tau_inv = 1 / tau, so norse's own round trip
    runs decays 1/dt^2 too fast and gives other spikes; spikefuse's norse reading does not."""
    norse = pytest.importorskip("norse.torch")
    from norse.torch.utils.import_nir import from_nir as norse_from_nir
    net = norse.SequentialState(_linear(), _norse_cell(kind))
    x = _x(scale=0.5)
    s_peer = _norse_seq(net, x)
    g = _norse_export(net, x)
    key = "tau_mem" if kind == "lif" else "tau"
    np.testing.assert_allclose(getattr(g.nodes["1"], key), 1e-3 * 1e-2, rtol=1e-5)   # dt * tau
    logging.disable(logging.WARNING)
    try:
        back = norse_from_nir(g)
    finally:
        logging.disable(logging.NOTSET)
    assert not torch.equal(_norse_seq(back, x), s_peer)
    _assert_spikes(_fresh(from_nir(g, convention="norse"), x), s_peer)


# ------------------------------------------------------------------------------------ SpikingJelly
def _sj():
    pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    from spikingjelly.activation_based import functional, layer, neuron
    return functional, layer, neuron


def _sj_neuron(kind):
    _, _, neuron = _sj()
    if kind == "lif":
        return neuron.LIFNode(tau=2.0, v_threshold=0.5, v_reset=0.0)
    if kind == "lif_no_decay_input":
        return neuron.LIFNode(tau=3.0, decay_input=False, v_threshold=0.5, v_reset=0.1)
    if kind == "if":
        return neuron.IFNode(v_threshold=0.8, v_reset=0.0)
    return neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75, v_threshold=0.5, v_reset=0.0)


def _sj_seq(net, x):
    functional, _, _ = _sj()
    functional.reset_net(net)
    with torch.no_grad():
        return torch.stack([net(x[t]) for t in range(x.shape[0])])


def _sj_import_seq(gm, x):
    with torch.no_grad():
        state, out = None, []
        for t in range(x.shape[0]):
            o, state = gm(x[t], state)
            out.append(o)
        return torch.stack(out)


@pytest.mark.parametrize("kind", ["lif", "lif_no_decay_input", "if", "cuba"])
def test_spikingjelly_export_runs_in_spikefuse_as_in_spikingjelly(kind):
    """SpikingJelly LIFNode / IFNode / CUBALIFNode -> from_nir(convention="spikingjelly") gives
    SpikingJelly's spikes bit for bit (>= thresholds; CUBALIFNode: the voltage uses the current of
    the same step), as does SpikingJelly's own import_from_nir."""
    _, layer, _ = _sj()
    from spikingjelly.activation_based.nir_exchange import export_to_nir, import_from_nir
    torch.manual_seed(1)
    net = nn.Sequential(layer.Linear(N_IN, N), _sj_neuron(kind))
    x = _x(scale=1.5)
    s_peer = _sj_seq(net, x)
    g = _quiet(export_to_nir, net, x[0])
    ours = from_nir(g, convention="spikingjelly")
    _assert_spikes(_fresh(ours, x), s_peer)
    _assert_spikes(_sj_import_seq(_quiet(import_from_nir, g), x), s_peer)


@pytest.mark.parametrize("kind", ["lif", "if"])
def test_spikefuse_export_runs_in_spikingjelly(kind):
    """spikefuse LIF / IF exported at SpikingJelly's dt run in its import_from_nir with spikefuse's spikes."""
    _sj()
    from spikingjelly.activation_based.nir_exchange import import_from_nir
    torch.manual_seed(2)
    neuron = LIF(tau=2.0, v_threshold=0.5) if kind == "lif" else IF(v_threshold=0.8)
    net = nn.Sequential(layers.Dense(N_IN, N), neuron)
    x = _x(scale=1.5)
    g = to_nir(net, dt=1e-4, target="spikingjelly")
    _assert_spikes(_sj_import_seq(_quiet(import_from_nir, g, dt=1e-4), x), net(x))


# ------------------------------------------------------------------------------------ spikefuse -> peers
def test_spikefuse_export_runs_in_snntorch():
    """spikefuse LIF (SpikingJelly family, reset to 0) exported with target="snntorch" (dt = 1e-4,
    snnTorch's fixed dt) runs in snnTorch's import_from_nir with spikefuse's spikes: snnTorch folds
    r dt / tau = 1/tau into the threshold, the same neuron scaled by tau."""
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir
    torch.manual_seed(3)
    net = nn.Sequential(layers.Dense(N_IN, N), LIF(tau=2.0, v_threshold=0.5))
    x = _x(scale=1.5)
    g = to_nir(net, dt=1e-4, target="snntorch")
    back = _quiet(import_from_nir, g)
    _assert_spikes(_snn_seq(back, x), net(x))


@pytest.mark.parametrize("kind", ["lif", "if"])
def test_spikefuse_export_runs_in_norse(kind):
    """spikefuse LIF (v_reset = 0) / IF exported with target="norse" at norse's dt run in norse's
    from_nir with spikefuse's spikes (norse's IAF adds x per step: IF's r = 1/dt)."""
    pytest.importorskip("norse")
    from norse.torch.utils.import_nir import from_nir as norse_from_nir
    torch.manual_seed(4)
    net = nn.Sequential(layers.Dense(N_IN, N), LIF(tau=2.0, v_threshold=0.5) if kind == "lif" else IF(v_threshold=0.8))
    x = _x(scale=1.5)
    g = to_nir(net, dt=1e-3, target="norse")
    _assert_spikes(_norse_seq(norse_from_nir(g, dt=1e-3), x), net(x))


# ------------------------------------------------------------------------------------ sinabs
def _sinabs_seq(net, x, squeeze=False):
    """sinabs layers take (B, T, ...) batch-first sequences; its importer builds *Squeeze layers,
    which take (B*T, ...)."""
    for m in net.modules():
        if hasattr(m, "reset_states"):
            m.reset_states()
    xb = x.transpose(0, 1).contiguous()
    with torch.no_grad():
        y = net(xb.reshape(-1, *x.shape[2:]) if squeeze else xb)
    y = y[0] if isinstance(y, tuple) else y
    return y.reshape(x.shape[1], x.shape[0], *y.shape[-1:]).transpose(0, 1)


def test_sinabs_own_round_trip_loses_norm_input_peer_side():
    """Peer-side bug (sinabs 3.1.3): a LIF (norm_input=True by default: v = a v + (1 - a) x) is
    written as NIR LIF(tau in steps, r = 1), and sinabs' from_nir builds it back with
    norm_input=False (v = a v + x), so its own round trip runs another neuron."""
    sl = pytest.importorskip("sinabs.layers")
    from sinabs.nir import from_nir as sinabs_from_nir
    from sinabs.nir import to_nir as sinabs_to_nir
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(N_IN, N), sl.LIF(tau_mem=torch.tensor(4.0), spike_threshold=torch.tensor(0.3)))
    x = _x(scale=1.5)
    s_peer = _sinabs_seq(net, x)
    g = _quiet(sinabs_to_nir, net, x.transpose(0, 1)[:1])
    lif = next(v for v in g.nodes.values() if isinstance(v, nir.LIF))
    np.testing.assert_allclose(lif.tau, 4.0)
    np.testing.assert_allclose(lif.r, 1.0)
    back = _quiet(sinabs_from_nir, g, batch_size=B)
    s_back = _sinabs_seq(back, x, squeeze=True)
    assert s_peer.sum() > 20 and not torch.equal(s_back, s_peer)
    unnormed = nn.Sequential(net[0], sl.LIF(tau_mem=torch.tensor(4.0), spike_threshold=torch.tensor(0.3),
                                            norm_input=False))
    assert torch.equal(s_back, _sinabs_seq(unnormed, x))
    if "sinabs.lif" in __import__("spikefuse.families", fromlist=["FAMILIES"]).FAMILIES:
        _assert_spikes(_fresh(from_nir(g, convention="sinabs"), x), s_peer)


@pytest.mark.parametrize("kind", ["lif", "iaf"])
def test_sinabs_export_runs_in_spikefuse_as_in_sinabs(kind):
    """sinabs LIF (norm_input=True) / IAF -> from_nir(convention="sinabs") gives sinabs' spike
    counts (multi-spikes) bit for bit, through spikefuse's sinabs families."""
    sl = pytest.importorskip("sinabs.layers")
    from sinabs.nir import to_nir as sinabs_to_nir
    from spikefuse import families
    if "sinabs.lif" not in families.FAMILIES:
        pytest.skip("spikefuse's sinabs families are not in this version")
    torch.manual_seed(6)
    neuron = (sl.LIF(tau_mem=torch.tensor(4.0), spike_threshold=torch.tensor(0.3)) if kind == "lif"
              else sl.IAF(spike_threshold=torch.tensor(0.7)))
    net = nn.Sequential(nn.Linear(N_IN, N), neuron)
    x = _x(scale=1.5)
    s_peer = _sinabs_seq(net, x)
    g = _quiet(sinabs_to_nir, net, x.transpose(0, 1)[:1])
    if kind == "iaf":
        assert s_peer.max() > 1        # multi-spikes happen
    _assert_spikes(_fresh(from_nir(g, convention="sinabs"), x), s_peer)


@pytest.mark.parametrize("target", ["snntorch", "spikingjelly"])
def test_spikefuse_snntorch_families_run_in_the_peers(target):
    """spikefuse's snnTorch Leaky / Synaptic families (reset to zero) export with r = tau/dt and
    w_in = tau_syn/dt, the relations snnTorch's and SpikingJelly's importers require: both run
    them with spikefuse's spikes."""
    snn_f = pytest.importorskip("spikefuse.neuron.snntorch")
    torch.manual_seed(7)
    x = _x(scale=1.5)
    for neuron in (snn_f.Leaky(beta=0.8, threshold=0.5, reset_mechanism="zero", reset_delay=False),
                   snn_f.Synaptic(alpha=0.6, beta=0.8, threshold=0.5, reset_mechanism="zero", reset_delay=False)):
        net = nn.Sequential(layers.Dense(N_IN, N), neuron)
        ours = _fresh(net, x)
        g = to_nir(net, dt=1e-4, target=target)
        if target == "snntorch":
            pytest.importorskip("snntorch")
            from snntorch.import_nir import import_from_nir
            _assert_spikes(_snn_seq(_quiet(import_from_nir, g), x), ours)
        else:
            _sj()
            from spikingjelly.activation_based.nir_exchange import import_from_nir
            _assert_spikes(_sj_import_seq(_quiet(import_from_nir, g, dt=1e-4), x), ours)


def test_spikefuse_norse_family_runs_in_norse():
    nf = pytest.importorskip("spikefuse.neuron.norse")
    pytest.importorskip("norse")
    from norse.torch.utils.import_nir import from_nir as norse_from_nir
    from spikefuse.functional.norse import NorseLIFParams
    torch.manual_seed(8)
    x = _x(scale=1.5)
    net = nn.Sequential(layers.Dense(N_IN, N), nf.NorseLIF(NorseLIFParams(v_th=0.3), return_state=False))
    ours = _fresh(net, x)
    g = to_nir(net, dt=1e-3, target="norse")
    _assert_spikes(_norse_seq(_quiet(norse_from_nir, g, dt=1e-3), x), ours)


# ------------------------------------------------------------------------------------ shared (0-d) parameters
_PEER_DT = {"snntorch": 1e-4, "spikingjelly": 1e-4, "norse": 1e-3}


def _scalar_node(kind, dt):
    """A NIR neuron module with shared (0-d) parameters in the relations every peer's importer
    accepts (r = tau/dt, w_in = tau_syn/dt, v_leak = v_reset = 0; norse's LIF: r = 1)."""
    from spikefuse.interop.nir import NIRCubaLIF, NIRLIF
    if kind == "lif":
        return NIRLIF(dt=dt, tau=2 * dt, r=1.0, v_leak=0.0, v_threshold=0.5, v_reset=0.0)
    return NIRCubaLIF(dt=dt, tau_syn=2 * dt, tau_mem=4 * dt, r=4.0, v_leak=0.0, v_threshold=0.5, v_reset=0.0,
                      w_in=2.0)


def _peer_run(peer, g, dt, x):
    if peer == "snntorch":
        pytest.importorskip("snntorch")
        from snntorch.import_nir import import_from_nir
        return _snn_seq(_quiet(import_from_nir, g), x)
    if peer == "spikingjelly":
        _sj()
        from spikingjelly.activation_based.nir_exchange import import_from_nir
        return _sj_import_seq(_quiet(import_from_nir, g, dt=dt), x)
    pytest.importorskip("norse")
    from norse.torch.utils.import_nir import from_nir as norse_from_nir
    return _norse_seq(_quiet(norse_from_nir, g, dt=dt), x)


@pytest.mark.parametrize("peer", sorted(_PEER_DT))
@pytest.mark.parametrize("kind", ["lif", "cuba"])
def test_shared_parameter_export_is_per_neuron_and_runs_in_the_peer(peer, kind):
    """A NIRLIF / NIRCubaLIF built with scalar parameters exports one value per neuron (shape
    (N,), as the peers' own graphs carry them; 0-d arrays failed nir's type inference) and runs
    in the peer's importer with spikefuse's spikes; spikefuse's own import rebuilds the 0-d module."""
    dt = _PEER_DT[peer]
    torch.manual_seed(9)
    net = nn.Sequential(layers.Dense(N_IN, N), _scalar_node(kind, dt))
    x = _x(scale=1.5)
    g = to_nir(net, dt=dt, target=peer)
    node = g.nodes["1"]
    arrays = {k: v for k, v in vars(node).items() if isinstance(v, np.ndarray) and k != "metadata"}
    assert arrays and all(v.shape == (N,) for v in arrays.values()), {k: v.shape for k, v in arrays.items()}
    back = from_nir(g, dt=dt)
    assert all(b.dim() == 0 for _, b in back.get_submodule("1").named_buffers())
    ours = net(x)
    assert torch.equal(back(x), ours)
    _assert_spikes(_peer_run(peer, g, dt, x), ours)
