"""Export: spikefuse modules -> :class:`nir.NIRGraph` (:func:`to_nir`).

Every exportable module type has one converter in :data:`EXPORTERS` (``type -> fn(ex, name,
module, shape) -> (entry node, exit node, output shape)``), registered with :func:`exporter`; a
module is looked up along its class's MRO, so subclasses use their base's converter. Types that
NIR cannot express map to a :class:`Refused` entry that carries the message, and identities
(dropout at inference) to :func:`_identity`. Types from modules that need not be imported with
this one (the neuron families) are registered on first use by :func:`_register_neurons`.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ... import layers as _layers
from ... import surrogate as _surrogate
from ..._validate import _describe, check_bool
from ...surrogate import Surrogate
from ._common import NIRConversionError, _check_dt, _require_nir
from .graph import NIRGraphModule
from .modules import (Delay, NIRCubaLI, NIRCubaLIF, NIRFlatten, NIRIF, NIRIntegrator, NIRLI, NIRLIF, Scale,
                      Threshold)

__all__ = ["to_nir", "EXPORTERS", "exporter", "Refused", "PEER_IMPORT_DT"]

Shape = Optional[Tuple[int, ...]]
Converter = Callable[["_Exporter", str, nn.Module, Shape], Tuple[Optional[str], Optional[str], Shape]]
#: module type -> converter (or a :class:`Refused` entry); filled by :func:`exporter`
EXPORTERS: Dict[type, Converter] = {}


def exporter(*types: type):
    """Register the decorated function as the converter of ``types`` in :data:`EXPORTERS`."""
    def register(fn):
        for t in types:
            EXPORTERS[t] = fn
        return fn
    return register


@dataclasses.dataclass(frozen=True)
class Refused:
    """An :data:`EXPORTERS` entry for a type NIR cannot express: converting raises
    :class:`NIRConversionError` with ``message`` (``{cls}``: the class name, ``{path}``: module.class)."""

    message: str

    def __call__(self, ex, name, m, shape):
        cls = type(m)
        raise NIRConversionError(f"model[{name!r}]: " + self.message.format(
            cls=cls.__name__, path=f"{cls.__module__}.{cls.__name__}"))


def _identity(ex, name, m, shape):
    """Identity at inference (dropout): no NIR node, NIR graphs describe inference."""
    return None, None, shape


EXPORTERS[nn.Identity] = EXPORTERS[nn.Dropout] = _identity
EXPORTERS[_layers.MaxPool2d] = Refused("MaxPool2d cannot be expressed in NIR (NIR has only SumPool2d and AvgPool2d)")
for _t in (_layers.SpikeCount, _layers.MaxOverTime, _layers.MeanOverTime, _layers.MaxMembrane):
    EXPORTERS[_t] = Refused("{cls} reduces over time, which NIR cannot express; export the model without the "
                            "readout (e.g. model[:-1]) and reduce the NIR output yourself")
_UNSUPPORTED = ("{path} cannot be expressed in NIR; supported: nn.Sequential of spikefuse layers (Dense, Conv1d, "
                "Conv2d, AvgPool2d, SumPool2d, Flatten, LeakyIntegrator, RecurrentLIF, Block), neurons IF, LIF, "
                "ParametricLIF, CubaLIF, EventPropLIF, and the spikefuse.interop.nir modules")
_neurons_registered = False


def _register_neurons() -> None:
    """Register the neuron families' types (imported here, on first use, not with this module)."""
    global _neurons_registered
    if _neurons_registered:
        return
    from ...neuron import cuba, eventprop, lif
    from ...neuron.loihi import base as loihi_base
    from ...neuron.loihi import cuba as loihi_cuba
    from ...neuron.loihi import dropout, norm, sigma_delta
    exporter(lif.IF, lif.LIF, lif.ParametricLIF)(_lif)
    exporter(cuba.CubaLIF)(_cuba)
    EXPORTERS[cuba.CubaRefractoryLIF] = Refused("CubaRefractoryLIF cannot be expressed in NIR (NIR neurons have "
                                                "no refractory period)")
    exporter(eventprop.EventPropLIF)(_eventprop)
    exporter(loihi_cuba.Neuron)(_loihi_cuba)
    EXPORTERS[dropout.Dropout] = _identity
    loihi = Refused("the Loihi module {path} cannot be expressed in NIR (fixed-point states, integer decays and "
                    "the Loihi step order have no NIR node)")
    for t in (loihi_base.Neuron, norm.MeanOnlyBatchNorm, norm.WgtScaleBatchNorm, sigma_delta.Sigma,
              sigma_delta.Delta):
        EXPORTERS[t] = loihi
    _IN_SHAPE[eventprop.EventPropLIF] = lambda m: (m.in_features,)
    _refuse_unconverted_families()
    _neurons_registered = True


def _refuse_unconverted_families() -> None:
    """A registry family recorded as refused (``nir=None``) whose module has no entry yet gets a
    :class:`Refused` entry carrying the record's ``nir_note``."""
    from ... import families

    for f in families.FAMILIES.values():
        cls = families.load(f.module)
        if f.nir is None and not any(c in EXPORTERS for c in cls.__mro__):
            EXPORTERS[cls] = Refused(f"{{cls}} cannot be expressed in NIR ({f.nir_note})")


def converter_for(cls: type) -> Optional[Converter]:
    """The :data:`EXPORTERS` entry of ``cls`` or of its nearest registered base class."""
    _register_neurons()
    for c in cls.__mro__:
        if c in EXPORTERS:
            return EXPORTERS[c]
    return None


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

    def convert(self, name, m, shape):
        """One leaf -> (entry node name, exit node name, output shape), through :data:`EXPORTERS`."""
        fn = converter_for(type(m))
        if fn is None:
            raise NIRConversionError(f"model[{name!r}]: " + _UNSUPPORTED.format(
                path=f"{type(m).__module__}.{type(m).__name__}"))
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


# ---------------------------------------------------------------------------------- synapses
def _weight(m):
    return m.effective_weight() if hasattr(m, "effective_weight") else m.weight


@exporter(nn.Linear)  # layers.Dense included
def _dense(ex, name, m, shape):
    nirm = _require_nir()
    ex.check_features(name, type(m).__name__, m.in_features, shape)
    meta = {"module": "Dense"}
    if getattr(m, "weight_hook", None) is not None:
        meta["weight_hook"] = "applied"
    if m.bias is not None:
        node = nirm.Affine(weight=_np(_weight(m)), bias=_np(m.bias), metadata={"spikefuse": meta})
    else:
        node = nirm.Linear(weight=_np(_weight(m)), metadata={"spikefuse": meta})
    return ex.add_one(name, node, (m.out_features,))


def _conv_node(nirm, m, shape, w, bias, meta):
    pad = m.padding if isinstance(m.padding, str) else tuple(int(p) for p in m.padding)
    if isinstance(m, nn.Conv1d):
        return nirm.Conv1d(input_shape=int(shape[1]), weight=_np(w), stride=int(m.stride[0]),
                           padding=pad if isinstance(pad, str) else int(pad[0]),
                           dilation=int(m.dilation[0]), groups=1, bias=bias, metadata=meta)
    return nirm.Conv2d(input_shape=tuple(shape[1:]), weight=_np(w), stride=tuple(int(s) for s in m.stride),
                       padding=pad, dilation=tuple(int(d) for d in m.dilation), groups=1, bias=bias, metadata=meta)


@exporter(nn.Conv1d, nn.Conv2d)
def _conv(ex, name, m, shape):
    nirm = _require_nir()
    shape = ex.need_shape(name, m, shape)
    nd = 1 if isinstance(m, nn.Conv1d) else 2
    if len(shape) != nd + 1 or shape[0] != m.in_channels:
        raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects input (C={m.in_channels}, "
                                 f"{'L' if nd == 1 else 'H, W'}), the previous layer gives {shape}")
    if m.padding_mode != "zeros":
        raise NIRConversionError(f"model[{name!r}]: padding_mode={m.padding_mode!r} cannot be expressed "
                                 "in NIR (zero padding only)")
    w = _weight(m)
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
    meta = {"spikefuse": {"module": f"Conv{nd}d", "bias": m.bias is not None, "groups": int(m.groups)}}
    with torch.no_grad():
        y = m._conv_forward(torch.zeros(1, *shape, dtype=w.dtype, device=w.device), w, m.bias)
    node = _conv_node(nirm, m, shape, _ungroup(w.detach(), int(m.groups)), bias, meta)
    return ex.add_one(name, node, tuple(y.shape[1:]))


@exporter(_layers.AvgPool2d, _layers.SumPool2d)
def _pool(ex, name, m, shape):
    nirm = _require_nir()
    shape = ex.need_shape(name, m, shape)
    if len(shape) != 3:
        raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} expects (C, H, W) features, got {shape}")
    k, s, p = (tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,))) for a in
               (m.kernel_size, m.stride, m.padding))
    with torch.no_grad():
        out = tuple(m._pool(torch.zeros(1, *shape)).shape[1:])
    cls = nirm.SumPool2d if isinstance(m, _layers.SumPool2d) else nirm.AvgPool2d
    return ex.add_one(name, cls(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p)), out)


@exporter(_layers.Flatten)
def _flatten(ex, name, m, shape):
    shape = ex.need_shape(name, m, shape)
    node = _require_nir().Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1,
                                  metadata={"spikefuse": {"module": "Flatten"}})
    return ex.add_one(name, node, (int(np.prod(shape)),))


@exporter(NIRFlatten)
def _nir_flatten(ex, name, m, shape):
    shape = ex.need_shape(name, m, shape)
    node = _require_nir().Flatten(input_type={"input": np.array(shape)}, start_dim=m.start_dim, end_dim=m.end_dim)
    return ex.add_one(name, node, tuple(int(v) for v in node.output_type["output"]))


@exporter(Threshold)
def _threshold(ex, name, m, shape):
    node = _require_nir().Threshold(threshold=_np(m.threshold), metadata={"spikefuse": {
        "module": "Threshold", "surrogate": _surrogate_meta(m.surrogate)}})
    return ex.add_one(name, node, tuple(m.threshold.shape) or shape)


@exporter(Delay)
def _delay(ex, name, m, shape):
    node = _require_nir().Delay(delay=(m.steps.double() * ex.dt).numpy())
    return ex.add_one(name, node, tuple(m.steps.shape) or shape)


@exporter(Scale)
def _scale(ex, name, m, shape):
    return ex.add_one(name, _require_nir().Scale(scale=_np(m.scale)), tuple(m.scale.shape) or shape)


# ---------------------------------------------------------------------------------- neurons
@exporter(_layers.LeakyIntegrator)
def _leaky_integrator(ex, name, m, shape):
    shape = ex.need_shape(name, m, shape)
    node = _require_nir().LI(tau=_full(m.tau * ex.dt, shape, name),
                             r=_full(1.0 if m.decay_input else m.tau, shape, name), v_leak=_full(0.0, shape, name),
                             metadata={"spikefuse": {"module": "LeakyIntegrator", "tau": float(m.tau),
                                                     "decay_input": bool(m.decay_input)}})
    return ex.add_one(name, node, shape)


def _sj_kind(m) -> str:
    """'IF', 'LIF' or 'ParametricLIF' for a spikefuse.neuron.lif module (subclasses included)."""
    from ...neuron import lif
    for cls in (lif.ParametricLIF, lif.LIF, lif.IF):
        if isinstance(m, cls):
            return cls.__name__
    raise TypeError(type(m).__name__)  # pragma: no cover


def _tau_meta(tau, shape, name):
    """The exact tau (in steps) for the metadata: a float, or a float64 array of the layer shape."""
    tau_d = tau.detach().double().cpu() if isinstance(tau, Tensor) else float(tau)
    if isinstance(tau_d, Tensor) and tau_d.numel() > 1:
        _full(tau_d, shape, name)  # shape check
        return tau_d, np.broadcast_to(tau_d.numpy(), shape).astype(np.float64).copy()
    return tau_d, float(tau_d)


def _lif(ex, name, m, shape):
    """SpikingJelly IF / LIF / ParametricLIF (registered by :func:`_register_neurons`)."""
    nirm = _require_nir()
    shape = ex.need_shape(name, m, shape)
    cls = _sj_kind(m)
    soft = ex.soft_reset(f"model[{name!r}]: {cls}", m.v_reset)
    rest = 0.0 if soft else m.v_reset
    decay_input = bool(getattr(m, "decay_input", True))
    meta = {"module": cls, "soft_reset": soft, "detach_reset": bool(m.detach_reset),
            "decay_input": decay_input, "surrogate": _surrogate_meta(m.surrogate),
            "threshold_rule": ">=", "step_mode": str(getattr(m, "step_mode", "m")),
            "exact": _exact(v_threshold=m.v_threshold, v_reset=m.v_reset)}
    common = dict(v_threshold=_full(m.v_threshold, shape, name), v_reset=_full(rest, shape, name),
                  metadata={"spikefuse": meta})
    if cls == "IF":
        return ex.add_one(name, nirm.IF(r=_full(1.0 / ex.dt, shape, name), **common), shape)
    tau_d, meta["tau"] = _tau_meta(m.tau, shape, name)
    if cls == "ParametricLIF":
        meta["w"] = float(m.w.detach())
        meta["init_tau"] = float(m.init_tau)
    node = nirm.LIF(tau=_full(tau_d * ex.dt, shape, name), r=_full(1.0 if decay_input else tau_d, shape, name),
                    v_leak=_full(rest, shape, name), **common)
    return ex.add_one(name, node, shape)


def _cuba_node(ex, name, m, shape, kind):
    """The NIR CubaLIF node of an hxtorch CubaLIF / EventPropLIF (same forward recurrence)."""
    nirm = _require_nir()
    mdt = float(getattr(m, "dt"))
    if not math.isclose(mdt, ex.dt, rel_tol=1e-9):
        raise NIRConversionError(f"model[{name!r}]: {kind} integrates with dt={mdt:g} but to_nir was given "
                                 f"dt={ex.dt:g}; export with dt={mdt:g}")
    keys = ("leak", "reset", "threshold", "tau_syn", "tau_mem", "alpha")
    meta = {"module": kind, "surrogate": _surrogate_meta(_cuba_surrogate(m)), "detach_reset": True,
            "exact": _exact(**{k: getattr(m, k, None) for k in keys}),
            "learnable": ",".join(k for k in keys if isinstance(getattr(m, k, None), nn.Parameter))}
    for k in ("method", "gradient", "current_index"):
        if isinstance(getattr(m, k, None), str):
            meta[k] = getattr(m, k)
    if kind == "EventPropLIF":
        meta["membrane_grad"] = bool(m.membrane_grad)
    f = lambda k: _full(getattr(m, k), shape, name)  # noqa: E731
    return nirm.CubaLIF(tau_syn=f("tau_syn"), tau_mem=f("tau_mem"), r=_full(1.0, shape, name), v_leak=f("leak"),
                        v_threshold=f("threshold"), v_reset=f("reset"),
                        w_in=_full(torch.as_tensor(m.tau_syn, dtype=torch.float64) / ex.dt, shape, name),
                        metadata={"spikefuse": meta})


def _cuba(ex, name, m, shape):
    """hxtorch CubaLIF (registered by :func:`_register_neurons`)."""
    shape = ex.need_shape(name, m, shape)
    return ex.add_one(name, _cuba_node(ex, name, m, shape, "CubaLIF"), shape)


def _eventprop(ex, name, m, shape):
    """EventPropLIF: ``Linear(W) -> CubaLIF`` (registered by :func:`_register_neurons`)."""
    ex.check_features(name, "EventPropLIF", m.in_features, shape)
    shape = (m.out_features,)
    node = _cuba_node(ex, name, m, shape, "EventPropLIF")
    syn = _require_nir().Linear(weight=_np(m.weight), metadata={"spikefuse": {"module": "EventPropLIF.synapse"}})
    ns = ex.add(f"{name}.synapse", syn)
    nn_ = ex.add(f"{name}.neuron", node)
    ex.edges.append((ns, nn_))
    return ns, nn_, shape


def _native_check(ex, name, m):
    if abs(m.dt - ex.dt) > 1e-12 * max(m.dt, ex.dt):
        raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} was built for dt={m.dt:g} but "
                                 f"to_nir was given dt={ex.dt:g}")
    meta = {"spikefuse": {"module": type(m).__name__, "surrogate": _surrogate_meta(m.surrogate),
                          "detach_reset": bool(m.detach_reset)}}
    return {k: _np(getattr(m, k)) for k, _ in m.named_buffers()}, meta


#: NIR* module type -> fn(buffers, metadata) -> its own NIR node
_NATIVE = {
    NIRLIF: lambda a, md: _require_nir().LIF(tau=a["tau"], r=a["r"], v_leak=a["v_leak"], v_threshold=a["v_threshold"],
                                         v_reset=a["v_reset"], metadata=md),
    NIRIF: lambda a, md: _require_nir().IF(r=a["r"], v_threshold=a["v_threshold"], v_reset=a["v_reset"], metadata=md),
    NIRLI: lambda a, md: _require_nir().LI(tau=a["tau"], r=a["r"], v_leak=a["v_leak"]),
    NIRIntegrator: lambda a, md: _require_nir().I(r=a["r"]),
    NIRCubaLIF: lambda a, md: _require_nir().CubaLIF(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"],
                                                 v_leak=a["v_leak"], v_threshold=a["v_threshold"],
                                                 v_reset=a["v_reset"], w_in=a["w_in"], metadata=md),
    NIRCubaLI: lambda a, md: _require_nir().CubaLI(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"],
                                               v_leak=a["v_leak"], w_in=a["w_in"]),
}


@exporter(*_NATIVE)
def _native_neuron(ex, name, m, shape):
    """The interop.nir neuron modules: their own node."""
    a, meta = _native_check(ex, name, m)
    node = next(make for cls, make in _NATIVE.items() if isinstance(m, cls))(a, meta)
    return ex.add_one(name, node, tuple(m.r.shape) or shape)


def _loihi_decays(m, shape, what):
    def frac(d):  # decays as the fraction lost per step, along the first feature dim
        d = (torch.round(d.detach().double().cpu()) / m.p_scale).reshape(-1)
        return d.reshape((-1,) + (1,) * (len(shape) - 1)) if d.numel() > 1 else d.reshape(())
    du, dv = frac(m.current_decay), frac(m.voltage_decay)
    if bool((du <= 0).any()) or bool((dv <= 0).any()):
        raise NIRConversionError(f"{what}: a decay of 0 (no leak) has no finite NIR time constant")
    return du, dv


def _loihi_cuba(ex, name, m, shape):
    """Loihi CUBA (lava-dl) as its float forward-Euler counterpart; only with ``lossy=True``
    (registered by :func:`_register_neurons`)."""
    nirm = _require_nir()
    what = f"model[{name!r}]: Loihi CUBA neuron"
    if not ex.lossy:
        raise NIRConversionError(
            f"{what} cannot be expressed exactly in NIR (fixed-point states and decays; its voltage uses "
            "the current of the same step, NIR's forward Euler the previous one); pass lossy=True to export "
            "CubaLIF(tau_syn=dt/current_decay, tau_mem=dt/voltage_decay, ...)")
    if getattr(m, "norm", None) is not None:
        raise NIRConversionError(f"{what} with norm cannot be expressed in NIR (the norm acts between the "
                                 "current and voltage integrators)")
    if getattr(m, "graded_spike", False):
        raise NIRConversionError(f"{what} with graded_spike=True cannot be expressed in NIR (NIR spikes are 0/1)")
    shape = ex.need_shape(name, m, shape)
    if not m.shared_param and m.shape is None:
        raise NIRConversionError(f"{what} has per-channel decays that are sampled at the first forward; run "
                                 "one forward before exporting")
    du, dv = _loihi_decays(m, shape, what)
    warnings.warn(f"{what} exported with lossy=True: fixed-point arithmetic is lost and NIR's forward Euler "
                  "delays the synaptic path by one step", stacklevel=4)
    meta = {"module": "loihi.cuba.Neuron", "iDecay": _np(torch.round(m.current_decay.detach())),
            "vDecay": _np(torch.round(m.voltage_decay.detach())), "vThMant": int(m.v_th_mant),
            "scale": int(m.w_scale), "surrogate": {"name": "slayer_exp"}}
    node = nirm.CubaLIF(tau_syn=_full(ex.dt / du, shape, name), tau_mem=_full(ex.dt / dv, shape, name),
                        r=_full(1.0 / dv, shape, name), v_leak=_full(0.0, shape, name),
                        v_threshold=_full(m.threshold, shape, name), v_reset=_full(0.0, shape, name),
                        w_in=_full(1.0 / du, shape, name), metadata={"spikefuse": meta})
    return ex.add_one(name, node, shape)


@exporter(_layers.RecurrentLIF)
def _recurrent(ex, name, m, shape):
    """RecurrentLIF: ``name.input -> name.lif -> name.recurrent -> name.lif`` (a cycle)."""
    nirm = _require_nir()
    soft = ex.soft_reset(f"model[{name!r}]: RecurrentLIF", m.v_reset)
    ex.check_features(name, "RecurrentLIF", m.input.in_features, shape)
    rest = 0.0 if soft else m.v_reset
    so = (m.out_features,)
    w_in = m.input.effective_weight()
    part = {"spikefuse": {"module": "RecurrentLIF.input"}}
    a_in = (nirm.Affine(weight=_np(w_in), bias=_np(m.input.bias), metadata=part) if m.input.bias is not None
            else nirm.Linear(weight=_np(w_in), metadata=part))
    meta = {"module": "RecurrentLIF", "tau": float(m.tau), "soft_reset": soft,
            "detach_reset": bool(m.detach_reset), "decay_input": bool(m.decay_input),
            "surrogate": _surrogate_meta(m.surrogate), "threshold_rule": ">=",
            "exact": _exact(v_threshold=m.v_threshold, v_reset=m.v_reset)}
    lif = nirm.LIF(tau=_full(m.tau * ex.dt, so, name), r=_full(1.0 if m.decay_input else m.tau, so, name),
                   v_leak=_full(rest, so, name), v_threshold=_full(m.v_threshold, so, name),
                   v_reset=_full(rest, so, name), metadata={"spikefuse": meta})
    rec = nirm.Linear(weight=_np(m.recurrent.effective_weight()),
                      metadata={"spikefuse": {"module": "RecurrentLIF.recurrent"}})
    ni = ex.add(f"{name}.input", a_in)
    nl = ex.add(f"{name}.lif", lif)
    nr = ex.add(f"{name}.recurrent", rec)
    ex.edges += [(ni, nl), (nl, nr), (nr, nl)]
    return ni, nl, so


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


#: leaf type -> its input feature shape, for to_nir without input_shape (EventPropLIF added lazily)
_IN_SHAPE: Dict[type, Callable[[nn.Module], tuple]] = {
    nn.Linear: lambda m: (m.in_features,),
    _layers.RecurrentLIF: lambda m: (m.input.in_features,),
}


def _first_shape(leaves) -> Shape:
    """The input shape that the first non-identity leaf fixes, or None."""
    for _, m in leaves:
        for c in type(m).__mro__:
            if c in _IN_SHAPE:
                return _IN_SHAPE[c](m)
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


#: the dt (s) that each peer's NIR importer assumes unless given one (``import_from_nir(graph,
#: dt=1e-4)`` in snnTorch and SpikingJelly)
PEER_IMPORT_DT = {"snntorch": 1e-4, "spikingjelly": 1e-4}


def _warn_target_dt(target, dt) -> None:
    if target is None:
        return
    if not isinstance(target, str):
        raise TypeError(f"target: expected None or a peer name (str), got {_describe(target)}")
    if target not in PEER_IMPORT_DT:
        raise ValueError(f"target: expected None or one of {sorted(PEER_IMPORT_DT)}, got {target!r}")
    peer_dt = PEER_IMPORT_DT[target]
    if not math.isclose(dt, peer_dt, rel_tol=1e-9):
        warnings.warn(
            f"to_nir: the graph is written for dt={dt:g} s, but {target}'s import_from_nir assumes "
            f"dt={peer_dt:g} s unless given one: import it with import_from_nir(graph, dt={dt!r}); at its "
            f"default its neurons run with time constants of {dt / peer_dt:g}x the exported number of steps",
            UserWarning, stacklevel=3)


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
    counterpart (with a warning) instead of raising. ``target``: ``"snntorch"`` or
    ``"spikingjelly"``, the tool that will import the graph: warns when ``dt`` is not the one its
    importer assumes by default (:data:`PEER_IMPORT_DT`); NIR carries no time step, so an importer
    at another ``dt`` runs the neurons with other decays, silently.

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
    _warn_target_dt(target, dt)
    ex = _Exporter(dt, lossy)
    if isinstance(model, NIRGraphModule):
        return _export_graph_module(ex, model, input_shape)
    return _export_chain(ex, model, input_shape)


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
