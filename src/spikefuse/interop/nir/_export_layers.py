"""Export converters of the layers, synapses and ``interop.nir`` modules (registered in
:data:`spikefuse.interop.nir._table.EXPORTERS` at import)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ... import layers as _layers
from ._common import NIRConversionError, _require_nir
from ._table import EXPORTERS, IN_SHAPE, Refused, exact as _exact, exporter, full as _full, identity as _identity
from ._table import np_array as _np, surrogate_meta as _surrogate_meta
from .modules import (Delay, NIRCubaLI, NIRCubaLIF, NIRFlatten, NIRIF, NIRIntegrator, NIRLI, NIRLIF, Scale,
                      Threshold)

EXPORTERS[nn.Identity] = EXPORTERS[nn.Dropout] = _identity
EXPORTERS[_layers.MaxPool2d] = Refused("MaxPool2d cannot be expressed in NIR (NIR has only SumPool2d and AvgPool2d)")
for _t in (_layers.SpikeCount, _layers.MaxOverTime, _layers.MeanOverTime, _layers.MaxMembrane):
    EXPORTERS[_t] = Refused("{cls} reduces over time, which NIR cannot express; export the model without the "
                            "readout (e.g. model[:-1]) and reduce the NIR output yourself")
IN_SHAPE[nn.Linear] = lambda m: (m.in_features,)
IN_SHAPE[_layers.RecurrentLIF] = lambda m: (m.input.in_features,)


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


def _per_neuron(t: Tensor, shape, name) -> np.ndarray:
    """A module's parameter as written: one value per neuron when it is shared (0-d) and the
    layer shape is known, as the peers' graphs carry them (their importers and nir's type
    inference read the neuron count from the parameter arrays; issue 14), else as it is."""
    if t.dim() == 0 and shape is not None:
        return _full(t, shape, name)
    return _np(t)


def _shared_meta(m_shape, shape) -> dict:
    """``{"shared": True}`` when :func:`_per_neuron` broadcast the module's 0-d parameters
    (the importer rebuilds them 0-d), else ``{}``."""
    return {"shared": True} if not tuple(m_shape) and shape is not None else {}


@exporter(Threshold)
def _threshold(ex, name, m, shape):
    meta = {"module": "Threshold", "surrogate": _surrogate_meta(m.surrogate), **_shared_meta(m.threshold.shape, shape)}
    node = _require_nir().Threshold(threshold=_per_neuron(m.threshold, shape, name), metadata={"spikefuse": meta})
    return ex.add_one(name, node, tuple(m.threshold.shape) or shape)


@exporter(Delay)
def _delay(ex, name, m, shape):
    steps = m.steps.double()
    delay = (np.full(tuple(shape), float(steps) * ex.dt) if steps.dim() == 0 and shape is not None
             else (steps * ex.dt).numpy())
    meta = _shared_meta(steps.shape, shape)
    node = _require_nir().Delay(delay=delay, metadata={"spikefuse": {"module": "Delay", **meta}} if meta else {})
    return ex.add_one(name, node, tuple(m.steps.shape) or shape)


@exporter(Scale)
def _scale(ex, name, m, shape):
    # a scalar scale is written per feature when the shape is known (nir infers the node type from it)
    scale = _full(m.scale, shape, name) if m.scale.dim() == 0 and shape is not None else _np(m.scale)
    return ex.add_one(name, _require_nir().Scale(scale=scale), tuple(m.scale.shape) or shape)


# ---------------------------------------------------------------------------------- neurons
@exporter(_layers.LeakyIntegrator)
def _leaky_integrator(ex, name, m, shape):
    shape = ex.need_shape(name, m, shape)
    node = _require_nir().LI(tau=_full(m.tau * ex.dt, shape, name),
                             r=_full(1.0 if m.decay_input else m.tau, shape, name), v_leak=_full(0.0, shape, name),
                             metadata={"spikefuse": {"module": "LeakyIntegrator", "tau": float(m.tau),
                                                     "decay_input": bool(m.decay_input)}})
    return ex.add_one(name, node, shape)



def _native_check(ex, name, m):
    if abs(m.dt - ex.dt) > 1e-12 * max(m.dt, ex.dt):
        raise NIRConversionError(f"model[{name!r}]: {type(m).__name__} was built for dt={m.dt:g} but "
                                 f"to_nir was given dt={ex.dt:g}")
    meta = {"spikefuse": {"module": type(m).__name__, "surrogate": _surrogate_meta(m.surrogate),
                          "detach_reset": bool(m.detach_reset)}}
    return meta


def _if_shared(md: dict) -> dict:
    """The metadata of a node that carries none unless its parameters were broadcast from 0-d."""
    return md if md["spikefuse"].get("shared") else {}


#: NIR* module type -> fn(buffers, metadata) -> its own NIR node
_NATIVE = {
    NIRLIF: lambda a, md: _require_nir().LIF(tau=a["tau"], r=a["r"], v_leak=a["v_leak"], v_threshold=a["v_threshold"],
                                         v_reset=a["v_reset"], metadata=md),
    NIRIF: lambda a, md: _require_nir().IF(r=a["r"], v_threshold=a["v_threshold"], v_reset=a["v_reset"], metadata=md),
    NIRLI: lambda a, md: _require_nir().LI(tau=a["tau"], r=a["r"], v_leak=a["v_leak"], metadata=_if_shared(md)),
    NIRIntegrator: lambda a, md: _require_nir().I(r=a["r"], metadata=_if_shared(md)),
    NIRCubaLIF: lambda a, md: _require_nir().CubaLIF(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"],
                                                 v_leak=a["v_leak"], v_threshold=a["v_threshold"],
                                                 v_reset=a["v_reset"], w_in=a["w_in"], metadata=md),
    NIRCubaLI: lambda a, md: _require_nir().CubaLI(tau_syn=a["tau_syn"], tau_mem=a["tau_mem"], r=a["r"],
                                               v_leak=a["v_leak"], w_in=a["w_in"], metadata=_if_shared(md)),
}


@exporter(*_NATIVE)
def _native_neuron(ex, name, m, shape):
    """The interop.nir neuron modules: their own node."""
    meta = _native_check(ex, name, m)
    meta["spikefuse"].update(_shared_meta(m.r.shape, shape))
    a = {k: _per_neuron(b, shape, name) for k, b in m.named_buffers()}
    node = next(make for cls, make in _NATIVE.items() if isinstance(m, cls))(a, meta)
    return ex.add_one(name, node, tuple(m.r.shape) or shape)


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
    return ex.add_cycle(name, a_in, lif, rec, so)




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


