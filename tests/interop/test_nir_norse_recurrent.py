"""norse's recurrent LIF (NorseLIFRecurrent) through NIR: written as ``Linear(input_weights) ->
CubaLIF <-> Linear(recurrent_weights)`` (a cycle whose back edge carries the previous step's
spikes), read back as the module (metadata) or as the plain NIR graph, and run in norse's own
importer. Every comparison is of spikes, bit for bit, against the module's own simulation; the
peer tests skip when norse is absent."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")
nf = pytest.importorskip("spikefuse.neuron.norse", reason="spikefuse's norse families are not in this version")

from spikefuse import layers  # noqa: E402
from spikefuse.functional.norse import NorseLIFParams  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, from_nir, to_nir  # noqa: E402

P = NorseLIFParams(v_th=0.3)


def _model(seed=0, n_in=3, hidden=5, **kw):
    torch.manual_seed(seed)
    return nf.NorseLIFRecurrent(n_in, hidden, P, return_state=False, **kw)


def _x(seed=1, n_in=3):
    torch.manual_seed(seed)
    return torch.rand(40, 2, n_in) * 3


def _run(m, x):
    layers.reset_states(m)
    with torch.no_grad():
        return m(x)


def test_export_graph_shape_and_parameters():
    m = _model()
    g = to_nir(m, dt=1e-3)
    inp, lif, rec = (g.nodes[f"norselifrecurrent.{k}"] for k in ("input", "lif", "recurrent"))
    assert isinstance(inp, nir.Linear) and isinstance(lif, nir.CubaLIF) and isinstance(rec, nir.Linear)
    assert set(g.edges) == {("input", "norselifrecurrent.input"), ("norselifrecurrent.input", "norselifrecurrent.lif"),
                            ("norselifrecurrent.lif", "norselifrecurrent.recurrent"),
                            ("norselifrecurrent.recurrent", "norselifrecurrent.lif"),
                            ("norselifrecurrent.lif", "output")}
    assert np.array_equal(inp.weight, m.input_weights.detach().numpy())
    assert np.array_equal(rec.weight, m.recurrent_weights.detach().numpy())
    assert np.all(np.diag(rec.weight) == 0)  # autapses=False
    np.testing.assert_allclose(lif.tau_syn, 5e-3, rtol=1e-6)
    np.testing.assert_allclose(lif.tau_mem, 1e-2, rtol=1e-6)
    np.testing.assert_allclose(lif.w_in, 5.0, rtol=1e-6)
    np.testing.assert_array_equal(lif.r, 1.0)
    np.testing.assert_allclose(lif.v_threshold, 0.3, rtol=1e-6)


@pytest.mark.parametrize("autapses", [False, True])
def test_round_trip_is_bit_exact(autapses):
    m = _model(autapses=autapses)
    x = _x()
    y = _run(m, x)
    assert 5 < y.sum() < y.numel() - 5
    g = to_nir(m, dt=1e-3)
    back = from_nir(g, dt=1e-3)
    assert type(back[0]) is nf.NorseLIFRecurrent and back[0].autapses == autapses
    assert torch.equal(back[0].input_weights, m.input_weights)
    assert torch.equal(back[0].recurrent_weights, m.recurrent_weights)
    assert torch.equal(_run(back, x), y)
    # the plain NIR reading (NIRCubaLIF in a cycle, back edge one step late) gives the same spikes
    plain = from_nir(g, dt=1e-3, use_metadata=False)
    assert not any(isinstance(c, nf.NorseLIFRecurrent) for c in plain.modules())
    assert torch.equal(_run(plain, x), y)


def test_round_trip_after_a_dense_layer():
    torch.manual_seed(2)
    net = nn.Sequential(layers.Dense(4, 3), _model(seed=3))
    x = _x(n_in=4)
    y = _run(net, x)
    g = to_nir(net, dt=1e-3)
    back = from_nir(g, dt=1e-3)
    assert type(back[1]) is nf.NorseLIFRecurrent
    assert torch.equal(_run(back, x), y) and y.sum() > 5


def test_the_recurrent_input_uses_the_previous_steps_spikes():
    """Neuron 0, driven to spike at step 0, feeds neuron 1 through the recurrent weight only: neuron
    1's current jumps at step 1, not step 0 (norse's z_prev), in the module and in the graph.
    dt * tau_syn_inv = 1: the current is gone after each step."""
    w_in = torch.tensor([[10.0], [0.0]])
    w_rec = torch.tensor([[0.0, 0.0], [50.0, 0.0]])
    p = NorseLIFParams(tau_syn_inv=1000.0, v_th=0.3)
    m = nf.NorseLIFRecurrent(1, 2, p, input_weights=w_in, recurrent_weights=w_rec, return_state=False)
    x = torch.zeros(4, 1, 1)
    x[0] = 1.0
    y = _run(m, x)
    # step 0: neuron 0: v = 0.1 * 10 = 1 > 0.3; step 1: neuron 1: v = 0.1 * 50 = 5 > 0.3, neuron 0: v = 0
    assert y[:, 0, 0].tolist() == [1, 0, 0, 0] and y[:, 0, 1].tolist() == [0, 1, 0, 0]
    g = to_nir(m, dt=1e-3)
    assert torch.equal(_run(from_nir(g, dt=1e-3), x), y)
    assert torch.equal(_run(from_nir(g, dt=1e-3, use_metadata=False), x), y)


def test_edited_diagonal_keeps_its_self_connections():
    m = _model()
    g = to_nir(m, dt=1e-3)
    g.nodes["norselifrecurrent.recurrent"].weight[0, 0] = 0.5
    back = from_nir(g, dt=1e-3)
    assert back[0].autapses is True and float(back[0].recurrent_weights[0, 0].detach()) == 0.5


def test_refusals():
    m = _model()
    with pytest.raises(NIRConversionError, match=r"integrates with dt=0.001 but to_nir was given dt=0.0001"):
        to_nir(m, dt=1e-4)
    with pytest.raises(NIRConversionError, match=r"NorseLIFRecurrent expects 3 input features.*\(4,\)"):
        to_nir(nn.Sequential(nn.Linear(2, 4), m), dt=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for target in ("snntorch", "spikingjelly"):
            with pytest.raises(NIRConversionError, match="r must equal tau_mem / dt"):
                to_nir(m, dt=1e-3, target=target)


def test_export_runs_in_norse_as_in_norse():
    """norse's importer (GraphExecutor) runs the cycle with the previous step's spikes and gives
    norse's own LIFRecurrent spikes, bit for bit."""
    norse = pytest.importorskip("norse.torch")
    from norse.torch.utils.import_nir import from_nir as norse_from_nir
    m = _model(seed=3)
    x = _x(seed=4)
    y = _run(m, x)
    ref = norse.LIFRecurrent(3, 5, p=norse.LIFParameters(v_th=torch.tensor(0.3)),
                             input_weights=m.input_weights.detach().clone(),
                             recurrent_weights=m.recurrent_weights.detach().clone())
    with torch.no_grad():
        assert torch.equal(ref(x)[0], y)
    g = to_nir(m, dt=1e-3, target="norse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = norse_from_nir(g, dt=1e-3)
    with torch.no_grad():
        s, out = None, []
        for t in range(x.shape[0]):
            o, s = net(x[t], s)
            out.append(o)
    assert torch.equal(torch.stack(out), y) and y.sum() > 5
