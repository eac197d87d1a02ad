"""Export converters of the neuron families, registered from the family registry
(:mod:`spikefuse.families`): a family whose record names a NIR node (``nir=``) gets its
converter from :data:`CONVERTERS` (keyed by family id), a family recorded without one gets a
:class:`Refused` entry carrying its ``nir_note``. Registered on the first export lookup, so that
importing :mod:`spikefuse.interop.nir` imports no neuron module."""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from ... import families as _families
from ... import surrogate as _surrogate
from ...surrogate import Surrogate
from ._common import NIRConversionError, _require_nir
from ._table import _LAZY, EXPORTERS, IN_SHAPE, Refused, exact as _exact, full as _full, identity as _identity
from ._table import np_array as _np, surrogate_meta as _surrogate_meta


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
    """SpikingJelly IF / LIF / ParametricLIF (registered by :func:`register_families`)."""
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
    meta["synaptic_delay"] = "Delay node"  # the one-step delay is the Delay node in front (format 2)
    f = lambda k: _full(getattr(m, k), shape, name)  # noqa: E731
    return nirm.CubaLIF(tau_syn=f("tau_syn"), tau_mem=f("tau_mem"), r=_full(1.0, shape, name), v_leak=f("leak"),
                        v_threshold=f("threshold"), v_reset=f("reset"),
                        w_in=_full(torch.as_tensor(m.tau_syn, dtype=torch.float64) / ex.dt, shape, name),
                        metadata={"spikefuse": meta})


def _synaptic_delay(ex, name, kind, shape):
    """The ``Delay(dt)`` node that carries hxtorch's one-step synaptic delay: its CUBA voltage
    uses the current of the previous step, i.e. it is NIR's same-step CubaLIF fed one step late."""
    delay = _require_nir().Delay(delay=np.full(shape, ex.dt, dtype=np.float64),
                                 metadata={"spikefuse": {"module": f"{kind}.delay"}})
    return ex.add(f"{name}.delay", delay)


def _cuba(ex, name, m, shape):
    """hxtorch CubaLIF: ``Delay(dt) -> CubaLIF`` (registered by :func:`register_families`)."""
    shape = ex.need_shape(name, m, shape)
    nd = _synaptic_delay(ex, name, "CubaLIF", shape)
    nc = ex.add(name, _cuba_node(ex, name, m, shape, "CubaLIF"))
    ex.edges.append((nd, nc))
    return nd, nc, shape


def _eventprop(ex, name, m, shape):
    """EventPropLIF: ``Linear(W) -> Delay(dt) -> CubaLIF`` (registered by :func:`register_families`)."""
    ex.check_features(name, "EventPropLIF", m.in_features, shape)
    shape = (m.out_features,)
    node = _cuba_node(ex, name, m, shape, "EventPropLIF")
    syn = _require_nir().Linear(weight=_np(m.weight), metadata={"spikefuse": {"module": "EventPropLIF.synapse"}})
    ns = ex.add(f"{name}.synapse", syn)
    nd = _synaptic_delay(ex, name, "EventPropLIF", shape)
    nn_ = ex.add(f"{name}.neuron", node)
    ex.edges += [(ns, nd), (nd, nn_)]
    return ns, nn_, shape


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
    (registered by :func:`register_families`)."""
    nirm = _require_nir()
    what = f"model[{name!r}]: Loihi CUBA neuron"
    if not ex.lossy:
        raise NIRConversionError(
            f"{what} cannot be expressed exactly in NIR (fixed-point states and decays); pass lossy=True to export "
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
    warnings.warn(f"{what} exported with lossy=True: fixed-point arithmetic is lost (NIR states and decays "
                  "are floats; the step order, current first, is NIR's)", stacklevel=4)
    meta = {"module": "loihi.cuba.Neuron", "iDecay": _np(torch.round(m.current_decay.detach())),
            "vDecay": _np(torch.round(m.voltage_decay.detach())), "vThMant": int(m.v_th_mant),
            "scale": int(m.w_scale), "surrogate": {"name": "slayer_exp"}}
    node = nirm.CubaLIF(tau_syn=_full(ex.dt / du, shape, name), tau_mem=_full(ex.dt / dv, shape, name),
                        r=_full(1.0 / dv, shape, name), v_leak=_full(0.0, shape, name),
                        v_threshold=_full(m.threshold, shape, name), v_reset=_full(0.0, shape, name),
                        w_in=_full(1.0 / du, shape, name), metadata={"spikefuse": meta})
    return ex.add_one(name, node, shape)


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




def _snn_reset(ex, name, m, kind) -> None:
    """snnTorch's reset as NIR's: to zero, at once. A subtractive reset has no NIR node (refused
    unless lossy, then written as a reset to zero); Synaptic's delayed zero reset (reset_delay=True
    wipes the next step's whole membrane) neither."""
    what = f"model[{name!r}]: snnTorch {kind}"
    if float(getattr(m, "graded_spikes_factor", 1.0)) != 1.0:
        raise NIRConversionError(f"{what} with graded_spikes_factor != 1 cannot be expressed in NIR (spikes are 0/1)")
    bad = []
    if m.reset_mechanism != "zero":
        bad.append(f"reset_mechanism={m.reset_mechanism!r} (NIR resets to v_reset)")
    if kind == "Synaptic" and m.reset_delay:
        bad.append("reset_delay=True (the next step's membrane is wiped)")
    if not bad:
        return
    msg = f"{what} with {' and '.join(bad)} cannot be expressed in NIR"
    if not ex.lossy:
        raise NIRConversionError(msg + "; use reset_mechanism='zero', reset_delay=False, or pass lossy=True to "
                                 "export it as a reset to zero at once")
    warnings.warn(msg + "; exported as a reset to zero at once (lossy=True)", stacklevel=5)


def _tau_from_decay(decay, dt, shape, name):
    """``dt / (1 - decay)``: snnTorch's beta / alpha as a NIR time constant (as snnTorch writes it)."""
    d = torch.as_tensor(decay, dtype=torch.float64).detach().cpu()
    if bool((d >= 1).any()) or bool((d < 0).any()):
        raise NIRConversionError(f"{name}: a decay outside [0, 1) has no finite NIR time constant, got {d.tolist()}")
    return _full(dt / (1 - d), shape, name)


def _family_meta(fid, m, **exact_values) -> dict:
    """Metadata from which the importer rebuilds the family's module (exact values, flags)."""
    meta = {"module": type(m).__name__, "family": fid, "exact": _exact(**exact_values)}
    for k in ("reset_mechanism", "method"):
        if isinstance(getattr(m, k, None), str):
            meta[k] = getattr(m, k)
    if hasattr(m, "reset_delay"):
        meta["reset_delay"] = bool(m.reset_delay)
    if isinstance(getattr(m, "spike_grad", None), Surrogate):
        meta["surrogate"] = _surrogate_meta(m.spike_grad)
    return meta


def _snn_leaky(ex, name, m, shape):
    """snnTorch Leaky: ``mem = beta mem + x`` is NIR's Euler LIF with ``tau = dt/(1 - beta)``,
    ``r = tau/dt`` (snnTorch's own mapping), ``v_leak = v_reset = 0``."""
    shape = ex.need_shape(name, m, shape)
    _snn_reset(ex, name, m, "Leaky")
    tau = _tau_from_decay(m.beta, ex.dt, shape, name)
    node = _require_nir().LIF(tau=tau, r=(tau / np.float32(ex.dt)).astype(np.float32), v_leak=_full(0.0, shape, name),
                              v_threshold=_full(m.threshold, shape, name), v_reset=_full(0.0, shape, name),
                              metadata={"spikefuse": _family_meta("snntorch.leaky", m, beta=m.beta, threshold=m.threshold)})
    return ex.add_one(name, node, shape)


def _snn_synaptic(ex, name, m, shape):
    """snnTorch Synaptic: ``syn = alpha syn + x; mem = beta mem + syn`` is NIR's same-step CubaLIF
    with ``tau_syn = dt/(1 - alpha)``, ``w_in = tau_syn/dt``, ``tau_mem = dt/(1 - beta)``, ``r = tau_mem/dt``."""
    shape = ex.need_shape(name, m, shape)
    _snn_reset(ex, name, m, "Synaptic")
    ts, tm = _tau_from_decay(m.alpha, ex.dt, shape, name), _tau_from_decay(m.beta, ex.dt, shape, name)
    dt = np.float32(ex.dt)
    node = _require_nir().CubaLIF(tau_syn=ts, tau_mem=tm, r=(tm / dt).astype(np.float32),
                                  w_in=(ts / dt).astype(np.float32), v_leak=_full(0.0, shape, name),
                                  v_threshold=_full(m.threshold, shape, name), v_reset=_full(0.0, shape, name),
                                  metadata={"spikefuse": _family_meta("snntorch.synaptic", m, alpha=m.alpha, beta=m.beta,
                                                                      threshold=m.threshold)})
    return ex.add_one(name, node, shape)


def _norse_cuba(ex, name, m, shape, what, fid, **meta_extra):
    """The same-step CubaLIF of a norse LIF (feed-forward or recurrent) at the module's ``dt``."""
    if not math.isclose(float(m.dt), ex.dt, rel_tol=1e-9):
        raise NIRConversionError(f"model[{name!r}]: {what} integrates with dt={m.dt:g} but to_nir was given "
                                 f"dt={ex.dt:g}; export with dt={m.dt:g}")
    p = m.params()
    inv = lambda v: torch.as_tensor(v, dtype=torch.float64).detach().cpu()  # noqa: E731
    ts, tm = 1.0 / inv(p.tau_syn_inv), 1.0 / inv(p.tau_mem_inv)
    meta = dict(_family_meta(fid, m, tau_syn_inv=p.tau_syn_inv, tau_mem_inv=p.tau_mem_inv, v_leak=p.v_leak,
                             v_th=p.v_th, v_reset=p.v_reset, alpha=p.alpha), method=str(p.method), **meta_extra)
    return _require_nir().CubaLIF(tau_syn=_full(ts, shape, name), tau_mem=_full(tm, shape, name),
                                  r=_full(1.0, shape, name), w_in=_full(ts / ex.dt, shape, name),
                                  v_leak=_full(p.v_leak, shape, name), v_threshold=_full(p.v_th, shape, name),
                                  v_reset=_full(p.v_reset, shape, name), metadata={"spikefuse": meta})


def _norse_lif(ex, name, m, shape):
    """norse feed-forward LIF: the input jumps into the current, the voltage uses it at once: NIR's
    same-step CubaLIF with ``tau = 1/tau_inv``, ``r = 1``, ``w_in = tau_syn/dt``."""
    shape = ex.need_shape(name, m, shape)
    return ex.add_one(name, _norse_cuba(ex, name, m, shape, "norse LIF", "norse.lif"), shape)


def _norse_lif_recurrent(ex, name, m, shape):
    """norse recurrent LIF (``lif_step``): ``name.input`` (Linear, input_weights) -> ``name.lif``
    (the same-step CubaLIF of :func:`_norse_lif`) -> ``name.recurrent`` (Linear, recurrent_weights)
    -> ``name.lif``. The cycle's back edge carries the previous step's spikes, which is norse's
    ``z_prev @ recurrent_weights.T`` added to the current jump with the step's input; without
    autapses the recurrent weight's diagonal is zero (the module keeps it so)."""
    nirm = _require_nir()
    ex.check_features(name, "NorseLIFRecurrent", m.input_size, shape)
    so = (m.hidden_size,)
    cuba = _norse_cuba(ex, name, m, so, "norse LIFRecurrent", "norse.lif_recurrent", autapses=bool(m.autapses))
    inp = nirm.Linear(weight=_np(m.input_weights), metadata={"spikefuse": {"module": "NorseLIFRecurrent.input"}})
    rec = nirm.Linear(weight=_np(m.recurrent_weights),
                      metadata={"spikefuse": {"module": "NorseLIFRecurrent.recurrent"}})
    ni = ex.add(f"{name}.input", inp)
    nl = ex.add(f"{name}.lif", cuba)
    nr = ex.add(f"{name}.recurrent", rec)
    ex.edges += [(ni, nl), (nl, nr), (nr, nl)]
    return ni, nl, so


#: family id -> converter, for the families whose record names a NIR node
CONVERTERS = {"lif": _lif, "if": _lif, "plif": _lif, "cuba": _cuba, "eventprop": _eventprop,
              "loihi.cuba": _loihi_cuba, "snntorch.leaky": _snn_leaky, "snntorch.synaptic": _snn_synaptic,
              "norse.lif": _norse_lif, "norse.lif_recurrent": _norse_lif_recurrent}
#: input shape of the family modules that own their input synapse (the graph starts with it)
_OWN_INPUT = {"norse.lif_recurrent": lambda m: (m.input_size,)}
_LOIHI_NIR = "the Loihi module {path} cannot be expressed in NIR (fixed-point states, integer decays and the Loihi " \
             "step order have no NIR node)"


def _refusal(f) -> Refused:
    note = f.nir_note or "no NIR node"
    if f.id.startswith("loihi."):
        return Refused("the Loihi module {path} cannot be expressed in NIR (" + note + ")")
    return Refused("{cls} cannot be expressed in NIR (" + note + ")")


def register_families() -> None:
    """One :data:`EXPORTERS` entry per family of :data:`spikefuse.families.FAMILIES` (run once,
    on the first lookup), plus the Loihi modules that are not families (norms, dropout)."""
    for f in _families.FAMILIES.values():
        cls = _families.load(f.module)
        if f.id in _OWN_INPUT:
            IN_SHAPE.setdefault(cls, _OWN_INPUT[f.id])
        if f.nir is None:
            EXPORTERS.setdefault(cls, _refusal(f))
        elif f.id in CONVERTERS:
            EXPORTERS.setdefault(cls, CONVERTERS[f.id])
        else:
            EXPORTERS.setdefault(cls, Refused("{cls} (family " + repr(f.id) + ") names the NIR node " + repr(f.nir)
                                              + " but spikefuse.interop.nir has no converter for it yet"))
    from ...neuron.eventprop import EventPropLIF
    from ...neuron.loihi import base as loihi_base
    from ...neuron.loihi import dropout, norm, sigma_delta
    EXPORTERS[dropout.Dropout] = _identity
    for t in (loihi_base.Neuron, norm.MeanOnlyBatchNorm, norm.WgtScaleBatchNorm, sigma_delta.Sigma,
              sigma_delta.Delta):
        EXPORTERS.setdefault(t, Refused(_LOIHI_NIR))
    IN_SHAPE[EventPropLIF] = lambda m: (m.in_features,)


def supported_neurons() -> list:
    """Class names of the family modules that export (for error messages)."""
    return [_families.load(f.module).__name__ for f in _families.FAMILIES.values() if f.nir and f.id in CONVERTERS]


_LAZY.append(register_families)
