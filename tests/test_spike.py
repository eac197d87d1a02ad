import math

import pytest
import torch

from spikefuse.spike import complex_spike, real_spike


def test_real_binary_forward_backward_formula():
    v = torch.tensor([0.5, 0.99, 1.0, 1.2, 3.0], dtype=torch.float64, requires_grad=True)
    s = real_spike(v, 1.0, tau_rho=0.3, scale_rho=2.0)
    assert s.tolist() == [0, 0, 1, 1, 1]  # lava: v >= theta
    s.sum().backward()
    expect = [2.0 / (2 * 0.3) * math.exp(-abs(x - 1.0) / 0.3) for x in v.detach().tolist()]
    torch.testing.assert_close(v.grad, torch.tensor(expect, dtype=torch.float64))


def test_real_cuba_example_from_spec():
    # CUBA: theta = 1, tau_grad = scale_grad = 1 -> tau_rho = 100, scale_rho = 0.1 -> 5e-4 at v = theta
    v = torch.tensor([1.0], requires_grad=True)
    real_spike(v, 1.0, 100.0, 0.1).sum().backward()
    assert v.grad.item() == pytest.approx(5e-4)


def test_real_graded_forward_and_backward():
    v = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64, requires_grad=True)
    s = real_spike(v, 1.0, tau_rho=0.5, scale_rho=3.0, graded_spike=True, scale=2.0)
    torch.testing.assert_close(s, torch.tensor([0.0, 0.5, 0.75], dtype=torch.float64))
    s.sum().backward()
    # scale_rho * exp(min(v - theta, 0) / tau_rho): not the derivative of v * H(v - theta)
    torch.testing.assert_close(v.grad, torch.tensor([3.0 * math.exp(-1.0), 3.0, 3.0], dtype=torch.float64))


class _SmoothBinary(torch.autograd.Function):
    """Primitive of the binary SLAYER derivative (smooth twin), backward from real_spike."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        x = v - 1.0
        return 0.7 / 2 * torch.sign(x) * (1 - torch.exp(-x.abs() / 0.4))

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        with torch.enable_grad():
            vv = v.detach().requires_grad_(True)
            s = real_spike(vv, 1.0, 0.4, 0.7)
            (gv,) = torch.autograd.grad(s, vv, g)
        return gv


def test_real_spike_backward_gradcheck_against_primitive():
    v = (torch.linspace(0.0, 2.0, 17, dtype=torch.float64) + 0.013).requires_grad_(True)
    assert torch.autograd.gradcheck(_SmoothBinary.apply, (v,), eps=1e-6, atol=1e-7)


def test_real_spike_tensor_threshold_and_no_threshold_grad():
    v = torch.tensor([[1.0, 2.0], [0.5, 0.4]], requires_grad=True)
    th = torch.tensor([[1.5, 1.5], [0.5, 0.5]], requires_grad=True)
    s = real_spike(v, th, 1.0, 1.0)
    assert s.tolist() == [[0, 1], [1, 0]]
    s.sum().backward()
    assert th.grad is None


def test_real_spike_voltage_last_is_ignored():
    v = torch.tensor([0.5, 1.5])
    a = real_spike(v, 1.0, graded_spike=True)
    b = real_spike(v, 1.0, graded_spike=True, voltage_last=torch.tensor([9.0, 9.0]))
    assert torch.equal(a, b)


def test_real_spike_validation():
    with pytest.raises(TypeError, match="voltage"):
        real_spike([1.0], 1.0)
    with pytest.raises(ValueError, match="tau_rho"):
        real_spike(torch.ones(2), 1.0, tau_rho=0.0)
    with pytest.raises(ValueError, match="scale_rho"):
        real_spike(torch.ones(2), 1.0, scale_rho=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        real_spike(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="voltage"):
        real_spike(torch.tensor([float("nan")]), 1.0)


def test_complex_spike_zero_crossing():
    # time-first (T=5, 2 neurons)
    re = torch.tensor([[1.0, 1.0], [1.0, 0.2], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    im = torch.tensor([[0.5, -0.1], [-0.2, 0.0], [0.0, 0.3], [-0.1, 0.4], [0.1, -0.1]])
    s = complex_spike(re, im, 0.5)
    # neuron 0: im goes -0.2 -> 0.0 at t=2 and -0.1 -> 0.1 at t=4; t=0 needs im_last < 0
    # neuron 1: crossing at t=1 but re=0.2 < theta -> no spike
    assert s[:, 0].tolist() == [0, 0, 1, 0, 1]
    assert s[:, 1].tolist() == [0, 0, 0, 0, 0]
    s2 = complex_spike(re, im, 0.5, imag_last=torch.tensor([-1.0, -1.0]))
    assert s2[0].tolist() == [1, 0]
    g = complex_spike(re, im, 0.5, graded_spike=True)
    assert g[2, 0].item() == 1.0


def test_complex_spike_backward_formula():
    rho, kappa, th = 0.25, 10.0, 0.5
    re = torch.tensor([[0.8], [0.3]], dtype=torch.float64, requires_grad=True)
    im = torch.tensor([[-0.1], [0.2]], dtype=torch.float64, requires_grad=True)
    s = complex_spike(re, im, th, rho, kappa)
    s.sum().backward()
    for t in range(2):
        r, i = re[t, 0].item(), im[t, 0].item()
        d_re = 1 / (2 * rho) * math.exp(-abs(r - th) / rho)
        d_im = 1 / (2 * rho) * math.exp(-abs(i) / rho)
        step = 0.5 * (1 + math.copysign(1, r - th) * (1 - 2 * rho * d_re))
        assert re.grad[t, 0].item() == pytest.approx(kappa * d_re * d_im)
        assert im.grad[t, 0].item() == pytest.approx(-(kappa / rho) * math.copysign(1, i) * d_im * step)


def test_complex_spike_validation():
    with pytest.raises(ValueError, match="imag"):
        complex_spike(torch.ones(3, 2), torch.ones(3, 3), 0.5)
    with pytest.raises(ValueError, match="imag_last"):
        complex_spike(torch.ones(3, 2), torch.ones(3, 2), 0.5, imag_last=torch.ones(5))


def test_real_spike_flags_and_scalars_are_strict():
    """A truthy string does not turn graded spikes on; a vector for a scalar names the argument."""
    with pytest.raises(TypeError, match="graded_spike"):
        real_spike(torch.ones(2), 1.0, graded_spike="no")
    with pytest.raises(TypeError, match="graded_spike"):
        real_spike(torch.ones(2), 1.0, graded_spike=1)
    for name in ("tau_rho", "scale_rho", "scale"):
        with pytest.raises(ValueError, match=name):
            real_spike(torch.ones(2), 1.0, **{name: torch.ones(3)})
    with pytest.raises(ValueError, match="voltage: .*'meta'"):
        real_spike(torch.empty(2, device="meta"), 1.0)
    # a one-element tensor is a scalar
    assert real_spike(torch.tensor([0.5, 1.5]), 1.0, tau_rho=torch.tensor(2.0)).tolist() == [0.0, 1.0]


def test_complex_spike_threshold_and_last_checked():
    re, im = torch.ones(3, 2), torch.ones(3, 2)
    with pytest.raises(ValueError, match="threshold"):
        complex_spike(re, im, float("nan"))
    with pytest.raises(TypeError, match="threshold"):
        complex_spike(re, im, "1")
    with pytest.raises(ValueError, match="imag_last"):
        complex_spike(re, im, 1.0, imag_last=torch.ones(5))
    with pytest.raises(TypeError, match="graded_spike"):
        complex_spike(re, im, 1.0, graded_spike="yes")
