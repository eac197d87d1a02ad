"""The import table of :func:`~.import_.from_nir`: NIR node type -> builder (:data:`IMPORTERS`),
and the builders of the single nodes (moved out of ``import_.py``)."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np
import torch
from torch import nn

from ... import layers as _layers
from ._common import NIRConversionError, _nir, _require_nir
from .modules import Delay, NIRCubaLI, NIRFlatten, NIRIF, NIRIntegrator, NIRLI, NIRLIF, Scale, Threshold
from ._import_util import _arr, _as_bool, _close, _meta, _value


Importer = Callable[["_Importer", str, object, dict, bool], nn.Module]
#: NIR node type -> fn(importer, name, node, metadata, recurrent) -> module; filled on first use
#: (nir is an optional dependency) by :func:`_register_nir_types`
IMPORTERS: Dict[type, Importer] = {}


def importer_for(cls: type) -> Optional[Importer]:
    """The :data:`IMPORTERS` entry of NIR node type ``cls`` (or of its nearest registered base)."""
    _register_nir_types()
    for c in cls.__mro__:
        if c in IMPORTERS:
            return IMPORTERS[c]
    return None


def _pool(imp, name, node, meta, recurrent):
    k, s, p = (tuple(int(v) for v in np.broadcast_to(np.asarray(a).reshape(-1), (2,)))
               for a in (node.kernel_size, node.stride, node.padding))
    return (_layers.SumPool2d if isinstance(node, _nir.SumPool2d) else _layers.AvgPool2d)(k, s, p)


def _flatten(imp, name, node, meta, recurrent):
    sd, ed = int(node.start_dim), int(node.end_dim)
    it = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    nd = len(it) if it is not None else None
    if sd == 0 and (ed == -1 or (nd is not None and ed == nd - 1)):
        return _layers.Flatten()
    return NIRFlatten(sd, ed)


def _delay(imp, name, node, meta, recurrent):
    k = _arr(node, "delay", meta) / imp.dt
    if not np.allclose(k, np.round(k), rtol=0, atol=1e-6) or np.any(k < -1e-6):
        raise NIRConversionError(f"graph node {name!r}: Delay of {np.unique(_arr(node, 'delay')).tolist()} s "
                                 f"is not a non-negative whole number of steps dt={imp.dt:g}")
    return Delay(np.round(k))


def _exact_value(meta, key):
    e = np.asarray(meta["exact"][key], dtype=np.float64)
    return float(e) if e.ndim == 0 else torch.as_tensor(e.astype(np.float32))


def _restore_snn(imp, node, meta, cls, rec):
    """snnTorch Leaky / Synaptic written by to_nir: rebuilt with the exact beta (alpha) and threshold."""
    ex = meta.get("exact", {})
    taus = {"beta": "tau_mem" if isinstance(node, _nir.CubaLIF) else "tau", "alpha": "tau_syn"}
    for k, tk in taus.items():
        if k in ex and not _close(imp.dt / (1 - np.asarray(ex[k], np.float64)), _arr(node, tk), rtol=1e-6):
            return None
    if "threshold" not in ex or not _close(np.broadcast_to(ex["threshold"], _arr(node, "v_threshold").shape),
                                           _arr(node, "v_threshold"), rtol=1e-6):
        return None
    kw = {k: _exact_value(meta, k) for k in ("alpha", "beta", "threshold") if k in ex}
    return cls(**kw, reset_mechanism=str(meta.get("reset_mechanism", "zero")),
               reset_delay=_as_bool(meta.get("reset_delay", False)), spike_grad=imp._sur(meta))


_NORSE_KEYS = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "alpha")


def _norse_params(node, meta, params_cls):
    """norse's LIF parameters from the exact values to_nir recorded, if the node still agrees with them."""
    ex = meta.get("exact", {})
    if any(k not in ex for k in _NORSE_KEYS) or not _close(1.0 / np.asarray(ex["tau_syn_inv"]), _arr(node, "tau_syn"),
                                                           rtol=1e-6) \
            or not _close(1.0 / np.asarray(ex["tau_mem_inv"]), _arr(node, "tau_mem"), rtol=1e-6):
        return None
    return params_cls(**{k: _exact_value(meta, k) for k in _NORSE_KEYS}, method=str(meta.get("method", "super")))


def _restore_norse(imp, node, meta, cls, rec):
    """norse's feed-forward LIF written by to_nir: rebuilt with its exact parameters."""
    from ... import families
    p = _norse_params(node, meta, families.load(rec.params))
    return None if p is None else cls(p, dt=imp.dt, return_state=False)


def norse_lif_recurrent(imp, group):
    """``Linear -> CubaLIF <-> Linear`` written by to_nir for one NorseLIFRecurrent: that module
    (exact parameters, both weights), or None when the nodes no longer agree with the metadata."""
    inp, node, rec = group
    meta = _meta(node)
    w_in, w_rec = np.asarray(inp.weight, np.float32), np.asarray(rec.weight, np.float32)
    if (imp.surrogate is not None or w_in.ndim != 2 or w_rec.shape != (w_in.shape[0],) * 2
            or not _close(_arr(node, "r"), 1.0)
            or not _close(_arr(node, "w_in") * imp.dt / _arr(node, "tau_syn"), 1.0, rtol=1e-6)):
        return None
    from ... import families
    f = families.FAMILIES["norse.lif_recurrent"]
    p = _norse_params(node, meta, families.load(f.params))
    if p is None:
        return None
    # autapses=False zeroes the diagonal: a graph whose diagonal is not zero (edited, or written by
    # another tool) keeps its self-connections
    autapses = _as_bool(meta.get("autapses", True)) or bool(np.any(np.diag(w_rec) != 0))
    return families.load(f.module)(int(w_in.shape[1]), int(w_in.shape[0]), p, input_weights=torch.as_tensor(w_in),
                                   recurrent_weights=torch.as_tensor(w_rec), autapses=autapses, dt=imp.dt,
                                   return_state=False)


#: family id (metadata ``family``) -> fn(importer, node, meta, module class, record) -> module or None
_FAMILY_RESTORERS = {"snntorch.leaky": _restore_snn, "snntorch.synaptic": _restore_snn,
                     "norse.lif": _restore_norse}


def _restore_family(imp, node, meta):
    """The module of the family recorded in the metadata (to_nir of a peer family), or None."""
    from ... import families
    fid = meta.get("family")
    rec = families.FAMILIES.get(fid) if isinstance(fid, str) else None
    if rec is None or fid not in _FAMILY_RESTORERS:
        return None
    return _FAMILY_RESTORERS[fid](imp, node, meta, families.load(rec.module), rec)


def _lif(imp, name, node, meta, recurrent):
    if meta.get("family") and not recurrent:
        m = _restore_family(imp, node, meta)
        if m is not None:
            return m
    if meta and not recurrent:
        m = imp._restore_sj(name, node, meta, leaky=True)
        if m is not None:
            return m
    return NIRLIF(*(_arr(node, k, meta) for k in ("tau", "r", "v_leak", "v_threshold", "v_reset")), dt=imp.dt,
                  surrogate=imp._sur(meta),
                  detach_reset=_as_bool(meta.get("detach_reset", False)))


def _if(imp, name, node, meta, recurrent):
    if meta and not recurrent:
        m = imp._restore_sj(name, node, meta, leaky=False)
        if m is not None:
            return m
    return NIRIF(_arr(node, "r", meta), _arr(node, "v_threshold", meta), _arr(node, "v_reset", meta), dt=imp.dt,
                 surrogate=imp._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)))


def _li(imp, name, node, meta, recurrent):
    if meta.get("module") == "LeakyIntegrator" and not recurrent:
        m = imp._leaky_integrator(node, meta)
        if m is not None:
            return m
    return NIRLI(_arr(node, "tau", meta), _arr(node, "r", meta), _arr(node, "v_leak", meta), dt=imp.dt)


def _cuba(imp, name, node, meta, recurrent):
    if meta.get("family") and not recurrent:
        m = _restore_family(imp, node, meta)
        if m is not None:
            return m
    if meta.get("module") in ("CubaLIF", "EventPropLIF") and "synaptic_delay" not in meta and not recurrent \
            and imp._cuba_exact(node) and imp.surrogate is None:
        # a file of the first format (no Delay node): its CubaLIF meant hxtorch's previous-step current
        from ...neuron.cuba import CubaLIF
        m = _build_cuba(CubaLIF, node, imp.dt, {k: v for k, v in meta.items() if k not in ("gradient", "current_index")})
        if m is not None:
            return m
    return imp.plain_cuba(node, meta)


def _register_nir_types() -> None:
    if IMPORTERS:
        return
    nirm = _require_nir()
    from nir.ir.graph import Identity
    IMPORTERS.update({
        nirm.Affine: lambda imp, name, node, meta, rec: imp._dense(name, node, bias=True),
        nirm.Linear: lambda imp, name, node, meta, rec: imp._dense(name, node, bias=False),
        nirm.Conv1d: lambda imp, name, node, meta, rec: imp._conv(name, node, 1),
        nirm.Conv2d: lambda imp, name, node, meta, rec: imp._conv(name, node, 2),
        nirm.SumPool2d: _pool,
        nirm.AvgPool2d: _pool,
        nirm.Flatten: _flatten,
        nirm.Scale: lambda imp, name, node, meta, rec: Scale(_arr(node, "scale")),
        nirm.Delay: _delay,
        nirm.Threshold: lambda imp, name, node, meta, rec: Threshold(_arr(node, "threshold", meta),
                                                                     surrogate=imp._sur(meta)),
        nirm.LIF: _lif,
        nirm.IF: _if,
        nirm.LI: _li,
        nirm.I: lambda imp, name, node, meta, rec: NIRIntegrator(_arr(node, "r", meta), dt=imp.dt),
        nirm.CubaLIF: _cuba,
        nirm.CubaLI: lambda imp, name, node, meta, rec: NIRCubaLI(
            *(_arr(node, k, meta) for k in ("tau_syn", "tau_mem", "r", "v_leak", "w_in")),
            dt=imp.dt),
        Identity: lambda imp, name, node, meta, rec: nn.Identity(),
    })


def _build_cuba(cls, node, dt, meta, extra=None):
    """Rebuild a spikefuse ``CubaLIF`` / ``EventPropLIF`` from an exported CubaLIF node, using the
    exact values of the metadata where they agree with the NIR arrays; None if impossible."""
    import inspect
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # pragma: no cover
        return None
    kw = dict(leak=_value(meta, "leak", _arr(node, "v_leak")), reset=_value(meta, "reset", _arr(node, "v_reset")),
              threshold=_value(meta, "threshold", _arr(node, "v_threshold")),
              tau_syn=_value(meta, "tau_syn", _arr(node, "tau_syn")),
              tau_mem=_value(meta, "tau_mem", _arr(node, "tau_mem")), dt=dt)
    ex = meta.get("exact", {}) if isinstance(meta.get("exact"), dict) else {}
    if "alpha" in ex:
        a = np.asarray(ex["alpha"], dtype=np.float64)
        kw["alpha"] = float(a) if a.ndim == 0 else torch.as_tensor(a.astype(np.float32))
    for k in ("method", "gradient", "current_index"):
        if k in meta:
            kw[k] = str(meta[k])
    if "membrane_grad" in meta:
        kw["membrane_grad"] = _as_bool(meta["membrane_grad"])
    kw.update(extra or {})
    learn = [k for k in str(meta.get("learnable", "")).split(",") if k]
    for k in learn:
        if k in kw:
            kw[k] = nn.Parameter(torch.as_tensor(kw[k], dtype=torch.float32))
    kw = {k: v for k, v in kw.items() if k in sig.parameters}
    try:
        return cls(**kw)
    except (TypeError, ValueError):
        return None
