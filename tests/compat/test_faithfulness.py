"""Issue 10 item 6: three small faithfulness defects found by comparing with the peers."""
import torch

from spikefuse import surrogate as sg
from spikefuse.functional.lif import LIFParams, lif_multistep
from spikefuse.neuron.lif import ParametricLIF


def _sj_plif(x, w, decay_input=True):
    """SpikingJelly's ParametricLIF charge (torch reference): ``* w.sigmoid()``, hard reset 0."""
    v, out = torch.zeros_like(x[0]), []
    k = w.sigmoid()
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - 0.0)) * k if decay_input else v - (v - 0.0) * k + x[t]
        s = sg.ATan(2.0)(h - 1.0)
        v = s * 0.0 + (1.0 - s) * h
        out.append(s)
    return torch.stack(out), v


def test_parametric_lif_multiplies_by_sigmoid_w_bit_identically():
    """(b) ``1 / (1/sigmoid(w))`` is not ``sigmoid(w)``: dividing gave 1-ulp differences."""
    torch.manual_seed(0)
    x = torch.rand(40, 8, 64) * 1.2
    for init_tau in (3.0, 1.7, 7.5):
        m = ParametricLIF(init_tau=init_tau, store_v_seq=True)
        s = m(x)
        s_ref, v_ref = _sj_plif(x, m.w.detach())
        assert torch.equal(s, s_ref) and torch.equal(m.v, v_ref), init_tau
    # the divide form differs from the peer on this input (so the check above can fail)
    w = torch.tensor(-torch.log(torch.tensor(2.0)).item())
    _, st = lif_multistep(x, LIFParams(tau=1.0 / torch.sigmoid(w)), backend="reference")
    _, v_ref = _sj_plif(x, w)
    assert not torch.equal(st.v, v_ref)


def _hxtorch_refractory(x, threshold, tau, rt, dt):
    """hxtorch's refractory CUBA loop (SPEC 13.1/13.3) in the input dtype, leak = reset = 0."""
    z = torch.zeros(x.shape[1:], dtype=x.dtype)
    v, i, ref = torch.zeros_like(z), torch.tensor(0.0, dtype=x.dtype), torch.zeros(x.shape[-1], dtype=torch.long)
    out = []
    for t in range(x.shape[0]):
        dv = dt / tau * (0.0 - v + i)
        i = i * (1 - dt / tau) + x[t]
        v = v + dv
        z = (v - threshold > 0).to(x.dtype)
        v = (1 - z) * v
        m = (ref > 0).to(v.dtype)
        v = (1 - m) * v
        z = (1 - m) * z
        ref = (1 - z) * torch.relu(ref - m) + z * rt / dt
        out.append(z)
    return torch.stack(out)


def test_hxtorch_refractory_count_in_input_dtype():
    """(c) 5e-6/1e-6 is 5.000000000000001 in float64: hxtorch blocks six steps there."""
    import spikefuse.compat.hxtorch.spiking.functional as F

    for dtype, gap in ((torch.float32, 5), (torch.float64, 6)):
        x = torch.full((30, 1, 1), 5.0, dtype=dtype)
        z, *_ = F.cuba_refractory_lif_integration(x, leak=0.0, reset=0.0, threshold=0.1, tau_syn=1e-6, tau_mem=1e-6,
                                                  refractory_time=5e-6, method="superspike", alpha=50.0, dt=1e-6)
        ref = _hxtorch_refractory(x, 0.1, 1e-6, 5e-6, 1e-6)
        assert torch.equal(z.to(dtype), ref)
        idx = [t for t, s in enumerate(z.flatten().tolist()) if s]
        assert {b - a - 1 for a, b in zip(idx, idx[1:])} == {gap}


def _lava_sigma_delta(calls, lava_sum: bool):
    """lava-dl's persistent sigma-delta neuron over several calls (ReLU, θ = 0.1): Sigma = this
    call's cumsum + the stored last value (float32 add, float32 store: ``lava_sum``) or, for
    comparison, one float64 running sum; then spikefuse's persistent Delta unit."""
    from spikefuse.neuron.loihi.sigma_delta import Delta

    d = Delta(threshold=0.09375, scale=4096, persistent_state=True, requires_grad=True)
    acc = torch.zeros(calls[0].shape[1:], dtype=torch.float32 if lava_sum else torch.float64)
    ys = []
    for x in calls:
        if lava_sum:
            sig = torch.cumsum(x, 0) + acc
            acc = sig[-1].detach()
        else:
            s64 = torch.cumsum(torch.cat([acc[None], x.double()]), 0)[1:]
            sig, acc = s64.float(), s64[-1].detach()
        ys.append(d(torch.relu(sig)))
    y = torch.cat(ys)
    return y.detach(), torch.autograd.grad(y.sum(), d.threshold)[0]


def test_sigma_delta_persistent_sum_is_lava_float32():
    """(a) lava-dl adds its stored float32 last sum to a float32 cumsum; a float64 carry gives
    other sums (and threshold gradients) on the later calls."""
    from spikefuse.neuron.loihi import sigma_delta as SD

    calls = [torch.tensor([0.13915175, 0.015251774, 0.07888842]).reshape(3, 1, 1),
             torch.tensor([0.25213578, 0.14902763, 0.0, 0.0, 0.009622193]).reshape(5, 1, 1)]
    n = SD.Neuron(threshold=0.1, activation=torch.relu, persistent_state=True, requires_grad=True)
    y = torch.cat([n(x) for x in calls])
    g, = torch.autograd.grad(y.sum(), n.delta.threshold)
    y_lava, g_lava = _lava_sigma_delta(calls, lava_sum=True)
    assert torch.equal(y, y_lava) and torch.equal(g, g_lava)
    _, g_f64 = _lava_sigma_delta(calls, lava_sum=False)
    assert not torch.equal(g_f64, g_lava)       # the float64 carry is distinguishable here
    s = SD.Sigma(persistent_state=True)
    first, second = s(calls[0]), s(calls[1])
    assert torch.equal(second, torch.cumsum(calls[1], 0) + first[-1]) and s.pre_state.dtype == torch.float32
