"""snnTorch's Leaky / Synaptic and spikefuse's (neuron.snntorch) on the same inputs: spikes bit for
bit, membranes and gradients (input, learnable beta / alpha / threshold) to 1e-5. Runs when
snnTorch is importable (it is in the dev extra), else skips saying so."""
from __future__ import annotations

import pytest
import torch

snn = pytest.importorskip("snntorch", reason="snntorch is not installed (pip install snntorch)")
import snntorch.surrogate as snn_surrogate  # noqa: E402

from spikefuse import surrogate as sg  # noqa: E402
from spikefuse.neuron.snntorch import Leaky, Synaptic  # noqa: E402

MECHANISMS = ["subtract", "zero", "none"]


def _inputs(seed, T=24, B=3, N=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, N, generator=g) * 0.8 + 0.5
    x[0, 0] = 1.0                      # mem = 1.0 exactly at the threshold (no spike: strict >)
    x[1, 0, :2] = 0.0                  # beta * 1.0 + 0 stays below; next step tests the reset state
    x[:, 1, 0] = 0.5                   # constant drive: regular firing, resets every few steps
    return x


def _peer_loop(neuron, x):
    spikes, mems = [], []
    for x_t in x:
        out = neuron(x_t)
        spikes.append(out[0])
        mems.append(out[-1])          # (spk, mem) or (spk, syn, mem)
    return torch.stack(spikes), torch.stack(mems)


def _compare(peer, ours, x, learned):
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    s_peer, m_peer = _peer_loop(peer, xa)
    s_ours, m_ours = ours(xb)
    assert torch.equal(s_peer, s_ours), f"{int((s_peer != s_ours).sum())} spikes differ"
    assert torch.allclose(m_peer, m_ours, atol=1e-5, rtol=0)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(99))
    g_peer = torch.autograd.grad((s_peer * w).sum() + (m_peer * w).sum(),
                                 [xa] + [getattr(peer, n) for n in learned])
    g_ours = torch.autograd.grad((s_ours * w).sum() + (m_ours * w).sum(),
                                 [xb] + [getattr(ours, n) for n in learned])
    for name, a, b in zip(["x", *learned], g_peer, g_ours):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (name, (a - b).abs().max().item())
    return int(s_ours.sum())


@pytest.mark.parametrize("delay", [True, False], ids=["reset_delay", "no_delay"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leaky_agrees(seed, mechanism, delay):
    kw = dict(reset_mechanism=mechanism, reset_delay=delay, learn_beta=True, learn_threshold=True)
    peer = snn.Leaky(beta=0.8, threshold=1.0, **kw)
    ours = Leaky(beta=0.8, threshold=1.0, return_mem=True, **kw)
    assert _compare(peer, ours, _inputs(seed), ["beta", "threshold"]) > 0


@pytest.mark.parametrize("delay", [True, False], ids=["reset_delay", "no_delay"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synaptic_agrees(seed, mechanism, delay):
    kw = dict(reset_mechanism=mechanism, reset_delay=delay, learn_alpha=True, learn_beta=True,
              learn_threshold=True)
    peer = snn.Synaptic(alpha=0.7, beta=0.8, threshold=1.0, **kw)
    ours = Synaptic(alpha=0.7, beta=0.8, threshold=1.0, return_mem=True, **kw)
    assert _compare(peer, ours, _inputs(seed) * 0.5, ["alpha", "beta", "threshold"]) > 0


def test_per_neuron_parameters_graded_spikes_and_fast_sigmoid():
    beta = torch.linspace(0.5, 0.95, 5)
    thr = torch.linspace(0.8, 1.2, 5)
    peer = snn.Leaky(beta=beta, threshold=thr, spike_grad=snn_surrogate.fast_sigmoid(slope=25),
                     graded_spikes_factor=2.0, learn_beta=True)
    ours = Leaky(beta=beta, threshold=thr, spike_grad=sg.FastSigmoid(25.0), graded_spikes_factor=2.0,
                 learn_beta=True, return_mem=True)
    assert _compare(peer, ours, _inputs(3), ["beta"]) > 0


def test_clamped_decay_and_learned_threshold_gradient():
    # beta > 1 is clamped to 1 in every step (and its gradient is zero there, as in snnTorch)
    peer = snn.Leaky(beta=1.2, learn_beta=True, learn_threshold=True)
    ours = Leaky(beta=1.2, learn_beta=True, learn_threshold=True, return_mem=True)
    _compare(peer, ours, _inputs(4) * 0.3, ["beta", "threshold"])
