"""Sigma-delta (SPEC 10, 17 L7/L8, 18 #7): functional pieces, step vs multi-step, gradients vs a
float64 reference, the Neuron module, persistence and validation errors."""
import pytest
import torch
from torch import nn

from spikefuse.functional import sigma_delta as F
from spikefuse.neuron.loihi import sigma_delta as SD

relu = torch.nn.functional.relu


# --------------------------------------------------------------------------- SPEC 17 L7 / L8


def test_L7_values_and_input_gradient():
    n = SD.Neuron(threshold=0.1, activation=relu)
    assert float(n.threshold) == 0.09375 and n.device_params["vThMant"] == 6
    x = torch.tensor([0.5, 0, 0, 0.02, 0.1, -0.3, 0]).reshape(7, 1, 1).requires_grad_()
    y = n(x)
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 0, 491, -1229, 0]
    y[4].sum().backward()
    assert x.grad.flatten().tolist() == [0, 0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("cum_error, expected", [(False, [2048, 0, 0, 0, 409, 0, 0]), (True, [2048, 0, 0, 0, 409, 0, 204])])
def test_L7_cum_error(cum_error, expected):
    n = SD.Neuron(threshold=0.1, activation=relu, cum_error=cum_error)
    x = torch.tensor([0.5, 0, 0, 0.05, 0.05, 0.05, 0]).reshape(7, 1, 1)
    assert (n(x).flatten() * 4096).tolist() == expected


def test_L8_delta_threshold_gradient():
    x = torch.tensor([0.5, 0.55, 0.55, 0.7]).reshape(4, 1, 1)
    d = SD.Delta(threshold=0.1, scale=4096, requires_grad=True)
    y = d(x)
    assert (y.flatten() * 4096).tolist() == [2048, 0, 0, 819]
    y.sum().backward()
    assert d.threshold.grad.item() == pytest.approx(-7.1613, abs=1e-4)
    terms = []
    for t in range(4):
        d.threshold.grad = None
        d(x)[t].sum().backward()
        terms.append(d.threshold.grad.item())
    assert terms == pytest.approx([-3.3516, -1.0, -1.0, -1.8097], abs=1e-4)


def test_signed_output_and_floor():
    x = torch.tensor([0.0, 0.3, -0.3, 0.0]).reshape(4, 1, 1)
    y, _ = F.sigma_delta_multistep(x, F.SigmaDeltaParams(threshold=0.1, activation=None), backend="reference")
    # sigma = [0, .3, 0, 0]: deltas +0.3 then -0.3 (both sent), floored to 1/4096
    assert (y.flatten() * 4096).tolist() == [0, 1228, -1229, 0]  # 0.3 * 4096 = 1228.8


def test_sigma_accumulates_like_cpu_cumsum():
    x = torch.randn(50, 4, 7) * 100
    s, last = F.sigma(x)
    assert torch.equal(s, torch.cumsum(x, dim=0))
    assert last.dtype == torch.float64
    s1, l1 = F.sigma(x[:20])
    s2, _ = F.sigma(x[20:], l1)
    assert torch.equal(torch.cat([s1, s2]), s)


# --------------------------------------------------------------------------- step == multi-step


@pytest.mark.parametrize("cum_error", [False, True])
def test_multistep_equals_looped_step(cum_error):
    T, B, C = 20, 2, 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, C, generator=g) * 0.2
    th = torch.tensor([[0.09], [0.05], [0.12]]).reshape(3).requires_grad_()
    bias = torch.tensor([0.1, -0.05, 0.0], requires_grad=True)
    w = torch.randn(T, B, C, generator=g)
    p = F.SigmaDeltaParams(threshold=th, activation=torch.tanh, bias=bias, tau_grad=0.5, scale_grad=2.0,
                           cum_error=cum_error)
    st0 = F.SigmaDeltaState(torch.full((B, C), 0.3, dtype=torch.float64), torch.full((B, C), 0.1),
                            torch.full((B, C), 0.01), torch.zeros(B, C))

    a = x.clone().requires_grad_()
    y1, s1 = F.sigma_delta_multistep(a, p, st0, backend="reference")
    g1 = torch.autograd.grad((y1 * w).sum(), [a, th, bias])
    b = x.clone().requires_grad_()
    st, ys = st0, []
    for t in range(T):
        y, st = F.sigma_delta_step(b[t], st, p)
        ys.append(y)
    y2 = torch.stack(ys)
    g2 = torch.autograd.grad((y2 * w).sum(), [b, th, bias])
    assert (y1 != 0).sum() > 5
    assert torch.equal(y1, y2)
    for f in F.SigmaDeltaState._fields:
        assert torch.equal(getattr(s1, f).detach(), getattr(st, f).detach()), f
    for u, v in zip(g1, g2):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- gradients vs float64 reference


@pytest.mark.parametrize("cum_error", [False, True])
def test_gradients_match_float64_reference(cum_error):
    T, B, C = 16, 2, 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, C, generator=g, dtype=torch.float64) * 0.2
    w = torch.randn(T, B, C, generator=g, dtype=torch.float64)
    tau, kappa = 0.7, 1.5

    xa = x.clone().requires_grad_()
    th = torch.tensor(0.08, dtype=torch.float64, requires_grad=True)
    y, _, tr = F.sigma_delta_multistep(xa, F.SigmaDeltaParams(th, torch.tanh, None, tau, kappa, cum_error),
                                       backend="reference", return_traces=True)
    got = torch.autograd.grad((y * w).sum(), [xa, th])

    # reference: float64 autograd of a straight-through version, hand-written threshold term
    xb = x.clone().requires_grad_()
    a = torch.tanh(torch.cumsum(xb, 0))
    prev = torch.cat([torch.zeros_like(a[:1]), a[:-1]])
    st_delta = a - prev  # d y[t] / d a = +1 at t, -1 at t+1 (SPEC 10.3)
    y_ref = st_delta + (y.detach() - st_delta).detach()
    gx = torch.autograd.grad((y_ref * w).sum(), xb)[0]
    d = tr.delta.detach()
    sub = d.abs() - 0.08
    gth = torch.where(sub > 0, -d * kappa * torch.exp(-sub / tau) / 0.08, -torch.sign(d)) * w
    torch.testing.assert_close(got[0], gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], gth.sum(), rtol=1e-12, atol=1e-12)
    assert (y != 0).any()


# --------------------------------------------------------------------------- neuron module


@pytest.mark.parametrize("cum_error", [False, True])
def test_persistent_state_equals_one_long_call(cum_error):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(24, 2, 3, generator=g) * 0.1
    full = SD.Neuron(threshold=0.1, activation=relu, cum_error=cum_error)(x)
    n = SD.Neuron(threshold=0.1, activation=relu, cum_error=cum_error, persistent_state=True)
    parts = torch.cat([n(x[:10]), n(x[10:17]), n(x[17:])])
    assert (full != 0).sum() > 5
    assert torch.equal(full, parts)
    # the composed (norm) path keeps the same persistent behaviour
    m = SD.Neuron(threshold=0.1, activation=relu, cum_error=cum_error, persistent_state=True, norm=nn.Identity)
    assert torch.equal(full, torch.cat([m(x[:10]), m(x[10:17]), m(x[17:])]))


def test_error_does_not_leak_without_persistence():
    # SPEC 18 #7: upstream mutates its error buffer in place; here every call starts from zero
    n = SD.Neuron(threshold=0.1, activation=relu, cum_error=True)
    x = torch.tensor([0.05]).reshape(1, 1, 1)  # leaves err = 0.05 < θ: no output
    assert n(x).item() == 0.0
    assert n(x).item() == 0.0  # a leaked error would reach 0.1 >= θ here and fire
    assert n.delta.error_state.abs().sum() == 0
    # with persistent_state the error is carried, as intended
    p = SD.Neuron(threshold=0.1, activation=relu, cum_error=True, persistent_state=True)
    assert p(x).item() == 0.0
    assert p(torch.zeros(1, 1, 1)).item() == pytest.approx(0.05, abs=1 / 4096)


def test_fused_and_composed_paths_agree_with_bias_and_grads():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 2, 3, 4, generator=g) * 0.2
    outs = []
    for norm in (None, nn.Identity):
        n = SD.Neuron(threshold=0.1, activation=relu, norm=norm, requires_grad=True, shared_param=False)
        n.set_bias(torch.linspace(-0.1, 0.1, 12))
        xa = x.clone().requires_grad_()
        y = n(xa)
        y.pow(2).sum().backward()
        assert n.threshold.shape == (3, 1)
        outs.append((y.detach(), xa.grad, n.threshold.grad.clone(), n.bias.grad.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_per_channel_threshold_gradient_matches_per_channel_runs():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(10, 2, 3, 5, 5, generator=g) * 0.2
    n = SD.Neuron(threshold=0.1, activation=relu, shared_param=False, requires_grad=True)
    y = n(x)
    assert n.threshold.shape == (3, 1, 1)
    (y * 3.0).sum().backward()
    for c in range(3):
        nc = SD.Neuron(threshold=0.1, activation=relu, requires_grad=True)
        yc = nc(x[:, :, c])
        assert torch.equal(yc, y[:, :, c])
        (yc * 3.0).sum().backward()
        torch.testing.assert_close(nc.threshold.grad.reshape(()), n.threshold.grad[c].reshape(()), rtol=1e-5, atol=1e-5)
    assert n.v_th_mant.tolist() == [6, 6, 6]


def test_set_bias_clamp_dropout_and_params():
    n = SD.Neuron(threshold=0.25, activation=relu, requires_grad=True)
    n.set_bias(torch.tensor([0.5, 0.0]))
    y = n(torch.zeros(3, 1, 2))
    assert (y[:, 0, 0]).tolist() == [0.5, 0.0, 0.0] and y[:, 0, 1].abs().sum() == 0
    with pytest.raises(ValueError, match="bias"):
        n.set_bias(torch.ones(3))
    # clamp: the learnable threshold never goes below 1/s_scale
    with torch.no_grad():
        n.threshold.fill_(-1.0)
    n(torch.zeros(2, 1, 2))
    assert n.threshold.item() == 1 / 4096
    assert n.device_params == {"type": "SDNN", "activation": "relu", "vThMant": 0}
    # round trip
    m = SD.Neuron(threshold=0.7, activation=relu)
    assert SD.neuron_params(m.device_params) == {"threshold": 44 / 64}
    assert SD.Neuron(activation=relu, **SD.neuron_params(m.device_params)).device_params == m.device_params
    # module activations report their class name
    assert SD.Neuron(threshold=0.5, activation=nn.ReLU()).device_params["activation"] == "ReLU"

    class Zero(nn.Module):
        def forward(self, s):
            return torch.zeros_like(s)

    d = SD.Neuron(threshold=0.1, activation=relu, dropout=Zero())
    assert d(torch.ones(3, 1, 2)).abs().sum() == 0


def test_batch_size_change_recreates_state():
    n = SD.Neuron(threshold=0.1, activation=relu, persistent_state=True)
    n(torch.ones(3, 2, 2))
    y = n(torch.full((3, 1, 2), 0.5))
    assert torch.equal(y, SD.Neuron(threshold=0.1, activation=relu)(torch.full((3, 1, 2), 0.5)))


def test_dtypes():
    x = torch.randn(6, 2, 3) * 0.3
    p = F.SigmaDeltaParams(threshold=0.1)
    y16, _ = F.sigma_delta_multistep(x.half(), p, backend="reference")
    assert y16.dtype == torch.float16
    y64, st = F.sigma_delta_multistep(x.double(), p, backend="reference")
    assert y64.dtype == torch.float64 and st.pre.dtype == torch.float64


# --------------------------------------------------------------------------- errors


def test_neuron_errors():
    with pytest.raises(TypeError, match="activation"):
        SD.Neuron(threshold=0.1, activation="relu")
    with pytest.raises(ValueError, match="threshold"):
        SD.Neuron(threshold=0.01, activation=relu)
    with pytest.raises(TypeError, match="cum_error"):
        SD.Neuron(threshold=0.1, activation=relu, cum_error=1)
    with pytest.raises(ValueError, match="scale"):
        SD.Neuron(threshold=0.1, activation=relu, scale=-64)
    n = SD.Neuron(threshold=0.1, activation=relu)
    with pytest.raises(TypeError, match="pair"):
        n((torch.zeros(3, 1, 2), torch.zeros(3, 1, 2)))
    with pytest.raises(ValueError, match="dimensions"):
        n(torch.zeros(3, 2))
    n(torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match="shape"):
        n(torch.zeros(3, 1, 4))
    with pytest.raises(ValueError, match="device_params"):
        SD.neuron_params({"activation": "relu"})
    with pytest.raises(TypeError, match="device_params"):
        SD.neuron_params(None)
    with pytest.raises(TypeError, match="bias"):
        n.set_bias([1.0, 2.0])
    with pytest.raises(ValueError, match="threshold"):
        SD.Delta(threshold=0.0)
    with pytest.raises(TypeError, match="persistent_state"):
        SD.Sigma(persistent_state="no")


def test_functional_errors():
    x = torch.zeros(4, 1, 2)
    p = F.SigmaDeltaParams(threshold=0.1)
    with pytest.raises(TypeError, match="SigmaDeltaParams"):
        F.sigma_delta_multistep(x, (0.1,))
    with pytest.raises(ValueError, match="params.threshold"):
        F.sigma_delta_multistep(x, p._replace(threshold=0.0))
    with pytest.raises(ValueError, match="params.threshold"):
        F.sigma_delta_multistep(x, p._replace(threshold=torch.ones(3)))
    with pytest.raises(TypeError, match="params.activation"):
        F.sigma_delta_multistep(x, p._replace(activation=3))
    with pytest.raises(ValueError, match="params.bias"):
        F.sigma_delta_multistep(x, p._replace(bias=torch.ones(5)))
    with pytest.raises(ValueError, match="params.tau_grad"):
        F.sigma_delta_multistep(x, p._replace(tau_grad=-1))
    with pytest.raises(TypeError, match="params.cum_error"):
        F.sigma_delta_multistep(x, p._replace(cum_error=None))
    with pytest.raises(TypeError, match="params.s_scale"):
        F.sigma_delta_multistep(x, p._replace(s_scale=1.5))
    with pytest.raises(TypeError, match="state"):
        F.sigma_delta_multistep(x, p, state=(torch.zeros(1, 2),))
    with pytest.raises(ValueError, match="state.pre"):
        F.sigma_delta_step(x[0], F.SigmaDeltaState(torch.zeros(1, 2), torch.zeros(3, 2), torch.zeros(1, 2), torch.zeros(1, 2)), p)
    with pytest.raises(ValueError, match="x_seq"):
        F.sigma_delta_multistep(x[:, 0, 0], p)
    with pytest.raises(ValueError, match="NaN"):
        F.sigma_delta_multistep(x * float("nan"), p)
    with pytest.raises(ValueError, match="step"):
        F.floor_quantize(x, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        F.delta(x, -0.1)
    with pytest.raises(TypeError, match="state"):
        F.delta(x, 0.1, state=[x[0]])
    with pytest.raises(ValueError, match="state"):
        F.sigma(x, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="cum_error"):
        F.delta(x, 0.1, cum_error="yes")
