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
            Z = torch.empty((T, M), dtype=torch.bool)
            mask = torch.empty((T, M), dtype=torch.bool) if refractory else None
            v = torch.zeros(M) + (leak_ if isinstance(leak_, float) else leak_)
            i = torch.zeros(M)
            ref = torch.zeros(M) if refractory else None
            tmp = torch.empty(M)
            vp = torch.empty(M)
            reset_t = reset_ if isinstance(reset_, torch.Tensor) else torch.tensor(reset_)
            R_t = R if isinstance(R, torch.Tensor) else torch.tensor(R)
            zero = torch.tensor(0.0)
            for t in range(T):
                if isinstance(leak_, torch.Tensor):
                    torch.sub(leak_, v, out=tmp)
                else:
                    torch.neg(v, out=tmp).add_(leak_)
                tmp.add_(i)
                tmp.mul_(a_m_)
                torch.mul(i, c_s_, out=cur[t])
                cur[t].add_(x32[t])
                torch.add(v, tmp, out=vp)
                zt = Z[t]
                torch.gt(vp, thr_, out=zt)
                v = mem[t]
                torch.where(zt, reset_t, vp, out=v)
                if refractory:
                    mt = mask[t]
                    torch.gt(ref, 0.0, out=mt)
                    torch.where(mt, reset_t, v, out=v)
                    zt.logical_and_(~mt)
                    ref.sub_(mt.float()).clamp_(min=0.0)
                    torch.where(zt, R_t, ref, out=ref)
                i = cur[t]
            del zero
            spk = Z.to(out_dtype)
        ctx.refractory = refractory
        ctx.x_dtype = x.dtype
        ctx.consts = [None if isinstance(p, torch.Tensor) else p for p in (leak_, reset_, thr_, a_m_, c_s_, alpha)]
        tp = [p if isinstance(p, torch.Tensor) else None for p in (leak, reset, thr, a_m, c_s, alpha)]
        ctx.save_for_backward(mem, cur, mask, *tp)
        ctx.set_materialize_grads(False)
        return spk, mem, cur

    @staticmethod
    def backward(ctx, g_spk, g_mem, g_cur):
        mem, cur, mask, *tp = ctx.saved_tensors
        leak, reset, thr, a_m, c_s, alpha = (t if t is not None else c for t, c in zip(tp, ctx.consts))
        leak, reset, thr, a_m, c_s = (p.detach() if isinstance(p, torch.Tensor) else p
                                      for p in (leak, reset, thr, a_m, c_s))
        T, M = mem.shape
        with torch.no_grad():
            # previous state for every step (v[-1] = leak, i[-1] = 0)
            v_old = torch.empty_like(mem)
            v_old[0] = leak
            v_old[1:] = mem[:-1]
            i_old = torch.zeros_like(cur)
            i_old[1:] = cur[:-1]
            drive = (leak - v_old).add_(i_old)           # (leak - v) + i, as in forward
            vp = v_old + drive * a_m                      # pre-reset membrane, bit-exact
            d = vp - thr
            zp = d > 0
            sg = (alpha * d.abs() + 1.0).pow_(2).reciprocal_()
            keep = (~zp).float()                          # dv_post/dv_pre = 1 - z'
            if mask is not None:
                notm = (~mask).float()
                keep.mul_(notm)
            gz = g_spk.float() if g_spk is not None else torch.zeros_like(mem)
            if mask is not None:
                gz = gz * notm
            gzsg = gz * sg
            gm = g_mem.float() if g_mem is not None else None
            # gv'[t] = (g_mem[t] + gv) keep[t] + gz sg: split into P[t] + gv keep[t]
            P = gzsg.clone()
            if gm is not None:
                P.addcmul_(gm, keep)
            gvp = P                                        # becomes gv' in place
            gi_tot = g_cur.float().clone() if g_cur is not None else torch.zeros_like(mem)
            gv = torch.zeros(M)
            gi = torch.zeros(M)
            one_m_am = 1.0 - a_m
            for t in range(T - 1, -1, -1):
                gvp[t].addcmul_(gv, keep[t])
                gi_tot[t].add_(gi)
                torch.mul(gvp[t], one_m_am, out=gv)
                torch.mul(gi_tot[t], c_s, out=gi).addcmul_(gvp[t], a_m if isinstance(a_m, torch.Tensor)
                                                            else torch.tensor(a_m))
            need = ctx.needs_input_grad
            gx = gi_tot.to(ctx.x_dtype) if need[0] else None
            g_leak = (gvp * a_m).sum(0) if need[1] else None
            g_thr = -gzsg.sum(0) if need[3] else None
            g_am = (gvp * drive).sum(0) if need[4] else None
            g_cs = (gi_tot * i_old).sum(0) if need[5] else None
            g_reset = None
            if need[2]:
                # gradient reaching the post-reset membrane of each step
                gv_out = torch.zeros_like(mem)
                gv_out[:-1] = gvp[1:] * one_m_am
                if gm is not None:
                    gv_out.add_(gm)
                gpost = gv_out * notm if mask is not None else gv_out
                g = gpost * zp.float()
                if mask is not None:
                    g.add_(gv_out * mask.float())
                g_reset = g.sum(0)
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
