"""norse's neuron modules (spikefuse.neuron.norse): equal to the functional multisteps, norse's
call convention (forward(x, state) -> (spikes, state), record_states), norse's parameter
objects accepted as they are, recurrent weight init and autapses, reset_states."""
import os
from collections import namedtuple

import pytest
import torch

from spikefuse.functional.norse import (
    NorseLIFAdExParams,
    NorseLIFParams,
    NorseLIFRefracParams,
    norse_lif_adex_multistep,
    norse_lif_multistep,
    norse_lif_recurrent_multistep,
    norse_lif_refrac_multistep,
)
from spikefuse.neuron import reset_states
from spikefuse.neuron.norse import NorseLIF, NorseLIFAdEx, NorseLIFRecurrent, NorseLIFRefrac

P = NorseLIFParams(tau_syn_inv=150.0, tau_mem_inv=90.0, v_th=0.7, v_reset=-0.1)


def _x(T=9, B=2, N=4, seed=0):
    return torch.randn(T, B, N, generator=torch.Generator().manual_seed(seed)) * 3 + 2


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


@pytest.mark.parametrize("make,run", [
    (lambda: NorseLIF(P), lambda x: norse_lif_multistep(x, P)),
    (lambda: NorseLIFRefrac(NorseLIFRefracParams(P, 2.0)),
     lambda x: norse_lif_refrac_multistep(x, NorseLIFRefracParams(P, 2.0))),
    (lambda: NorseLIFAdEx(NorseLIFAdExParams(v_th=0.8)),
     lambda x: norse_lif_adex_multistep(x, NorseLIFAdExParams(v_th=0.8))),
], ids=["lif", "refrac", "adex"])
def test_module_equals_functional_and_reset_states_clears_it(make, run):
    m, x = make(), _x()
    z, s = m(x)
    zf, sf = run(x)
    assert torch.equal(z, zf) and _same(s, sf) and z.sum() > 0
    assert m.last_state is not None and _same(m.last_state, sf)
    z2, _ = m(x)  # state=None: every call starts from rest, as in norse
    assert torch.equal(z2, z)
    reset_states(m)
    assert m.last_state is None and m.last_traces is None


def test_recurrent_module_equals_functional_and_reset():
    torch.manual_seed(0)
    m = NorseLIFRecurrent(4, 3, P)
    x = _x()
    z, s = m(x)
    zf, sf = norse_lif_recurrent_multistep(x, m.input_weights, m.recurrent_weights, P)
    assert torch.equal(z, zf) and _same(s, sf) and z.shape == (9, 2, 3)
    reset_states(m)
    assert m.last_state is None


def test_recurrent_weights_init_and_autapses_as_norse():
    torch.manual_seed(3)
    m = NorseLIFRecurrent(5, 4)
    torch.manual_seed(3)  # norse draws randn(H, I) then randn(H, H), scaled by sqrt(2 / H)
    w_in = torch.randn(4, 5) * torch.sqrt(2.0 / torch.as_tensor(4))
    w_rec = torch.randn(4, 4) * torch.sqrt(2.0 / torch.as_tensor(4))
    assert torch.equal(m.input_weights.detach(), w_in)
    assert torch.equal(m.recurrent_weights.detach(), w_rec.fill_diagonal_(0.0))
    z, s = m(_x(N=5))
    (z.sum() + s.v.sum()).backward()
    assert torch.equal(torch.diagonal(m.recurrent_weights.grad), torch.zeros(4))
    with_autapses = NorseLIFRecurrent(5, 4, autapses=True)
    assert torch.diagonal(with_autapses.recurrent_weights.detach()).abs().sum() > 0


def test_record_states_and_return_state():
    x = _x()
    z, traces = NorseLIF(P, record_states=True)(x)
    zf, sf, tf = norse_lif_multistep(x, P, return_traces=True)
    assert torch.equal(z, zf) and torch.equal(traces.v, tf.v) and traces.v.shape == x.shape
    m = NorseLIF(P, return_state=False)
    assert torch.equal(torch.nn.Sequential(m)(x), zf)
    assert torch.equal(m.last_state.v, sf.v)


def test_norse_parameter_objects_are_accepted_as_they_are():
    # norse's LIFParameters has the same fields in the same order
    LIFParameters = namedtuple("LIFParameters", NorseLIFParams._fields)
    LIFRefracParameters = namedtuple("LIFRefracParameters", ("lif", "rho_reset"))
    p = LIFParameters(*(torch.as_tensor(v) if not isinstance(v, str) else v for v in P))
    m = NorseLIF(p)
    assert isinstance(m.params(), NorseLIFParams)
    x = _x()
    assert torch.equal(m(x)[0], norse_lif_multistep(x, P)[0])
    r = NorseLIFRefrac(LIFRefracParameters(p, torch.as_tensor(3.0)))
    assert isinstance(r.params().lif, NorseLIFParams) and float(r.params().rho_reset) == 3.0
    with pytest.raises(TypeError, match="p: expected a NorseLIFParams"):
        NorseLIF(NorseLIFAdExParams())


def test_tensor_parameters_are_registered_and_learnable():
    th = torch.nn.Parameter(torch.tensor(0.7))
    m = NorseLIF(P._replace(v_th=th, tau_mem_inv=torch.tensor([90.0, 80.0, 70.0, 60.0])))
    assert dict(m.named_parameters())["v_th"] is th and "tau_mem_inv" in dict(m.named_buffers())
    z, s = m(_x())
    (z.sum() + s.v.sum()).backward()
    assert th.grad is not None and th.grad.abs() > 0
    assert m.double().tau_mem_inv.dtype == torch.float64  # buffers follow the module


def test_module_errors():
    with pytest.raises(ValueError, match="backend: NorseLIFRecurrent has no fused kernel"):
        NorseLIFRecurrent(3, 2, backend="triton")  # NorseLIF, NorseLIFRefrac and NorseLIFAdEx have fused kernels
    with pytest.raises(ValueError, match="params.alpha: must be > 0"):
        NorseLIF(P._replace(alpha=-1.0))
    with pytest.raises(ValueError, match="dt: must be > 0"):
        NorseLIFAdEx(dt=0.0)
    with pytest.raises(ValueError, match="hidden_size: expected a positive int"):
        NorseLIFRecurrent(3, 0)
    with pytest.raises(ValueError, match=r"recurrent_weights: expected a tensor of shape \(2, 2\)"):
        NorseLIFRecurrent(3, 2, recurrent_weights=torch.ones(3, 3))
    with pytest.raises(TypeError, match="record_states: expected bool"):
        NorseLIF(record_states=1)


def test_adjoint_gradient_option():
    from spikefuse.functional.norse import (norse_lif_adjoint_multistep, norse_lif_recurrent_adjoint_multistep,
                                            norse_lif_refrac_adjoint_multistep)

    x = _x().requires_grad_()
    z, s = NorseLIF(P, gradient="adjoint")(x)
    zf, sf = norse_lif_adjoint_multistep(x, P)
    g = torch.autograd.grad(z.sum() + s.v.sum(), x)[0]
    assert torch.equal(z, zf) and torch.equal(g, torch.autograd.grad(zf.sum() + sf.v.sum(), x)[0])
    torch.manual_seed(0)
    m = NorseLIFRecurrent(4, 3, P, gradient="adjoint")
    z, s = m(x)
    zf, _ = norse_lif_recurrent_adjoint_multistep(x, m.input_weights, m.recurrent_weights, P)
    assert torch.equal(z, zf)
    rp = NorseLIFRefracParams(P, 2.0)
    z, s = NorseLIFRefrac(rp, gradient="adjoint")(x)
    zf, sf = norse_lif_refrac_adjoint_multistep(x, rp)
    g = torch.autograd.grad(z.sum() + s.lif.v.sum(), x)[0]
    assert torch.equal(z, zf) and torch.equal(g, torch.autograd.grad(zf.sum() + sf.lif.v.sum(), x)[0])
    with pytest.raises(ValueError, match="gradient: expected one of \\['bptt'\\]"):
        NorseLIFAdEx(gradient="adjoint")  # norse has no LIFAdEx adjoint
    with pytest.raises(ValueError, match="p.method: 'adjoint' is how norse's modules ask"):
        NorseLIF(P._replace(method="adjoint"))
    for make in (NorseLIF, NorseLIFRefrac):  # the kernels are BPTT; the adjoint runs its loop and says so
        with pytest.raises(ValueError, match="backend: gradient='adjoint' runs norse's adjoint backward in the "
                                             "reference loop .* got 'cpu'"):
            make(gradient="adjoint", backend="cpu")
    with pytest.raises(TypeError, match="check_finite: expected bool"):
        NorseLIF(gradient="adjoint", check_finite=1)


def test_check_finite_names_the_division_by_zero_of_norse_adjoint():
    # a spike at step 1 from rest (x[0] = 0): norse's dz / dv_- has dv_- = 0; without the check
    # the module gives norse's inf (tests/peers compares it with norse), with it the backward
    # stops with the cause; a spike from rest at step 0 only puts the inf on the initial state
    x = torch.zeros(4, 1, 3)
    x[1] = 15.0
    x.requires_grad_()
    for make in (lambda **kw: NorseLIF(**kw), lambda **kw: NorseLIFRefrac(**kw)):
        z, _ = make(gradient="adjoint")(x)
        g, = torch.autograd.grad(z.sum(), x)
        assert torch.isinf(g[0]).all() and torch.isfinite(g[1:]).all()
        z, _ = make(gradient="adjoint", check_finite=True)(x)
        with pytest.raises(FloatingPointError, match=r"x: norse's adjoint gave a non-finite gradient \(3 of 12 "
                                                     r"values\): a neuron spiked at a step it started from rest"):
            z.sum().backward()
    x0 = torch.full((4, 1, 3), 15.0, requires_grad=True)  # spikes from rest at step 0 (and later, i != 0)
    z, _ = NorseLIF(gradient="adjoint", check_finite=True)(x0)
    g, = torch.autograd.grad(z.sum(), x0)
    assert z[0].all() and torch.isfinite(g).all() and g.abs().sum() > 0
    torch.manual_seed(0)
    m = NorseLIFRecurrent(3, 2, P, gradient="adjoint", check_finite=True)
    z, s = m(_x(N=3))
    (z.sum() + s.v.sum()).backward()  # the weights' gradients are checked too (here finite)
    assert torch.isfinite(m.input_weights.grad).all() and m.input_weights.grad.abs().sum() > 0


@pytest.mark.skipif(os.environ.get("SPIKEFUSE_COMPILE", "") in ("", "0"),
                    reason="dynamo traces take seconds each: SPIKEFUSE_COMPILE=1 runs them (README)")
@pytest.mark.parametrize("make", [
    lambda: NorseLIF(return_state=False), lambda: NorseLIFRefrac(return_state=False),
    lambda: NorseLIFAdEx(return_state=False), lambda: NorseLIFRecurrent(3, 3, return_state=False),
], ids=["lif", "refrac", "adex", "recurrent"])
def test_torch_compile_traces_without_graph_breaks(make):
    import torch._dynamo

    torch._dynamo.reset()
    explained = torch._dynamo.explain(make())(torch.rand(4, 2, 3) * 3)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
