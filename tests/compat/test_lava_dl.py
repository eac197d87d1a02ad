"""spikefuse.compat.lava_dl: lava-dl code run with only its import changed.

Each port test writes the call as a lava-dl user does (positional/keyword arguments as in
lava-dl's docs, time-last ``(N, C, ..., T)`` tensors) and checks it equals the native
time-first spikefuse module bit for bit, forward and gradients (decays included, with
lava's decay-gradient rule that the compat API defaults to).
"""
import numpy as np
import pytest
import torch

from spikefuse.compat.lava_dl import slayer
from spikefuse.neuron.loihi import adrf, adrf_iz, alif, cuba, dropout as ndropout, norm as nnorm, rf, rf_iz
from spikefuse.neuron.loihi import sigma_delta
from spikefuse.spike import complex_spike, real_spike

TL = lambda x: x.movedim(0, -1)  # noqa: E731  time-first -> lava
TF = lambda x: x.movedim(-1, 0)  # noqa: E731  lava -> time-first


def _grads(loss, leaves):
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def _seeded(fn, arg, seed):
    if seed is not None:   # per-channel decays are sampled at the first forward (global RNG)
        torch.manual_seed(seed)
    return fn(arg)


def _check_pair(compat, native, x_lava, complex_=False, decays=(), seed=None):
    """Run compat on lava tensors and native on their time-first views; compare."""
    if complex_:
        xs = [a.clone().requires_grad_() for a in x_lava]
        xn = [TF(a.detach()).clone().requires_grad_() for a in x_lava]
        s_c, s_n = _seeded(compat, tuple(xs), seed), _seeded(native, tuple(xn), seed)
    else:
        xs = [x_lava.clone().requires_grad_()]
        xn = [TF(x_lava).clone().requires_grad_()]
        s_c, s_n = _seeded(compat, xs[0], seed), _seeded(native, xn[0], seed)
    assert s_c.shape == x_lava[0].shape if complex_ else s_c.shape == x_lava.shape
    assert torch.equal(s_c, TL(s_n))
    w = torch.linspace(-1, 1, s_c.numel()).reshape(s_c.shape)
    g_c = _grads((s_c * w).sum(), xs + [getattr(compat, d) for d in decays])
    g_n = _grads((s_n * TF(w)).sum(), xn + [getattr(native, d) for d in decays])
    for k, (a, b) in enumerate(zip(g_c, g_n)):
        b = TL(b) if k < len(xs) and b is not None else b
        assert (a is None and b is None) or torch.equal(a, b), k
    return s_c


def test_port_cuba_with_norm_and_learnable_decays():
    torch.manual_seed(1)
    x = torch.rand(4, 3, 25) * 0.5
    c = slayer.neuron.cuba.Neuron(1.25, 0.25, 0.03, 0.5, 3, norm=slayer.neuron.norm.MeanOnlyBatchNorm,
                                  requires_grad=True)
    n = cuba.Neuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03, tau_grad=0.5, scale_grad=3,
                    norm=nnorm.MeanOnlyBatchNorm, requires_grad=True, decay_grad="lava")
    s = _check_pair(c, n, x, decays=("current_decay", "voltage_decay"))
    assert s.sum() > 0
    assert torch.equal(c.norm.running_mean, n.norm.running_mean) and c.norm.num_features == 3


def test_port_alif_per_channel_decays_and_persistent_state():
    x = torch.rand(2, 4, 12)
    c = slayer.neuron.alif.Neuron(1.0, 0.5, 0.25, (0.02, 0.04), 0.1, 0.1, shared_param=False,
                                  persistent_state=True, requires_grad=True)
    n = alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=0.25, voltage_decay=(0.02, 0.04),
                    threshold_decay=0.1, refractory_decay=0.1, shared_param=False, persistent_state=True,
                    requires_grad=True, decay_grad="lava")
    for _ in range(2):  # the second call starts from the stored states
        _check_pair(c, n, x, decays=("voltage_decay",), seed=3)
    assert torch.equal(c.voltage_decay, n.voltage_decay) and c.voltage_decay.numel() == 4
    assert torch.equal(c.refractory_state, n.refractory_state)


@pytest.mark.parametrize("mod,nmod,extra", [
    ("rf", rf, {}), ("rf_iz", rf_iz, {}),
    ("adrf", adrf, {"threshold_step": 0.25, "threshold_decay": 0.5, "refractory_decay": 0.5}),
    ("adrf_iz", adrf_iz, {"threshold_step": 0.25, "threshold_decay": 0.5, "refractory_decay": 0.5}),
])
def test_port_resonators(mod, nmod, extra):
    torch.manual_seed(2)
    re, im = torch.rand(2, 3, 20) * 0.4, torch.rand(2, 3, 20) * 0.4 - 0.1
    cls = getattr(slayer.neuron, mod).Neuron
    if extra:   # lava order: threshold, threshold_step, period, decay, threshold_decay, refractory_decay
        c = cls(0.3, extra["threshold_step"], 6, 0.1, extra["threshold_decay"], extra["refractory_decay"],
                requires_grad=True, dropout=slayer.neuron.Dropout(p=0.0))
    else:
        c = cls(0.3, 6, 0.1, requires_grad=True, norm=slayer.neuron.norm.MeanOnlyBatchNorm)
    n = nmod.Neuron(threshold=0.3, period=6, decay=0.1, requires_grad=True, decay_grad="lava",
                    norm=None if extra else nnorm.MeanOnlyBatchNorm, **extra)
    _check_pair(c, n, (re, im), complex_=True, decays=("sin_decay", "cos_decay"))


def test_port_sigma_delta_with_norm_and_dropout_in_eval():
    x = torch.cumsum(torch.rand(2, 3, 15) * 0.2 - 0.05, dim=-1)
    c = slayer.neuron.sigma_delta.Neuron(0.1, torch.relu, norm=slayer.neuron.norm.WgtScaleBatchNorm,
                                         dropout=slayer.neuron.Dropout(0.3), requires_grad=True)
    n = sigma_delta.Neuron(threshold=0.1, activation=torch.relu, norm=nnorm.WgtScaleBatchNorm,
                           dropout=ndropout.Dropout(0.3), requires_grad=True)
    c.eval(), n.eval()
    _check_pair(c, n, x)


def test_dynamics_and_spike_are_time_last():
    x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(1, 1, 5)     # SPEC 17 L1
    c = slayer.neuron.cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25)
    current, voltage = c.dynamics(x)
    assert current.shape == voltage.shape == (1, 1, 5)
    assert (current * 4096).flatten().tolist() == [2048, 3072, 1536, 1792, 896]
    assert (voltage * 4096).flatten().tolist() == [2048, 4608, 1536, 2944, 3104]
    assert c.spike(voltage).flatten().tolist() == [0, 1, 0, 0, 0]
    a = slayer.neuron.alif.Neuron(1, 0.5, 1.0, 0.5, 0.25, 0.5)           # SPEC 17 L2
    i, v, th, r = a.dynamics(torch.tensor([1.5, 0.5, 0.5, 1.0, 1.5, 0]).reshape(1, 1, 6))
    assert (th * 4096).flatten().tolist() == [4096, 5632, 5248, 4960, 6280, 5734]
    assert a.spike(v, th, r).flatten().tolist() == [1, 0, 0, 1, 0, 0]


def test_rf_properties_are_float32_arrays_like_lava():
    n = slayer.neuron.rf.Neuron(0.5, 8, 0.1)
    s = c = np.float32(2607)      # SPEC 6.1: period 8, decay 0.1 -> S = C = 2607
    for name, want in (("decay", 1 - np.sqrt((s / 4096) ** 2 + (c / 4096) ** 2)),
                       ("frequency", np.arctan2(s, c) / 2 / np.pi)):
        got = getattr(n, name)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (1,)
        assert got[0] == want
    assert n.period.dtype == n.lam.dtype == np.float32 and n.period[0] == 1 / n.frequency[0]
    assert n.lam[0] == -np.log(1 - n.decay[0])
    per_channel = slayer.neuron.rf.Neuron(0.5, 8, 0.1, shared_param=False)
    per_channel((torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)))
    assert per_channel.decay.shape == (3,) and per_channel.decay.dtype == np.float32
    assert isinstance(n.cx_sin_decay, np.integer) and n.cx_sin_decay == 2607


def test_neuron_params_default_to_lava():
    p = {"vThMant": 64, "vThStep": 32, "iDecay": 4096, "vDecay": 2048, "thDecay": 1024, "refDecay": 2048,
         "sinDecay": 2607, "cosDecay": 2607}
    for mod in ("alif", "adrf", "adrf_iz"):
        f = getattr(slayer.neuron, mod).neuron_params
        assert f(p)["threshold_step"] == 1.0             # lava-dl reads vThMant (SPEC 18 #4)
        assert f(p, faithful=False)["threshold_step"] == 0.5
    assert slayer.neuron.cuba.neuron_params({"vThMant": 80, "iDecay": 1024, "vDecay": 128}) == {
        "threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03125}
    assert slayer.neuron.rf.neuron_params(p)["period"] == pytest.approx(8.0)


def test_decay_gradient_defaults_to_lava_and_exact_is_opt_in():
    """SPEC 17 L1: decays (1.0, 0.25), θ=10, x=[0.5,0.25,0,0,0], L = v[1]: lava +0.5, exact -0.5/4096."""
    x = torch.tensor([0.5, 0.25, 0, 0, 0]).reshape(1, 1, 5)
    for kw, want in (({}, 0.5), ({"decay_grad": "exact"}, -0.5 / 4096)):
        n = slayer.neuron.cuba.Neuron(10.0, 1.0, 0.25, requires_grad=True, **kw)
        n.dynamics(x)[1][0, 0, 1].backward()
        assert n.voltage_decay.grad.item() == pytest.approx(want, rel=1e-6)


def test_base_neuron_positional_signature():
    n = slayer.neuron.base.Neuron(0.999, 2, 3, 4096, 64, 4096, None, None, True, False, False)
    assert (n.threshold, n.tau_rho, n.scale_rho) == (0.984375, 2 * 0.984375, 3)
    assert (n.p_scale, n.w_scale, n.s_scale) == (4096, 64, 4096)
    assert n.persistent_state is True and n.shared_param is False and n.requires_grad is False


def test_spike_functions():
    torch.manual_seed(4)
    v = (torch.rand(2, 3, 7) * 2).requires_grad_()
    s = slayer.spike.Spike.apply(v, 1.0, 0.5, 2.0, True, None, 1)
    assert slayer.spike.spike.Spike is slayer.spike.Spike
    v2 = v.detach().clone().requires_grad_()
    s2 = real_spike(v2, 1.0, 0.5, 2.0, True, None, 1)
    assert torch.equal(s, s2)
    assert torch.equal(*(torch.autograd.grad(a.sum(), b)[0] for a, b in ((s, v), (s2, v2))))
    re = (torch.rand(2, 3, 9) + 0.5).requires_grad_()
    im = (torch.rand(2, 3, 9) - 0.5).requires_grad_()
    last = torch.full((2, 3), -0.1)
    sc = slayer.spike.complex.Spike.apply(re, im, 0.8, 0.4, 10.0, False, last, 1)
    ren, imn = TF(re.detach()).clone().requires_grad_(), TF(im.detach()).clone().requires_grad_()
    sn = complex_spike(ren, imn, 0.8, 0.4, 10.0, False, last, 1)
    assert sc.shape == re.shape and torch.equal(sc, TL(sn)) and sc.sum() > 0
    g = torch.autograd.grad(sc.sum(), [re, im])
    gn = torch.autograd.grad(sn.sum(), [ren, imn])
    assert all(torch.equal(a, TL(b)) for a, b in zip(g, gn))


def test_dropout_mask_shared_over_time_not_batch():
    torch.manual_seed(0)
    y = slayer.neuron.Dropout(p=0.5)(torch.ones(8, 6, 10))             # SPEC 17 L10
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(y.amax(-1), y.amin(-1))                          # one mask per (sample, neuron)
    assert not torch.equal(y[0], y[1])                                  # independent per sample
    assert slayer.neuron.dropout.Dropout is slayer.neuron.Dropout


def test_norms_on_lava_layout_spec_l9():
    x = torch.tensor([[[.1, .2, .3], [1, 1.1, 1.2]], [[.3, .4, .5], [2, 2, 2]]])   # (N=2, C=2, T=3)
    neuron = slayer.neuron.cuba.Neuron(1.0, 0.1, 0.1)
    bn = slayer.neuron.norm.MeanOnlyBatchNorm(pre_hook_fx=neuron.quantize_8bit)
    out = bn(x)
    assert bn.num_features == 2                                  # the channels, not T
    torch.testing.assert_close(out[0, 0], torch.tensor([-0.2125, -0.1125, -0.0125]))
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.03, 0.155]))
    assert bn.bias.tolist() == [-2.0, -10.0]
    bn.eval()
    torch.testing.assert_close(bn(x)[0, 0], torch.tensor([0.06875, 0.16875, 0.26875]))
    ws = slayer.neuron.norm.WgtScaleBatchNorm()
    torch.testing.assert_close(ws(x), x - x.mean(dim=(0, 2), keepdim=True))
    assert ws.weight_exp.item() == -2
    fresh = slayer.neuron.norm.WgtScaleBatchNorm().eval()
    torch.testing.assert_close(fresh(x), 8 * x)
    assert slayer.neuron.norm.MeanOnlyBatchNorm()(x[:, :, 0]).shape == (2, 2)   # rank 2 (N, C)


def test_foreign_norm_module_sees_lava_layout():
    """A torch norm written for lava's (N, C, T) runs on the channel dim inside a neuron."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 10)
    c = slayer.neuron.cuba.Neuron(1.0, 0.5, 0.5, norm=lambda: torch.nn.BatchNorm1d(3, affine=False))
    s = c(x)
    ref = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.5,
                      norm=lambda: (lambda u: TF(torch.nn.functional.batch_norm(TL(u), None, None, training=True))))
    assert torch.equal(s, TL(ref(TF(x))))


@pytest.mark.parametrize("call,exc,words", [
    (lambda: slayer.neuron.cuba.Neuron(1.0, 0.1, 0.1)(torch.rand(2, 3)), ValueError, "(N, C, ..., T)"),
    (lambda: slayer.neuron.cuba.Neuron(1.0, 0.1, 0.1)([torch.rand(1, 2, 3)] * 2), TypeError, "real-valued"),
    (lambda: slayer.neuron.rf.Neuron(0.5, 8, 0.1)(torch.rand(1, 2, 3)), TypeError, "(real, imag)"),
    (lambda: slayer.neuron.cuba.Neuron(0.001, 0.1, 0.1), ValueError, "threshold"),
    (lambda: slayer.neuron.cuba.Neuron(1.0, 1.5, 0.1), ValueError, "current_decay"),
    (lambda: slayer.neuron.rf.Neuron(0.5, 2, 0.1), ValueError, "period"),
    (lambda: slayer.neuron.cuba.Neuron(1.0, 0.1), TypeError, "voltage_decay"),
    (lambda: slayer.neuron.norm.MeanOnlyBatchNorm()(torch.rand(2)), ValueError, "inp"),
    (lambda: slayer.neuron.Dropout(p=1.5), ValueError, "p"),
    (lambda: slayer.spike.complex.Spike.apply(torch.rand(3), torch.rand(3), 1.0, 1.0, 1.0, False, 0.0, 1),
     ValueError, "real"),
])
def test_bad_inputs_name_the_argument(call, exc, words):
    with pytest.raises(exc, match=None) as e:
        call()
    assert words in str(e.value)


def test_shape_change_is_reported_in_lava_terms():
    n = slayer.neuron.cuba.Neuron(1.0, 0.1, 0.1)
    n(torch.rand(2, 3, 5))
    with pytest.raises(ValueError, match=r"input.shape\[1:-1\] = \(4,\)"):
        n(torch.rand(2, 4, 5))
