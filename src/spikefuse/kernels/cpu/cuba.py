"""Fused CPU path for the hxtorch CUBA LIF, plain and refractory (SPEC.md section 13).

Per step, with ``a_m = dt/tau_mem`` and ``c_s = 1 - dt/tau_syn`` (computed exactly as the reference
does, so results are bit-identical)::

    dv = a_m ((leak - v) + i);  i = i c_s + x;  v' = v + dv;  z = 1[v' > threshold]
    v  = reset if z else v'
    refractory:  m = 1[ref > 0];  v = reset if m;  z = 0 if m;  ref = R if z else relu(ref - m)

Forward runs this loop on flat fp32 buffers without an autograd graph, writing the membrane
(post-reset) and current traces, which are outputs anyway. Backward recomputes the pre-reset
membrane ``v'`` from those traces (bit-exact), so nothing else is saved for the plain model;
the refractory model saves its mask ``m`` as one byte per neuron-step.

Backward (reverse time, carries ``gv`` = dL/dv[t] from step t+1 and ``gi`` = dL/di[t]):

    gv_out = g_membrane[t] + gv;   refractory: gv_post = gv_out (1 - m), gz = g_spikes[t] (1 - m)
    gv'    = gv_post (1 - z') + gz sg,   sg = 1 / (alpha |v' - threshold| + 1)^2  (reset detached)
    gi_tot = g_current[t] + gi;   gx[t] = gi_tot
    gv = gv' (1 - a_m);   gi = gv' a_m + gi_tot c_s
    g_leak += gv' a_m,  g_a_m += gv' ((leak - v) + i),  g_c_s += gi_tot i,
    g_threshold -= gz sg,  g_reset += gv_post z' + gv_out m
"""
from __future__ import annotations

from numbers import Real
from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from .common import expand_param, io_reason, param_reason

#: extra bytes saved for backward per neuron-step (beyond the fp32 membrane and current
#: outputs, which backward reuses)
SAVED_BYTES = {"cuba": 0, "cuba_refractory": 1}

_GRAD_PARAMS = ("leak", "reset", "threshold", "tau_syn", "tau_mem")


def cuba_consts(params, dt: float, refractory_time, shape, device, flat):
    """Per-neuron constants, computed with the reference's arithmetic, then ``flat(p)``:
    (leak, reset, threshold, a_m, c_s, alpha, R). ``alpha`` and ``R`` carry no gradient."""
    def cast(p):
        return p.to(torch.float32) if isinstance(p, torch.Tensor) else float(p)

    a_m = dt / cast(params.tau_mem)
    c_s = 1.0 - dt / cast(params.tau_syn)
    alpha = params.alpha.detach() if isinstance(params.alpha, torch.Tensor) else params.alpha
    if refractory_time is None:
        R = 0.0
    elif isinstance(refractory_time, torch.Tensor):
        R = refractory_time.detach().to(torch.float32) / torch.tensor(dt, dtype=torch.float32,
                                                                       device=refractory_time.device)
    else:
        R = float((torch.tensor(float(refractory_time), dtype=torch.float32)
                   / torch.tensor(dt, dtype=torch.float32)).item())
    return tuple(flat(p, shape, device) for p in (params.leak, params.reset, params.threshold,
                                                  a_m, c_s, alpha, R))


def cuba_supports_common(x_seq, params, refractory) -> Optional[str]:
    if params is None:
        return "no CubaParams given"
    why = io_reason(x_seq)
    if why is not None:
        return why
    if getattr(params, "method", "superspike") != "superspike":
        return f"method {params.method!r} has no kernel"
    shape = tuple(x_seq.shape[1:])
    for name in _GRAD_PARAMS + ("alpha",) + (("refractory_time",) if refractory else ()):
        why = param_reason(name, getattr(params, name), shape, x_seq.device)
        if why is not None:
            return why
    return None


def blend_(out, a, m, b):
    """``out = b where m == 1 else a`` for a 0/1 float mask ``m``, as ``a - a m + b m`` (exact for
    finite values; ``out`` must not be ``a``). ``b`` is a number or a tensor."""
    torch.mul(a, m, out=out)
    torch.sub(a, out, out=out)
    if isinstance(b, torch.Tensor):
        out.addcmul_(m, b)
    elif b != 0.0:
        out.add_(m, alpha=b)
    return out


def _flat(p, shape, dev):
    if isinstance(p, torch.Tensor):
        return expand_param(p, shape, dev)
    return float(p)


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
            Z = torch.empty((T, M), dtype=torch.float32)
            mask = torch.empty((T, M), dtype=torch.bool) if refractory else None
            v = torch.zeros(M) + (leak_ if isinstance(leak_, float) else leak_)
            i = torch.zeros(M)
            ref = torch.zeros(M) if refractory else None
            tmp = torch.empty(M)
            tmp2 = torch.empty(M)
            vp = torch.empty(M)
            mf = torch.empty(M)
            leak_t = leak_ if isinstance(leak_, torch.Tensor) else torch.tensor(leak_)
            # selections are done with 0/1 float masks (blend): torch.where / masked_fill with
            # data-dependent bool masks are several times slower on CPU
            for t in range(T):
                torch.sub(leak_t, v, out=tmp)
                tmp.add_(i)
                tmp.mul_(a_m_)
                ci = cur[t]
                torch.mul(i, c_s_, out=ci)
                ci.add_(x32[t])
                torch.add(v, tmp, out=vp)
                zt = Z[t]
                torch.sub(vp, thr_, out=zt).gt_(0.0)             # z' = 1[v' - thr > 0]
                v = mem[t]
                if refractory:
                    torch.gt(ref, 0.0, out=mf)                   # m
                    mask[t].copy_(mf)
                    torch.maximum(zt, mf, out=tmp2)              # reset by spike or refractory
                    blend_(v, vp, tmp2, reset_)
                    torch.mul(zt, mf, out=tmp2)
                    zt.sub_(tmp2)                                # z = z' (1 - m)
                    # relu(ref - m) == relu(ref - 1) because ref >= 0 and m = 1[ref > 0]
                    torch.sub(ref, 1.0, out=tmp).clamp_(min=0.0)
                    blend_(ref, tmp, zt, R)
                else:
                    blend_(v, vp, zt, reset_)
                i = ci
            spk = Z if out_dtype == torch.float32 else Z.to(out_dtype)
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
        leak, reset, thr, a_m, c_s = (p.detach() if isinstance(p, torch.Tensor) else p
                                      for p in (leak, reset, thr, a_m, c_s))
        T, M = mem.shape
        need = ctx.needs_input_grad
        with torch.no_grad():
            # previous membrane (v[-1] = leak); few full-size temporaries, updated in place
            # drive = (leak - v) + i as in forward, with v[-1] = leak and i[-1] = 0
            drive = torch.empty_like(mem)
            if isinstance(leak, torch.Tensor):
                torch.sub(leak, leak, out=drive[0])
                torch.sub(leak, mem[:-1], out=drive[1:])
            else:
                drive[0].fill_(0.0)
                torch.neg(mem[:-1], out=drive[1:]).add_(leak)
            drive[1:].add_(cur[:-1])
            d = torch.mul(drive, a_m)                       # pre-reset membrane v' = v + a_m drive
            d[0].add_(leak)
            d[1:].add_(mem[:-1])
            d.sub_(thr)
            zp = d > 0
            sg = d.abs_().mul_(alpha).add_(1.0).square_().reciprocal_()
            keep = ~zp                                      # dv_post/dv' = 1 - z' (reset detached)
            if mask is not None:
                keep.logical_and_(~mask)
            keepf = keep.float()
            del keep
            gzsg = sg.mul_(g_spk) if g_spk is not None else sg.zero_()
            if mask is not None:
                gzsg.masked_fill_(mask, 0.0)
            g_thr = -gzsg.sum(0) if need[3] else None
            # gv'[t] = (g_mem[t] + gv) keep[t] + gz sg = P[t] + gv keep[t], built in place
            gvp = gzsg
            if g_mem is not None:
                gvp.addcmul_(g_mem, keepf)
            gi_tot = g_cur.float().clone() if g_cur is not None else torch.zeros_like(mem)
            gv = torch.zeros(M)
            gi = torch.zeros(M)
            one_m_am = 1.0 - a_m
            a_m_t = a_m if isinstance(a_m, torch.Tensor) else torch.tensor(a_m)
            for t in range(T - 1, -1, -1):
                gvp[t].addcmul_(gv, keepf[t])
                gi_tot[t].add_(gi)
                torch.mul(gvp[t], one_m_am, out=gv)
                torch.mul(gi_tot[t], c_s, out=gi).addcmul_(gvp[t], a_m_t)
            g_leak = (gvp.sum(0) * a_m) if need[1] else None
            g_am = (gvp * drive).sum(0) if need[4] else None
            g_cs = None
            if need[5]:
                g_cs = (gi_tot[1:] * cur[:-1]).sum(0) if T > 1 else torch.zeros(M)
            g_reset = None
            if need[2]:
                # gradient reaching the post-reset membrane of each step
                gv_out = torch.zeros_like(mem)
                gv_out[:-1] = gvp[1:] * one_m_am
                if g_mem is not None:
                    gv_out.add_(g_mem)
                gpost = gv_out.masked_fill(mask, 0.0) if mask is not None else gv_out
                g = (gpost * zp).sum(0)
                if mask is not None:
                    g.add_((gv_out * mask).sum(0))
                g_reset = g
            gx = gi_tot.to(ctx.x_dtype) if need[0] else None
        return gx, g_leak, g_reset, g_thr, g_am, g_cs, None, None, None, None


def cuba_cpu_supports(x_seq, params=None, refractory=False, dt=None, **_) -> Optional[str]:
    """None when the fused CPU CUBA path can run this case, else the reason."""
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return cuba_supports_common(x_seq, params, refractory)


def cuba_cpu(x_seq: torch.Tensor, params, dt: float, refractory_time=None):
    """Fused CPU hxtorch CUBA LIF (refractory when ``refractory_time`` is not None).

    Returns ``(spikes, membrane, current)``, each ``(T, B, *features)``: spikes in the input
    dtype, post-reset membrane and current in fp32.

    Example::

        >>> import torch
        >>> from spikefuse.functional.cuba import CubaParams
        >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
        >>> z, v, i = cuba_cpu(x, CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6), 1e-6)
        >>> z.flatten().tolist()
        [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    """
    shape = tuple(x_seq.shape[1:])
    T = x_seq.shape[0]
    consts = cuba_consts(params, dt, refractory_time, shape, x_seq.device, _flat)
    spk, mem, cur = _CubaCPU.apply(x_seq.reshape(T, -1), *consts, refractory_time is not None, x_seq.dtype)
    return spk.view(x_seq.shape), mem.view(x_seq.shape), cur.view(x_seq.shape)
