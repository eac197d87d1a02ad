"""Import: :class:`nir.NIRGraph` -> a spikefuse module (:func:`from_nir`): the graph-level steps
(node groups merged back into one module, nested graphs inlined, chain or graph module). One
node -> one module is ``_importer.py`` (``_Importer``) through the table of ``_import_nodes.py``
(:data:`IMPORTERS`, the single-node builders); ``_import_util.py`` has the array helpers."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional

from torch import nn

from ... import surrogate as _surrogate
from ..._validate import _describe, check_bool
from ...surrogate import Surrogate
from . import _import_nodes, conventions as _conventions
from ._common import NIRConversionError, _check_dt, _nir, _require_nir
from .graph import NIRGraphModule, _safe_name, _schedule
from ._import_nodes import IMPORTERS, Importer, _build_cuba, importer_for  # noqa: F401 - the table, re-exported
from ._import_util import _meta
from ._importer import _Importer

__all__ = ["from_nir"]


def _groups(nodes, edges, use_metadata):
    """Node groups written by to_nir for one spikefuse module: ``(members, entry, exit, kind)``
    for an hxtorch CubaLIF (Delay -> CubaLIF), an EventPropLIF (Linear -> Delay -> CubaLIF; files
    of the first format: Linear -> CubaLIF) and a RecurrentLIF (Affine -> LIF <-> Linear)."""
    if not use_metadata:
        return []
    succ: Dict[str, List[str]] = {}
    pred: Dict[str, List[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    kind = {n: _meta(v).get("module") for n, v in nodes.items()}

    def only_pred(n, k, t):
        """The single predecessor of ``n`` if it was written as part ``k`` (type ``t``) feeding only ``n``."""
        p = pred.get(n, [])
        ok = len(p) == 1 and kind.get(p[0]) == k and isinstance(nodes.get(p[0]), t) and succ.get(p[0]) == [n]
        return p[0] if ok else None

    out = []
    for n, node in nodes.items():
        if kind[n] in ("CubaLIF", "EventPropLIF") and isinstance(node, _nir.CubaLIF):
            d = only_pred(n, f"{kind[n]}.delay", _nir.Delay)
            if d is None and "synaptic_delay" in _meta(node):
                continue  # written with its Delay node, which is gone: plain NIR semantics
            syn = only_pred(d if d is not None else n, "EventPropLIF.synapse", _nir.Linear)
            members = [m for m in (syn, d) if m is not None] + [n]
            if kind[n] == "EventPropLIF" and syn is not None:
                out.append((members, syn, n, "EventPropLIF"))
            elif kind[n] == "CubaLIF" and d is not None:
                out.append((members, d, n, "CubaLIF"))
        elif kind[n] == "RecurrentLIF" and isinstance(node, _nir.LIF):
            p = pred.get(n, [])
            ins = [a for a in p if kind.get(a) == "RecurrentLIF.input" and isinstance(nodes[a], (_nir.Affine, _nir.Linear))]
            recs = [a for a in p if kind.get(a) == "RecurrentLIF.recurrent" and isinstance(nodes[a], _nir.Linear)]
            if (len(p) == 2 and len(ins) == 1 and len(recs) == 1 and succ.get(ins[0]) == [n]
                    and succ.get(recs[0]) == [n] and pred.get(recs[0]) == [n]):
                out.append(([ins[0], n, recs[0]], ins[0], n, "RecurrentLIF"))
        elif kind[n] == "NorseLIFRecurrent" and isinstance(node, _nir.CubaLIF):
            p = pred.get(n, [])
            ins = [a for a in p if kind.get(a) == "NorseLIFRecurrent.input" and isinstance(nodes[a], _nir.Linear)]
            recs = [a for a in p if kind.get(a) == "NorseLIFRecurrent.recurrent" and isinstance(nodes[a], _nir.Linear)]
            if (len(p) == 2 and len(ins) == 1 and len(recs) == 1 and succ.get(ins[0]) == [n]
                    and succ.get(recs[0]) == [n] and pred.get(recs[0]) == [n]):
                out.append(([ins[0], n, recs[0]], ins[0], n, "NorseLIFRecurrent"))
    return out


def _inline_subgraphs(graph, prefix=""):
    """Flatten nested NIRGraph nodes into one (nodes, edges, inputs, outputs) description."""
    nirm = _nir
    nodes, edges = OrderedDict(), []
    inputs = [f"{prefix}{k}" for k, n in graph.nodes.items() if isinstance(n, nirm.Input)]
    outputs = [f"{prefix}{k}" for k, n in graph.nodes.items() if isinstance(n, nirm.Output)]
    sub_io = {}
    for k, n in graph.nodes.items():
        full = f"{prefix}{k}"
        if isinstance(n, (nirm.Input, nirm.Output)):
            continue
        if isinstance(n, nirm.NIRGraph):
            sn, se, si, so = _inline_subgraphs(n, prefix=f"{full}.")
            if len(si) != 1 or len(so) != 1:
                raise NIRConversionError(f"graph node {full!r}: nested NIRGraphs must have one input and one "
                                         f"output, got {len(si)} and {len(so)}")
            nodes.update(sn)
            edges += se
            sub_io[full] = (si[0], so[0])
        else:
            nodes[full] = n
    for a, b in graph.edges:
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        if a in sub_io:
            a = sub_io[a][1]
        if b in sub_io:
            b = sub_io[b][0]
        edges.append((a, b))
    # route edges through the inlined subgraphs' Input/Output placeholders
    io_names = {v for pair in sub_io.values() for v in pair}
    changed = True
    while changed:
        changed = False
        for io in io_names:
            ins = [a for a, b in edges if b == io]
            outs = [b for a, b in edges if a == io]
            if ins or outs:
                edges = [e for e in edges if io not in e] + [(a, b) for a in ins for b in outs]
                changed = True
    return nodes, edges, inputs, outputs


def _check_import_args(graph, dt, surrogate, use_metadata, convention):
    """from_nir's argument checks: ``(dt, surrogate, convention)`` normalised."""
    nirm = _require_nir()
    if not isinstance(graph, nirm.NIRGraph):
        raise TypeError(f"graph: expected a nir.NIRGraph, got {_describe(graph)}")
    check_bool("use_metadata", use_metadata)
    convention, dt = _conventions.resolve(graph, convention, dt, use_metadata)
    dt = _check_dt(dt)
    if surrogate is not None:
        if not isinstance(surrogate, (str, Surrogate)):
            raise TypeError(f"surrogate: expected None, a name or a spikefuse Surrogate, got {_describe(surrogate)}")
        surrogate = _surrogate.get(surrogate)
    return dt, surrogate, convention


def from_nir(graph, dt: Optional[float] = None, *, convention: Optional[str] = None, surrogate=None,
             use_metadata: bool = True) -> nn.Module:
    """Build a spikefuse module that runs a :class:`nir.NIRGraph` on ``(T, B, *features)``.

    Each NIR node is simulated with forward Euler at step ``dt`` (module docstring, docs/nir.md).
    A chain (one input, one output, no branches) becomes an ``nn.Sequential`` whose children
    are named after the nodes (dots replaced by ``_``); any other graph becomes a
    :class:`NIRGraphModule` (branches are summed; cycles run step by step with the feedback
    delayed by one step). Nested ``NIRGraph`` nodes are inlined.

    ``dt``: the time step in seconds; required for the ``"nir"`` and ``"spikefuse"`` readings,
    defaults to the peer's own for a peer ``convention`` (a different ``dt`` warns).
    ``convention``: how the tool that wrote the graph runs it (:mod:`.conventions`: ``"nir"``,
    ``"spikefuse"``, ``"snntorch"``, ``"spikingjelly"``, ``"norse"``, ``"sinabs"``, ``"hxtorch"``,
    ``"lava-dl"``); ``None``: ``"spikefuse"`` for a graph with spikefuse metadata (and
    ``use_metadata``), or the convention that ``to_nir(target="hxtorch" | "lava-dl")`` recorded in
    ``graph.metadata["spikefuse"]["convention"]``, else ``"nir"`` (the peers write no metadata, so
    their graphs cannot be told apart: name the convention).
    The peer families a convention builds keep their state between calls, as the peers do:
    ``spikefuse.layers.reset_states(model)`` before a new sequence.
    ``surrogate``: the surrogate gradient for every imported spiking node (a name or a
    Surrogate; default: the one recorded by :func:`to_nir`, else ATan(2.0)).
    ``use_metadata``: rebuild the original spikefuse modules (SpikingJelly ``LIF``/``IF`` with
    ``>=``, soft reset, ``detach_reset``; hxtorch ``CubaLIF``; ``LeakyIntegrator``) from the
    ``metadata["spikefuse"]`` written by :func:`to_nir`, when the NIR parameters agree with it;
    ``False`` always gives the plain NIR semantics (``NIRLIF``, ``NIRCubaLIF``, ...). The node
    groups that :func:`to_nir` writes for one ``EventPropLIF`` or ``RecurrentLIF`` are merged
    back into that module.

    Raises :class:`NIRConversionError` naming a node spikefuse cannot run (an unknown node type, a
    ``Delay`` that is not a whole number of steps), and
    ``ValueError`` for a bad ``dt`` or a ``dt`` larger than a node's time constant.

    >>> import numpy as np, nir, torch
    >>> g = nir.NIRGraph.from_list(nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32)),
    ...                            nir.LI(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2)))
    >>> m = from_nir(g, dt=1e-3)
    >>> [type(c).__name__ for c in m]
    ['Dense', 'NIRLI']
    >>> m(torch.ones(2, 1, 2))[:, 0, 0].tolist()
    [0.5, 0.75]
    """
    dt, surrogate, convention = _check_import_args(graph, dt, surrogate, use_metadata, convention)
    nodes, edges, inputs, outputs = _inline_subgraphs(graph)
    if not inputs:
        raise NIRConversionError("graph: no nir.Input node")
    if not outputs:
        raise NIRConversionError("graph: no nir.Output node")
    imp = _Importer(dt, surrogate, use_metadata, convention)
    names = list(nodes)
    groups = [] if surrogate is not None else _groups(nodes, edges, imp.use_metadata)
    mods, edges = _merge_groups(imp, groups, nodes, edges, names, inputs + outputs)
    order, back = _schedule(inputs, names, edges)
    for n in names:
        if n not in mods:
            # in a graph with cycles (run step by step) every stateful node is a NIR* module,
            # which takes its state explicitly
            mods[n] = imp.build(n, nodes[n], recurrent=bool(back))
    mods = OrderedDict((n, mods[n]) for n in names)
    chain = _as_chain(order, edges, inputs, outputs)
    if chain is not None and not back:
        seq = OrderedDict()
        for i, n in enumerate(chain):
            k = _safe_name(n, i)
            while k in seq:
                k += "_"
            seq[k] = mods[n]
        return nn.Sequential(seq)
    return NIRGraphModule(mods, edges, inputs, outputs)


def _merge_groups(imp, groups, nodes, edges, names, io):
    """Rebuild each node group that to_nir wrote for one spikefuse module as that module:
    returns ``(modules by node name, edges)`` and renames the group in ``names`` (in place)."""
    mods = OrderedDict()
    for members, entry, exit_, kind in groups:
        m = _GROUP_BUILDERS[kind](imp, [nodes[k] for k in members])
        if m is None:
            continue
        prefix = {k.rsplit(".", 1)[0] for k in members}
        new = prefix.pop() if len(prefix) == 1 and "." in entry else entry
        if new != entry and ((new in nodes and new not in members) or new in io):
            new = entry
        mods[new] = m
        edges = [(new if x == exit_ else x, new if y == entry else y)
                 for (x, y) in edges if not (x in members and y in members)]
        names[names.index(entry)] = new
        for k in members:
            if k != entry:
                names.remove(k)
    return mods, edges


def _hxtorch_cuba(imp, group):
    """``Delay(dt) -> CubaLIF`` written for one hxtorch CubaLIF: that module, or None."""
    delay, node = group
    if not imp._one_step(delay) or not imp._cuba_exact(node) or imp.surrogate is not None:
        return None
    from ...neuron.cuba import CubaLIF
    meta = {k: v for k, v in _meta(node).items() if k not in ("gradient", "current_index")}
    return _build_cuba(CubaLIF, node, imp.dt, meta)


def _eventprop(imp, group):
    if len(group) == 3 and not imp._one_step(group[1]):
        return None
    return imp.eventprop(group[0], group[-1])


#: group kind (see :func:`_groups`) -> fn(importer, member nodes) -> the spikefuse module or None
_GROUP_BUILDERS = {"EventPropLIF": _eventprop, "CubaLIF": _hxtorch_cuba,
                   "RecurrentLIF": lambda imp, group: imp.recurrent_lif(*group),
                   "NorseLIFRecurrent": _import_nodes.norse_lif_recurrent}


def _as_chain(order, edges, inputs, outputs):
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    succ: Dict[str, List[str]] = {}
    pred: Dict[str, List[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    chain, cur, seen = [], inputs[0], set()
    while cur != outputs[0]:
        nxt = succ.get(cur, [])
        if len(nxt) != 1 or cur in seen:
            return None
        seen.add(cur)
        cur = nxt[0]
        if len(pred.get(cur, [])) != 1:
            return None
        if cur != outputs[0]:
            chain.append(cur)
    if len(chain) != len(order) or len(edges) != len(chain) + 1:
        return None
    return chain
