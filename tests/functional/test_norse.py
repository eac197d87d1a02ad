"""norse's neurons (spikefuse.functional.norse): hand-derived steps from norse's equations
(at-threshold cases included), multi-step == looped step, gradients against autograd of an
independent float64 transcription of the equations, every threshold method's backward, errors."""
import math

import pytest
import torch

from spikefuse.functional import norse as F
from spikefuse.functional.norse import (
    NorseLIFAdExParams,
    NorseLIFAdExState,
    NorseLIFParams,
    NorseLIFRecurrentState,
    NorseLIFRefracParams,
    NorseLIFRefracState,
    NorseLIFState,
    norse_lif_adex_multistep,
    norse_lif_adex_step,
    norse_lif_multistep,
    norse_lif_recurrent_multistep,
    norse_lif_recurrent_step,
    norse_lif_refrac_multistep,
    norse_lif_refrac_step,
    norse_lif_step,
)

# binary-exact numbers: a_m = dt * tau_mem_inv = 0.25, a_s = dt * tau_syn_inv = 0.5
DT = 0.125
P = NorseLIFParams(tau_syn_inv=4.0, tau_mem_inv=2.0, v_leak=0.0, v_th=0.5, v_reset=-0.25, method="super",
                   alpha=100.0)


def seq(*values):
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1)


def flat(t):
    return t.detach().flatten().tolist()


# --------------------------------------------------------------------------- hand-derived steps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_feed_forward_three_steps_by_hand(dtype):
    # t0: i_jump = 0 + 2 = 2; v = 0 + 0.25 * (0 - 0 + 2) = 0.5 == v_th: no spike (strict >);
    #     i = 2 - 0.5 * 2 = 1
    # t1: i_jump = 1; v = 0.5 + 0.25 * (-0.5 + 1) = 0.625 > 0.5: spike, v = v_reset = -0.25; i = 0.5
    # t2: i_jump = 0.5; v = -0.25 + 0.25 * (0.25 + 0.5) = -0.0625; i = 0.25
    z, s, tr = norse_lif_multistep(seq(2.0, 0.0, 0.0).to(dtype), P, dt=DT, return_traces=True)
    assert flat(z) == [0.0, 1.0, 0.0]
    assert flat(tr.v) == [0.5, -0.25, -0.0625]
    assert flat(tr.i) == [1.0, 0.5, 0.25]
    assert z.dtype == dtype and tr.v.dtype == dtype
    assert flat(s.v) == [-0.0625] and flat(s.i) == [0.25]


def test_the_current_of_the_same_step_moves_the_voltage():
    # one input pulse moves v in the same step (hxtorch's CUBA moves it one step later)
    z, s, tr = norse_lif_multistep(seq(1.0), P, dt=DT, return_traces=True)
    assert flat(tr.v) == [0.25]


def test_recurrent_three_steps_by_hand():
    # one neuron with an autapse (functional: allowed), w_in = 2, w_rec = 1
    # t0: i_jump = 0 + 2*1 + 1*0 = 2; v = 0.5 (== v_th, no spike); i = 1
    # t1: i_jump = 1 + 0 + 0 = 1; v = 0.625: spike; v = -0.25; i = 0.5
    # t2: i_jump = 0.5 + 0 + 1*1 (the spike of t1 fed back) = 1.5;
    #     v = -0.25 + 0.25 * (0.25 + 1.5) = 0.1875; i = 0.75
    w_in, w_rec = torch.tensor([[2.0]]), torch.tensor([[1.0]])
    z, s, tr = norse_lif_recurrent_multistep(seq(1.0, 0.0, 0.0), w_in, w_rec, P, dt=DT, return_traces=True)
    assert flat(z) == [0.0, 1.0, 0.0]
    assert flat(tr.v) == [0.5, -0.25, 0.1875]
    assert flat(tr.i) == [1.0, 0.5, 0.75]
    assert flat(tr.z) == flat(z) and isinstance(s, NorseLIFRecurrentState)


def test_refractory_counter_by_hand():
    # x = 4 every step, rho_reset = 2, v_reset = -0.5:
    # t0: v = 0.25 * 4 = 1 > 0.5: spike; rho was 0 (m = 0): z = 1, v = -0.5, rho = 2; i = 2
    # t1: lif: v = -0.5 + 0.25 * (0.5 + 6) = 1.125 (would spike); m = 1[2 > 0] = 1: v held at -0.5,
    #     z = 0, rho = relu(2 - 1) = 1; i = 3
    # t2: lif spikes again; m = 1: z = 0, rho = relu(1 - 1) = 0; i = 3.5
    # t3: lif: v = -0.5 + 0.25 * (0.5 + 7.5) = 1.5; m = 0: z = 1, v = -0.5, rho = 2; i = 3.75
    p = NorseLIFRefracParams(P._replace(v_reset=-0.5), rho_reset=2.0)
    z, s, tr = norse_lif_refrac_multistep(seq(4.0, 4.0, 4.0, 4.0), p, dt=DT, return_traces=True)
    assert flat(z) == [1.0, 0.0, 0.0, 1.0]
    assert flat(tr.rho) == [2.0, 1.0, 0.0, 2.0]
    assert flat(tr.lif.v) == [-0.5, -0.5, -0.5, -0.5]
    assert flat(tr.lif.i) == [2.0, 3.0, 3.5, 3.75]


def test_refractory_holds_the_previous_voltage_not_the_reset():
    # rho = 1 at the start, v = 0.3: the LIF update would decay v to 0.225; it is held at 0.3
    # t0: m = 1: v = 0.3, z = 0, rho = relu(1 - 1) = 0
    # t1: m = 0: v = 0.3 + 0.25 * (-0.3 + 0) = 0.225
    p = NorseLIFRefracParams(P, rho_reset=2.0)
    state = NorseLIFRefracState(NorseLIFState(torch.full((1, 1), 0.3), torch.zeros(1, 1)), torch.ones(1, 1))
    z, s, tr = norse_lif_refrac_multistep(seq(0.0, 0.0), p, state, dt=DT, return_traces=True)
    assert flat(z) == [0.0, 0.0] and flat(tr.rho) == [0.0, 0.0]
    assert tr.lif.v.flatten().tolist() == pytest.approx([0.3, 0.225], abs=1e-7)


def _adex_by_hand(xs, p, dt):
    """norse's lif_adex_feed_forward_step written out for one neuron in Python floats."""
    v, i, a = p.v_leak, 0.0, 0.0
    out = []
    for x in xs:
        ij = i + x
        v_dec = v + dt * p.tau_mem_inv * ((p.v_leak - v) + p.delta_T * math.exp((v - p.v_th) / p.delta_T) + ij - a)
        a_dec = a + dt * p.tau_ada_inv * (p.adaptation_current * (v - p.v_leak) - a)
        i = ij - dt * p.tau_syn_inv * ij
        z = 1.0 if v_dec > p.v_th else 0.0
        v = (1 - z) * v_dec + z * p.v_reset
        a = a_dec + z * p.adaptation_spike
        out.append((z, v, i, a))
    return out


def test_adex_three_steps_by_hand():
    # defaults: a_m = 0.1, a_s = 0.2, dt * tau_ada_inv = 0.002, delta_T = 0.5, v_th = 1
    # t0: v = 0 + 0.1 * (0 + 0.5 e^-2 + 6) = 0.606767, a = 0 + 0.002 * (4 * 0 - 0) = 0, i = 4.8
    p = NorseLIFAdExParams()
    xs = [6.0, 6.0, 6.0]
    z, s, tr = norse_lif_adex_multistep(seq(*xs).double(), p, return_traces=True)
    assert flat(tr.v)[0] == pytest.approx(0.1 * (0.5 * math.exp(-2) + 6), abs=1e-12)
    hand = _adex_by_hand(xs, p, 1e-3)
    assert flat(z) == [h[0] for h in hand] and 1.0 in flat(z)
    for k, name in enumerate(("v", "i", "a"), start=1):
        assert flat(getattr(tr, name)) == pytest.approx([h[k] for h in hand], abs=1e-12), name
    assert flat(tr.a)[-1] > 0  # the spike-triggered adaptation jump arrived


def test_adex_at_threshold_does_not_spike():
    # from v = v_th = 1 (exp term = delta_T = 0.5), a = 0: v_dec = 1 + 0.1 * ((0 - 1) + 0.5 + x - 0),
    # so x = 0.5 lands exactly on the threshold (no spike, strict >) and x = 0.5 + 2^-10 above it
    p = NorseLIFAdExParams()
    state = NorseLIFAdExState(torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64),
                              torch.zeros(1, 2, dtype=torch.float64))
    z, s = norse_lif_adex_step(torch.tensor([[0.5, 0.5 + 2 ** -10]], dtype=torch.float64), state, p)
    assert flat(z) == [0.0, 1.0]
    assert flat(s.v)[0] == pytest.approx(1.0, abs=1e-15) and flat(s.v)[1] == 0.0


# --------------------------------------------------------------------------- multi-step == looped step


def _loop(step, x_seq, state, *args):
    zs = []
    for x_t in x_seq:
        z, state = step(x_t, state, *args)
        zs.append(z)
    return torch.stack(zs), state


def _rand(*shape, seed=0, scale=3.0, shift=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale + shift


def test_multistep_equals_looped_step_for_every_model():
    x = _rand(12, 3, 5)
    z, s = norse_lif_multistep(x, P, dt=DT)
    zl, sl = _loop(lambda a, b: norse_lif_step(a, b, P, DT), x, None)
    assert torch.equal(z, zl) and torch.equal(s.v, sl.v) and torch.equal(s.i, sl.i) and z.sum() > 0

    pr = NorseLIFRefracParams(P, 3.0)
    z, s = norse_lif_refrac_multistep(x, pr, dt=DT)
    zl, sl = _loop(lambda a, b: norse_lif_refrac_step(a, b, pr, DT), x, None)
    assert torch.equal(z, zl) and torch.equal(s.rho, sl.rho) and torch.equal(s.lif.v, sl.lif.v)

    pa = NorseLIFAdExParams(v_th=0.8)
    z, s = norse_lif_adex_multistep(x, pa)
    zl, sl = _loop(lambda a, b: norse_lif_adex_step(a, b, pa), x, None)
    assert torch.equal(z, zl) and torch.equal(s.a, sl.a) and z.sum() > 0

    w_in, w_rec = _rand(4, 5, seed=1, scale=1.0, shift=0.0), _rand(4, 4, seed=2, scale=1.0, shift=0.0)
    z, s = norse_lif_recurrent_multistep(x, w_in, w_rec, P, dt=DT)
    zl, sl = _loop(lambda a, b: norse_lif_recurrent_step(a, b, w_in, w_rec, P, DT), x, None)
    assert torch.equal(z, zl) and torch.equal(s.z, sl.z) and torch.equal(s.v, sl.v) and z.shape == (12, 3, 4)


def test_state_continues_a_sequence():
    x = _rand(10, 2, 3)
    z, s = norse_lif_multistep(x, P, dt=DT)
    z1, s1 = norse_lif_multistep(x[:4], P, dt=DT)
    z2, s2 = norse_lif_multistep(x[4:], P, s1, dt=DT)
    assert torch.equal(torch.cat([z1, z2]), z) and torch.equal(s2.v, s.v)


def test_initial_state_is_norse_rest():
    p = P._replace(v_leak=0.125)
    _, _, tr = norse_lif_multistep(torch.zeros(1, 1, 2), p, dt=DT, return_traces=True)
    assert flat(tr.v) == [0.125, 0.125]  # v = v_leak is a fixed point without input
    s = F.initial_state((2, 3), NorseLIFAdExParams(v_leak=-1.0))
    assert isinstance(s, NorseLIFAdExState) and flat(s.v) == [-1.0] * 6 and flat(s.a) == [0.0] * 6


# --------------------------------------------------------------------------- gradients


class _SS(torch.autograd.Function):
    """SuperSpike written out: forward 1[x > 0], backward g / (alpha |x| + 1)^2."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (ctx.alpha * x.abs() + 1) ** 2, None


def _spec_lif(x, p, dt, detach, w_in=None, w_rec=None):
    """The LIF equations in float64, independent of the code under test."""
    shape = x.shape[1:-1] + (w_in.shape[0],) if w_in is not None else x.shape[1:]
    v = torch.full(shape, p.v_leak, dtype=torch.float64)
    i = torch.zeros(shape, dtype=torch.float64)
    z = torch.zeros(shape, dtype=torch.float64)
    out, vs = [], []
    for x_t in x.unbind(0):
        jump = x_t if w_in is None else x_t @ w_in.T + z @ w_rec.T
        i = i + jump
        v = v + p.tau_mem_inv * dt * (p.v_leak - v + i)
        i = i * (1 - p.tau_syn_inv * dt)
        z = _SS.apply(v - p.v_th, p.alpha)
        zr = z.detach() if detach else z
        v = v - zr * (v - p.v_reset)
        out.append(z)
        vs.append(v)
    return torch.stack(out), torch.stack(vs)


def _weights():
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_feed_forward_gradients_match_the_spec_with_the_reset_not_detached():
    x = _rand(15, 2, 4).double().requires_grad_()
    p = P._replace(alpha=2.0)
    z, _, tr = norse_lif_multistep(x, p, dt=DT, return_traces=True)
    w = _weights()
    g, = torch.autograd.grad((z * w[0]).sum() + (tr.v * w[1]).sum(), x)
    zs, vs = _spec_lif(x, p, DT, detach=False)
    gs, = torch.autograd.grad((zs * w[0]).sum() + (vs * w[1]).sum(), x)
    assert torch.equal(z, zs) and torch.allclose(g, gs, atol=1e-10)
    zd, vd = _spec_lif(x, p, DT, detach=True)
    gd, = torch.autograd.grad((zd * w[0]).sum() + (vd * w[1]).sum(), x)
    assert not torch.allclose(g, gd, atol=1e-6)  # the detachment is visible in the gradient


def test_recurrent_gradients_match_the_spec_with_the_reset_detached():
    x = _rand(15, 2, 4).double().requires_grad_()
    w_in = (_rand(3, 4, seed=5, scale=1.0, shift=0.5).double()).requires_grad_()
    w_rec = (_rand(3, 3, seed=6, scale=0.5, shift=0.0).double()).requires_grad_()
    p = P._replace(alpha=2.0)
    z, _, tr = norse_lif_recurrent_multistep(x, w_in, w_rec, p, dt=DT, return_traces=True)
    g = torch.autograd.grad(z.sum() + tr.v.sum(), (x, w_in, w_rec))
    zs, vs = _spec_lif(x, p, DT, detach=True, w_in=w_in, w_rec=w_rec)
    gs = torch.autograd.grad(zs.sum() + vs.sum(), (x, w_in, w_rec))
    assert torch.equal(z, zs) and z.sum() > 0
    for a, b in zip(g, gs):
        assert torch.allclose(a, b, atol=1e-10)


def test_tensor_parameters_receive_gradients():
    # below threshold the dynamics are smooth: the analytic gradient w.r.t. the parameters
    # equals finite differences (from a given state: the resting state v = v_leak is built
    # from the detached v_leak, as norse's modules build it)
    x = (_rand(8, 2, 3, scale=0.1, shift=0.1)).double()
    rest = NorseLIFState(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))

    def traces(tau_mem_inv, tau_syn_inv, v_leak):
        p = P._replace(tau_mem_inv=tau_mem_inv, tau_syn_inv=tau_syn_inv, v_leak=v_leak, v_th=10.0)
        z, _, tr = norse_lif_multistep(x, p, rest, dt=DT, return_traces=True)
        assert z.sum() == 0
        return tr.v.sum() + 0.5 * tr.i.sum()

    args = (torch.tensor([2.0, 2.5, 3.0], dtype=torch.float64, requires_grad=True),
            torch.tensor(4.0, dtype=torch.float64, requires_grad=True),
            torch.tensor(0.1, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(traces, args)


def test_refrac_and_adex_gradients_match_autograd_of_the_step_loop():
    # the multistep's backward equals autograd through the looped step (same graph)
    x = _rand(10, 2, 3).double().requires_grad_()
    for run, step in (
        (lambda a: norse_lif_refrac_multistep(a, NorseLIFRefracParams(P, 2.0), dt=DT),
         lambda a, b: norse_lif_refrac_step(a, b, NorseLIFRefracParams(P, 2.0), DT)),
        (lambda a: norse_lif_adex_multistep(a, NorseLIFAdExParams(v_th=0.8)),
         lambda a, b: norse_lif_adex_step(a, b, NorseLIFAdExParams(v_th=0.8))),
    ):
        z, s = run(x)
        g, = torch.autograd.grad(z.sum() + s[0].sum() if not isinstance(s[0], tuple) else z.sum() + s.lif.v.sum(), x)
        zl, sl = _loop(step, x, None)
        last = sl.lif.v if isinstance(sl, NorseLIFRefracState) else sl.v
        gl, = torch.autograd.grad(zl.sum() + last.sum(), x)
        assert torch.allclose(g, gl, atol=1e-12) and g.abs().sum() > 0


def test_refractory_mask_carries_the_surrogate_gradient_of_rho():
    # norse masks with threshold(rho): its surrogate passes gradient to the counter
    rho = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    state = NorseLIFRefracState(NorseLIFState(torch.zeros(1, 1, dtype=torch.float64),
                                              torch.zeros(1, 1, dtype=torch.float64)), rho)
    z, s = norse_lif_refrac_step(torch.tensor([[4.0]], dtype=torch.float64), state,
                                 NorseLIFRefracParams(P._replace(alpha=1.0), 2.0), DT)
    g, = torch.autograd.grad(z.sum(), rho)
    # z = (1 - m) * z_lif with z_lif = 1: dz/drho = -dm/drho = -1 / (1 * 0.5 + 1)^2
    assert g.item() == pytest.approx(-1 / 1.5 ** 2, abs=1e-12)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("method,formula", [
    ("super", lambda x, a: 1 / (a * x.abs() + 1) ** 2),
    ("triangle", lambda x, a: a * torch.relu(1 - x.abs())),
    ("tanh", lambda x, a: 1 - torch.tanh(a * x) ** 2),
    ("circ", lambda x, a: 2 * a * (1 / (2 * (a * a + x * x).sqrt()) - x * x / (2 * (a * a + x * x) ** 1.5))),
    ("heavi_erfc", lambda x, a: 2 * torch.exp(-(a * x) ** 2) / math.sqrt(math.pi)),
])
def test_threshold_methods_forward_strict_and_backward(method, formula):
    x = torch.tensor([-1.5, -0.3, 0.0, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    z = F.threshold(x, method, 0.7)
    assert flat(z) == [0.0, 0.0, 0.0, 1.0, 1.0]
    g, = torch.autograd.grad(z.sum(), x)
    assert torch.allclose(g, formula(x.detach(), 0.7), atol=1e-12)


def test_heaviside_method_has_no_gradient_through_the_spike():
    x = _rand(6, 1, 2).double().requires_grad_()
    z, _, tr = norse_lif_multistep(x, P._replace(method="heaviside"), dt=DT, return_traces=True)
    assert not z.requires_grad
    g, = torch.autograd.grad(tr.v.sum(), x)  # the membrane path still carries gradient
    assert g.abs().sum() > 0


# --------------------------------------------------------------------------- errors


def test_clear_errors_at_the_boundary():
    x = torch.ones(3, 2, 4)
    with pytest.raises(ValueError, match="params.method: expected one of"):
        norse_lif_multistep(x, P._replace(method="adjoint"))
    with pytest.raises(TypeError, match="params: expected a NorseLIFParams"):
        norse_lif_multistep(x, NorseLIFAdExParams())
    with pytest.raises(ValueError, match="params.alpha: must be > 0"):
        norse_lif_multistep(x, P._replace(alpha=0.0))
    with pytest.raises(ValueError, match="params.lif.tau_mem_inv: must be >= 0"):
        norse_lif_refrac_multistep(x, NorseLIFRefracParams(P._replace(tau_mem_inv=-1.0)))
    with pytest.raises(ValueError, match="params.v_th: shape .* would enlarge"):
        norse_lif_multistep(x, P._replace(v_th=torch.ones(3, 2, 4)))
    with pytest.raises(ValueError, match="dt: must be > 0"):
        norse_lif_multistep(x, P, dt=0.0)
    for adjoint in (F.norse_lif_refrac_adjoint_multistep, F.norse_lif_adjoint_multistep):
        # the BPTT LIF and refractory LIF have kernels; their adjoints run the reference loop,
        # and the message says so (not that the model has no kernel)
        with pytest.raises(ValueError, match=r"backend: norse_lif.*_adjoint_multistep runs norse's adjoint backward, "
                                             r"an autograd function per step of its reference loop; the fused "
                                             r"'norse.lif(_refrac)?' kernels compute backpropagation .* got 'cpu'"):
            adjoint(x, NorseLIFRefracParams(P) if adjoint is F.norse_lif_refrac_adjoint_multistep else P,
                    backend="cpu")
    with pytest.raises(ValueError, match=r"backend: 'norse.lif_recurrent' has no fused kernel: each step multiplies "
                                         r"the previous step's spikes by recurrent_weights .* got 'triton'"):
        norse_lif_recurrent_multistep(x, torch.ones(3, 4), torch.ones(3, 3), P, backend="triton")
    with pytest.raises(ValueError, match=r"state.v: shape \(3,\) does not broadcast against \(2, 4\)"):
        norse_lif_multistep(x, P, NorseLIFState(torch.zeros(3), torch.zeros(2, 4)))
    with pytest.raises(TypeError, match="state: expected a NorseLIFRecurrentState"):
        norse_lif_recurrent_multistep(x, torch.ones(3, 4), torch.ones(3, 3), P, NorseLIFState(x[0], x[0]))
    with pytest.raises(ValueError, match=r"input_weights: expected shape \(hidden, 4\)"):
        norse_lif_recurrent_multistep(x, torch.ones(3, 5), torch.ones(3, 3), P)
    with pytest.raises(ValueError, match=r"recurrent_weights: expected shape \(3, 3\)"):
        norse_lif_recurrent_multistep(x, torch.ones(3, 4), torch.ones(3, 4), P)
    with pytest.raises(ValueError, match="x_seq: expected at least one time step"):
        norse_lif_multistep(torch.ones(0, 2, 4), P)


def test_docstring_examples():
    import doctest

    from spikefuse.neuron import norse as N

    for mod in (F, N):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0 and res.attempted > 0, mod.__name__


# --------------------------------------------------------------------------- norse's adjoint


def test_adjoint_gradient_by_hand_and_not_bptt():
    # one step, one neuron below threshold (v_dec = 0.25), L = v: BPTT gives dL/dx = a_m plus the
    # undetached reset's term (v_reset - v_dec) * a_m * surrogate(v_dec - v_th); the adjoint
    # starts from lambda_v = 1, lambda_i = 0: lambda_i <- 0 + dt * tau_syn_inv * (1 - 0) = a_s
    # = 0.5, and dL/dx = lambda_i = 0.5
    x = torch.tensor([[[1.0]]], dtype=torch.float64, requires_grad=True)
    _, s = F.norse_lif_adjoint_multistep(x, P, dt=DT)
    g_adj, = torch.autograd.grad(s.v.sum(), x)
    _, s = norse_lif_multistep(x, P, dt=DT)
    g_bptt, = torch.autograd.grad(s.v.sum(), x)
    assert g_adj.item() == 0.5
    assert g_bptt.item() == pytest.approx(0.25 + (-0.25 - 0.25) * 0.25 / (100 * 0.25 + 1) ** 2, abs=1e-15)


def test_adjoint_spike_jump_terms_by_hand():
    # a spike at the one step (x = 4: v_dec = 1 > 0.5, v_new = v_reset = -0.25), L = z:
    # dv_- = tau_mem_inv * ((0 - 0) + 0) = 0 (the current before the jump), so the output
    # term z * dz / dv_- = 1/0 = inf stays inf (norse zeroes only NaN); lambda_i was 0:
    # lambda_i <- 0 + a_s * (0 - 0) = 0, dL/dx = 0
    x = torch.tensor([[[4.0]]], dtype=torch.float64, requires_grad=True)
    z, s = F.norse_lif_adjoint_multistep(x, P, dt=DT)
    assert z.item() == 1.0
    g, = torch.autograd.grad(z.sum(), x)
    assert g.item() == 0.0
    # from a charged state, L = z + v after two steps: dL/dx of the first step reaches x
    # through lambda_i; compare the adjoint recursion written out (two steps, by hand)
    x = torch.tensor([[[4.0]], [[0.0]]], dtype=torch.float64, requires_grad=True)
    state = NorseLIFState(torch.full((1, 1), 0.25, dtype=torch.float64), torch.full((1, 1), 1.0, dtype=torch.float64))
    z, s, tr = F.norse_lif_adjoint_multistep(x, P, state, dt=DT, return_traces=True)
    # t0: i_jump = 5, v_dec = 0.25 + 0.25 * (-0.25 + 5) = 1.4375 > 0.5: z0 = 1, v0 = -0.25, i0 = 2.5
    #     dv_- = 2 * (-0.25 + 1) = 1.5, dv_+ = 2 * (0.25 + 1) = 2.5
    # t1: i_jump = 2.5, v_dec = -0.25 + 0.25 * (0.25 + 2.5) = 0.4375: z1 = 0, v1 = 0.4375, i1 = 1.25
    assert flat(z) == [1.0, 0.0] and flat(tr.v) == [-0.25, 0.4375]
    # backward of L = v1: t1: lambda_v = 1, lambda_i = 0 -> lambda_i = 0.5, lambda_v = 1 - 0.25 = 0.75
    #   dL/dx1 = 0.5; into t0: lambda_v = 0.75, lambda_i = 0.5
    # t0: lambda_i = 0.5 + 0.5 * (0.75 - 0.5) = 0.625; lambda_v = 0.75 * 0.75 = 0.5625, then with z0 = 1:
    #   lambda_v = 0 + (2.5 / 1.5) * 0.5625 + 0 (dz0 = 0); dL/dx0 = 0.625
    g, = torch.autograd.grad(s.v.sum(), x)
    assert flat(g) == pytest.approx([0.625, 0.5], abs=1e-12)


def test_adjoint_multistep_equals_looped_step_and_recurrent_adjoint_runs():
    x = _rand(12, 3, 4).double().requires_grad_()
    z, s = F.norse_lif_adjoint_multistep(x, P, dt=DT)
    zl, sl = _loop(lambda a, b: F.norse_lif_adjoint_step(a, b, P, DT), x, None)
    g = torch.autograd.grad(z.sum() + s.v.sum(), x)[0]
    gl = torch.autograd.grad(zl.sum() + sl.v.sum(), x)[0]
    assert torch.equal(z, zl) and torch.equal(g, gl)
    w_in = _rand(3, 4, seed=5, scale=1.0, shift=0.5).double().requires_grad_()
    w_rec = _rand(3, 3, seed=6, scale=0.5, shift=0.0).double().requires_grad_()
    za, sa = F.norse_lif_recurrent_adjoint_multistep(x, w_in, w_rec, P, dt=DT)
    zb, sb = norse_lif_recurrent_multistep(x, w_in, w_rec, P, dt=DT)
    assert torch.equal(za, zb) and torch.equal(sa.v, sb.v)  # the same forward
    ga = torch.autograd.grad(za.sum() + sa.v.sum(), (x, w_in, w_rec))
    gb = torch.autograd.grad(zb.sum() + sb.v.sum(), (x, w_in, w_rec))
    assert all(torch.isfinite(a).all() for a in ga)
    assert not torch.allclose(ga[0], gb[0])  # a different gradient, not BPTT
    with pytest.raises(ValueError, match="x_seq: expected 3 dimensions"):
        F.norse_lif_recurrent_adjoint_multistep(x[:, :, None], w_in, w_rec, P)


# --------------------------------------------------------------------------- norse's refractory adjoint
# norse's defaults: a_m = dt * tau_mem_inv = 0.1, a_s = dt * tau_syn_inv = 0.2, v_th = 1. With
# x = (5, 0, 0, 0) (the module docstring's run): v = 0.5, 0.85, 1.085 -> spike at t2 (reset
# to 0), i_prev = 0, 4, 3.2, 2.56; dv_- at t2 = 100 * ((0 - 0.85) + 3.2) = 235


def test_refractory_adjoint_by_hand():
    x = torch.tensor([5.0, 0.0, 0.0, 0.0], dtype=torch.float64).reshape(4, 1, 1).requires_grad_()
    z, s = F.norse_lif_refrac_adjoint_multistep(x, NorseLIFRefracParams())
    assert flat(z) == [0.0, 0.0, 1.0, 0.0] and flat(s.rho) == [4.0]
    # L = sum z. t3: rho_new = 4 > 0 (free = 0), z3 = 0: every lambda stays 0. t2: rho_new = 5,
    # free = 0: lambda_i = 0, lambda_v = dz / dv_- = 1/235 (the jump adds lambda_rho / dv_- = 0).
    # t1 (free = 1): lambda_i = 0.2 * (1/235), lambda_v = 0.9/235; t0: lambda_i = 0.2/235 +
    # 0.2 * (0.9/235 - 0.2/235) = 0.34/235. dL/dx_t = lambda_i after step t's update
    g, = torch.autograd.grad(z.sum(), x)
    assert flat(g) == pytest.approx([0.34 / 235, 0.2 / 235, 0.0, 0.0], rel=1e-12, abs=1e-15)
    # rho_reset = 1: the period ends at t3 (rho_prev = 1, rho_new = 0). L = sum z + v_3.
    z, s = F.norse_lif_refrac_adjoint_multistep(x, NorseLIFRefracParams(rho_reset=1.0))
    assert flat(z) == [0.0, 0.0, 1.0, 0.0] and flat(s.lif.v) == [0.0]  # t3 held at t2's reset value
    # t3: free = 1: lambda_i = 0.2 * 1 = 0.2, lambda_v = 0.9; end = 1: lambda_rho = 0.9 * dv_+,
    #     dv_+ = 100 * ((0 - 0) + 2.56) = 256 -> 230.4
    # t2: free = 0 (rho_new = 1): lambda_i = 0.2 + 0.2 * (0 - 0.2) = 0.16; z2 = 1:
    #     lambda_v = 230.4/235 + 1/235 = 231.4/235; end = 0: lambda_rho kept
    # t1: lambda_i = 0.16 + 0.2 * (231.4/235 - 0.16), lambda_v = 0.9 * 231.4/235; t0 likewise
    g, = torch.autograd.grad(z.sum() + s.lif.v.sum(), x)
    l1 = 0.16 + 0.2 * (231.4 / 235 - 0.16)
    l0 = l1 + 0.2 * (0.9 * 231.4 / 235 - l1)
    assert flat(g) == pytest.approx([l0, l1, 0.16, 0.2], rel=1e-12)


def test_refractory_adjoint_has_the_forward_of_the_refractory_lif_and_loops_its_step():
    p = NorseLIFRefracParams(P, 2.0)
    x = _rand(12, 3, 5).double().requires_grad_()
    z, s, tr = F.norse_lif_refrac_adjoint_multistep(x, p, dt=DT, return_traces=True)
    zb, sb, trb = norse_lif_refrac_multistep(x, p, dt=DT, return_traces=True)
    assert torch.equal(z, zb) and torch.equal(tr.lif.v, trb.lif.v) and torch.equal(tr.rho, trb.rho)
    assert 0 < z.sum() < z.numel()
    zl, sl = _loop(lambda a, b: F.norse_lif_refrac_adjoint_step(a, b, p, DT), x, None)
    g = torch.autograd.grad(z.sum() + s.lif.v.sum(), x)[0]
    gl = torch.autograd.grad(zl.sum() + sl.lif.v.sum(), x)[0]
    assert torch.equal(z, zl) and torch.equal(g, gl)
