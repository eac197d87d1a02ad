"""torch.compile / torch.func over every neuron family (issue 9 items 2 and 6).

For each family a tiny model (Linear -> neuron) is traced with ``torch._dynamo.explain``: zero
graph breaks; ``torch.compile(fullgraph=True)`` must give the eager forward and the eager
gradients of every parameter. CPU compiles are slow (seconds each), so the shapes are tiny and
the default suite compiles one family end to end and explains one; ``SPIKEFUSE_COMPILE=1``
runs every family (about 6 minutes on 2 loaded cores; see README, Development).
"""
from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch._dynamo

from spikefuse.neuron import IF, LIF, CubaLIF, CubaRefractoryLIF, EventPropLIF, ParametricLIF
from spikefuse.neuron.loihi import adrf, adrf_iz, alif, cuba, rf, rf_iz, sigma_delta
from spikefuse.neuron.sinabs import SinabsIAF, SinabsLIF
from spikefuse.neuron.snntorch import Leaky, Synaptic

AD = dict(threshold=0.5, threshold_step=0.25, period=4, decay=0.0, threshold_decay=0.5, refractory_decay=0.5)

#: family -> (neuron factory, complex input?)
FAMILIES = {
    "if": (lambda: IF(), False),
    "lif": (lambda: LIF(tau=2.0), False),
    "plif": (lambda: ParametricLIF(init_tau=2.0), False),
    "cuba": (lambda: CubaLIF(threshold=0.5, tau_syn=2e-6, tau_mem=2e-6), False),
    "cuba_refractory": (lambda: CubaRefractoryLIF(threshold=0.5, tau_syn=2e-6, tau_mem=2e-6,
                                                  refractory_time=2e-6), False),
    "loihi_cuba": (lambda: cuba.Neuron(threshold=0.5, current_decay=0.5, voltage_decay=0.25), False),
    "loihi_alif": (lambda: alif.Neuron(threshold=0.5, threshold_step=0.25, current_decay=0.5,
                                       voltage_decay=0.25, threshold_decay=0.25, refractory_decay=0.25), False),
    "rf": (lambda: rf.Neuron(threshold=0.5, period=4, decay=0.0), True),
    "rf_iz": (lambda: rf_iz.Neuron(threshold=0.5, period=4, decay=0.0), True),
    "adrf": (lambda: adrf.Neuron(**AD), True),
    "adrf_iz": (lambda: adrf_iz.Neuron(**AD), True),
    "sigma_delta": (lambda: sigma_delta.Neuron(threshold=0.1, activation=torch.relu), False),
    "snntorch_leaky": (lambda: Leaky(beta=0.8, learn_beta=True, learn_threshold=True), False),
    "snntorch_synaptic": (lambda: Synaptic(alpha=0.6, beta=0.8, reset_mechanism="zero"), False),
    "sinabs_lif": (lambda: SinabsLIF(tau_mem=5.0, tau_syn=3.0), False),
    "sinabs_iaf": (lambda: SinabsIAF(spike_fn="single", reset_fn="reset"), False),
}

COMPILE_ALL = os.environ.get("SPIKEFUSE_COMPILE", "") not in ("", "0")
slow = pytest.mark.skipif(not COMPILE_ALL, reason="slow CPU compile: set SPIKEFUSE_COMPILE=1")

#: the cheapest family to explain, and to compile end to end, in the default suite
FAST_EXPLAIN, FAST_COMPILE = ("lif",), ("plif",)


class _Model(torch.nn.Module):
    def __init__(self, family: str):
        super().__init__()
        make, complex_in = FAMILIES[family]
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 6)
        self.lin2 = torch.nn.Linear(4, 6) if complex_in else None
        self.neuron = make()

    def forward(self, x):
        if self.lin2 is not None:
            return self.neuron((self.lin(x), self.lin2(x)))
        return self.neuron(self.lin(x))


def _input():
    torch.manual_seed(1)
    return torch.rand(5, 3, 4) * 2


def _forward_and_grads(fn, model, x):
    out = fn(x)
    params = [p for p in model.parameters() if p.requires_grad]
    w = torch.linspace(-1.0, 1.0, out.numel()).reshape(out.shape)
    grads = torch.autograd.grad((out * w).sum(), params + [x])
    return out.detach(), grads


def _check_no_graph_breaks(family):
    model = _Model(family)
    torch._dynamo.reset()
    ex = torch._dynamo.explain(model)(_input())
    assert ex.graph_break_count == 0, [str(r.reason).split("\n")[0] for r in ex.break_reasons]
    assert ex.graph_count == 1


def _families(fast):
    """Every family; those not in ``fast`` only with SPIKEFUSE_COMPILE=1."""
    return [f if f in fast else pytest.param(f, marks=slow) for f in FAMILIES]


@pytest.mark.parametrize("family", _families(FAST_EXPLAIN))
def test_no_graph_breaks(family):
    _check_no_graph_breaks(family)


def eager_and_compiled(make, make_input):
    """(output, gradients) of two identical fresh models ``make()`` (neurons keep their state
    between calls) on ``make_input()``: eager, and ``torch.compile(fullgraph=True)``."""
    eager_model, model = make(), make()
    eager = _forward_and_grads(eager_model, eager_model, make_input().requires_grad_())
    torch._dynamo.reset()
    compiled = _forward_and_grads(torch.compile(model, fullgraph=True, backend="aot_eager"), model,
                                  make_input().requires_grad_())
    return eager, compiled


def _check_compiled_equals_eager(family):
    eager, compiled = eager_and_compiled(lambda: _Model(family), _input)
    assert torch.equal(eager[0], compiled[0])
    for a, b in zip(eager[1], compiled[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", _families(FAST_COMPILE))
def test_compiled_equals_eager(family):
    _check_compiled_equals_eager(family)


def test_compiling_a_lif_warns_nothing_about_lru_cache():
    """The kernels' ``supports`` rules check parameter shapes with ``broadcasts_to``, an
    ``lru_cache`` function; Dynamo warns that it ignores such a cache, so under torch.compile
    ``param_reason`` calls the uncached rule instead (kernels/_common.py). The LIF's tensor
    initial state takes that path; the ``eager`` backend keeps the compile to a trace."""
    model = _Model("lif")
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = torch.compile(model, fullgraph=True, backend="eager")(_input())
    assert out.shape == (5, 3, 6)
    cached = [str(w.message) for w in rec if issubclass(w.category, UserWarning) and "lru_cache" in str(w.message)]
    assert not cached, cached


@slow
def test_eventprop_linear_lif_compiles():
    """EventProp (its own autograd.Function over a fused forward and the adjoint scan)."""
    torch.manual_seed(0)
    layer = EventPropLIF(4, 3, threshold=0.3, weight_scale=3.0)
    x = _input().requires_grad_()
    torch._dynamo.reset()
    ex = torch._dynamo.explain(layer)(x)
    assert ex.graph_break_count == 0, [str(r.reason).split("\n")[0] for r in ex.break_reasons]


@pytest.mark.parametrize("transform", ["grad", "vmap"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_torch_func_raises_a_clear_error(family, transform):
    """torch.func.grad / vmap over a family's multi-step call: not supported, and the error says
    why (instead of a functorch internals message)."""
    model = _Model(family)
    if transform == "grad":
        run = lambda: torch.func.grad(lambda x: model(x).sum())(_input())  # noqa: E731
    else:
        run = lambda: torch.func.vmap(model)(torch.stack([_input(), _input()]))  # noqa: E731
    with pytest.raises(RuntimeError, match=r"torch.func transforms \(grad, vmap, jacrev, ...\) are not supported"):
        run()
