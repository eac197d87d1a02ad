"""spikefuse.compat.hxtorch: hxtorch.spiking.functional calls, written as hxtorch users write
them, equal the native spikefuse functional results bit for bit (forward and gradients)."""
import pytest
import torch

import spikefuse.compat.hxtorch.spiking.functional as F
from spikefuse.compat import hxtorch as hx
from spikefuse.functional import cuba as nc
from spikefuse.functional import eventprop as ne

T, B, N = 30, 4, 5


def _kw(**over):
    kw = dict(leak=torch.tensor(0.1), reset=torch.tensor(-0.1), threshold=torch.tensor(0.4),
              tau_syn=torch.tensor(5e-6), tau_mem=torch.tensor(8e-6), method="superspike", alpha=50.0)
    kw.update(over)
    return kw


def _native(kw, refractory_time=1e-6):
    return nc.CubaParams(leak=kw["leak"], reset=kw["reset"], threshold=kw["threshold"], tau_syn=kw["tau_syn"],
                         tau_mem=kw["tau_mem"], refractory_time=refractory_time, method=kw["method"],
                         alpha=kw["alpha"])


def _x():
    torch.manual_seed(0)
    return (torch.rand(T, B, N) < 0.3).float() * torch.rand(T, B, N)


def _same(out_a, out_b, xa, xb):
    for a, b in zip(out_a[:3], out_b[:3]):
        assert a.shape == (T, B, N) and torch.equal(a, b)
    w = torch.linspace(-1, 1, T * B * N).reshape(T, B, N)
    ga, = torch.autograd.grad((out_a[0] * w).sum() + (out_a[1] * w).sum(), xa)
    gb, = torch.autograd.grad((out_b[0] * w).sum() + (out_b[1] * w).sum(), xb)
    assert torch.equal(ga, gb) and ga.abs().sum() > 0


@pytest.mark.parametrize("refractory", [False, True])
def test_port_integration_keyword_api(refractory):
    kw = _kw()
    xa, xb = _x().requires_grad_(), _x().requires_grad_()
    if refractory:
        out = F.cuba_refractory_lif_integration(xa, **kw, refractory_time=torch.tensor(2e-6), hw_data=None, dt=1e-6)
        ref = nc.cuba_refractory_lif_integration(xb, _native(kw, torch.tensor(2e-6)), None, 1e-6)
    else:
        out = F.cuba_lif_integration(xa, **kw, hw_data=None, dt=1e-6)
        ref = nc.cuba_lif_integration(xb, _native(kw), None, 1e-6)
    assert len(out) == 4 and out[3] is None
    assert out[0].sum() > 0
    _same(out, ref, xa, xb)


def test_port_integration_params_tuple_api():
    p = F.CUBALIFParams(torch.tensor(8e-6), torch.tensor(5e-6), torch.tensor(0.), torch.tensor(0.1),
                        torch.tensor(0.4), torch.tensor(-0.1), 50.0, "superspike")
    assert F.CUBALIFParams._fields == ("tau_mem", "tau_syn", "refractory_time", "leak", "threshold", "reset",
                                       "alpha", "method")
    xa, xb = _x().requires_grad_(), _x().requires_grad_()
    _same(F.cuba_lif_integration(xa, p), F.cuba_lif_integration(xb, **_kw()), xa, xb)


def test_port_hw_data_injection():
    kw = _kw()
    spikes_hw = (torch.rand(T - 3, B, N) < 0.2).float()
    cadc = torch.rand(T - 5, B, N)
    madc = torch.rand(T, B, N)
    xa, xb = _x().requires_grad_(), _x().requires_grad_()
    out = F.cuba_lif_integration(xa, **kw, hw_data=(spikes_hw, cadc, madc))
    ref = nc.cuba_lif_integration(xb, _native(kw), (spikes_hw, cadc, madc), 1e-6)
    assert out[0].shape[0] == T - 5 and out[3] is madc
    for a, b in zip(out[:3], ref[:3]):
        assert torch.equal(a, b)
    assert torch.equal(out[1], cadc[: T - 5]) and torch.equal(out[0], spikes_hw[: T - 5])


def test_port_step_returns_z_v_i():
    kw = _kw()
    z, v, i = torch.zeros(B, N), torch.full((B, N), 0.1), torch.tensor(0.)
    x = torch.rand(B, N)
    for _ in range(5):
        z2, v2, i2 = F.cuba_lif_step(z, v, i, x, None, None, **kw, dt=1e-6)
        zn, st = nc.cuba_lif_step(x, nc.CubaState(z, v, i), _native(kw), dt=1e-6)
        assert torch.equal(z2, zn) and torch.equal(v2, st.v) and torch.equal(i2, st.i)
        z, v, i = z2, v2, i2


def test_refractory_update_and_threshold_and_unterjubel():
    z, v, ref = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.2]), torch.zeros(2, dtype=torch.long)
    out = F.refractory_update(z, v, ref, None, None, reset=torch.tensor(0.), refractory_time=torch.tensor(2.5e-6),
                              dt=1e-6)
    want = nc.refractory_update(z, v, ref.float(), None, None, reset=torch.tensor(0.), refractory_time=torch.tensor(2.5e-6),
                                dt=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(out, want)) and out[2].tolist() == [2.5, 0.0]
    x = torch.tensor([-0.1, 0.0, 0.3], requires_grad=True)
    s = F.spiking_threshold(x, "superspike", 50.0)
    assert F.threshold is F.spiking_threshold and s.tolist() == [0.0, 0.0, 1.0]
    g, = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, 1 / (50 * x.detach().abs() + 1) ** 2)
    a = torch.zeros(3, requires_grad=True)
    y = F.Unterjubel.apply(a, torch.ones(3))
    (y * torch.arange(3.)).sum().backward()
    assert y.tolist() == [1.0] * 3 and a.grad.tolist() == [0.0, 1.0, 2.0]


def test_port_eventprop_both_apis():
    torch.manual_seed(1)
    x = (torch.rand(T, B, 3) < 0.3).float()
    params = F.CUBALIFParams(tau_mem=torch.tensor(10e-6), tau_syn=torch.tensor(5e-6), threshold=torch.tensor(0.3))
    results = []
    for api in ("tuple", "function", "native"):
        w = torch.full((N, 3), 0.4, requires_grad=True)
        if api == "tuple":
            z, v, i = F.EventPropNeuron.apply(F.EventPropSynapse.apply(x, w), params, 1e-6)
        elif api == "function":
            z, v, i = F.EventPropNeuronFunction.apply(F.EventPropSynapseFunction.apply(x, w, None), params.leak,
                                                      params.reset, params.threshold, params.tau_syn,
                                                      params.tau_mem, None, 1e-6)
        else:
            cp = nc.CubaParams(threshold=params.threshold, tau_syn=params.tau_syn, tau_mem=params.tau_mem)
            z, v, i = ne.eventprop_neuron(ne.eventprop_synapse(x, w), cp, 1e-6)
        g, = torch.autograd.grad((z * torch.arange(T * B * N).reshape(T, B, N)).sum(), w)
        results.append((z, v, i, g))
    assert results[0][0].sum() > 0 and results[0][3].abs().sum() > 0
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_top_level_names():
    assert hx.cuba_lif_integration is F.cuba_lif_integration and hx.functional is F


@pytest.mark.parametrize("call,exc,words", [
    (lambda: F.cuba_lif_integration(_x(), **_kw(method="super_spike")), ValueError, "super_spike"),
    (lambda: F.cuba_lif_integration(_x(), **{k: v for k, v in _kw().items() if k != "tau_syn"}), TypeError,
     "'tau_syn'"),
    (lambda: F.cuba_lif_integration(_x()[0], **_kw()), ValueError, "(time, batch, neurons)"),
    (lambda: F.cuba_lif_integration(_x(), F.CUBALIFParams(1e-5, 1e-5), threshold=1.0), TypeError, "not both"),
    (lambda: F.cuba_lif_integration(_x(), **_kw(tau_mem=torch.tensor(1e-7))), ValueError, "tau_mem"),
    (lambda: F.cuba_lif_integration(_x(), **_kw(alpha=-1.0)), ValueError, "alpha"),
    (lambda: F.refractory_update(torch.ones(1), torch.ones(1), torch.zeros(1), None, None, reset=0.0, dt=1e-6),
     TypeError, "'refractory_time'"),
    (lambda: F.EventPropNeuron.apply(torch.zeros(2, 3, 1, 1), object(), 1e-6), TypeError, "params"),
    (lambda: F.Unterjubel.apply([1.0], torch.ones(1)), TypeError, "input"),
])
def test_bad_inputs_name_the_argument(call, exc, words):
    with pytest.raises(exc) as e:
        call()
    assert words in str(e.value)
