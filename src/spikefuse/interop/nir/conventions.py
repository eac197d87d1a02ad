"""How each tool writes and runs NIR graphs: the ``convention=`` of :func:`from_nir`.

NIR fixes the ODE of every node but not how a tool discretises it, nor which ``dt`` it uses; and
the exporters of the peers write some fields in their own way (docs/nir.md has the matrix and the
evidence). A convention reads a graph the way the tool that wrote it runs it:

- ``"nir"``: NIR's reference reading, forward Euler at the ``dt`` given, current first
  (CubaLIF's voltage uses the current of the same step), ``v > v_threshold``; metadata ignored.
- ``"spikefuse"``: ``"nir"`` plus the ``metadata["spikefuse"]`` that :func:`to_nir` writes, from
  which the original spikefuse modules are rebuilt (the default when a graph carries it).
- ``"snntorch"``: snnTorch 1.0's ``export_to_nir``/``import_from_nir`` fix ``dt = 1e-4``;
  ``LIF`` runs as its ``Leaky`` and ``CubaLIF`` as its ``Synaptic`` (``beta = 1 - dt/tau``,
  ``alpha = 1 - dt/tau_syn``, threshold divided by ``r dt/tau`` (``w_in dt/tau_syn``) when that
  is not 1, reset to zero at once, ``>``), the numbers of snnTorch's own ``import_from_nir``.
- ``"spikingjelly"``: SpikingJelly's ``import_from_nir(graph, dt=1e-4)``: ``LIF``/``IF`` as its
  ``LIFNode``/``IFNode`` (spikefuse's SpikingJelly family, ``tau`` in steps, ``>=``), ``CubaLIF``
  as ``CUBALIFNode`` (the same-step CUBA step with ``>=``).
- ``"norse"``: norse 1.1's ``to_nir(model, sample, dt=1e-3)``: it writes every time constant as
  ``dt / tau_inv`` = ``dt * tau`` (a norse bug: its own ``from_nir`` then runs other decays), an
  ``IF`` with ``r = 1`` for ``v += x`` and a ``CubaLIF`` with ``w_in = r = 1`` for its LIFCell,
  whose input jumps into the current unscaled. Read back as norse ran it: ``tau = written / dt``,
  ``IF`` with ``r / dt``, CubaLIF as norse's feed-forward LIF.
- ``"sinabs"``: sinabs 3.1 writes time constants in steps (``dt = 1``) and runs ``LIF`` with an
  exact exponential decay ``exp(-1/tau)``, normalised input, multi-spikes and a subtractive reset;
  ``IF`` as ``IAF``. Needs spikefuse's sinabs families.
- ``"hxtorch"``, ``"lava-dl"``: the hardware stacks' exporters (:mod:`._hardware`): hxtorch's
  ``CubaLIF``/``CubaLI`` (ms, ``dt = 1e-6`` s) as its CUBA LIF (one-step synaptic delay, 1 us
  refractory time) and LI; lava-dl's ``CubaLIF`` (``tau = 1 / iDecay``, mantissas) as the
  fixed-point Loihi CUBA neuron, its weights as mantissas / 64.

The peers write no metadata and the same node types, so which tool wrote a graph cannot be told
from the graph (a snnTorch and a SpikingJelly CubaLIF at ``dt = 1e-4`` are identical in every
field): :func:`from_nir` picks ``"spikefuse"`` when the graph carries spikefuse metadata, else
``"nir"``, and takes ``convention=`` for the rest.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ... import families as _families
from . import _hardware
from ._common import NIRConversionError, _require_nir
from .modules import NIRCubaLIF, NIRIF, NIRLI, NIRLIF

__all__ = ["CONVENTIONS", "PEER_DT", "resolve", "builder_for"]

#: convention name -> one line of what it means (docs/nir.md has the details)
CONVENTIONS = {
    "nir": "NIR's reference reading: forward Euler at dt, current first, v > v_threshold",
    "spikefuse": "nir, plus the spikefuse metadata that rebuilds the exported spikefuse modules",
    "snntorch": "snnTorch 1.0 (dt fixed at 1e-4; Leaky / Synaptic, reset to zero, >)",
    "spikingjelly": "SpikingJelly 2.0 (dt 1e-4 by default; LIFNode / IFNode / CUBALIFNode, >=)",
    "norse": "norse 1.1 (dt 1e-3 by default; time constants written as dt*tau, input as a current jump)",
    "sinabs": "sinabs 3.1 (time in steps, dt = 1; exponential decay, multi-spikes, subtractive reset)",
    "hxtorch": "hxtorch (tau in ms, dt 1e-6 s; its CUBA LIF with a one-step synaptic delay and 1 us refractory time)",
    "lava-dl": "lava-dl netx (tau = 1 / integer Loihi decay, mantissas; the fixed-point Loihi CUBA neuron)",
}
#: the dt (s; sinabs, lava-dl: steps) each peer writes and runs its graphs with by default
PEER_DT = {"snntorch": 1e-4, "spikingjelly": 1e-4, "norse": 1e-3, "sinabs": 1.0, "hxtorch": _hardware.HXTORCH_DT,
           "lava-dl": _hardware.LAVA_DL_DT}


def has_spikefuse_metadata(graph) -> bool:
    md = getattr(graph, "metadata", None)
    if isinstance(md, dict) and "spikefuse" in md:
        return True
    return any(isinstance(getattr(n, "metadata", None), dict) and "spikefuse" in n.metadata
               for n in graph.nodes.values())


def resolve(graph, convention, dt, use_metadata) -> Tuple[str, Optional[float]]:
    """``(convention, dt)`` for :func:`from_nir`: the convention named or picked from the graph,
    and ``dt`` (``None`` only when neither the caller nor the convention gives one)."""
    if convention is None:
        convention = "spikefuse" if use_metadata and has_spikefuse_metadata(graph) else "nir"
        md = getattr(graph, "metadata", None)
        md = md.get("spikefuse") if isinstance(md, dict) else None
        written = md.get("convention") if isinstance(md, dict) and convention == "spikefuse" else None
        if isinstance(written, str) and written in CONVENTIONS:  # to_nir(target="hxtorch" | "lava-dl") writes the system's own form
            convention = written
    elif not isinstance(convention, str):
        raise TypeError(f"convention: expected None or one of {sorted(CONVENTIONS)}, got "
                        f"{type(convention).__name__} {convention!r}")
    elif convention not in CONVENTIONS:
        raise ValueError(f"convention: expected None or one of {sorted(CONVENTIONS)}, got {convention!r}")
    peer_dt = PEER_DT.get(convention)
    if dt is None and peer_dt is not None:
        return convention, peer_dt
    if dt is not None and peer_dt is not None and not np.isclose(float(dt), peer_dt, rtol=1e-9, atol=0):
        warnings.warn(f"from_nir: convention={convention!r} graphs are written for dt={peer_dt:g}; at dt={dt:g} "
                      f"the same ODEs run with other decays per step than {convention} ran them", UserWarning,
                      stacklevel=3)
    return convention, dt


# ------------------------------------------------------------------------------ helpers
def _a(node, key) -> np.ndarray:
    return np.asarray(getattr(node, key), dtype=np.float64)


def _uniform(a, what):
    u = np.unique(np.asarray(a))
    if u.size != 1:
        raise NIRConversionError(f"{what} must be the same for all neurons (as the peer requires), got {u.size} values")
    return float(u[0])


def _family(fid):
    """The module class of family ``fid`` if this version has it, else None."""
    f = _families.FAMILIES.get(fid)
    return None if f is None else _families.load(f.module)


def _need_family(fid, convention, node_kind):
    cls = _family(fid)
    if cls is None:
        raise NIRConversionError(f"convention={convention!r}: a {node_kind} node runs as spikefuse's {fid!r} family, "
                                 "which this version of spikefuse does not have")
    return cls


def _f32(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _scalar_or_f32(a):
    """A float when every neuron has the same value (as the peer's module would be built), else float32."""
    u = np.unique(np.asarray(a, dtype=np.float32))
    return float(u[0]) if u.size == 1 else _f32(a)


# ------------------------------------------------------------------------------ snnTorch
def _snntorch_scale(node, imp, name, r_key, tau_key):
    """snnTorch's importer: ``w_scale = r dt / tau`` (``w_in dt / tau_syn``); a scale that is not 1
    is folded into the threshold (``hack_w_scale``), as snnTorch does."""
    w_scale = _a(node, r_key) * imp.dt / _a(node, tau_key)
    thr = _a(node, "v_threshold")
    if not np.allclose(w_scale, 1.0):
        thr = thr / w_scale
    return _uniform(thr.astype(np.float32), f"graph node {name!r}: snnTorch's threshold (v_threshold / w_scale)")


def _snntorch_lif(imp, name, node):
    if not np.allclose(_a(node, "v_leak"), 0.0):
        return None  # snnTorch refuses v_leak != 0: the NIR reading
    cls = _family("snntorch.leaky")
    thr = _snntorch_scale(node, imp, name, "r", "tau")
    if cls is None:
        return None
    beta = 1 - (imp.dt / np.asarray(node.tau, dtype=np.float32))  # as snnTorch computes it (float32)
    return cls(beta=_f32(beta), threshold=thr, reset_mechanism="zero", reset_delay=False,
               spike_grad=imp.surrogate_or_default())


def _snntorch_cuba(imp, name, node):
    if not np.allclose(_a(node, "v_leak"), 0.0) or not np.allclose(_a(node, "r"), _a(node, "tau_mem") / imp.dt):
        return None  # snnTorch refuses these: the NIR reading
    cls = _family("snntorch.synaptic")
    thr = _snntorch_scale(node, imp, name, "w_in", "tau_syn")
    if cls is None:
        return None
    alpha = 1 - (imp.dt / np.asarray(node.tau_syn, dtype=np.float32))
    beta = 1 - (imp.dt / np.asarray(node.tau_mem, dtype=np.float32))
    return cls(alpha=_f32(alpha), beta=_f32(beta), threshold=thr, reset_mechanism="zero", reset_delay=False,
               spike_grad=imp.surrogate_or_default())


# ------------------------------------------------------------------------------ SpikingJelly
def _sj_uniform(node, *keys):
    vals = [np.unique(_a(node, k)) for k in keys]
    return None if any(v.size != 1 for v in vals) else [float(v[0]) for v in vals]


def _sj_lif(imp, name, node):
    """SpikingJelly's importer rules (uniform, ``tau/dt > 1``, ``r`` 1 or ``tau/dt``, ``v_leak =
    v_reset``) give its LIFNode (spikefuse's SpikingJelly LIF); other nodes: the NIR step with ``>=``."""
    from ...neuron import lif
    u = _sj_uniform(node, "tau", "r", "v_reset", "v_leak", "v_threshold")
    if u is not None:
        tau, r, v_reset, v_leak, thr = u[0] / imp.dt, u[1], u[2], u[3], u[4]
        if tau > 1.0 and np.isclose(v_leak, v_reset) and (np.isclose(r, 1.0) or np.isclose(r, tau)):
            return lif.LIF(tau=tau, decay_input=bool(np.isclose(r, 1.0)), v_threshold=thr, v_reset=v_reset,
                           surrogate=imp.surrogate_or_default())
    return NIRLIF(_a(node, "tau"), _a(node, "r"), _a(node, "v_leak"), _a(node, "v_threshold"), _a(node, "v_reset"),
                  dt=imp.dt, surrogate=imp.surrogate_or_default(), strict=False)


def _sj_if(imp, name, node):
    from ...neuron import lif
    u = _sj_uniform(node, "r", "v_threshold", "v_reset")
    if u is not None and np.isclose(u[0], 1.0 / imp.dt):
        return lif.IF(v_threshold=u[1], v_reset=u[2], surrogate=imp.surrogate_or_default())
    return NIRIF(_a(node, "r"), _a(node, "v_threshold"), _a(node, "v_reset"), dt=imp.dt,
                 surrogate=imp.surrogate_or_default(), strict=False)


def _sj_cuba(imp, name, node):
    return imp.plain_cuba(node, strict=False)  # CUBALIFNode: the same-step CUBA step, >=


# ------------------------------------------------------------------------------ norse
def _norse_tau(imp, node, key):
    """The time constant norse meant: it writes ``dt / tau_inv`` = ``dt * tau``."""
    return _a(node, key) / imp.dt


def _norse_cuba(imp, name, node):
    tau_syn, tau_mem = _norse_tau(imp, node, "tau_syn"), _norse_tau(imp, node, "tau_mem")
    rec = _families.FAMILIES.get("norse.lif")
    v_reset = _a(node, "v_reset") if getattr(node, "v_reset", None) is not None else 0.0
    if rec is not None and np.allclose(_a(node, "w_in"), 1.0) and np.allclose(_a(node, "r"), 1.0):
        # norse's own neuron: tau_inv = dt / written tau, rounded as norse's export did (float32)
        inv = lambda k: _f32(imp.dt / np.asarray(getattr(node, k), dtype=np.float32))  # noqa: E731
        p = _families.load(rec.params)(tau_syn_inv=inv("tau_syn"), tau_mem_inv=inv("tau_mem"),
                                       v_leak=_f32(_a(node, "v_leak")), v_th=_f32(_a(node, "v_threshold")),
                                       v_reset=_f32(v_reset))
        return _families.load(rec.module)(p, dt=imp.dt, return_state=False)
    # the NIR step with norse's input jump: w_in x enters the current unscaled
    return NIRCubaLIF(tau_syn, tau_mem, _a(node, "r"), _a(node, "v_leak"), _a(node, "v_threshold"), v_reset,
                      _a(node, "w_in") * tau_syn / imp.dt, dt=imp.dt, surrogate=imp.surrogate_or_default())


def _norse_lif(imp, name, node):
    return NIRLIF(_norse_tau(imp, node, "tau"), _a(node, "r"), _a(node, "v_leak"), _a(node, "v_threshold"),
                  _a(node, "v_reset"), dt=imp.dt, surrogate=imp.surrogate_or_default())


def _norse_li(imp, name, node):
    return NIRLI(_norse_tau(imp, node, "tau"), _a(node, "r"), _a(node, "v_leak"), dt=imp.dt)


def _norse_if(imp, name, node):
    return NIRIF(_a(node, "r") / imp.dt, _a(node, "v_threshold"), _a(node, "v_reset"), dt=imp.dt,
                 surrogate=imp.surrogate_or_default())  # norse's IAF: v += r x per step


# ------------------------------------------------------------------------------ sinabs
def _sinabs_lif(imp, name, node):
    cls = _need_family("sinabs.lif", "sinabs", "LIF")
    if not np.allclose(_a(node, "v_leak"), 0.0) or not np.allclose(_a(node, "r"), 1.0):
        raise NIRConversionError(f"graph node {name!r}: convention='sinabs' runs LIF nodes with v_leak = 0 and r = 1 "
                                 "only (sinabs' LIF)")
    return cls(tau_mem=_scalar_or_f32(_a(node, "tau") / imp.dt), spike_threshold=_scalar_or_f32(_a(node, "v_threshold")),
               norm_input=True)


def _sinabs_if(imp, name, node):
    cls = _need_family("sinabs.iaf", "sinabs", "IF")
    if not np.allclose(_a(node, "r") * imp.dt, 1.0):
        raise NIRConversionError(f"graph node {name!r}: convention='sinabs' runs IF nodes with r = 1/dt only "
                                 "(sinabs' IAF adds the input unscaled)")
    return cls(spike_threshold=_scalar_or_f32(_a(node, "v_threshold")))


def _sinabs_refused(imp, name, node):
    raise NIRConversionError(f"graph node {name!r}: convention='sinabs' has no mapping for nir.{type(node).__name__} "
                             "(sinabs exports LIF, IF, LI and synapses; spikefuse has no sinabs ExpLeak family)")


# ------------------------------------------------------------------------------ the table
Builder = Callable[..., Optional[nn.Module]]
_BUILDERS: Dict[Tuple[str, type], Builder] = {}


def _register() -> None:
    nirm = _require_nir()
    _BUILDERS.update({
        ("snntorch", nirm.LIF): _snntorch_lif, ("snntorch", nirm.CubaLIF): _snntorch_cuba,
        ("spikingjelly", nirm.LIF): _sj_lif, ("spikingjelly", nirm.IF): _sj_if,
        ("spikingjelly", nirm.CubaLIF): _sj_cuba,
        ("norse", nirm.CubaLIF): _norse_cuba, ("norse", nirm.LIF): _norse_lif, ("norse", nirm.LI): _norse_li,
        ("norse", nirm.IF): _norse_if,
        ("sinabs", nirm.LIF): _sinabs_lif, ("sinabs", nirm.IF): _sinabs_if, ("sinabs", nirm.LI): _sinabs_refused,
        ("sinabs", nirm.CubaLIF): _sinabs_refused,
    })
    _BUILDERS.update(_hardware.builders(nirm))  # "hxtorch", "lava-dl"


def builder_for(convention: str, node_type: type) -> Optional[Builder]:
    """The builder of ``node_type`` under ``convention`` (None: the NIR reading applies). A
    builder returns the module, or None where the peer would not treat the node specially."""
    if not _BUILDERS:
        _register()
    for c in node_type.__mro__:
        fn = _BUILDERS.get((convention, c))
        if fn is not None:
            return fn
    return None
