"""Import: :class:`nir.NIRGraph` -> a spikefuse module (:func:`from_nir`)."""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ... import layers as _layers
from ... import surrogate as _surrogate
from ..._validate import _describe, check_bool
from ...surrogate import Surrogate
from . import conventions as _conventions
from ._common import NIRConversionError, _check_dt, _nir, _require_nir
from .graph import NIRGraphModule, _safe_name, _schedule
from .modules import (Delay, NIRCubaLI, NIRCubaLIF, NIRFlatten, NIRIF, NIRIntegrator, NIRLI, NIRLIF, Scale,
                      Threshold, _NIRNeuronBase, _resolve_surrogate)

__all__ = ["from_nir"]


def _surrogate_from_meta(d, default=None):
    try:
        name = str(d["name"])
        params = {k: float(v) for k, v in d.items() if k != "name"}
        if name == "custom":
            raise KeyError(name)
        return _surrogate.get(name, **params)
    except (KeyError, TypeError, ValueError):
        warnings.warn(f"from_nir: surrogate {dict(d)!r} cannot be rebuilt; using {default or 'ATan(2.0)'}",
                      stacklevel=3)
        return _resolve_surrogate(default)


def _regroup(w: np.ndarray, groups: int):
    """Inverse of :func:`_ungroup`, or None when ``w`` is not block-diagonal for ``groups``."""
    c_out, c_in = w.shape[0], w.shape[1]
    if groups <= 1 or c_out % groups or c_in % groups:
        return None
    o_g, i_g = c_out // groups, c_in // groups
    blocks, mask = [], np.ones(w.shape[:2], dtype=bool)
    for g in range(groups):
        blocks.append(w[g * o_g:(g + 1) * o_g, g * i_g:(g + 1) * i_g])
        mask[g * o_g:(g + 1) * o_g, g * i_g:(g + 1) * i_g] = False
    if np.any(w[mask] != 0):
        return None
    return np.concatenate(blocks, axis=0)


def _arr(node, key) -> np.ndarray:
    return np.asarray(getattr(node, key), dtype=np.float64)


def _uniform(a: np.ndarray):
    """A Python float if every element is equal, else None."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return None
    v = a.reshape(-1)[0]
    return float(v) if np.all(a == v) else None


def _close(a, b, rtol=1e-5, atol=1e-7) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol))


def _meta(node) -> dict:
    md = getattr(node, "metadata", None)
    if isinstance(md, dict) and isinstance(md.get("spikefuse"), dict):
        return md["spikefuse"]
    return {}


def _as_bool(v) -> bool:
    if isinstance(v, (bytes, str)):
        return str(v if isinstance(v, str) else v.decode()).lower() in ("true", "1")
    return bool(v)


def _scalar_or_tensor(a: np.ndarray):
    u = _uniform(a)
    return u if u is not None else torch.as_tensor(np.asarray(a, dtype=np.float32))


def _value(meta: dict, key: str, nir_value: np.ndarray, scale: float = 1.0):
    """The parameter to rebuild a spikefuse module with: the exact value recorded in the
    metadata when it agrees with the NIR array (``exact * scale ~ nir_value``), else the NIR
    value / scale (a float when uniform, else a float32 tensor)."""
    ex = meta.get("exact", {}) if isinstance(meta.get("exact"), dict) else {}
    nir_value = np.asarray(nir_value, dtype=np.float64)
    if key in ex:
        e = np.asarray(ex[key], dtype=np.float64)
        try:
            ok = _close(np.broadcast_to(e * scale, nir_value.shape), nir_value, rtol=1e-6, atol=1e-9)
        except ValueError:
            ok = False
        if ok:
            return float(e) if e.ndim == 0 else torch.as_tensor(e.astype(np.float32))
    return _scalar_or_tensor(nir_value / scale)


def _check_finite(name, node) -> None:
    """Every numeric array of ``node`` is finite: a NaN/inf weight or time constant is refused
    here, naming the node and the field, not later as a NaN output blamed on the input."""
    for field, value in vars(node).items():
        if field in ("metadata", "input_type", "output_type") or isinstance(value, (str, bytes, dict)):
            continue
        try:
            a = np.asarray(value)
        except Exception:  # noqa: BLE001 - not array-like: not a parameter
            continue
        if a.dtype.kind in "fc" and a.size and not np.all(np.isfinite(a)):
            raise NIRConversionError(f"graph node {name!r} ({type(node).__name__}): {field} contains NaN or inf "
                                     f"values ({int(np.sum(~np.isfinite(a)))} of {a.size})")


class _Importer:
    def __init__(self, dt, surrogate, use_metadata, convention="spikefuse"):
        self.dt = dt
        self.surrogate = surrogate
        self.convention = convention
        self.use_metadata = use_metadata and convention == "spikefuse"

    def surrogate_or_default(self):
        return _resolve_surrogate(self.surrogate)

    def plain_cuba(self, node, meta=None, strict=True):
        """The NIR reading of a CubaLIF node (forward Euler, current first)."""
        meta = meta or {}
        return NIRCubaLIF(_arr(node, "tau_syn"), _arr(node, "tau_mem"), _arr(node, "r"), _arr(node, "v_leak"),
                          _arr(node, "v_threshold"), _arr(node, "v_reset"), _arr(node, "w_in"), dt=self.dt,
                          surrogate=self._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)),
                          strict=strict)

    def _by_convention(self, name, node, recurrent):
        """The module a peer's convention runs ``node`` as (None: the NIR reading)."""
        fn = _conventions.builder_for(self.convention, type(node))
        m = None if fn is None else fn(self, name, node)
        if m is not None and recurrent and not isinstance(m, _NIRNeuronBase):
            return None  # in a graph with cycles every stateful node takes its state explicitly
        return m

    def _sur(self, meta):
        if self.surrogate is not None:
            return _resolve_surrogate(self.surrogate)
        if self.use_metadata and isinstance(meta.get("surrogate"), dict):
            return _surrogate_from_meta(meta["surrogate"])
        return _resolve_surrogate(None)

    def build(self, name, node, recurrent=False):
        """The module that runs ``node``, through :data:`IMPORTERS`."""
        fn = importer_for(type(node))
        if fn is None:
            raise NIRConversionError(
                f"graph node {name!r}: nir.{type(node).__name__} has no spikefuse equivalent (supported: Affine, "
                "Linear, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale, Threshold, Delay, LIF, IF, LI, I, "
                "CubaLIF, CubaLI, nested NIRGraph)")
        _check_finite(name, node)
        meta = _meta(node) if self.use_metadata else {}
        try:
            m = self._by_convention(name, node, recurrent) if self.convention in _conventions.PEER_DT else None
            return m if m is not None else fn(self, name, node, meta, recurrent)
        except NIRConversionError:
            raise
        except (ValueError, TypeError) as e:
            raise NIRConversionError(f"graph node {name!r} ({type(node).__name__}): {e}") from e

    def _dense(self, name, node, bias):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRConversionError(f"graph node {name!r}: {type(node).__name__} weight must be 2-d "
                                     f"(out, in), got shape {w.shape}")
        m = _layers.Dense(w.shape[1], w.shape[0], bias=bias)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            if bias:
                b = np.asarray(node.bias, dtype=np.float32)
                m.bias.copy_(torch.as_tensor(np.broadcast_to(b, (w.shape[0],)).copy()))
        return m

    def _conv(self, name, node, nd):
        w = np.asarray(node.weight)
        if w.ndim != nd + 2:
            raise NIRConversionError(f"graph node {name!r}: Conv{nd}d weight must have {nd + 2} dims, got {w.shape}")
        groups = int(node.groups)
        meta = _meta(node)
        if groups == 1 and int(meta.get("groups", 1)) > 1:
            wg = _regroup(w, int(meta["groups"]))
            if wg is not None:
                w, groups = wg, int(meta["groups"])
        pad = node.padding
        if isinstance(pad, bytes):
            pad = pad.decode()
        if not isinstance(pad, str):
            pad = tuple(int(v) for v in np.broadcast_to(np.asarray(pad).reshape(-1), (nd,)))
        stride = tuple(int(v) for v in np.broadcast_to(np.asarray(node.stride).reshape(-1), (nd,)))
        dil = tuple(int(v) for v in np.broadcast_to(np.asarray(node.dilation).reshape(-1), (nd,)))
        b = getattr(node, "bias", None)
        has_bias = True
        if "bias" in meta and not _as_bool(meta["bias"]) and (b is None or not np.any(b)):
            has_bias = False
        cls = _layers.Conv1d if nd == 1 else _layers.Conv2d
        m = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=stride, padding=pad, dilation=dil,
                groups=groups, bias=has_bias)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            if has_bias:
                bb = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32)
                m.bias.copy_(torch.as_tensor(np.broadcast_to(bb, (w.shape[0],)).copy()))
        return m

    def _leaky_integrator(self, node, meta):
        tau_s = float(meta.get("tau", _uniform(_arr(node, "tau") / self.dt) or 0.0))
        tau_u, r_u, vl = _uniform(_arr(node, "tau")), _uniform(_arr(node, "r")), _uniform(_arr(node, "v_leak"))
        if tau_u is None or r_u is None or vl != 0.0 or not math.isclose(tau_s * self.dt, tau_u, rel_tol=1e-5):
            return None
        di = _as_bool(meta.get("decay_input", True))
        if not math.isclose(r_u, 1.0 if di else tau_s, rel_tol=1e-5) or tau_s < 1:
            return None
        return _layers.LeakyIntegrator(tau=tau_s, decay_input=di)

    def _restore_sj(self, name, node, meta, leaky):
        """Rebuild a spikefuse neuron.lif module from a node written by to_nir, or None."""
        if meta.get("module") not in ("LIF", "IF", "ParametricLIF"):
            return None
        from ...neuron import lif as _lif
        soft = _as_bool(meta.get("soft_reset", False))
        thr = _value(meta, "v_threshold", _arr(node, "v_threshold"))
        v_reset_arr = _arr(node, "v_reset")
        v_reset = None if soft else _value(meta, "v_reset", v_reset_arr)
        if soft and not np.all(v_reset_arr == 0):
            return None
        common = dict(v_threshold=thr, v_reset=v_reset, detach_reset=_as_bool(meta.get("detach_reset", False)),
                      surrogate=self._sur(meta))
        if not leaky:
            if not _close(_arr(node, "r") * self.dt, 1.0):
                return None
            return _lif.IF(**common)
        tau_nir = _arr(node, "tau")
        if not np.all(_arr(node, "v_leak") == (0.0 if soft else v_reset_arr)):
            return None
        tau_steps = tau_nir / self.dt
        mt = meta.get("tau")
        if mt is not None and _close(np.asarray(mt, dtype=np.float64) * self.dt, tau_nir):
            tau_steps = np.asarray(mt, dtype=np.float64)  # exact value of the exporting module
        di = _as_bool(meta.get("decay_input", True))
        if not _close(_arr(node, "r"), 1.0 if di else np.broadcast_to(tau_steps, tau_nir.shape)):
            return None
        tau_u = _uniform(tau_steps)
        if meta.get("module") == "ParametricLIF":
            if tau_u is None or tau_u <= 1:
                return None
            init_tau = float(meta.get("init_tau", tau_u))
            m = _lif.ParametricLIF(init_tau=init_tau if init_tau > 1 else tau_u, decay_input=di, **common)
            w = meta.get("w")
            with torch.no_grad():
                if w is not None and math.isclose(1.0 / (1.0 + math.exp(-float(w))), 1.0 / tau_u, rel_tol=1e-5):
                    m.w.fill_(float(w))
                else:
                    m.w.fill_(-math.log(tau_u - 1.0))
            return m
        tau = tau_u if tau_u is not None else torch.as_tensor(np.asarray(tau_steps, np.float32))
        return _lif.LIF(tau=tau, decay_input=di, **common)

    def _cuba_exact(self, node) -> bool:
        """r = 1 and w_in = tau_syn/dt: the node is an hxtorch CUBA step (input as a current jump)."""
        return (_close(_arr(node, "r"), 1.0)
                and _close(_arr(node, "w_in") * self.dt / _arr(node, "tau_syn"), 1.0, rtol=1e-6))

    def _one_step(self, delay) -> bool:
        """The Delay node is exactly one step of ``dt`` for every feature."""
        return _close(_arr(delay, "delay") / self.dt, 1.0, rtol=1e-6, atol=0)

    def recurrent_lif(self, inp, lif, rec):
        """Rebuild a layers.RecurrentLIF from its exported node triple (None if impossible)."""
        meta = _meta(lif)
        w_in, w_rec = np.asarray(inp.weight, np.float32), np.asarray(rec.weight, np.float32)
        if w_in.ndim != 2 or w_rec.ndim != 2 or w_rec.shape != (w_in.shape[0],) * 2:
            return None
        tau = float(meta.get("tau", 0.0))
        soft = _as_bool(meta.get("soft_reset", False))
        di = _as_bool(meta.get("decay_input", True))
        thr = _value(meta, "v_threshold", _arr(lif, "v_threshold"))
        v_reset = None if soft else _value(meta, "v_reset", _arr(lif, "v_reset"))
        rest = 0.0 if soft else v_reset
        if (tau < 1 or not _close(tau * self.dt, _arr(lif, "tau")) or not _close(_arr(lif, "r"), 1.0 if di else tau)
                or not isinstance(thr, float) or not isinstance(rest, float)
                or not np.all(_arr(lif, "v_leak") == np.float32(rest)) or not np.all(_arr(lif, "v_reset") == np.float32(rest))):
            return None
        has_bias = isinstance(inp, _nir.Affine)
        m = _layers.RecurrentLIF(w_in.shape[1], w_in.shape[0], tau=tau, v_threshold=thr, v_reset=v_reset,
                                 surrogate=self._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)),
                                 decay_input=di, bias=has_bias)
        with torch.no_grad():
            m.input.weight.copy_(torch.as_tensor(w_in))
            m.recurrent.weight.copy_(torch.as_tensor(w_rec))
            if has_bias:
                m.input.bias.copy_(torch.as_tensor(
                    np.broadcast_to(np.asarray(inp.bias, np.float32), (w_in.shape[0],)).copy()))
        return m

    def eventprop(self, syn, node):
        """Rebuild an EventPropLIF from its exported Linear + CubaLIF pair (None if impossible)."""
        w = np.asarray(syn.weight, dtype=np.float32)
        if w.ndim != 2 or not self._cuba_exact(node):
            return None
        from ...neuron.eventprop import EventPropLIF
        m = _build_cuba(EventPropLIF, node, self.dt, _meta(node),
                        extra={"in_features": int(w.shape[1]), "out_features": int(w.shape[0])})
        if m is not None:
            with torch.no_grad():
                m.weight.copy_(torch.as_tensor(w))
        return m


# ------------------------------------------------------------------------------ the table
Importer = Callable[[_Importer, str, object, dict, bool], nn.Module]
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
    k = _arr(node, "delay") / imp.dt
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


def _restore_norse(imp, node, meta, cls, rec):
    """norse's feed-forward LIF written by to_nir: rebuilt with its exact parameters."""
    ex = meta.get("exact", {})
    keys = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "alpha")
    if any(k not in ex for k in keys) or not _close(1.0 / np.asarray(ex["tau_syn_inv"]), _arr(node, "tau_syn"),
                                                    rtol=1e-6) \
            or not _close(1.0 / np.asarray(ex["tau_mem_inv"]), _arr(node, "tau_mem"), rtol=1e-6):
        return None
    from ... import families
    p = families.load(rec.params)(**{k: _exact_value(meta, k) for k in keys}, method=str(meta.get("method", "super")))
    return cls(p, dt=imp.dt, return_state=False)


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
    return NIRLIF(_arr(node, "tau"), _arr(node, "r"), _arr(node, "v_leak"), _arr(node, "v_threshold"),
                  _arr(node, "v_reset"), dt=imp.dt, surrogate=imp._sur(meta),
                  detach_reset=_as_bool(meta.get("detach_reset", False)))


def _if(imp, name, node, meta, recurrent):
    if meta and not recurrent:
        m = imp._restore_sj(name, node, meta, leaky=False)
        if m is not None:
            return m
    return NIRIF(_arr(node, "r"), _arr(node, "v_threshold"), _arr(node, "v_reset"), dt=imp.dt,
                 surrogate=imp._sur(meta), detach_reset=_as_bool(meta.get("detach_reset", False)))


def _li(imp, name, node, meta, recurrent):
    if meta.get("module") == "LeakyIntegrator" and not recurrent:
        m = imp._leaky_integrator(node, meta)
        if m is not None:
            return m
    return NIRLI(_arr(node, "tau"), _arr(node, "r"), _arr(node, "v_leak"), dt=imp.dt)


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
        nirm.Threshold: lambda imp, name, node, meta, rec: Threshold(_arr(node, "threshold"), surrogate=imp._sur(meta)),
        nirm.LIF: _lif,
        nirm.IF: _if,
        nirm.LI: _li,
        nirm.I: lambda imp, name, node, meta, rec: NIRIntegrator(_arr(node, "r"), dt=imp.dt),
        nirm.CubaLIF: _cuba,
        nirm.CubaLI: lambda imp, name, node, meta, rec: NIRCubaLI(
            _arr(node, "tau_syn"), _arr(node, "tau_mem"), _arr(node, "r"), _arr(node, "v_leak"), _arr(node, "w_in"),
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
    ``"spikefuse"``, ``"snntorch"``, ``"spikingjelly"``, ``"norse"``, ``"sinabs"``); ``None``:
    ``"spikefuse"`` for a graph with spikefuse metadata (and ``use_metadata``), else ``"nir"``
    (the peers write no metadata, so their graphs cannot be told apart: name the convention).
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
                   "RecurrentLIF": lambda imp, group: imp.recurrent_lif(*group)}


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
