"""Loihi base neuron (SPEC.md 3.0-3.8) and the functional building blocks (3.3, 3.4)."""
import numpy as np
import pytest
import torch

from spikefuse.functional import loihi as F
from spikefuse.neuron.loihi import base
from spikefuse.neuron.loihi.norm import MeanOnlyBatchNorm


class Toy(base.Neuron):
    """Minimal concrete neuron for base-class tests: one decay, one state."""

    def __init__(self, threshold=1.0, decay=0.5, **kw):
        super().__init__(threshold, p_scale=4096, w_scale=64, s_scale=4096, **kw)
        self._register_decay("decay", decay, jitter=True)
        self._register_state("v_state", 0.0)
        self._register_state("th_state", self.threshold)

    def forward(self, x):
        self._check_real_input(x)
        self._init_shape(x)
        st = self._states(x)
        v = F.leaky_integrator(x, self.decay, st["v_state"])
        self._store_states(v_state=v[-1])
        return v


def test_threshold_quantisation_and_surrogate_base():
    n = Toy(threshold=0.999, tau_grad=2.0, scale_grad=3.0)
    assert n.threshold == 63 / 64 and n.v_th_mant == 63
    assert n.tau_rho == 2.0 * 63 / 64 and n.scale_rho == 3.0
    assert Toy(threshold=0.1).threshold == 0.09375
    assert n.weight_exponent == 0 and n.scale == 64
    assert n.p_scale == 4096 and n.s_scale == 4096 and n.w_scale == 64


def test_quantize_8bit_hook():
    n = Toy()
    w = torch.tensor([0.01, 0.02, 5.0, -5.0, 0.3], requires_grad=True)
    q = n.quantize_8bit(w)
    assert q.tolist() == [0.0, 0.03125, 3.96875, -4.0, 0.3125]
    assert n.quantize_8bit(w, descale=True).tolist() == [0.0, 2.0, 254.0, -256.0, 20.0]
    q.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]  # straight-through inside the clamp range


def test_norm_factory_and_hook():
    n = Toy(norm=MeanOnlyBatchNorm)
    assert isinstance(n.norm, MeanOnlyBatchNorm) and n.norm.pre_hook_fx == n.quantize_8bit
    c = Toy(norm=MeanOnlyBatchNorm, complex=True)
    assert c.real_norm is not c.imag_norm
    assert c.real_norm.pre_hook_fx == c.quantize_8bit
    plain = Toy()
    assert plain.norm is None and plain.drop is None
    c2 = Toy(complex=True)
    assert c2.real_norm is None and c2.imag_norm is None


def test_norm_without_hook_attribute():
    n = Toy(norm=lambda: torch.nn.Identity())
    assert isinstance(n.norm, torch.nn.Identity)


def test_lazy_shape_and_state_recreation():
    n = Toy(persistent_state=True)
    assert n.shape is None
    n(torch.ones(3, 2, 4, 5))
    assert n.shape == (4, 5) and n.num_neurons == 20
    assert n.v_state.shape == (2, 4, 5) and n.v_state.abs().sum() > 0
    assert n.th_state.shape == (2, 4, 5) and torch.all(n.th_state == 1.0)
    n(torch.ones(3, 6, 4, 5))  # batch changes: re-created at the initial values, then run
    assert n.v_state.shape == (6, 4, 5)
    fresh = Toy()
    assert torch.equal(n.v_state, fresh(torch.ones(3, 6, 4, 5))[-1])
    with pytest.raises(ValueError, match="neuron shape"):
        n(torch.ones(3, 6, 5, 4))
    n.reset_state()
    assert n.v_state.abs().sum() == 0


def test_non_persistent_state_never_written():
    n = Toy()
    n(torch.ones(3, 2, 4))
    assert n.v_state.abs().sum() == 0


def test_device_property_and_clamp_noop():
    n = Toy()
    assert n.device == torch.device("cpu")
    n.clamp()  # base clamp: no-op


def test_cx_scalar_and_array():
    n = Toy(decay=2049.5 / 4096)
    v = n._cx(n.decay)
    assert v == 2050 and isinstance(v, np.integer)
    m = Toy(decay=(0.1, 0.2), shared_param=False)
    m(torch.zeros(2, 1, 3))
    assert isinstance(m._cx(m.decay), np.ndarray) and m._cx(m.decay).shape == (3,)


def test_complex_input_helper():
    n = Toy(complex=True)
    re, im = n._check_complex_input((torch.zeros(3, 2, 4), torch.ones(3, 2, 4)))
    assert im.sum() == 24
    re, im = n._check_complex_input(torch.complex(torch.zeros(3, 2, 4), torch.ones(3, 2, 4)))
    assert im.sum() == 24
    with pytest.raises(TypeError, match="pair"):
        n._check_complex_input(torch.zeros(3, 2, 4))
    with pytest.raises(ValueError, match="same shape"):
        n._check_complex_input((torch.zeros(3, 2, 4), torch.zeros(3, 2, 5)))
    with pytest.raises(ValueError, match="pair"):
        n._check_complex_input((torch.zeros(3, 2, 4),))


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(threshold=0.01), ValueError, "threshold"),
        (dict(threshold=[1.0]), TypeError, "threshold"),
        (dict(threshold=float("inf")), ValueError, "threshold"),
        (dict(tau_grad=0.0), ValueError, "tau_grad"),
        (dict(scale_grad=0.0), ValueError, "scale_grad"),
        (dict(p_scale=3000), ValueError, "power of two"),
        (dict(p_scale=4096.0), TypeError, "p_scale"),
        (dict(w_scale=0), ValueError, "w_scale"),
        (dict(s_scale=32, w_scale=64), ValueError, "s_scale"),
        (dict(shared_param=1), TypeError, "shared_param"),
        (dict(requires_grad=None), TypeError, "requires_grad"),
        (dict(complex="no"), TypeError, "complex"),
        (dict(norm="bn"), TypeError, "norm"),
    ],
)
def test_base_validation(kw, exc, match):
    args = dict(threshold=1.0, p_scale=4096, w_scale=64, s_scale=4096)
    args.update(kw)
    threshold = args.pop("threshold")
    with pytest.raises(exc, match=match):
        base.Neuron(threshold, **args)


def test_base_defaults_lava():
    n = base.Neuron(threshold=1.5)
    assert n.p_scale == 1 and n.w_scale == 1 and n.s_scale == 1
    assert n.threshold == 1.0 and n.requires_grad is True and n.complex is False


def test_check_decay():
    assert base.check_decay("d", 0.5, True) == (0.5, None)
    assert base.check_decay("d", (0.1, 0.2), False) == (0.1, 0.2)
    assert base.check_decay("d", torch.tensor(0.25), True) == (0.25, None)
    with pytest.raises(ValueError, match="shared_param"):
        base.check_decay("d", (0.1, 0.2), True)
    with pytest.raises(ValueError, match="min <= max"):
        base.check_decay("d", (0.3, 0.2), False)
    with pytest.raises(TypeError, match="d"):
        base.check_decay("d", (0.1, "a"), False)
    with pytest.raises(TypeError, match="d"):
        base.check_decay("d", None, False)


# ------------------------------------------------------------------ functional LI
def test_li_int_arithmetic_truncation():
    # input truncated toward zero; decay shift toward zero for negative states
    x = torch.tensor([-1.00001 / 4096 - 1.0, 0.0, 0.0]).reshape(3, 1)
    y = F.leaky_integrator(x, 2048.0) * 4096
    # trunc(-4097.00001) = -4097; rstz(-4097*2048, 12) = -2048 (toward zero); then -1024
    assert y.flatten().tolist() == [-4097.0, -2048.0, -1024.0]
    # decay rounds half to even: 1024.5 -> 1024
    a = F.leaky_integrator(torch.tensor([1.0, 0.0]).reshape(2, 1), 1024.5)
    assert a.flatten().tolist() == [1.0, 0.75]


def test_li_reset_and_state():
    x = torch.tensor([1.5, 0.0, 0.5]).reshape(3, 1)
    y = F.leaky_integrator(x, 0.0, threshold=1.0)
    assert y.flatten().tolist() == [1.5, 0.0, 0.5]  # pre-reset recorded; next step starts at 0
    y2 = F.leaky_integrator(x, 0.0, state=torch.tensor([0.25]))
    assert y2.flatten().tolist() == [1.75, 1.75, 2.25]


@pytest.mark.parametrize("mode", ["exact", "lava"])
def test_li_backward_formula(mode):
    torch.manual_seed(0)
    x = torch.randn(7, 2, 3, requires_grad=True)
    d = torch.tensor([100.0, 1000.0, 3000.0], requires_grad=True)
    y = F.leaky_integrator(x, d, decay_grad=mode)
    g = torch.randn_like(y)
    gx, gd = torch.autograd.grad((y * g).sum(), (x, d))
    a = (1 - d.detach() / 4096).view(1, 3)
    ref = torch.zeros_like(g)
    acc = g[-1]
    ref[-1] = acc
    for t in range(5, -1, -1):
        acc = a * acc + g[t]
        ref[t] = acc
    assert torch.allclose(gx, ref, atol=1e-6)
    term = (ref[1:] * y.detach()[:-1]).sum(dim=(0, 1))
    assert torch.allclose(gd, term if mode == "lava" else -term / 4096, rtol=1e-5)


def test_li_validation():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="decay"):
        F.leaky_integrator(x, 4097.0)
    with pytest.raises(ValueError, match="decay_grad"):
        F.leaky_integrator(x, 1.0, decay_grad="other")
    with pytest.raises(ValueError, match="state"):
        F.leaky_integrator(x, 1.0, state=torch.zeros(3))
    with pytest.raises(ValueError, match="per-channel"):
        F.leaky_integrator(torch.zeros(3, 2, 4), torch.ones(3))
    with pytest.raises(TypeError, match="decay"):
        F.leaky_integrator(x, "1")


def test_decay_view_channel_and_broadcast():
    like = torch.zeros(2, 3, 4, 5)  # (T, B, C, H)
    assert F.decay_view("d", torch.ones(4), like).shape == (1, 4, 1)
    assert F.decay_view("d", 2.0, like).shape == (1, 1, 1)
    assert F.decay_view("d", torch.ones(4, 5), like).shape == (1, 4, 5)
    with pytest.raises(ValueError, match="feature shape"):
        F.decay_view("d", torch.ones(3, 5), like)


def test_adaptive_decay_and_update_halves():
    th = torch.tensor([6144, 2048])
    r = torch.tensor([4096, -4096])
    d = torch.tensor(1024.0)
    th2, r2 = F.adaptive_decay(th, r, 4096, d, torch.tensor(2048.0))
    # θ decays toward θ0=4096 (rstz of negative offsets toward zero), r toward 0
    assert th2.tolist() == [4096 + 1536, 4096 - 1536] and r2.tolist() == [2048, -2048]
    th3, r3 = F.adaptive_update(th2, r2, torch.tensor([True, False]), 2048)
    assert th3.tolist() == [5632 + 2048, 2560] and r3.tolist() == [2048 + 2 * 5632, -2048]
