"""``to_nir(target="hxtorch" | "lava-dl")``: graphs in the form the two hardware stacks write and
read them (the ``"hxtorch"`` / ``"lava-dl"`` conventions of :func:`from_nir`, :mod:`._hardware`),
checked against what their NIR importers require, as read from their source:

**hxtorch** ``hxtorch.spiking.utils.from_nir`` (electronicvisions/hxtorch commit 1033578,
``src/pyhxtorch/hxtorch/spiking/utils/from_nir.py``): ``_map_nir_to_hxtorch`` maps ``Input``,
``Linear``, ``CubaLI`` and ``CubaLIF`` only (``NotImplementedError`` otherwise: no ``Affine``,
no ``Delay``); parameters homogeneous per layer (``ValueError``); time constants read in ms
(``x 1e-3``); ``membrane_capacitance = tau_mem / r``; ``w_in`` not read; every ``CubaLIF``
becomes an hxtorch ``LIF`` with its default ``refractory_time = 1e-6`` s, an ``LI`` keeps its
default capacitance ``10e-6``; one ``Input`` and one ``Output``; ``forward`` walks
``graph.edges`` in their order, each node fed the output of its predecessor (no sums), so the
graph must be a chain with its edges in chain order, alternating ``Linear`` and neurons (hxtorch
``Synapse`` and neuron modules take each other's handles); ``dt`` from ``ConversionConfig``
(1e-6 s). hxtorch's ``CubaLIF`` *is* the one-step synaptic delay (its step uses the previous
current): the graph carries it as hxtorch does, in the node's reading, not as a ``Delay`` node
hxtorch cannot run; the graph's ``metadata["spikefuse"]["convention"] = "hxtorch"`` says so, and
:func:`from_nir` reads such a graph with that convention. Only spikefuse's hxtorch modules that
are this neuron export: ``CubaRefractoryLIF`` with ``refractory_time = 1e-6`` s and
:class:`~._hardware.HxtorchLI` with ``tau_mem = 10e-6`` s; the plain ``CubaLIF`` and
``EventPropLIF`` (no refractory step) are refused with the reason.

**lava-dl**: no lava-dl release imports NIR (main at d825ac5 has no NIR code); the converter on
the unmerged branch (lava-nc/lava-dl commit 87e6dfb, ``src/lava/lib/dl/netx/nir_lava.py``) writes
netx layers as ``Linear``/``Affine`` (HDF5 weight mantissas) + ``CubaLIF(tau_syn = 1/iDecay,
tau_mem = 1/vDecay, r = 1, v_leak = 0, v_threshold = vThMant, w_in = tau_syn)``, and its
``nir_to_lavadl_net`` requires an acyclic chain (no splits, no joins) from one ``Input``, with
``Input``, ``Flatten``, ``Conv2d``, ``Linear``/``Affine`` (2-d weight) nodes, each
``Linear``/``Affine``/``Conv2d`` followed by a ``CubaLIF``. The export writes that form for
``Dense -> loihi.cuba.Neuron`` chains (Loihi fixed point: weights x ``w_scale = 64`` must be
integer mantissas, ``vThMant`` the threshold mantissa, the decays the integer ``iDecay``/``vDecay``
in units of 1/4096), which :func:`from_nir` reads back as the same Loihi network, and warns that
lava-dl's importer does not run it with these numbers (written for nir 0.x: ``Input.shape``,
integer node keys, no ``Output`` node; it copies no weights into its blocks; it reads ``1/tau`` and ``v_threshold``
as slayer's float decay and threshold).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Dict, Optional

import numpy as np
import torch

from ._common import NIRConversionError, _require_nir

__all__ = ["HW_IMPORT_DT", "override", "finish"]

#: the dt of each hardware importer: hxtorch's ``ConversionConfig.dt`` (s); lava-dl: one Loihi step
HW_IMPORT_DT = {"hxtorch": 1e-6, "lava-dl": 1.0}
_DT_FIX = {"hxtorch": "import it with hxtorch's from_nir(graph, ConversionConfig(dt={dt!r}))",
           "lava-dl": "lava-dl takes no dt (it counts Loihi steps): export with to_nir(model, dt=1.0), or read it "
                      "back with from_nir(graph, convention='lava-dl', dt={dt!r})"}
_HX_SRC = "hxtorch's from_nir (hxtorch commit 1033578)"
_LAVA_SRC = "lava-dl's nir_to_lavadl_net (lava-dl commit 87e6dfb)"
#: the weight / threshold mantissa scale that the lava-dl convention reads (netx HDF5, slayer's 1 << 6)
LAVA_W_SCALE = 64


def dt_hint(target, dt) -> str:
    """What to do when the export ``dt`` is not the one ``target``'s importer assumes."""
    return _DT_FIX[target].format(dt=dt)


def _refuse(name, target, why):
    raise NIRConversionError(f"target={target!r}: model[{name!r}] cannot run in {target} with the same numbers: {why}")


def _one(value, name, target, what) -> float:
    """The single value of a module parameter (both importers need homogeneous layers)."""
    if isinstance(value, torch.Tensor):
        u = torch.unique(value.detach().double().cpu())
        if u.numel() != 1:
            _refuse(name, target, f"{what} must be the same for every neuron of a layer, got {u.numel()} values")
        return float(u[0])
    return float(value)


def _ms(tau_s: float) -> float:
    """``tau`` in ms, chosen so that the importer's ``ms * 1e-3`` gives ``tau_s`` back exactly."""
    ms = tau_s * 1e3
    for cand in (ms, np.nextafter(ms, np.inf), np.nextafter(ms, -np.inf)):
        if float(cand) * 1e-3 == tau_s:
            return float(cand)
    return ms


def _full(v, shape):
    return np.full(tuple(shape), v, dtype=np.float64)


def _same_dt(ex, name, m_dt, target):
    if not math.isclose(float(m_dt), ex.dt, rel_tol=1e-9):
        _refuse(name, target, f"the module integrates with dt={float(m_dt):g} but to_nir was given dt={ex.dt:g}")


# ------------------------------------------------------------------------------ hxtorch
def _hx_lif(ex, name, m, shape):
    """``CubaRefractoryLIF(refractory_time = 1e-6)``: hxtorch's ``LIF`` as its to_nir writes it."""
    from ._hardware import HXTORCH_REFRACTORY_TIME

    shape = ex.need_shape(name, m, shape)
    _same_dt(ex, name, m.dt, "hxtorch")
    rt = _one(m.refractory_time, name, "hxtorch", "refractory_time")
    if not math.isclose(rt, HXTORCH_REFRACTORY_TIME, rel_tol=1e-9):
        _refuse(name, "hxtorch", f"refractory_time must be {HXTORCH_REFRACTORY_TIME:g} s: {_HX_SRC} builds every "
                f"CubaLIF with the LIF default refractory_time (NIR has no refractory time), got {rt:g}")
    p = {k: _one(getattr(m, k), name, "hxtorch", k) for k in ("leak", "reset", "threshold", "tau_syn", "tau_mem")}
    node = _require_nir().CubaLIF(
        tau_mem=_full(_ms(p["tau_mem"]), shape), tau_syn=_full(_ms(p["tau_syn"]), shape), r=_full(1.0, shape),
        v_leak=_full(p["leak"], shape), v_reset=_full(p["reset"], shape), v_threshold=_full(p["threshold"], shape))
    ex.hw_nodes.add(ex.add(name, node))
    return name, name, shape


def _hx_li(ex, name, m, shape):
    """:class:`HxtorchLI` with ``tau_mem = 10e-6``: hxtorch's ``LI`` as its to_nir writes it."""
    from ._hardware import HXTORCH_LI_CAPACITANCE

    shape = ex.need_shape(name, m, shape)
    _same_dt(ex, name, m.dt, "hxtorch")
    p = {k: _one(getattr(m.params, k), name, "hxtorch", k) for k in ("leak", "tau_syn", "tau_mem")}
    if not math.isclose(p["tau_mem"], HXTORCH_LI_CAPACITANCE, rel_tol=1e-7):
        _refuse(name, "hxtorch", f"tau_mem must be {HXTORCH_LI_CAPACITANCE:g} s: {_HX_SRC} leaves the LI's "
                f"membrane_capacitance at {HXTORCH_LI_CAPACITANCE:g} and its to_nir writes r = 1, so the current "
                f"enters with gain tau_mem / {HXTORCH_LI_CAPACITANCE:g} (an hxtorch bug), got {p['tau_mem']:g}")
    node = _require_nir().CubaLI(tau_mem=_full(_ms(p["tau_mem"]), shape), tau_syn=_full(_ms(p["tau_syn"]), shape),
                                 r=_full(1.0, shape), v_leak=_full(p["leak"], shape))
    ex.hw_nodes.add(ex.add(name, node))
    return name, name, shape


def _hx_no_refractory(ex, name, m, shape):
    _refuse(name, "hxtorch", f"{_HX_SRC} builds every CubaLIF as an hxtorch LIF with refractory_time = 1e-6 s "
            f"(no spike in the step after a spike), which {type(m).__name__} does not have; export a "
            "CubaRefractoryLIF(refractory_time=1e-6) to run in hxtorch")


# ------------------------------------------------------------------------------ lava-dl
def _lava_cuba(ex, name, m, shape):
    """Loihi CUBA neuron as netx's NIR converter writes it: integer decays and threshold mantissa."""
    shape = ex.need_shape(name, m, shape)
    if getattr(m, "norm", None) is not None or getattr(m, "graded_spike", False):
        _refuse(name, "lava-dl", "norm and graded_spike are not read by the netx NIR converter")
    if int(m.w_scale) != LAVA_W_SCALE or int(m.p_scale) != 4096:
        _refuse(name, "lava-dl", f"w_scale must be {LAVA_W_SCALE} and p_scale 4096 (the netx HDF5 mantissa "
                f"scales), got {int(m.w_scale)}, {int(m.p_scale)}")
    if not m.shared_param and m.shape is None:
        _refuse(name, "lava-dl", "per-channel decays are sampled at the first forward; run one forward first")
    dec = {k: _one(torch.round(getattr(m, k).detach()), name, "lava-dl", k) for k in ("current_decay", "voltage_decay")}
    if min(dec.values()) <= 0:
        _refuse(name, "lava-dl", "a decay of 0 is written by netx as tau = inf, which no importer runs as Loihi does")
    tau_syn = ex.dt / dec["current_decay"]
    node = _require_nir().CubaLIF(
        tau_syn=_full(tau_syn, shape), tau_mem=_full(ex.dt / dec["voltage_decay"], shape), r=_full(1.0, shape),
        v_leak=_full(0.0, shape), v_threshold=_full(float(m.v_th_mant), shape), v_reset=_full(0.0, shape),
        w_in=_full(tau_syn, shape))
    ex.hw_nodes.add(ex.add(name, node))
    return name, name, shape


def _overrides() -> Dict[str, Dict[type, Callable]]:
    from ...neuron.cuba import CubaLIF, CubaRefractoryLIF
    from ...neuron.eventprop import EventPropLIF
    from ...neuron.loihi import cuba as loihi_cuba
    from ._hardware import HxtorchLI

    return {"hxtorch": {CubaRefractoryLIF: _hx_lif, HxtorchLI: _hx_li, CubaLIF: _hx_no_refractory,
                        EventPropLIF: _hx_no_refractory},
            "lava-dl": {loihi_cuba.Neuron: _lava_cuba}}


def override(target, cls) -> Optional[Callable]:
    """The converter that ``target`` uses for ``cls`` instead of the NIR one, or None."""
    if target not in HW_IMPORT_DT:
        return None
    table = _overrides()[target]
    return next((table[c] for c in cls.__mro__ if c in table), None)


# ------------------------------------------------------------------------------ graph checks
def _fail(target, name, node, why):
    raise NIRConversionError(f"target={target!r}: graph node {name!r} (nir.{type(node).__name__}) cannot run in "
                             f"{target} with the same numbers: {why}")


def _chain(graph, target, src):
    """The node names from the one ``Input`` to the end of the chain (``src`` requires a chain)."""
    n = _require_nir()
    ins = [k for k, v in graph.nodes.items() if isinstance(v, n.Input)]
    if len(ins) != 1:
        raise NIRConversionError(f"target={target!r}: {src} needs exactly one nir.Input, the graph has {len(ins)}")
    succ, pred = {}, {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    bad = next((k for k in graph.nodes if len(succ.get(k, [])) > 1 or len(pred.get(k, [])) > 1), None)
    if bad is not None:
        raise NIRConversionError(f"target={target!r}: graph node {bad!r} has several inputs or outputs; {src} "
                                 "runs a chain only (no splits, joins or cycles)")
    order = ins
    while succ.get(order[-1]) and succ[order[-1]][0] not in order:
        order.append(succ[order[-1]][0])
    if len(order) != len(graph.nodes):
        raise NIRConversionError(f"target={target!r}: the graph is not one chain from its input; {src} runs a "
                                 "chain only (no splits, joins or cycles)")
    return order


def _hx_node(n, name, node, hw_nodes):
    """One node of an hxtorch graph: ``("syn" | "neuron", node as hxtorch's to_nir writes it)``."""
    if isinstance(node, (n.Linear, n.Affine)):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            _fail("hxtorch", name, node, f"the weight must be 2-d (out, in), got shape {w.shape}")
        if isinstance(node, n.Affine) and np.any(np.asarray(node.bias) != 0):
            _fail("hxtorch", name, node, f"a bias: {_HX_SRC} maps Linear only (its Synapse has no bias)")
        return "syn", n.Linear(weight=w)
    if isinstance(node, (n.CubaLIF, n.CubaLI)) and name in hw_nodes:
        return "neuron", node
    if isinstance(node, n.Delay):
        why = "hxtorch has no Delay node (its CubaLIF carries the one-step synaptic delay itself)"
    elif isinstance(node, (n.CubaLIF, n.CubaLI)):
        why = ("this is NIR's same-step CUBA node in seconds; hxtorch reads ms and feeds the voltage the previous "
               "step's current: only spikefuse's CubaRefractoryLIF and HxtorchLI export to hxtorch")
    else:
        why = f"{_HX_SRC} maps Input, Linear, CubaLI and CubaLIF only (NotImplementedError otherwise)"
    _fail("hxtorch", name, node, why)


def _fold_scales(n, graph, order, hw_nodes):
    """A uniform ``Scale(s)`` in front of an hxtorch ``CubaLIF`` is its ``r = tau_mem / c_mem = s``
    (the current gain, how ``from_nir(convention="hxtorch")`` reads ``r != 1``): folded into ``r``."""
    out = []
    for i, k in enumerate(order):
        node, nxt = graph.nodes[k], graph.nodes.get(order[i + 1]) if i + 1 < len(order) else None
        s = np.unique(np.asarray(getattr(node, "scale", 0.0), dtype=np.float64))
        if (isinstance(node, n.Scale) and isinstance(nxt, n.CubaLIF) and order[i + 1] in hw_nodes
                and s.size == 1 and s[0] > 0):
            nxt.r = np.full_like(np.asarray(nxt.r, dtype=np.float64), s[0])
            continue
        out.append(k)
    return out


def _finish_hxtorch(graph, hw_nodes):
    n = _require_nir()
    order = _chain(graph, "hxtorch", _HX_SRC)
    if not isinstance(graph.nodes[order[-1]], n.Output):
        raise NIRConversionError(f"target='hxtorch': {_HX_SRC} needs the chain to end in a nir.Output")
    order = _fold_scales(n, graph, order, hw_nodes)
    nodes, kinds = {order[0]: graph.nodes[order[0]]}, []
    for k in order[1:-1]:
        kind, nodes[k] = _hx_node(n, k, graph.nodes[k], hw_nodes)
        if kinds and kinds[-1] == kind or not kinds and kind != "syn":
            _fail("hxtorch", k, graph.nodes[k], "hxtorch's modules alternate Synapse (Linear) and neuron (CubaLIF, "
                  "CubaLI), starting with a Synapse after the Input")
        kinds.append(kind)
    if kinds[-1:] != ["neuron"]:
        raise NIRConversionError("target='hxtorch': the chain must end with a neuron (CubaLIF or CubaLI) before "
                                 "its output, as hxtorch's modules do")
    nodes[order[-1]] = graph.nodes[order[-1]]
    return nodes, list(zip(order[:-1], order[1:]))


def _mantissa(target, name, node, key, values):
    m = np.asarray(values, dtype=np.float64) * LAVA_W_SCALE
    if not np.array_equal(m, np.rint(m)):
        _fail(target, name, node, f"{key} x {LAVA_W_SCALE} must be integers (the Loihi mantissas netx writes); "
              "quantise the weights first (e.g. weight_hook='8bit')")
    return np.rint(m)


def _finish_lava(graph, hw_nodes):
    n = _require_nir()
    order = _chain(graph, "lava-dl", _LAVA_SRC)
    nodes, prev = {order[0]: graph.nodes[order[0]]}, order[0]
    for k in order[1:]:
        node = graph.nodes[k]
        if isinstance(node, n.Output):  # nir >= 1.0 adds one to every graph; netx (nir 0.x) wrote none
            nodes[k] = node
            continue
        if isinstance(node, (n.Linear, n.Affine)):
            w = _mantissa("lava-dl", k, node, "weight", node.weight)
            if w.ndim != 2:
                _fail("lava-dl", k, node, f"the weight must be 2-d (out, in), got shape {w.shape}")
            nodes[k] = (n.Affine(weight=w, bias=_mantissa("lava-dl", k, node, "bias", node.bias))
                        if isinstance(node, n.Affine) else n.Linear(weight=w))
        elif isinstance(node, n.CubaLIF) and k in hw_nodes:
            if not isinstance(graph.nodes[prev], (n.Linear, n.Affine)):
                _fail("lava-dl", k, node, f"{_LAVA_SRC} reads a CubaLIF only after its Linear/Affine (a netx layer)")
            nodes[k] = node
        elif isinstance(node, n.Flatten):
            nodes[k] = node
        else:
            _fail("lava-dl", k, node, "the export writes netx dense CUBA layers (Linear/Affine -> CubaLIF of a "
                  "spikefuse loihi.cuba.Neuron) and Flatten only" + (", not NIR's float CubaLIF" if isinstance(
                      node, n.CubaLIF) else ""))
        if isinstance(node, (n.Linear, n.Affine)) and (k == order[-1] or not isinstance(
                graph.nodes[order[order.index(k) + 1]], n.CubaLIF)):
            _fail("lava-dl", k, node, f"{_LAVA_SRC} needs every Linear/Affine followed by a CubaLIF")
        prev = k
    return nodes, list(zip(order[:-1], order[1:]))


def finish(graph, target, dt, hw_nodes):
    """The graph of a hardware ``target``: rewritten into its form, checked against its
    importer's requirements (:class:`NIRConversionError` naming node and rule)."""
    n = _require_nir()
    nodes, edges = (_finish_hxtorch if target == "hxtorch" else _finish_lava)(graph, hw_nodes)
    if target == "lava-dl":
        warnings.warn("to_nir(target='lava-dl'): the graph is in the form lava-dl's netx NIR converter writes "
                      "(integer decays and mantissas), which from_nir(graph, convention='lava-dl') runs as the Loihi "
                      f"network; no lava-dl release imports NIR, and {_LAVA_SRC}, on an unmerged branch, does not run "
                      "it with these numbers (written for nir 0.x: Input.shape, integer node keys, no Output node; copies no weights into its blocks; reads 1/tau and "
                      "v_threshold as slayer's float decay and threshold)", UserWarning, stacklevel=3)
    return n.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": dt, "convention": target}},
                      type_check=True)
