"""hxtorch CUBA LIF (SPEC 2.3, 13, 17 H1-H3): functional and module tests."""
import math

import pytest
import torch

from spikefuse import kernels
from spikefuse.functional import cuba as F
from spikefuse.functional.cuba import (
    CubaParams,
    CubaRefractoryState,
    CubaState,
    cuba_lif_integration,
    cuba_lif_multistep,
    cuba_lif_step,
    cuba_refractory_lif_integration,
    cuba_refractory_lif_step,
    inject,
    refractory_update,
    spiking_threshold,
)
from spikefuse.neuron.cuba import CubaLIF, CubaRefractoryLIF

H1 = CubaParams(leak=0.0, reset=0.0, threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, alpha=50.0)
DT = 1e-6


def h1_input(dtype=torch.float32):
    x = torch.zeros(6, 1, 1, dtype=dtype)
    x[0] = 1.0
    x[3] = 0.8
    return x


def flat(t):
    return t.detach().flatten().tolist()


# ------------------------------------------------------------------ independent fp64 reference


class _SS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x > 0).double()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (ctx.alpha * x.abs() + 1) ** 2, None


def spec_loop(x, leak, reset, thr, tau_syn, tau_mem, alpha, dt, ref_time=None):
    """SPEC 13.1-13.3 written out in float64, independent of the code under test."""
    x = x.double()
    B = x.shape[1:]
    z = torch.zeros(B, dtype=torch.float64)
    v = torch.zeros(B, dtype=torch.float64) + leak
    i = torch.zeros(B, dtype=torch.float64)
    ref = torch.zeros(B, dtype=torch.float64)
    R = float(torch.tensor(ref_time, dtype=torch.float32) / torch.tensor(dt, dtype=torch.float32)) if ref_time else 0
    zs, vs, is_ = [], [], []
    for t in range(x.shape[0]):
        dv = dt / tau_mem * (leak - v + i)
        i = i * (1 - dt / tau_syn) + x[t]
        v = v + dv
        z = _SS.apply(v - thr, alpha)
        v = (1 - z.detach()) * v + z.detach() * reset
        if ref_time is not None:
            m = (ref > 0).double()
            v = (1 - m) * v + m * reset
            z = (1 - m) * z
            ref = (1 - z.detach()) * torch.relu(ref - m) + z.detach() * R
        zs.append(z)
        vs.append(v)
        is_.append(i)
    return torch.stack(zs), torch.stack(vs), torch.stack(is_)


# ------------------------------------------------------------------ SPEC 17 vectors


def test_h1_forward_vectors():
    z, v, i, madc = cuba_lif_integration(h1_input(), H1, dt=DT, backend="reference")
    assert flat(z) == [0, 1, 0, 0, 1, 0]
    assert flat(v) == pytest.approx([0, 0, 0.25, 0.25, 0, 0.23125], abs=1e-6)
    assert flat(i) == pytest.approx([1, 0.5, 0.25, 0.925, 0.4625, 0.23125], abs=1e-6)
    assert madc is None
    assert z.shape == v.shape == i.shape == (6, 1, 1)


def test_h1_superspike_gradient_value():
    x = h1_input().requires_grad_()
    z, v, i, _ = cuba_lif_integration(x, H1, dt=DT, backend="reference")
    z[1].sum().backward()
    # dz[1]/dx[0] = dv/dx * 1/(alpha (v - theta) + 1)^2 = 0.5 / (50 * 0.2 + 1)^2
    assert x.grad[0].item() == pytest.approx(0.5 / 121, rel=1e-5)
    assert x.grad[0].item() == pytest.approx(0.0041322, abs=1e-7)
    assert flat(x.grad[1:]) == [0, 0, 0, 0, 0]  # one step of synaptic delay, no future influence


def test_h2_refractory_vectors():
    p = H1._replace(refractory_time=2e-6)
    z, v, i, _ = cuba_refractory_lif_integration(h1_input(), p, dt=DT, backend="reference")
    assert flat(z) == [0, 1, 0, 0, 1, 0]
    assert flat(v) == [0, 0, 0, 0, 0, 0]
    assert flat(i) == pytest.approx([1, 0.5, 0.25, 0.925, 0.4625, 0.23125], abs=1e-6)


def _h3_hw(T=5):
    spikes = torch.zeros(T, 1, 1)
    spikes[2] = 1.0
    cadc = torch.tensor([0.0, 0.1, 0.5, 0.2, 0.1]).reshape(5, 1, 1)
    return spikes, cadc


def test_h3_spikes_and_cadc():
    spikes, cadc = _h3_hw()
    madc = torch.randn(7, 1, 1)
    x = h1_input().requires_grad_()
    z, v, i, m = cuba_lif_integration(x, H1, hw_data=(spikes, cadc, madc), dt=DT)
    assert z.shape == (5, 1, 1)  # T_eff = min(6, 5, 5)
    assert flat(z) == flat(spikes)
    assert flat(v) == pytest.approx(flat(cadc))
    assert flat(i) == pytest.approx([1, 0.5, 0.25, 0.925, 0.4625], abs=1e-6)
    assert m is madc  # MADC passed through untouched
    z[2].sum().backward()
    assert flat(x.grad) == pytest.approx([0.0041322, 0.0041322, 0, 0, 0, 0], abs=1e-7)


def test_h3_spikes_only():
    spikes, _ = _h3_hw()
    z, v, i, m = cuba_lif_integration(h1_input(), H1, hw_data=(spikes, None, None), dt=DT)
    assert flat(z) == flat(spikes)
    assert flat(v) == pytest.approx([0, 0.5, 0, 0.125, 0.525], abs=1e-6)
    assert m is None


def test_h3_refractory_variant_reapplies_injection():
    spikes, cadc = _h3_hw()
    p = H1._replace(refractory_time=2e-6)
    z, v, i, _ = cuba_refractory_lif_integration(h1_input(), p, hw_data=(spikes, cadc), dt=DT)
    assert flat(z) == flat(spikes)
    assert flat(v) == pytest.approx(flat(cadc))
    # spikes only: software reset after the measured spike at t=2, then refractory clamp t=3,4
    z, v, i, _ = cuba_refractory_lif_integration(h1_input(), p, hw_data=(spikes,), dt=DT)
    assert flat(z) == flat(spikes)
    assert flat(v) == pytest.approx([0, 0.5, 0, 0, 0], abs=1e-6)


def test_t_eff_is_min_of_traces():
    x = torch.rand(8, 2, 3)
    cadc = torch.rand(6, 2, 3)
    spikes = torch.zeros(7, 2, 3)
    z, v, i, _ = cuba_lif_integration(x, CubaParams(), hw_data=(spikes, cadc, None))
    assert z.shape[0] == v.shape[0] == i.shape[0] == 6
    z, v, i, _ = cuba_lif_integration(x, CubaParams(), hw_data=(None, None, torch.rand(2)))
    assert z.shape[0] == 8


# ------------------------------------------------------------------ surrogate


def test_spiking_threshold_forward_backward():
    x = torch.tensor([-0.3, 0.0, 0.2, 1.0], requires_grad=True)
    z = spiking_threshold(x, "superspike", 50.0)
    assert flat(z) == [0, 0, 1, 1]  # strict: x = 0 does not spike
    z.sum().backward()
    expected = [1 / (50 * abs(a) + 1) ** 2 for a in [-0.3, 0.0, 0.2, 1.0]]
    assert flat(x.grad) == pytest.approx(expected, rel=1e-6)


def test_spiking_threshold_tensor_alpha():
    x = torch.tensor([0.1, 0.1], requires_grad=True)
    spiking_threshold(x, alpha=torch.tensor([10.0, 100.0])).sum().backward()
    assert flat(x.grad) == pytest.approx([1 / 4.0, 1 / 121.0], rel=1e-6)


def test_spiking_threshold_errors():
    with pytest.raises(ValueError, match="method"):
        spiking_threshold(torch.zeros(2), "super_spike", 50.0)
    with pytest.raises(ValueError, match="alpha"):
        spiking_threshold(torch.zeros(2), "superspike", 0.0)
    with pytest.raises(TypeError, match="input"):
        spiking_threshold([0.0], "superspike", 1.0)


# ------------------------------------------------------------------ multi-step == looped step


def _random_params(N, refractory_time=3e-6, requires_grad=False):
    g = torch.Generator().manual_seed(3)
    p = CubaParams(
        leak=torch.rand(N, generator=g) * 0.1,
        reset=-torch.rand(N, generator=g) * 0.2,
        threshold=0.2 + torch.rand(N, generator=g) * 0.3,
        tau_syn=torch.full((N,), 5e-6),
        tau_mem=3e-6 + torch.rand(N, generator=g) * 10e-6,
        refractory_time=refractory_time,
        alpha=20.0,
    )
    if requires_grad:
        p = p._replace(threshold=p.threshold.requires_grad_(), tau_mem=p.tau_mem.requires_grad_())
    return p


@pytest.mark.parametrize("refractory", [False, True])
def test_multistep_equals_looped_step(refractory):
    T, B, N = 20, 3, 5
    x = torch.rand(T, B, N) * 0.6
    p = _random_params(N)
    s_seq, final, tr = cuba_lif_multistep(x, p, backend="reference", return_traces=True,
                                          refractory=refractory, dt=DT)
    step = cuba_refractory_lif_step if refractory else cuba_lif_step
    state = None
    zs, vs, is_ = [], [], []
    for t in range(T):
        z, state = step(x[t], state, p, dt=DT)
        zs.append(z)
        vs.append(state.v)
        is_.append(state.i)
    assert torch.equal(s_seq, torch.stack(zs))
    assert torch.equal(tr.membrane, torch.stack(vs))
    assert torch.equal(tr.current, torch.stack(is_))
    assert s_seq.sum() > 0  # the case is not trivial
    for a, b in zip(final, state):
        assert torch.equal(a, b)
    # continuing from the state of the first half equals the whole run
    s1, st1 = cuba_lif_multistep(x[:8], p, backend="reference", refractory=refractory, dt=DT)
    s2, st2 = cuba_lif_multistep(x[8:], p, st1, backend="reference", refractory=refractory, dt=DT)
    assert torch.equal(torch.cat([s1, s2]), s_seq)
    z1, v1, i1, _ = (cuba_refractory_lif_integration if refractory else cuba_lif_integration)(
        x[8:], p, dt=DT, state=st1, backend="reference")
    assert torch.equal(v1, tr.membrane[8:])


@pytest.mark.parametrize("refractory", [False, True])
def test_bptt_matches_float64_spec_loop(refractory):
    T, B, N = 25, 2, 4
    x = (torch.rand(T, B, N) * 0.6).requires_grad_()
    p = _random_params(N, requires_grad=True)
    fn = cuba_refractory_lif_integration if refractory else cuba_lif_integration
    z, v, i, _ = fn(x, p, dt=DT, backend="reference")
    w_z, w_v = torch.randn(T, B, N), torch.randn(T, B, N)
    ((z * w_z).sum() + (v * w_v).sum()).backward()

    x64 = x.detach().double().requires_grad_()
    thr64 = p.threshold.detach().double().requires_grad_()
    tm64 = p.tau_mem.detach().double().requires_grad_()
    z2, v2, i2 = spec_loop(x64, p.leak.double(), p.reset.double(), thr64, p.tau_syn.double(), tm64,
                           20.0, DT, ref_time=p.refractory_time if refractory else None)
    ((z2 * w_z.double()).sum() + (v2 * w_v.double()).sum()).backward()
    assert torch.equal(z.double(), z2)
    assert z.sum() > 2
    torch.testing.assert_close(v.double(), v2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(p.threshold.grad.double(), thr64.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(p.tau_mem.grad.double(), tm64.grad, rtol=1e-4, atol=1e-2 * tm64.grad.abs().max().item())


def test_float64_input_computes_in_float64():
    x = h1_input(torch.float64)
    z, v, i, _ = cuba_lif_integration(x, H1, dt=DT)
    assert v.dtype == torch.float64 and z.dtype == torch.float64
    z16, v16, _, _ = cuba_lif_integration(h1_input().half(), H1, dt=DT)
    assert z16.dtype == torch.float16 and v16.dtype == torch.float32


# ------------------------------------------------------------------ refractoriness


@pytest.mark.parametrize("rt,blocked", [(2e-6, 2), (2.5e-6, 3), (5e-6, 5), (0.0, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_refractory_blocking_count(rt, blocked, dtype):
    if rt == 5e-6 and dtype == torch.float64:
        blocked = 6  # 5e-6/1e-6 = 5.000000000000001 in float64, as in hxtorch (issue 10, 6c)
    # a strong constant drive makes the neuron fire whenever it is allowed to
    p = CubaParams(threshold=0.1, tau_syn=1e-6, tau_mem=1e-6, refractory_time=rt)
    x = torch.full((20, 1, 1), 5.0, dtype=dtype)
    z, v, i, _ = cuba_refractory_lif_integration(x, p, dt=DT)
    idx = [t for t, s in enumerate(flat(z)) if s]
    gaps = [b - a - 1 for a, b in zip(idx, idx[1:])]
    assert len(idx) >= 3 and set(gaps) == {blocked}
    # during the blocked steps v is clamped to reset
    for a in idx[:-1]:
        assert flat(v[a + 1:a + 1 + blocked]) == [0.0] * blocked


def test_refractory_counter_not_rounded_and_gradient_blocked():
    z = torch.ones(1, requires_grad=True)
    v = torch.full((1,), 0.7, requires_grad=True)
    z1, v1, ref = refractory_update(z, v, torch.zeros(1), reset=-0.1, refractory_time=2.5e-6, dt=1e-6)
    assert ref.item() == 2.5 and z1.item() == 1.0 and v1.item() == pytest.approx(0.7)
    z2, v2, ref2 = refractory_update(z1, v1, ref, reset=-0.1, refractory_time=2.5e-6, dt=1e-6)
    assert z2.item() == 0.0 and v2.item() == pytest.approx(-0.1) and ref2.item() == 1.5
    (z2 + v2).sum().backward()
    assert z.grad.item() == 0.0 and v.grad.item() == 0.0
    # float noise: 5e-6/1e-6 is computed in the input dtype, as hxtorch does: float64 gives
    # 5.000000000000001 (issue 10, 6c), float32 exactly 5
    _, _, r = refractory_update(torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                                torch.zeros(1, dtype=torch.float64), refractory_time=5e-6, dt=1e-6)
    assert r.item() == 5e-6 / 1e-6 and r.item() != 5.0
    _, _, r = refractory_update(torch.ones(1), torch.zeros(1), torch.zeros(1), refractory_time=5e-6, dt=1e-6)
    assert r.item() == 5.0


def test_refractory_update_with_injection():
    z, v, ref = refractory_update(torch.zeros(1), torch.zeros(1), torch.ones(1),
                                  spikes_hw=torch.ones(1), membrane_hw=torch.full((1,), 0.4),
                                  reset=0.0, refractory_time=2e-6, dt=1e-6)
    assert z.item() == 1.0 and v.item() == pytest.approx(0.4) and ref.item() == 2.0


# ------------------------------------------------------------------ injection


def test_inject_forward_and_gradient():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = torch.tensor([-1.0, 5.0, 0.5], requires_grad=True)
    y = inject(a, b)
    assert flat(y) == flat(b)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert flat(a.grad) == [1.0, 2.0, 3.0]
    assert b.grad is None
    # broadcasting a against b: gradient summed back to a's shape
    a2 = torch.ones(1, requires_grad=True)
    inject(a2, torch.zeros(4)).sum().backward()
    assert a2.grad.item() == 4.0
    with pytest.raises(ValueError, match="b"):
        inject(torch.zeros(3), torch.zeros(2))


def test_injection_gradients_flow_through_the_model():
    T, B, N = 10, 2, 3
    x = (torch.rand(T, B, N)).requires_grad_()
    p = CubaParams(threshold=0.3, tau_syn=4e-6, tau_mem=4e-6)
    cadc = torch.rand(T, B, N) * 0.5
    spikes = (torch.rand(T, B, N) < 0.3).float()
    z, v, i, _ = cuba_lif_integration(x, p, hw_data=(spikes, cadc, None), dt=DT)
    assert torch.equal(z, spikes) and torch.allclose(v, cadc)
    (z.sum() + v.sum()).backward()
    assert x.grad.abs().sum() > 0
    # gradient equals the software model's when the measured traces equal the software ones
    x2 = x.detach().clone().requires_grad_()
    zs, vs, _, _ = cuba_lif_integration(x2, p, dt=DT)
    (zs.sum() + vs.sum()).backward()
    x3 = x.detach().clone().requires_grad_()
    zh, vh, _, _ = cuba_lif_integration(x3, p, hw_data=(zs.detach(), None, None), dt=DT)
    (zh.sum() + vh.sum()).backward()
    torch.testing.assert_close(x3.grad, x2.grad)


def test_cadc_injection_follows_measured_membrane():
    # with CADC, the next step integrates from the measured value and the surrogate is taken there
    x = torch.zeros(3, 1, 1)
    cadc = torch.tensor([0.0, 0.8, 0.2]).reshape(3, 1, 1)
    p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    z, v, _, _ = cuba_lif_integration(x, p, hw_data=(None, cadc), dt=DT)
    assert flat(z) == [0, 1, 0]  # threshold evaluated on the measured value
    assert flat(v) == pytest.approx(flat(cadc))  # no software reset


# ------------------------------------------------------------------ kernel hook contract


def test_kernel_hook_contract(monkeypatch):
    calls = []

    def fake(x, params, state, return_traces, *, dt, refractory_time):
        # kernel contract: raw (outputs, final state, traces); the kernels start from rest
        assert state is None and return_traces is False
        calls.append((x.shape, params, dt, refractory_time))
        z, v, i, _ = cuba_lif_integration(x, params, dt=dt, backend="reference") if refractory_time is None \
            else cuba_refractory_lif_integration(x, params, dt=dt, backend="reference")
        from spikefuse.kernels._common import cuba_final_state
        return (z, v, i), cuba_final_state(z, v, i, refractory_time, dt), None

    def supports(x, **opts):
        assert set(opts) == {"params", "refractory", "dt"}
        return None

    monkeypatch.setitem(kernels._REGISTRY, ("cuba", "cpu"), kernels.Kernel(fake, supports))
    monkeypatch.setattr(kernels, "_loaded", True)
    x = torch.rand(12, 2, 3)
    p = CubaParams(threshold=0.4, tau_syn=3e-6, tau_mem=3e-6, refractory_time=2e-6)
    z, v, i, _ = cuba_lif_integration(x, p, dt=DT, backend="cpu")
    assert calls[-1] == (x.shape, p, DT, None)
    s, st = cuba_lif_multistep(x, p, dt=DT, backend="cpu", refractory=True)
    assert calls[-1][3] == 2e-6
    s_ref, st_ref = cuba_lif_multistep(x, p, dt=DT, backend="reference", refractory=True)
    assert s.sum() > 0
    for a, b in zip(st, st_ref):  # final state (incl. refractory counter) derived from traces
        assert torch.equal(a, b)
    n = len(calls)
    cuba_lif_integration(x, p, hw_data=(torch.zeros(12, 2, 3),), dt=DT, backend="auto")
    cuba_lif_integration(x, p, dt=DT, backend="auto", state=CubaState(*st_ref[:3]))
    assert len(calls) == n  # no kernel with hw_data or an initial state
    with pytest.raises(ValueError, match="backend"):
        cuba_lif_integration(x, p, hw_data=(torch.zeros(12, 2, 3),), dt=DT, backend="cpu")


# ------------------------------------------------------------------ crossing offsets


def test_crossing_offsets_interpolate_within_step():
    z, v, i, _ = cuba_lif_integration(h1_input(), H1, dt=DT)
    off = F.crossing_offsets(v, i, H1, DT)
    # step 1: 0 -> 0.5 crosses 0.3 at 0.6; step 4: 0.25 -> 0.5875 crosses at 0.05/0.3375
    assert off[1].item() == pytest.approx(-0.4, abs=1e-6)
    assert off[4].item() == pytest.approx(0.05 / 0.3375 - 1, abs=1e-6)
    assert ((off >= -1) & (off <= 0)).all()


# ------------------------------------------------------------------ validation


def test_validation_errors():
    x = torch.rand(5, 2, 3)
    with pytest.raises(TypeError, match="x"):
        cuba_lif_integration(x.numpy(), CubaParams())
    with pytest.raises(ValueError, match="x"):
        cuba_lif_integration(torch.rand(5), CubaParams())
    with pytest.raises(ValueError, match="x"):
        cuba_lif_integration(torch.full((5, 2, 3), float("nan")), CubaParams())
    with pytest.raises(TypeError, match="x"):
        cuba_lif_integration(torch.ones(5, 2, 3, dtype=torch.int64), CubaParams())
    with pytest.raises(TypeError, match="params"):
        cuba_lif_integration(x, {"threshold": 1.0})
    with pytest.raises(ValueError, match="params.method"):
        cuba_lif_integration(x, CubaParams(method="super_spike"))
    with pytest.raises(ValueError, match="dt/params.tau_mem"):
        cuba_lif_integration(x, CubaParams(tau_mem=0.5e-6), dt=1e-6)
    with pytest.raises(ValueError, match="dt/params.tau_syn"):
        cuba_lif_integration(x, CubaParams(tau_syn=torch.tensor([1e-5, 1e-7, 1e-5])), dt=1e-6)
    with pytest.raises(ValueError, match="params.tau_syn"):
        cuba_lif_integration(x, CubaParams(tau_syn=-1e-6))
    with pytest.raises(ValueError, match="params.alpha"):
        cuba_lif_integration(x, CubaParams(alpha=-1.0))
    with pytest.raises(ValueError, match="params.threshold"):
        cuba_lif_integration(x, CubaParams(threshold=float("inf")))
    with pytest.raises(ValueError, match="params.leak"):
        cuba_lif_integration(x, CubaParams(leak=torch.zeros(4)))
    with pytest.raises(ValueError, match="params.refractory_time"):
        cuba_refractory_lif_integration(x, CubaParams(refractory_time=-1e-6))
    with pytest.raises(ValueError, match="dt"):
        cuba_lif_integration(x, CubaParams(), dt=0.0)
    with pytest.raises(TypeError, match="dt"):
        cuba_lif_integration(x, CubaParams(), dt="1e-6")
    with pytest.raises(TypeError, match="hw_data"):
        cuba_lif_integration(x, CubaParams(), hw_data=torch.zeros(5, 2, 3))
    with pytest.raises(ValueError, match="hw_data\\[0\\]"):
        cuba_lif_integration(x, CubaParams(), hw_data=(torch.zeros(5, 2, 4), None, None))
    with pytest.raises(ValueError, match="hw_data\\[1\\]"):
        cuba_lif_integration(x, CubaParams(), hw_data=(None, torch.zeros(5, 3)))
    with pytest.raises(ValueError, match="hw_data\\[1\\]"):
        cuba_lif_integration(x, CubaParams(), hw_data=(None, torch.full((5, 2, 3), float("nan"))))
    with pytest.raises(TypeError, match="state"):
        cuba_lif_integration(x, CubaParams(), state=(torch.zeros(2, 3),))
    with pytest.raises(ValueError, match="state.v"):
        cuba_lif_integration(x, CubaParams(), state=CubaState(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, 3)))
    with pytest.raises(TypeError, match="state"):
        cuba_refractory_lif_integration(x, CubaParams(), state=CubaState(*(torch.zeros(2, 3),) * 3))
    with pytest.raises(ValueError, match="backend"):
        cuba_lif_integration(x, CubaParams(), backend="gpu")
    with pytest.raises(TypeError, match="return_traces"):
        cuba_lif_multistep(x, CubaParams(), return_traces=1)
    with pytest.raises(ValueError, match="spikes_hw"):
        cuba_lif_step(x[0], None, CubaParams(), spikes_hw=torch.zeros(3))
    with pytest.raises(ValueError, match="membrane_hw"):
        cuba_refractory_lif_step(x[0], None, CubaParams(), membrane_hw=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="refractory_time"):
        refractory_update(torch.zeros(1), torch.zeros(1), torch.zeros(1), refractory_time=-1.0)
    with pytest.raises(ValueError, match="ref"):
        refractory_update(torch.zeros(1), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="current"):
        F.crossing_offsets(torch.zeros(3, 1, 2), torch.zeros(3, 1, 1), CubaParams())


# ------------------------------------------------------------------ modules


def test_module_matches_functional_and_keeps_traces():
    T, B, N = 15, 2, 4
    x = torch.rand(T, B, N) * 0.5
    p = _random_params(N)
    n = CubaLIF(leak=p.leak, reset=p.reset, threshold=p.threshold, tau_syn=p.tau_syn,
                tau_mem=p.tau_mem, alpha=20.0, dt=DT)
    s = n(x)
    z, v, i, _ = cuba_lif_integration(x, p, dt=DT)
    assert torch.equal(s, z)
    assert torch.equal(n.last_traces.membrane, v) and torch.equal(n.last_traces.current, i)
    assert not n.last_traces.membrane.requires_grad
    assert "threshold" in dict(n.named_buffers())
    r = CubaRefractoryLIF(threshold=p.threshold, tau_syn=5e-6, tau_mem=5e-6, refractory_time=3e-6,
                          return_traces=True)
    s2, tr = r(x)
    z2, v2, _, _ = cuba_refractory_lif_integration(
        x, CubaParams(threshold=p.threshold, tau_syn=5e-6, tau_mem=5e-6, refractory_time=3e-6), dt=DT)
    assert torch.equal(s2, z2) and torch.equal(tr.membrane, v2)
    assert "refractory_time" in repr(r)


def test_module_learnable_threshold_and_hw_data():
    thr = torch.nn.Parameter(torch.full((3,), 0.3))
    n = CubaLIF(threshold=thr, tau_syn=2e-6, tau_mem=2e-6)
    assert any(p is thr for p in n.parameters())
    x = torch.rand(8, 2, 3)
    n(x).sum().backward()
    assert thr.grad is not None and thr.grad.abs().sum() > 0
    cadc = torch.rand(6, 2, 3)
    s = n(x, hw_data=(None, cadc, None))
    assert s.shape == (6, 2, 3) and torch.allclose(n.last_traces.membrane, cadc)


def test_module_validation_errors():
    with pytest.raises(ValueError, match="dt/tau_mem"):
        CubaLIF(tau_mem=1e-7)
    with pytest.raises(ValueError, match="alpha"):
        CubaLIF(alpha=0.0)
    with pytest.raises(ValueError, match="method"):
        CubaLIF(method="atan")
    with pytest.raises(ValueError, match="threshold"):
        CubaLIF(threshold=float("nan"))
    with pytest.raises(TypeError, match="dt"):
        CubaLIF(dt=None)
    with pytest.raises(ValueError, match="backend"):
        CubaLIF(backend="cuda")
    with pytest.raises(ValueError, match="refractory_time"):
        CubaRefractoryLIF(refractory_time=-1.0)
    n = CubaLIF(threshold=torch.ones(3))
    with pytest.raises(ValueError, match="params.threshold"):
        n(torch.rand(4, 2, 5))
    with pytest.raises(ValueError, match="x"):
        n(torch.rand(4))


def test_hxtorch_default_modules():
    n = CubaRefractoryLIF.with_hxtorch_defaults()
    assert (n.leak, n.reset, n.threshold, n.tau_mem, n.refractory_time) == (80.0, 80.0, 125.0, 10e-6, 1e-6)
    x = torch.zeros(30, 1, 1)
    x[0] = 600.0  # drive from rest 80 above 125
    z = n(x)
    assert z.sum() >= 1 and n.last_traces.membrane[0].item() == 80.0
