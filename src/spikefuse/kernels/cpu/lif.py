"""Fused CPU path for SpikingJelly-style IF / LIF (SPEC.md section 15).

With numba (:mod:`.jit`) the ScanSpec runs the compiled kernels of :mod:`._nb_lif` (same bits
forward; input/initial-state gradients bit-identical to the reference for the surrogates without
a transcendental); without it, or for a ``Custom`` surrogate's backward, the torch-op loops
described below.

Forward: the time loop runs under ``no_grad`` on flat ``(M,)`` fp32 buffers with ``out=``/in-place
torch ops (4-6 cheap vectorised ops per step, no autograd graph; numbers as 0-d fp32 tensors and
row views made once, since per-op scalar wrapping and indexing cost as much as a small op),
writing the charge H and the spikes of every step into ``(T, M)`` buffers. Selections use 0/1
float masks (``torch.lerp(H, Vr, S)`` is exactly H or Vr) rather than ``torch.where``, whose
data-dependent branches are several times slower on CPU. The arithmetic follows the reference
expression order exactly (``v + (x - (v - vr)) / tau``; ``1[H >= Vth]`` == ``1[H - Vth >= 0]``,
and ``1[H > Vth]`` for ``threshold=">"``; the reset gives exactly ``Vr`` or ``H``), so spikes, traces and the final state match the
reference loop bit for bit. The post-reset trace (when requested) is derived from H and the
spikes in one vectorised pass.

Backward: every per-step factor of the VJP depends only on the saved H, so the surrogate
derivative ``sg``, ``dV/dH`` and the constant parts are computed for many steps at once; only the
linear recurrence ``gH[t] = a[t] + gV dV/dH[t]; gV = gH[t] dH/dV`` runs sequentially (two ops per
step). Without parameter gradients (the common case) this is done block by block in small reused
buffers (:func:`_backward_blocked`; no full-size temporaries, which cost page faults); with
them, on full ``(T, M)`` arrays, and the parameter gradients (tau, v_threshold, v_reset) and the
initial-state gradient are vectorised reductions over time. Both give the same bits.

Saved for backward: H (fp32), 4 bytes per neuron-step (``SAVED_BYTES["lif"]``), plus the input
for ``decay_input`` LIF when tau needs a gradient (it is alive anyway as the caller's tensor).
"""
from __future__ import annotations

import functools
import math
import struct
from typing import Optional

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..._core import scalar_tensor as _scalar_t
from .._common import (IO_DTYPES, KIND_IF, KIND_LIF_DECAY_INPUT, KernelSurrogate, expand_param, grad_bits,
                       io_reason, lif_kind, lif_outputs, lif_param_reason, lif_v0)
from ..scan import ScanFunction, ScanSpec
from . import jit
from .common import one_value as _one_value, step_sum as _step_sum

SAVED_BYTES = {"lif": 4}


def _reset(h, sf, vth, vr, hard: bool):
    """V after reset from H and the 0/1 float spikes ``sf`` (vectorised, any shape; the same
    arithmetic as the forward loop, so bit-identical to it)."""
    out = torch.empty_like(h)
    if hard:
        return torch.lerp(h, _scalar_t(vr), sf, out=out)       # exactly H (S = 0) or Vr (S = 1)
    torch.mul(sf, vth, out=out)
    return torch.sub(h, out, out=out)


def _forward_loop(x32, tau, vth, vr, v0, kind: int, hard: bool, recip: bool = False, strict: bool = False):
    """Runs the scan; returns H (T, M) fp32, the spikes as 0/1 fp32 (T, M) and V_last (M,) fp32
    (``strict``: ``threshold=">"``, S = 1[H > Vth]).
    Selections use 0/1 float masks: ``torch.lerp(H, Vr, S)`` is exactly H or Vr in one pass (a
    data-dependent ``torch.where`` is several times slower on CPU)."""
    T, M = x32.shape
    H = torch.empty((T, M), dtype=torch.float32)
    S = torch.empty((T, M), dtype=torch.float32)
    v = v0.clone()
    tmp = torch.empty(M, dtype=torch.float32)
    vr_zero = not isinstance(vr, torch.Tensor) and vr == 0.0  # v - 0.0 == v exactly: skip it
    # numbers as 0-d fp32 tensors, rows as views made once (indexing costs as much as an op)
    tau_t, vth_t, vr_t = _scalar_t(tau), _scalar_t(vth), _scalar_t(vr)
    hs, ss, xs = H.unbind(0), S.unbind(0), x32.unbind(0)
    scale_ = torch.Tensor.mul_ if recip else torch.Tensor.div_   # recip: tau holds 1/tau
    scale = torch.mul if recip else torch.div
    fire = torch.gt if strict else torch.ge
    for t in range(T):
        h = hs[t]
        xt = xs[t]
        if kind == KIND_IF:
            torch.add(v, xt, out=h)
        elif kind == KIND_LIF_DECAY_INPUT:
            if vr_zero:
                torch.sub(xt, v, out=tmp)
            else:
                torch.sub(v, vr_t, out=tmp)
                torch.sub(xt, tmp, out=tmp)
            scale_(tmp, tau_t)
            torch.add(v, tmp, out=h)
        else:
            if vr_zero:
                scale(v, tau_t, out=tmp)
            else:
                torch.sub(v, vr_t, out=tmp)
                scale_(tmp, tau_t)
            torch.sub(v, tmp, out=tmp)
            torch.add(tmp, xt, out=h)
        st = ss[t]
        fire(h, vth_t, out=st)                                 # S = 1[H >= Vth] (== 1[H - Vth >= 0]), or >
        if hard:
            torch.lerp(h, vr_t, st, out=v)                     # V = Vr where S else H
        else:
            torch.mul(st, vth_t, out=v)
            torch.sub(h, v, out=v)                             # V = H - S Vth
    return H, S, v


def _tau_term(gH, x, vprev, vr, tau, kind: int, recip: bool):
    """The per-step terms of the tau slot's gradient, as autograd of the reference computes them:
    div backward ``-g ((a / tau) / tau)`` with ``a = X - (V - Vr)`` (decay_input) or
    ``+g ((b / tau) / tau)`` with ``b = V - Vr``; for ``1/tau`` (recip) mul backward ``g a`` or
    ``-g b``."""
    if kind == KIND_LIF_DECAY_INPUT:
        a = x.float() - (vprev - vr)
        return gH * a if recip else -gH * ((a / tau) / tau)
    b = vprev - vr
    return -gH * b if recip else gH * ((b / tau) / tau)


def _torch_surrogate(surrogate):
    """The :mod:`spikefuse.surrogate` object whose own torch ops the reference's backward runs
    (a :class:`KernelSurrogate` from a torch.library op is rebuilt from its id and parameters)."""
    if not isinstance(surrogate, KernelSurrogate):
        return surrogate
    from ... import surrogate as S

    a0, a1 = surrogate.kernel_params
    make = {0: lambda: S.ATan(a0), 1: lambda: S.Sigmoid(a0), 2: lambda: S.SuperSpike.trusted(a0),
            3: lambda: S.SLAYERExp(a0, a1), 4: lambda: S.Triangle(a0, a1)}
    return make[surrogate.kernel_id]()


def _sg_times(surrogate, d):
    """``f(g, t)``: ``g * surrogate'(d[t])`` as the reference's SpikeFn backward computes it at
    step ``t`` (same torch ops on a same-sized row, so the same bits). The factor (ATan,
    Triangle) or the divisor (SuperSpike) is computed for all steps at once: their ops are
    correctly rounded IEEE operations, so where an element falls in a vector does not matter;
    transcendental ones (Sigmoid, SLAYER's exp, custom) run per step, as in the reference (the
    vectorised and the scalar-remainder exp can differ by an ulp)."""
    sur = _torch_surrogate(surrogate)
    kid = getattr(sur, "kernel_id", -1)
    if kid in (0, 4):
        f = sur.grad(d)
        return lambda g, t: g.mul_(f[t])
    if kid == 2 and hasattr(sur, "_denominator"):
        den = sur._denominator(d)
        return lambda g, t: g.div_(den[t])
    return lambda g, t: sur.backward(g, d[t])


def _spike_grad(gv, h, g_spk_t, out, tmp, vth, vr, hard: bool):
    """The gradient reaching the spike of one step (not detached): the output's plus the
    reset's, accumulated in autograd's order: ``(gS - gV H) + gV Vr`` (hard) or
    ``gS - gV Vth`` (soft)."""
    torch.mul(gv, h if hard else vth, out=out)
    if g_spk_t is not None:
        torch.sub(g_spk_t, out, out=out)
    else:
        out.neg_()
    if hard:
        out.add_(torch.mul(gv, vr, out=tmp))
    return out


def _reverse_scan(H, sg_times, ns, tau, vth, vr, cfg, grads, need_x: bool, keep: bool):
    """The reverse scan of the torch-op fallback, step by step in the reference's (autograd's)
    operation order, so the input and initial-state gradients are bit-identical to it. Returns
    ``(gX or None, gV0, (gH, gV, gSG))``; ``keep`` also returns ``gH`` (dL/dH[t]), ``gV`` (the
    gradient reaching V[t] after the reset) and ``gSG`` (the surrogate's term of gH[t]) as
    ``(T, M)`` arrays for the parameter gradients (else Nones)."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = cfg
    g_spk, g_vlast, g_hseq, g_vseq = (None if g is None else g.float() for g in grads)
    T, M = H.shape
    f32 = torch.float32
    carry = g_vlast.clone() if g_vlast is not None else torch.zeros(M, dtype=f32)
    gx = torch.empty((T, M), dtype=f32) if need_x else None
    gH_a = torch.empty((T, M), dtype=f32) if keep else None
    gV_a = torch.empty((T, M), dtype=f32) if keep else None
    gS_a = torch.zeros((T, M), dtype=f32) if keep else None
    gh_row, gv_row, gs, tmp = (torch.empty(M, dtype=f32) for _ in range(4))
    q = torch.zeros(M, dtype=f32)
    decay = kind == KIND_LIF_DECAY_INPUT
    split = g_vseq is not None and kind != KIND_IF    # carry = gH[t+1], q = its -dV part
    for t in range(T - 1, -1, -1):
        gv = gV_a[t] if keep else gv_row
        if g_vseq is None:
            gv.copy_(carry)
        else:   # autograd adds the trace's gradient first, then the next charge's two terms
            torch.add(g_vseq[t], carry, out=gv)
            if split:
                gv.sub_(q)
        gh = gH_a[t] if keep else (gx[t] if (need_x and not decay) else gh_row)
        torch.mul(gv, ns[t], out=gh) if hard else gh.copy_(gv)        # through the reset to H
        if g_hseq is not None:
            gh.add_(g_hseq[t])
        if not detach or g_spk is not None:
            gsum = g_spk[t].clone() if detach else _spike_grad(
                gv, H[t], None if g_spk is None else g_spk[t], gs, tmp, vth, vr, hard)
            gsg = sg_times(gsum, t)
            if keep:
                gS_a[t].copy_(gsg)
            gh.add_(gsg)
        if kind == KIND_IF:
            carry.copy_(gh)
        else:
            torch.mul(gh, tau, out=q) if recip else torch.div(gh, tau, out=q)
            carry.copy_(gh) if split else torch.sub(gh, q, out=carry)   # gH + (-gH / tau)
        if need_x and (decay or keep):
            gx[t].copy_(q if decay else gh)
    return gx, (carry.sub_(q) if split else carry), (gH_a, gV_a, gS_a)


def _param_terms(ctx, H, x, v0, ns, keep, params):
    """The per-step gradient terms of tau / v_threshold / v_reset in the fallback (the arrays
    the numba kernel writes with ``per_step=1``), from the ``keep`` arrays of
    :func:`_reverse_scan`; reduced by :func:`_step_sum`."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = ctx.cfg
    tau, vth, vr = params
    gH, gV, gS = keep
    need_tau, need_vth, need_vr = ctx.needs_input_grad[1:4]
    sf = 1.0 - ns
    terms = [None, None, None]
    if need_vth:
        terms[1] = [-gS] if hard else [(-gV) * sf, -gS]
    if need_vr and hard:
        terms[2] = [gV * sf] + ([] if kind == KIND_IF else [gH * tau if recip else gH / tau])
    if need_tau and kind != KIND_IF:
        vprev = torch.empty_like(H)
        vprev[0] = v0
        if H.shape[0] > 1:
            vprev[1:] = _reset(H[:-1], sf[:-1], vth, vr, hard)
        terms[0] = [_tau_term(gH, x, vprev, vr, tau, kind, recip)]
    return terms


def _param_grads(terms, shape, params, needs):
    """``(g_tau, g_vth, g_vr)``: the needed tensor parameters' gradients from their terms (a
    needed one without terms, e.g. tau of an IF neuron, gets zeros)."""
    out = []
    for k, p in enumerate(params):
        if not needs[1 + k] or not isinstance(p, torch.Tensor):
            out.append(None)
        elif terms[k] is None:
            out.append(torch.zeros(p.shape, dtype=torch.float32))
        else:
            out.append(_step_sum(terms[k], shape, p))
    return tuple(out)


def _fallback_backward(ctx, H, x, v0, params, grads):
    """The torch-op reverse scan (no numba, or a ``Custom`` surrogate)."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = ctx.cfg
    M = H.shape[1]
    tau, vth, vr = (_flat_of(p, ctx.step_shape, M) for p in params)
    needs = ctx.needs_input_grad
    keep = any(needs[1:4])
    d = torch.sub(H, vth)                                     # the reference's SpikeFn input
    ns = ((d <= 0) if strict else (d < 0)).float()            # 1 - S
    sg_times = _sg_times(surrogate, d)
    gx, gv0, kept = _reverse_scan(H, sg_times, ns, tau, vth, vr, ctx.cfg, grads, needs[0], keep)
    g_tau = g_vth = g_vr = None
    if keep:
        terms = _param_terms(ctx, H, x, v0, ns, kept, (tau, vth, vr))
        g_tau, g_vth, g_vr = _param_grads(terms, ctx.step_shape, params, needs)
    if gx is not None and ctx.x_dtype != torch.float32:
        gx = gx.to(ctx.x_dtype)
    return (gx, g_tau, g_vth, g_vr, gv0 if needs[4] else None, None)


def _flat_of(p, shape, M: int):
    """A parameter (number, or a tensor broadcasting to the step ``shape``) for the per-neuron
    loops: numbers stay, tensors become contiguous fp32 ``(M,)`` vectors (detached)."""
    if isinstance(p, torch.Tensor):
        return p.detach().to(torch.float32).expand(shape).reshape(M).contiguous()
    return p


def _per_neuron(p, shape, M: int):
    """A parameter (number or a tensor broadcasting to ``shape``) as a contiguous fp32 numpy
    ``(M,)`` array (a number: a cached row, :func:`.jit.const_row`)."""
    if isinstance(p, torch.Tensor):
        return _flat_of(p, shape, M).numpy()
    return jit.const_row(p, M)


#: the absent arrays of the LIF kernels (``(1,)`` / ``(1, 1)``): made once, since the kernels
#: never write an absent array (its flag off: :mod:`._nb_lif`)
_ABSENT = {1: np.zeros(1, dtype=np.float32), 2: np.zeros((1, 1), dtype=np.float32)}
_NO_FOLD = (np.zeros((2, 1, 1), dtype=np.float32), np.zeros((1, 1, 1), dtype=np.float32),
            np.zeros((1, 1), dtype=np.float32), np.array([1, 4, 0, 0], dtype=np.int64))


def _np(t: Optional[torch.Tensor], ndim: int = 1):
    """:func:`.jit.np32` for the LIF kernels without its per-call work in the common cases (a
    T=1 step passes ~20 arrays): an absent array is a shared dummy, a contiguous fp32 tensor
    its own numpy view."""
    if t is None:
        return _ABSENT[ndim]
    if t.dtype == torch.float32 and t.is_contiguous():
        return t.detach().numpy()
    return jit.np32(t, ndim)


def _v0_row(v0: Optional[torch.Tensor], vr, M: int):
    """The kernels' ``(M,)`` initial membrane: ``v0``'s, or for None (a call at rest, whose ``vr``
    is then a number) the cached row of ``vr + 0.0`` (the reference's resting state
    ``0 + v_reset``, which turns a -0.0 into +0.0)."""
    if v0 is None:
        return jit.const_row(vr + 0.0, M)
    return _np(v0.expand(M))


def _v0_tensor(v0: Optional[torch.Tensor], vr, M: int) -> torch.Tensor:
    """:func:`_v0_row` as a tensor (the torch-op fallback loops)."""
    return torch.from_numpy(_v0_row(v0, vr, M).copy()) if v0 is None else v0


def _tie(strict: bool) -> np.float32:
    """The spike of the numba kernels at ``H == Vth`` (:func:`._nb_lif.spike`): 1 for ``">="``, 0
    for the strict ``">"``; a float32, so both share one compiled variant."""
    return _TIE[bool(strict)]


_TIE = {False: np.float32(1.0), True: np.float32(0.0)}


def _nb_forward(nb, x, tau, vth, vr, v0, cfg, shape, keep_h: bool):
    """The numba forward scan (:mod:`._nb_lif`): the same results as :func:`_forward_loop`.
    H (when ``keep_h``: else None, and the kernel does not write it), the spikes and the trace are
    written in full by the kernel: :func:`.jit.empty`."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = cfg
    T, M = x.shape
    f32 = torch.float32
    S, vlast = jit.empty((T, M)), torch.empty(M, dtype=f32)
    H = jit.empty((T, M)) if keep_h else None
    vseq = jit.empty((T, M)) if traces else None
    k = nb.make_fwd(kind, int(hard), int(recip), _one_value((tau, vth, vr)))
    jit.run(k, M, nb.SPLIT, _np(x), *(_per_neuron(p, shape, M) for p in (tau, vth, vr)),
            _v0_row(v0, vr, M), _np(H, 2), S.numpy(), vlast.numpy(), _np(vseq, 2), bool(keep_h), bool(traces),
            _tie(strict), steps=T)
    spk = S if out_dtype == f32 else S.to(out_dtype)
    return spk, vlast, H, vseq


def _lif_forward(x, tau, vth, vr, v0, cfg, shape, keep_h: bool = True):
    """The forward scan without autograd: ``(spikes, v_last, H or None, v_seq or None)``; the
    tensor parameters broadcast to the step ``shape``. H (the saved charge, and the ``h_seq``
    trace) is returned when ``keep_h`` or the traces are asked for."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = cfg
    keep_h = bool(keep_h or traces)
    nb = jit.kernels("lif")
    if nb is not None:
        with torch.no_grad():
            return _nb_forward(nb, x, tau, vth, vr, v0, cfg, shape, keep_h)
    with torch.no_grad():
        x32 = x if x.dtype == torch.float32 else x.float()
        taud, vthd, vrd = (_flat_of(p, shape, x.shape[1]) for p in (tau, vth, vr))
        v0 = _v0_tensor(v0, vr, x.shape[1])
        H, sf, vlast = _forward_loop(x32, taud, vthd, vrd, v0.detach(), kind, hard, recip, strict)
        spk = sf if out_dtype == torch.float32 else sf.to(out_dtype)
        vseq = _reset(H, sf, vthd, vrd, hard) if traces else None
    return spk, vlast, H if keep_h else None, vseq


class _LIFCPU(torch.autograd.Function):
    """The autograd path for surrogates without a kernel id (``Custom``: a Python callable
    cannot cross a torch.library op); every other case runs the ``lif_cpu`` ScanSpec."""

    @staticmethod
    def forward(ctx, x, tau, vth, vr, v0, cfg, shape):
        kind, hard, detach, surrogate, traces, out_dtype, recip, strict = cfg
        spk, vlast, H, vseq = _lif_forward(x, tau, vth, vr, v0, cfg, shape)
        ctx.cfg, ctx.step_shape = cfg, shape
        ctx.tensor_params = tuple(isinstance(p, torch.Tensor) for p in (tau, vth, vr))
        ctx.consts = tuple(None if isinstance(p, torch.Tensor) else p for p in (tau, vth, vr))
        ctx.x_dtype = x.dtype
        xs = x if (kind == KIND_LIF_DECAY_INPUT and ctx.needs_input_grad[1]) else None
        tp = [p if isinstance(p, torch.Tensor) else None for p in (tau, vth, vr)]
        ctx.save_for_backward(H, xs, v0, *tp)
        ctx.set_materialize_grads(False)
        if traces:
            return spk, vlast, H, vseq
        return spk, vlast, None, None

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spk, g_vlast, g_hseq, g_vseq):
        return (*_lif_backward(ctx, ctx.saved_tensors, g_spk, g_vlast, g_hseq, g_vseq), None)


def _lif_backward(ctx, saved, g_spk, g_vlast, g_hseq, g_vseq):
    """The reverse scan; ``ctx`` carries ``cfg``, ``consts`` (the number parameters),
    ``x_dtype`` and ``needs_input_grad`` (x, tau, vth, vr, v0)."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = ctx.cfg
    H, x, v0, tau_t, vth_t, vr_t = saved
    tau = tau_t if tau_t is not None else ctx.consts[0]
    vth = vth_t if vth_t is not None else ctx.consts[1]
    vr = vr_t if vr_t is not None else ctx.consts[2]
    nb = jit.kernels("lif") if getattr(surrogate, "kernel_id", -1) in (0, 1, 2, 3, 4) else None
    if nb is not None:
        with torch.no_grad():
            return _nb_backward(nb, ctx, H, x, v0, (tau, vth, vr), (g_spk, g_vlast, g_hseq, g_vseq))
    with torch.no_grad():
        v0 = _v0_tensor(v0, vr, H.shape[1])
        return _fallback_backward(ctx, H, x, v0, (tau, vth, vr), (g_spk, g_vlast, g_hseq, g_vseq))


def surrogate_consts(surrogate) -> tuple:
    """``(c0, c1)`` of :func:`._nb_lif.sg_times`: the Python numbers of the reference's surrogate
    expressions (spikefuse/surrogate.py), rounded to fp32 as torch rounds a scalar operand."""
    a0, a1 = surrogate.kernel_params
    return _surrogate_consts(int(surrogate.kernel_id), float(a0), float(a1))


@functools.lru_cache(maxsize=256)
def _surrogate_consts(kid: int, a0: float, a1: float) -> tuple:
    if kid == 0:
        c = (math.pi / 2 * a0, a0 / 2)
    elif kid == 3:
        c = (a0, a1 / (2 * a0))
    else:
        c = (a0, a1)
    return tuple(np.float32(v) for v in c)


#: element step of the vectorised loop of torch's elementwise CPU kernels (two vectors: 2 x 8
#: floats with AVX2, 2 x 16 with AVX512, whose SLEEF expf gives the same bits); the remainder of
#: a loop runs the scalar function
_VEC_STEP = {"AVX2": 16, "AVX512": 32}
_GRAIN = 32768      # at::internal::GRAIN_SIZE: TensorIterator runs a smaller op on one thread


def torch_vec_lanes(M: int, threads: Optional[int] = None) -> np.ndarray:
    """``(M,)`` uint8: 1 where torch's elementwise sigmoid on a contiguous ``M``-element fp32
    tensor computes element ``j`` in a vector lane (SLEEF's expf), 0 where its scalar remainder
    loop does (libm's expf). TensorIterator runs the op on one range below ``_GRAIN`` elements or
    on one thread, else ``at::parallel_for`` splits it into ``min(threads, ceil(M / _GRAIN))``
    chunks of ``ceil(M / chunks)``; each range's last ``len % 16`` elements are the remainder.
    On a CPU capability other than AVX2 / AVX512 all zeros (the libm expf everywhere, as before; the
    vector exp of other capabilities is not reproduced)."""
    step = _VEC_STEP.get(torch.backends.cpu.get_cpu_capability())
    out = np.zeros(M, dtype=np.uint8)
    if step is None:
        return out
    nt = threads or torch.get_num_threads()
    chunks = 1 if (M < _GRAIN or nt == 1) else min(nt, -(-M // _GRAIN))
    size = -(-M // chunks)
    for b in range(0, M, size):
        e = min(M, b + size)
        out[b:e - (e - b) % step] = 1
    return out


def _lanes(kid: int, M: int):
    if kid != 1:
        return _NO_LANES
    key = (M, torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())
    cache = _LANES
    if key not in cache:
        if len(cache) > 64:
            cache.clear()
        cache[key] = torch_vec_lanes(M)
    return cache[key]


_LANES: dict = {}
_NO_LANES = np.zeros(1, dtype=np.uint8)     # read only: the kernels read lanes for Sigmoid alone


def _nb_param_flags(ctx, params, M: int):
    """``(need_tau, need_vth, need_vr, per_step)`` of :func:`._nb_lif.make_bwd`: which tensor
    parameters need a gradient, and whether one of them is broadcast over neurons (then the
    kernel writes per-step terms for :func:`_step_sum`; else it sums them itself in the same
    order, which for one value per neuron gives the same bits without the ``(T, M)`` arrays)."""
    kind, hard = ctx.cfg[0], ctx.cfg[1]
    live = [ctx.needs_input_grad[1 + k] and isinstance(p, torch.Tensor) for k, p in enumerate(params)]
    need = (live[0] and kind != KIND_IF, live[1], live[2] and hard)
    per_step = any(n and params[k].numel() != M for k, n in enumerate(need))
    return need, per_step


def _sum_lanes(nb):
    """The vector width (floats) of torch's CPU sum kernel, probed once: the width (8 or 16) whose
    :func:`._nb_lif.rowsum_fold` order gives ``torch.sum``'s bits on random rows of several sizes
    (on an AVX512 CPU torch's sum runs its AVX2 kernel: 8 lanes); None when neither does (then
    the kernels write the per-step terms for :func:`.common.step_sum`)."""
    key = ("sum_lanes", torch.backends.cpu.get_cpu_capability())
    if key not in _LANES:
        g = torch.Generator().manual_seed(7)
        rows = [torch.randn(m, generator=g) * 3 for m in (17, 64, 333, 1000, 5000, 20000)]
        want = [float(r.sum()) for r in rows]   # one thread or under GRAIN_SIZE: the serial sum
        _LANES[key] = None
        for L in (8, 16):
            if all(float(_fold_sum(nb, r.numpy(), L)) == w for r, w in zip(rows, want)):
                _LANES[key] = L
                break
    return _LANES[key]


def _fold_sum(nb, row, L: int, align: Optional[int] = None):
    """:func:`._nb_lif.rowsum_fold` / ``fold_final`` over one row, tile by tile (the kernels'
    order), with ``L`` lanes, in ranges of ``align`` neurons folded apart (the kernels' threads;
    default: one range)."""
    M = row.shape[0]
    geo = _geo(M, L)
    loc, fblk, frest = _fold_state(geo, 1)
    out = np.empty(1, np.float32)
    nb.fold_rows(row.reshape(1, -1), loc, fblk, frest, geo, out, int(align or M))
    return out[0]


def _fold_state(geo, T: int):
    """The zeroed ``(loc, fblk, frest)`` arrays of :func:`._nb_lif.rowsum_fold` for ``T`` rows."""
    G = 4 * int(geo[0])
    K = max(1, int(geo[2]) >> (2 * int(geo[1])))
    return (np.zeros((2, T, G), np.float32), np.zeros((T, K, G), np.float32), np.zeros((T, G), np.float32))


def _fold_align(geo) -> int:
    """The neuron granularity of the thread ranges of a folding kernel: ``G 2^(2 lpow)`` (levels
    0 and 1 of torch's cascade are empty at such a neuron: :func:`._nb_lif.rowsum_fold`)."""
    return 4 * int(geo[0]) << (2 * int(geo[1]))


def _geo(M: int, L: int):
    nvec = M // L
    groups = nvec // 4
    cl = 1 if groups <= 2 else (groups - 1).bit_length()     # ceil_log2
    return np.array([L, max(4, cl // 4), groups, nvec], dtype=np.int64)


def _fold_geo(nb, M: int, T: int):
    """``(L, lpow, groups, vectors)`` of torch's CPU sum of a contiguous fp32 ``M``-element row
    (SumKernel.cpp ``vectorized_inner_sum`` / ``row_sum`` / ``multi_row_sum``; see
    :func:`._nb_lif.rowsum_fold`) when the kernel can fold PLIF's per-step tau terms into it, else
    None: the reference reduces each row serially (``M <= GRAIN_SIZE`` or one thread), a known
    vector width, at least one vector (a shorter row takes torch's scalar loop). The kernel's
    thread ranges then start at multiples of :func:`_fold_align` (each folds its part apart)."""
    from .common import GRAIN_SIZE

    if not (M <= GRAIN_SIZE or torch.get_num_threads() == 1):
        return None
    L = _sum_lanes(nb)
    if L is None or M < L:
        return None
    return _geo(M, L)


def _nb_backward(nb, ctx, H, x, v0, params, grads):
    """The numba reverse scan (:mod:`._nb_lif`); the contract of :func:`_lif_backward`."""
    kind, hard, detach, surrogate, traces, out_dtype, recip, strict = ctx.cfg
    T, M = H.shape
    needs = ctx.needs_input_grad
    (n_tau, n_vth, n_vr), per_step = _nb_param_flags(ctx, params, M)
    f32 = torch.float32
    gx = jit.empty((T, M)) if needs[0] else None       # written in full by the kernel
    gv0 = torch.empty(M, dtype=f32)
    vec = [torch.empty(M, dtype=f32) if (n and not per_step) else None for n in (n_tau, n_vth, n_vr)]
    two = (n_tau, n_vth, n_vth and not hard, n_vr, n_vr and kind != KIND_IF)
    arr = [jit.empty((T, M)) if (n and per_step) else None for n in two]
    # PLIF (one tau for all neurons): the kernel sums each step's tau terms in torch's order
    # (rowsum_fold) instead of writing them into a (T, M) array for step_sum
    geo = _fold_geo(nb, M, T) if (n_tau and per_step and params[0].numel() == 1) else None
    if geo is not None:
        arr[0] = None
        fold = (*_fold_state(geo, T), geo)
    else:
        fold = _NO_FOLD
    c0, c1 = surrogate_consts(surrogate)
    g_spk, g_vlast, g_hseq, g_vseq = grads
    xs = x if (x is not None and kind == KIND_LIF_DECAY_INPUT and n_tau) else None
    params_on = n_tau or n_vth or n_vr
    k = nb.make_bwd(int(kind != KIND_IF), int(kind == KIND_LIF_DECAY_INPUT), int(recip), int(hard), int(detach),
                    int(surrogate.kernel_id), int(g_vseq is not None), int(params_on),
                    int(n_tau and not n_vth and not n_vr and kind != KIND_IF), _one_value(params))
    (gs, ss), (gvs, vs), (ghs, hs) = (jit.grad_rows(g) for g in (g_spk, g_vseq, g_hseq))
    split = nb.SPLIT if geo is None else _fold_align(geo)  # a fold: ranges where levels 0-1 are empty
    jit.run(k, M, split, _np(H, 2), _np(xs, 2), gs, gvs, ghs, g_spk is not None, g_hseq is not None,
            ss, vs, hs, _np(g_vlast), g_vlast is not None,
            *(_per_neuron(p, ctx.step_shape, M) for p in params), _v0_row(v0, params[2], M),
            c0, c1, _tie(strict),
            _lanes(int(surrogate.kernel_id), M), bool(needs[0]), _np(gx, 2), gv0.numpy(), bool(n_tau),
            bool(n_vth), bool(n_vr), bool(per_step), *(_np(g) for g in vec),
            *(_np(a, 2) for a in arr), geo is not None, *fold, steps=T)
    if gx is not None and ctx.x_dtype != f32:
        gx = gx.to(ctx.x_dtype)
    if per_step:
        terms = ([arr[0]] if arr[0] is not None else None, [a for a in arr[1:3] if a is not None] or None,
                 [a for a in arr[3:] if a is not None] or None)
        out = _param_grads(terms, ctx.step_shape, params, needs)
        if geo is not None:   # each step's sum, then autograd's order: step T-1 first, sequential fp32 adds
            sums = np.empty(T, dtype=np.float32)
            nb.fold_final(fold[0], fold[1], fold[2], geo, M, sums)
            acc = np.add.accumulate(sums[::-1], dtype=np.float32)[-1]
            out = (torch.tensor(acc, dtype=f32).reshape(params[0].shape), *out[1:])
    else:
        out = tuple(None if not needs[1 + j] or not isinstance(p, torch.Tensor) else
                    (vec[j].view(p.shape) if vec[j] is not None else torch.zeros(p.shape, dtype=f32))
                    for j, p in enumerate(params))
    return (gx, *out, gv0 if needs[4] else None, None)


def lif_supports(x_seq: torch.Tensor, params=None, v0=None, return_traces=False, **_) -> Optional[str]:
    """None when the fused CPU LIF path can run this case, else the reason."""
    if params is None:
        return "no LIFParams given"
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    why = io_reason(x_seq)
    if why is not None:
        return why
    return lif_param_reason(x_seq, params, v0)


def _own(p, device):
    """A parameter as the op takes it: a number (a Python float), or a tensor in its own shape
    (broadcasting to one step), cast to fp32 on ``device`` as the reference casts it, so that
    its gradient is reduced and accumulated by the op as autograd of the reference does."""
    if isinstance(p, torch.Tensor):
        return p.to(device=device, dtype=torch.float32)
    return float(p)


def lif_cpu(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused CPU IF/LIF scan with a hand-written backward.

    The kernel contract of the Triton LIF (:func:`spikefuse.kernels.triton.lif.lif_triton`):
    ``state`` is ``(v0,)`` or None; returns ``((spikes,), (v_last,), (h_seq, v_seq) or None)``.

    Example::

        >>> import torch
        >>> from types import SimpleNamespace
        >>> from spikefuse.surrogate import ATan
        >>> p = SimpleNamespace(tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
        ...                     detach_reset=False, surrogate=ATan())
        >>> (s,), (v,), _ = lif_cpu(torch.tensor([[[1.5]], [[1.5]], [[0.5]]]), p)
        >>> s.flatten().tolist(), v.flatten().tolist()
        ([0.0, 1.0, 0.0], [0.25])
    """
    shape = tuple(x_seq.shape[1:])
    dev = x_seq.device
    v0 = lif_v0(state)
    T = x_seq.shape[0]
    kind = lif_kind(params)
    hard = params.v_reset is not None
    recip = getattr(params, "reciprocal_tau", None) is not None   # tau slot holds 1/tau
    tau = _own(params.reciprocal_tau if recip else (params.tau if params.tau is not None else 1.0), dev)
    vth = _own(params.v_threshold, dev)
    vr = _own(params.v_reset if hard else 0.0, dev)
    if v0 is not None:
        v0f = expand_param(v0, shape, dev)
    elif isinstance(vr, torch.Tensor):
        v0f = expand_param(vr.detach(), shape, dev)
    else:
        v0f = None      # at rest, V0 = v_reset (+ 0.0, as the reference's resting state): _v0_row
    strict = getattr(params, "threshold", ">=") == ">"            # S = 1[H - Vth > 0]
    cfg = (kind, hard, bool(params.detach_reset), params.surrogate, bool(return_traces), x_seq.dtype, recip,
           strict)
    if getattr(params.surrogate, "kernel_id", -1) in (0, 1, 2, 3, 4):
        spk, vlast, hseq, vseq = _lif_op(x_seq.reshape(T, -1), tau, vth, vr, v0f, cfg, shape)
    else:
        spk, vlast, hseq, vseq = _LIFCPU.apply(x_seq.reshape(T, -1), tau, vth, vr, v0f, cfg, shape)
    return lif_outputs(spk, vlast, hseq, vseq, x_seq.shape, return_traces)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding: tensors (x, tau, vth, vr, v0) with number parameters absent; floats (tau, vth,
# vr, a0, a1) with the numbers (0.0 where a tensor is given); ints (kind, hard, detach_reset,
# surrogate id, traces, io dtype index, which of tau/vth/vr are tensors as bits 0/1/2, recip,
# strict (threshold=">"), whether any input needs a gradient (grad_bits: then the forward stores
# H for backward; else not, unless the traces are asked for), then the step shape (B, *features)
# the tensor parameters broadcast to)


class _Ctx:
    """What the hand-written backward reads from an autograd ctx."""

    def __init__(self, cfg, consts, x_dtype, needs, step_shape):
        self.cfg, self.consts, self.x_dtype, self.needs_input_grad = cfg, consts, x_dtype, tuple(needs)
        self.step_shape = step_shape


def _decode(tensors, f, i):
    """``(cfg, params, consts)`` of an op call: the configuration and the number parameters are
    decoded once per distinct ``(f, i)`` (the floats keyed by their bits: 0.0 and -0.0 differ)
    and cached, since a training loop makes the same call every step (issue 15 item 3)."""
    key = (struct.pack(f"{len(f)}d", *f), tuple(i))
    hit = _DECODED.get(key)
    if hit is None:
        kind, hard, detach, kid, traces, dti, mask, recip, strict = i[:9]
        sur = KernelSurrogate(kid, f[3], f[4])
        cfg = (kind, bool(hard), bool(detach), sur, bool(traces), IO_DTYPES[dti], bool(recip), bool(strict))
        consts = tuple(None if (mask >> k) & 1 else f[k] for k in range(3))
        if len(_DECODED) >= 256:
            _DECODED.clear()
        hit = _DECODED[key] = (cfg, mask, consts)
    cfg, mask, consts = hit
    params = [tensors[1 + k] if (mask >> k) & 1 else f[k] for k in range(3)]
    return cfg, params, consts


_DECODED: dict = {}


def _lif_op(x, tau, vth, vr, v0, cfg, shape):
    kind, hard, detach, sur, traces, out_dtype, recip, strict = cfg
    a0, a1 = sur.kernel_params
    ps = (tau, vth, vr)
    mask = sum(1 << k for k, p in enumerate(ps) if isinstance(p, torch.Tensor))
    tensors = [x] + [p if isinstance(p, torch.Tensor) else None for p in ps] + [v0]
    f = [0.0 if isinstance(p, torch.Tensor) else float(p) for p in ps] + [float(a0), float(a1)]
    i = [kind, int(hard), int(detach), int(sur.kernel_id), int(traces), IO_DTYPES.index(out_dtype), mask,
         int(recip), int(strict), int(grad_bits(tensors) != 0), *shape]
    return LIF_SCAN.apply(tensors, f, i)


def _spec_forward(tensors, f, i):
    cfg, (tau, vth, vr), _ = _decode(tensors, f, i)
    return list(_lif_forward(tensors[0], tau, vth, vr, tensors[4], cfg, tuple(i[10:]), bool(i[9])))


def _spec_save(tensors, outputs, f, i, needs):
    x = tensors[0] if (i[0] == KIND_LIF_DECAY_INPUT and needs[1]) else None
    return [outputs[2], x, tensors[4], tensors[1], tensors[2], tensors[3]]


def _spec_backward(saved, grads, f, i, needs):
    cfg, _, consts = _decode([None] + saved[3:] + [None], f, i)
    ctx = _Ctx(cfg, consts, cfg[5], needs, tuple(i[10:]))
    return list(_lif_backward(ctx, saved, *grads)[:5])


def _spec_fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    h = x.new_empty((T, M), dtype=torch.float32) if (i[4] or i[9]) else None
    return [x.new_empty((T, M)), x.new_empty((M,), dtype=torch.float32), h,
            x.new_empty((T, M), dtype=torch.float32) if i[4] else None]


def _spec_fake_backward(saved, grads, f, i, needs):
    H = saved[0]
    T, M = H.shape
    out = [H.new_empty((T, M), dtype=IO_DTYPES[i[5]]) if needs[0] else None]
    out += [H.new_empty(saved[2 + k].shape) if needs[k] and saved[2 + k] is not None else None for k in range(1, 4)]
    out += [H.new_empty((M,)) if needs[4] else None]
    return out


LIF_SCAN = ScanFunction(ScanSpec(
    name="lif_cpu", inputs=("x", "tau", "v_threshold", "v_reset", "v0"), states=("v",),
    params=("tau", "v_threshold", "v_reset"), outputs=("spikes", "v_last", "h_seq", "v_seq"),
    saved=("h_seq",), saved_bytes=SAVED_BYTES["lif"], moved_bytes=12,
    forward=_spec_forward, save=_spec_save, backward=_spec_backward, fake=_spec_fake,
    fake_backward=_spec_fake_backward))
