"""Loihi norms and dropout (SPEC.md 11, 12; test vectors L9, L10) and layout utils."""
import pytest
import torch

from spikefuse.fixed_point import quantize_8bit
from spikefuse.neuron import loihi
from spikefuse.neuron.loihi.dropout import Dropout
from spikefuse.neuron.loihi.norm import MeanOnlyBatchNorm, WgtScaleBatchNorm
from spikefuse.utils import to_time_first, to_time_last

# lava layout (N=2, C=2, T=3)
X_L9 = torch.tensor([[[0.1, 0.2, 0.3], [1.0, 1.1, 1.2]], [[0.3, 0.4, 0.5], [2.0, 2.0, 2.0]]])


def q64(w, descale=False):
    return quantize_8bit(w, 64, descale=descale)


def test_l9_mean_only():
    x = to_time_first(X_L9)  # (T, N, C)
    bn = MeanOnlyBatchNorm(pre_hook_fx=q64)
    out = to_time_last(bn(x))
    assert torch.allclose(out[0, 0], torch.tensor([-0.2125, -0.1125, -0.0125]), atol=1e-6)
    assert torch.allclose(bn.running_mean, torch.tensor([0.03, 0.155]), atol=1e-7)
    assert bn.bias.tolist() == [-2.0, -10.0]
    bn.eval()
    out = to_time_last(bn(x))
    assert torch.allclose(out[0, 0], torch.tensor([0.06875, 0.16875, 0.26875]), atol=1e-6)
    assert bn.num_features == 2


def test_l9_mean_only_quantised_batch_mean():
    x = to_time_first(X_L9)
    bn = MeanOnlyBatchNorm(pre_hook_fx=q64)
    out = to_time_last(bn(x))
    # quantised batch means [0.3125, 1.5625]
    assert torch.allclose(out[:, 1], X_L9[:, 1] - 1.5625, atol=1e-6)


def test_l9_wgt_scale():
    x = to_time_first(X_L9)
    bn = WgtScaleBatchNorm()
    assert torch.var(X_L9, unbiased=False).item() == pytest.approx(0.501875, rel=1e-6)
    out = bn(x)
    mu = torch.tensor([0.3, 1.55])
    assert torch.allclose(out, x - mu.view(1, 1, 2), atol=1e-6)  # std = 1
    assert bn.running_var.item() == pytest.approx(0.0430179, rel=1e-5)
    assert bn.weight_exp.item() == -2
    assert bn.bias.tolist() == pytest.approx([-0.03, -0.155])  # identity hook accepts descale
    fresh = WgtScaleBatchNorm().eval()
    assert torch.allclose(fresh(x), 8 * x)


def test_norm_gradients():
    x = to_time_first(X_L9).clone().requires_grad_(True)
    bn = MeanOnlyBatchNorm()
    g = torch.randn(3, 2, 2)
    (bn(x) * g).sum().backward()
    # out = x - mean_c(x): d/dx = g - mean over the channel's elements of g
    ref = g - g.mean(dim=(0, 1), keepdim=True)
    assert torch.allclose(x.grad, ref, atol=1e-6)
    x2 = to_time_first(X_L9).clone().requires_grad_(True)
    wb = WgtScaleBatchNorm()
    (wb(x2) * g).sum().backward()
    assert torch.allclose(x2.grad, ref, atol=1e-6)  # std = 1 here and is a constant


def test_norm_update_flag_and_spatial():
    x = torch.randn(4, 3, 5, 2, 2)  # (T, B, C, H, W)
    bn = MeanOnlyBatchNorm()
    bn.update = False
    assert torch.equal(bn(x), x)
    assert bn.running_mean.abs().sum() == 0
    bn.update = True
    out = bn(x)
    assert torch.allclose(out.mean(dim=(0, 1, 3, 4)), torch.zeros(5), atol=1e-6)


def test_norm_validation():
    with pytest.raises(ValueError, match="num_features"):
        MeanOnlyBatchNorm(num_features=0)
    with pytest.raises(ValueError, match="momentum"):
        MeanOnlyBatchNorm(momentum=2.0)
    with pytest.raises(TypeError, match="pre_hook_fx"):
        MeanOnlyBatchNorm(pre_hook_fx=3)
    with pytest.raises(ValueError, match="weight_exp_bits"):
        WgtScaleBatchNorm(weight_exp_bits=-1)
    with pytest.raises(ValueError, match="eps"):
        WgtScaleBatchNorm(eps=0)
    bn = MeanOnlyBatchNorm(num_features=3)
    with pytest.raises(ValueError, match="features"):
        bn(torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="3 dimensions"):
        bn(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="input"):
        bn((torch.zeros(2, 2, 3),))


def test_l10_dropout():
    torch.manual_seed(0)
    d = Dropout(p=0.5)
    x = torch.ones(4, 2, 3)  # (T, B, N): lava's ones(2, 3, 4) time-first
    y = d(x)
    rows = to_time_last(y).reshape(-1, 4)
    for row in rows:
        assert row.tolist() in ([0.0] * 4, [2.0] * 4)
    assert 0 < (rows[:, 0] == 0).sum() < 6  # some dropped, some kept (seeded)
    d.eval()
    assert torch.equal(d(x), x)


def test_dropout_masks_independent_per_sample_and_rate():
    torch.manual_seed(1)
    y = Dropout(p=0.3)(torch.ones(5, 200, 50))
    kept = (y[0] != 0).float()
    assert torch.equal((y != 0).float(), kept.expand_as(y))
    assert abs(kept.mean().item() - 0.7) < 0.02
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.7))
    assert not torch.equal(kept[0], kept[1])


def test_dropout_edges_and_inplace():
    x = torch.ones(3, 2, 2)
    assert torch.equal(Dropout(p=0.0)(x), x)
    assert Dropout(p=1.0)(x).abs().sum() == 0
    z = torch.ones(3, 2, 2)
    torch.manual_seed(2)
    out = Dropout(p=0.5, inplace=True)(z)
    assert out.data_ptr() == z.data_ptr()
    with pytest.raises(ValueError, match="p"):
        Dropout(p=1.5)
    with pytest.raises(TypeError, match="p"):
        Dropout(p=True)
    with pytest.raises(TypeError, match="inplace"):
        Dropout(inplace=1)
    with pytest.raises(ValueError, match="2 dimensions"):
        Dropout()(torch.ones(3))


def test_dropout_gradient():
    torch.manual_seed(3)
    x = torch.ones(3, 4, 5, requires_grad=True)
    y = Dropout(p=0.5)(x)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())


def test_layout_utils():
    x = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)  # (N, C, H, T)
    tf = to_time_first(x)
    assert tf.shape == (5, 2, 3, 4)
    assert tf[4, 1, 2, 3] == x[1, 2, 3, 4]
    assert torch.equal(to_time_last(tf), x)
    a, b = to_time_first((x, x + 1))
    assert torch.equal(b - a, torch.ones_like(a))
    with pytest.raises(ValueError, match="2 dimensions"):
        to_time_first(torch.zeros(3))
    with pytest.raises(TypeError, match="x"):
        to_time_last([1, 2])


def test_package_aliases():
    assert loihi.Dropout is Dropout
    assert loihi.MeanOnlyBatchNorm is MeanOnlyBatchNorm and loihi.WgtScaleBatchNorm is WgtScaleBatchNorm
    assert loihi.CUBA is loihi.cuba.Neuron and loihi.ALIF is loihi.alif.Neuron
    with pytest.raises(AttributeError):
        loihi.NoSuchThing
