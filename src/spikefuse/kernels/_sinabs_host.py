"""The op encoding of the sinabs ``LIF`` / ``IAF`` fused scans, shared by the Triton
(kernels/triton/sinabs.py) and numba CPU (kernels/cpu/sinabs.py) ScanSpecs; only the scans differ.

One step, in the reference's operation order (functional/sinabs.py ``_make_step``)::

    j  = i + x;  i' = a_syn j                    (a synapse; else i' = x)
    u  = a_mem v + (1 - a_mem) i'                (norm_input; else a_mem v + i')
    S  = 1[u - thr >= 0]                         single
         (u > 0) trunc(u / thr)  [min max_n]     multi [max]; on CUDA with a Python threshold
                                                 u * (1 / thr), as ATen's CUDA ``div`` by a CPU scalar
    v2 = u - S c                                 subtract (c = subtract_value or thr)
         u 1[S == 0] + c                         reset (c = reset_value, added to every neuron)
    v' = relu(v2 - min_v_mem) + min_v_mem        (a clamp)

Tensors (x ``(T, M)`` contiguous; per-neuron fp32: a_mem, 1 - a_mem (norm_input; else None),
a_syn (or None), thr, c, min_v_mem (or None), the Heaviside surrogate's ``thr - window`` (or
None), v0, i0 (or None)); floats: the surrogate's four constants; ints: (spike mode (0 single,
1 multi, 2 max), max_num_spikes_per_bin, reset (0 subtract, 1 reset), synapse, norm_input,
clamp, recip, surrogate id, traces, io dtype index, grad bits). Outputs (spikes, v_last, i_last
or None, v_seq or None, i_seq or None); saved (v_seq, i_seq, every input). ``1 - a_mem`` is
computed here as the reference computes it (a Python number in double, a tensor in fp32), so
autograd maps both parameter gradients back to ``alpha_mem`` (and to ``tau_mem`` above it).

Surrogate ids: spikefuse's in-kernel surrogates keep their ``kernel_id`` (0-4, constants of
:func:`._common.sg_consts`); sinabs' own are :data:`SINABS_SG`: PeriodicExponential (grad_width,
grad_scale), Gaussian (mu, 2 sigma^2, sigma sqrt(2 pi) in fp32, grad_scale), Heaviside (its
``thr - window`` per neuron).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ._common import IO_DTYPES, expand_param, grad_bits, io_reason, needs_grad, params_reason, sg_consts
from .scan import ScanSpec

#: sinabs surrogate name -> kernel surrogate id
SINABS_SG = {"sinabs_periodic_exponential": 10, "sinabs_gaussian": 11, "sinabs_heaviside": 12}
#: spikefuse surrogate kernel ids the sinabs kernels evaluate
SPIKEFUSE_SG = (0, 1, 2, 3, 4)
_MODES = {"single": 0, "multi": 1, "max": 2}
_FIXED = ("spike_threshold", "subtract_value", "reset_value", "min_v_mem")

#: bytes saved for backward per neuron-step (v and, with a synapse, i traces)
SAVED_BYTES = {"sinabs_lif": 8}


def surrogate_id(sur) -> int:
    """The kernel id of a (resolved) sinabs surrogate, -1 when no kernel evaluates it."""
    sid = SINABS_SG.get(getattr(sur, "name", None))
    if sid is not None:
        return sid
    kid = getattr(sur, "kernel_id", -1)
    return kid if kid in SPIKEFUSE_SG else -1


def sinabs_reason(x_seq: torch.Tensor, params, state=None) -> Optional[str]:
    """The backend-independent ``supports`` rules of the sinabs kernels (``params.surrogate``
    resolved: functional/sinabs.py passes sinabs' default SingleExponential explicitly)."""
    if params is None:
        return "no SinabsParams given"
    why = io_reason(x_seq)
    if why is not None:
        return why
    if params.surrogate is None or surrogate_id(params.surrogate) < 0:
        return f"surrogate {params.surrogate!r} has no in-kernel formula; the reference loop runs it"
    for name in _FIXED:
        if needs_grad(getattr(params, name)):
            return f"a {name} that requires grad has no kernel gradient (alpha_mem / alpha_syn do); the reference loop runs it"
    names = [n for n in ("alpha_mem", "alpha_syn", *_FIXED) if getattr(params, n) is not None]
    return params_reason(x_seq, params, names, tuple(s for s in (state or ()) if s is not None))


def _f32(p, device):
    return p.to(torch.float32) if isinstance(p, torch.Tensor) else p


def _surrogate_consts(sur, sid: int) -> list:
    if sid == 10:
        return [sur.grad_width, sur.grad_scale, 0.0, 0.0]
    if sid == 11:  # the reference's denominator: sigma * sqrt(2 * tensor(pi)), in fp32
        den = float(sur.sigma * torch.sqrt(2 * torch.tensor(math.pi)))
        return [sur.mu, 2 * sur.sigma ** 2, den, sur.grad_scale]
    if sid == 12:
        return [0.0, 0.0, 0.0, 0.0]
    return [*sg_consts(sid, *sur.kernel_params), 0.0, 0.0]


def sinabs_encode(x_seq: torch.Tensor, params, state, return_traces: bool):
    """``(tensors, floats, ints)`` of one sinabs kernel call (see the module docstring)."""
    shape, dev, T = tuple(x_seq.shape[1:]), x_seq.device, x_seq.shape[0]
    p = params
    am = _f32(p.alpha_mem, dev)
    thr = _f32(p.spike_threshold, dev)
    sub = p.subtract_value if p.subtract_value is not None else p.spike_threshold
    rst = _f32(sub if p.reset_fn == "subtract" else p.reset_value, dev)
    sur = p.surrogate
    sid = surrogate_id(sur)
    hw = None
    if sid == 12:
        hw = (thr.detach() - sur.window) if isinstance(thr, torch.Tensor) else thr - sur.window

    def flat(v):
        return None if v is None else expand_param(v, shape, dev)

    syn = p.alpha_syn is not None
    v0 = torch.zeros(shape, device=dev) if state is None else state[0]
    i0 = (torch.zeros(shape, device=dev) if state is None or state[1] is None else state[1]) if syn else None
    tensors = [x_seq.reshape(T, -1).contiguous(), flat(am), flat(1 - am) if p.norm_input else None,
               flat(_f32(p.alpha_syn, dev)), flat(thr), flat(rst), flat(_f32(p.min_v_mem, dev)), flat(hw),
               flat(v0), flat(i0)]
    recip = int(x_seq.is_cuda and p.spike_fn != "single" and not isinstance(p.spike_threshold, torch.Tensor))
    i = [_MODES[p.spike_fn], int(p.max_num_spikes_per_bin or 0), int(p.reset_fn != "subtract"), int(syn),
         int(bool(p.norm_input)), int(p.min_v_mem is not None), recip, sid, int(bool(return_traces)),
         IO_DTYPES.index(x_seq.dtype), grad_bits(tensors)]
    return tensors, [float(c) for c in _surrogate_consts(sur, sid)], i


def sinabs_run(scan, x_seq: torch.Tensor, params, state, return_traces: bool):
    """Run a sinabs ScanFunction; results in the kernel contract ``((spikes,), (v_last,
    i_last or None), (v_seq, i_seq or None) or None)``."""
    shape = tuple(x_seq.shape[1:])
    s, vl, il, vseq, iseq = scan.apply(*sinabs_encode(x_seq, params, state, return_traces))
    final = (vl.view(shape), None if il is None else il.view(shape))
    traces = (vseq.view(x_seq.shape), None if iseq is None else iseq.view(x_seq.shape)) if return_traces else None
    return (s.view(x_seq.shape),), final, traces


def keeps(i) -> tuple:
    """(v_seq kept, i_seq kept): for traces, or for a backward (grad bits)."""
    keep = bool(i[8] or i[10])
    return keep, keep and bool(i[3])


def _fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    kv, ki = keeps(i)

    def vec(on):
        return x.new_empty((M,), dtype=torch.float32) if on else None

    def seq(on):
        return x.new_empty((T, M), dtype=torch.float32) if on else None

    return [torch.empty_like(x), vec(True), vec(i[3]), seq(kv), seq(ki)]


def _fake_backward(saved, grads, f, i, needs):
    T, M = saved[0].shape
    out = [saved[0].new_empty((T, M), dtype=IO_DTYPES[i[9]])] + [saved[0].new_empty((M,)) for _ in needs[1:]]
    return [g if n else None for g, n in zip(out, needs)]


def sinabs_spec(name: str, forward, backward) -> ScanSpec:
    """The sinabs ScanSpec ``name`` with a backend's ``forward`` / ``backward`` scans."""
    return ScanSpec(
        name=name, inputs=("x", "alpha_mem", "one_minus_alpha_mem", "alpha_syn", "spike_threshold", "reset_const",
                           "min_v_mem", "heaviside_threshold", "v0", "i0"), states=("v_mem", "i_syn"),
        params=("alpha_mem", "one_minus_alpha_mem", "alpha_syn"), outputs=("spikes", "v_last", "i_last", "v_seq",
                                                                          "i_seq"),
        saved=("v_seq", "i_seq"), saved_bytes=8, moved_bytes=20, forward=forward,
        save=lambda tensors, outputs, f, i, needs: [outputs[3], outputs[4], *tensors], backward=backward,
        fake=_fake, fake_backward=_fake_backward)
