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
expression order exactly (``v + (x - (v - vr)) / tau``; ``1[H >= Vth]`` == ``1[H - Vth >= 0]``;
the reset gives exactly ``Vr`` or ``H``), so spikes, traces and the final state match the
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

import math
from typing import Optional

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..._core import flat_param as _flat, scalar_tensor as _scalar_t
from .._common import (IO_DTYPES, KIND_IF, KIND_LIF_DECAY_INPUT, KernelSurrogate, expand_param, io_reason,
                       lif_kind, lif_outputs, lif_param_reason, lif_v0)
from ..scan import ScanFunction, ScanSpec
from . import jit
from .common import time_blocks

SAVED_BYTES = {"lif": 4}


def surrogate_grad_(x: torch.Tensor, surrogate) -> torch.Tensor:
    """``surrogate.grad(x)`` computed in place in ``x`` (fp32) for the families with a kernel id;
    any other surrogate (``Custom``) is evaluated by its own ``grad``."""
    kid = getattr(surrogate, "kernel_id", -1)
    a0, a1 = surrogate.kernel_params if kid >= 0 else (0.0, 0.0)
    if kid == 0:  # ATan: (a/2) / (1 + (pi/2 a x)^2)
        return x.mul_(math.pi / 2 * a0).square_().add_(1.0).reciprocal_().mul_(a0 / 2)
    if kid == 1:  # Sigmoid: a s (1 - s)
        x.mul_(a0).sigmoid_()
        return torch.addcmul(x, x, x, value=-1.0, out=x).mul_(a0)
    if kid == 2:  # SuperSpike: 1 / (a |x| + 1)^2
        return x.abs_().mul_(a0).add_(1.0).square_().reciprocal_()
    if kid == 3:  # SLAYER exp: scale/(2 tau) exp(-|x|/tau)
        return x.abs_().mul_(-1.0 / a0).exp_().mul_(a1 / (2 * a0))
    if kid == 4:  # Triangle: h max(0, 1 - |x|/w)
        return x.abs_().mul_(-1.0 / a0).add_(1.0).clamp_(min=0.0).mul_(a1)
    return surrogate.grad(x).to(torch.float32)


def _reset(h, sf, vth, vr, hard: bool):
    """V after reset from H and the 0/1 float spikes ``sf`` (vectorised, any shape; the same
    arithmetic as the forward loop, so bit-identical to it)."""
    out = torch.empty_like(h)
    if hard:
        return torch.lerp(h, _scalar_t(vr), sf, out=out)       # exactly H (S = 0) or Vr (S = 1)
    torch.mul(sf, vth, out=out)
    return torch.sub(h, out, out=out)


def _forward_loop(x32, tau, vth, vr, v0, kind: int, hard: bool, recip: bool = False):
    """Runs the scan; returns H (T, M) fp32, the spikes as 0/1 fp32 (T, M) and V_last (M,) fp32.
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
        torch.ge(h, vth_t, out=st)                             # S = 1[H >= Vth] (== 1[H - Vth >= 0])
        if hard:
            torch.lerp(h, vr_t, st, out=v)                     # V = Vr where S else H
        else:
            torch.mul(st, vth_t, out=v)
            torch.sub(h, v, out=v)                             # V = H - S Vth
    return H, S, v




def _dhdv(tau, recip: bool):
    """dH/dV_prev of a LIF: ``1 - 1/tau`` (``1 - tau`` when the tau slot holds ``1/tau``)."""
    return 1.0 - tau if recip else 1.0 - 1.0 / tau


def _tau_grad(gH, x, vprev, vr, tau, kind: int, recip: bool):
    """Gradient of the tau slot: dH/dtau = -(X - (V - Vr))/tau^2 (decay_input) or
    (V - Vr)/tau^2; for ``1/tau`` (recip) dH/d(1/tau) = X - (V - Vr) or -(V - Vr)."""
    if kind == KIND_LIF_DECAY_INPUT:
        g = (gH * (x.float() - (vprev - vr))).sum(0)
        return g if recip else -g / (tau * tau)
    g = (gH * (vprev - vr)).sum(0)
    return -g if recip else g / (tau * tau)


def _blockable(surrogate, detach: bool, g_vseq) -> bool:
    """Whether the blocked backward gives the same bits as the full-array one. Elementwise ops
    whose vectorised and scalar-remainder code differ (``sigmoid_``, ``exp_``, custom
    surrogates; ``addcmul`` with a non-0/1 factor, fused multiply-add in the vector body only)
    can round an element differently depending on where a tensor's remainder falls."""
    if getattr(surrogate, "kernel_id", -1) not in (0, 2, 4):   # ATan, SuperSpike, Triangle
        return False
    return g_vseq is None or detach


def _backward_blocked(ctx, H, tau, vth, vr, g_spk, g_vlast, g_hseq, g_vseq):
    """Backward when no parameter needs a gradient: the same per-element arithmetic as the
    full-array path below (bit-identical results), computed a block of steps at a time in small
    reused buffers, writing the input gradient in place: no full-size temporaries."""
    kind, hard, detach, surrogate, traces, out_dtype, recip = ctx.cfg
    T, M = H.shape
    f32 = torch.float32
    need_x = ctx.needs_input_grad[0]
    with torch.no_grad():
        Tb, starts, cuts, ns, blocks = time_blocks(T, M)

        x32 = ctx.x_dtype == f32
        gH_a = torch.empty((T if (need_x and x32) else Tb, M), dtype=f32)
        gx = torch.empty((T, M), dtype=ctx.x_dtype) if (need_x and not x32) else None
        sg_a = torch.empty((Tb, M), dtype=f32)
        k_a = torch.empty((Tb, M), dtype=f32) if hard else None
        gv_a = torch.empty((Tb, M), dtype=f32) if (hard or not detach) else None
        one = torch.ones((), dtype=f32)
        vth_t, vr_t, tau_t = _scalar_t(vth), _scalar_t(vr), _scalar_t(tau)
        mvth_t = _scalar_t(-vth)
        dhdv_t = _scalar_t(1.0 if kind == KIND_IF else _dhdv(tau, recip))
        Hs, gHs, sgs, ks, gvs, gxs = (blocks(a) for a in (H, gH_a, sg_a, k_a, gv_a, gx))
        gspks, ghs, gvseqs = blocks(g_spk), blocks(g_hseq), blocks(g_vseq)
        gH_rows = gH_a.unbind(0)
        gv_rows = gv_a.unbind(0) if gv_a is not None else None
        gH_full = gH_a.shape[0] == T
        carry = g_vlast.float().clone() if g_vlast is not None else torch.zeros(M)
        for b in range(len(starts) - 1, -1, -1):
            t0, n = starts[b], ns[b]
            h = Hs[b]
            sg = surrogate_grad_(torch.sub(h, vth_t, out=sgs[b]), surrogate)
            gv2h = None                                        # dV/dH (None: 1)
            if hard:
                k = ks[b]
                torch.ge(h, vth_t, out=k)
                torch.sub(one, k, out=k)                       # 1 - S (NaN H: 1, as ~(H >= Vth))
                if detach:
                    gv2h = k
                else:                                          # (Vr - H) sg + 1 - S
                    gv2h = torch.neg(h, out=gvs[b]).add_(vr_t).mul_(sg).add_(k)
            elif not detach:
                gv2h = torch.mul(sg, mvth_t, out=gvs[b]).add_(one)   # 1 - Vth sg
            a = gHs[b]
            if g_spk is not None:
                torch.mul(sg, gspks[b], out=a)
            else:
                a.zero_()
            if g_vseq is not None:
                a.add_(gvseqs[b]) if gv2h is None else a.addcmul_(gvseqs[b], gv2h)
            if g_hseq is not None:
                a.add_(ghs[b])
            o = t0 if gH_full else 0
            if gv2h is not None:
                rows = gv2h.unbind(0)
            for kk in range(n - 1, -1, -1):
                gh = gH_rows[o + kk]
                if gv2h is None:
                    gh.add_(carry)
                else:
                    gh.addcmul_(carry, rows[kk])
                torch.mul(gh, dhdv_t, out=carry)
            if need_x:
                if kind == KIND_LIF_DECAY_INPUT:
                    a.mul_(tau_t) if recip else a.div_(tau_t)
                if gx is not None:
                    gxs[b].copy_(a)
        gx = (gH_a if gx is None else gx) if need_x else None
    return (gx, None, None, None, carry if ctx.needs_input_grad[4] else None, None)


def _per_neuron(p, M: int):
    """A parameter (number or flat tensor) as a contiguous fp32 numpy ``(M,)`` array."""
    if isinstance(p, torch.Tensor):
        return jit.np32(p.detach().expand(M))
    return jit.np32(torch.full((M,), float(p), dtype=torch.float32))


def _nb_forward(nb, x, tau, vth, vr, v0, cfg):
    """The numba forward scan (:mod:`._nb_lif`): the same results as :func:`_forward_loop`."""
    kind, hard, detach, surrogate, traces, out_dtype, recip = cfg
    T, M = x.shape
    f32 = torch.float32
    H, S, vlast = torch.empty((T, M), dtype=f32), torch.empty((T, M), dtype=f32), torch.empty(M, dtype=f32)
    vseq = torch.empty((T, M), dtype=f32) if traces else None
    k = nb.make_fwd(kind, int(hard), int(recip), int(traces))
    jit.run(k, M, nb.TILE, jit.np32(x), _per_neuron(tau, M), _per_neuron(vth, M), _per_neuron(vr, M),
            jit.np32(v0.expand(M)), H.numpy(), S.numpy(), vlast.numpy(), jit.np32(vseq, 2))
    spk = S if out_dtype == f32 else S.to(out_dtype)
    return spk, vlast, H, vseq


def _lif_forward(x, tau, vth, vr, v0, cfg):
    """The forward scan without autograd: ``(spikes, v_last, H, v_seq or None)``."""
    kind, hard, detach, surrogate, traces, out_dtype, recip = cfg
    nb = jit.kernels("lif")
    if nb is not None:
        with torch.no_grad():
            return _nb_forward(nb, x, tau, vth, vr, v0, cfg)
    with torch.no_grad():
        x32 = x if x.dtype == torch.float32 else x.float()
        taud, vthd, vrd = (p.detach() if isinstance(p, torch.Tensor) else p for p in (tau, vth, vr))
        H, sf, vlast = _forward_loop(x32, taud, vthd, vrd, v0.detach(), kind, hard, recip)
        spk = sf if out_dtype == torch.float32 else sf.to(out_dtype)
        vseq = _reset(H, sf, vthd, vrd, hard) if traces else None
    return spk, vlast, H, vseq


class _LIFCPU(torch.autograd.Function):
    """The autograd path for surrogates without a kernel id (``Custom``: a Python callable
    cannot cross a torch.library op); every other case runs the ``lif_cpu`` ScanSpec."""

    @staticmethod
    def forward(ctx, x, tau, vth, vr, v0, cfg):
        kind, hard, detach, surrogate, traces, out_dtype, recip = cfg
        spk, vlast, H, vseq = _lif_forward(x, tau, vth, vr, v0, cfg)
        ctx.cfg = cfg
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
        return _lif_backward(ctx, ctx.saved_tensors, g_spk, g_vlast, g_hseq, g_vseq)


def _lif_backward(ctx, saved, g_spk, g_vlast, g_hseq, g_vseq):
    """The reverse scan; ``ctx`` carries ``cfg``, ``consts`` (the number parameters),
    ``x_dtype`` and ``needs_input_grad`` (x, tau, vth, vr, v0)."""
    kind, hard, detach, surrogate, traces, out_dtype, recip = ctx.cfg
    H, x, v0, tau_t, vth_t, vr_t = saved
    tau = tau_t if tau_t is not None else ctx.consts[0]
    vth = vth_t if vth_t is not None else ctx.consts[1]
    vr = vr_t if vr_t is not None else ctx.consts[2]
    nb = jit.kernels("lif") if getattr(surrogate, "kernel_id", -1) in (0, 1, 2, 3, 4) else None
    if nb is not None:
        with torch.no_grad():
            return _nb_backward(nb, ctx, H, x, v0, (tau, vth, vr), (g_spk, g_vlast, g_hseq, g_vseq))
    T, M = H.shape
    need_tau, need_vth, need_vr = ctx.needs_input_grad[1:4]
    if not (need_tau or need_vth or need_vr) and _blockable(surrogate, detach, g_vseq):
        return _backward_blocked(ctx, H, tau, vth, vr, g_spk, g_vlast, g_hseq, g_vseq)
    with torch.no_grad():
        # few full-size temporaries, updated in place: fresh (T, M) buffers cost page faults
        s = H >= vth
        sg = surrogate_grad_(torch.sub(H, vth), surrogate)
        if hard:
            if detach:
                gv2h = (~s).float()
            else:  # 1 - S + (Vr - H) sg
                gv2h = torch.neg(H).add_(vr).mul_(sg).add_(~s)
        else:
            gv2h = None if detach else torch.mul(sg, -vth).add_(1.0)  # None: dV/dH = 1
        # a[t] = everything of gH[t] that does not depend on the carried gV
        a = sg.clone() if need_vth else sg
        if g_spk is not None:
            a.mul_(g_spk)
        else:
            a.zero_()
        if g_vseq is not None:
            a.add_(g_vseq) if gv2h is None else a.addcmul_(g_vseq, gv2h)
        if g_hseq is not None:
            a.add_(g_hseq)
        dhdv = 1.0 if kind == KIND_IF else _dhdv(tau, recip)
        carry = g_vlast.float().clone() if g_vlast is not None else torch.zeros(M)
        gH = a
        for t in range(T - 1, -1, -1):
            if gv2h is None:
                gH[t].add_(carry)
            else:
                gH[t].addcmul_(carry, gv2h[t])
            torch.mul(gH[t], dhdv, out=carry)
        gv0 = carry
        sf = s.float() if (need_vth or need_vr) else None
        g_tau = g_vth = g_vr = None
        if need_vth or need_vr:
            # gradient reaching V[t] (after reset): carried from step t+1 plus the trace's
            gv_in = torch.empty_like(H)
            if T > 1:
                torch.mul(gH[1:], dhdv, out=gv_in[:-1])
            if g_vlast is not None:
                gv_in[-1] = g_vlast.float()
            else:
                gv_in[-1] = 0.0
            if g_vseq is not None:
                gv_in.add_(g_vseq.float())
        if need_vth:
            if hard:
                dvdvth = torch.zeros_like(H) if detach else (H - vr) * sg
            else:
                dvdvth = -sf if detach else vth * sg - sf
            g = gv_in * dvdvth
            if g_spk is not None:
                g.sub_(g_spk.float() * sg)
            g_vth = g.sum(0)
        if need_vr:
            g = gv_in * sf if hard else torch.zeros_like(H)
            if kind != KIND_IF:
                g.add_(gH * tau if recip else gH / tau)
            g_vr = g.sum(0)
        if need_tau and kind != KIND_IF:
            vprev = torch.empty_like(H)
            vprev[0] = v0
            if T > 1:
                vprev[1:] = _reset(H[:-1], s[:-1].float(), vth, vr, hard)
            g_tau = _tau_grad(gH, x, vprev, vr, tau, kind, recip)
        if ctx.needs_input_grad[0]:
            if kind == KIND_LIF_DECAY_INPUT:
                gx = gH.mul_(tau) if recip else gH.div_(tau)
            else:
                gx = gH
            gx = gx.to(ctx.x_dtype)
        else:
            gx = None
    return (gx, g_tau, g_vth, g_vr, gv0 if ctx.needs_input_grad[4] else None, None)


def surrogate_consts(surrogate) -> tuple:
    """``(c0, c1)`` of :func:`._nb_lif.sg_times`: the Python numbers of the reference's surrogate
    expressions (spikefuse/surrogate.py), rounded to fp32 as torch rounds a scalar operand."""
    kid = surrogate.kernel_id
    a0, a1 = surrogate.kernel_params
    if kid == 0:
        c = (math.pi / 2 * a0, a0 / 2)
    elif kid == 3:
        c = (a0, a1 / (2 * a0))
    else:
        c = (a0, a1)
    return tuple(np.float32(v) for v in c)


def _nb_backward(nb, ctx, H, x, v0, params, grads):
    """The numba reverse scan (:mod:`._nb_lif`); the contract of :func:`_lif_backward`."""
    kind, hard, detach, surrogate, traces, out_dtype, recip = ctx.cfg
    T, M = H.shape
    needs = ctx.needs_input_grad
    need_params = any(needs[1:4])
    f32 = torch.float32
    gx = torch.empty((T, M), dtype=f32) if needs[0] else None
    gv0 = torch.empty(M, dtype=f32)
    pg = [torch.empty(M, dtype=f32) if need_params else None for _ in range(3)]
    c0, c1 = surrogate_consts(surrogate)
    g_spk, g_vlast, g_hseq, g_vseq = grads
    xs = x if (x is not None and kind == KIND_LIF_DECAY_INPUT and need_params) else None
    k = nb.make_bwd(kind, int(hard), int(detach), int(recip), int(surrogate.kernel_id), int(g_spk is not None),
                    int(g_vseq is not None), int(g_hseq is not None), int(g_vlast is not None), int(needs[0]),
                    int(need_params))
    jit.run(k, M, nb.TILE, jit.np32(H, 2), jit.np32(xs, 2), jit.np32(g_spk, 2), jit.np32(g_vseq, 2),
            jit.np32(g_hseq, 2), jit.np32(g_vlast), *(_per_neuron(p, M) for p in params), jit.np32(v0.expand(M)),
            c0, c1, jit.np32(gx, 2), gv0.numpy(), *(jit.np32(g) for g in pg))
    if gx is not None and ctx.x_dtype != f32:
        gx = gx.to(ctx.x_dtype)
    out = [pg[k] if needs[1 + k] else None for k in range(3)]
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
    tau = _flat(params.reciprocal_tau if recip else (params.tau if params.tau is not None else 1.0), shape, dev)
    vth = _flat(params.v_threshold, shape, dev)
    vr = _flat(params.v_reset if hard else 0.0, shape, dev)
    if v0 is None:
        v0f = vr.detach().clone() if isinstance(vr, torch.Tensor) else torch.full(
            (x_seq[0].numel(),), vr, dtype=torch.float32)
    else:
        v0f = expand_param(v0, shape, dev)
    cfg = (kind, hard, bool(params.detach_reset), params.surrogate, bool(return_traces), x_seq.dtype, recip)
    if getattr(params.surrogate, "kernel_id", -1) in (0, 1, 2, 3, 4):
        spk, vlast, hseq, vseq = _lif_op(x_seq.reshape(T, -1), tau, vth, vr, v0f, cfg)
    else:
        spk, vlast, hseq, vseq = _LIFCPU.apply(x_seq.reshape(T, -1), tau, vth, vr, v0f, cfg)
    return lif_outputs(spk, vlast, hseq, vseq, x_seq.shape, return_traces)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding: tensors (x, tau, vth, vr, v0) with number parameters absent; floats (tau, vth,
# vr, a0, a1) with the numbers (0.0 where a tensor is given); ints (kind, hard, detach_reset,
# surrogate id, traces, io dtype index, which of tau/vth/vr are tensors as bits 0/1/2)


class _Ctx:
    """What the hand-written backward reads from an autograd ctx."""

    def __init__(self, cfg, consts, x_dtype, needs):
        self.cfg, self.consts, self.x_dtype, self.needs_input_grad = cfg, consts, x_dtype, tuple(needs)


def _decode(tensors, f, i):
    kind, hard, detach, kid, traces, dti, mask, recip = i
    sur = KernelSurrogate(kid, f[3], f[4])
    cfg = (kind, bool(hard), bool(detach), sur, bool(traces), IO_DTYPES[dti], bool(recip))
    params = [tensors[1 + k] if (mask >> k) & 1 else f[k] for k in range(3)]
    consts = tuple(None if (mask >> k) & 1 else f[k] for k in range(3))
    return cfg, params, consts


def _lif_op(x, tau, vth, vr, v0, cfg):
    kind, hard, detach, sur, traces, out_dtype, recip = cfg
    a0, a1 = sur.kernel_params
    ps = (tau, vth, vr)
    mask = sum(1 << k for k, p in enumerate(ps) if isinstance(p, torch.Tensor))
    tensors = [x] + [p if isinstance(p, torch.Tensor) else None for p in ps] + [v0]
    f = [0.0 if isinstance(p, torch.Tensor) else float(p) for p in ps] + [float(a0), float(a1)]
    i = [kind, int(hard), int(detach), int(sur.kernel_id), int(traces), IO_DTYPES.index(out_dtype), mask,
         int(recip)]
    return LIF_SCAN.apply(tensors, f, i)


def _spec_forward(tensors, f, i):
    cfg, (tau, vth, vr), _ = _decode(tensors, f, i)
    return list(_lif_forward(tensors[0], tau, vth, vr, tensors[4], cfg))


def _spec_save(tensors, outputs, f, i, needs):
    x = tensors[0] if (i[0] == KIND_LIF_DECAY_INPUT and needs[1]) else None
    return [outputs[2], x, tensors[4], tensors[1], tensors[2], tensors[3]]


def _spec_backward(saved, grads, f, i, needs):
    cfg, _, consts = _decode([None] + saved[3:] + [None], f, i)
    ctx = _Ctx(cfg, consts, cfg[5], needs)
    return list(_lif_backward(ctx, saved, *grads)[:5])


def _spec_fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    h = x.new_empty((T, M), dtype=torch.float32)
    return [x.new_empty((T, M)), x.new_empty((M,), dtype=torch.float32), h,
            x.new_empty((T, M), dtype=torch.float32) if i[4] else None]


def _spec_fake_backward(saved, grads, f, i, needs):
    H = saved[0]
    T, M = H.shape
    out = [H.new_empty((T, M), dtype=IO_DTYPES[i[5]]) if needs[0] else None]
    out += [H.new_empty((M,)) if needs[k] else None for k in range(1, 5)]
    return out


LIF_SCAN = ScanFunction(ScanSpec(
    name="lif_cpu", inputs=("x", "tau", "v_threshold", "v_reset", "v0"), states=("v",),
    params=("tau", "v_threshold", "v_reset"), outputs=("spikes", "v_last", "h_seq", "v_seq"),
    saved=("h_seq",), saved_bytes=SAVED_BYTES["lif"], moved_bytes=12,
    forward=_spec_forward, save=_spec_save, backward=_spec_backward, fake=_spec_fake,
    fake_backward=_spec_fake_backward))
