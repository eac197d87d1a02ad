"""Fused CPU path for the hxtorch CUBA LIF, plain and refractory (SPEC.md section 13).

With numba (:mod:`.jit`) the ScanSpec runs the compiled kernels of :mod:`._nb_cuba` (forward
bit-identical, input gradient bit-identical to the reference: its reverse scan repeats the
reference's autograd order); without it, the torch-op loops below (same forward bits).

Per step, with ``a_m = dt/tau_mem`` and ``c_s = 1 - dt/tau_syn`` (computed exactly as the reference
does, so results are bit-identical)::

    dv = a_m ((leak - v) + i);  i = i c_s + x;  v' = v + dv;  z = 1[v' > threshold]
    v  = reset if z else v'
    refractory:  m = 1[ref > 0];  v = reset if m;  z = 0 if m;  ref = R if z else relu(ref - m)

Forward runs this loop on flat fp32 buffers without an autograd graph (7 in-place / ``out=`` ops
per step for the plain model, 14 for the refractory one), writing the membrane (post-reset) and
current traces, which are outputs anyway. Selections are ``torch.lerp`` with 0/1 float masks
(exactly one operand or the other, in one pass; ``torch.where``, ``masked_fill`` and bool
arithmetic are several times slower on CPU); numbers are 0-d fp32 tensors and row views are made
once (per-op scalar wrapping and indexing cost as much as a small op). Backward recomputes the
pre-reset membrane ``v'`` from those traces (bit-exact), so nothing else is saved for the plain
model; the refractory model saves its mask ``m`` as one byte per neuron-step.

The per-step factors of the backward are computed a block of steps at a time in small reused
buffers (``common.BLOCK_ELEMS``); full ``(T, M)`` arrays are only made for the parameter gradients that
reduce over time. Fused multiply-adds (``addcmul``) only ever meet 0/1 factors or repeat the
previous kernel's per-row ops, so results do not depend on the block size.

Backward (reverse time, carries ``gv`` = dL/dv[t] from step t+1 and ``gi`` = dL/di[t]):

    gv_out = g_membrane[t] + gv;   refractory: gv_post = gv_out (1 - m), gz = g_spikes[t] (1 - m)
    gv'    = gv_post (1 - z') + gz sg,   sg = 1 / (alpha |v' - threshold| + 1)^2  (reset detached)
    gi_tot = g_current[t] + gi;   gx[t] = gi_tot
    gv = gv' (1 - a_m);   gi = gv' a_m + gi_tot c_s
    g_leak += gv' a_m,  g_a_m += gv' ((leak - v) + i),  g_c_s += gi_tot i,
    g_threshold -= gz sg,  g_reset += gv_post z' + gv_out m
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..._core import flat_param, scalar_tensor as _scalar_t
from .._common import IO_DTYPES, cuba_consts, cuba_final_state, cuba_supports_common
from ..scan import ScanFunction, ScanSpec
from . import jit
from .common import one_value as _one_value, step_sum, time_blocks

#: extra bytes saved for backward per neuron-step (beyond the fp32 membrane and current
#: outputs, which backward reuses)
SAVED_BYTES = {"cuba": 0, "cuba_refractory": 1}

class _CubaCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, leak, reset, thr, a_m, c_s, alpha, R, refractory, out_dtype):
        T, M = x.shape
        det = [p.detach() if isinstance(p, torch.Tensor) else p for p in (leak, reset, thr, a_m, c_s)]
        leak_, reset_, thr_, a_m_, c_s_ = det
        with torch.no_grad():
            x32 = x if x.dtype == torch.float32 else x.float()
            mem = torch.empty((T, M), dtype=torch.float32)
            cur = torch.empty((T, M), dtype=torch.float32)
            spk = torch.empty((T, M), dtype=out_dtype)
            zbuf = None if out_dtype == torch.float32 else torch.empty(M)
            mask = torch.empty((T, M), dtype=torch.bool) if refractory else None
            v = torch.zeros(M) + leak_
            i = torch.zeros(M)
            tmp = torch.empty(M)
            leak0 = not isinstance(leak_, torch.Tensor) and leak_ == 0.0
            # numbers as 0-d fp32 tensors: the same fp32 value, but no per-op scalar wrapping
            leak_t, reset_t, thr_t, a_m_t, c_s_t = (_scalar_t(p) for p in (leak_, reset_, thr_, a_m_, c_s_))
            # rows as views, made once (indexing in the loop costs as much as a small op)
            xs, mems, curs = x32.unbind(0), mem.unbind(0), cur.unbind(0)
            zs = spk.unbind(0) if zbuf is None else [zbuf] * T
            if refractory:
                ref = torch.zeros(M)
                mf = torch.empty(M)
                w = torch.empty(M)
                R_t = _scalar_t(R)
                zero = torch.zeros((), dtype=torch.float32)
                masks = mask.unbind(0)
            # 0/1 float masks throughout: torch.lerp(a, b, m) is exactly a (m = 0) or b (m = 1)
            # in one pass; torch.where / masked_fill / bool arithmetic are much slower on CPU
            for t in range(T):
                if leak0:                                        # (0 - v) + i == i - v exactly
                    torch.sub(i, v, out=tmp)
                else:
                    torch.sub(leak_t, v, out=tmp)
                    tmp.add_(i)
                tmp.mul_(a_m_t)                                  # dv = a_m ((leak - v) + i)
                ci = curs[t]
                torch.mul(i, c_s_t, out=ci)
                ci.add_(xs[t])                                   # i = i c_s + x
                vt = mems[t]
                torch.add(v, tmp, out=vt)                        # v' = v + dv
                zt = zs[t]
                torch.gt(vt, thr_t, out=zt)                      # z' = 1[v' > thr] (== 1[v' - thr > 0])
                if refractory:
                    torch.gt(ref, zero, out=mf)                  # m
                    masks[t].copy_(mf)
                    torch.maximum(zt, mf, out=w)                 # reset by spike or refractory
                    torch.lerp(vt, reset_t, w, out=vt)
                    torch.gt(zt, mf, out=zt)                     # z = z' (1 - m)
                    # relu(ref - m) == relu(ref - 1) because ref >= 0 and m = 1[ref > 0]
                    ref.sub_(mf).relu_()
                    torch.lerp(ref, R_t, zt, out=ref)
                else:
                    torch.lerp(vt, reset_t, zt, out=vt)
                if zbuf is not None:
                    spk[t].copy_(zbuf)
                v = vt
                i = ci
        ctx.refractory = refractory
        ctx.x_dtype = x.dtype
        ctx.consts = [None if isinstance(p, torch.Tensor) else p for p in (leak_, reset_, thr_, a_m_, c_s_, alpha)]
        tp = [p if isinstance(p, torch.Tensor) else None for p in (leak, reset, thr, a_m, c_s, alpha)]
        ctx.save_for_backward(mem, cur, mask, *tp)
        ctx.set_materialize_grads(False)
        return spk, mem, cur

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spk, g_mem, g_cur):
        mem, cur, mask, *tp = ctx.saved_tensors
        leak, reset, thr, a_m, c_s, alpha = (t if t is not None else c for t, c in zip(tp, ctx.consts))
        leak, reset, thr, a_m, c_s, alpha = (p.detach() if isinstance(p, torch.Tensor) else p
                                             for p in (leak, reset, thr, a_m, c_s, alpha))
        T, M = mem.shape
        need = ctx.needs_input_grad
        f32 = torch.float32
        with torch.no_grad():
            # Per step t (reverse time; v[-1] = leak, i[-1] = 0):
            #   drive = (leak - v[t-1]) + i[t-1];  d = v[t-1] + a_m drive - thr   (= v' - thr)
            #   keep = (1 - z')(1 - m);  sg = 1 / (alpha |d| + 1)^2
            #   gvp[t] = (g_spk sg, 0 where m) + g_mem keep + gv keep           (gv: carried)
            #   gi_tot[t] = g_cur[t] + gi;  gv = gvp[t] (1 - a_m);  gi = gi_tot[t] c_s + gvp[t] a_m
            # Everything but the carried terms is computed a block of steps at a time, in small
            # reused buffers, or in full (T, M) arrays when a parameter gradient needs the whole
            # history (reduced over time at the end, as one sum over dim 0 like before).
            Tb, starts, cuts, ns, blocks = time_blocks(T, M)

            def buf(full):
                return torch.empty((T if full else Tb, M), dtype=f32)

            x32 = ctx.x_dtype == f32
            need_gi = need[0] or need[5]                         # the current's carried gradient
            drive_a = buf(True) if need[4] else None
            d_a = buf(False)
            gzsg_a = buf(True) if need[3] else None
            gvp_a = buf(need[1] or need[2] or need[4])
            keep_a = buf(False)
            zp_a = buf(True) if need[2] else None
            mf_a = buf(False) if mask is not None else None
            git_a = buf(need[5] or (need[0] and x32))
            gx = torch.empty((T, M), dtype=ctx.x_dtype) if (need[0] and not x32) else None
            # numbers as 0-d fp32 tensors: the same fp32 values, without per-op scalar wrapping
            one = torch.ones((), dtype=f32)
            zero = torch.zeros((), dtype=f32)
            leak_t, thr_t, alpha_t, a_m_t, c_s_t = (_scalar_t(p) for p in (leak, thr, alpha, a_m, c_s))
            one_m_am = 1.0 - a_m
            one_m_am_t = _scalar_t(one_m_am)
            leak0 = not isinstance(leak, torch.Tensor) and leak == 0.0
            gv = torch.zeros(M)
            gi = torch.zeros(M)
            vprevs = mem[:-1].tensor_split([c - 1 for c in cuts])   # v[t-1] of the steps t >= 1
            iprevs = cur[:-1].tensor_split([c - 1 for c in cuts])
            gspks, gmems, masks = blocks(g_spk), blocks(g_mem), blocks(mask)
            drives, ds, gzsgs, gvps, keeps, zps, mfs, gits, gxs = (
                blocks(a) for a in (drive_a, d_a, gzsg_a, gvp_a, keep_a, zp_a, mf_a, git_a, gx))
            # rows for the sequential part, made once (indexing in the loop costs as much as an op)
            gvp_rows, keep_rows, git_rows = gvp_a.unbind(0), keep_a.unbind(0), git_a.unbind(0)
            gvp_full, git_full = gvp_a.shape[0] == T, git_a.shape[0] == T
            gcur_rows = g_cur.float().unbind(0) if g_cur is not None else None
            for b in range(len(starts) - 1, -1, -1):
                t0, n = starts[b], ns[b]
                s = 1 if t0 == 0 else 0                          # step 0 has v[-1] = leak, i[-1] = 0
                vprev, iprev = vprevs[b], iprevs[b]
                d = ds[b]
                if need[4]:                                      # drive kept for g_tau_mem
                    drive = drives[b]
                    if s:
                        if isinstance(leak, torch.Tensor):
                            torch.sub(leak, leak, out=drive[0])
                        else:
                            drive[0].fill_(0.0)
                    if isinstance(leak, torch.Tensor):
                        torch.sub(leak, vprev, out=drive[s:])
                    else:
                        torch.neg(vprev, out=drive[s:]).add_(leak)
                    drive[s:].add_(iprev)
                    torch.mul(drive, a_m_t, out=d)
                else:
                    if s:
                        if isinstance(leak, torch.Tensor):
                            torch.sub(leak, leak, out=d[0])
                        else:
                            d[0].fill_(0.0)
                    ds_ = d[s:] if s else d
                    if leak0:
                        # (0 - v) + i == i - v up to the sign of a zero, which v + a_m (.) drops
                        torch.sub(iprev, vprev, out=ds_)
                    else:
                        torch.sub(leak_t, vprev, out=ds_).add_(iprev)
                    d.mul_(a_m_t)
                if s:
                    d[0].add_(leak_t)
                    d[1:].add_(vprev)
                else:
                    d.add_(vprev)
                d.sub_(thr_t)                                    # v' - threshold
                keep = keeps[b]
                zp = zps[b] if zp_a is not None else keep
                torch.gt(d, zero, out=zp)                        # z'
                if mask is not None:
                    mf = mfs[b]
                    mf.copy_(masks[b].view(torch.uint8))         # m (uint8 -> float is vectorised, bool is not)
                    torch.maximum(zp, mf, out=keep)
                    torch.sub(one, keep, out=keep)               # keep = (1 - z')(1 - m)
                else:
                    torch.sub(one, zp, out=keep)                 # keep = 1 - z' (NaN d: 1, as before)
                sg = d.abs_().mul_(alpha_t).add_(one).pow_(-2)   # pow_(-2) == square_().reciprocal_(), bit for bit
                gzsg = gzsgs[b] if gzsg_a is not None else sg
                if g_spk is not None:
                    torch.mul(sg, gspks[b], out=gzsg)
                else:
                    gzsg.zero_()
                if mask is not None:
                    torch.lerp(gzsg, zero, mf, out=gzsg)         # 0 where refractory
                gvp = gvps[b]
                if g_mem is not None:
                    torch.addcmul(gzsg, gmems[b], keep, out=gvp)
                else:
                    gvp.copy_(gzsg)
                go = t0 if gvp_full else 0
                io = t0 if git_full else 0
                for k in range(n - 1, -1, -1):
                    gvk = gvp_rows[go + k]
                    gvk.addcmul_(gv, keep_rows[k])
                    torch.mul(gvk, one_m_am_t, out=gv)
                    if need_gi:
                        gik = git_rows[io + k]
                        if gcur_rows is not None:
                            torch.add(gcur_rows[t0 + k], gi, out=gik)
                        else:
                            torch.add(gi, zero, out=gik)         # 0 + gi, as a sum
                        torch.mul(gik, c_s_t, out=gi).addcmul_(gvk, a_m_t)
                if gx is not None:
                    gxs[b].copy_(gits[b])
            g_thr = -gzsg_a.sum(0) if need[3] else None
            g_leak = (gvp_a.sum(0) * a_m) if need[1] else None
            g_am = (gvp_a * drive_a).sum(0) if need[4] else None
            g_cs = None
            if need[5]:
                g_cs = (git_a[1:] * cur[:-1]).sum(0) if T > 1 else torch.zeros(M)
            g_reset = None
            if need[2]:
                # gradient reaching the post-reset membrane of each step
                gv_out = torch.zeros_like(mem)
                gv_out[:-1] = gvp_a[1:] * one_m_am
                if g_mem is not None:
                    gv_out.add_(g_mem)
                if mask is not None:
                    mfull = mask.view(torch.uint8).to(f32)
                    g = (torch.lerp(gv_out, zero, mfull) * zp_a).sum(0)
                    g.add_((gv_out * mfull).sum(0))
                else:
                    g = (gv_out * zp_a).sum(0)
                g_reset = g
            if need[0]:
                gx = git_a if x32 else gx
            else:
                gx = None
        return gx, g_leak, g_reset, g_thr, g_am, g_cs, None, None, None, None


def cuba_cpu_supports(x_seq, params=None, refractory=False, dt=None, **_) -> Optional[str]:
    """None when the fused CPU CUBA path can run this case, else the reason."""
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return cuba_supports_common(x_seq, params, refractory)


def cuba_cpu(x_seq: torch.Tensor, params, state=None, return_traces: bool = False, *, dt: float,
             refractory_time=None):
    """Fused CPU hxtorch CUBA LIF (refractory when ``refractory_time`` is not None), kernel
    contract: ``((spikes, membrane, current), final_state, None)``; the outputs are
    ``(T, B, *features)`` (spikes in the input dtype, post-reset membrane and current in fp32),
    the final state ``(z, v, i[, ref])`` in CubaState / CubaRefractoryState field order. The
    kernels start from rest only (``state`` must be None); the traces are the outputs.

    Example::

        >>> import torch
        >>> from types import SimpleNamespace
        >>> p = SimpleNamespace(leak=0.0, reset=0.0, threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, alpha=50.0)
        >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
        >>> (z, v, i), final, _ = cuba_cpu(x, p, dt=1e-6)
        >>> z.flatten().tolist()
        [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    """
    shape = tuple(x_seq.shape[1:])
    T = x_seq.shape[0]
    consts = cuba_consts(params, dt, refractory_time, shape, x_seq.device, _own)
    spk, mem, cur = _cuba_op(x_seq.reshape(T, -1), consts, refractory_time is not None, x_seq.dtype, shape)
    last = _last_spike(spk, shape) if refractory_time is not None else None
    spk, mem, cur = spk.view(x_seq.shape), mem.view(x_seq.shape), cur.view(x_seq.shape)
    return (spk, mem, cur), cuba_final_state(spk, mem, cur, refractory_time, dt, last), None


def _last_spike(spk: torch.Tensor, shape):
    """Each neuron's last spike step (-1: none) as fp32 in the step ``shape`` from the ``(T, M)``
    spikes (``_nb_cuba.last_spike``: from the last row back, stopping when every neuron has one),
    or None without numba (then :func:`cuba_final_state` computes it from all steps)."""
    nb = jit.kernels("cuba")
    if nb is None:
        return None
    z = spk.detach()
    if z.dtype != torch.float32 or not z.is_contiguous():
        z = z.to(torch.float32).contiguous()
    out = np.empty(z.shape[1], dtype=np.int64)
    jit.run(nb.last_spike, z.shape[1], nb.SPLIT, z.numpy(), out, steps=1)
    return torch.from_numpy(out).to(torch.float32).view(shape)


def _own(p, shape, device):
    """A constant as the op takes it: a number, or a tensor in its own shape (broadcasting to one
    step) in fp32 on ``device``, so that the op returns its gradient reduced as autograd of the
    reference reduces it (per step, then over time: :func:`.common.step_sum`)."""
    if isinstance(p, torch.Tensor):
        return p.to(device=device, dtype=torch.float32)
    return float(p)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding: tensors (x, leak, reset, threshold, a_m, c_s, alpha, R) in their own shapes, the
# number ones absent; floats: the numbers (0.0 where a tensor is given); ints (refractory, io
# dtype index, which of the seven constants are tensors as bits 0..6, then the step shape the
# tensors broadcast to). The torch-op fallback runs _CubaCPU's forward and backward with a
# stand-in ctx on the constants flattened to (M,); the refractory mask crosses the op as a
# fourth output.


class _Ctx:
    """The parts of an autograd ctx that _CubaCPU's forward and backward use."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def save_for_backward(self, *ts):
        self.saved_tensors = ts

    def set_materialize_grads(self, value):
        pass


def _consts(tensors, f, mask):
    return [tensors[1 + k] if (mask >> k) & 1 else f[k] for k in range(7)]


def _cuba_op(x, consts, refractory: bool, out_dtype, shape):
    mask = sum(1 << k for k, c in enumerate(consts) if isinstance(c, torch.Tensor))
    tensors = [x] + [c if isinstance(c, torch.Tensor) else None for c in consts]
    f = [0.0 if isinstance(c, torch.Tensor) else float(c) for c in consts]
    scan = CUBA_REFRACTORY_SCAN if refractory else CUBA_SCAN
    spk, mem, cur, _ = scan.apply(tensors, f, [int(refractory), IO_DTYPES.index(out_dtype), mask, *shape])
    return spk, mem, cur


def _arr(p, M: int, shape):
    """A constant (number, or a tensor broadcasting to the step ``shape``) as a contiguous fp32
    numpy ``(M,)`` array."""
    if isinstance(p, torch.Tensor):
        return jit.np32(p.detach().expand(shape).reshape(M))
    return jit.const_row(p, M)


def _flat(consts, shape, device):
    """The constants as the torch-op fallback takes them: numbers, or flat ``(M,)`` vectors."""
    return [flat_param(c, shape, device) if isinstance(c, torch.Tensor) else c for c in consts]


def _nb_forward(nb, x, consts, refractory: bool, out_dtype, shape):
    """The numba forward (:mod:`._nb_cuba`): ``[spikes, membrane, current, mask or None]``."""
    T, M = x.shape
    f32 = torch.float32
    Z, V, I = (jit.empty((T, M)) for _ in range(3))               # written in full by the kernel
    mask = jit.empty((T, M), torch.bool) if refractory else None
    mk = mask.view(torch.uint8).numpy() if refractory else jit.np32(None, 2).astype("uint8")
    cs = (*consts[:5], consts[6])
    jit.run(nb.make_fwd(int(refractory), _one_value(cs)), M, nb.SPLIT, jit.np32(x), *(_arr(c, M, shape) for c in cs),
            Z.numpy(), V.numpy(), I.numpy(), mk)
    return [Z if out_dtype == f32 else Z.to(out_dtype), V, I, mask]


#: per-step term arrays of the reverse scan (``_nb_cuba.make_bwd``) of each constant
#: (leak, reset, threshold, a_m, c_s), in the order autograd of the reference adds them
_TERMS = ((0,), (1, 2), (3,), (4,), (5,))


def _nb_backward(nb, saved, grads, consts, needs, refractory: bool, x_dtype, shape):
    """The numba reverse scan: gradients of (x, leak, reset, threshold, a_m, c_s), the
    constants' in their own shapes: a constant of one value per neuron summed over time in the
    kernel, a broadcast one from the kernel's per-step terms (:func:`.common.step_sum`)."""
    mem, cur, mask = saved[:3]
    leak, reset, thr, a_m, c_s, alpha = consts
    T, M = mem.shape
    f32 = torch.float32
    g_spk, g_mem, g_cur = grads[:3]
    live = [needs[1 + k] and isinstance(c, torch.Tensor) for k, c in enumerate(consts[:5])]
    per = [n and consts[k].numel() != M for k, n in enumerate(live)]
    gx = jit.empty((T, M)) if needs[0] else None               # written in full by the kernel
    pg = [torch.empty(M, dtype=f32) if any(live) else None for _ in range(5)]
    step = [0] * 6          # 1: the term's (T, M) array is written; 0: the scratch row
    for k in range(5):
        for j in _TERMS[k] if per[k] else ():
            step[j] = int(j != 1 or refractory)     # term 1: the refractory clamp's reset
    scratch = np.empty((1, M), np.float32)
    P = [jit.empty((T, M)).numpy() if st else scratch for st in step]
    mk = mask.view(torch.uint8).numpy() if refractory else jit.np32(None, 2).astype("uint8")
    k = nb.make_bwd(int(refractory), int(g_spk is not None), int(g_mem is not None), int(g_cur is not None),
                    int(needs[0]), int(any(live)), int(any(per)), _one_value((leak, thr, alpha, a_m, c_s)))
    (gz, zs), (gv, vs), (gi, is_) = (jit.grad_rows(g) for g in (g_spk, g_mem, g_cur))
    jit.run(k, M, nb.SPLIT, jit.np32(mem, 2), jit.np32(cur, 2), mk, gz, gv, gi, zs, vs, is_,
            *(_arr(c, M, shape) for c in (leak, thr, alpha, a_m, c_s)), jit.np32(gx, 2),
            *(jit.np32(g) for g in pg), *P, np.array(step, np.int64), steps=T)
    if gx is not None and x_dtype != f32:
        gx = gx.to(x_dtype)
    out = []
    for k, c in enumerate(consts[:5]):
        if not live[k]:
            out.append(None)
        elif per[k]:
            out.append(step_sum([torch.from_numpy(P[j]) for j in _TERMS[k] if step[j]], shape, c))
        else:
            out.append(pg[k].view(c.shape))
    return [gx] + out + [None, None]


def _spec_forward(tensors, f, i):
    nb = jit.kernels("cuba")
    shape = tuple(i[3:])
    if nb is not None:
        return _nb_forward(nb, tensors[0], _consts(tensors, f, i[2]), bool(i[0]), IO_DTYPES[i[1]], shape)
    ctx = _Ctx()
    consts = _flat(_consts(tensors, f, i[2]), shape, tensors[0].device)
    outs = _CubaCPU.forward(ctx, tensors[0], *consts, bool(i[0]), IO_DTYPES[i[1]])
    return list(outs) + [ctx.saved_tensors[2]]


def _spec_save(tensors, outputs, f, i, needs):
    return [outputs[1], outputs[2], outputs[3]] + list(tensors[1:7])


def _spec_backward(saved, grads, f, i, needs):
    consts = [None if (i[2] >> k) & 1 else f[k] for k in range(6)]
    vals = [t if t is not None else c for t, c in zip(saved[3:9], consts)]
    shape = tuple(i[3:])
    nb = jit.kernels("cuba")
    if nb is not None:
        return _nb_backward(nb, saved, grads, vals, needs, bool(i[0]), IO_DTYPES[i[1]], shape)
    flat = _flat(vals, shape, saved[0].device)
    ctx = _Ctx(saved_tensors=tuple(saved[:3]) + tuple(t if isinstance(t, torch.Tensor) else None for t in flat),
               consts=consts, refractory=bool(i[0]), x_dtype=IO_DTYPES[i[1]],
               needs_input_grad=tuple(needs) + (False, False))
    out = list(_CubaCPU.backward(ctx, *grads[:3])[:8])
    for k in range(1, 6):       # the flat (M,) gradient summed to the constant's shape (expand's backward)
        if out[k] is not None:
            out[k] = out[k].view(shape).sum_to_size(vals[k - 1].shape)
    return out


def _spec_fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    return [x.new_empty((T, M)), x.new_empty((T, M), dtype=torch.float32),
            x.new_empty((T, M), dtype=torch.float32), x.new_empty((T, M), dtype=torch.bool) if i[0] else None]


def _spec_fake_backward(saved, grads, f, i, needs):
    mem = saved[0]
    T, M = mem.shape
    out = [mem.new_empty((T, M), dtype=IO_DTYPES[i[1]]) if needs[0] else None]
    return out + [mem.new_empty(saved[2 + k].shape) if needs[k] else None for k in range(1, 6)] + [None, None]


def _spec(name: str, refractory: bool) -> ScanFunction:
    """The plain or refractory CUBA spec: the same callbacks (``i[0]`` says which), its own name,
    states, saved outputs and byte counts (x, z, membrane, current; the refractory model also
    writes its 1-byte mask), so :func:`spikefuse.kernels.scan.find` gives each variant's facts."""
    return ScanFunction(ScanSpec(
        name=name, inputs=("x", "leak", "reset", "threshold", "a_m", "c_s", "alpha", "refractory_steps"),
        states=("z", "v", "i") + (("ref",) if refractory else ()),
        params=("leak", "reset", "threshold", "tau_syn", "tau_mem"),
        outputs=("spikes", "membrane", "current", "refractory_mask"),
        saved=("membrane", "current") + (("refractory_mask",) if refractory else ()),
        saved_bytes=SAVED_BYTES["cuba_refractory" if refractory else "cuba"], moved_bytes=16 + int(refractory),
        forward=_spec_forward, save=_spec_save, backward=_spec_backward, fake=_spec_fake,
        fake_backward=_spec_fake_backward))


CUBA_SCAN = _spec("cuba_cpu", False)
CUBA_REFRACTORY_SCAN = _spec("cuba_refractory_cpu", True)
