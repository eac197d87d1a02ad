"""AdRF and AdRF-Iz (SPEC 3.4, 8, 9, 17 L5/L6, 18 #4-#6): functional layer, step vs multi-step,
gradients vs a float64 reference, modules, device parameters and validation errors."""
import numpy as np
import pytest
import torch

from spikefuse.functional import resonator as R
from spikefuse.neuron.loihi import adrf, adrf_iz
from spikefuse.spike import complex_spike, real_spike


def _rstz(a):
    return np.sign(a) * (np.abs(a) >> 12)


def int_adaptive(model, xr, xi, S, C, Dth, Dr, th0, step, s=4096, state=None):
    """Independent NumPy int64 loop of SPEC 3.4 + 6.2 for AdRF ("phase") / AdRF-Iz ("iz")."""
    shape = xr.shape[1:]
    if state is None:
        re = np.zeros(shape, np.int64)
        im = np.zeros(shape, np.int64)
        th = np.full(shape, int(th0 * s), np.int64)
        r = np.zeros(shape, np.int64)
    else:
        re, im, th, r = (np.trunc(np.asarray(v, dtype=np.float64) * s).astype(np.int64) for v in state)
    th0_i, step_i = int(th0 * s), int(step * s)
    out = {k: [] for k in ("re", "im", "th", "r", "s")}
    for t in range(xr.shape[0]):
        r = _rstz(r * (4096 - Dr))
        th = _rstz((th - th0_i) * (4096 - Dth)) + th0_i
        rn = _rstz(C * re) - _rstz(S * im) + np.trunc(np.asarray(xr[t], np.float64) * s).astype(np.int64)
        inn = _rstz(S * re) + _rstz(C * im) + np.trunc(np.asarray(xi[t], np.float64) * s).astype(np.int64)
        if model == "adrf":
            spk = (rn >= th + r) & (inn >= 0) & (im < 0)
        else:
            spk = inn >= th + r
        for k, v in (("re", rn), ("im", inn), ("th", th), ("r", r), ("s", spk)):
            out[k].append(v)
        r = np.where(spk, r + 2 * th, r)
        th = np.where(spk, th + step_i, th)
        re, im = rn, inn
    return {k: np.stack(v) for k, v in out.items()}


def rand_inputs(T=12, B=2, C=3, scale=1.6, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.rand(T, B, C, generator=g, dtype=dtype) - 0.3) * scale for _ in range(2))


PARAMS = dict(threshold=0.5, threshold_step=0.25, period=4, decay=0.0, threshold_decay=0.5, refractory_decay=0.5)


# --------------------------------------------------------------------------- SPEC 17 L5 / L6


def test_L5_adrf_vector():
    n = adrf.Neuron(**PARAMS)
    xr = torch.zeros(9, 1, 1)
    xr[0] = 1.0
    re, im, th, r = n.dynamics((xr, torch.zeros_like(xr)))
    assert (re.flatten() * 4096).tolist() == [4096, 0, -4094, 0, 4092, 0, -4090, 0, 4088]
    assert (im.flatten() * 4096).tolist() == [0, 4095, 0, -4093, 0, 4091, 0, -4089, 0]
    assert (th.flatten() * 4096).tolist() == [2048, 2048, 2048, 2048, 2048, 2560, 2304, 2176, 2112]
    assert (r.flatten() * 4096).tolist() == [0, 0, 0, 0, 0, 2048, 1024, 512, 256]
    s = n.spike(re, im, th, r)
    assert s.flatten().nonzero().flatten().tolist() == [4, 8]
    assert torch.equal(n((xr, torch.zeros_like(xr))), s)


def test_L6_adrf_iz_vector():
    n = adrf_iz.Neuron(**PARAMS)
    xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    re, im, th, r = n.dynamics((xr, xi))
    assert (re.flatten() * 4096).tolist() == [0, 1, 0, 0, 0, 0]
    assert (im.flatten() * 4096).tolist() == [2457, 0, 0, 0, 0, 0]
    assert (th.flatten() * 4096).tolist() == [2048, 2560, 2304, 2176, 2112, 2080]
    assert (r.flatten() * 4096).tolist() == [0, 2048, 1024, 512, 256, 128]
    s = n.spike(re, im, th, r)
    assert s.flatten().tolist() == [1, 0, 0, 0, 0, 0]
    # SPEC 18 #6: forward is spike(*dynamics(x))
    assert torch.equal(n((xr, xi)), s)


@pytest.mark.parametrize("model", ["adrf", "adrf_iz"])
def test_matches_independent_integer_loop(model):
    xr, xi = rand_inputs(T=25, B=2, C=3, scale=2.0, seed=1)
    S = torch.tensor([2167.0, 3000.0, 1200.0])
    C = torch.tensor([2982.0, 1000.0, 3500.0])
    p = R.AdRFParams(S, C, torch.tensor([400.0, 1000.0, 2048.0]), 700.0, threshold=0.375, threshold_step=0.125)
    s, st, tr = getattr(R, f"{model}_multistep")((xr, xi), p, backend="reference", return_traces=True)
    ref = int_adaptive(model, xr.numpy(), xi.numpy(), S.numpy().astype(np.int64), C.numpy().astype(np.int64),
                       np.array([400, 1000, 2048]), 700, 0.375, 0.125)
    for k, v in (("re", tr.real), ("im", tr.imag), ("th", tr.threshold), ("r", tr.refractory)):
        assert np.array_equal((v * 4096).numpy().astype(np.int64), ref[k]), k
    assert ref["s"].sum() > 0
    assert np.array_equal(s.numpy() > 0, ref["s"])


# --------------------------------------------------------------------------- step == multi-step


@pytest.mark.parametrize("model", ["adrf", "adrf_iz"])
@pytest.mark.parametrize("graded", [False, True])
def test_multistep_equals_looped_step(model, graded):
    T = 18
    xr, xi = rand_inputs(T=T, B=2, C=3, scale=2.0, seed=2)
    S = torch.tensor([2000.0, 2900.4, 1500.6], requires_grad=True)
    C = torch.tensor([2800.0, 1000.0, 3400.0], requires_grad=True)
    state_cls = R.AdRFState if model == "adrf" else R.AdRFIzState
    re0 = (torch.randint(-300, 300, (2, 3)) / 4096.0).requires_grad_()
    im0 = (torch.randint(-300, 300, (2, 3)) / 4096.0).requires_grad_()
    st0 = state_cls(re0, im0, torch.full((2, 3), 0.6), torch.full((2, 3), 0.1))
    p = R.AdRFParams(S, C, 600.0, 1200.0, threshold=0.375, threshold_step=0.125, tau_grad=0.6,
                     scale_grad=2.0, graded_spike=graded)
    w = torch.randn(T, 2, 3, generator=torch.Generator().manual_seed(4))

    def finish(s, st, a, b):
        loss = (s * w).sum() + (st.real * 0.3).sum() - (st.imag * 0.2).sum()
        return torch.autograd.grad(loss, [a, b, S, C, re0, im0])

    a, b = xr.clone().requires_grad_(), xi.clone().requires_grad_()
    s1, st1 = getattr(R, f"{model}_multistep")((a, b), p, st0, backend="reference")
    g1 = finish(s1, st1, a, b)
    a2, b2 = xr.clone().requires_grad_(), xi.clone().requires_grad_()
    st = st0
    out = []
    for t in range(T):
        s, st = getattr(R, f"{model}_step")((a2[t], b2[t]), st, p)
        out.append(s)
    s2 = torch.stack(out)
    g2 = finish(s2, st, a2, b2)
    assert (s1 != 0).sum() > 0
    assert torch.equal(s1.detach(), s2.detach())
    for f in state_cls._fields:
        assert torch.equal(getattr(st1, f).detach(), getattr(st, f).detach()), f
    for x, y in zip(g1, g2):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["adrf", "adrf_iz"])
def test_gradients_match_float64_reference(model):
    T, B, Cn = 16, 2, 3
    xr, xi = rand_inputs(T=T, B=B, C=Cn, scale=2.0, dtype=torch.float64, seed=3)
    S = torch.tensor([2000.0, 2900.0, 1500.0], dtype=torch.float64)
    C = torch.tensor([2800.0, 1000.0, 3400.0], dtype=torch.float64)
    theta0, step = 0.375, 0.125
    g = torch.Generator().manual_seed(5)
    w, q1, q2 = (torch.randn(T, B, Cn, generator=g, dtype=torch.float64) for _ in range(3))

    leaves = [t.clone().requires_grad_() for t in (xr, xi, S, C)]
    p = R.AdRFParams(leaves[2], leaves[3], 900.0, 1500.0, threshold=theta0, threshold_step=step,
                     tau_grad=0.8, scale_grad=1.5)
    s, _, tr = getattr(R, f"{model}_multistep")((leaves[0], leaves[1]), p, backend="reference", return_traces=True)
    loss = (s * w).sum() + (tr.real * q1).sum() + (tr.imag * q2).sum()
    got = torch.autograd.grad(loss, leaves)

    ref = int_adaptive(model, xr.numpy(), xi.numpy(), S.numpy().astype(np.int64), C.numpy().astype(np.int64),
                       900, 1500, theta0, step)
    assert ref["s"].sum() > 0
    rl = [t.clone().requires_grad_() for t in (xr, xi, S, C)]
    re = im = torch.zeros(B, Cn, dtype=torch.float64)
    res, ims = [], []
    for t in range(T):
        fr = rl[3] / 4096 * re - rl[2] / 4096 * im + rl[0][t]
        fi = rl[2] / 4096 * re + rl[3] / 4096 * im + rl[1][t]
        re = fr + (torch.from_numpy(ref["re"][t]).double() / 4096 - fr).detach()
        im = fi + (torch.from_numpy(ref["im"][t]).double() / 4096 - fi).detach()
        res.append(re)
        ims.append(im)
    re_s, im_s = torch.stack(res), torch.stack(ims)
    thr = torch.from_numpy(ref["th"] + ref["r"]).double() / 4096
    if model == "adrf":
        s_ref = complex_spike(re_s, im_s, thr, 100 * 0.8 * theta0, 0.1 * 1.5, False, torch.zeros(B, Cn, dtype=torch.float64))
    else:
        s_ref = real_spike(im_s, thr, 100 * 0.8 * theta0, 0.1 * 1.5, False)
    assert torch.equal(s_ref.detach(), s.detach())
    loss_ref = (s_ref * w).sum() + (re_s * q1).sum() + (im_s * q2).sum()
    want = torch.autograd.grad(loss_ref, rl)
    for name, a, b in zip(("xr", "xi", "sin", "cos"), got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


# --------------------------------------------------------------------------- modules


@pytest.mark.parametrize("mod", [adrf, adrf_iz])
def test_properties_and_device_params_round_trip(mod):
    n = mod.Neuron(threshold=0.75, threshold_step=0.3, period=9, decay=0.07, threshold_decay=0.2,
                   refractory_decay=0.35)
    dp = n.device_params
    assert dp["type"] == ("ADRF_PHASE" if mod is adrf else "ADRF_IZHIKEVICH")
    assert dp["vThMant"] == 48 and dp["vThStep"] == 19  # trunc(0.3 * 64) = 19
    assert n.threshold_step == 19 / 64 and n.v_th_step == 19
    assert int(dp["thDecay"]) == round(0.2 * 4096) and int(dp["refDecay"]) == round(0.35 * 4096)
    assert int(n.cx_threshold_decay) == 819 and int(n.cx_refractory_decay) == 1434
    kw = mod.neuron_params(dp)
    assert kw["threshold_step"] == 19 / 64
    assert mod.neuron_params(dp, faithful=True)["threshold_step"] == 48 / 64  # SPEC 18 #4
    n2 = mod.Neuron(**kw)
    assert n2.device_params == dp
    # without vThStep the lava formula is used
    dp2 = {k: v for k, v in dp.items() if k != "vThStep"}
    assert mod.neuron_params(dp2)["threshold_step"] == 0.75


def test_threshold_decays_are_not_clamped_and_get_no_gradient():
    n = adrf.Neuron(threshold=0.5, threshold_step=0.25, period=6, decay=0.05, threshold_decay=0.3,
                    refractory_decay=0.4, requires_grad=True)
    with torch.no_grad():
        n.threshold_decay.fill_(5000.0)
    n.clamp()
    assert n.threshold_decay.item() == 5000.0
    with torch.no_grad():
        n.threshold_decay.fill_(0.3 * 4096)
    xr, xi = rand_inputs(T=12, B=2, C=3, scale=2.0, seed=6)
    n((xr, xi)).sum().backward()
    assert n.sin_decay.grad is not None and n.sin_decay.grad.abs().sum() > 0
    assert n.threshold_decay.grad is None and n.refractory_decay.grad is None


@pytest.mark.parametrize("mod", [adrf, adrf_iz])
def test_persistent_state_equals_one_long_call(mod):
    xr, xi = rand_inputs(T=20, B=2, C=3, scale=2.0, seed=7)
    kw = dict(threshold=0.375, threshold_step=0.125, period=7, decay=0.03, threshold_decay=0.2, refractory_decay=0.3)
    full = mod.Neuron(**kw)((xr, xi))
    assert full.sum() > 0
    n = mod.Neuron(persistent_state=True, **kw)
    assert torch.equal(full, torch.cat([n((xr[:11], xi[:11])), n((xr[11:], xi[11:]))]))
    m = mod.Neuron(persistent_state=True, **kw)
    parts = [m.spike(*m.dynamics((xr[:11], xi[:11]))), m.spike(*m.dynamics((xr[11:], xi[11:])))]
    assert torch.equal(full, torch.cat(parts))
    assert torch.equal(n.threshold_state, m.threshold_state) and torch.equal(n.refractory_state, m.refractory_state)
    assert torch.equal(n.imag_state, m.imag_state) and torch.equal(n.real_state, m.real_state)
    # the stored θ includes the last step's spike: compare with the functional final state
    _, st = getattr(R, f"{mod.Neuron._model}_multistep")((xr, xi), mod.Neuron(**kw).params(), backend="reference")
    assert torch.equal(n.threshold_state, st.threshold) and torch.equal(n.refractory_state, st.refractory)


def test_shared_param_false_sampling_order_and_ranges():
    kw = dict(threshold=0.5, threshold_step=0.25, period=(8, 16), decay=(0.02, 0.05),
              threshold_decay=(0.1, 0.2), refractory_decay=0.3, shared_param=False, log_init=False)
    torch.manual_seed(11)
    n = adrf.Neuron(**kw)
    x = torch.zeros(2, 1, 4)
    n((x, x))
    # lava draws rand(C) for frequency, decay, threshold decay, refractory decay, in that order
    torch.manual_seed(11)
    f = 1 / 16 + (1 / 8 - 1 / 16) * torch.rand(4)
    d = 0.02 + (0.05 - 0.02) * torch.rand(4)
    th = 0.1 + (0.2 - 0.1) * torch.rand(4)
    rd = 0.3 + (0.3 - 0.3) * torch.rand(4)
    torch.testing.assert_close(n.sin_decay.data, 4096 * torch.sin(2 * np.pi * f) * (1 - d), rtol=0, atol=0)
    torch.testing.assert_close(n.threshold_decay.data, 4096 * th, rtol=0, atol=0)
    torch.testing.assert_close(n.refractory_decay.data, 4096 * rd, rtol=0, atol=0)
    assert n.device_params["thDecay"].shape == (4,)


def test_graded_payloads():
    xr, xi = rand_inputs(T=16, B=2, C=3, scale=2.0, seed=8)
    kw = dict(threshold=0.375, threshold_step=0.125, period=7, decay=0.03, threshold_decay=0.2,
              refractory_decay=0.3, graded_spike=True)
    for mod in (adrf, adrf_iz):
        n = mod.Neuron(**kw)
        out = n((xr, xi))
        re, im, _, _ = n.dynamics((xr, xi))
        fired = out != 0
        assert fired.any()
        assert torch.equal(out[fired], (re if mod is adrf else im)[fired])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("mod", [adrf, adrf_iz])
def test_errors(mod):
    ok = dict(threshold=0.5, threshold_step=0.25, period=8, decay=0.1, threshold_decay=0.1, refractory_decay=0.1)
    with pytest.raises(ValueError, match="threshold_step"):
        mod.Neuron(**{**ok, "threshold_step": -0.1})
    with pytest.raises(TypeError, match="threshold_step"):
        mod.Neuron(**{**ok, "threshold_step": None})
    with pytest.raises(ValueError, match="threshold_decay"):
        mod.Neuron(**{**ok, "threshold_decay": 1.2})
    with pytest.raises(ValueError, match="refractory_decay"):
        mod.Neuron(**{**ok, "refractory_decay": (0.1, 0.2)})
    with pytest.raises(ValueError, match="refractory_decay"):
        mod.Neuron(**{**ok, "refractory_decay": (0.3, 0.2), "shared_param": False})
    with pytest.raises(ValueError, match="period"):
        mod.Neuron(**{**ok, "period": 2})
    with pytest.raises(ValueError, match="threshold"):
        mod.Neuron(**{**ok, "threshold": 0.0})
    with pytest.raises(ValueError, match="device_params"):
        mod.neuron_params({"vThMant": 32, "sinDecay": 100, "cosDecay": 100, "thDecay": 1})
    with pytest.raises(TypeError, match="faithful"):
        mod.neuron_params({"vThMant": 32, "sinDecay": 100, "cosDecay": 100, "thDecay": 1, "refDecay": 1}, faithful=1)
    n = mod.Neuron(**ok)
    with pytest.raises(TypeError, match="pair"):
        n(torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match="same shape"):
        n((torch.zeros(3, 1, 2), torch.zeros(3, 1, 3)))


def test_functional_param_errors():
    xr, xi = rand_inputs(T=4, B=1, C=2)
    p = R.AdRFParams(2000.0, 2000.0, 100.0, 100.0, threshold=0.5, threshold_step=0.25)
    with pytest.raises(ValueError, match="params.threshold_decay"):
        R.adrf_multistep((xr, xi), p._replace(threshold_decay=-1.0))
    with pytest.raises(ValueError, match="params.refractory_decay"):
        R.adrf_iz_multistep((xr, xi), p._replace(refractory_decay=4097.0))
    with pytest.raises(ValueError, match="params.threshold_step"):
        R.adrf_multistep((xr, xi), p._replace(threshold_step=-0.5))
    with pytest.raises(TypeError, match="RFParams"):
        R.rf_multistep((xr, xi), p)
    with pytest.raises(TypeError, match="AdRFIzState"):
        R.adrf_iz_step((xr[0], xi[0]), R.RFState(torch.zeros(1, 2), torch.zeros(1, 2)), p)
