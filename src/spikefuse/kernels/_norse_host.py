"""The op encodings of the fused scans of norse's refractory LIF (``norse.lif_refrac``) and
adaptive exponential LIF (``norse.lif_adex``), shared by the Triton (kernels/triton/norse.py) and
numba CPU (kernels/cpu/norse.py) ScanSpecs; only the scans differ. The feed-forward LIF
(``norse.lif``) is in kernels/_common.py (``norse_run``); these reuse its surrogate rows
(:func:`._common.norse_sg_rows`) and its ``supports`` rule (:func:`._common.norse_reason`).

Refractory LIF, one step (functional/norse.py ``_refrac_step``; ``a_m = dt tau_mem_inv``,
``a_sn = -dt tau_syn_inv`` computed here with torch's arithmetic)::

    j = i + x;  vd = v + a_m ((v_leak - v) + j);  i' = j + a_sn j
    zl = 1[vd - v_th > 0];  vn = (1 - zl) vd + zl v_reset
    m = 1[rho > 0]          (norse's threshold of the counter: the surrogate's gradient too)
    v' = (1 - m) vn + m v;  z = (1 - m) zl;  rho' = (1 - z) relu(rho - m) + z rho_reset

Tensors (x ``(T, M)`` contiguous; per-neuron fp32 a_m, a_sn, v_leak, v_th, v_reset, rho_reset,
c0, c1 (the surrogate's constants from ``alpha``, per neuron: a per-neuron ``alpha`` runs too),
v0, i0, rho0); no floats; ints (surrogate id or SG_NONE, traces, io dtype index, grad bits). Outputs (z, v_last, i_last, rho_last, v_seq, i_seq, rho_seq; the sequences
None unless traces or a backward need them); saved (the three sequences, every input).

Adaptive exponential LIF (``_adex_step``; ``a_a = dt tau_ada_inv``)::

    j = i + x;  e = exp((v - v_th) / delta_T)
    vd = v + a_m ((((v_leak - v) + delta_T e) + j) - a);  i' = j + a_sn j
    ad = a + a_a (adaptation_current (v - v_leak) - a)
    z = 1[vd - v_th > 0];  v' = (1 - z) vd + z v_reset;  a' = ad + z adaptation_spike

Tensors (x; per-neuron a_m, a_sn, a_a, v_leak, v_th, v_reset, adaptation_current,
adaptation_spike, delta_T, c0, c1, v0, i0, a0); ints as above. Outputs (z, v_last, i_last,
a_last, v_seq, i_seq, a_seq); saved (the sequences, every input).

Parameter gradients: the per-neuron constants are differentiable torch expressions of the
tensor parameters (autograd maps them back); ``alpha`` is detached, as in the reference.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._common import IO_DTYPES, _fake_grads, expand_param, grad_bits, norse_reason, norse_sg_rows, params_reason
from .scan import ScanSpec

__all__ = ["SAVED_BYTES", "adex_reason", "adex_run", "adex_spec", "refrac_reason", "refrac_run", "refrac_spec"]

#: bytes saved for backward per neuron-step (three fp32 traces), by kernel key
SAVED_BYTES = {"norse_lif_refrac": 12, "norse_lif_adex": 12}

def _flat_state(state) -> tuple:
    """The state tensors in kernel order: ``((v, i), rho)`` or ``(v, i, a)`` as ``(v, i, rho|a)``."""
    if state is None:
        return ()
    first = state[0]
    if isinstance(first, tuple):
        return (*first, *state[1:])
    return tuple(state)


def refrac_reason(x_seq: torch.Tensor, params, state=None) -> Optional[str]:
    """The backend-independent ``supports`` rules of the refractory LIF kernels."""
    if params is None or not hasattr(params, "lif"):
        return "no NorseLIFRefracParams given"
    return _lif_reason(x_seq, params.lif, state) or _extra_reason(x_seq, params, ("rho_reset",))


def adex_reason(x_seq: torch.Tensor, params, state=None) -> Optional[str]:
    """The backend-independent ``supports`` rules of the AdEx kernels."""
    if params is None or not hasattr(params, "delta_T"):
        return "no NorseLIFAdExParams given"
    return _lif_reason(x_seq, params, state) or _extra_reason(
        x_seq, params, ("tau_ada_inv", "adaptation_current", "adaptation_spike", "delta_T"))


def _lif_reason(x_seq, p, state) -> Optional[str]:
    """norse.lif's rules (``alpha`` shared or per neuron, broadcasting to the state shape)."""
    if not isinstance(p, tuple) or not hasattr(p, "alpha"):
        return f"no norse parameters given, got {type(p).__name__}"
    return norse_reason(x_seq, p, _flat_state(state))


def _extra_reason(x_seq, params, names) -> Optional[str]:
    return params_reason(x_seq, params, names)


def _f32(p, device):
    return p.to(torch.float32) if isinstance(p, torch.Tensor) else torch.tensor(float(p), device=device)


def _surrogate(params, shape, dev) -> tuple:
    """``(surrogate id, c0, c1)`` per-neuron rows, as norse.lif's kernels take them
    (:func:`._common.norse_sg_rows`)."""
    return norse_sg_rows(params, shape, dev)


def _ints(sg: int, return_traces: bool, x_seq, tensors) -> list:
    return [sg, int(bool(return_traces)), IO_DTYPES.index(x_seq.dtype), grad_bits(tensors)]


def _outputs(outs, x_seq, return_traces: bool, nested: bool):
    """A scan's 7 outputs in the kernel contract ``((z,), final state, traces or None)``; the
    refractory state is nested as norse's: ``((v, i), rho)``."""
    z, vl, il, sl, vseq, iseq, sseq = outs
    shape = tuple(x_seq.shape[1:])
    vl, il, sl = vl.view(shape), il.view(shape), sl.view(shape)
    final = ((vl, il), sl) if nested else (vl, il, sl)
    traces = None
    if return_traces:
        vseq, iseq, sseq = (t.view(x_seq.shape) for t in (vseq, iseq, sseq))
        traces = ((vseq, iseq), sseq) if nested else (vseq, iseq, sseq)
    return (z.view(x_seq.shape),), final, traces


def refrac_run(scan, x_seq: torch.Tensor, params, state, return_traces: bool, dt: float):
    """Run a refractory-LIF ScanFunction; ``state`` is ``((v0, i0), rho0)``; results
    ``((z,), ((v, i), rho), ((v_seq, i_seq), rho_seq) or None)``."""
    shape, dev, T = tuple(x_seq.shape[1:]), x_seq.device, x_seq.shape[0]
    p = params.lif
    a_m, a_sn = dt * _f32(p.tau_mem_inv, dev), -dt * _f32(p.tau_syn_inv, dev)
    flat = [expand_param(q, shape, dev) for q in (a_m, a_sn, p.v_leak, p.v_th, p.v_reset, params.rho_reset)]
    sg, c0, c1 = _surrogate(p, shape, dev)
    state0 = [expand_param(q, shape, dev) for q in _flat_state(state)]
    tensors = [x_seq.reshape(T, -1).contiguous(), *flat, c0, c1, *state0]
    outs = scan.apply(tensors, [], _ints(sg, return_traces, x_seq, tensors))
    return _outputs(outs, x_seq, return_traces, nested=True)


def adex_run(scan, x_seq: torch.Tensor, params, state, return_traces: bool, dt: float):
    """Run an AdEx ScanFunction; ``state`` is ``(v0, i0, a0)``; results ``((z,), (v, i, a),
    (v_seq, i_seq, a_seq) or None)``."""
    shape, dev, T = tuple(x_seq.shape[1:]), x_seq.device, x_seq.shape[0]
    p = params
    a_m, a_sn = dt * _f32(p.tau_mem_inv, dev), -dt * _f32(p.tau_syn_inv, dev)
    a_a = dt * _f32(p.tau_ada_inv, dev)
    flat = [expand_param(q, shape, dev) for q in (a_m, a_sn, a_a, p.v_leak, p.v_th, p.v_reset, p.adaptation_current,
                                                  p.adaptation_spike, p.delta_T)]
    sg, c0, c1 = _surrogate(p, shape, dev)
    state0 = [expand_param(q, shape, dev) for q in _flat_state(state)]
    tensors = [x_seq.reshape(T, -1).contiguous(), *flat, c0, c1, *state0]
    outs = scan.apply(tensors, [], _ints(sg, return_traces, x_seq, tensors))
    return _outputs(outs, x_seq, return_traces, nested=False)


def keep_traces(i) -> bool:
    """Whether the scan stores the state sequences: for traces, or for a backward (grad bits)."""
    return bool(i[1] or i[3])


def _fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    keep = keep_traces(i)
    last = [x.new_empty((M,), dtype=torch.float32) for _ in range(3)]
    seq = [x.new_empty((T, M), dtype=torch.float32) if keep else None for _ in range(3)]
    return [torch.empty_like(x), *last, *seq]


def _spec(name: str, inputs, states, params, forward, backward) -> ScanSpec:
    return ScanSpec(
        name=name, inputs=inputs, states=states, params=params,
        outputs=("spikes", *(f"{s}_last" for s in states), *(f"{s}_seq" for s in states)),
        saved=tuple(f"{s}_seq" for s in states), saved_bytes=12, moved_bytes=24, forward=forward,
        save=lambda tensors, outputs, f, i, needs: [outputs[4], outputs[5], outputs[6], *tensors],
        backward=backward, fake=_fake, fake_backward=lambda saved, grads, f, i, needs: _fake_grads(saved, i[2], needs))


def refrac_spec(name: str, forward, backward) -> ScanSpec:
    """The refractory-LIF ScanSpec ``name`` with a backend's ``forward`` / ``backward`` scans."""
    return _spec(name, ("x", "a_m", "a_sn", "v_leak", "v_th", "v_reset", "rho_reset", "c0", "c1", "v0", "i0", "rho0"),
                 ("v", "i", "rho"), ("a_m", "a_sn", "v_leak", "v_th", "v_reset", "rho_reset"), forward, backward)


def adex_spec(name: str, forward, backward) -> ScanSpec:
    """The AdEx ScanSpec ``name`` with a backend's ``forward`` / ``backward`` scans."""
    return _spec(name, ("x", "a_m", "a_sn", "a_a", "v_leak", "v_th", "v_reset", "adaptation_current",
                        "adaptation_spike", "delta_T", "c0", "c1", "v0", "i0", "a0"), ("v", "i", "a"),
                 ("a_m", "a_sn", "a_a", "v_leak", "v_th", "v_reset", "adaptation_current", "adaptation_spike",
                  "delta_T"), forward, backward)
