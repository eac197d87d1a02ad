"""Export: spikefuse modules -> :class:`nir.NIRGraph` (:func:`to_nir`)."""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ... import layers as _layers
from ... import surrogate as _surrogate
from ..._validate import _describe, check_bool
from ...surrogate import Surrogate
from ._common import (NIRConversionError, _check_dt, _cuba_classes, _eventprop_class, _lif_classes, _nir,
                      _require_nir)
from .graph import NIRGraphModule
from .modules import (Delay, NIRCubaLIF, NIRFlatten, NIRIF, NIRIntegrator, NIRLI, NIRLIF, Scale, Threshold,
                      _NIRNeuronBase)

__all__ = ["to_nir"]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _full(value, shape, name) -> np.ndarray:
    """A float32 array of ``shape`` from a number or a broadcastable tensor."""
    t = value.detach().double().cpu() if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)
    try:
        t = torch.broadcast_to(t, tuple(shape))
    except RuntimeError:
        raise NIRConversionError(f"{name}: parameter of shape {tuple(t.shape)} does not broadcast to the "
                                 f"layer shape {tuple(shape)}") from None
    return t.to(torch.float32).numpy().copy()


def _exact(**values) -> dict:
    """Exact parameter values of the exporting module (floats, or float64 arrays of the
    tensor's own shape) for metadata; NIR arrays are float32 and full-shape."""
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, Tensor):
            v = v.detach().cpu()
            out[k] = float(v) if v.numel() == 1 and v.dim() == 0 else v.double().numpy().copy()
        else:
            out[k] = float(v)
    return out


def _surrogate_meta(s) -> dict:
    if isinstance(s, Surrogate) and dataclasses.is_dataclass(s):
        d = {"name": s.name}
        for f in dataclasses.fields(s):
            d[f.name] = float(getattr(s, f.name))
        return d
    return {"name": getattr(s, "name", "custom")}


def _sj_kind(m) -> str:
    """'IF', 'LIF' or 'ParametricLIF' for a spikefuse.neuron.lif module (subclasses included)."""
    from ...neuron import lif as _lif
    for n in ("ParametricLIF", "LIF", "IF"):
        if isinstance(m, getattr(_lif, n)):
            return n
    raise TypeError(type(m).__name__)  # pragma: no cover


def _loihi_module(m) -> bool:
    return type(m).__module__.startswith("spikefuse.neuron.loihi")


class _Exporter:
    def __init__(self, dt, lossy):
        self.dt = dt
        self.lossy = lossy
        self.nodes: "OrderedDict[str, object]" = OrderedDict()
        self.edges: List[Tuple[str, str]] = []

    # -- module tree -> list of (path, leaf module)
    def leaves(self, module, path):
        if isinstance(module, NIRGraphModule):
            return [(path, module)]
        if isinstance(module, nn.Dropout) or (_loihi_module(module) and type(module).__name__ == "Dropout"):
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

    # -- one leaf: returns (entry node name, exit node name, output shape)
    def convert(self, name, m, shape):
        nirm = _require_nir()
        lif_classes = _lif_classes()
        cuba_cls, cuba_ref_cls = _cuba_classes()
        if isinstance(m, (nn.Identity, nn.Dropout)):
            return None, None, shape
        if isinstance(m, nn.Linear):  # layers.Dense included
            if shape is not None and tuple(shape) != (m.in_features,):
                raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects {m.in_features} "
                                         f"input features, the previous layer gives shape {tuple(shape)}")
            w = m.effective_weight() if hasattr(m, "effective_weight") else m.weight
            meta = {"module": "Dense"}
            if getattr(m, "weight_hook", None) is not None:
                meta["weight_hook"] = "applied"
            if m.bias is not None:
                node = nirm.Affine(weight=_np(w), bias=_np(m.bias), metadata={"spikefuse": meta})
            else:
                node = nirm.Linear(weight=_np(w), metadata={"spikefuse": meta})
            n = self.add(name, node)
            return n, n, (m.out_features,)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            return self._conv(name, m, shape)
        if isinstance(m, (_layers.AvgPool2d, _layers.SumPool2d)):
            return self._pool(name, m, shape)
        if isinstance(m, _layers.MaxPool2d):
            raise NIRConversionError(f"model[{name!r}]: MaxPool2d cannot be expressed in NIR (NIR has only "
                                     "SumPool2d and AvgPool2d)")
        if isinstance(m, _layers.Flatten):
            shape = self._need_shape(name, m, shape)
            node = nirm.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1,
                                metadata={"spikefuse": {"module": "Flatten"}})
            n = self.add(name, node)
            return n, n, (int(np.prod(shape)),)
        if isinstance(m, NIRFlatten):
            shape = self._need_shape(name, m, shape)
            node = nirm.Flatten(input_type={"input": np.array(shape)}, start_dim=m.start_dim, end_dim=m.end_dim)
            n = self.add(name, node)
            out = tuple(int(v) for v in node.output_type["output"])
            return n, n, out
        if isinstance(m, _layers.LeakyIntegrator):
            shape = self._need_shape(name, m, shape)
            tau = m.tau * self.dt
            node = nirm.LI(tau=_full(tau, shape, name), r=_full(1.0 if m.decay_input else m.tau, shape, name),
                           v_leak=_full(0.0, shape, name),
                           metadata={"spikefuse": {"module": "LeakyIntegrator", "tau": float(m.tau),
                                                   "decay_input": bool(m.decay_input)}})
            n = self.add(name, node)
            return n, n, shape
        if isinstance(m, _layers.RecurrentLIF):
            return self._recurrent(name, m, shape)
        if lif_classes and isinstance(m, lif_classes):
            return self._lif(name, m, shape)
        if cuba_ref_cls is not None and isinstance(m, cuba_ref_cls):
            raise NIRConversionError(f"model[{name!r}]: CubaRefractoryLIF cannot be expressed in NIR "
                                     "(NIR neurons have no refractory period)")
        if cuba_cls is not None and isinstance(m, cuba_cls):
            return self._cuba(name, m, shape)
        ep_cls = _eventprop_class()
        if ep_cls is not None and isinstance(m, ep_cls):
            return self._cuba(name, m, shape, kind="EventPropLIF")
        if isinstance(m, _NIRNeuronBase):
            return self._native_neuron(name, m, shape)
        if isinstance(m, Threshold):
            node = nirm.Threshold(threshold=_np(m.threshold), metadata={"spikefuse": {
                "module": "Threshold", "surrogate": _surrogate_meta(m.surrogate)}})
            n = self.add(name, node)
            return n, n, tuple(m.threshold.shape) or shape
        if isinstance(m, Delay):
            node = nirm.Delay(delay=(m.steps.double() * self.dt).numpy())
            n = self.add(name, node)
            return n, n, tuple(m.steps.shape) or shape
        if isinstance(m, Scale):
            node = nirm.Scale(scale=_np(m.scale))
            n = self.add(name, node)
            return n, n, tuple(m.scale.shape) or shape
        if isinstance(m, NIRGraphModule):
            return self._subgraph(name, m, shape)
        if isinstance(m, (_layers.SpikeCount, _layers.MaxOverTime, _layers.MeanOverTime, _layers.MaxMembrane)):
            raise NIRConversionError(
                f"model[{name!r}]: {type(m).__name__} reduces over time, which NIR cannot express; export "
                "the model without the readout (e.g. model[:-1]) and reduce the NIR output yourself")
        if _loihi_module(m) and type(m).__name__ == "Neuron" and type(m).__module__.endswith(".cuba"):
            return self._loihi_cuba(name, m, shape)
        if _loihi_module(m):
            raise NIRConversionError(
                f"model[{name!r}]: the Loihi module {type(m).__module__}.{type(m).__name__} cannot be "
                "expressed in NIR (fixed-point states, integer decays and the Loihi step order have no NIR node)")
        raise NIRConversionError(
            f"model[{name!r}]: {type(m).__module__}.{type(m).__name__} cannot be expressed in NIR; supported: "
            "nn.Sequential of spikefuse layers (Dense, Conv1d, Conv2d, AvgPool2d, SumPool2d, Flatten, "
            "LeakyIntegrator, RecurrentLIF, Block), neurons IF, LIF, ParametricLIF, CubaLIF, EventPropLIF, "
            "and the spikefuse.interop.nir modules")

    def _need_shape(self, name, m, shape):
        if shape is None:
            raise NIRConversionError(
                f"input_shape: required because {type(m).__name__} at model[{name!r}] is reached before any "
                "layer fixes the feature shape; pass input_shape=(features...) without time and batch")
        return tuple(int(s) for s in shape)

    def _conv(self, name, m, shape):
        nirm = _require_nir()
        shape = self._need_shape(name, m, shape)
        nd = 1 if isinstance(m, nn.Conv1d) else 2
        if len(shape) != nd + 1 or shape[0] != m.in_channels:
            raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects input (C={m.in_channels}, "
                                     f"{'L' if nd == 1 else 'H, W'}), the previous layer gives {shape}")
        if m.padding_mode != "zeros":
            raise NIRConversionError(f"model[{name!r}]: padding_mode={m.padding_mode!r} cannot be expressed "
                                     "in NIR (zero padding only)")
        w = m.effective_weight() if hasattr(m, "effective_weight") else m.weight
        bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
        pad = m.padding if isinstance(m.padding, str) else tuple(int(p) for p in m.padding)
        meta = {"spikefuse": {"module": f"Conv{nd}d", "bias": m.bias is not None, "groups": int(m.groups)}}
        with torch.no_grad():
            y = m._conv_forward(torch.zeros(1, *shape, dtype=w.dtype, device=w.device), w, m.bias)
        out = tuple(y.shape[1:])
        w = _ungroup(w.detach(), int(m.groups))
        if nd == 1:
            node = _nir.Conv1d(input_shape=int(shape[1]), weight=_np(w), stride=int(m.stride[0]),
                               padding=pad if isinstance(pad, str) else int(pad[0]),
                               dilation=int(m.dilation[0]), groups=1, bias=bias, metadata=meta)
        else:
            node = nirm.Conv2d(input_shape=tuple(shape[1:]), weight=_np(w), stride=tuple(int(s) for s in m.stride),
                               padding=pad, dilation=tuple(int(d) for d in m.dilation), groups=1,
                               bias=bias, metadata=meta)
        n = self.add(name, node)
        return n, n, out

    def _pool(self, name, m, shape):
        nirm = _require_nir()
        shape = self._need_shape(name, m, shape)
        if len(shape) != 3:
            raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects (C, H, W) features, got {shape}")
        k, s, p = (tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,))) for a in
                   (m.kernel_size, m.stride, m.padding))
        with torch.no_grad():
            out = tuple(m._pool(torch.zeros(1, *shape)).shape[1:])
        cls = nirm.SumPool2d if isinstance(m, _layers.SumPool2d) else nirm.AvgPool2d
        node = cls(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
        n = self.add(name, node)
        return n, n, out

    def _lif(self, name, m, shape):
        nirm = _require_nir()
        shape = self._need_shape(name, m, shape)
        cls = _sj_kind(m)
        tau = None if cls == "IF" else m.tau
        v_reset = m.v_reset
        soft = v_reset is None
        if soft:
            msg = (f"model[{name!r}]: {cls} with soft reset (v_reset=None) cannot be expressed in NIR "
                   "(NIR neurons reset to v_reset)")
            if not self.lossy:
                raise NIRConversionError(msg + "; pass lossy=True to export it as a reset to 0")
            warnings.warn(msg + "; exported as a hard reset to 0 (lossy=True)", stacklevel=4)
        rest = 0.0 if soft else v_reset
        decay_input = bool(getattr(m, "decay_input", True))
        meta = {"module": cls, "soft_reset": soft, "detach_reset": bool(m.detach_reset),
                "decay_input": decay_input, "surrogate": _surrogate_meta(m.surrogate),
                "threshold_rule": ">=", "step_mode": str(getattr(m, "step_mode", "m"))}
        thr = _full(m.v_threshold, shape, name)
        meta["exact"] = _exact(v_threshold=m.v_threshold, v_reset=v_reset)
        if tau is None:
            node = nirm.IF(r=_full(1.0 / self.dt, shape, name), v_threshold=thr, v_reset=_full(rest, shape, name),
                           metadata={"spikefuse": meta})
        else:
            tau_d = tau.detach().double().cpu() if isinstance(tau, Tensor) else float(tau)
            if isinstance(tau_d, Tensor) and tau_d.numel() > 1:
                _full(tau_d, shape, name)  # shape check
                meta["tau"] = np.broadcast_to(tau_d.numpy(), shape).astype(np.float64).copy()
            else:
                meta["tau"] = float(tau_d)
            if cls == "ParametricLIF":
                meta["w"] = float(m.w.detach())
                meta["init_tau"] = float(m.init_tau)
            node = nirm.LIF(tau=_full(tau_d * self.dt, shape, name),
                            r=_full(1.0 if decay_input else tau_d, shape, name),
                            v_leak=_full(rest, shape, name), v_threshold=thr, v_reset=_full(rest, shape, name),
                            metadata={"spikefuse": meta})
        n = self.add(name, node)
        return n, n, shape

    def _cuba(self, name, m, shape, kind="CubaLIF"):
        nirm = _require_nir()
        if kind == "EventPropLIF":
            if shape is not None and tuple(shape) != (m.in_features,):
                raise NIRConversionError(f"model[{name!r}]: EventPropLIF expects {m.in_features} input features, "
                                         f"the previous layer gives shape {tuple(shape)}")
            shape = (m.out_features,)
        shape = self._need_shape(name, m, shape)
        mdt = float(getattr(m, "dt"))
        if not math.isclose(mdt, self.dt, rel_tol=1e-9):
            raise NIRConversionError(f"model[{name!r}]: {kind} integrates with dt={mdt:g} but to_nir was given "
                                     f"dt={self.dt:g}; export with dt={mdt:g}")
        g = lambda k: getattr(m, k)  # noqa: E731
        tau_syn = _full(g("tau_syn"), shape, name)
        keys = ("leak", "reset", "threshold", "tau_syn", "tau_mem", "alpha")
        meta = {"module": kind, "surrogate": _surrogate_meta(_cuba_surrogate(m)), "detach_reset": True,
                "exact": _exact(**{k: getattr(m, k, None) for k in keys}),
                "learnable": ",".join(k for k in keys if isinstance(getattr(m, k, None), nn.Parameter))}
        for k in ("method", "gradient", "current_index"):
            if isinstance(getattr(m, k, None), str):
                meta[k] = getattr(m, k)
        if kind == "EventPropLIF":
            meta["membrane_grad"] = bool(m.membrane_grad)
        node = nirm.CubaLIF(tau_syn=tau_syn, tau_mem=_full(g("tau_mem"), shape, name), r=_full(1.0, shape, name),
                            v_leak=_full(g("leak"), shape, name), v_threshold=_full(g("threshold"), shape, name),
                            v_reset=_full(g("reset"), shape, name),
                            w_in=_full(torch.as_tensor(g("tau_syn"), dtype=torch.float64) / self.dt, shape, name),
                            metadata={"spikefuse": meta})
        if kind == "EventPropLIF":
            syn = nirm.Linear(weight=_np(m.weight), metadata={"spikefuse": {"module": "EventPropLIF.synapse"}})
            ns = self.add(f"{name}.synapse", syn)
            nn_ = self.add(f"{name}.neuron", node)
            self.edges.append((ns, nn_))
            return ns, nn_, shape
        n = self.add(name, node)
        return n, n, shape

    def _native_neuron(self, name, m, shape):
        nirm = _require_nir()
        if abs(m.dt - self.dt) > 1e-12 * max(m.dt, self.dt):
            raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} was built for dt={m.dt:g} but "
                                     f"to_nir was given dt={self.dt:g}")
        meta = {"spikefuse": {"module": type(m).__name__, "surrogate": _surrogate_meta(m.surrogate),
                              "detach_reset": bool(m.detach_reset)}}
        a = {k: _np(getattr(m, k)) for k, _ in m.named_buffers()}
        if isinstance(m, NIRLIF):
            node = nirm.LIF(tau=a["tau"], r=a["r"], v_leak=a["v_leak"], v_threshold=a["v_threshold"],
                            v_reset=a["v_reset"], metadata=meta)
        elif isinstance(m, NIRIF):
            node = nirm.IF(r=a["r"], v_threshold=a["v_threshold"], v_reset=a["v_reset"], metadata=meta)
        elif isinstance(m, NIRLI):
            node = nirm.LI(tau=a["tau"], r=a["r"], v_leak=a["v_leak"])
        elif isinstance(m, NIRIntegrator):
            node = nirm.I(r=a["r"])
        elif isinstance(m, NIRCubaLIF):
            node = nirm.CubaLIF(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"], v_leak=a["v_leak"],
                                v_threshold=a["v_threshold"], v_reset=a["v_reset"], w_in=a["w_in"], metadata=meta)
        else:
            node = nirm.CubaLI(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"], v_leak=a["v_leak"],
                               w_in=a["w_in"])
        n = self.add(name, node)
        return n, n, tuple(m.r.shape) or shape

    def _loihi_cuba(self, name, m, shape):
        """Loihi CUBA (lava-dl) as its float forward-Euler counterpart; only with ``lossy=True``."""
        nirm = _require_nir()
        what = f"model[{name!r}]: Loihi CUBA neuron"
        if not self.lossy:
            raise NIRConversionError(
                f"{what} cannot be expressed exactly in NIR (fixed-point states and decays; its voltage uses "
                "the current of the same step, NIR's forward Euler the previous one); pass lossy=True to export "
                "CubaLIF(tau_syn=dt/current_decay, tau_mem=dt/voltage_decay, ...)")
        if getattr(m, "norm", None) is not None:
            raise NIRConversionError(f"{what} with norm cannot be expressed in NIR (the norm acts between the "
                                     "current and voltage integrators)")
        if getattr(m, "graded_spike", False):
            raise NIRConversionError(f"{what} with graded_spike=True cannot be expressed in NIR (NIR spikes are 0/1)")
        shape = self._need_shape(name, m, shape)
        if not m.shared_param and m.shape is None:
            raise NIRConversionError(f"{what} has per-channel decays that are sampled at the first forward; run "
                                     "one forward before exporting")

        def frac(d):  # decays as the fraction lost per step, along the first feature dim
            d = torch.round(d.detach().double().cpu()) / m.p_scale
            d = d.reshape(-1)
            return d.reshape((-1,) + (1,) * (len(shape) - 1)) if d.numel() > 1 else d.reshape(())
        du, dv = frac(m.current_decay), frac(m.voltage_decay)
        if bool((du <= 0).any()) or bool((dv <= 0).any()):
            raise NIRConversionError(f"{what}: a decay of 0 (no leak) has no finite NIR time constant")
        warnings.warn(f"{what} exported with lossy=True: fixed-point arithmetic is lost and NIR's forward Euler "
                      "delays the synaptic path by one step", stacklevel=4)
        meta = {"module": "loihi.cuba.Neuron", "iDecay": _np(torch.round(m.current_decay.detach())),
                "vDecay": _np(torch.round(m.voltage_decay.detach())), "vThMant": int(m.v_th_mant),
                "scale": int(m.w_scale), "surrogate": {"name": "slayer_exp"}}
        node = nirm.CubaLIF(tau_syn=_full(self.dt / du, shape, name), tau_mem=_full(self.dt / dv, shape, name),
                            r=_full(1.0 / dv, shape, name), v_leak=_full(0.0, shape, name),
                            v_threshold=_full(m.threshold, shape, name), v_reset=_full(0.0, shape, name),
                            w_in=_full(1.0 / du, shape, name), metadata={"spikefuse": meta})
        n = self.add(name, node)
        return n, n, shape

    def _recurrent(self, name, m, shape):
        nirm = _require_nir()
        if m.v_reset is None:
            msg = (f"model[{name!r}]: RecurrentLIF with soft reset (v_reset=None) cannot be expressed in NIR")
            if not self.lossy:
                raise NIRConversionError(msg + "; pass lossy=True to export it as a reset to 0")
            warnings.warn(msg + "; exported as a hard reset to 0 (lossy=True)", stacklevel=4)
        if shape is not None and tuple(shape) != (m.input.in_features,):
            raise NIRConversionError(f"model[{name!r}]: RecurrentLIF expects {m.input.in_features} input features, "
                                     f"the previous layer gives shape {tuple(shape)}")
        n_out = m.out_features
        rest = 0.0 if m.v_reset is None else m.v_reset
        so = (n_out,)
        w_in = m.input.effective_weight()
        part = {"spikefuse": {"module": "RecurrentLIF.input"}}
        a_in = (nirm.Affine(weight=_np(w_in), bias=_np(m.input.bias), metadata=part) if m.input.bias is not None
                else nirm.Linear(weight=_np(w_in), metadata=part))
        meta = {"module": "RecurrentLIF", "tau": float(m.tau), "soft_reset": m.v_reset is None,
                "detach_reset": bool(m.detach_reset), "decay_input": bool(m.decay_input),
                "surrogate": _surrogate_meta(m.surrogate), "threshold_rule": ">=",
                "exact": _exact(v_threshold=m.v_threshold, v_reset=m.v_reset)}
        lif = nirm.LIF(tau=_full(m.tau * self.dt, so, name), r=_full(1.0 if m.decay_input else m.tau, so, name),
                       v_leak=_full(rest, so, name), v_threshold=_full(m.v_threshold, so, name),
                       v_reset=_full(rest, so, name), metadata={"spikefuse": meta})
        rec = nirm.Linear(weight=_np(m.recurrent.effective_weight()),
                          metadata={"spikefuse": {"module": "RecurrentLIF.recurrent"}})
        ni = self.add(f"{name}.input", a_in)
        nl = self.add(f"{name}.lif", lif)
        nr = self.add(f"{name}.recurrent", rec)
        self.edges += [(ni, nl), (nl, nr), (nr, nl)]
        return ni, nl, so

    def _subgraph(self, name, m, shape):
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise NIRConversionError(f"model[{name!r}]: a NIRGraphModule inside a Sequential must have one input "
                                     f"and one output, got {m.inputs} -> {m.outputs}")
        shapes = {m.inputs[0]: shape}
        entry_of, exit_of = {}, {}
        for n in m.order:
            preds = [a for a, b in m.edges if b == n and (a, n) not in m.back_edges]
            s_in = shapes.get(preds[0]) if preds else None
            e, x, s_out = self.convert(f"{name}.{n}" if name else n, m.module(n), s_in)
            if e is None:
                raise NIRConversionError(f"model[{name!r}]: node {n!r} is not exportable")
            entry_of[n], exit_of[n], shapes[n] = e, x, s_out
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
                self.edges.append((exit_of[a], entry_of[b]))
        return entry, exit_, shapes.get([a for a, b in m.edges if b in m.outputs][0])


def _ungroup(w: Tensor, groups: int) -> Tensor:
    """The weight of a grouped convolution as an equivalent ``groups=1`` weight (zeros outside
    the diagonal blocks). nir's shape inference reads the input channels from ``weight.shape[1]``
    and so cannot type-check grouped convolutions."""
    if groups == 1:
        return w
    c_out, c_in_g = w.shape[0], w.shape[1]
    full = w.new_zeros((c_out, c_in_g * groups) + tuple(w.shape[2:]))
    o_g = c_out // groups
    for g in range(groups):
        full[g * o_g:(g + 1) * o_g, g * c_in_g:(g + 1) * c_in_g] = w[g * o_g:(g + 1) * o_g]
    return full


def _cuba_surrogate(m):
    s = getattr(m, "surrogate", None)
    if isinstance(s, Surrogate):
        return s
    alpha = getattr(m, "alpha", None)
    if isinstance(alpha, Tensor):  # per-neuron slopes: the metadata keeps one (the first)
        alpha = alpha.detach().reshape(-1)[0]
    if alpha is not None:
        return _surrogate.SuperSpike(float(alpha))
    return _surrogate.SuperSpike(50.0)


def to_nir(model: nn.Module, dt: float, *, input_shape: Optional[Sequence[int]] = None,
           lossy: bool = False):
    """Export a spikefuse model to a :class:`nir.NIRGraph`.

    ``model``: an ``nn.Sequential`` (nested Sequentials and ``layers.Block`` are flattened into one
    chain), a single supported module, or a :class:`NIRGraphModule`. ``dt``: the time step in
    seconds that one spikefuse step stands for (SpikingJelly-family ``tau`` in steps becomes
    ``tau * dt``; hxtorch ``CubaLIF`` modules must have been built with the same ``dt``).
    ``input_shape``: the feature shape of the input (without time and batch); needed when the
    first layer does not fix it (a convolution, a pool, or a neuron first). ``lossy``: export
    soft-reset neurons as a reset to 0 and Loihi CUBA neurons as their float forward-Euler
    counterpart (with a warning) instead of raising.

    The discretisation is forward Euler with step ``dt`` (see the module docstring and
    docs/nir.md). Node names are the module paths (``"0"``, ``"2.neuron"``); the graph gets
    ``input`` and ``output`` nodes. Raises :class:`NIRConversionError` (a ``ValueError``) naming
    the first module that NIR cannot express.

    >>> import torch
    >>> from spikefuse import layers
    >>> g = to_nir(torch.nn.Sequential(layers.Dense(2, 3), layers.LeakyIntegrator(4.0)), dt=1e-3)
    >>> type(g.nodes["1"]).__name__, float(g.nodes["1"].tau[0])
    ('LI', 0.004000000189989805)
    """
    nirm = _require_nir()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {_describe(model)}")
    dt = _check_dt(dt)
    check_bool("lossy", lossy)
    if input_shape is not None:
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        try:
            input_shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"input_shape: expected a sequence of positive ints, got {input_shape!r}") from None
        if not input_shape or any(s <= 0 for s in input_shape):
            raise ValueError(f"input_shape: expected a non-empty sequence of positive ints, got {input_shape!r}")
    ex = _Exporter(dt, lossy)
    if isinstance(model, NIRGraphModule):
        return _export_graph_module(ex, model, input_shape)
    leaves = ex.leaves(model, "")
    shape = input_shape
    if shape is None:
        for _, m in leaves:
            if isinstance(m, nn.Linear):
                shape = (m.in_features,)
                break
            if isinstance(m, _layers.RecurrentLIF):
                shape = (m.input.in_features,)
                break
            ep_cls = _eventprop_class()
            if ep_cls is not None and isinstance(m, ep_cls):
                shape = (m.in_features,)
                break
            if not isinstance(m, (nn.Identity, nn.Dropout)):
                break
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
        it = getattr(ex.nodes[chain_edges[0][1]], "input_type", None)
        it = it.get("input") if isinstance(it, dict) else None
        if it is not None:
            in_shape = tuple(int(v) for v in np.asarray(it).reshape(-1))
    if in_shape is None:
        raise NIRConversionError("input_shape: could not infer the input shape; pass input_shape=(features...)")
    nodes = OrderedDict([("input", nirm.Input(input_type={"input": np.array(in_shape)}))])
    nodes.update(ex.nodes)
    nodes["output"] = nirm.Output(output_type={"output": np.array(shape)})
    edges = chain_edges + ex.edges + [(prev, "output")]
    return nirm.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": dt}},
                         type_check=True)


def _export_graph_module(ex, model, input_shape):
    """A top-level :class:`NIRGraphModule` (any number of inputs and outputs, cycles allowed)."""
    nirm = _require_nir()
    shapes: Dict[str, Optional[tuple]] = {i: input_shape for i in model.inputs}
    entry_of, exit_of = {}, {}
    for n in model.order:
        preds = [a for a, b in model.edges if b == n and (a, n) not in model.back_edges]
        e, x, s_out = ex.convert(n, model.module(n), shapes.get(preds[0]) if preds else None)
        if e is None:  # an identity: pass the input through
            raise NIRConversionError(f"model: graph node {n!r} ({type(model.module(n)).__name__}) exports to nothing; "
                                     "remove it from the graph")
        entry_of[n], exit_of[n], shapes[n] = e, x, s_out
    nodes = OrderedDict()
    for i in model.inputs:
        shape = input_shape
        if shape is None:
            for a, b in model.edges:
                it = getattr(ex.nodes.get(entry_of.get(b)), "input_type", None) if a == i else None
                it = it.get("input") if isinstance(it, dict) else None
                if it is not None:
                    shape = tuple(int(v) for v in np.asarray(it).reshape(-1))
                    break
        if shape is None:
            raise NIRConversionError(f"input_shape: could not infer the shape of graph input {i!r}; "
                                     "pass input_shape=(features...)")
        nodes[i] = nirm.Input(input_type={"input": np.array(shape)})
    nodes.update(ex.nodes)
    edges = list(ex.edges)
    for a, b in model.edges:
        src = a if a in model.inputs else exit_of[a]
        dst = b if b in model.outputs else entry_of[b]
        edges.append((src, dst))
    for o in model.outputs:
        pred = [a for a, b in model.edges if b == o][0]
        nodes[o] = nirm.Output(output_type={"output": np.array(shapes[pred])})
    return nirm.NIRGraph(nodes=nodes, edges=edges, metadata={"spikefuse": {"dt": ex.dt}}, type_check=True)
