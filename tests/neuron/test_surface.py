"""The one neuron-module surface (neuron/base.py) across every family: reset_states clears
the state carried between calls (Loihi persistent_state included), params() is a method
returning the family's functional Params, backend= is accepted and a bad one refused,
keyword-only constructor arguments and layout errors are clear."""
import pytest
import torch

from spikefuse import layers
from spikefuse.functional import cuba as FC
from spikefuse.functional import loihi as FL
from spikefuse.functional import resonator as FR
from spikefuse.functional import sigma_delta as FS
from spikefuse.functional import sinabs as FSI
from spikefuse.functional import snntorch as FST
from spikefuse.functional.lif import LIFParams, LIFState, lif_step
from spikefuse.neuron import base as nbase
from spikefuse.neuron import reset_net
from spikefuse.neuron.cuba import CubaLIF, CubaRefractoryLIF
from spikefuse.neuron.eventprop import EventPropLIF
from spikefuse.neuron.lif import IF, LIF, ParametricLIF
from spikefuse.neuron.loihi import adrf, adrf_iz, alif, cuba, rf, rf_iz, sigma_delta
from spikefuse.neuron.loihi.base import Neuron as LoihiNeuron
from spikefuse.neuron.sinabs import SinabsIAF, SinabsLIF
from spikefuse.neuron.snntorch import Leaky, Synaptic
from spikefuse.surrogate import SuperSpike

T, B, C = 6, 2, 3


def _real(scale, shift=0.0):
    return lambda: scale * torch.rand(T, B, C) + shift


def _pair(scale):
    return lambda: (scale * torch.rand(T, B, C), scale * torch.rand(T, B, C))


def _identity(block):
    """A block whose synapse passes the input through (the neuron sees the test input)."""
    with torch.no_grad():
        block.synapse.weight.copy_(torch.eye(C))
        block.synapse.bias.zero_()
    return block


_RF = dict(threshold=0.1, period=4, decay=0.1)
_ADRF = dict(threshold=0.1, threshold_step=0.05, period=4, decay=0.1, threshold_decay=0.1,
             refractory_decay=0.1)

# name -> (factory(**kw), input, functional Params type, carries state between calls)
FAMILIES = {
    "if": (lambda **kw: IF(**kw), _real(0.8), LIFParams, True),
    "lif": (lambda **kw: LIF(tau=2.0, **kw), _real(2.0), LIFParams, True),
    "plif": (lambda **kw: ParametricLIF(init_tau=2.0, **kw), _real(2.0), LIFParams, True),
    "cuba": (lambda **kw: CubaLIF(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, **kw), _real(1.0),
             FC.CubaParams, False),
    "cuba_refractory": (lambda **kw: CubaRefractoryLIF(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, **kw),
                        _real(1.0), FC.CubaParams, False),
    "eventprop": (lambda **kw: EventPropLIF(C, C, threshold=0.3, **kw), _real(1.0), FC.CubaParams, False),
    "recurrent_lif": (lambda **kw: layers.RecurrentLIF(C, C, **kw), _real(1.0), LIFParams, False),
    "dense_block": (lambda **kw: _identity(layers.DenseBlock(C, C, LIF(tau=2.0), **kw)), _real(2.0),
                    LIFParams, True),
    "cuba_block": (lambda **kw: _identity(layers.Block(layers.Dense(C, C), CubaLIF(threshold=0.3), **kw)),
                   _real(1.0), FC.CubaParams, False),
    "loihi_cuba": (lambda **kw: cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.5,
                                            persistent_state=True, **kw), _real(1.0), FL.CubaParams, True),
    "loihi_alif": (lambda **kw: alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=0.5,
                                            voltage_decay=0.5, threshold_decay=0.1, refractory_decay=0.1,
                                            persistent_state=True, **kw), _real(1.0), FL.AlifParams, True),
    "loihi_rf": (lambda **kw: rf.Neuron(**_RF, persistent_state=True, **kw), _pair(1.0), FR.RFParams, True),
    "loihi_rf_iz": (lambda **kw: rf_iz.Neuron(**_RF, persistent_state=True, **kw), _pair(0.2), FR.RFParams, True),
    "loihi_adrf": (lambda **kw: adrf.Neuron(**_ADRF, persistent_state=True, **kw), _pair(1.0),
                   FR.AdRFParams, True),
    "loihi_adrf_iz": (lambda **kw: adrf_iz.Neuron(**_ADRF, persistent_state=True, **kw), _pair(1.0),
                      FR.AdRFParams, True),
    "loihi_sigma_delta": (lambda **kw: sigma_delta.Neuron(threshold=0.1, activation=torch.relu,
                                                          persistent_state=True, **kw),
                          _real(1.0, -0.5), FS.SigmaDeltaParams, True),
    "snntorch_leaky": (lambda **kw: Leaky(beta=0.8, **kw), _real(0.8), FST.LeakyParams, True),
    "snntorch_synaptic": (lambda **kw: Synaptic(alpha=0.5, beta=0.8, **kw), _real(0.5), FST.SynapticParams, True),
    "sinabs_lif": (lambda **kw: SinabsLIF(tau_mem=4.0, tau_syn=2.0, **kw), _real(3.0), FSI.SinabsParams, True),
    "sinabs_iaf": (lambda **kw: SinabsIAF(**kw), _real(0.8), FSI.SinabsParams, True),
}
RESETS = {"layers.reset_states": layers.reset_states, "base.reset_states": nbase.reset_states,
          "neuron.reset_net": reset_net}


def _run(n, x):
    with torch.no_grad():
        out = n(x)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("reset", list(RESETS), ids=list(RESETS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_reset_states_clears_every_family(family, reset):
    make, inp, _, carries = FAMILIES[family]
    n, x = make(), inp()
    model = torch.nn.Sequential(torch.nn.Identity(), n)
    first = _run(model, x)
    second = _run(model, x)
    if carries:  # the state of the first call changed the second: there is something to clear
        assert not torch.equal(first, second)
    RESETS[reset](model)
    assert n.last_traces is None
    assert torch.equal(_run(model, x), first)   # from the initial state again


def test_loihi_persistent_state_is_cleared():
    """The reported case: a persistent Loihi CUBA neuron kept its state through both calls."""
    n = cuba.Neuron(threshold=10.0, current_decay=0.1, voltage_decay=0.1, persistent_state=True)
    n(torch.ones(5, 1, 1))
    assert n.current_state.abs().sum() > 0
    layers.reset_states(n)
    assert torch.equal(n.current_state, torch.zeros(1, 1))
    assert torch.equal(n.voltage_state, torch.zeros(1, 1))
    n(torch.ones(5, 1, 1))
    reset_net(n)
    assert torch.equal(n.current_state, torch.zeros(1, 1))


def test_reset_and_reset_state_names():
    for family in ("lif", "loihi_cuba", "loihi_sigma_delta", "recurrent_lif"):
        n = FAMILIES[family][0]()
        assert callable(n.reset) and callable(n.reset_state)
    lava = FAMILIES["loihi_alif"][0]()
    lava(torch.ones(T, B, C))
    lava.reset()   # SpikingJelly's name clears a Loihi neuron too
    assert torch.equal(lava.threshold_state, torch.full((B, C), lava.threshold))
    # hxtorch families: ``reset`` stays the reset potential, reset_state() clears
    n = CubaLIF(reset=0.25)
    n(torch.ones(3, 1, 1))
    assert n.reset == 0.25 and n.last_traces is not None
    n.reset_state()
    assert n.last_traces is None


@pytest.mark.parametrize("family", list(FAMILIES))
def test_params_is_a_method_returning_functional_params(family):
    make, inp, ptype, _ = FAMILIES[family]
    n = make()
    assert callable(n.params)
    _run(n, inp())
    assert isinstance(n.params(), ptype)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_backend_accepted_and_bad_backend_refused(family):
    make = FAMILIES[family][0]
    assert make(backend="reference").backend == "reference"
    assert make(backend=None).backend is None
    with pytest.raises(ValueError, match=r"backend: expected None or one of .*got 'cuda'"):
        make(backend="cuda")
    with pytest.raises(TypeError, match="backend"):
        make(backend=1)
    n = make()
    with pytest.raises(ValueError, match="backend"):
        n.backend = "gpu"   # checked when set, too
    assert n.backend is None


@pytest.mark.parametrize("family", ["eventprop", "recurrent_lif"])  # snntorch_leaky / _synaptic and
# sinabs_lif / sinabs_iaf have fused kernels
def test_kernel_backend_refused_without_a_kernel(family):
    with pytest.raises(ValueError, match="has no fused kernel"):
        FAMILIES[family][0](backend="triton")


def test_fused_backend_gives_the_reference_numbers():
    x = torch.rand(T, B, C) * 2
    for family in ("lif", "cuba", "loihi_cuba", "sinabs_lif", "sinabs_iaf"):
        make = FAMILIES[family][0]
        torch.testing.assert_close(_run(make(backend="cpu" if family != "loihi_cuba" else "auto"), x),
                                   _run(make(backend="reference"), x), rtol=0, atol=0)


# ------------------------------------------------------------------ keyword-only constructors
@pytest.mark.parametrize("call", [
    lambda: LIF(2.0, False),            # cext: LIFNode(tau, detach_input, ...)
    lambda: IF(1.0, 0.0),
    lambda: ParametricLIF(2.0, True),
])
def test_spikingjelly_nodes_take_one_positional(call):
    with pytest.raises(TypeError, match="positional"):
        call()


def test_cuba_params_keyword_only():
    with pytest.raises(TypeError, match="by keyword.*CUBALIFParams orders its fields tau_mem, tau_syn"):
        FC.CubaParams(10e-6, 10e-6)
    p = FC.CubaParams(threshold=0.5, tau_mem=2e-5)
    assert (p.threshold, p.tau_mem, p.leak) == (0.5, 2e-5, 0.0)
    assert FC.CubaParams(*p) == p   # the full tuple (copy / pickle / pytree form)
    assert p._replace(leak=1.0).leak == 1.0 and isinstance(p._replace(leak=1.0), FC.CubaParams)


def test_loihi_base_has_lavas_positional_order():
    # lava-dl: threshold, tau_grad, scale_grad, p_scale, w_scale, s_scale, norm, dropout,
    #          persistent_state, shared_param, requires_grad, complex
    n = LoihiNeuron(1.0, 2, 3, 4096, 64, 4096, None, None, True, False, False, True)
    assert (n.tau_grad, n.scale_grad, n.p_scale, n.w_scale, n.s_scale) == (2.0, 3.0, 4096, 64, 4096)
    assert n.persistent_state is True and n.shared_param is False
    assert n.requires_grad is False and n.complex is True
    assert isinstance(n, nbase.NeuronModule)
    with pytest.raises(TypeError, match="positional"):
        LoihiNeuron(1.0, 1, 1, 1, 1, 1, None, None, False, True, True, False, 10)   # num_neurons: keyword
    assert LoihiNeuron(1.0, num_neurons=10).num_neurons == 10


# ------------------------------------------------------------------ layouts
def test_time_last_lava_tensor_is_named():
    n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.5)
    n(torch.rand(T, B, C))
    with pytest.raises(ValueError, match="time-last layout.*movedim"):
        n(torch.rand(B, C, T))   # lava-dl's (B, C, T)
    with pytest.raises(ValueError, match="does not match the neuron shape") as e:
        n(torch.rand(T, B, C + 1))
    assert "time-last" not in str(e.value)
    sd = FAMILIES["loihi_sigma_delta"][0]()
    sd(torch.rand(T, B, C))
    with pytest.raises(ValueError, match="time-last layout"):
        sd(torch.rand(B, C, T))


def test_time_last_hint_in_synapse_errors():
    with pytest.raises(ValueError, match="3 input features.*if this is lava-dl's time-last layout"):
        layers.Dense(3, 2)(torch.rand(B, 3, T))
    with pytest.raises(ValueError, match="channels.*time-last layout"):
        layers.Conv2d(3, 2, 3)(torch.rand(B, 3, 5, 5, T))
    with pytest.raises(ValueError, match="in_features.*time-last layout"):
        EventPropLIF(3, 2, gradient="surrogate")(torch.rand(B, 3, T))
    with pytest.raises(ValueError, match="input features") as e:
        layers.Dense(3, 2)(torch.rand(T, B, 4))   # not the lava shape: no hint
    assert "time-last" not in str(e.value)


def test_block_without_kernels_or_params():
    blk = layers.Block(layers.Dense(2, 2), layers.LeakyIntegrator())
    assert blk.backend is None
    with pytest.raises(ValueError, match="has no kernel backend"):
        blk.backend = "cpu"
    with pytest.raises(TypeError, match="params: the block's neuron LeakyIntegrator"):
        blk.params()


def test_assigned_membrane_of_the_wrong_shape_is_refused():
    n = LIF(tau=2.0)
    n.v = torch.zeros(B, C + 1)
    with pytest.raises(ValueError, match=r"v: the membrane assigned .* \(2, 4\), expected one step"):
        n(torch.rand(T, B, C))
    n.v = torch.full((B, C), 0.5)   # the right shape continues from it
    s = n(torch.full((1, B, C), 1.0))
    assert torch.equal(s, torch.zeros(1, B, C))   # H = 0.5 + (1 - 0.5) / 2 = 0.75 < 1
    assert torch.equal(n.v, torch.full((B, C), 0.75))
    n(torch.rand(T, B + 3, C))   # the membrane the neuron stored itself is re-created on a batch change


# ------------------------------------------------------------------ values checked when set
def test_parameter_values_checked_when_set():
    n = LIF(tau=2.0)
    with pytest.raises(ValueError, match="tau"):
        n.tau = 0.5
    with pytest.raises(ValueError, match="v_threshold"):
        n.v_threshold = float("nan")
    with pytest.raises(TypeError, match="surrogate"):
        n.surrogate = "atan"
    c = CubaLIF()
    with pytest.raises(ValueError, match="alpha"):
        c.alpha = 0.0
    with pytest.raises(ValueError, match="dt/tau_mem"):
        c.tau_mem = 1e-9
    with pytest.raises(ValueError, match="dt/tau_syn"):
        c.dt = 1e-3
    r = layers.RecurrentLIF(2, 2)
    with pytest.raises(ValueError, match="tau"):
        r.tau = 0.5
    n.v_threshold = 0.5
    assert n.params().v_threshold == 0.5


# ------------------------------------------------------------------ one implementation
def test_hxtorch_superspike_is_the_surrogate():
    assert not hasattr(FC, "_SuperSpike")
    x = torch.tensor([[-0.3, 0.0, 0.2]], requires_grad=True)
    alpha = torch.tensor([10.0, 50.0, 80.0])
    z = FC.superspike(x, alpha)
    assert z.tolist() == [[0.0, 0.0, 1.0]]   # strict: 1[x > 0]
    g = torch.tensor([[1.5, -2.0, 0.5]])
    z.backward(g)
    assert torch.equal(x.grad, g / (alpha * x.detach().abs() + 1.0) ** 2)   # hxtorch's backward
    s = SuperSpike(alpha)
    assert s.kernel_id == -1 and SuperSpike(torch.tensor(50.0)).kernel_id == SuperSpike(50.0).kernel_id
    assert s == SuperSpike(alpha.clone()) and s != SuperSpike(50.0)
    with pytest.raises(ValueError, match="alpha"):
        SuperSpike(torch.tensor([1.0, -1.0]))


def test_recurrent_lif_step_is_the_functional_step():
    torch.manual_seed(1)
    for kw in (dict(), dict(v_reset=None), dict(decay_input=False, detach_reset=True)):
        rnn = layers.RecurrentLIF(3, 4, **kw)
        h = (torch.rand(B, 4) * 3).requires_grad_()
        state = rnn.initial_state(B)
        w = torch.zeros(4, 4)
        s, st = rnn.step(h, state, w)
        s_ref, st_ref = lif_step(h, LIFState(state.v), rnn.params())
        assert torch.equal(s, s_ref) and torch.equal(st.v, st_ref.v)
        g1, = torch.autograd.grad((s * 2 + st.v).sum(), h)
        g2, = torch.autograd.grad((s_ref * 2 + st_ref.v).sum(), h)
        assert torch.equal(g1, g2)


def test_reset_states_calls_reset_only_when_callable_without_arguments():
    # reset_states caches, per function, whether its bound method binds with no arguments;
    # the answer must follow the function's defaults if they are reassigned
    calls = []

    class Opt(torch.nn.Module):
        def reset(self, value=0):
            calls.append(("opt", value))

    class Req(torch.nn.Module):
        def reset(self, value):  # pragma: no cover - must not be called
            calls.append(("req", value))

    net = torch.nn.Sequential(Opt(), Req(), Opt())
    for _ in range(3):
        layers.reset_states(net)
    assert calls == [("opt", 0)] * 6
    Opt.reset.__defaults__ = None  # now "value" is required: no call
    calls.clear()
    layers.reset_states(net)
    assert calls == []
    Opt.reset.__defaults__ = (5,)
    layers.reset_states(net)
    assert calls == [("opt", 5)] * 2


def test_reset_states_resets_a_block_neuron_once_and_calls_overrides():
    counts = {"neuron": 0, "override": 0}

    class Counting(LIF):
        def reset_state(self):
            counts["neuron"] += 1
            super().reset_state()

    class MyBlock(layers.DenseBlock):
        def reset_state(self):
            counts["override"] += 1
            super().reset_state()

        reset = reset_state

    net = torch.nn.Sequential(layers.DenseBlock(2, 3, Counting()))
    _ = net(torch.ones(4, 1, 2))
    layers.reset_states(net)
    assert counts == {"neuron": 1, "override": 0} and net[0].neuron.v is None
    net[0].reset_state()  # called directly, the block still resets its neuron
    assert counts["neuron"] == 2
    layers.reset_states(torch.nn.Sequential(MyBlock(2, 3, Counting())))
    assert counts["override"] == 1 and counts["neuron"] >= 3
