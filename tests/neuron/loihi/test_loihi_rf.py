"""RF and RF-Iz (SPEC 6, 7, 17 L3/L4): functional resonator, step vs multi-step, gradients vs a
float64 reference, the Neuron modules, device parameters and every validation error."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from spikefuse import kernels
from spikefuse.functional import resonator as R
from spikefuse.neuron.loihi import rf, rf_iz
from spikefuse.spike import complex_spike, real_spike


# --------------------------------------------------------------------------- independent references


def _rstz(a):
    return np.sign(a) * (np.abs(a) >> 12)


def int_resonator(xr, xi, S, C, s=4096, iz_threshold=None, re0=None, im0=None):
    """Plain NumPy int64 loop of SPEC 6.2 (written independently of the library)."""
    xr = np.asarray(xr, dtype=np.float64)
    xi = np.asarray(xi, dtype=np.float64)
    S = np.asarray(S, dtype=np.int64)
    C = np.asarray(C, dtype=np.int64)
    re = np.zeros(xr.shape[1:], dtype=np.int64) if re0 is None else np.trunc(np.asarray(re0) * s).astype(np.int64)
    im = np.zeros(xr.shape[1:], dtype=np.int64) if im0 is None else np.trunc(np.asarray(im0) * s).astype(np.int64)
    out_re, out_im, fired = [], [], []
    for t in range(xr.shape[0]):
        rn = _rstz(C * re) - _rstz(S * im) + np.trunc(xr[t] * s).astype(np.int64)
        inn = _rstz(S * re) + _rstz(C * im) + np.trunc(xi[t] * s).astype(np.int64)
        out_re.append(rn)
        out_im.append(inn)
        if iz_threshold is not None:
            f = inn >= iz_threshold * s
            fired.append(f)
            re = np.where(f, 0, rn)
            im = np.where(f, int(iz_threshold * s - 1), inn)
        else:
            re, im = rn, inn
    return np.stack(out_re), np.stack(out_im), (np.stack(fired) if fired else None)


def float_reference(model, xr, xi, S, C, theta, int_re, int_im, re0, im0, tau_grad=1.0, scale_grad=1.0,
                    graded=False):
    """float64 autograd model: the float recurrence with values pinned (straight-through) to the
    integer trajectory; the Izhikevich reset is straight-through. Returns (spikes, re, im)."""
    Sf, Cf = S / 4096.0, C / 4096.0
    re, im = re0, im0
    res, ims = [], []
    for t in range(xr.shape[0]):
        fr = Cf * re - Sf * im + xr[t]
        fi = Sf * re + Cf * im + xi[t]
        r_t = fr + (int_re[t] - fr).detach()
        i_t = fi + (int_im[t] - fi).detach()
        res.append(r_t)
        ims.append(i_t)
        if model == "rf_iz":
            f = (i_t >= theta).to(i_t.dtype).detach()
            reset_im = float(int(theta * 4096 - 1)) / 4096
            re = r_t - r_t.detach() * f
            im = i_t + ((reset_im - i_t) * f).detach()
        else:
            re, im = r_t, i_t
    re_s, im_s = torch.stack(res), torch.stack(ims)
    if model == "rf":
        s = complex_spike(re_s, im_s, theta, 0.5 * tau_grad * theta, 10 * scale_grad, graded, im0.detach())
    else:
        s = real_spike(im_s, theta, 100 * tau_grad * theta, 0.1 * scale_grad, graded)
    return s, re_s, im_s


def rand_inputs(T=12, B=3, C=4, scale=0.8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xr = (torch.rand(T, B, C, generator=g, dtype=dtype) - 0.3) * scale
    xi = (torch.rand(T, B, C, generator=g, dtype=dtype) - 0.3) * scale
    return xr, xi


# --------------------------------------------------------------------------- SPEC 17 L3 / L4


def test_L3_rf_vector():
    n = rf.Neuron(threshold=0.5, period=4, decay=0.0)
    assert int(n.cx_sin_decay) == 4095 and int(n.cx_cos_decay) == 0
    assert float(n.decay) == pytest.approx(1 / 4096, rel=1e-6)
    xr = torch.tensor([1.0, 0, 0, 0, 0, 0]).reshape(6, 1, 1).requires_grad_()
    xi = torch.zeros(6, 1, 1)
    re, im = n.dynamics((xr, xi))
    assert (re.flatten() * 4096).tolist() == [4096, 0, -4094, 0, 4092, 0]
    assert (im.flatten() * 4096).tolist() == [0, 4095, 0, -4093, 0, 4091]
    s = n.spike(re, im)
    assert s.flatten().tolist() == [0, 0, 0, 0, 1, 0]
    s[4].sum().backward()
    expected = [5.4292936, 0, -5.4319453, 0, 5.4345989, 0]
    assert xr.grad.flatten().tolist() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    # forward of the module gives the same spikes
    assert n((xr.detach(), xi)).flatten().tolist() == [0, 0, 0, 0, 1, 0]


def test_L4_rf_iz_vector():
    n = rf_iz.Neuron(threshold=0.5, period=4, decay=0.0)
    xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    re, im = n.dynamics((xr, xi))
    assert (re.flatten() * 4096).tolist() == [0, 411, 0, -409, 0, 407]
    assert (im.flatten() * 4096).tolist() == [2457, 0, 410, 0, -408, 0]
    assert n.spike(re, im).flatten().tolist() == [1, 0, 0, 0, 0, 0]
    # after t = 0 the state restarts from re = 0, im = 2047
    s, st = R.rf_iz_step((xr[0], xi[0]), None, n.params())
    assert s.item() == 1.0
    assert st.real.item() == 0.0 and st.imag.item() * 4096 == 2047


def test_functional_matches_independent_integer_loop():
    xr, xi = rand_inputs(T=20, B=2, C=3, scale=1.5)
    S = torch.tensor([2167.0, 3000.0, 1200.0])
    C = torch.tensor([2982.0, 1000.0, 3500.0])
    for model, iz in (("rf", None), ("rf_iz", 0.5)):
        p = R.RFParams(S, C, threshold=0.5)
        ms = getattr(R, f"{model}_multistep")
        _, _, tr = ms((xr, xi), p, backend="reference", return_traces=True)
        ire, iim, _ = int_resonator(xr.numpy(), xi.numpy(), S.numpy().astype(np.int64), C.numpy().astype(np.int64),
                                    iz_threshold=iz)
        assert np.array_equal((tr.real * 4096).numpy().astype(np.int64), ire)
        assert np.array_equal((tr.imag * 4096).numpy().astype(np.int64), iim)


def test_resonator_function_reset_and_state():
    x = torch.zeros(4, 1, 1)
    x[0] = 1.0
    re, im = R.resonator((x, torch.zeros_like(x)), 4095.0, 0.0)
    assert (im.flatten() * 4096).tolist() == [0, 4095, 0, -4093]
    # a start state is used (trunc(state * 4096))
    re2, im2 = R.resonator((torch.zeros(2, 1, 1), torch.zeros(2, 1, 1)), 4095.0, 0.0,
                           state=(torch.full((1, 1), 1.0), torch.zeros(1, 1)))
    assert (im2.flatten() * 4096).tolist() == [4095, 0]
    # Izhikevich reset: im >= θ restarts from (0, θ - 1 LSB)
    xi = torch.tensor([0.6, 0.0]).reshape(2, 1, 1)
    re3, im3 = R.resonator((torch.zeros_like(xi), xi), 4095.0, 0.0, threshold=0.5)
    assert (re3.flatten() * 4096).tolist() == [0, -2046]  # rstz(-4095 * 2047) = -2046


# --------------------------------------------------------------------------- step == multi-step


@pytest.mark.parametrize("model", ["rf", "rf_iz"])
@pytest.mark.parametrize("graded", [False, True])
def test_multistep_equals_looped_step(model, graded):
    xr, xi = rand_inputs(T=15, B=2, C=3, scale=1.6, seed=1)
    S = torch.tensor([2000.0, 2900.4, 1500.6], requires_grad=True)
    C = torch.tensor([2800.0, 1000.0, 3400.0], requires_grad=True)
    re0 = (torch.randint(-300, 300, (2, 3)) / 4096.0).requires_grad_()
    im0 = (torch.randint(-300, 300, (2, 3)) / 4096.0).requires_grad_()
    state_cls = R.RFState if model == "rf" else R.RFIzState
    p = R.RFParams(S, C, threshold=0.5, tau_grad=0.7, scale_grad=1.3, graded_spike=graded)
    g = torch.Generator().manual_seed(5)
    Rw = torch.randn(15, 2, 3, generator=g)

    def run_multi():
        a, b = xr.clone().requires_grad_(), xi.clone().requires_grad_()
        s, st = getattr(R, f"{model}_multistep")((a, b), p, state_cls(re0, im0), backend="reference")
        loss = (s * Rw).sum() + (st.real * 0.3).sum() + (st.imag * 0.2).sum()
        grads = torch.autograd.grad(loss, [a, b, S, C, re0, im0])
        return s.detach(), st, grads

    def run_steps():
        a, b = xr.clone().requires_grad_(), xi.clone().requires_grad_()
        st = state_cls(re0, im0)
        out = []
        for t in range(15):
            s, st = getattr(R, f"{model}_step")((a[t], b[t]), st, p)
            out.append(s)
        s = torch.stack(out)
        loss = (s * Rw).sum() + (st.real * 0.3).sum() + (st.imag * 0.2).sum()
        grads = torch.autograd.grad(loss, [a, b, S, C, re0, im0])
        return s.detach(), st, grads

    s1, st1, g1 = run_multi()
    s2, st2, g2 = run_steps()
    assert s1.sum() > 0
    assert torch.equal(s1, s2)
    assert torch.equal(st1.real.detach(), st2.real.detach()) and torch.equal(st1.imag.detach(), st2.imag.detach())
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- gradients vs float64 reference


@pytest.mark.parametrize("model", ["rf", "rf_iz"])
def test_gradients_match_float64_reference(model):
    T, B, Cn = 14, 2, 3
    xr, xi = rand_inputs(T=T, B=B, C=Cn, scale=1.6, dtype=torch.float64, seed=2)
    S = torch.tensor([2000.0, 2900.0, 1500.0], dtype=torch.float64)
    C = torch.tensor([2800.0, 1000.0, 3400.0], dtype=torch.float64)
    re0 = torch.randint(-300, 300, (B, Cn)).double() / 4096
    im0 = torch.randint(-300, 300, (B, Cn)).double() / 4096
    g = torch.Generator().manual_seed(3)
    Rw, Q, Q2 = (torch.randn(T, B, Cn, generator=g, dtype=torch.float64) for _ in range(3))
    theta = 0.5

    leaves = [t.clone().requires_grad_() for t in (xr, xi, S, C, re0, im0)]
    p = R.RFParams(leaves[2], leaves[3], threshold=theta, tau_grad=0.8, scale_grad=1.2)
    state = (R.RFState if model == "rf" else R.RFIzState)(leaves[4], leaves[5])
    s, st, tr = getattr(R, f"{model}_multistep")((leaves[0], leaves[1]), p, state, backend="reference",
                                                 return_traces=True)
    assert s.dtype == torch.float64 and s.sum() > 0
    loss = (s * Rw).sum() + (tr.real * Q).sum() + (tr.imag * Q2).sum()
    got = torch.autograd.grad(loss, leaves)

    ref_leaves = [t.clone().requires_grad_() for t in (xr, xi, S, C, re0, im0)]
    ire, iim, _ = int_resonator(xr.numpy(), xi.numpy(), S.numpy().astype(np.int64), C.numpy().astype(np.int64),
                                iz_threshold=theta if model == "rf_iz" else None, re0=re0.numpy(), im0=im0.numpy())
    s_ref, re_ref, im_ref = float_reference(
        model, ref_leaves[0], ref_leaves[1], ref_leaves[2], ref_leaves[3], theta,
        torch.from_numpy(ire).double() / 4096, torch.from_numpy(iim).double() / 4096,
        ref_leaves[4], ref_leaves[5], tau_grad=0.8, scale_grad=1.2,
    )
    assert torch.equal(s_ref.detach(), s.detach())
    loss_ref = (s_ref * Rw).sum() + (re_ref * Q).sum() + (im_ref * Q2).sum()
    want = torch.autograd.grad(loss_ref, ref_leaves)
    for name, a, b in zip(("xr", "xi", "sin", "cos", "re0", "im0"), got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_lava_decay_grad_is_4096_times_exact_without_initial_term():
    xr, xi = rand_inputs(T=10, B=2, C=3, scale=1.6, dtype=torch.float64, seed=4)
    out = {}
    for mode in ("exact", "lava"):
        S = torch.tensor([2100.0], dtype=torch.float64, requires_grad=True)
        C = torch.tensor([2900.0], dtype=torch.float64, requires_grad=True)
        s, _, tr = R.rf_multistep((xr, xi), R.RFParams(S, C, threshold=0.5, decay_grad=mode),
                                  backend="reference", return_traces=True)
        (s.sum() + tr.real.sum() - 0.5 * tr.imag.sum()).backward()
        out[mode] = (S.grad.clone(), C.grad.clone())
    # zero initial state: the t = 0 term vanishes and lava = 4096 * exact
    torch.testing.assert_close(out["lava"][0], 4096 * out["exact"][0])
    torch.testing.assert_close(out["lava"][1], 4096 * out["exact"][1])


def test_decay_gradient_sign_against_finite_difference_of_float_model():
    # the exact rule is the derivative of the float dynamics w.r.t. the rounded decay (per unit)
    xr, xi = rand_inputs(T=8, B=1, C=1, scale=0.5, dtype=torch.float64, seed=6)
    S = torch.tensor([2100.0], dtype=torch.float64, requires_grad=True)
    C = torch.tensor([2900.0], dtype=torch.float64, requires_grad=True)
    re, im = R.resonator((xr, xi), S, C)
    (re.sum() + im.sum()).backward()

    def float_model(Sv, Cv):
        a = b = torch.zeros(1, 1, dtype=torch.float64)
        tot = 0.0
        for t in range(8):
            a, b = Cv / 4096 * a - Sv / 4096 * b + xr[t], Sv / 4096 * a + Cv / 4096 * b + xi[t]
            tot = tot + a.sum() + b.sum()
        return tot

    h = 1e-3
    fd_s = (float_model(2100 + h, 2900) - float_model(2100 - h, 2900)) / (2 * h)
    fd_c = (float_model(2100, 2900 + h) - float_model(2100, 2900 - h)) / (2 * h)
    # the integer trajectory differs from the float one by a few LSB only
    assert S.grad.item() == pytest.approx(fd_s.item(), rel=2e-2)
    assert C.grad.item() == pytest.approx(fd_c.item(), rel=2e-2)


# --------------------------------------------------------------------------- neuron modules


def test_parameters_and_properties():
    n = rf.Neuron(threshold=0.5, period=8, decay=0.1)
    assert int(n.cx_sin_decay) == 2607 and int(n.cx_cos_decay) == 2607
    S = C = 2607 / 4096
    assert n.decay == pytest.approx(1 - math.sqrt(S * S + C * C))
    assert n.frequency == pytest.approx(1 / 8)
    assert n.period == pytest.approx(8.0)
    assert n.lam == pytest.approx(-math.log(1 - n.decay))
    assert n.scale == 64 and n.s_scale == 4096 and n.p_scale == 4096
    assert n.v_th_mant == 32 and n.threshold == 0.5
    assert n.device_params == {"type": "RF_PHASE", "sinDecay": 2607, "cosDecay": 2607, "vThMant": 32, "gradedSpike": False}
    assert rf_iz.Neuron(threshold=0.5, period=8, decay=0.1).device_params["type"] == "RF_IZHIKEVICH"
    assert n.sin_decay.requires_grad is False
    assert rf.Neuron(threshold=0.5, period=8, decay=0.1, requires_grad=True).sin_decay.requires_grad


@pytest.mark.parametrize("mod", [rf, rf_iz])
def test_device_params_round_trip(mod):
    for period, decay, th in ((8, 0.1, 0.5), (13.7, 0.03, 1.25), (4.5, 0.0, 0.0625)):
        n = mod.Neuron(threshold=th, period=period, decay=decay)
        kw = mod.neuron_params(n.device_params)
        n2 = mod.Neuron(**kw)
        assert n2.device_params == n.device_params
        assert kw["period"] == pytest.approx(float(n.period)) and kw["decay"] == pytest.approx(float(n.decay))


def test_clamp_keeps_rotation_in_first_quadrant():
    n = rf.Neuron(threshold=0.5, period=8, decay=0.1, requires_grad=True)
    with torch.no_grad():
        n.sin_decay.fill_(5000.0)
        n.cos_decay.fill_(-200.0)
    # cx getters clamp
    s, c = int(n.cx_sin_decay), int(n.cx_cos_decay)
    assert c == 0 and 1 <= s <= 4095
    assert math.hypot(n.sin_decay.item(), n.cos_decay.item()) <= 4095 + 1e-3
    with torch.no_grad():
        n.sin_decay.fill_(-3.0)
        n.cos_decay.fill_(100.0)
    n.clamp()
    assert n.sin_decay.item() == 1.0 and n.cos_decay.item() == 100.0
    # period 4 with decay 0 has gain 4096 and is scaled just below 1
    n4 = rf.Neuron(threshold=0.5, period=4, decay=0.0)
    assert n4.sin_decay.item() == pytest.approx(4095.0)


def test_shared_param_false_sampling():
    torch.manual_seed(0)
    n = rf.Neuron(threshold=0.5, period=(10, 40), decay=(0.05, 0.1), shared_param=False)
    x = torch.zeros(3, 2, 5, 2)
    n((x, x))
    assert n.sin_decay.shape == (5,)
    periods = np.asarray(n.period)
    # log spaced: channel 0 the longest period, the last channel the shortest
    assert periods[0] == pytest.approx(40, rel=2e-2) and periods[-1] == pytest.approx(10, rel=2e-2)
    assert np.all(np.diff(periods) < 0)
    decays = np.asarray(n.decay)
    assert np.all(decays > 0.049) and np.all(decays < 0.101)
    # scalar period: 1 % jitter, uniform frequencies with log_init=False
    n2 = rf_iz.Neuron(threshold=0.5, period=20, decay=0.1, shared_param=False, log_init=False)
    n2((x, x))
    p2 = np.asarray(n2.period)
    assert np.all(p2 > 19.7) and np.all(p2 < 20.3)
    assert n2.device_params["sinDecay"].shape == (5,)


def test_per_channel_decays_act_along_the_channel_dim():
    torch.manual_seed(1)
    n = rf.Neuron(threshold=0.25, period=(6, 30), decay=(0.02, 0.2), shared_param=False)
    xr, xi = (torch.rand(10, 2, 3, 4, 5) - 0.3 for _ in range(2))
    out = n((xr, xi))
    for c in range(3):
        nc = rf.Neuron(threshold=0.25, period=8, decay=0.1)
        with torch.no_grad():
            nc.sin_decay.fill_(n.sin_decay[c].item())
            nc.cos_decay.fill_(n.cos_decay[c].item())
        assert torch.equal(nc((xr[:, :, c], xi[:, :, c])), out[:, :, c])


@pytest.mark.parametrize("mod", [rf, rf_iz])
def test_persistent_state_equals_one_long_call(mod):
    xr, xi = rand_inputs(T=16, B=2, C=3, scale=1.8, seed=7)
    n1 = mod.Neuron(threshold=0.5, period=7, decay=0.05)
    full = n1((xr, xi))
    n2 = mod.Neuron(threshold=0.5, period=7, decay=0.05, persistent_state=True)
    parts = torch.cat([n2((xr[:9], xi[:9])), n2((xr[9:], xi[9:]))])
    assert full.sum() > 0
    assert torch.equal(full, parts)
    # the dynamics/spike split gives the same persistent behaviour
    n3 = mod.Neuron(threshold=0.5, period=7, decay=0.05, persistent_state=True)
    parts3 = torch.cat([n3.spike(*n3.dynamics((xr[:9], xi[:9]))), n3.spike(*n3.dynamics((xr[9:], xi[9:])))])
    assert torch.equal(full, parts3)
    # without persistence every call starts from zero
    n4 = mod.Neuron(threshold=0.5, period=7, decay=0.05)
    assert torch.equal(n4((xr[9:], xi[9:])), mod.Neuron(threshold=0.5, period=7, decay=0.05)((xr[9:], xi[9:])))
    # a batch-size change re-creates the states
    out_b1 = n2((xr[:5, :1], xi[:5, :1]))
    assert torch.equal(out_b1, mod.Neuron(threshold=0.5, period=7, decay=0.05)((xr[:5, :1], xi[:5, :1])))


def test_rf_persistent_phase_crossing_across_calls():
    # the previous call's last imaginary part decides a crossing at the first step of the next call
    n = rf.Neuron(threshold=0.5, period=4, decay=0.0, persistent_state=True)
    xr = torch.tensor([1.0, 0, 0, 0]).reshape(4, 1, 1)
    n((xr, torch.zeros_like(xr)))  # ends with im = -4093/4096 < 0
    s = n((torch.zeros(1, 1, 1), torch.zeros(1, 1, 1)))
    assert s.item() == 1.0  # re = 4092/4096 >= 0.5 and im goes from < 0 to 0


def test_forward_equals_spike_of_dynamics_and_graded():
    xr, xi = rand_inputs(T=12, B=2, C=3, scale=1.8, seed=8)
    for mod in (rf, rf_iz):
        n = mod.Neuron(threshold=0.5, period=9, decay=0.05, graded_spike=True)
        out = n((xr, xi))
        re, im = n.dynamics((xr, xi))
        assert torch.equal(out, n.spike(re, im))
        fired = out != 0
        assert fired.any()
        payload = re if mod is rf else im
        assert torch.equal(out[fired], payload[fired])


def test_norm_instances_and_dropout():
    class Twice(nn.Module):
        def forward(self, x):
            return 2 * x

    xr, xi = rand_inputs(T=10, B=2, C=3, scale=0.9, seed=9)
    n = rf.Neuron(threshold=0.5, period=7, decay=0.05, norm=Twice)
    assert isinstance(n.real_norm, Twice) and isinstance(n.imag_norm, Twice) and n.real_norm is not n.imag_norm
    ref = rf.Neuron(threshold=0.5, period=7, decay=0.05)
    assert torch.equal(n((xr, xi)), ref((2 * xr, 2 * xi)))

    class Zero(nn.Module):
        def forward(self, s):
            return torch.zeros_like(s)

    nd = rf_iz.Neuron(threshold=0.5, period=7, decay=0.05, dropout=Zero())
    assert nd((3 * xr, 3 * xi)).abs().sum() == 0


def test_lava_mode_and_requires_grad_learn_decays():
    xr, xi = rand_inputs(T=10, B=2, C=3, scale=1.5, seed=10)
    grads = {}
    for mode in ("exact", "lava"):
        n = rf.Neuron(threshold=0.5, period=7, decay=0.05, requires_grad=True, decay_grad=mode)
        n((xr, xi)).sum().backward()
        grads[mode] = n.sin_decay.grad.clone()
    assert grads["exact"].abs().sum() > 0
    torch.testing.assert_close(grads["lava"], 4096 * grads["exact"], rtol=1e-5, atol=1e-6)


def test_kernel_hook_is_consulted():
    calls = []

    def fake(x_seq, params, state, return_traces):
        # kernel contract: a raw state tuple in, raw (outputs, final state, traces) out
        calls.append((tuple(x_seq[0].shape), type(state).__name__, len(state), return_traces))
        s, st, _ = R._core("rf", x_seq[0], x_seq[1], params, R.RFState(*state), False, return_traces)
        return (s,), tuple(st), None

    kernels._load_backends()
    key = ("loihi_rf", "cpu")
    old = kernels._REGISTRY.get(key)
    kernels.register("loihi_rf", "cpu", fake)
    try:
        xr, xi = rand_inputs(T=5, B=1, C=2)
        s, st = R.rf_multistep((xr, xi), R.RFParams(2000.0, 2500.0, threshold=0.5), backend="cpu")
        assert calls == [((5, 1, 2), "tuple", 2, False)]
        ref, _ = R.rf_multistep((xr, xi), R.RFParams(2000.0, 2500.0, threshold=0.5), backend="reference")
        assert torch.equal(s, ref)
    finally:
        if old is None:
            kernels._REGISTRY.pop(key, None)
        else:
            kernels._REGISTRY[key] = old


def test_dtypes():
    xr, xi = rand_inputs(T=6, B=1, C=2, scale=1.5)
    p = R.RFParams(2000.0, 2500.0, threshold=0.5)
    s16, st16 = R.rf_multistep((xr.half(), xi.half()), p, backend="reference")
    assert s16.dtype == torch.float16 and st16.real.dtype == torch.float32
    s64, st64 = R.rf_multistep((xr.double(), xi.double()), p, backend="reference")
    assert s64.dtype == torch.float64 and st64.real.dtype == torch.float64


# --------------------------------------------------------------------------- errors


def test_functional_errors():
    xr, xi = rand_inputs(T=4, B=1, C=2)
    p = R.RFParams(2000.0, 2500.0, threshold=0.5)
    with pytest.raises(TypeError, match="pair"):
        R.rf_multistep(xr, p)
    with pytest.raises(TypeError, match="pair"):
        R.rf_step((xr[0], xi[0], xi[0]), None, p)
    with pytest.raises(ValueError, match="same shape"):
        R.rf_multistep((xr, xi[:, :, :1]), p)
    with pytest.raises(ValueError, match="at least 2"):
        R.rf_multistep((xr[0, 0], xi[0, 0]), p)
    with pytest.raises(ValueError, match="NaN"):
        R.rf_multistep((xr * float("nan"), xi), p)
    with pytest.raises(TypeError, match="RFParams"):
        R.rf_multistep((xr, xi), {"sin_decay": 1})
    with pytest.raises(TypeError, match="AdRFParams"):
        R.adrf_multistep((xr, xi), p)
    with pytest.raises(ValueError, match="params.sin_decay"):
        R.rf_multistep((xr, xi), p._replace(sin_decay=5000.0))
    with pytest.raises(ValueError, match="params.cos_decay"):
        R.rf_multistep((xr, xi), p._replace(cos_decay=-1.0))
    with pytest.raises(ValueError, match="params.sin_decay"):
        R.rf_multistep((xr, xi), p._replace(sin_decay=torch.tensor([1.0, 2.0, 3.0])))
    with pytest.raises(ValueError, match="params.threshold"):
        R.rf_multistep((xr, xi), p._replace(threshold=0.0))
    with pytest.raises(ValueError, match="params.tau_grad"):
        R.rf_multistep((xr, xi), p._replace(tau_grad=0.0))
    with pytest.raises(ValueError, match="params.decay_grad"):
        R.rf_multistep((xr, xi), p._replace(decay_grad="wrong"))
    with pytest.raises(TypeError, match="params.graded_spike"):
        R.rf_multistep((xr, xi), p._replace(graded_spike=1))
    with pytest.raises(TypeError, match="params.s_scale"):
        R.rf_multistep((xr, xi), p._replace(s_scale=4096.0))
    with pytest.raises(TypeError, match="state"):
        R.rf_multistep((xr, xi), p, state=(torch.zeros(1, 2),))
    with pytest.raises(ValueError, match="state.real"):
        R.rf_multistep((xr, xi), p, state=R.RFState(torch.zeros(3, 2), torch.zeros(1, 2)))
    with pytest.raises(TypeError, match="return_traces"):
        R.rf_multistep((xr, xi), p, return_traces=1)
    with pytest.raises(ValueError, match="backend"):
        R.rf_multistep((xr, xi), p, backend="nope")
    with pytest.raises(ValueError, match="model"):
        R.initial_state("lif", (1, 2), p)
    with pytest.raises(ValueError, match="threshold"):
        R.resonator((xr, xi), 2000.0, 2500.0, threshold=-1.0)
    with pytest.raises(ValueError, match="decay_grad"):
        R.resonator((xr, xi), 2000.0, 2500.0, decay_grad="x")
    with pytest.raises(ValueError, match="sin_decay"):
        R.resonator((xr, xi), 4097.0, 2500.0)


@pytest.mark.parametrize("mod", [rf, rf_iz])
def test_neuron_errors(mod):
    with pytest.raises(ValueError, match="period"):
        mod.Neuron(threshold=0.5, period=3.9, decay=0.1)
    with pytest.raises(ValueError, match="period"):
        mod.Neuron(threshold=0.5, period=(3, 10), decay=0.1, shared_param=False)
    with pytest.raises(ValueError, match="period"):
        mod.Neuron(threshold=0.5, period=(12, 10), decay=0.1, shared_param=False)
    with pytest.raises(ValueError, match="period"):
        mod.Neuron(threshold=0.5, period=(5, 10), decay=0.1)  # pair needs shared_param=False
    with pytest.raises(ValueError, match="period"):
        mod.Neuron(threshold=0.5, period=(5, 10, 12), decay=0.1, shared_param=False)
    with pytest.raises(TypeError, match="period"):
        mod.Neuron(threshold=0.5, period="8", decay=0.1)
    with pytest.raises(ValueError, match="decay"):
        mod.Neuron(threshold=0.5, period=8, decay=1.5)
    with pytest.raises(ValueError, match="decay"):
        mod.Neuron(threshold=0.5, period=8, decay=-0.1)
    with pytest.raises(ValueError, match="decay"):
        mod.Neuron(threshold=0.5, period=8, decay=(0.1, 0.2))
    with pytest.raises(ValueError, match="threshold"):
        mod.Neuron(threshold=0.01, period=8, decay=0.1)  # 0.01 * 64 < 1
    with pytest.raises(ValueError, match="tau_grad"):
        mod.Neuron(threshold=0.5, period=8, decay=0.1, tau_grad=0)
    with pytest.raises(ValueError, match="scale"):
        mod.Neuron(threshold=0.5, period=8, decay=0.1, scale=0)
    with pytest.raises(TypeError, match="graded_spike"):
        mod.Neuron(threshold=0.5, period=8, decay=0.1, graded_spike="yes")
    with pytest.raises(TypeError, match="log_init"):
        mod.Neuron(threshold=0.5, period=8, decay=0.1, log_init=1)
    with pytest.raises(ValueError, match="decay_grad"):
        mod.Neuron(threshold=0.5, period=8, decay=0.1, decay_grad="sign")
    n = mod.Neuron(threshold=0.5, period=8, decay=0.1)
    x = torch.zeros(4, 2, 3)
    with pytest.raises(TypeError, match="pair"):
        n(x)  # a real tensor given to a complex neuron
    with pytest.raises(ValueError, match="same shape"):
        n((x, torch.zeros(4, 2, 4)))
    with pytest.raises(ValueError, match="dimensions"):
        n((x[:, :, 0], x[:, :, 0]))
    n((x, x))
    with pytest.raises(ValueError, match="shape"):
        n((torch.zeros(4, 2, 5), torch.zeros(4, 2, 5)))
    with pytest.raises(ValueError, match="device_params"):
        mod.neuron_params({"vThMant": 32, "sinDecay": 100})
    with pytest.raises(TypeError, match="device_params"):
        mod.neuron_params([1, 2])
    with pytest.raises(ValueError, match="sinDecay"):
        mod.neuron_params({"vThMant": 32, "sinDecay": 0, "cosDecay": 100})


def test_real_neuron_rejects_complex_pair():
    from spikefuse.neuron.loihi import cuba

    n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.5)
    with pytest.raises(TypeError, match="pair"):
        n((torch.zeros(3, 1, 2), torch.zeros(3, 1, 2)))
