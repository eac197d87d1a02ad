import math

import pytest
import torch

from spikefuse import surrogate as sg

ALL = [
    sg.ATan(2.0),
    sg.ATan(3.5),
    sg.Sigmoid(4.0),
    sg.Sigmoid(2.0),
    sg.SuperSpike(50.0),
    sg.FastSigmoid(25.0),
    sg.SLAYERExp(0.5, 2.0),
    sg.Triangle(0.7, 1.3),
]


class _Smooth(torch.autograd.Function):
    """forward = primitive, backward = surrogate.grad: gradcheck passes iff grad is the
    derivative of the primitive."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.save_for_backward(x)
        ctx.s = s
        return s.primitive(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.s.grad(x), None


def _points():
    # avoid the kinks (x = 0 and, for Triangle, |x| = width) where finite differences straddle
    x = torch.linspace(-2.0, 2.0, 41, dtype=torch.float64) + 0.0123
    return x[(x.abs() > 1e-3) & ((x.abs() - 0.7).abs() > 1e-3)].clone().requires_grad_(True)


@pytest.mark.parametrize("s", ALL, ids=lambda s: repr(s))
def test_grad_is_derivative_of_primitive_gradcheck(s):
    assert torch.autograd.gradcheck(lambda x: _Smooth.apply(x, s), (_points(),), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("s", ALL, ids=lambda s: repr(s))
def test_spike_forward_is_heaviside_and_backward_is_grad(s):
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 0.3], dtype=torch.float64, requires_grad=True)
    y = s(x)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert s(x, strict=True).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    g = torch.randn(5, dtype=torch.float64)
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, g * s.grad(x.detach()))


def test_values_at_zero_from_spec():
    z = torch.zeros(1, dtype=torch.float64)
    assert sg.ATan(2.0).grad(z).item() == pytest.approx(1.0)
    assert sg.ATan(3.0).grad(z).item() == pytest.approx(1.5)
    assert sg.Sigmoid(2.0).grad(z).item() == pytest.approx(0.5)
    assert sg.Sigmoid(4.0).grad(z).item() == pytest.approx(1.0)
    assert sg.SuperSpike(50).grad(z).item() == pytest.approx(1.0)
    # CUBA example of SPEC 2.1: tau_rho = 100, scale_rho = 0.1 -> 5e-4 at threshold
    assert sg.SLAYERExp(100.0, 0.1).grad(z).item() == pytest.approx(5e-4)
    assert sg.Triangle(0.5, 2.0).grad(z).item() == pytest.approx(2.0)


def test_hand_derived_formulas():
    x = torch.tensor([0.2], dtype=torch.float64)
    # ATan: (a/2) / (1 + (pi/2 a x)^2)
    assert sg.ATan(2.0).grad(x).item() == pytest.approx(1.0 / (1 + (math.pi * 0.2) ** 2))
    # SuperSpike alpha=50 at x=0.2: 1/(11)^2 (hxtorch H1 uses this value)
    assert sg.SuperSpike(50.0).grad(x).item() == pytest.approx(1 / 121)
    # Sigmoid alpha=4 at 0.2
    s = 1 / (1 + math.exp(-0.8))
    assert sg.Sigmoid(4.0).grad(x).item() == pytest.approx(4 * s * (1 - s))
    # SLAYER: scale/(2 tau) exp(-|x|/tau)
    assert sg.SLAYERExp(0.5, 2.0).grad(-x).item() == pytest.approx(2.0 / 1.0 * math.exp(-0.4))
    # Triangle outside the support is zero
    assert sg.Triangle(0.1, 1.0).grad(x).item() == 0.0


def test_kernel_ids_and_params():
    assert sg.ATan(2.0).kernel_id == 0 and sg.ATan(2.0).kernel_params == (2.0, 0.0)
    assert sg.Sigmoid(4.0).kernel_id == 1
    assert sg.FastSigmoid(25.0).kernel_id == sg.SuperSpike().kernel_id == 2
    assert sg.SLAYERExp(0.5, 2.0).kernel_params == (0.5, 2.0)
    assert sg.Custom(lambda x: x).kernel_id == -1
    assert len({sg.KERNEL_IDS[k] for k in sg.KERNEL_IDS}) == len(sg.KERNEL_IDS)


def test_custom_surrogate():
    s = sg.Custom(lambda x: 3.0 * torch.ones_like(x))
    x = torch.tensor([-0.5, 0.5], requires_grad=True)
    s(x).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    bad = sg.Custom(lambda x: torch.ones(7))
    x = torch.tensor([-0.5, 0.5], requires_grad=True)
    with pytest.raises(ValueError, match="derivative"):
        bad(x).sum().backward()
    with pytest.raises(TypeError, match="derivative"):
        sg.Custom(3.0)


def test_get_by_name():
    assert sg.get("ATan") == sg.ATan(2.0)
    assert sg.get("sigmoid", alpha=2.0) == sg.Sigmoid(2.0)
    assert isinstance(sg.get("fast-sigmoid"), sg.FastSigmoid)
    s = sg.SuperSpike(7.0)
    assert sg.get(s) is s
    with pytest.raises(ValueError, match="surrogate"):
        sg.get("nope")
    with pytest.raises(TypeError, match="surrogate"):
        sg.get(3)
    with pytest.raises(ValueError, match="surrogate"):
        sg.get(s, alpha=2.0)


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: sg.ATan(0.0), "alpha"),
        (lambda: sg.Sigmoid(-1.0), "alpha"),
        (lambda: sg.SuperSpike(float("nan")), "alpha"),
        (lambda: sg.SLAYERExp(0.0, 1.0), "tau_rho"),
        (lambda: sg.SLAYERExp(1.0, -1.0), "scale_rho"),
        (lambda: sg.Triangle(0.0), "width"),
    ],
)
def test_parameter_validation(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_input_validation():
    with pytest.raises(TypeError, match="x"):
        sg.ATan()(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="x"):
        sg.ATan()([0.5])
    with pytest.raises(TypeError, match="surrogate"):
        sg.heaviside(torch.zeros(2), "atan")


def test_half_precision_forward_backward():
    x = torch.tensor([-0.5, 0.0, 0.5], dtype=torch.bfloat16, requires_grad=True)
    y = sg.Sigmoid(4.0)(x)
    assert y.dtype == torch.bfloat16 and y.tolist() == [0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.dtype == torch.bfloat16
