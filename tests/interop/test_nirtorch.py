"""spikefuse's NIR graph executor (NIRGraphModule) against nirtorch's (nir_to_torch), an
independent implementation, on the graphs nirtorch can carry: the same node modules wired by
both must give bit-identical outputs, including the recurrent one-step feedback.
graph.py's docstring says which graphs nirtorch cannot carry and why spikefuse keeps its own."""
import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")
nirtorch = pytest.importorskip("nirtorch")

from spikefuse import layers  # noqa: E402
from spikefuse.interop.nir import NIRGraphModule, from_nir, to_nir  # noqa: E402
from spikefuse.interop.nir.modules import Delay, _NIRNeuronBase  # noqa: E402

DT = 1e-3


class _Step(nn.Module):
    """nirtorch calls a module with ``state=`` when its forward has that argument and expects
    ``(output, state)``; the NIR* neurons return that with ``return_state=True``."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x, state=None):
        return self.m(x, state, return_state=True)


def _nirtorch_run(graph, ours: NIRGraphModule, x, stepwise):
    """Wire ``ours``' node modules with nirtorch and run them on ``x`` (T, B, F): in one call
    (acyclic graphs, whole sequences) or one call per step (graphs with cycles)."""
    by_node = {id(graph.nodes[n]): ours.module(n) for n in ours.node_names}

    def make(node):
        m = by_node[id(node)]
        return _Step(m) if isinstance(m, (_NIRNeuronBase, Delay)) else m

    types = {type(v) for v in graph.nodes.values() if not isinstance(v, (nir.Input, nir.Output))}
    gm = nirtorch.nir_to_torch(graph, {t: make for t in types})
    if not stepwise:
        return gm(x)[0]
    state, out = None, []
    for t in range(x.shape[0]):
        y, state = gm(x[t:t + 1], state)
        out.append(y)
    return torch.cat(out)


def test_recurrent_feedback_matches_nirtorch():
    torch.manual_seed(0)
    model = nn.Sequential(layers.RecurrentLIF(3, 6, tau=2.0, v_threshold=0.3), layers.Dense(6, 2))
    g = to_nir(model, dt=DT)
    ours = from_nir(g, dt=DT, use_metadata=False)
    assert isinstance(ours, NIRGraphModule) and ours.recurrent
    x = torch.rand(40, 4, 3) * 2
    y = ours(x)
    assert y.abs().sum() > 0
    assert torch.equal(_nirtorch_run(g, ours, x, stepwise=True), y)


def test_branches_match_nirtorch():
    rng = np.random.default_rng(1)
    f32 = np.float32
    nodes = {"input": nir.Input(input_type=np.array([3])),
             "a": nir.Affine(weight=rng.normal(size=(4, 3)).astype(f32), bias=rng.normal(size=4).astype(f32)),
             "b": nir.Linear(weight=rng.normal(size=(4, 3)).astype(f32)),
             "lif": nir.LIF(tau=np.full(4, 2e-3, f32), r=np.ones(4, f32), v_leak=np.zeros(4, f32),
                            v_threshold=np.full(4, 0.5, f32), v_reset=np.zeros(4, f32)),
             "output": nir.Output(output_type=np.array([4]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"),
                                         ("lif", "output")])
    ours = from_nir(g, dt=DT)
    assert isinstance(ours, NIRGraphModule) and not ours.recurrent
    x = torch.rand(30, 2, 3)
    y = ours(x)
    assert y.sum() > 0
    assert torch.equal(_nirtorch_run(g, ours, x, stepwise=False), y)
