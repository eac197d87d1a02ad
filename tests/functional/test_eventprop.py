"""EventProp for the CUBA LIF (SPEC 14, 17 E1, 18 #12) and the spike-time losses."""
import math

import pytest
import torch

from spikefuse.functional.cuba import CubaParams
from spikefuse.functional.eventprop import (
    crossing_offsets,
    eventprop_lif,
    eventprop_lif_reference,
    eventprop_lif_step,
    eventprop_linear_lif,
    eventprop_neuron,
    eventprop_synapse,
)
from spikefuse.losses import (
    first_spike_time,
    max_membrane,
    max_membrane_cross_entropy,
    spike_time_cross_entropy,
)
from spikefuse.neuron.eventprop import EventPropLIF

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
E1 = CubaParams(leak=0.0, reset=0.0, threshold=0.3, tau_syn=5e-6, tau_mem=10e-6)
DT = 1e-6


def flat(t):
    return t.detach().flatten().tolist()


# ------------------------------------------------------------------ SPEC 17 E1


@pytest.mark.parametrize("device", DEVICES)
def test_e1_forward_and_adjoint(device):
    inp = torch.zeros(2, 7, 1, 1, device=device)
    inp[0, 0] = 1.2
    inp.requires_grad_()
    z, v, i = eventprop_neuron(inp, E1, dt=DT)
    assert flat(z) == [0, 0, 0, 0, 0, 1, 0]
    assert flat(v) == pytest.approx([0, 0.12, 0.204, 0.2604, 0.2958, 0, 0.039322], abs=1e-6)
    assert flat(i) == pytest.approx([0, 1.2, 0.96, 0.768, 0.6144, 0.49152, 0.393216], abs=1e-6)
    z[5].sum().backward()  # grad_spikes[5] = 1
    g0, g1 = inp.grad[0], inp.grad[1]
    assert flat(g0) == pytest.approx([7.840328e-6, 6.902034e-6, 5.407123e-6, 3.180661e-6, 0, 0, 0],
                                     rel=1e-5, abs=1e-12)
    assert flat(g1) == pytest.approx([0.518766, 0.938295, 1.49491, 2.226462, 3.180661, 0, 0], rel=1e-5)


def test_e1_single_tensor_and_linear_apis_agree_with_two_channel():
    x = torch.zeros(7, 1, 1)
    x[0] = 1.2
    x.requires_grad_()
    z, v, i = eventprop_lif(x, E1, dt=DT)
    z[5].sum().backward()
    assert flat(x.grad) == pytest.approx([7.840328e-6, 6.902034e-6, 5.407123e-6, 3.180661e-6, 0, 0, 0],
                                         rel=1e-5, abs=1e-12)
    # synapse pair vs fused linear layer vs nn.Linear + eventprop_lif, random multi-neuron case
    T, B, I, O = 40, 3, 5, 4
    xin = (torch.rand(T, B, I) < 0.2).float()
    W = torch.rand(O, I) * 0.8
    gs = torch.randn(T, B, O)
    grads = []
    for mode in ("pair", "fused", "linear"):
        xr, Wr = xin.clone().requires_grad_(), W.clone().requires_grad_()
        if mode == "pair":
            z, v, i = eventprop_neuron(eventprop_synapse(xr, Wr), E1, DT)
        elif mode == "fused":
            z, v, i = eventprop_linear_lif(xr, Wr, E1, DT)
        else:
            z, v, i = eventprop_lif(torch.nn.functional.linear(xr, Wr), E1, DT)
        (z * gs).sum().backward()
        grads.append((z.detach(), xr.grad, Wr.grad))
    assert grads[0][0].sum() > 3
    for zz, gx, gw in grads[1:]:
        assert torch.equal(zz, grads[0][0])
        torch.testing.assert_close(gw, grads[0][2], rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(grads[1][1], grads[0][1])  # fused: (lam_v - lam_i) W, like the pair


def test_forward_matches_reference_loop_and_step():
    T, B, N = 30, 2, 6
    cur = torch.rand(T, B, N) * 0.3
    p = CubaParams(leak=0.05, reset=-0.1, threshold=torch.linspace(0.2, 0.6, N), tau_syn=5e-6, tau_mem=8e-6)
    z, v, i = eventprop_lif(cur, p, DT)
    z2, v2, i2 = eventprop_lif_reference(cur, p, DT)
    assert z.sum() > 3
    assert torch.equal(z, z2.detach())
    torch.testing.assert_close(v, v2.detach())
    torch.testing.assert_close(i, i2.detach())
    # step-by-step: step t consumes cur[t-1]
    from spikefuse.functional.cuba import initial_state

    st = initial_state((B, N), p)
    for t in range(1, T):
        _, st = eventprop_lif_step(cur[t - 1], st, p, dt=DT)
        torch.testing.assert_close(st.v, v[t])


def test_current_index_variants():
    # a spike immediately after a large input: hxtorch's a_m (from i[t-1]) has the wrong sign
    p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    for ci, expected in (("hxtorch", 1 / (0.0 - 0.3 + 0.0)), ("aligned", 1 / (0.0 - 0.3 + 1.0))):
        inp = torch.zeros(2, 3, 1, 1)
        inp[0, 0] = 1.0
        inp.requires_grad_()
        z, v, i = eventprop_neuron(inp, p, DT, current_index=ci)
        assert flat(z) == [0, 1, 0]
        z[1].sum().backward()
        assert inp.grad[1, 0].item() == pytest.approx(expected, rel=1e-6)  # lam_v[0] - lam_i[0]


# ------------------------------------------------------------------ (a) analytic spike-time gradient


def _analytic(w, leak, reset, theta, tau_m):
    """Constant current w from t = 0: V(t) = leak + w (1 - e^{-t/tau_m}) until theta; after the
    reset V(t) = leak + w + (reset - leak - w) e^{-(t - t1)/tau_m}. Implicit differentiation of
    V(t*) = theta gives dt*/dw = -(dV/dw)/(dV/dt)."""
    t1 = -tau_m * torch.log(1 - (theta - leak) / w)
    dVdw = 1 - torch.exp(-t1 / tau_m)
    dVdt = w * torch.exp(-t1 / tau_m) / tau_m
    dt1 = -dVdw / dVdt
    s = -tau_m * torch.log((leak + w - theta) / (leak + w - reset))  # second inter-spike interval
    ds = -tau_m * (1 / (leak + w - theta) - 1 / (leak + w - reset))
    return t1, dt1, t1 + s, dt1 + (dt1 + ds)  # t2 = t1 + s: dt2/dw = dt1/dw + d(t1 + s)/dw - dt1/dw


@pytest.mark.parametrize("current_index", ["hxtorch", "aligned"])
def test_single_neuron_analytic_spike_time_gradient(current_index):
    tau_m, theta = 10e-6, 1.0
    w = torch.tensor([1.5, 2.0, 3.0], dtype=torch.float64).reshape(3, 1)
    reset = torch.tensor([0.0, -0.3], dtype=torch.float64)
    # tau_syn >> the simulated time: the current is constant after the input at step 0
    p = CubaParams(leak=0.0, reset=reset, threshold=theta, tau_syn=1e3, tau_mem=tau_m)
    t1_an, dt1_an, t2_an, _ = _analytic(w, 0.0, reset, theta, tau_m)
    dt2_an = _analytic(w, 0.0, reset, theta, tau_m)[1] + (
        -tau_m * (1 / (w - theta) - 1 / (w - reset)))
    errors = []
    for dt in (1e-7, 1e-8):
        T = int(2.6 * tau_m / dt)
        x = torch.zeros(T, 3, 2, dtype=torch.float64)
        x[0] = w
        xr = x.clone().requires_grad_()
        z, v, i = eventprop_lif(xr, p, dt, current_index=current_index)
        off = crossing_offsets(v, i, p, dt)
        t1 = first_spike_time(z, dt, off)
        t2 = first_spike_time(z, dt, off, n=2)
        assert (t1 - t1_an).abs().max() < dt and (t2 - t2_an).abs().max() < 2 * dt
        # d(t1)/dw and d(t2)/dw: grad of the sum of all first (second) spike times w.r.t. x[0]
        (g1,) = torch.autograd.grad(t1.sum(), xr, retain_graph=True)
        (g2,) = torch.autograd.grad(t2.sum(), xr)
        e1 = ((g1[0] - dt1_an) / dt1_an).abs().max().item()
        e2 = ((g2[0] - dt2_an) / dt2_an).abs().max().item()
        errors.append(max(e1, e2))
    assert errors[1] < 1e-3, errors
    assert errors[1] < errors[0] / 5, errors  # first-order convergence as dt shrinks


# ------------------------------------------------------------------ (b) finite differences


def _fd_setup(seed=1):
    g = torch.Generator().manual_seed(seed)
    dt, T, B, I, O = 1e-8, 3000, 2, 4, 3
    p = CubaParams(threshold=1.0, tau_syn=5e-6, tau_mem=10e-6)
    tin = torch.randint(0, 1500, (B, I), generator=g)
    W = torch.rand(O, I, generator=g, dtype=torch.float64) * 1.2 + 0.6
    target = torch.rand(B, O, generator=g, dtype=torch.float64) * 10e-6
    return dt, T, B, I, O, p, tin, W, target


def _inputs(tin, T, I):
    x = torch.zeros((T,) + tuple(tin.shape), dtype=torch.float64)
    x.scatter_(0, tin[None], 1.0)
    return x


def _loss(z, v, i, p, dt, target):
    """Interpolated first-spike-time loss; neurons that never fire contribute a constant."""
    t = first_spike_time(z, dt, crossing_offsets(v, i, p, dt))
    return (((t - target) / 1e-6) ** 2).flatten(1).sum(1)


@pytest.mark.parametrize("current_index,tol", [("aligned", 3e-3), ("hxtorch", 2e-2)])
def test_finite_differences_small_network(current_index, tol):
    dt, T, B, I, O, p, tin, W, target = _fd_setup()
    x = _inputs(tin, T, I)
    xr, Wr = x.clone().requires_grad_(), W.clone().requires_grad_()
    z, v, i = eventprop_linear_lif(xr, Wr, p, dt, current_index=current_index)
    _loss(z, v, i, p, dt, target).sum().backward()
    counts = z.sum(0)
    assert counts.sum() >= 3  # several output spikes

    # central differences of every weight, all perturbations batched in one forward
    eps = 1e-5
    P = O * I
    dW = torch.zeros(2 * P, O, I, dtype=torch.float64)
    dW.view(2 * P, -1)[torch.arange(0, 2 * P, 2), torch.arange(P)] = eps
    dW.view(2 * P, -1)[torch.arange(1, 2 * P, 2), torch.arange(P)] = -eps
    cur = torch.einsum("tbi,poi->tpbo", x, W[None] + dW).reshape(T, 2 * P * B, O)
    with torch.no_grad():
        z2, v2, i2 = eventprop_lif(cur, p, dt)
        assert torch.equal(z2.sum(0).reshape(2 * P, B, O), counts.expand(2 * P, B, O))  # no spike appears/vanishes
        t2 = first_spike_time(z2, dt, crossing_offsets(v2, i2, p, dt)).reshape(2 * P, B, O)
        L = (((t2 - target) / 1e-6) ** 2).sum((1, 2))
    fd = ((L[0::2] - L[1::2]) / (2 * eps)).reshape(O, I)
    assert fd.abs().max() > 1.0
    rel = ((Wr.grad - fd).norm() / fd.norm()).item()
    assert rel < tol, (rel, Wr.grad, fd)

    # presynaptic channel: (lam_v - lam_i) W at an input spike equals -dL/dt_in (shift by +-m steps)
    m = 10
    variants = []
    for b in range(B):
        for j in range(I):
            for s in (m, -m):
                tt = tin.clone()
                tt[b, j] += s
                variants.append(_inputs(tt, T, I))
    xs = torch.cat(variants, 1)  # (T, 2*B*I*B, I)
    with torch.no_grad():
        z3, v3, i3 = eventprop_linear_lif(xs, W, p, dt)
        t3 = first_spike_time(z3, dt, crossing_offsets(v3, i3, p, dt)).reshape(B * I, 2, B, O)
        L3 = (((t3 - target) / 1e-6) ** 2).sum((2, 3))
    fd_t = -(L3[:, 0] - L3[:, 1]) / (2 * m * dt)
    g_t = torch.stack([xr.grad[tin[b, j], b, j] for b in range(B) for j in range(I)])
    rel_t = ((g_t - fd_t).norm() / fd_t.norm()).item()
    assert rel_t < tol, (rel_t, g_t, fd_t)


def test_membrane_gradient_is_exact_discrete_adjoint_without_spikes():
    T, B, N = 25, 2, 3
    cur = (torch.rand(T, B, N, dtype=torch.float64) * 0.2)
    p = CubaParams(leak=0.1, threshold=100.0, tau_syn=3e-6, tau_mem=5e-6)
    wv = torch.randn(T, B, N, dtype=torch.float64)
    a = cur.clone().requires_grad_()
    z, v, i = eventprop_lif(a, p, DT, membrane_grad=True)
    assert z.sum() == 0
    (v * wv).sum().backward()
    b = cur.clone().requires_grad_()
    z2, v2, i2 = eventprop_lif_reference(b, p, DT)
    (v2 * wv).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-14)
    # without membrane_grad the membrane gradient is ignored, as upstream
    c = cur.clone().requires_grad_()
    z, v, i = eventprop_lif(c, p, DT)
    (v * wv).sum().backward()
    assert c.grad.abs().max() == 0


# ------------------------------------------------------------------ (c) memory footprint


def _saved_bytes(fn):
    sizes = []

    def pack(t):
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(sizes), out


@pytest.mark.parametrize("T,B,N", [(50, 4, 8), (100, 4, 8), (50, 8, 16)])
def test_saved_tensor_footprint_is_o_bn_per_step(T, B, N):
    x = torch.rand(T, B, N, requires_grad=True)
    nbytes, _ = _saved_bytes(lambda: eventprop_lif(x, E1, DT))
    assert nbytes <= 5 * T * B * N  # fp32 current + bool spikes per neuron-step
    ref_bytes, _ = _saved_bytes(lambda: eventprop_lif_reference(x, E1, DT))
    assert ref_bytes > nbytes  # BPTT through the loop keeps more
    I = 6
    xs = (torch.rand(T, B, I) < 0.2).float()
    W = torch.rand(N, I, requires_grad=True)
    nbytes, _ = _saved_bytes(lambda: eventprop_linear_lif(xs, W, E1, DT))
    assert nbytes <= 5 * T * B * N + 4 * T * B * I + 4 * N * I


# ------------------------------------------------------------------ hardware mode


def test_hardware_mode_returns_traces_and_recomputes_current():
    T, B, N = 30, 2, 4
    cur = torch.rand(T, B, N) * 0.3
    z, v, i = eventprop_lif(cur, E1, DT)
    assert z.sum() > 0
    madc = torch.randn(T, B, N) * 100  # must not be read as the current (SPEC 18 #12)
    a, b = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    gs = torch.randn(T, B, N)
    zh, vh, ih = eventprop_lif(a, E1, DT, hw_data=(z, v, madc))
    assert torch.equal(zh, z) and torch.equal(vh, v) and torch.equal(ih, i)
    (zh * gs).sum().backward()
    zs, _, _ = eventprop_lif(b, E1, DT)
    (zs * gs).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    # measured spikes differ: the adjoint jumps at the measured spikes; membrane may be absent
    hs = torch.zeros(T, B, N)
    hs[10] = 1.0
    c = cur.clone().requires_grad_()
    zh, vh, ih = eventprop_lif(c, E1, DT, hw_data=(hs, None, None))
    assert vh is None and torch.equal(zh, hs)
    zh[10].sum().backward()
    assert c.grad[:9].abs().min() > 0 and c.grad[10:].abs().max() == 0
    inp = torch.stack([cur, torch.zeros_like(cur)])
    zn, vn, inn = eventprop_neuron(inp, E1, DT, hw_data=(z, v))
    assert torch.equal(zn, z) and torch.equal(inn, i)


# ------------------------------------------------------------------ devices, dtypes, modules


@pytest.mark.parametrize("device", DEVICES)
def test_device_agnostic_and_float64(device):
    T, B, I, O = 40, 3, 5, 4
    xs = (torch.rand(T, B, I, device=device) < 0.3).double()
    W = (torch.rand(O, I, device=device, dtype=torch.float64) * 0.8).requires_grad_()
    z, v, i = eventprop_linear_lif(xs, W, E1, DT)
    assert z.device.type == device and z.dtype == torch.float64
    first_spike_time(z, DT).sum().backward()
    assert W.grad.device.type == device and torch.isfinite(W.grad).all()


def test_eventprop_module():
    torch.manual_seed(0)
    layer = EventPropLIF(5, 3, threshold=0.5, weight_scale=3.0, return_traces=True)
    x = (torch.rand(60, 2, 5) < 0.2).float()
    s, tr = layer(x)
    z, v, i = eventprop_linear_lif(x, layer.weight.detach(), layer.params(), layer.dt)
    assert torch.equal(s, z) and torch.equal(tr.membrane, v)
    assert torch.equal(layer.last_traces.current, i)
    sur = EventPropLIF(5, 3, threshold=0.5, gradient="surrogate")
    sur.weight.data.copy_(layer.weight.data)
    assert torch.equal(sur(x), s)
    sur(x).sum().backward()
    assert sur.weight.grad.abs().sum() > 0
    # two stacked layers: hidden-layer weights get gradients through (lam_v - lam_i) W
    net = torch.nn.Sequential(EventPropLIF(5, 6, threshold=0.3, weight_scale=4.0),
                              EventPropLIF(6, 2, threshold=0.3, weight_scale=4.0))
    out = net(x)
    if out.sum() > 0:
        first_spike_time(out, layer.dt).sum().backward()
        assert net[0].weight.grad is not None
    assert "eventprop" in repr(layer)


def test_a_few_training_steps_reduce_a_spike_time_loss():
    torch.manual_seed(1)
    dt = 1e-6
    layer = EventPropLIF(4, 2, threshold=0.5, tau_syn=5e-6, tau_mem=10e-6, dt=dt,
                         weight_scale=3.0, current_index="aligned")
    with torch.no_grad():
        layer.weight.abs_().add_(0.3)
    x = torch.zeros(60, 1, 4)
    x[[0, 3, 6, 9], 0, [0, 1, 2, 3]] = 1.0
    target = torch.tensor([[20e-6, 30e-6]])
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)

    def loss():
        s, tr = layer(x), layer.last_traces
        t = first_spike_time(s, dt, crossing_offsets(tr.membrane, tr.current, layer.params(), dt))
        return (((t - target) / 1e-6) ** 2).sum()

    losses = []
    for _ in range(6):
        opt.zero_grad()
        lo = loss()
        lo.backward()
        opt.step()
        losses.append(lo.item())
    final = loss().item()
    assert all(b < a for a, b in zip(losses, losses[1:] + [final])), (losses, final)  # every step improves
    assert final < 0.8 * losses[0]


# ------------------------------------------------------------------ validation


def test_eventprop_validation_errors():
    x = torch.rand(5, 2, 3)
    with pytest.raises(ValueError, match="current_index"):
        eventprop_lif(x, E1, DT, current_index="norse")
    with pytest.raises(TypeError, match="membrane_grad"):
        eventprop_lif(x, E1, DT, membrane_grad=1)
    with pytest.raises(ValueError, match="dt/params.tau_syn"):
        eventprop_lif(x, E1, dt=1e-5)
    with pytest.raises(TypeError, match="params"):
        eventprop_lif(x, (0.0, 0.0, 0.3), DT)
    with pytest.raises(ValueError, match="current"):
        eventprop_lif(torch.rand(5), E1, DT)
    with pytest.raises(ValueError, match="current"):
        eventprop_lif(torch.full((5, 2, 3), float("inf")), E1, DT)
    with pytest.raises(ValueError, match="hw_data\\[0\\]"):
        eventprop_lif(x, E1, DT, hw_data=(None, x, None))
    with pytest.raises(ValueError, match="hw_data\\[0\\]"):
        eventprop_lif(x, E1, DT, hw_data=(torch.zeros(4, 2, 3),))
    with pytest.raises(ValueError, match="hw_data\\[1\\]"):
        eventprop_lif(x, E1, DT, hw_data=(torch.zeros(5, 2, 3), torch.zeros(5, 2)))
    with pytest.raises(TypeError, match="hw_data"):
        eventprop_lif(x, E1, DT, hw_data=torch.zeros(5, 2, 3))
    with pytest.raises(ValueError, match="input"):
        eventprop_neuron(torch.rand(3, 5, 2, 3), E1, DT)
    with pytest.raises(ValueError, match="weight"):
        eventprop_linear_lif(x, torch.rand(4, 2), E1, DT)
    with pytest.raises(ValueError, match="weight"):
        eventprop_synapse(x, torch.rand(4))
    with pytest.raises(ValueError, match="x"):
        eventprop_linear_lif(torch.rand(5, 3), torch.rand(4, 3), E1, DT)
    with pytest.raises(ValueError, match="params.threshold"):
        eventprop_lif(x, E1._replace(threshold=torch.ones(4)), DT)
    with pytest.raises(ValueError, match="current"):
        crossing_offsets(torch.zeros(3, 1, 2), torch.zeros(3, 1, 1), E1)
    with pytest.raises(ValueError, match="gradient"):
        EventPropLIF(2, 2, gradient="bptt")
    with pytest.raises(TypeError, match="in_features"):
        EventPropLIF(2.0, 2)
    with pytest.raises(ValueError, match="dt/tau_mem"):
        EventPropLIF(2, 2, tau_mem=1e-7)
    with pytest.raises(ValueError, match="hw_data"):
        EventPropLIF(2, 2, gradient="surrogate")(torch.zeros(3, 1, 2), hw_data=(torch.zeros(3, 1, 2),))
    with pytest.raises(ValueError, match="x"):
        EventPropLIF(2, 2, gradient="surrogate")(torch.zeros(3, 1, 3))
    with pytest.raises(ValueError, match="weight"):
        EventPropLIF(2, 2)(torch.zeros(3, 1, 3))


# ------------------------------------------------------------------ losses


def test_first_spike_time_values_and_gradient():
    s = torch.zeros(5, 2, 3)
    s[1, 0, 0] = 1
    s[3, 0, 0] = 1
    s[4, 1, 2] = 1
    s.requires_grad_()
    t = first_spike_time(s, dt=0.5)
    assert t.tolist() == [[0.5, 2.5, 2.5], [2.5, 2.5, 2.0]]  # no spike -> T * dt
    w = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (t * w).sum().backward()
    expected = torch.zeros(5, 2, 3)
    expected[1, 0, 0] = -1.0
    expected[4, 1, 2] = -6.0
    assert torch.equal(s.grad, expected)  # -dL/dt at the spike, nothing for silent neurons
    off = torch.full((5, 2, 3), -0.25)
    t2 = first_spike_time(s, dt=0.5, offsets=off, n=2)
    assert t2[0, 0].item() == pytest.approx((3 - 0.25) * 0.5) and t2[1, 2].item() == 2.5


def test_spike_time_cross_entropy_and_max_membrane():
    times = torch.tensor([[1.0, 2.0, 4.0], [3.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([0, 2])
    loss = spike_time_cross_entropy(times, target, tau=2.0)
    logits = -times.detach() / 2.0
    manual = -(logits.log_softmax(1)[[0, 1], [0, 2]]).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    loss.backward()
    assert times.grad[0, 0] > 0  # the target neuron should fire earlier: dL/dt > 0
    m = torch.zeros(4, 2, 3, requires_grad=True)
    with torch.no_grad():
        m[2, 0, 1] = 3.0
    assert max_membrane(m)[0, 1].item() == 3.0
    l2 = max_membrane_cross_entropy(m, torch.tensor([1, 0]), reduction="sum")
    l2.backward()
    assert m.grad[2, 0, 1] < 0 and m.grad[[0, 1, 3], 0, 1].abs().sum() == 0


def test_loss_validation_errors():
    s = torch.zeros(4, 2, 3)
    with pytest.raises(ValueError, match="dt"):
        first_spike_time(s, dt=0)
    with pytest.raises(TypeError, match="dt"):
        first_spike_time(s, dt="1")
    with pytest.raises(ValueError, match="n"):
        first_spike_time(s, n=0)
    with pytest.raises(TypeError, match="n"):
        first_spike_time(s, n=1.0)
    with pytest.raises(ValueError, match="offsets"):
        first_spike_time(s, offsets=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="offsets"):
        first_spike_time(s, offsets=torch.full((4, 2, 3), 0.5))
    with pytest.raises(ValueError, match="spikes"):
        first_spike_time(torch.zeros(4))
    with pytest.raises(TypeError, match="target"):
        spike_time_cross_entropy(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="target"):
        spike_time_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="target"):
        spike_time_cross_entropy(torch.zeros(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="tau"):
        spike_time_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), tau=0.0)
    with pytest.raises(ValueError, match="times"):
        spike_time_cross_entropy(torch.zeros(2, 3, 1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        spike_time_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="membrane"):
        max_membrane_cross_entropy(torch.zeros(4, 2, 3, 1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="membrane"):
        max_membrane(torch.zeros(4))
