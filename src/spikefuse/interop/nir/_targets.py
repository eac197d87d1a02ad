"""``to_nir(target=peer)``: what each peer's NIR importer accepts and assumes.

A peer imports a graph with the same numbers only at the ``dt`` its importer assumes
(:data:`PEER_IMPORT_DT`; warned) and only for the nodes and parameter relations it maps without
changing the model (:data:`RULES`; a graph that breaks them raises :class:`NIRConversionError`
naming the node and the peer's rule, instead of a peer-side assertion or, worse, other numbers).
The rules are read from the peers' importers (snnTorch 1.0 ``import_nir.py``, SpikingJelly 2.0
``nir_exchange/from_nir.py``, norse 1.1 ``utils/import_nir.py``, sinabs 3.1 ``nir.py``); docs/nir.md
has the matrix they give. The hardware targets (``"hxtorch"``, ``"lava-dl"``), whose graphs are
written in the system's own form, are :mod:`._hw_targets`.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Dict, Optional

import numpy as np

from ..._validate import _describe
from ._common import NIRConversionError, _require_nir
from ._hw_targets import HW_IMPORT_DT, dt_hint

__all__ = ["PEER_IMPORT_DT", "check_target"]

#: the dt (s) that each peer's NIR importer assumes: snnTorch fixes it (``import_from_nir(graph)``
#: has no dt), SpikingJelly and norse take ``dt=`` (defaults 1e-4, 1e-3); sinabs counts in steps
PEER_IMPORT_DT = {"snntorch": 1e-4, "spikingjelly": 1e-4, "norse": 1e-3, "sinabs": 1.0}
_DT_ARG = {"snntorch": None, "spikingjelly": "import_from_nir(graph, dt={dt!r})",
           "norse": "from_nir(graph, dt={dt!r})", "sinabs": None}


def _a(node, k) -> np.ndarray:
    return np.asarray(getattr(node, k), dtype=np.float64)


def _uniform(node, *keys) -> Optional[str]:
    bad = [k for k in keys if np.unique(_a(node, k)).size != 1]
    return f"{', '.join(bad)} must be the same for all neurons" if bad else None


def _first(*msgs) -> Optional[str]:
    return next((m for m in msgs if m), None)


# --------------------------------------------------------------------------- the peers' rules
def _snn_lif(node, dt):
    return _first(None if np.allclose(_a(node, "v_leak"), 0) else "v_leak must be 0",
                  None if np.allclose(_a(node, "v_reset"), 0) else "v_reset must be 0 (it resets to zero)",
                  _uniform(node, "v_threshold"),
                  None if np.unique(_a(node, "r") * dt / _a(node, "tau")).size == 1 else
                  "r dt / tau (folded into its threshold) must be the same for all neurons")


def _snn_cuba(node, dt):
    return _first(None if np.allclose(_a(node, "v_leak"), 0) else "v_leak must be 0",
                  None if np.allclose(_a(node, "v_reset"), 0) else "v_reset must be 0 (it resets to zero)",
                  None if np.allclose(_a(node, "r"), _a(node, "tau_mem") / dt) else "r must equal tau_mem / dt",
                  None if np.unique(_a(node, "v_threshold") / (_a(node, "w_in") * dt / _a(node, "tau_syn"))).size == 1
                  else "v_threshold / (w_in dt / tau_syn) must be the same for all neurons")


def _snn_if(node, dt):
    return "its importer runs nir.IF as a Leaky with beta = 0.9 (a leak that IF neurons do not have)"


def _sj_lif(node, dt):
    u = _uniform(node, "tau", "r", "v_leak", "v_reset", "v_threshold")
    if u:
        return u
    tau, r = float(_a(node, "tau").flat[0]) / dt, float(_a(node, "r").flat[0])
    return _first(None if tau > 1 else "tau / dt must be > 1",
                  None if math.isclose(r, 1.0, rel_tol=1e-6) or math.isclose(r, tau, rel_tol=1e-6)
                  else "r must be 1 or tau / dt",
                  None if np.allclose(_a(node, "v_leak"), _a(node, "v_reset")) else "v_leak must equal v_reset")


def _sj_if(node, dt):
    return _first(_uniform(node, "r", "v_threshold", "v_reset"),
                  None if np.allclose(_a(node, "r") * dt, 1.0) else "r must equal 1 / dt")


def _sj_cuba(node, dt):
    return _first(_uniform(node, "tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_reset", "v_threshold"),
                  None if np.allclose(_a(node, "r"), _a(node, "tau_mem") / dt) else "r must equal tau_mem / dt",
                  None if np.allclose(_a(node, "w_in"), _a(node, "tau_syn") / dt) else "w_in must equal tau_syn / dt",
                  None if np.allclose(_a(node, "v_leak"), 0) else "v_leak must be 0")


def _norse_lif(node, dt):
    return _first(None if np.allclose(_a(node, "r"), 1) else "r must be 1 (its importer ignores r)",
                  None if np.allclose(_a(node, "v_reset"), 0) else "v_reset must be 0 (its importer resets to 0)")


def _norse_if(node, dt):
    return _first(None if np.allclose(_a(node, "r") * dt, 1) else "r must be 1 / dt (its IAF adds the input "
                  "unscaled)", None if np.allclose(_a(node, "v_reset"), 0) else "v_reset must be 0")


def _norse_cuba(node, dt):
    return _first(None if np.allclose(_a(node, "v_leak"), 0) else
                  "v_leak must be 0 (its importer leaks the synaptic current towards v_leak too)",
                  None if np.allclose(_a(node, "v_reset"), 0) else "v_reset must be 0")


def _sinabs_neuron(node, dt):
    return "its importer runs LIF / IF nodes with multiple spikes per step and a subtractive reset"


def _ok(node, dt):
    return None


def _rules() -> Dict[str, Dict[type, Callable]]:
    n = _require_nir()
    syn = {n.Affine: _ok, n.Linear: _ok, n.Flatten: _ok}
    return {
        "snntorch": {**syn, n.Conv2d: _ok, n.AvgPool2d: _ok, n.LIF: _snn_lif, n.CubaLIF: _snn_cuba, n.IF: _snn_if},
        "spikingjelly": {**syn, n.Conv1d: _ok, n.Conv2d: _ok, n.AvgPool2d: _ok, n.LIF: _sj_lif, n.IF: _sj_if,
                         n.CubaLIF: _sj_cuba},
        "norse": {**syn, n.Conv2d: _ok, n.SumPool2d: _ok, n.LIF: _norse_lif, n.IF: _norse_if, n.CubaLIF: _norse_cuba,
                  n.LI: lambda node, dt: None if np.allclose(_a(node, "r"), 1) else "r must be 1"},
        "sinabs": {**syn, n.Conv1d: _ok, n.Conv2d: _ok, n.SumPool2d: _ok, n.LIF: _sinabs_neuron, n.IF: _sinabs_neuron},
    }


def _check_name(target) -> None:
    if not isinstance(target, str):
        raise TypeError(f"target: expected None or a peer name (str), got {_describe(target)}")
    if target not in PEER_IMPORT_DT and target not in HW_IMPORT_DT:
        raise ValueError(f"target: expected None or one of {sorted(PEER_IMPORT_DT)} (software peers) or "
                         f"{sorted(HW_IMPORT_DT)} (hardware systems), got {target!r}; a system without a NIR "
                         "importer has no target (docs/nir.md, Export targets)")


def warn_dt(target, dt, stacklevel) -> None:
    """Warn when ``dt`` is not the one ``target``'s importer assumes (checks ``target``)."""
    if target is None:
        return
    _check_name(target)
    peer_dt = PEER_IMPORT_DT.get(target, HW_IMPORT_DT.get(target))
    if math.isclose(dt, peer_dt, rel_tol=1e-9):
        return
    how = _DT_ARG.get(target)
    if target in HW_IMPORT_DT:
        fix = dt_hint(target, dt)
    elif how:
        fix = f"import it with {how.format(dt=dt)}"
    else:
        fix = (
           f"its import_from_nir takes no dt argument: export with to_nir(model, dt={peer_dt!r}) instead of "
           f"to_nir(model, dt={dt!r})")
    warnings.warn(f"to_nir: the graph is written for dt={dt:g} s, but {target}'s NIR importer assumes dt={peer_dt:g} "
                  f"{'steps' if target in ('sinabs', 'lava-dl') else 's'}: {fix}; at its default its neurons run with time constants "
                  f"of {dt / peer_dt:g}x the exported number of steps", UserWarning, stacklevel=stacklevel)


def check_target(graph, target, dt) -> None:
    """Raise :class:`NIRConversionError` for the first node ``target``'s importer cannot run with
    the graph's numbers (a node type it lacks, or a parameter relation it requires)."""
    if target is None:
        return
    rules = _rules()[target]
    n = _require_nir()
    for name, node in graph.nodes.items():
        if isinstance(node, (n.Input, n.Output)):
            continue
        rule = next((fn for t, fn in rules.items() if isinstance(node, t)), None)
        if rule is None:
            why = ("it has no Delay node, which carries hxtorch's one-step synaptic delay"
                   if isinstance(node, n.Delay) else f"its importer has no nir.{type(node).__name__}")
            raise NIRConversionError(f"target={target!r}: graph node {name!r} cannot run in {target}: {why}")
        why = rule(node, dt)
        if why:
            raise NIRConversionError(f"target={target!r}: graph node {name!r} (nir.{type(node).__name__}) cannot run "
                                     f"in {target} with the same numbers: {why}")
