"""spikefuse's norse families against norse itself (skipped when norse is not installed):
the same model, parameters and input give the same spikes bit for bit, and traces and
gradients (input, weights, learnable parameters) within 1e-5, for every threshold method.

norse 1.1.0 (the PyPI release) ignores ``alpha`` in SuperSpike's backward (fixed in norse's
source by PR #403): the comparison detects which norse is installed and passes ``alpha=1``
to spikefuse for the released behaviour (see spikefuse.functional.norse).
"""
import pytest
import torch

nt = pytest.importorskip("norse.torch", reason="norse is not installed (pip install --no-deps -r requirements-peers.txt)")
from norse.torch.functional.lif import LIFParameters  # noqa: E402
from norse.torch.functional.lif_adex import LIFAdExParameters  # noqa: E402
from norse.torch.functional.lif_refrac import LIFRefracParameters  # noqa: E402
from norse.torch.functional.superspike import super_fn  # noqa: E402

from spikefuse.functional import norse as F  # noqa: E402
from spikefuse.neuron.norse import NorseLIF, NorseLIFAdEx, NorseLIFRecurrent, NorseLIFRefrac  # noqa: E402

ATOL = 1e-5
METHODS = ["super", "triangle", "tanh", "circ", "heavi_erfc", "heaviside"]


def _norse_superspike_uses_alpha() -> bool:
    x = torch.ones(1, requires_grad=True)
    super_fn(x, torch.as_tensor(100.0)).sum().backward()
    return bool(x.grad.item() < 0.2)  # 1/(100+1)^2 with alpha, 1/(1+1)^2 = 0.25 without


def _alpha(method, alpha):
    """The alpha spikefuse needs for the installed norse's gradient."""
    return alpha if method != "super" or _norse_superspike_uses_alpha() else 1.0


def _norse_p(method, alpha=2.0, **kw):
    vals = dict(tau_syn_inv=150.0, tau_mem_inv=90.0, v_leak=0.05, v_th=0.7, v_reset=-0.1)
    vals.update(kw)
    return LIFParameters(**{k: torch.as_tensor(v) for k, v in vals.items()}, method=method,
                         alpha=torch.as_tensor(alpha)), F.NorseLIFParams(**vals, method=method,
                                                                         alpha=_alpha(method, alpha))


def _x(T=40, B=3, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, N, generator=g) * 3 + 1.5).requires_grad_()


def _w(T, B, N, seed=9):
    return torch.randn(T, B, N, generator=torch.Generator().manual_seed(seed))


def _agree(z, z_ref, traces, traces_ref, inputs, inputs_ref=None):
    """Spikes equal; traces within ATOL; the gradients of one loss w.r.t. ``inputs`` (and the
    peer's w.r.t. ``inputs_ref``, default the same tensors) within ATOL."""
    assert torch.equal(z, z_ref) and 0 < z.sum() < z.numel()
    for a, b in zip(traces, traces_ref):
        assert torch.allclose(a, b, atol=ATOL, rtol=0), (a - b).abs().max()
    wz = _w(*z.shape)

    def loss(zz, tt):
        return (zz * wz).sum() + sum((t * _w(*t.shape, seed=k)).sum() for k, t in enumerate(tt))

    mine = torch.autograd.grad(loss(z, traces), inputs, allow_unused=True)
    ref = torch.autograd.grad(loss(z_ref, traces_ref), inputs_ref or inputs, allow_unused=True)
    for a, b in zip(mine, ref):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=ATOL, rtol=ATOL), (a - b).abs().max()


@pytest.mark.parametrize("method", METHODS)
def test_feed_forward_lif_agrees(method):
    pn, ps = _norse_p(method)
    x = _x()
    z_ref, st_ref = nt.LIF(pn, record_states=True)(x)
    z, st = NorseLIF(ps, record_states=True)(x)
    _agree(z, z_ref, (st.v, st.i), (st_ref.v, st_ref.i), (x,))


@pytest.mark.parametrize("method", ["triangle", "tanh"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_feed_forward_lif_per_neuron_alpha_agrees(method, backend):
    # a per-neuron alpha (norse broadcasts it in threshold()): the fused CPU kernel reads the
    # surrogate's constants per neuron
    if backend == "cpu":
        pytest.importorskip("numba")
    alpha = torch.linspace(0.5, 3.0, 5)
    pn, ps = _norse_p(method)
    pn, ps = pn._replace(alpha=alpha), ps._replace(alpha=alpha)
    x = _x()
    z_ref, st_ref = nt.LIF(pn, record_states=True)(x)
    z, st = NorseLIF(ps, record_states=True, backend=backend)(x)
    _agree(z, z_ref, (st.v, st.i), (st_ref.v, st_ref.i), (x,))


def test_feed_forward_lif_ties_at_threshold_like_norse():
    # binary-exact steps (dt * tau_mem_inv = 0.25): x = 2 puts v exactly on v_th = 0.5
    pn, ps = _norse_p("super", tau_syn_inv=4.0, tau_mem_inv=2.0, v_leak=0.0, v_th=0.5, v_reset=-0.25)
    x = torch.tensor([2.0, 0.0, 0.0, 2.0, 2.0]).reshape(5, 1, 1)
    z_ref, st_ref = nt.LIF(pn, dt=0.125, record_states=True)(x)
    z, st = NorseLIF(ps, dt=0.125, record_states=True)(x)
    assert torch.equal(z, z_ref) and z.flatten().tolist()[0] == 0.0 and st_ref.v.flatten().tolist()[0] == 0.5
    assert torch.equal(st.v, st_ref.v) and torch.equal(st.i, st_ref.i)


def test_learnable_parameters_get_norse_gradients():
    th_n, th_s = torch.tensor(0.7, requires_grad=True), torch.tensor(0.7, requires_grad=True)
    tau_n, tau_s = torch.tensor(90.0, requires_grad=True), torch.tensor(90.0, requires_grad=True)
    pn, ps = _norse_p("super")
    x = _x().detach()
    z_ref, st_ref = nt.functional.lif.lif_feed_forward_integral(
        x, nt.functional.lif.LIFFeedForwardState(torch.full(x.shape[1:], 0.05), torch.zeros(x.shape[1:])),
        pn._replace(v_th=th_n, tau_mem_inv=tau_n))
    z, st = F.norse_lif_multistep(x, ps._replace(v_th=th_s, tau_mem_inv=tau_s))
    assert torch.equal(st.v, st_ref.v)
    g_ref = torch.autograd.grad(st_ref.v.sum() + st_ref.i.sum(), (th_n, tau_n))
    g = torch.autograd.grad(st.v.sum() + st.i.sum(), (th_s, tau_s))
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("method", ["super", "triangle", "heaviside"])
def test_recurrent_lif_agrees(method):
    pn, ps = _norse_p(method)
    torch.manual_seed(1)
    ref = nt.LIFRecurrent(5, 4, pn, record_states=True)
    torch.manual_seed(1)
    mine = NorseLIFRecurrent(5, 4, ps, record_states=True)
    assert torch.equal(mine.input_weights, ref.input_weights)
    assert torch.equal(mine.recurrent_weights, ref.recurrent_weights)
    x = _x(N=5)
    z_ref, st_ref = ref(x)
    z, st = mine(x)
    # input and weight gradients (norse zeroes the autapses' gradient too)
    _agree(z, z_ref, (st.v, st.i), (st_ref.v, st_ref.i), (x, mine.input_weights, mine.recurrent_weights),
           (x, ref.input_weights, ref.recurrent_weights))


@pytest.mark.parametrize("method", ["super", "tanh"])
def test_refractory_lif_agrees(method):
    pn, ps = _norse_p(method)
    cell = nt.LIFRefracCell(LIFRefracParameters(pn, torch.as_tensor(3.0)))
    x = _x()
    state, zs, vs, rhos = None, [], [], []
    for x_t in x:
        z_t, state = cell(x_t, state)
        zs.append(z_t)
        vs.append(state.lif.v)
        rhos.append(state.rho)
    z_ref, v_ref, rho_ref = torch.stack(zs), torch.stack(vs), torch.stack(rhos)
    # norse's cell builds its rest state in the input's dtype, as spikefuse's compute dtype here
    z, tr = NorseLIFRefrac(F.NorseLIFRefracParams(ps, 3.0), record_states=True)(x)
    _agree(z, z_ref, (tr.lif.v, tr.rho), (v_ref, rho_ref), (x,))


@pytest.mark.parametrize("method", ["super", "circ"])
def test_adex_agrees(method):
    alpha = 2.0
    pn = LIFAdExParameters(v_th=torch.as_tensor(0.8), method=method, alpha=alpha)
    ps = F.NorseLIFAdExParams(v_th=0.8, method=method, alpha=_alpha(method, alpha))
    x = _x()
    z_ref, st_ref = nt.LIFAdEx(pn, record_states=True)(x)
    z, st = NorseLIFAdEx(ps, record_states=True)(x)
    _agree(z, z_ref, (st.v, st.i, st.a), (st_ref.v, st_ref.i, st_ref.a), (x,))


def test_adjoint_gradients_agree_with_norse():
    # norse's modules cannot run method="adjoint" (1.1.0 passes it to threshold()); its
    # functional adjoint steps can, with a threshold method for the forward
    from norse.torch.functional.adjoint.lif_adjoint import lif_adjoint_step, lif_feed_forward_adjoint_step
    from norse.torch.functional.lif import LIFFeedForwardState, LIFState

    pn, ps = _norse_p("super")
    x = _x()
    _, B, N = x.shape
    torch.manual_seed(2)
    mine = NorseLIFRecurrent(N, 4, ps, record_states=True, gradient="adjoint")
    w_in, w_rec = mine.input_weights, mine.recurrent_weights
    s, zs, vs = LIFState(torch.zeros(B, 4), torch.full((B, 4), 0.05), torch.zeros(B, 4)), [], []
    for x_t in x:
        z_t, s = lif_adjoint_step(x_t, s, w_in, w_rec, pn)
        zs.append(z_t)
        vs.append(s.v)
    z, st = mine(x)
    _agree(z, torch.stack(zs), (st.v,), (torch.stack(vs),), (x, w_in, w_rec))

    s, zs, vs = LIFFeedForwardState(torch.full((B, N), 0.05), torch.zeros(B, N)), [], []
    for x_t in x:
        z_t, s = lif_feed_forward_adjoint_step(x_t, s, pn)
        zs.append(z_t)
        vs.append(s.v)
    z, st = NorseLIF(ps, record_states=True, gradient="adjoint")(x)
    _agree(z, torch.stack(zs), (st.v,), (torch.stack(vs),), (x,))


@pytest.mark.parametrize("rho_reset", [3.0, 1.0])
def test_refractory_adjoint_agrees_with_norse(rho_reset):
    # norse's functional refractory adjoint step (its modules would pass method="adjoint" to
    # threshold() in the forward); rho_reset = 1 makes every period end one step after its
    # spike, the lambda_rho <- lambda_v dv_+ branch
    from norse.torch.functional.adjoint.lif_refrac_adjoint import lif_refrac_feed_forward_adjoint_step
    from norse.torch.functional.lif import LIFFeedForwardState
    from norse.torch.functional.lif_refrac import LIFRefracFeedForwardState

    pn, ps = _norse_p("super")
    x = _x()
    _, B, N = x.shape
    s = LIFRefracFeedForwardState(LIFFeedForwardState(torch.full((B, N), 0.05), torch.zeros(B, N)),
                                  torch.zeros(B, N))
    zs, traces = [], []
    for x_t in x:
        z_t, s = lif_refrac_feed_forward_adjoint_step(x_t, s, LIFRefracParameters(pn, torch.as_tensor(rho_reset)))
        zs.append(z_t)
        traces.append((s.lif.v, s.lif.i, s.rho))
    ref = [torch.stack(t) for t in zip(*traces)]
    z, tr = NorseLIFRefrac(F.NorseLIFRefracParams(ps, rho_reset), record_states=True, gradient="adjoint")(x)
    assert ((tr.rho[:-1] == 1) & (tr.lif.v[1:] != 0)).any()  # periods end with a charged membrane
    _agree(z, torch.stack(zs), (tr.lif.v, tr.lif.i, tr.rho), ref, (x,))
    # not backpropagation through the same steps
    za, tra = NorseLIFRefrac(F.NorseLIFRefracParams(ps, rho_reset), record_states=True, gradient="adjoint")(x)
    zb, trb = NorseLIFRefrac(F.NorseLIFRefracParams(ps, rho_reset), record_states=True)(x)
    assert torch.equal(zb, za)
    ga = torch.autograd.grad(za.sum() + tra.lif.v.sum(), x)[0]
    gb = torch.autograd.grad(zb.sum() + trb.lif.v.sum(), x)[0]
    assert not torch.allclose(ga, gb, atol=1e-3)


def _as_norse(p):
    """spikefuse's NorseLIFParams (numbers) as norse's LIFParameters (0-d tensors, as its modules hold)."""
    return LIFParameters(**{k: torch.as_tensor(v) for k, v in p._asdict().items() if k not in ("method", "alpha")},
                         method=p.method, alpha=torch.as_tensor(p.alpha))


def test_training_with_the_adjoint_gives_norse_s_weight_gradients():
    # `spikefuse train --neuron norse.lif --gradient adjoint`: the network's hidden layer, run
    # through norse's own adjoint step with the same weights, gives the same spikes and the same
    # synapse gradients
    from norse.torch.functional.adjoint.lif_adjoint import lif_adjoint_step, lif_feed_forward_adjoint_step
    from norse.torch.functional.lif import LIFFeedForwardState, LIFState

    from spikefuse import train as tr
    from spikefuse.train import TrainConfig

    torch.manual_seed(0)
    cfg = TrainConfig(neuron="norse.lif", gradient="adjoint", hidden=12, T=8, tau=10.0).resolve()
    block = tr.build_model(cfg, 4, 3).hidden[0]
    h_in = torch.rand(8, 16, 4) * 3
    assert block.neuron.gradient == "adjoint" and block.neuron.check_finite
    z = block.neuron(block.synapse(h_in))
    h = block.synapse(h_in)
    s, zs = LIFFeedForwardState(torch.zeros(16, 12), torch.zeros(16, 12)), []
    for h_t in h:
        z_t, s = lif_feed_forward_adjoint_step(h_t, s, _as_norse(block.neuron.params()))
        zs.append(z_t)
    _agree(z, torch.stack(zs), (), (), tuple(block.synapse.parameters()))

    cfg = TrainConfig(neuron="norse.lif_recurrent", gradient="adjoint", hidden=6, T=8, tau=10.0).resolve()
    layer = tr.build_model(cfg, 4, 3).hidden[0]
    z = layer(h_in)
    s, zs = LIFState(torch.zeros(16, 6), torch.zeros(16, 6), torch.zeros(16, 6)), []
    w_in, w_rec = (w.detach().clone().requires_grad_() for w in (layer.input_weights, layer.recurrent_weights))
    for h_t in h_in:
        z_t, s = lif_adjoint_step(h_t, s, w_in, w_rec, _as_norse(layer.params()))
        zs.append(z_t)
    # norse's recurrent gradient with autapses: spikefuse's hook zeroes the diagonal afterwards
    _agree(z, torch.stack(zs), (), (), (layer.input_weights,), (w_in,))


def test_adjoint_from_rest_gives_norse_s_inf_where_norse_divides_by_zero():
    # a spike at step 1 from rest: norse's output term z dz / dv_- with dv_- = 0 is inf; spikefuse
    # gives the same numbers, inf included (check_finite=True raises instead: tests/neuron)
    from norse.torch.functional.adjoint.lif_adjoint import lif_feed_forward_adjoint_step
    from norse.torch.functional.lif import LIFFeedForwardState

    pn, ps = _norse_p("super", v_leak=0.0, v_reset=0.0)
    x = torch.zeros(5, 2, 3)
    x[1, 0] = 40.0
    x[:, 1] = 12.0  # from rest at step 0 too (the inf lands on the initial state), then charged
    x.requires_grad_()
    s, zs = LIFFeedForwardState(torch.zeros(2, 3), torch.zeros(2, 3)), []
    for x_t in x:
        z_t, s = lif_feed_forward_adjoint_step(x_t, s, pn)
        zs.append(z_t)
    z_ref = torch.stack(zs)
    z, _ = NorseLIF(ps, gradient="adjoint")(x)
    wz = _w(*z.shape)
    g, = torch.autograd.grad((z * wz).sum(), x)
    g_ref, = torch.autograd.grad((z_ref * wz).sum(), x)
    assert torch.equal(z, z_ref) and z[1, 0].all() and z[0, 1].all()
    assert torch.isinf(g_ref[0, 0]).all() and torch.isfinite(g_ref[1:]).all() and torch.isfinite(g_ref[:, 1]).all()
    assert torch.equal(torch.isfinite(g), torch.isfinite(g_ref)) and torch.equal(g[~torch.isfinite(g)], g_ref[~torch.isfinite(g_ref)])
    fin = torch.isfinite(g)
    assert torch.allclose(g[fin], g_ref[fin], atol=ATOL, rtol=ATOL)
