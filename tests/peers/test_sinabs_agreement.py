"""sinabs' LIF / IAF layers and spikefuse's (neuron.sinabs) on the same inputs: spike counts bit for
bit, v_mem / i_syn and gradients (input, tau_mem / tau_syn or the trained alphas) to 1e-5. Runs
when sinabs is importable, else skips saying so. sinabs is not in the dev extra: it pins
nir==1.0.4 / nirtorch==2.0.2 below the dev extra's floors and pulls samna; install it beside
with ``pip install --no-deps sinabs pbr`` (README, tests)."""
from __future__ import annotations

import pytest
import torch

sl = pytest.importorskip("sinabs.layers", reason="sinabs is not installed (pip install --no-deps -r requirements-peers.txt)")
from sinabs.activation import (MaxSpike, MembraneReset, MembraneSubtract, MultiSpike,  # noqa: E402
                               SingleSpike)

from spikefuse.neuron.sinabs import SinabsIAF, SinabsLIF  # noqa: E402

SPIKE_FNS = {"multi": (MultiSpike, {}), "single": (SingleSpike, {}),
             "max": (MaxSpike(max_num_spikes_per_bin=2), {"max_num_spikes_per_bin": 2})}
RESET_FNS = {"subtract": (MembraneSubtract(), {}), "reset": (MembraneReset(reset_value=0.1), {"reset_value": 0.1})}


def _inputs(seed, B=3, T=20, N=5):
    """Time-first (T, B, N) for spikefuse; at-threshold entries included."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, N, generator=g) * 1.5 + 0.6
    x[0, 0, :] = 1.0     # IAF: v = 1.0, exactly the threshold (MultiSpike: 1 spike; SingleSpike: fires)
    x[1, 0, :] = 2.0     # exactly two thresholds after a subtract
    return x


def _compare(peer, ours, x, learned):
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    s_peer = peer(xa.movedim(0, 1)).movedim(1, 0)   # sinabs is (B, T, ...)
    s_ours = ours(xb)
    rec = {k: v.movedim(1, 0) for k, v in peer.recordings.items()}
    v_ours = ours.last_traces.v_mem
    assert torch.equal(s_peer, s_ours), f"{int((s_peer != s_ours).sum())} spike counts differ"
    assert torch.allclose(rec["v_mem"], v_ours, atol=1e-5, rtol=0)
    if "i_syn" in rec:
        assert torch.allclose(rec["i_syn"], ours.last_traces.i_syn, atol=1e-5, rtol=0)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    g_peer = torch.autograd.grad((s_peer * w).sum() + peer.v_mem.sum(), [xa] + [getattr(peer, n) for n in learned])
    g_ours = torch.autograd.grad((s_ours * w).sum() + ours.v_mem.sum(), [xb] + [getattr(ours, n) for n in learned])
    for name, a, b in zip(["x", *learned], g_peer, g_ours):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (name, (a - b).abs().max().item())
    return int(s_ours.sum())


def _fns(spike_fn, reset_fn):
    (sf, skw), (rf, rkw) = SPIKE_FNS[spike_fn], RESET_FNS[reset_fn]
    return dict(spike_fn=sf, reset_fn=rf), dict(spike_fn=spike_fn, reset_fn=reset_fn, **skw, **rkw)


@pytest.mark.parametrize("reset_fn", list(RESET_FNS))
@pytest.mark.parametrize("spike_fn", list(SPIKE_FNS))
@pytest.mark.parametrize("tau_syn", [None, 3.0], ids=["no_syn", "syn"])
@pytest.mark.parametrize("norm_input", [True, False], ids=["norm", "no_norm"])
def test_lif_agrees(norm_input, tau_syn, spike_fn, reset_fn):
    peer_kw, ours_kw = _fns(spike_fn, reset_fn)
    common = dict(tau_mem=5.0, tau_syn=tau_syn, norm_input=norm_input, min_v_mem=-1.0)
    peer = sl.LIF(record_states=True, **common, **peer_kw)
    ours = SinabsLIF(**common, **ours_kw)
    learned = ["tau_mem"] + (["tau_syn"] if tau_syn else [])
    assert _compare(peer, ours, _inputs(0) * (1.0 if norm_input else 0.4), learned) > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_lif_train_alphas_agrees(seed):
    common = dict(tau_mem=4.0, tau_syn=2.0, train_alphas=True)
    peer, ours = sl.LIF(record_states=True, **common), SinabsLIF(**common)
    assert _compare(peer, ours, _inputs(seed), ["alpha_mem", "alpha_syn"]) > 0


@pytest.mark.parametrize("reset_fn", list(RESET_FNS))
@pytest.mark.parametrize("spike_fn", list(SPIKE_FNS))
@pytest.mark.parametrize("tau_syn", [None, 3.0], ids=["no_syn", "syn"])
def test_iaf_agrees(tau_syn, spike_fn, reset_fn):
    peer_kw, ours_kw = _fns(spike_fn, reset_fn)
    peer = sl.IAF(tau_syn=tau_syn, record_states=True, **peer_kw)
    ours = SinabsIAF(tau_syn=tau_syn, **ours_kw)
    learned = ["tau_syn"] if tau_syn else []
    assert _compare(peer, ours, _inputs(3) * 0.5, learned) > 0


def test_threshold_and_subtract_value():
    peer = sl.IAF(spike_threshold=torch.tensor(0.7), reset_fn=MembraneSubtract(subtract_value=0.5),
                  record_states=True)
    ours = SinabsIAF(spike_threshold=0.7, subtract_value=0.5)
    assert _compare(peer, ours, _inputs(4) * 0.5, []) > 0


@pytest.mark.parametrize("name", ["periodic", "gaussian", "heaviside"])
def test_other_surrogates_agree(name):
    from sinabs.activation import Gaussian, Heaviside, PeriodicExponential

    from spikefuse.functional import sinabs as F

    peer_sur, ours_sur = {"periodic": (PeriodicExponential(grad_width=0.4), F.PeriodicExponential(1.0, 0.4)),
                          "gaussian": (Gaussian(sigma=0.3), F.Gaussian(1.0, sigma=0.3)),
                          "heaviside": (Heaviside(window=0.5), F.Heaviside(1.0, 0.5))}[name]
    peer = sl.LIF(tau_mem=5.0, tau_syn=3.0, surrogate_grad_fn=peer_sur, record_states=True)
    ours = SinabsLIF(tau_mem=5.0, tau_syn=3.0, surrogate_grad_fn=ours_sur)
    assert _compare(peer, ours, _inputs(5) * 1.5, ["tau_mem", "tau_syn"]) > 0
