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

import contextlib
import functools
import os

import pytest
import torch
import torch._dynamo

pytest.importorskip("triton")

from test_compile import eager_and_compiled  # noqa: E402  (tests/test_compile.py)

from spikefuse import families  # noqa: E402
from spikefuse.kernels import scan  # noqa: E402

COMPILE_ALL = os.environ.get("SPIKEFUSE_COMPILE", "") not in ("", "0")
slow = pytest.mark.skipif(not COMPILE_ALL, reason="slow CPU compile: set SPIKEFUSE_COMPILE=1")

#: every registry family that lists a Triton kernel and a bench module (so a new family is
#: covered without an edit here), except those whose Triton kernel refuses the module's case
TRITON = [f.id for f in families.FAMILIES.values() if "triton" in f.kernels and f.bench is not None]
#: family -> what its refusal names (plif: reciprocal_tau has no Triton scan)
REFUSED = {"plif": "reciprocal_tau"}
RUNS = [f for f in TRITON if f not in REFUSED]
FAST = ("cuba",)
N_IN, N = 4, 6


def _families(fast=FAST):
    return [f if f in fast else pytest.param(f, marks=slow) for f in RUNS]


class _Model(torch.nn.Module):
    """Linear -> the family's bench module on ``backend="triton"`` (tests/test_compile.py's
    shape: a parameter before the scan, so gradients flow through the op into it)."""

    def __init__(self, family: str):
        super().__init__()
        fam = families.get(family)
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(N_IN, N)
        self.neuron = families.load(fam.bench.module)("triton", N)
        self.scale = fam.bench.module_scale

    def forward(self, x):
        out = self.neuron(self.lin(x) * self.scale)
        return out[0] if isinstance(out, tuple) else out  # norse modules return (spikes, state)


def _input():
    torch.manual_seed(1)
    return torch.rand(5, 3, N_IN) * 2


def _scan_nodes(graphs):
    return [n.args[0] for g in graphs for n in g.graph.nodes
            if n.op == "call_function" and "scan_fwd" in str(n.target)]


@pytest.mark.parametrize("family", list(REFUSED))
def test_refused_triton_case_says_why(family):
    with pytest.raises(ValueError, match=REFUSED[family]):
        _Model(family)(_input())


@pytest.mark.parametrize("family", _families())
def test_triton_family_traces_without_graph_breaks(family):
    model = _Model(family)
    model(_input())  # the first call imports the backends (an import is a graph break)
    torch._dynamo.reset()
    ex = torch._dynamo.explain(model)(_input().requires_grad_())
    assert ex.graph_break_count == 0, [str(r.reason).split("\n")[0] for r in ex.break_reasons]
    assert _scan_nodes(ex.graphs) == [_captured_call(family)[0]]  # the Triton scan, one opaque node


@pytest.mark.parametrize("family", _families())
def test_triton_family_compiled_equals_eager(family):
    """fullgraph=True forward and backward (AOT autograd traces the registered backward op)."""
    eager, compiled = eager_and_compiled(lambda: _Model(family), _input)
    assert torch.equal(eager[0], compiled[0])
    for a, b in zip(eager[1], compiled[1]):
        assert torch.equal(a, b)


@functools.lru_cache(maxsize=None)
def _captured_call(family, generic=False):
    """The (kernel, tensors, f, i) of the one scan_fwd call a tiny model of ``family`` makes
    (``generic``: with the generic template in place of the per-family Triton kernels)."""
    from spikefuse.kernels.triton import generic as gen

    calls = []
    real = scan.scan_fwd

    def spy(kernel, tensors, f, i):
        calls.append((kernel, [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors], f, i))
        return real(kernel, tensors, f, i)

    model = _Model(family)
    scan.scan_fwd = spy
    try:
        with gen.generic_as_triton() if generic else contextlib.nullcontext(), scan.through_op():
            model(_input().requires_grad_())  # eager calls skip the op unless told (through_op)
    finally:
        scan.scan_fwd = real
    assert len(calls) == 1, [c[0] for c in calls]
    return calls[0]


@pytest.mark.parametrize("family", RUNS)
def test_opcheck_triton_spec(family):
    kernel, tensors, f, i = _captured_call(family)
    assert kernel.endswith("_triton") and kernel in scan.SPECS
    torch.library.opcheck(torch.ops.spikefuse.scan_fwd.default, (kernel, tensors, f, i),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


GENERIC = [f for f in RUNS if families.get(f).kernel in ("lif", "cuba")]


@pytest.mark.parametrize("family", GENERIC)
def test_opcheck_generic_template_spec(family):
    """The generic template (kernels/triton/generic.py, the A/B rows) runs through the same ops."""
    kernel, tensors, f, i = _captured_call(family, generic=True)
    assert kernel.endswith("_generic") and kernel in scan.SPECS
    torch.library.opcheck(torch.ops.spikefuse.scan_fwd.default, (kernel, tensors, f, i),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_every_triton_spec_is_reached_and_states_its_bytes_and_aot_cases():
    from spikefuse.kernels.triton import common

    names = {n for n in scan.SPECS if n.endswith("_triton")}
    assert names == {_captured_call(f)[0] for f in RUNS}  # no spec without a family, none skipped
    for n in names:
        s = scan.SPECS[n]
        assert s.saved_bytes >= 0 and s.moved_bytes > s.saved_bytes, n
        labels = {label for label, *_ in common.AOT[n]}
        assert any(lb.endswith("fwd") for lb in labels) and any(lb.endswith("bwd") for lb in labels), n
