"""The conv and recurrent networks of `spikefuse train --model`: every supported neuron family builds,
gives the right shapes and gradients, and a few training steps lower the loss on a fixed batch."""
import pytest
import torch
import torch.nn.functional as F

from spikefuse.train import MODEL_NEURONS, TrainConfig, build_model
from spikefuse.train.nets import ConvClassifier, RecurrentClassifier, conv_input_shape


def _fit(model, x, y, steps=6, lr=2e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _batch(shape, T=4, B=12, classes=3):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(B) % classes
    x = (torch.rand(T, B, *shape, generator=g) < 0.2).float()
    x[:, :, ..., 0] += (y[None, :, None, None] == 0).float() if len(shape) == 3 else 0.0
    return x * 2.0, y


@pytest.mark.parametrize("neuron", MODEL_NEURONS["conv"])
def test_conv_every_family(neuron):
    torch.manual_seed(0)
    cfg = TrainConfig(data="eventdigits", model="conv", neuron=neuron, hidden=4, layers=2).resolve()
    model = build_model(cfg, 2 * 8 * 8, 3, True, input_shape=(2, 8, 8))
    assert isinstance(model, ConvClassifier)
    x, y = _batch((2, 8, 8))
    logits, rec = model(x, record=True)
    assert logits.shape == (12, 3) and [s.shape for s in rec["spikes"]] == [(4, 12, 4 * 64), (4, 12, 8 * 16)]
    assert rec["output"].shape == (4, 12, 3)
    F.cross_entropy(logits, y).backward()
    conv = model.hidden[0][0].weight
    assert conv.grad is not None and torch.isfinite(conv.grad).all() and conv.grad.abs().sum() > 0
    model.zero_grad()
    losses = _fit(model, x, y)
    assert losses[-1] < losses[0], losses


def test_recurrent_lif():
    torch.manual_seed(0)
    cfg = TrainConfig(data="randman", model="recurrent", hidden=16, layers=2).resolve()
    model = build_model(cfg, 10, 3, True)
    assert isinstance(model, RecurrentClassifier)
    x, y = _batch((10,), T=8)
    x = x * 3.0  # enough drive that layer 0 spikes and the recurrent weights see s[t-1] != 0
    logits, rec = model(x, record=True)
    assert logits.shape == (12, 3) and [s.shape for s in rec["spikes"]] == [(8, 12, 16)] * 2
    F.cross_entropy(logits, y).backward()
    w_rec = model.hidden[0].recurrent.weight
    assert w_rec.grad is not None and w_rec.grad.abs().sum() > 0  # the recurrence is trained
    model.zero_grad()
    losses = _fit(model, x, y)
    assert losses[-1] < losses[0], losses


def test_model_choices_and_defaults():
    assert TrainConfig(data="shd").resolve().model == "recurrent"
    assert TrainConfig(data="eventdigits").resolve().model == "conv"
    c = TrainConfig(data="nmnist", model="conv").resolve()
    assert (c.hidden, c.layers) == (16, 2)
    assert TrainConfig(data="nmnist", model="dense").resolve().hidden == 256
    assert TrainConfig(data="yinyang").resolve().model == "dense"
    with pytest.raises(ValueError, match="model: expected one of"):
        TrainConfig(model="cnn").resolve()
    with pytest.raises(ValueError, match="model 'conv' supports"):
        TrainConfig(data="eventdigits", model="conv", neuron="eventprop").resolve()
    with pytest.raises(ValueError, match="model 'recurrent' supports"):
        TrainConfig(model="recurrent", neuron="cuba").resolve()
    with pytest.raises(TypeError, match="model"):
        TrainConfig(model=1).resolve()
    assert conv_input_shape(2 * 34 * 34) == (2, 34, 34) and conv_input_shape(64, (1, 8, 8)) == (1, 8, 8)
    with pytest.raises(ValueError, match="image-shaped"):
        conv_input_shape(4, (4,))
    m = build_model(TrainConfig(data="yinyang", model="conv", hidden=2, layers=1, T=3).resolve(), 32, 2, False,
                    input_shape=(2, 4, 4))
    assert m(torch.rand(5, 2, 4, 4)).shape == (5, 2)  # static images: constant current for T steps
    with pytest.raises(ValueError, match="input features per step"):
        m(torch.rand(5, 2, 4, 5))
