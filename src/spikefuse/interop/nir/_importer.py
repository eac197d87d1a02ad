"""The ``_Importer`` of :func:`~.import_.from_nir`: one NIR node -> one spikefuse module, through
the import table (moved out of ``import_.py``)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ... import layers as _layers
from . import conventions as _conventions
from ._common import NIRConversionError, _nir
from .modules import NIRCubaLIF, _NIRNeuronBase, _resolve_surrogate
from ._import_util import (_arr, _as_bool, _check_finite, _close, _meta, _regroup, _surrogate_from_meta,
                           _uniform, _value)
from ._import_nodes import _build_cuba, _lif, importer_for


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
        a = {k: _arr(node, k, meta) for k in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")}
        return NIRCubaLIF(*a.values(), dt=self.dt,
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
