"""Loihi ALIF and the adaptive threshold dynamics: SPEC.md 3.4, 5, test vector L2 (section 17)."""
import pytest
import torch

from spikefuse.functional import loihi as F
from spikefuse.neuron.loihi import alif
from spikefuse.neuron.loihi.norm import MeanOnlyBatchNorm

X_L2 = [1.5, 0.5, 0.5, 1.0, 1.5, 0.0]
L2 = dict(threshold=1.0, threshold_step=0.5, current_decay=1.0, voltage_decay=0.5,
          threshold_decay=0.25, refractory_decay=0.5)


def seq(vals, B=1, C=1):
    return torch.tensor(vals, dtype=torch.float32).reshape(-1, 1, 1).expand(-1, B, C).contiguous()


def test_l2_rows():
    n = alif.Neuron(**L2)
    u, v, th, r = n.dynamics(seq(X_L2))
    assert (v.flatten() * 4096).tolist() == [6144, 5120, 4608, 6400, 9344, 4672]
    assert (th.flatten() * 4096).tolist() == [4096, 5632, 5248, 4960, 6280, 5734]
    assert (r.flatten() * 4096).tolist() == [0, 4096, 2048, 1024, 5472, 2736]
    assert n.spike(v, th, r).flatten().tolist() == [1, 0, 0, 1, 0, 0]
    assert alif.Neuron(**L2)(seq(X_L2)).flatten().tolist() == [1, 0, 0, 1, 0, 0]


def test_l2_device_params():
    n = alif.Neuron(**L2)
    assert n.v_th_step == 32
    dp = n.device_params
    assert dp == {"type": "ALIF", "iDecay": 4096, "vDecay": 2048, "thDecay": 1024, "refDecay": 2048,
                  "vThMant": 64, "vThStep": 32, "refDelay": 1, "gradedSpike": False}


@pytest.mark.parametrize("path", ["forward", "dynamics"])
def test_l2_persistent_states(path):
    n = alif.Neuron(**L2, persistent_state=True)
    if path == "forward":
        n(seq(X_L2))
    else:
        n.spike(*n.dynamics(seq(X_L2))[1:])
    assert n.voltage_state.item() * 4096 == 4672
    assert n.threshold_state.item() * 4096 == 5734
    assert n.refractory_state.item() * 4096 == 2736


def test_persistent_state_with_last_step_spike():
    x = torch.tensor(X_L2[:4]).reshape(4, 1, 1)  # spikes at t = 0 and t = 3 (the last step)
    n = alif.Neuron(**L2, persistent_state=True)
    n(x)
    # θ[3] = 4960, r[3] = 1024 (L2), then the spike: θ += 2048, r += 2·4960
    assert n.threshold_state.item() * 4096 == 4960 + 2048
    assert n.refractory_state.item() * 4096 == 1024 + 2 * 4960
    n2 = alif.Neuron(**L2, persistent_state=True)
    n2.spike(*n2.dynamics(x)[1:])
    assert torch.equal(n.threshold_state, n2.threshold_state)
    assert torch.equal(n.refractory_state, n2.refractory_state)


def test_persistent_split_equals_whole():
    torch.manual_seed(1)
    x = torch.rand(40, 2, 3) * 1.5
    kw = dict(threshold=0.8, threshold_step=0.3, current_decay=0.3, voltage_decay=0.1,
              threshold_decay=0.05, refractory_decay=0.2)
    whole = alif.Neuron(**kw)(x)
    n = alif.Neuron(**kw, persistent_state=True)
    assert torch.equal(whole, torch.cat([n(x[:11]), n(x[11:29]), n(x[29:])]))
    assert whole.sum() > 5
    # a batch change restarts every state (θ at θ0)
    x5 = torch.rand(10, 5, 3)
    assert torch.equal(n(x5), alif.Neuron(**kw)(x5))


def test_neuron_params_faithful_flag():
    dp = alif.Neuron(**L2).device_params
    default = alif.neuron_params(dp)
    assert default == {"threshold": 1.0, "threshold_step": 0.5, "current_decay": 1.0, "voltage_decay": 0.5,
                       "threshold_decay": 0.25, "refractory_decay": 0.5}
    assert alif.neuron_params(dp, faithful=True)["threshold_step"] == 1.0  # upstream uses vThMant
    assert alif.Neuron(**default).device_params == dp
    dp_no_step = {k: v for k, v in dp.items() if k != "vThStep"}
    assert alif.neuron_params(dp_no_step)["threshold_step"] == 1.0
    with pytest.raises(TypeError, match="faithful"):
        alif.neuron_params(dp, faithful="yes")
    with pytest.raises(ValueError, match="thDecay"):
        alif.neuron_params({"vThMant": 1, "iDecay": 1, "vDecay": 1})


def test_threshold_step_quantised():
    n = alif.Neuron(**{**L2, "threshold_step": 0.1})
    assert n.threshold_step == 6 / 64 and n.v_th_step == 6


def loop(x, p, state=None):
    out = []
    for t in range(x.shape[0]):
        s, state = F.alif_step(x[t], state, p)
        out.append(s)
    return torch.stack(out), state


@pytest.mark.parametrize("mode", ["exact", "lava"])
def test_multistep_equals_looped_step_with_grads(mode):
    torch.manual_seed(2)
    x = (torch.rand(30, 2, 4) * 1.2).requires_grad_(True)
    du = torch.tensor([300.0], requires_grad=True)
    dv = torch.tensor([100.0, 200.0, 400.0, 800.0], requires_grad=True)
    p = F.AlifParams(0.7, 0.25, du, dv, torch.tensor([300.0, 400.0, 500.0, 600.0]), 1000.0,
                     decay_grad=mode, graded_spike=True)
    s1, st1 = F.alif_multistep(x, p)
    assert s1.ne(0).sum() > 5
    R = torch.randn_like(s1)
    g1 = torch.autograd.grad((s1 * R).sum() + st1.voltage.sum(), (x, du, dv))
    s2, st2 = loop(x, p)
    assert torch.equal(s1, s2)
    for a, b in zip(st1, st2):
        assert torch.equal(a, b)
    g2 = torch.autograd.grad((s2 * R).sum() + st2.voltage.sum(), (x, du, dv))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_gradients_vs_float64_autograd():
    """ALIF never resets v, so the exact decay gradient is the float chain rule."""
    torch.manual_seed(3)
    x = torch.rand(20, 2, 3)
    n = alif.Neuron(threshold=0.6, threshold_step=0.2, current_decay=0.2, voltage_decay=0.1,
                    threshold_decay=0.1, refractory_decay=0.3, requires_grad=True, tau_grad=0.5)
    xr = x.clone().requires_grad_(True)
    u, v, th, r = n.dynamics(xr)
    s = n.spike(v, th, r)
    assert s.sum() > 3
    R = torch.randn_like(x)
    (s * R).sum().backward()
    Du = torch.tensor(float(n.cx_current_decay), dtype=torch.float64, requires_grad=True)
    Dv = torch.tensor(float(n.cx_voltage_decay), dtype=torch.float64, requires_grad=True)
    x64 = x.double().requires_grad_(True)
    up = vp = torch.zeros_like(x64[0])
    tau, kappa = 100 * n.tau_rho, 0.1
    L = 0
    for t in range(x.shape[0]):
        lu = (1 - Du / 4096) * up + x64[t]
        uu = lu + (u[t].double() - lu).detach()
        lv = (1 - Dv / 4096) * vp + uu
        vv = lv + (v[t].double() - lv).detach()
        lim = (th[t] + r[t]).double()
        d = kappa / (2 * tau) * torch.exp(-(vv.detach() - lim).abs() / tau)
        L = L + ((d * vv) * R[t].double()).sum()
        up, vp = uu, vv
    L.backward()
    assert (xr.grad.double() - x64.grad).abs().max() <= 1e-5 * x64.grad.abs().max()
    assert n.current_decay.grad.item() == pytest.approx(Du.grad.item(), rel=1e-4)
    assert n.voltage_decay.grad.item() == pytest.approx(Dv.grad.item(), rel=1e-4)
    assert n.threshold_decay.grad is None and n.refractory_decay.grad is None


def test_lazy_per_channel_no_jitter_for_threshold_decays():
    n = alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=0.5, voltage_decay=0.5,
                    threshold_decay=0.25, refractory_decay=(0.1, 0.3), shared_param=False)
    n(torch.zeros(2, 1, 5))
    assert torch.all(n.threshold_decay == 1024)
    assert n.refractory_decay.shape == (5,)
    assert ((n.refractory_decay >= 409.6) & (n.refractory_decay <= 1228.8)).all()
    assert n.current_decay.shape == (5,) and n.current_decay.std() > 0


def test_clamp_only_current_and_voltage():
    n = alif.Neuron(**L2, requires_grad=True)
    with torch.no_grad():
        n.current_decay.fill_(5000.0)
        n.threshold_decay.fill_(100.0)
    n.clamp()
    assert n.current_decay.item() == 4096 and n.threshold_decay.item() == 100.0


def test_norm_on_input():
    torch.manual_seed(4)
    x = torch.randn(10, 4, 3) + 1
    n = alif.Neuron(**L2, norm=MeanOnlyBatchNorm)
    s = n(x)
    ref = MeanOnlyBatchNorm(pre_hook_fx=n.quantize_8bit)
    p = n.params()
    assert torch.equal(s, F.alif_multistep(ref(x), p)[0])


def test_adaptive_dynamics_phase_and_callable():
    re = torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0, 2.0]).reshape(6, 1, 1)
    im = torch.tensor([-1.0, 0.5, -0.5, 0.0, -1.0, 1.0]).reshape(6, 1, 1)
    r = F.adaptive_threshold_dynamics((re, im), 1.0, 0.25, 0.0, 4096.0, condition="phase")
    # fires where Im goes from < 0 to >= 0 and re >= θ + r (r decays fully each step)
    assert r.fired.flatten().tolist() == [False, True, False, True, False, True]
    assert (r.threshold.flatten() * 4).tolist() == [4, 4, 5, 5, 6, 6]  # no threshold decay
    im0 = im.clone()
    im0[0] = 0.5
    r2 = F.adaptive_threshold_dynamics((re, im0), 1.0, 0.25, 0.0, 4096.0, condition="phase",
                                       imag_last=torch.full((1, 1), -1.0))
    assert r2.fired[0].item()
    r2 = F.adaptive_threshold_dynamics((re, im0), 1.0, 0.25, 0.0, 4096.0, condition="phase")
    assert not r2.fired[0].item()  # imag_last = 0: no spike at t = 0
    calls = []

    def cond(t, th, ref):
        calls.append(t)
        return torch.full_like(th, t % 2 == 0, dtype=torch.bool)

    r3 = F.adaptive_threshold_dynamics(re, 1.0, 0.5, 0.0, 0.0, condition=cond)
    assert calls == list(range(6))
    assert r3.fired.flatten().tolist() == [True, False, True, False, True, False]
    assert (r3.threshold.flatten()).tolist() == [1.0, 1.5, 1.5, 2.0, 2.0, 2.5]
    assert r3.threshold_state.item() == 2.5 and r3.refractory_state.item() == 2 * (1 + 1.5 + 2)


def test_adaptive_dynamics_validation():
    v = torch.zeros(3, 1, 1)
    with pytest.raises(ValueError, match="condition"):
        F.adaptive_threshold_dynamics(v, 1.0, 0.5, 0.0, 0.0, condition="gt")
    with pytest.raises(ValueError, match="pair"):
        F.adaptive_threshold_dynamics(v, 1.0, 0.5, 0.0, 0.0, condition="phase")
    with pytest.raises(ValueError, match="threshold_step"):
        F.adaptive_threshold_dynamics(v, 1.0, -0.5, 0.0, 0.0)
    with pytest.raises(ValueError, match="refractory_decay"):
        F.adaptive_threshold_dynamics(v, 1.0, 0.5, 0.0, 5000.0)
    with pytest.raises(ValueError, match="drive"):
        F.adaptive_threshold_dynamics((v, torch.zeros(3, 1, 2)), 1.0, 0.5, 0.0, 0.0, condition="phase")
    with pytest.raises(TypeError, match="condition"):
        F.adaptive_threshold_dynamics(v, 1.0, 0.5, 0.0, 0.0, condition=lambda t, a, b: True)


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(threshold_step=-0.5), ValueError, "threshold_step"),
        (dict(threshold_step=None), TypeError, "threshold_step"),
        (dict(threshold_decay=1.5), ValueError, "threshold_decay"),
        (dict(refractory_decay=(0.1, 0.2)), ValueError, "refractory_decay"),
        (dict(threshold=0.001), ValueError, "threshold"),
    ],
)
def test_constructor_validation(kw, exc, match):
    with pytest.raises(exc, match=match):
        alif.Neuron(**{**L2, **kw})


def test_functional_validation():
    x = torch.zeros(4, 2, 3)
    p = F.AlifParams(1.0, 0.5, 100.0, 100.0, 100.0, 100.0)
    with pytest.raises(TypeError, match="params"):
        F.alif_multistep(x, F.CubaParams(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="params.threshold_decay"):
        F.alif_multistep(x, p._replace(threshold_decay=-1.0))
    with pytest.raises(ValueError, match="params.threshold_step"):
        F.alif_multistep(x, p._replace(threshold_step=-1.0))
    with pytest.raises(TypeError, match="state"):
        F.alif_multistep(x, p, state=F.CubaState(torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(TypeError, match="complex"):
        F.alif_multistep(torch.zeros(4, 2, 3, dtype=torch.complex64), p)
    with pytest.raises(TypeError, match="real"):
        alif.Neuron(**L2)((x, x))
