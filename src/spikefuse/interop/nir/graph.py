"""The executor of NIR graphs that are not a chain (:class:`NIRGraphModule`).

Why not nirtorch: nirtorch 2.6's ``nir_to_torch(graph, node_map)`` (a torch.fx module run once
per step, with a state dict and ``(output, state)`` modules) carries spikefuse's single-input,
single-output graphs with at most two edges into a node, including the recurrent one-step
feedback (the previous step's output of the edge's source, zero at ``t = 0``), with the same
numbers bit for bit: tests/interop/test_nirtorch.py checks this against it. It cannot carry:

- a node with three or more incoming edges: it sums them in the iteration order of a Python
  ``set`` of edges, which depends on the string hash seed, so the float sum (and the spikes
  after it) change from one interpreter run to the next (measured: 252 of 1000 values differ
  between seeds); spikefuse sums in edge order;
- several edges into an Output node: returned as separate values, not summed;
- several graph inputs: tracing fails ("Node redefined name is_none!");
- several graph outputs, and a cycle that no graph input enters: ``nir_to_torch`` never
  returns (its work queue re-enqueues forever); spikefuse raises NIRConversionError;
- node names that are attributes of ``nn.ModuleDict`` (e.g. ``forward``): KeyError;
- modules with spikefuse's ``forward(x, state=None, return_state=False)``: it passes ``state=``
  to any module with a ``state`` argument and takes ``output[0]`` of the result (the first time
  step), so every NIR* neuron would need an adapter.
Since these are properties of whole graphs, not one separable feature, a nirtorch path would
sit beside this executor (which must stay for them) rather than replace it; spikefuse keeps
its own executor (scheduling in :func:`_schedule`, which :func:`to_nir` also uses) and nirtorch
is a test-only cross-check.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from ... import layers as _layers
from ..._validate import check_sequence
from ._common import NIRConversionError
from .modules import Delay, NIRFlatten, Scale, Threshold, _NIRNeuronBase

__all__ = ["NIRGraphModule"]


class NIRGraphModule(nn.Module):
    """Runs a NIR graph of modules on time-first sequences.

    Every edge is an identity; a node with several incoming edges receives their sum. Acyclic
    graphs run node by node over whole sequences. Graphs with cycles (recurrent connections) run
    step by step: an edge that closes a cycle delivers the source's output of the *previous*
    step (zero at ``t = 0``); every stateful node in such a graph must accept
    ``forward(x, state, return_state=True)`` (the ``NIR*`` neuron modules of this file do).

    ``forward(x)`` with one graph input, ``forward(**{input_name: x})`` or a dict otherwise;
    returns a tensor for one output, a dict name -> tensor for several.

    >>> g = NIRGraphModule({"a": Scale([2.0]), "b": Scale([3.0])},
    ...                    [("in", "a"), ("in", "b"), ("a", "out"), ("b", "out")], ["in"], ["out"])
    >>> g(torch.ones(1, 1, 1)).item()
    5.0
    """

    def __init__(self, nodes: Dict[str, nn.Module], edges: Sequence[Tuple[str, str]],
                 inputs: Sequence[str], outputs: Sequence[str]):
        super().__init__()
        self.node_names = list(nodes)
        self._key = {}
        for i, n in enumerate(self.node_names):
            k = _safe_name(n, i)
            while k in self._key.values():
                k += "_"
            self._key[n] = k
        self.nodes = nn.ModuleDict({self._key[n]: m for n, m in nodes.items()})
        self.edges = [(str(a), str(b)) for a, b in edges]
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        known = set(self.node_names) | set(self.inputs) | set(self.outputs)
        for a, b in self.edges:
            for n in (a, b):
                if n not in known:
                    raise NIRConversionError(f"graph: edge ({a!r}, {b!r}) names an unknown node {n!r}")
        self._preds = {n: [a for a, b in self.edges if b == n] for n in known}
        self.order, self.back_edges = _schedule(self.inputs, self.node_names, self.edges)
        self.recurrent = bool(self.back_edges)
        for n in self.node_names:
            if not any(b == n for _, b in self.edges):
                raise NIRConversionError(f"graph: node {n!r} has no incoming edge (not reachable from an input)")
        if self.recurrent:
            for n in self.node_names:
                m = self.module(n)
                if not isinstance(m, (_NIRNeuronBase, Delay) + _STATELESS):
                    raise NIRConversionError(
                        f"graph: node {n!r} ({type(m).__name__}) cannot run in a graph with cycles, which runs "
                        "step by step: use the NIR* neuron modules (they take their state explicitly) or "
                        "stateless layers")

    def module(self, name: str) -> nn.Module:
        """The module that runs node ``name``."""
        return self.nodes[self._key[name]]

    def reset(self):
        """Nothing persists between calls."""

    def _collect(self, xs):
        if len(xs) == 1 and isinstance(xs[0], dict):
            return dict(xs[0])
        if len(xs) == 1 and len(self.inputs) == 1:
            return {self.inputs[0]: xs[0]}
        if len(xs) == len(self.inputs):
            return dict(zip(self.inputs, xs))
        raise ValueError(f"inputs: expected {len(self.inputs)} tensors for graph inputs {self.inputs}, got {len(xs)}")

    def forward(self, *xs, **named):
        feed = self._collect(xs) if xs else {}
        feed.update(named)
        for k, v in feed.items():
            if k not in self.inputs:
                raise ValueError(f"inputs: unknown graph input {k!r}; expected {self.inputs}")
            check_sequence(f"inputs[{k!r}]", v)
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise ValueError(f"inputs: missing graph input(s) {missing}")
        if self.recurrent:
            vals = self._run_stepwise(feed)
        else:
            vals = dict(feed)
            for n in self.order:
                vals[n] = self.module(n)(self._sum_inputs(n, vals))
        out = {o: self._sum_inputs(o, vals) for o in self.outputs}
        return out[self.outputs[0]] if len(self.outputs) == 1 else out

    def _sum_inputs(self, n, vals):
        acc = None
        for a in self._preds[n]:
            v = vals.get(a)
            if v is None:
                continue
            acc = v if acc is None else acc + v
        if acc is None:
            raise NIRConversionError(f"graph: node {n!r} receives no input")
        return acc

    def _run_stepwise(self, feed):
        T = next(iter(feed.values())).shape[0]
        back = set(self.back_edges)
        states: Dict[str, object] = {}
        prev: Dict[str, Tensor] = {}
        seqs: Dict[str, List[Tensor]] = {n: [] for n in self.node_names}
        for t in range(T):
            cur = {k: v[t:t + 1] for k, v in feed.items()}
            for n in self.order:
                acc = self._sum_inputs_step(n, cur, prev, back)
                m = self.module(n)
                if isinstance(m, (_NIRNeuronBase, Delay)):
                    y, states[n] = m(acc, states.get(n), return_state=True)
                else:
                    y = m(acc)
                cur[n] = y
                seqs[n].append(y)
            prev = cur
        return {**feed, **{n: torch.cat(v) for n, v in seqs.items()}}

    def _sum_inputs_step(self, n, cur, prev, back):
        acc = None
        for a in self._preds[n]:
            v = prev.get(a) if (a, n) in back else cur.get(a)
            if v is None:
                continue  # a feedback edge at t = 0 delivers zero
            acc = v if acc is None else acc + v
        if acc is None:
            raise NIRConversionError(f"graph: node {n!r} receives no input at the first step; a cycle "
                                     "needs an input from outside the cycle")
        return acc


_STATELESS = (nn.Linear, nn.Conv1d, nn.Conv2d, _layers._Pool2d, _layers.Flatten, nn.Identity, Scale, Threshold,
              NIRFlatten)  # plus Delay and the NIR* neurons, which take their state explicitly


def _safe_name(name: str, i: int) -> str:
    """A child-module name for NIR node ``name``: dots become ``_``; names that clash with an
    attribute of nn.Sequential / nn.ModuleDict get a trailing ``_``."""
    s = str(name).replace(".", "_") or f"node{i}"
    while hasattr(nn.Sequential, s) or hasattr(nn.ModuleDict, s):
        s += "_"
    return s


def _schedule(inputs, nodes, edges):
    """Order the nodes; edges that close a cycle (found by DFS from the inputs) are 'back'."""
    succ: Dict[str, List[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    node_set = set(nodes)
    color: Dict[str, int] = {}
    back: List[Tuple[str, str]] = []
    post: List[str] = []

    def dfs(u):
        stack = [(u, iter(succ.get(u, [])))]
        color[u] = 1
        while stack:
            v, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                color[v] = 2
                post.append(v)
                continue
            c = color.get(nxt, 0)
            if c == 1:
                back.append((v, nxt))
            elif c == 0:
                color[nxt] = 1
                stack.append((nxt, iter(succ.get(nxt, []))))

    for i in inputs:
        if color.get(i, 0) == 0:
            dfs(i)
    for n in nodes:  # nodes unreachable from the inputs still get an order
        if color.get(n, 0) == 0:
            dfs(n)
    order = [n for n in reversed(post) if n in node_set]
    return order, back
