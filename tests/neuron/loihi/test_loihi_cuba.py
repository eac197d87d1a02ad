"""Loihi CUBA: SPEC.md 4, test vector L1 (section 17), functional vs module, gradients."""
import numpy as np
import pytest
import torch

from spikefuse.functional import loihi as F
from spikefuse.neuron.loihi import cuba
from spikefuse.neuron.loihi.norm import MeanOnlyBatchNorm
from spikefuse.neuron.loihi.dropout import Dropout

X_L1 = [0.5, 0.5, 0.0, 0.25, 0.0]


def seq(vals, B=1, C=1):
    return torch.tensor(vals, dtype=torch.float32).reshape(-1, 1, 1).expand(-1, B, C).contiguous()


def l1_neuron(**kw):
    return cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25, **kw)


# ------------------------------------------------------------------ L1 rows
def test_l1_traces_and_spikes():
    n = l1_neuron()
    u, v = n.dynamics(seq(X_L1))
    assert (u.flatten() * 4096).tolist() == [2048, 3072, 1536, 1792, 896]
    assert (v.flatten() * 4096).tolist() == [2048, 4608, 1536, 2944, 3104]
    assert n.spike(v).flatten().tolist() == [0, 1, 0, 0, 0]
    assert n(seq(X_L1)).flatten().tolist() == [0, 1, 0, 0, 0]


def test_l1_graded():
    n = l1_neuron(graded_spike=True)
    assert n(seq(X_L1)).flatten().tolist() == [0, 1.125, 0, 0, 0]


def test_l1_spike_gradient():
    n = l1_neuron()
    x = seq(X_L1).requires_grad_(True)
    s = n(x)
    s[1].sum().backward()
    ref = torch.tensor([6.2421930e-4, 4.9937546e-4, 0, 0, 0])
    assert torch.allclose(x.grad.flatten(), ref, rtol=1e-6, atol=1e-12)


def test_l1_device_params():
    dp = l1_neuron().device_params
    assert dp["type"] == "CUBA"
    assert dp["iDecay"] == 2048 and dp["vDecay"] == 1024 and dp["vThMant"] == 64
    assert dp["refDelay"] == 1 and dp["gradedSpike"] is False
    assert isinstance(dp["iDecay"], np.integer)


def test_l1_strict_threshold_edge():
    n = cuba.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=1.0)
    u, v = n.dynamics(seq([1.0, 0, 0, 0, 0]))
    assert v[0].item() * 4096 == 4096  # exactly the threshold
    assert n.spike(v).sum().item() == 0
    # one LSB above fires
    assert n(seq([1.0 + 1 / 4096, 0, 0])).flatten().tolist() == [1, 0, 0]


@pytest.mark.parametrize("mode,expected", [("lava", 0.5), ("exact", -0.5 / 4096)])
def test_l1_decay_gradient(mode, expected):
    n = cuba.Neuron(threshold=10.0, current_decay=1.0, voltage_decay=0.25, requires_grad=True, decay_grad=mode)
    u, v = n.dynamics(seq([0.5, 0.25, 0, 0, 0]))
    assert v[1].item() == 0.625
    v[1].sum().backward()
    assert n.voltage_decay.grad.item() == pytest.approx(expected, rel=1e-6)
    if mode == "exact":
        assert n.voltage_decay.grad.item() == pytest.approx(-1.2207e-4, rel=1e-4)


def test_device_params_examples():
    n = cuba.Neuron(threshold=0.999, current_decay=0.1, voltage_decay=0.1)
    assert n.v_th_mant == 63 and n.threshold == 63 / 64
    assert n.cx_current_decay == 410 and n.cx_voltage_decay == 410
    n2 = cuba.Neuron(threshold=1.0, current_decay=2049.5 / 4096, voltage_decay=0.0)
    assert n2.cx_current_decay == 2050  # half to even
    assert cuba.neuron_params({"vThMant": 80, "iDecay": 1024, "vDecay": 128}) == {
        "threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03125,
    }


def test_device_params_round_trip():
    n = cuba.Neuron(threshold=1.37, current_decay=0.123, voltage_decay=0.456, graded_spike=True)
    dp = n.device_params
    n2 = cuba.Neuron(**cuba.neuron_params(dp), graded_spike=dp["gradedSpike"])
    dp2 = n2.device_params
    assert dp == dp2
    x = torch.randn(30, 2, 4)
    assert torch.equal(n(x), n2(x))


def test_device_params_per_channel_array():
    n = cuba.Neuron(threshold=1.0, current_decay=(0.1, 0.2), voltage_decay=0.3, shared_param=False)
    n(torch.zeros(3, 1, 4))
    assert isinstance(n.cx_current_decay, np.ndarray) and n.cx_current_decay.shape == (4,)
    assert n.scale == 64 and n.ref_delay == 1 and n.threshold_eps == 0.01 / 4096


def test_neuron_params_errors():
    with pytest.raises(ValueError, match="device_params"):
        cuba.neuron_params({"vThMant": 80})
    with pytest.raises(TypeError, match="device_params"):
        cuba.neuron_params([1, 2])
    with pytest.raises(ValueError, match="scale"):
        cuba.neuron_params({"vThMant": 80, "iDecay": 1, "vDecay": 1}, scale=0)


# ------------------------------------------------------------------ functional vs module, step loop
def loop_steps(x, params, state=None):
    spikes = []
    for t in range(x.shape[0]):
        s, state = F.cuba_step(x[t], state, params)
        spikes.append(s)
    return torch.stack(spikes), state


@pytest.mark.parametrize("graded", [False, True])
def test_multistep_equals_looped_step(graded):
    torch.manual_seed(1)
    x = (torch.randn(40, 3, 5) * 0.7).requires_grad_(True)
    dv = torch.tensor([100.0, 500.0, 1200.0, 3000.0, 4096.0])
    p = F.CubaParams(threshold=0.8, current_decay=700.0, voltage_decay=dv, graded_spike=graded, tau_grad=0.5)
    s1, st1, tr = F.cuba_multistep(x, p, return_traces=True)
    assert s1.sum() > 5
    R = torch.randn_like(s1)
    (g1,) = torch.autograd.grad((s1 * R).sum() + (tr.voltage * R).sum() * 0 + st1.voltage.sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    s2, st2 = loop_steps(x2, p)
    assert torch.equal(s1, s2)
    assert torch.equal(st1.current, st2.current) and torch.equal(st1.voltage, st2.voltage)
    (g2,) = torch.autograd.grad((s2 * R).sum() + st2.voltage.sum(), x2)
    assert torch.allclose(g1, g2, rtol=1e-5, atol=1e-8)


def test_multistep_with_state_equals_split():
    torch.manual_seed(2)
    x = torch.randn(30, 2, 3)
    p = F.CubaParams(threshold=0.5, current_decay=1000.0, voltage_decay=300.0)
    s, st = F.cuba_multistep(x, p)
    sa, sta = F.cuba_multistep(x[:13], p)
    sb, stb = F.cuba_multistep(x[13:], p, state=sta)
    assert torch.equal(s, torch.cat([sa, sb]))
    assert torch.equal(st.voltage, stb.voltage)


def float64_reference(x, Du, Dv, thr, tau_rho, scale_rho, u_int, v_int):
    """Float64 autograd of the float model with the integer path's values (reset ignored in
    the gradient), SPEC 3.3 backward. Du, Dv float64 tensors (parameter units)."""
    au, av = 1 - Du / 4096, 1 - Dv / 4096
    u_prev = torch.zeros_like(x[0])
    v_prev = torch.zeros_like(x[0])
    ss, vs = [], []
    for t in range(x.shape[0]):
        lu = au * u_prev + x[t]
        u = lu + (u_int[t] - lu).detach()
        lv = av * v_prev + u
        v = lv + (v_int[t] - lv).detach()
        d = scale_rho / (2 * tau_rho) * torch.exp(-(v - thr).abs() / tau_rho)
        h = (v >= thr).double()
        ss.append(h + (d * (v - v.detach())))  # derivative d, value h
        vs.append(v)
        u_prev, v_prev = u, v
    return torch.stack(ss), torch.stack(vs)


def test_gradients_vs_float64_autograd():
    torch.manual_seed(4)
    x = torch.randn(25, 2, 3) * 0.1
    n = cuba.Neuron(threshold=4.0, current_decay=0.2, voltage_decay=0.1, requires_grad=True, tau_grad=0.3)
    xr = x.clone().requires_grad_(True)
    u, v = n.dynamics(xr)
    s = n.spike(v)
    assert s.sum() == 0  # no reset in this regime: the decay gradient is the chain rule
    R, Q = torch.randn_like(x), torch.randn_like(x)
    ((s * R).sum() + (v * Q).sum()).backward()
    Du = torch.tensor(float(n.cx_current_decay), dtype=torch.float64, requires_grad=True)
    Dv = torch.tensor(float(n.cx_voltage_decay), dtype=torch.float64, requires_grad=True)
    x64 = x.double().requires_grad_(True)
    s64, v64 = float64_reference(x64, Du, Dv, n.threshold + n.threshold_eps, 100 * n.tau_rho, 0.1, u.detach().double(), v.detach().double())
    ((s64 * R.double()).sum() + (v64 * Q.double()).sum()).backward()
    scale = x64.grad.abs().max()
    assert (xr.grad.double() - x64.grad).abs().max() <= 1e-5 * scale
    assert n.current_decay.grad.item() == pytest.approx(Du.grad.item(), rel=1e-4)
    assert n.voltage_decay.grad.item() == pytest.approx(Dv.grad.item(), rel=1e-4)


def test_input_gradient_ignores_reset():
    """Backward ignores the reset: dv[t]/dx[0] = sum of decays even after a spike."""
    n = cuba.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=0.5, graded_spike=True)
    x = seq([2.0, 0.0, 0.0, 0.0]).requires_grad_(True)
    u, v = n.dynamics(x)
    assert v.flatten().tolist() == [2.0, 0.0, 0.0, 0.0]  # reset after the t=0 spike
    v[2].sum().backward()
    assert x.grad.flatten().tolist() == [0.25, 0.5, 1.0, 0.0]


# ------------------------------------------------------------------ per-channel, shapes
def test_shared_param_false_lazy_sampling():
    torch.manual_seed(0)
    n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=(0.1, 0.2), shared_param=False)
    assert n.current_decay.numel() == 1
    n(torch.zeros(2, 1, 6, 3))
    cd, vd = n.current_decay.detach(), n.voltage_decay.detach()
    assert cd.shape == (6,) and vd.shape == (6,)
    assert ((cd >= 0.99 * 0.5 * 4096) & (cd <= 1.01 * 0.5 * 4096)).all()
    assert ((vd >= 0.1 * 4096) & (vd <= 0.2 * 4096)).all()
    torch.manual_seed(0)
    n2 = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=(0.1, 0.2), shared_param=False)
    n2(torch.zeros(2, 1, 6, 3))
    assert torch.equal(n2.current_decay, n.current_decay)


def test_per_channel_decays_broadcast_along_channel():
    torch.manual_seed(5)
    x = torch.randn(20, 2, 3, 4) * 0.8  # (T, B, C, H)
    n = cuba.Neuron(threshold=0.5, current_decay=(0.1, 0.9), voltage_decay=(0.1, 0.9), shared_param=False)
    s = n(x)
    for c in range(3):
        p = F.CubaParams(0.5, n.current_decay[c].item(), n.voltage_decay[c].item())
        sc, _ = F.cuba_multistep(x[:, :, c], p)
        assert torch.equal(s[:, :, c], sc)


def test_shape_frozen():
    n = l1_neuron()
    n(torch.zeros(3, 2, 4))
    n(torch.zeros(5, 7, 4))  # other T and batch are fine
    with pytest.raises(ValueError, match="neuron shape"):
        n(torch.zeros(3, 2, 5))


# ------------------------------------------------------------------ persistent state
def test_persistent_state_split_equals_whole():
    torch.manual_seed(6)
    x = torch.randn(30, 2, 3)
    whole = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1)(x)
    n = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1, persistent_state=True)
    parts = torch.cat([n(x[:10]), n(x[10:17]), n(x[17:])])
    assert torch.equal(whole, parts)
    # dynamics + spike path stores the same states
    n2 = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1, persistent_state=True)
    parts2 = torch.cat([n2.spike(n2.dynamics(x[:10])[1]), n2.spike(n2.dynamics(x[10:])[1])])
    assert torch.equal(whole, parts2)
    assert torch.equal(n.voltage_state, n2.voltage_state)
    assert not n.voltage_state.requires_grad


def test_persistent_state_last_step_spike_resets():
    n = cuba.Neuron(threshold=1.0, current_decay=1.0, voltage_decay=0.0, persistent_state=True)
    n(seq([0.5, 0.75]))
    assert n.voltage_state.item() == 0.0  # spiked at the last step
    assert n.current_state.item() == 0.75
    n(seq([0.5]))
    assert n.voltage_state.item() == 0.5


def test_non_persistent_and_batch_change():
    x = torch.rand(10, 2, 3)
    n = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1)
    assert torch.equal(n(x), n(x))
    assert n.voltage_state.shape == (2, 3) and n.voltage_state.abs().sum() == 0
    p = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1, persistent_state=True)
    p(x)
    assert p.current_state.abs().sum() > 0
    p(torch.rand(10, 5, 3))  # batch change: states re-created
    assert p.current_state.shape == (5, 3)


def test_batch_change_restarts_from_zero():
    torch.manual_seed(7)
    x, x5 = torch.rand(10, 2, 3), torch.rand(10, 5, 3)
    p = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1, persistent_state=True)
    p(x)
    fresh = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1)
    assert torch.equal(p(x5), fresh(x5))


# ------------------------------------------------------------------ learnable decays, norm, dropout
def test_requires_grad_clamps_before_forward():
    n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25, requires_grad=True)
    with torch.no_grad():
        n.current_decay.fill_(5000.0)
        n.voltage_decay.fill_(-3.0)
    n(torch.zeros(2, 1, 1))
    assert n.current_decay.item() == 4096 and n.voltage_decay.item() == 0
    assert n.current_decay.requires_grad
    m = l1_neuron()
    assert not m.current_decay.requires_grad


def test_norm_between_current_and_voltage():
    torch.manual_seed(8)
    x = torch.randn(12, 4, 3)
    n = cuba.Neuron(threshold=0.3, current_decay=0.4, voltage_decay=0.2, norm=MeanOnlyBatchNorm)
    assert n.norm.pre_hook_fx == n.quantize_8bit
    s = n(x)
    ref_norm = MeanOnlyBatchNorm(pre_hook_fx=n.quantize_8bit)
    u = F.leaky_integrator(x, n.current_decay)
    un = ref_norm(u)
    v = F.leaky_integrator(un, n.voltage_decay, threshold=n.threshold + n.threshold_eps)
    assert torch.equal(s, (v > n.threshold).float())
    assert torch.allclose(n.norm.running_mean, ref_norm.running_mean)
    _, v2 = n.dynamics(x)
    assert torch.equal(v2, v)


def test_dropout_on_spikes():
    torch.manual_seed(9)
    x = torch.rand(10, 6, 4) * 2
    plain = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1)(x)
    n = cuba.Neuron(threshold=0.5, current_decay=0.3, voltage_decay=0.1, dropout=Dropout(p=0.5))
    s = n(x)
    assert set(s.unique().tolist()) <= {0.0, 2.0}
    kept = (s.sum(0) > 0)
    assert torch.equal(s[:, kept], 2 * plain[:, kept])
    n.eval()
    assert torch.equal(n(x), plain)


def test_half_input():
    x = torch.rand(8, 2, 3)
    n = l1_neuron()
    s = n(x.half())
    assert s.dtype == torch.float16
    assert torch.equal(s.float(), l1_neuron()(x.half().float()))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(threshold=0.01), ValueError, "threshold"),
        (dict(threshold="1"), TypeError, "threshold"),
        (dict(threshold=float("nan")), ValueError, "threshold"),
        (dict(current_decay=1.5), ValueError, "current_decay"),
        (dict(voltage_decay=-0.1), ValueError, "voltage_decay"),
        (dict(current_decay=(0.1, 0.2)), ValueError, "current_decay"),
        (dict(current_decay=(0.3, 0.2), shared_param=False), ValueError, "current_decay"),
        (dict(current_decay=(0.1, 0.2, 0.3), shared_param=False), ValueError, "current_decay"),
        (dict(voltage_decay=(0.1, 1.2), shared_param=False), ValueError, "voltage_decay"),
        (dict(voltage_decay="x"), TypeError, "voltage_decay"),
        (dict(tau_grad=0), ValueError, "tau_grad"),
        (dict(scale_grad=-1), ValueError, "scale_grad"),
        (dict(scale=0), ValueError, "scale"),
        (dict(scale=1.5), ValueError, "scale"),
        (dict(graded_spike=1), TypeError, "graded_spike"),
        (dict(persistent_state="yes"), TypeError, "persistent_state"),
        (dict(decay_grad="wrong"), ValueError, "decay_grad"),
        (dict(norm=3), TypeError, "norm"),
        (dict(dropout=0.5), TypeError, "dropout"),
    ],
)
def test_constructor_validation(kw, exc, match):
    base = dict(threshold=1.0, current_decay=0.5, voltage_decay=0.25)
    base.update(kw)
    with pytest.raises(exc, match=match):
        cuba.Neuron(**base)


@pytest.mark.parametrize(
    "x,exc,match",
    [
        (torch.zeros(5, 3), ValueError, "3 dimensions"),
        (torch.zeros(5, 2, 3, dtype=torch.int64), TypeError, "floating"),
        (torch.zeros(5, 2, 3, dtype=torch.complex64), TypeError, "complex"),
        ((torch.zeros(5, 2, 3), torch.zeros(5, 2, 3)), TypeError, "real"),
        (torch.full((5, 2, 3), float("nan")), ValueError, "NaN"),
        ([1.0, 2.0], TypeError, "input"),
    ],
)
def test_input_validation(x, exc, match):
    with pytest.raises(exc, match=match):
        l1_neuron()(x)


def test_functional_validation():
    x = torch.zeros(4, 2, 3)
    p = F.CubaParams(1.0, 100.0, 100.0)
    with pytest.raises(TypeError, match="params"):
        F.cuba_multistep(x, dict(threshold=1.0))
    with pytest.raises(ValueError, match="params.current_decay"):
        F.cuba_multistep(x, p._replace(current_decay=5000.0))
    with pytest.raises(ValueError, match="params.threshold"):
        F.cuba_multistep(x, p._replace(threshold=0.001))
    with pytest.raises(ValueError, match="params.decay_grad"):
        F.cuba_multistep(x, p._replace(decay_grad="nope"))
    with pytest.raises(ValueError, match="state.voltage"):
        F.cuba_multistep(x, p, state=F.CubaState(torch.zeros(2, 3), torch.zeros(3, 3)))
    with pytest.raises(TypeError, match="state"):
        F.cuba_multistep(x, p, state=(torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="backend"):
        F.cuba_multistep(x, p, backend="gpu")
    with pytest.raises(ValueError, match="params.voltage_decay"):
        F.cuba_multistep(x, p._replace(voltage_decay=torch.ones(4)))
    with pytest.raises(TypeError, match="x_seq"):
        F.cuba_multistep((x, x), p)
    with pytest.raises(TypeError, match="return_traces"):
        F.cuba_multistep(x, p, return_traces=1)


def test_reference_backend_explicit():
    x = torch.rand(6, 2, 3)
    p = F.CubaParams(0.5, 100.0, 100.0)
    a = F.cuba_multistep(x, p, backend="reference")[0]
    b = F.cuba_multistep(x, p)[0]
    assert torch.equal(a, b)
