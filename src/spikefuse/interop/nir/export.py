"""Export: spikefuse modules -> :class:`nir.NIRGraph` (:func:`to_nir`).

The converters live in tables, not in an ``isinstance`` chain: :data:`EXPORTERS` (module type ->
converter, looked up along the MRO; ``_table.py``) is filled by ``_export_layers.py`` (layers,
synapses, the ``interop.nir`` modules) and by ``_export_neurons.py`` from the family registry
(:mod:`spikefuse.families`: a family's ``nir`` field names its node, ``nir_note`` says why it has
none). This module walks the model (:class:`_Exporter`), chains the converted nodes and writes
the graph; ``target=`` checks the graph against what a peer's importer assumes.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from torch import nn

from ... import layers as _layers
from ..._validate import _describe, check_bool
from . import _export_layers  # noqa: F401 - registers the layer converters
from . import _export_neurons, _hw_targets, _targets
from ._common import NIRConversionError, _check_dt, _require_nir
from ._table import EXPORTERS, IN_SHAPE, Refused, Shape, converter_for, exporter, identity as _identity
from ._targets import PEER_IMPORT_DT
from .graph import NIRGraphModule

__all__ = ["to_nir", "EXPORTERS", "exporter", "Refused", "PEER_IMPORT_DT", "converter_for"]

_UNSUPPORTED = ("{path} cannot be expressed in NIR; supported: nn.Sequential of spikefuse layers (Dense, Conv1d, "
                "Conv2d, AvgPool2d, SumPool2d, Flatten, LeakyIntegrator, RecurrentLIF, Block), neurons {neurons}, "
                "and the spikefuse.interop.nir modules")


class _Exporter:
    def __init__(self, dt, lossy, target=None):
        self.dt = dt
        self.lossy = lossy
        self.target = target
        self.hw_nodes = set()  # nodes written by a hardware target's own converters (_hw_targets)
        self.nodes: "OrderedDict[str, object]" = OrderedDict()
        self.edges: List[Tuple[str, str]] = []

    # -- module tree -> list of (path, leaf module)
    def leaves(self, module, path):
        if isinstance(module, NIRGraphModule):
            return [(path, module)]
        if converter_for(type(module)) is _identity:
            return []  # identity at inference; NIR graphs describe inference
        if isinstance(module, nn.Sequential):
            out = []
            for name, child in module.named_children():
                out += self.leaves(child, f"{path}.{name}" if path else name)
            return out
        if isinstance(module, _layers.Block):
            p = f"{path}." if path else ""
            return self.leaves(module.synapse, p + "synapse") + self.leaves(module.neuron, p + "neuron")
        return [(path or type(module).__name__.lower(), module)]

    def add(self, name, node):
        while name in ("input", "output") or name in self.nodes:
            name = f"{name}_"
        self.nodes[name] = node
        return name

    def add_one(self, name, node, shape):
        """Add a single node that is both entry and exit: the converter's usual return value."""
        n = self.add(name, node)
        return n, n, shape

    def add_cycle(self, name, inp, neuron, rec, shape):
        """A recurrent layer: ``name.input`` (``inp``) -> ``name.lif`` (``neuron``) ->
        ``name.recurrent`` (``rec``) -> ``name.lif``; the cycle's back edge carries the previous
        step's output. Returns the converter's (entry, exit, shape)."""
        ni = self.add(f"{name}.input", inp)
        nl = self.add(f"{name}.lif", neuron)
        nr = self.add(f"{name}.recurrent", rec)
        self.edges += [(ni, nl), (nl, nr), (nr, nl)]
        return ni, nl, shape

    def convert(self, name, m, shape):
        """One leaf -> (entry node name, exit node name, output shape), through :data:`EXPORTERS`."""
        fn = _hw_targets.override(self.target, type(m)) or converter_for(type(m))
        if fn is None:
            raise NIRConversionError(f"model[{name!r}]: " + _UNSUPPORTED.format(
                path=f"{type(m).__module__}.{type(m).__name__}",
                neurons=", ".join(_export_neurons.supported_neurons())))
        return fn(self, name, m, shape)

    def need_shape(self, name, m, shape):
        if shape is None:
            raise NIRConversionError(
                f"input_shape: required because {type(m).__name__} at model[{name!r}] is reached before any "
                "layer fixes the feature shape; pass input_shape=(features...) without time and batch")
        return tuple(int(s) for s in shape)

    def soft_reset(self, what: str, v_reset) -> bool:
        """True for a soft reset (``v_reset=None``), which NIR cannot express: raises unless lossy."""
        if v_reset is not None:
            return False
        msg = f"{what} with soft reset (v_reset=None) cannot be expressed in NIR"
        if not self.lossy:
            raise NIRConversionError(msg + "; pass lossy=True to export it as a reset to 0")
        warnings.warn(msg + "; exported as a hard reset to 0 (lossy=True)", stacklevel=5)
        return True

    def check_features(self, name, kind, n_in, shape):
        if shape is not None and tuple(shape) != (n_in,):
            raise NIRConversionError(f"model[{name!r}]: {kind} expects {n_in} input features, the previous layer "
                                     f"gives shape {tuple(shape)}")



def _convert_nodes(ex, m, shapes, prefix, what):
    """Convert every node of a NIRGraphModule in order: ``(entry_of, exit_of)``; fills ``shapes``."""
    entry_of, exit_of = {}, {}
    for n in m.order:
        preds = [a for a, b in m.edges if b == n and (a, n) not in m.back_edges]
        e, x, s_out = ex.convert(f"{prefix}.{n}" if prefix else n, m.module(n), shapes.get(preds[0]) if preds else None)
        if e is None:
            raise NIRConversionError(what(n))
        entry_of[n], exit_of[n], shapes[n] = e, x, s_out
    return entry_of, exit_of


@exporter(NIRGraphModule)
def _subgraph(ex, name, m, shape):
    """A NIRGraphModule inside a Sequential (one input, one output): inlined."""
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise NIRConversionError(f"model[{name!r}]: a NIRGraphModule inside a Sequential must have one input "
                                 f"and one output, got {m.inputs} -> {m.outputs}")
    shapes = {m.inputs[0]: shape}
    entry_of, exit_of = _convert_nodes(ex, m, shapes, name,
                                       lambda n: f"model[{name!r}]: node {n!r} is not exportable")
    entry, exit_ = None, None
    for a, b in m.edges:
        if a in m.inputs:
            if entry is not None and entry != entry_of[b]:
                raise NIRConversionError(f"model[{name!r}]: the graph input feeds several nodes; only graphs "
                                         "with a single entry node can be nested")
            entry = entry_of[b]
        elif b in m.outputs:
            exit_ = exit_of[a]
        else:
            ex.edges.append((exit_of[a], entry_of[b]))
    return entry, exit_, shapes.get([a for a, b in m.edges if b in m.outputs][0])




def _first_shape(leaves) -> Shape:
    """The input shape that the first non-identity leaf fixes, or None."""
    for _, m in leaves:
        for c in type(m).__mro__:
            if c in IN_SHAPE:
                return IN_SHAPE[c](m)
        if converter_for(type(m)) is not _identity:
            return None
    return None


def _check_input_shape(input_shape) -> Shape:
    if input_shape is None:
        return None
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape: expected a sequence of positive ints, got {input_shape!r}") from None
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"input_shape: expected a non-empty sequence of positive ints, got {input_shape!r}")
    return input_shape


def _node_input_shape(node) -> Shape:
    it = getattr(node, "input_type", None)
    it = it.get("input") if isinstance(it, dict) else None
    return None if it is None else tuple(int(v) for v in np.asarray(it).reshape(-1))


def to_nir(model: nn.Module, dt: float, *, input_shape: Optional[Sequence[int]] = None,
           lossy: bool = False, target: Optional[str] = None):
    """Export a spikefuse model to a :class:`nir.NIRGraph`.

    ``model``: an ``nn.Sequential`` (nested Sequentials and ``layers.Block`` are flattened into one
    chain), a single supported module, or a :class:`NIRGraphModule`. ``dt``: the time step in
    seconds that one spikefuse step stands for (SpikingJelly-family ``tau`` in steps becomes
    ``tau * dt``; hxtorch ``CubaLIF`` modules must have been built with the same ``dt``).
    ``input_shape``: the feature shape of the input (without time and batch); needed when the
    first layer does not fix it (a convolution, a pool, or a neuron first). ``lossy``: export
    soft-reset neurons as a reset to 0 and Loihi CUBA neurons as their float forward-Euler
    counterpart (with a warning) instead of raising. ``target``: ``"snntorch"``,
    ``"spikingjelly"``, ``"norse"``, ``"sinabs"``, ``"hxtorch"`` or ``"lava-dl"``, the tool that will
    import the graph: warns when
    ``dt`` is not the one its importer assumes (:data:`PEER_IMPORT_DT`; NIR carries no time step, so
    an importer at another ``dt`` runs the neurons with other decays, silently), and raises
    :class:`NIRConversionError` naming the first node that importer cannot run with the same numbers
    (a node type it lacks, e.g. the ``Delay`` of an hxtorch CubaLIF, or a parameter rule it checks,
    e.g. ``r = tau_mem/dt``; ``_targets.py`` lists them). The hardware targets write the graph in
    the form that system writes and reads (hxtorch: time constants in ms, its ``CubaLIF`` carrying
    the one-step synaptic delay; lava-dl: netx's integer decays and mantissas) and mark it with
    ``graph.metadata["spikefuse"]["convention"]``, which :func:`from_nir` reads back
    (``_hw_targets.py`` has the rules read from their importers).

    The discretisation is forward Euler with step ``dt`` (docs/nir.md). Node names are the
    module paths (``"0"``, ``"2.neuron"``); the graph gets ``input`` and ``output`` nodes. Raises
    :class:`NIRConversionError` (a ``ValueError``) naming the first module that NIR cannot express.

    >>> import torch
    >>> from spikefuse import layers
    >>> g = to_nir(torch.nn.Sequential(layers.Dense(2, 3), layers.LeakyIntegrator(4.0)), dt=1e-3)
    >>> type(g.nodes["1"]).__name__, float(g.nodes["1"].tau[0])
    ('LI', 0.004000000189989805)
    """
    _require_nir()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {_describe(model)}")
    dt = _check_dt(dt)
    check_bool("lossy", lossy)
    input_shape = _check_input_shape(input_shape)
    _targets.warn_dt(target, dt, stacklevel=3)
    ex = _Exporter(dt, lossy, target)
    if isinstance(model, NIRGraphModule):
        graph = _export_graph_module(ex, model, input_shape)
    else:
        graph = _export_chain(ex, model, input_shape)
    if target in _hw_targets.HW_IMPORT_DT:
        return _hw_targets.finish(graph, target, dt, ex.hw_nodes)
    _targets.check_target(graph, target, dt)
    return graph


def _export_chain(ex, model, input_shape):
    nirm = _require_nir()
    leaves = ex.leaves(model, "")
    shape = input_shape if input_shape is not None else _first_shape(leaves)
    in_shape = shape
    prev = "input"
    chain_edges = []
    for name, m in leaves:
        entry, exit_, shape = ex.convert(name, m, shape)
        if entry is None:
            continue
        chain_edges.append((prev, entry))
        prev = exit_
    if prev == "input":
        raise NIRConversionError("model: nothing to export (no layer or neuron found)")
    if in_shape is None:  # e.g. a NIRGraphModule whose first node is an Affine
        in_shape = _node_input_shape(ex.nodes[chain_edges[0][1]])
    if in_shape is None:
        raise NIRConversionError("input_shape: could not infer the input shape; pass input_shape=(features...)")
    nodes = OrderedDict([("input", nirm.Input(input_type={"input": np.array(in_shape)}))])
    nodes.update(ex.nodes)
    nodes["output"] = nirm.Output(output_type={"output": np.array(shape)})
    edges = chain_edges + ex.edges + [(prev, "output")]
    return nirm.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": ex.dt}}, type_check=True)


def _export_graph_module(ex, model, input_shape):
    """A top-level :class:`NIRGraphModule` (any number of inputs and outputs, cycles allowed)."""
    nirm = _require_nir()
    shapes: Dict[str, Shape] = {i: input_shape for i in model.inputs}
    entry_of, exit_of = _convert_nodes(
        ex, model, shapes, "", lambda n: f"model: graph node {n!r} ({type(model.module(n)).__name__}) exports to "
                                         "nothing; remove it from the graph")
    nodes = OrderedDict()
    for i in model.inputs:
        shape = input_shape
        if shape is None:
            firsts = [_node_input_shape(ex.nodes.get(entry_of.get(b))) for a, b in model.edges if a == i]
            shape = next((s for s in firsts if s is not None), None)
        if shape is None:
            raise NIRConversionError(f"input_shape: could not infer the shape of graph input {i!r}; "
                                     "pass input_shape=(features...)")
        nodes[i] = nirm.Input(input_type={"input": np.array(shape)})
    nodes.update(ex.nodes)
    edges = list(ex.edges)
    for a, b in model.edges:
        edges.append((a if a in model.inputs else exit_of[a], b if b in model.outputs else entry_of[b]))
    for o in model.outputs:
        pred = [a for a, b in model.edges if b == o][0]
        nodes[o] = nirm.Output(output_type={"output": np.array(shapes[pred])})
    return nirm.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": ex.dt}}, type_check=True)
