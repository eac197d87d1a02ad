"""The Triton scans behind the ``spikefuse::scan_fwd`` / ``scan_bwd`` torch.library ops (issue 9
items 2 and 6): ``torch.compile(fullgraph=True)`` traces a model of every Triton-backed family
with 0 graph breaks, forward and backward, and equals eager; ``torch.library.opcheck`` passes on
each Triton spec with small inputs; every Triton spec states its bytes and comes with its AOT
compile cases.

On a CPU-only machine the kernels run in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1,
set by conftest.py) and the compiled graph calls the op for real (``backend="aot_eager"``: the
op is opaque to Inductor, so this traces exactly what a CUDA compile traces). Not checkable
without a GPU: Inductor's code generation around the op on CUDA tensors and the launch itself
on a device (the sm_90 AOT compile of test_kernels_compile.py covers the kernels' PTX).

The default suite opchecks every spec and explains and compiles CUBA (seconds);
``SPIKEFUSE_COMPILE=1`` explains and compiles every family (about 90 s more on a loaded core).
"""
from __future__ import annotations

import os

import pytest
import torch
import torch._dynamo

pytest.importorskip("triton")

import test_compile as tc  # noqa: E402  (tests/test_compile.py: the per-family tiny models)

from spikefuse import kernels  # noqa: E402
from spikefuse.kernels import scan  # noqa: E402

COMPILE_ALL = os.environ.get("SPIKEFUSE_COMPILE", "") not in ("", "0")
slow = pytest.mark.skipif(not COMPILE_ALL, reason="slow CPU compile: set SPIKEFUSE_COMPILE=1")

#: families of tests/test_compile.py that run on the Triton backend, and their spec names
#: (plif is absent: its reciprocal_tau has no Triton scan, and supports says so)
TRITON = {"if": "lif_triton", "lif": "lif_triton", "cuba": "cuba_triton",
          "cuba_refractory": "cuba_refractory_triton", "loihi_cuba": "loihi_cuba_triton",
          "loihi_alif": "loihi_alif_triton", "rf": "loihi_rf_triton", "rf_iz": "loihi_rf_iz_triton",
          "adrf": "loihi_adrf_triton", "adrf_iz": "loihi_adrf_iz_triton",
          "sigma_delta": "loihi_sigma_delta_triton"}
FAST = ("cuba",)


def _families(fast=FAST):
    return [f if f in fast else pytest.param(f, marks=slow) for f in TRITON]


def _model(family):
    m = tc._Model(family)
    m.neuron.backend = "triton"
    return m


def _scan_nodes(graphs):
    return [n.args[0] for g in graphs for n in g.graph.nodes
            if n.op == "call_function" and "scan_fwd" in str(n.target)]


def test_plif_has_no_triton_scan_and_says_why():
    with pytest.raises(ValueError, match="reciprocal_tau"):
        _model("plif")(tc._input())


@pytest.mark.parametrize("family", _families())
def test_triton_family_traces_without_graph_breaks(family):
    model = _model(family)
    model(tc._input())  # the first call imports the backends (an import is a graph break)
    torch._dynamo.reset()
    ex = torch._dynamo.explain(model)(tc._input().requires_grad_())
    assert ex.graph_break_count == 0, [str(r.reason).split("\n")[0] for r in ex.break_reasons]
    assert _scan_nodes(ex.graphs) == [TRITON[family]]  # the Triton scan ran, as one opaque node


@pytest.mark.parametrize("family", _families())
def test_triton_family_compiled_equals_eager(family):
    """fullgraph=True forward and backward (AOT autograd traces the registered backward op)."""
    eager_model, model = _model(family), _model(family)
    eager = tc._forward_and_grads(eager_model, eager_model, tc._input().requires_grad_())
    torch._dynamo.reset()
    compiled = tc._forward_and_grads(torch.compile(model, fullgraph=True, backend="aot_eager"), model,
                                     tc._input().requires_grad_())
    assert torch.equal(eager[0], compiled[0])
    for a, b in zip(eager[1], compiled[1]):
        assert torch.equal(a, b)


def _captured_calls(family):
    """The (kernel, tensors, f, i) of the scan_fwd call a tiny model of ``family`` makes."""
    calls = []
    real = scan.scan_fwd

    def spy(kernel, tensors, f, i):
        calls.append((kernel, [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors], f, i))
        return real(kernel, tensors, f, i)

    model = _model(family)
    scan.scan_fwd = spy
    try:
        model(tc._input().requires_grad_())
    finally:
        scan.scan_fwd = real
    return calls


@pytest.mark.parametrize("family", list(TRITON))
def test_opcheck_triton_spec(family):
    (kernel, tensors, f, i), = _captured_calls(family)
    assert kernel == TRITON[family]
    torch.library.opcheck(torch.ops.spikefuse.scan_fwd.default, (kernel, tensors, f, i),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_every_triton_spec_states_its_bytes_and_aot_cases():
    from spikefuse.kernels.triton import common

    import spikefuse.kernels.triton  # noqa: F401  (registers every Triton spec)
    names = {n for n in scan.SPECS if n.endswith("_triton")}
    assert names == set(TRITON.values())
    for n in names:
        s = scan.SPECS[n]
        assert s.saved_bytes >= 0 and s.moved_bytes > s.saved_bytes, n
        labels = {label for label, *_ in common.AOT[n]}
        assert any(lb.endswith("fwd") for lb in labels) and any(lb.endswith("bwd") for lb in labels), n
