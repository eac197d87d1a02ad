"""The ``"hxtorch"`` and ``"lava-dl"`` conventions of :func:`from_nir`: NIR graphs written by
the exporters of the two hardware stacks, read the way those systems run them, onto spikefuse's
hxtorch CUBA family (:mod:`spikefuse.functional.cuba`) and Loihi CUBA family
(:mod:`spikefuse.neuron.loihi.cuba`). Neither library is installed here: the rules below are
read from their source (docs/nir.md names the files and commits).

**hxtorch** (``hxtorch.spiking.utils.to_nir`` / ``from_nir``, electronicvisions/hxtorch commit
1033578, 2025-11-06). Its exporter writes a ``Synapse`` as ``Linear(weight)`` (the software
weight, before the hardware weight transform), a spiking ``AELIF``/``LIF`` as ``CubaLIF`` with
``tau_mem``, ``tau_syn`` in **milliseconds** (hxtorch's seconds times 1e3), ``r = tau_mem /
c_mem``, ``v_leak``, ``v_reset``, ``v_threshold`` (model values) and no ``w_in``, a non-spiking
``LI`` as ``CubaLI`` (``r = 1``), the graph's open source as ``Input`` and its open target as
``Output``; no ``dt``. Its importer builds ``LIF(tau * 1e-3, membrane_capacitance = tau_mem /
r)`` with the module's default ``refractory_time = 1e-6`` s, ``LI(tau * 1e-3)`` with the
default ``membrane_capacitance = 10e-6``, ignores ``w_in`` and runs at ``dt = 1e-6`` s
(``ConversionConfig``). hxtorch's step (``CuBaStepCode``)::

    dv = dt / c * (i + g_l * (leak - v))     g_l = c / tau_mem; the OLD current (one-step delay)
    i  = i * (1 - dt / tau_syn) + x          the input jumps into the current
    v  = v + dv; z = 1[v > threshold]; v = reset where z; then the refractory update

which for ``c = tau_mem`` (``r = 1``) is spikefuse's ``cuba-refractory`` step with
``refractory_time = 1e-6`` s. With ``r != 1`` the current enters ``r`` times stronger: the
input is scaled by ``r`` first (the same numbers up to rounding). An ``LI`` has
``c = 10e-6`` whatever ``tau_mem`` is, so its current gain is ``tau_mem / 10e-6``.

**lava-dl** (``lava.lib.dl.netx.nir_lava.read_node``, lava-nc/lava-dl commit 87e6dfb,
2023-08-23, a branch never merged into main; written for nir 0.x). It converts a netx HDF5 file:
a dense layer becomes ``Linear(weight)`` / ``Affine(weight, bias)`` with the HDF5 integer
weight mantissas, its CUBA neuron ``CubaLIF(tau_syn = 1 / iDecay, tau_mem = 1 / vDecay, r = 1,
v_leak = 0, v_threshold = vThMant, w_in = tau_syn)``: the integer Loihi decays (units of
1/4096) inverted without the 1/4096, the threshold and weights as mantissas (``scale = 64``).
Read back as the Loihi network the HDF5 file describes: ``iDecay = round(dt / tau_syn)``,
``vDecay = round(dt / tau_mem)`` (``dt = 1``: one Loihi step), threshold ``vThMant / 64``,
weights ``mantissa / 64``, i.e. the fixed-point ``loihi.cuba`` neuron with those device
parameters (``w_in``, ``r`` and ``v_leak`` are not read, as lava-dl's own importer does not).
lava-dl's importer turns the inverted integers into decays ``1 / tau`` (``iDecay`` itself, which
slayer clamps to a full decay): a lava-dl bug, named in docs/nir.md.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ._common import NIRConversionError

__all__ = ["HXTORCH_DT", "HXTORCH_REFRACTORY_TIME", "HXTORCH_LI_CAPACITANCE", "LAVA_DL_DT", "HxtorchLI",
           "builders"]

#: hxtorch's time step (s): ``ConversionConfig.dt`` and ``Experiment(dt=1e-6)``
HXTORCH_DT = 1e-6
#: the ``refractory_time`` (s) of hxtorch's ``LIF`` module, which its ``from_nir`` leaves at the default
HXTORCH_REFRACTORY_TIME = 1e-6
#: the ``membrane_capacitance`` model value of hxtorch's ``LI`` module (``from_nir`` leaves the default)
HXTORCH_LI_CAPACITANCE = 10e-6
#: lava-dl's time step: one Loihi step (time constants in steps)
LAVA_DL_DT = 1.0
_MS = 1e-3  # hxtorch writes time constants in ms


def _uniform(node, name, key, convention):
    """The one value of ``node.key`` (both importers require homogeneous layers)."""
    a = np.unique(np.asarray(getattr(node, key), dtype=np.float64))
    if a.size != 1:
        raise NIRConversionError(f"graph node {name!r}: convention={convention!r} needs the same {key} for every "
                                 f"neuron of a layer (as {convention}'s importer does), got {a.size} values")
    return float(a[0])


def _scaled(module, gain):
    """``module`` fed ``gain * x`` (a current gain that is not 1)."""
    if math.isclose(gain, 1.0, rel_tol=1e-7, abs_tol=0.0):
        return module
    from .modules import Scale

    return nn.Sequential(Scale(float(gain)), module)


# ------------------------------------------------------------------------------ hxtorch
def _hx_common(node, name):
    return {k: _uniform(node, name, k, "hxtorch") for k in ("tau_mem", "tau_syn", "v_leak")}


def _hxtorch_cuba(imp, name, node):
    from ...neuron.cuba import CubaRefractoryLIF

    p = _hx_common(node, name)
    reset, thr, r = (_uniform(node, name, k, "hxtorch") for k in ("v_reset", "v_threshold", "r"))
    m = CubaRefractoryLIF(leak=p["v_leak"], reset=reset, threshold=thr, tau_syn=p["tau_syn"] * _MS,
                          tau_mem=p["tau_mem"] * _MS, refractory_time=HXTORCH_REFRACTORY_TIME, dt=imp.dt)
    return _scaled(m, r)


def _hxtorch_li(imp, name, node):
    p = _hx_common(node, name)
    m = HxtorchLI(leak=p["v_leak"], tau_syn=p["tau_syn"] * _MS, tau_mem=p["tau_mem"] * _MS, dt=imp.dt)
    return _scaled(m, p["tau_mem"] * _MS / HXTORCH_LI_CAPACITANCE)


class HxtorchLI(nn.Module):
    """hxtorch's non-spiking ``LI`` (an ``AELIF`` without firing): the hxtorch CUBA step of
    :func:`spikefuse.functional.cuba.cuba_lif_integration` with no threshold crossing, returning
    the membrane ``(T, B, *features)`` (initially ``leak``; the current starts at 0).

    >>> x = torch.zeros(3, 1, 1); x[0] = 1.0
    >>> HxtorchLI(leak=0.0, tau_syn=2e-6, tau_mem=2e-6)(x).flatten().tolist()  # one-step delay
    [0.0, 0.5, 0.5]
    """

    def __init__(self, leak=0.0, tau_syn=10e-6, tau_mem=10e-6, dt: float = HXTORCH_DT):
        super().__init__()
        from ...functional.cuba import CubaParams

        # never crosses: the largest finite fp32 threshold (the step requires a finite one)
        self.params = CubaParams(leak=leak, reset=leak, threshold=float(torch.finfo(torch.float32).max),
                                 tau_syn=tau_syn, tau_mem=tau_mem)
        self.dt = float(dt)

    def forward(self, x):
        from ...functional.cuba import cuba_lif_integration

        _, membrane, _, _ = cuba_lif_integration(x, self.params, dt=self.dt)
        return membrane

    def extra_repr(self) -> str:
        p = self.params
        return f"leak={p.leak:g}, tau_syn={p.tau_syn:g}, tau_mem={p.tau_mem:g}, dt={self.dt:g}"


# ------------------------------------------------------------------------------ lava-dl
def _lava_decay(imp, name, node, key):
    tau = _uniform(node, name, key, "lava-dl")
    d = round(imp.dt / tau)
    if not 0 < d <= 4096:
        raise NIRConversionError(f"graph node {name!r}: convention='lava-dl' reads {key} as 1 / (Loihi decay in "
                                 f"units of 1/4096), which must give 1..4096, got {imp.dt / tau:g}")
    return d


def _lava_cuba(imp, name, node):
    from ...neuron.loihi import cuba

    i_decay, v_decay = _lava_decay(imp, name, node, "tau_syn"), _lava_decay(imp, name, node, "tau_mem")
    th_mant = _uniform(node, name, "v_threshold", "lava-dl")
    if th_mant != round(th_mant) or th_mant <= 0:
        raise NIRConversionError(f"graph node {name!r}: convention='lava-dl' reads v_threshold as the Loihi "
                                 f"mantissa vThMant (a positive integer), got {th_mant:g}")
    return cuba.Neuron(threshold=th_mant / 64.0, current_decay=i_decay / 4096.0, voltage_decay=v_decay / 4096.0,
                       requires_grad=False)


def _lava_dense(imp, name, node):
    from ... import layers

    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2:
        raise NIRConversionError(f"graph node {name!r}: {type(node).__name__} weight must be 2-d (out, in), "
                                 f"got shape {w.shape}")
    b = getattr(node, "bias", None)
    m = layers.Dense(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():  # the HDF5 mantissas, in the float units of the Loihi neuron (scale 64)
        m.weight.copy_(torch.as_tensor(w / 64.0, dtype=torch.float32))
        if b is not None:
            m.bias.copy_(torch.as_tensor(np.broadcast_to(np.asarray(b, np.float64) / 64.0, (w.shape[0],)).copy(),
                                         dtype=torch.float32))
    return m


def builders(nirm) -> dict:
    """``{(convention, node type): builder}`` of these conventions (merged into
    :mod:`.conventions`' table)."""
    return {("hxtorch", nirm.CubaLIF): _hxtorch_cuba, ("hxtorch", nirm.CubaLI): _hxtorch_li,
            ("lava-dl", nirm.CubaLIF): _lava_cuba, ("lava-dl", nirm.Linear): _lava_dense,
            ("lava-dl", nirm.Affine): _lava_dense}
