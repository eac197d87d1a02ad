"""Layers over time vs per-step loops; readouts vs hand-derived values; validation errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikefuse import layers
from spikefuse.fixed_point import quantize_8bit
from spikefuse.surrogate import ATan


def _loop(fn, x):
    return torch.stack([fn(x[t]) for t in range(x.shape[0])])


def _grads(module, x, out):
    g = torch.randn_like(out)
    params = [p for p in module.parameters()]
    return torch.autograd.grad((out * g).sum(), [x] + params), g


# ------------------------------------------------------------------ synapses vs per-step loops
def test_dense_matches_per_step_loop_and_grads():
    m = layers.Dense(5, 3)
    x = torch.randn(7, 4, 5, requires_grad=True)
    y = m(x)
    ref = _loop(lambda xt: xt @ m.weight.T + m.bias, x)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    ga = torch.autograd.grad((y * g).sum(), [x, m.weight, m.bias])
    gb = torch.autograd.grad((ref * g).sum(), [x, m.weight, m.bias])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_dense_8bit_hook_quantises_weight_straight_through():
    m = layers.Dense(4, 3, bias=False, weight_hook="8bit")
    x = torch.randn(2, 3, 4)
    wq = quantize_8bit(m.weight.detach())
    # every quantised weight is a multiple of 2/64
    assert torch.allclose(torch.round(wq * 32), wq * 32)
    torch.testing.assert_close(m(x), x @ wq.T)
    m(x).sum().backward()
    # straight-through: gradient equals that of an unquantised layer (weights are far from the clamp)
    torch.testing.assert_close(m.weight.grad, x.sum((0, 1)).expand(3, 4))


def test_custom_weight_hook_is_applied():
    m = layers.Dense(2, 2, bias=False, weight_hook=lambda w: torch.zeros_like(w))
    assert m(torch.ones(1, 1, 2)).abs().sum() == 0


def test_conv1d_conv2d_match_per_step_loop():
    c1 = layers.Conv1d(2, 3, 3, padding=1, stride=2)
    x1 = torch.randn(5, 2, 2, 9, requires_grad=True)
    y1 = c1(x1)
    ref1 = _loop(lambda xt: F.conv1d(xt, c1.weight, c1.bias, stride=2, padding=1), x1)
    torch.testing.assert_close(y1, ref1)

    c2 = layers.Conv2d(2, 4, 3, padding=1, weight_hook="8bit")
    x2 = torch.randn(4, 3, 2, 6, 6, requires_grad=True)
    y2 = c2(x2)
    ref2 = _loop(lambda xt: F.conv2d(xt, quantize_8bit(c2.weight), c2.bias, padding=1), x2)
    torch.testing.assert_close(y2, ref2)
    g = torch.randn_like(y2)
    ga = torch.autograd.grad((y2 * g).sum(), [x2, c2.weight])
    gb = torch.autograd.grad((ref2 * g).sum(), [x2, c2.weight])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls,fn", [
    (layers.AvgPool2d, lambda xt: F.avg_pool2d(xt, 2)),
    (layers.MaxPool2d, lambda xt: F.max_pool2d(xt, 2)),
    (layers.SumPool2d, lambda xt: 4 * F.avg_pool2d(xt, 2)),
])
def test_pools_match_per_step_loop(cls, fn):
    x = torch.randn(3, 2, 3, 6, 6)
    torch.testing.assert_close(cls(2)(x), _loop(fn, x))


def test_sumpool_hand_values():
    x = torch.arange(16.0).reshape(1, 1, 1, 4, 4)
    out = layers.SumPool2d(2)(x)[0, 0, 0]
    assert out.tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]


def test_flatten_and_time_distributed():
    x = torch.randn(3, 2, 4, 5)
    torch.testing.assert_close(layers.Flatten()(x), _loop(lambda xt: xt.flatten(1), x))
    lin = nn.Linear(5, 2)
    torch.testing.assert_close(layers.TimeDistributed(lin)(x), _loop(lin, x))


# ------------------------------------------------------------------ blocks with any neuron
class _ToyNeuron(nn.Module):
    """A (T, B, ...) neuron with state across time: integrate-and-fire with a hard reset."""

    def forward(self, x):
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            v = v + x[t]
            s = ATan()(v - 1.0)
            v = v * (1 - s)
            out.append(s)
        return torch.stack(out)


def test_blocks_compose_synapse_and_any_neuron():
    blk = layers.DenseBlock(3, 4, _ToyNeuron)            # factory form
    x = torch.rand(6, 2, 3) * 2
    torch.testing.assert_close(blk(x), _ToyNeuron()(blk.synapse(x)))
    cblk = layers.Conv2dBlock(1, 2, 3, layers.LeakyIntegrator(tau=3.0), padding=1)
    xi = torch.rand(4, 2, 1, 5, 5)
    torch.testing.assert_close(cblk(xi), layers.LeakyIntegrator(3.0)(cblk.synapse(xi)))


def _families():
    from spikefuse.neuron import IF, LIF, CubaLIF, ParametricLIF
    from spikefuse.neuron.loihi import alif, cuba

    return {
        "lif": lambda: LIF(tau=2.0),
        "if": lambda: IF(),
        "plif": lambda: ParametricLIF(init_tau=2.0),
        "cuba": lambda: CubaLIF(threshold=0.5, tau_syn=2e-6, tau_mem=2e-6),
        "loihi_cuba": lambda: cuba.Neuron(threshold=0.5, current_decay=0.5, voltage_decay=0.25),
        "loihi_alif": lambda: alif.Neuron(threshold=0.5, threshold_step=0.25, current_decay=0.5,
                                          voltage_decay=0.25, threshold_decay=0.25,
                                          refractory_decay=0.25),
    }


@pytest.mark.parametrize("family", ["lif", "if", "plif", "cuba", "loihi_cuba", "loihi_alif"])
def test_blocks_work_with_every_neuron_family(family):
    make = _families()[family]
    torch.manual_seed(0)
    blk = layers.DenseBlock(3, 6, make)
    x = torch.rand(8, 2, 3) * 3
    out = blk(x)
    ref = make()(blk.synapse(x))           # a fresh neuron on the same synaptic current
    assert out.shape == (8, 2, 6)
    torch.testing.assert_close(out, ref)
    assert out.sum() > 0
    layers.reset_states(blk)
    out.sum().backward()
    assert blk.synapse.weight.grad is not None
    # convolutional block: the neuron sees (T, B, C, H, W)
    cblk = layers.Conv2dBlock(1, 2, 3, make(), padding=1)
    assert cblk(torch.rand(4, 2, 1, 5, 5) * 3).shape == (4, 2, 2, 5, 5)


# ------------------------------------------------------------------ recurrent LIF
def _rlif_reference(x, W, b, V, tau, vth, v_reset, decay_input, detach_reset):
    """Hand-written per-step loop of h = W x + b + V s_prev and the SpikingJelly LIF charge."""
    B, N = x.shape[1], W.shape[0]
    v = torch.full((B, N), 0.0 if v_reset is None else v_reset, dtype=x.dtype)
    s = torch.zeros(B, N, dtype=x.dtype)
    rest = 0.0 if v_reset is None else v_reset
    out = []
    for t in range(x.shape[0]):
        h = x[t] @ W.T + b + s @ V.T
        H = v + (h - (v - rest)) / tau if decay_input else v - (v - rest) / tau + h
        s = ATan(2.0)(H - vth)
        sr = s.detach() if detach_reset else s
        v = H - sr * vth if v_reset is None else sr * v_reset + (1 - sr) * H
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("v_reset,decay_input,detach_reset", [
    (0.0, True, False), (0.0, False, True), (None, True, False), (-0.2, True, True),
])
def test_recurrent_lif_matches_loop_and_float64_grads(v_reset, decay_input, detach_reset):
    m = layers.RecurrentLIF(3, 4, tau=2.0, v_reset=v_reset, decay_input=decay_input,
                            detach_reset=detach_reset).double()
    with torch.no_grad():
        m.recurrent.weight.mul_(4.0)  # make the feedback matter
        m.input.weight.mul_(3.0)
    x = (torch.rand(12, 2, 3, dtype=torch.float64) * 3).requires_grad_()
    y = m(x)
    W, b, V = m.input.weight, m.input.bias, m.recurrent.weight
    ref = _rlif_reference(x, W, b, V, 2.0, 1.0, v_reset, decay_input, detach_reset)
    assert y.sum() > 0
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    ga = torch.autograd.grad((y * g).sum(), [x, W, V])
    gb = torch.autograd.grad((ref * g).sum(), [x, W, V])
    for a, bb in zip(ga, gb):
        torch.testing.assert_close(a, bb)


def test_recurrent_lif_state_continues():
    m = layers.RecurrentLIF(3, 4)
    x = torch.rand(10, 2, 3) * 3
    full = m(x)
    a, st = m(x[:4], return_state=True)
    b = m(x[4:], state=st)
    torch.testing.assert_close(torch.cat([a, b]), full)


def test_recurrent_lif_hand_vector_no_feedback():
    # V = 0, W = 1, b = 0 -> plain SpikingJelly LIF; SPEC 17 S1 hard reset row
    m = layers.RecurrentLIF(1, 1, tau=2.0)
    with torch.no_grad():
        m.input.weight.fill_(1.0)
        m.input.bias.zero_()
        m.recurrent.weight.zero_()
    x = torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1, 1)
    s, st = m(x, return_state=True)
    assert s.flatten().tolist() == [0, 1, 0, 1, 0]
    assert st.v.item() == 0.0


# ------------------------------------------------------------------ readouts
def test_leaky_integrator_hand_values_and_loop():
    li = layers.LeakyIntegrator(tau=2.0)
    x = torch.tensor([1.0, 1.0, 0.0, 2.0]).reshape(4, 1, 1)
    # v = v + (x - v)/2: 0.5, 0.75, 0.375, 1.1875
    assert li(x).flatten().tolist() == [0.5, 0.75, 0.375, 1.1875]
    li2 = layers.LeakyIntegrator(tau=4.0, decay_input=False)
    # v = 0.75 v + x: 1, 1.75, 1.3125, 2.984375
    assert li2(x).flatten().tolist() == [1.0, 1.75, 1.3125, 2.984375]
    xr = torch.randn(6, 3, 2)
    v = torch.zeros(3, 2)
    ref = []
    for t in range(6):
        v = v * (1 - 1 / 4.0) + xr[t]
        ref.append(v)
    torch.testing.assert_close(li2(xr), torch.stack(ref))


def test_count_max_mean_readouts():
    x = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]], [[0.0, 0.0]]])
    assert layers.SpikeCount()(x).tolist() == [[1.0, 2.0]]
    assert layers.MaxOverTime()(x).tolist() == [[1.0, 1.0]]
    torch.testing.assert_close(layers.MeanOverTime()(x), torch.tensor([[1 / 3, 2 / 3]]))
    mm = layers.MaxMembrane(tau=2.0)(torch.tensor([2.0, 0.0, 0.0]).reshape(3, 1, 1))
    assert mm.item() == 1.0


def test_max_membrane_gradient_goes_to_argmax_step():
    x = torch.tensor([2.0, 0.0, 0.0]).reshape(3, 1, 1).requires_grad_()
    layers.MaxMembrane(tau=2.0)(x).sum().backward()
    assert x.grad.flatten().tolist() == [0.5, 0.0, 0.0]


def test_reset_states_calls_reset():
    class S(nn.Module):
        calls = 0

        def reset(self):
            S.calls += 1

    layers.reset_states(nn.Sequential(S(), nn.Sequential(S())))
    assert S.calls == 2


# ------------------------------------------------------------------ validation errors
def test_validation_errors():
    with pytest.raises(ValueError, match="x: expected a time-first sequence"):
        layers.Dense(3, 2)(torch.rand(4, 3))
    with pytest.raises(ValueError, match="expected 3 input features"):
        layers.Dense(3, 2)(torch.rand(4, 1, 5))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        layers.Dense(3, 2)([1, 2, 3])
    with pytest.raises(ValueError, match="NaN or inf"):
        layers.Dense(3, 2)(torch.full((2, 1, 3), math.nan))
    with pytest.raises(ValueError, match="in_features: must be > 0"):
        layers.Dense(0, 2)
    with pytest.raises(ValueError, match="weight_hook"):
        layers.Dense(2, 2, weight_hook="4bit")
    with pytest.raises(TypeError, match="weight_hook"):
        layers.Dense(2, 2, weight_hook=3)
    with pytest.raises(ValueError, match="expected 2 channels"):
        layers.Conv2d(2, 3, 3)(torch.rand(2, 1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"\(T, B, C, L\)"):
        layers.Conv1d(2, 3, 3)(torch.rand(2, 2, 5))
    with pytest.raises(ValueError, match=r"\(T, B, C, H, W\)"):
        layers.MaxPool2d(2)(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="tau: must be >= 1"):
        layers.LeakyIntegrator(tau=0.5)
    with pytest.raises(TypeError, match="decay_input"):
        layers.LeakyIntegrator(decay_input=1)
    with pytest.raises(ValueError, match="tau: must be >= 1"):
        layers.RecurrentLIF(2, 2, tau=0.9)
    with pytest.raises(ValueError, match="surrogate"):
        layers.RecurrentLIF(2, 2, surrogate="nope")
    with pytest.raises(ValueError, match=r"state.v: expected shape"):
        layers.RecurrentLIF(2, 3)(torch.rand(2, 1, 2), state=(torch.zeros(1, 2), torch.zeros(1, 2)))
    with pytest.raises(TypeError, match="state"):
        layers.RecurrentLIF(2, 3)(torch.rand(2, 1, 2), state=torch.zeros(1, 3))
    with pytest.raises(TypeError, match="neuron"):
        layers.Block(layers.Dense(2, 2), 5)
    with pytest.raises(TypeError, match="neuron: the factory returned"):
        layers.Block(layers.Dense(2, 2), lambda: 5)
    with pytest.raises(TypeError, match="synapse"):
        layers.Block("dense", layers.LeakyIntegrator())
    with pytest.raises(TypeError, match="module"):
        layers.TimeDistributed(3)
    with pytest.raises(ValueError, match="at least one time step"):
        layers.SpikeCount()(torch.zeros(0, 2, 2))
    with pytest.raises(TypeError, match="model"):
        layers.reset_states(3)


def test_trusted_inputs_skips_checks_and_restores():
    m = layers.Dense(3, 2)
    bad = torch.full((2, 1, 3), math.nan)
    with layers.trusted_inputs():
        assert torch.isnan(m(bad)).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        m(bad)


def test_more_validation_errors():
    with pytest.raises(TypeError, match="detach_reset"):
        layers.RecurrentLIF(2, 2, detach_reset=1)
    with pytest.raises(TypeError, match="v_reset"):
        layers.RecurrentLIF(2, 2, v_reset="zero")
    with pytest.raises(ValueError, match="v_threshold"):
        layers.RecurrentLIF(2, 2, v_threshold=math.inf)
    with pytest.raises(ValueError, match="expected 2 channels"):
        layers.Conv1d(2, 3, 3)(torch.rand(2, 1, 4, 5))
    with pytest.raises(ValueError, match="out_features: must be > 0"):
        layers.Dense(2, 0)
    with pytest.raises(TypeError, match="floating"):
        layers.Flatten()(torch.zeros(2, 2, 2, dtype=torch.int64))


# ------------------------------------------------------------------ dtypes (README: fp16/bf16/fp64 accepted)
def _synapse_cases():
    return [
        (lambda: layers.Dense(3, 4), (5, 2, 3), lambda m, x: F.linear(x, m.weight.to(x.dtype), m.bias.to(x.dtype))),
        (lambda: layers.Conv1d(2, 3, 3, padding=1), (4, 2, 2, 7),
         lambda m, x: _loop(lambda xt: F.conv1d(xt, m.weight.to(x.dtype), m.bias.to(x.dtype), padding=1), x)),
        (lambda: layers.Conv2d(2, 3, 3, padding=1), (3, 2, 2, 5, 5),
         lambda m, x: _loop(lambda xt: F.conv2d(xt, m.weight.to(x.dtype), m.bias.to(x.dtype), padding=1), x)),
    ]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("case", range(3))
def test_synapses_compute_in_the_input_dtype(dtype, case):
    """fp32 weights (the default) and a fp16/bf16/fp64 input: the output has the input's dtype
    and equals the torch op on the weight cast to that dtype; the gradient reaches the fp32
    weight; the result is close to the fp32 computation."""
    make, shape, ref_fn = _synapse_cases()[case]
    m = make()
    x32 = torch.rand(*shape)
    x = x32.to(dtype).requires_grad_()
    y = m(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, ref_fn(m, x.detach()), rtol=0, atol=0)
    tol = dict(rtol=1e-2, atol=2e-2) if dtype != torch.float64 else dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y.double(), m(x32).double(), **tol)
    y.float().sum().backward()
    assert m.weight.grad is not None and m.weight.grad.dtype == torch.float32
    assert x.grad.dtype == dtype


def test_synapse_dtype_argument_sets_the_parameters():
    """``dtype=`` stores the parameters in that dtype; the input's dtype still decides the output."""
    m = layers.Dense(3, 2, dtype=torch.float64)
    assert m.weight.dtype == torch.float64
    x = torch.rand(4, 1, 3)
    y = m(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, F.linear(x, m.weight.float(), m.bias.float()), rtol=0, atol=0)
    y64 = m(x.double())
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64, F.linear(x.double(), m.weight, m.bias), rtol=0, atol=0)
    with pytest.raises(TypeError, match="dtype"):
        layers.Dense(3, 2, dtype=torch.int64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_recurrent_lif_and_readouts_accept_dtypes(dtype):
    """RecurrentLIF keeps its state in fp32 (fp64 for fp64) and returns the input's dtype; the
    spikes equal a fp32 run on the same (rounded) input."""
    m = layers.RecurrentLIF(3, 4)
    x = (torch.rand(6, 2, 3) * 3).to(dtype)
    s = m(x)
    assert s.dtype == dtype
    ref = m(x.to(torch.float64 if dtype == torch.float64 else torch.float32))
    torch.testing.assert_close(s.double(), ref.double(), rtol=0, atol=0)
    li = layers.LeakyIntegrator(2.0)(x)
    assert li.dtype == dtype


def test_sizes_are_ints_named_in_errors():
    """A fractional size is refused, not truncated (Dense(5, 2.5) used to build 2 outputs)."""
    cases = [
        (lambda: layers.Dense(5, 2.5), TypeError, "out_features"),
        (lambda: layers.Dense("5", 2), TypeError, "in_features"),
        (lambda: layers.Dense(5, 2, bias="no"), TypeError, "bias"),
        (lambda: layers.Conv2d(2, 3.5, 3), TypeError, "out_channels"),
        (lambda: layers.Conv2d(2, 3, 2.5), TypeError, "kernel_size"),
        (lambda: layers.Conv1d(2, 3, 3, stride=0), ValueError, "stride"),
        (lambda: layers.Conv2d(2, 3, (3, 3, 3)), ValueError, "kernel_size"),
        (lambda: layers.Conv2d(2, 3, 3, bias=1), TypeError, "bias"),
        (lambda: layers.AvgPool2d(2.5), TypeError, "kernel_size"),
        (lambda: layers.MaxPool2d(2, padding=-1), ValueError, "padding"),
        (lambda: layers.SumPool2d(2, stride="2"), TypeError, "stride"),
        (lambda: layers.RecurrentLIF(3, 2.5), TypeError, "out_features"),
        (lambda: layers.RecurrentLIF(3, 2, bias="yes"), TypeError, "bias"),
        (lambda: layers.RecurrentLIF(3, 2, tau=torch.tensor([2.0, 3.0])), ValueError, "tau"),
        (lambda: layers.LeakyIntegrator(tau=torch.ones(3) * 2), ValueError, "tau"),
    ]
    for make, exc, name in cases:
        with pytest.raises(exc, match=name):
            make()
    # valid spellings still build what torch builds
    assert layers.Conv2d(2, 3, (3, 1), padding="same").weight.shape == (3, 2, 3, 1)
    assert layers.RecurrentLIF(3, 2, tau=torch.tensor(3.0)).tau == 3.0


def test_meta_input_is_refused_before_the_nan_scan():
    m = layers.Dense(3, 2)
    with pytest.raises(ValueError, match="x: .*'meta'"):
        m(torch.empty(4, 2, 3, device="meta"))
