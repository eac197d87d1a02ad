"""Triton forward/backward scans for the Loihi fixed-point CUBA and ALIF neurons
(lava-dl semantics, SPEC.md 3.3, 3.4, 4, 5), bit-exact with int64 state arithmetic.

Forward, per step (integers are ``value * s``, ``s = 64 * scale``; ``rstz`` shifts toward zero;
``f32(y) = float32(float64(y) / s)``; every float conversion mirrors the reference)::

    u = rstz(u (4096 - Du), 12) + trunc(f32(x s))              current, recorded as u_f = f32(u)
    v = rstz(v (4096 - Dv), 12) + trunc(f32(u_f s))            voltage, recorded pre-reset v_f
    CUBA: s = 1[v_f >= thr] (thr = theta_q + 0.01/s); next v = 0 where float32(v) >= float32(thr s)
    ALIF: r = rstz(r (4096 - Dr)); theta = rstz((theta - theta0)(4096 - Dth)) + theta0
          s = 1[v_f >= theta_f + r_f];  fired = trunc(f32(v_f s)) >= theta + r
          where fired: r += 2 theta, theta += step            (the voltage is never reset)
    graded spikes emit s * v_f.

Backward is the float model of the two chained leaky integrators, ignoring the reset (as
lava-dl's): ``gv = gS d(v_f - thr) + g_v[t]``; ``acc_v = a_v acc_v + gv`` (``a = 1 - D/4096``);
``gu = acc_v + g_u[t]``; ``acc_u = a_u acc_u + gu``; ``gx[t] = acc_u``; decay gradients
``sum_{t>=1} acc[t] y[t-1]`` times ``-1/4096`` (``decay_grad="exact"``) or ``+1`` (``"lava"``).
``d`` is the SLAYER pseudo-derivative (binary ``scale_rho/(2 tau_rho) exp(-|x|/tau_rho)``,
graded ``scale_rho exp(min(x,0)/tau_rho)``).

Saved for backward per neuron-step: the voltage trace (fp32, 4 B; it is also an output),
ALIF additionally the spike limit theta_f + r_f (4 B), and the current trace (4 B) only when the
current decay needs a gradient (``SAVED_BYTES``).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import IO_DTYPES, loihi_op_args, loihi_reason, loihi_results, loihi_scan
from .common import adapt_threshold, aot, contig, device_reason, f32_empty, launch, ptr, rne_bf16, rstz12, slayer_grad

SAVED_BYTES = {"loihi_cuba": 4, "loihi_alif": 8}


@triton.jit
def _to_f32(y, s_d):
    return (y.to(tl.float64) / s_d).to(tl.float32)  # fp64 division is IEEE (div.rn.f64)


@triton.jit
def loihi_li_step(y, dec, xi):
    """Integer leaky integrator step: rstz(y * dec, 12) + xi."""
    return rstz12(y * dec) + xi


@triton.jit
def _loihi_fwd(x_ptr, s_ptr, u_ptr, v_ptr, lim_ptr, th_ptr, r_ptr,
               decu_ptr, decv_ptr, decth_ptr, decr_ptr,
               u0_ptr, v0_ptr, th0s_ptr, r0_ptr, thf_ptr, rf_ptr,
               T, M, s_f, s_d, thr_f, thr_s_f, theta0, step,
               ALIF: tl.constexpr, GRADED: tl.constexpr, STORE_LIM: tl.constexpr,
               STORE_TR: tl.constexpr, OUT_BF16: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    decu = tl.load(decu_ptr + offs, mask=mask, other=0)
    decv = tl.load(decv_ptr + offs, mask=mask, other=0)
    u = tl.load(u0_ptr + offs, mask=mask, other=0)
    v = tl.load(v0_ptr + offs, mask=mask, other=0)
    if ALIF:
        decth = tl.load(decth_ptr + offs, mask=mask, other=0)
        decr = tl.load(decr_ptr + offs, mask=mask, other=0)
        theta = tl.load(th0s_ptr + offs, mask=mask, other=0)
        ref = tl.load(r0_ptr + offs, mask=mask, other=0)
    for t in range(T):
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        u = loihi_li_step(u, decu, (x * s_f).to(tl.int64))
        u_f = _to_f32(u, s_d)
        v = loihi_li_step(v, decv, (u_f * s_f).to(tl.int64))
        v_f = _to_f32(v, s_d)
        if ALIF:
            theta, ref = adapt_threshold(theta, ref, theta0, decth, decr)
            th_f = _to_f32(theta, s_d)
            r_f = _to_f32(ref, s_d)
            lim = th_f + r_f
            spk = v_f >= lim
            fired = (v_f * s_f).to(tl.int64) >= theta + ref
            if STORE_LIM:
                tl.store(lim_ptr + idx, lim, mask=mask)
            if STORE_TR:
                tl.store(th_ptr + idx, th_f, mask=mask)
                tl.store(r_ptr + idx, r_f, mask=mask)
            fi = fired.to(tl.int64)
            ref = ref + 2 * theta * fi
            theta = theta + step * fi
        else:
            spk = v_f >= thr_f
            v = tl.where(v.to(tl.float32) >= thr_s_f, 0, v)
        out = tl.where(spk, 1.0, 0.0)
        if GRADED:
            out = out * v_f
        if OUT_BF16:
            out = rne_bf16(out)
        tl.store(s_ptr + idx, out.to(s_ptr.dtype.element_ty), mask=mask)
        tl.store(u_ptr + idx, u_f, mask=mask)
        tl.store(v_ptr + idx, v_f, mask=mask)
    if ALIF:
        tl.store(thf_ptr + offs, _to_f32(theta, s_d), mask=mask)
        tl.store(rf_ptr + offs, _to_f32(ref, s_d), mask=mask)


@triton.jit
def _loihi_bwd(v_ptr, u_ptr, lim_ptr, gs_ptr, gv_ptr, gu_ptr, au_ptr, av_ptr,
               gx_ptr, gdu_ptr, gdv_ptr,
               T, M, thr_f, tau_rho, scale_rho, dscale,
               ALIF: tl.constexpr, GRADED: tl.constexpr, HAS_GS: tl.constexpr,
               HAS_GV: tl.constexpr, HAS_GU: tl.constexpr, NEED_DU: tl.constexpr,
               NEED_DV: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    a_u = tl.load(au_ptr + offs, mask=mask, other=0.0)
    a_v = tl.load(av_ptr + offs, mask=mask, other=0.0)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    acc_u = zero
    acc_v = zero
    gdu = zero
    gdv = zero
    for k in range(T):
        t = T - 1 - k
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        prev = tl.cast(tl.maximum(t - 1, 0), tl.int64) * M + offs
        has_prev = t > 0
        gv = zero
        if HAS_GS:
            v_f = tl.load(v_ptr + idx, mask=mask, other=0.0)
            if ALIF:
                lim = tl.load(lim_ptr + idx, mask=mask, other=0.0)
            else:
                lim = thr_f
            gs = tl.load(gs_ptr + idx, mask=mask, other=0.0).to(tl.float32)
            gv = gs * slayer_grad(v_f - lim, tau_rho, scale_rho, GRADED)
        if HAS_GV:
            gv += tl.load(gv_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        acc_v = a_v * acc_v + gv
        if NEED_DV:
            vp = tl.load(v_ptr + prev, mask=mask, other=0.0)
            gdv += tl.where(has_prev, acc_v * vp, 0.0)
        gu = acc_v
        if HAS_GU:
            gu += tl.load(gu_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        acc_u = a_u * acc_u + gu
        if NEED_DU:
            up = tl.load(u_ptr + prev, mask=mask, other=0.0)
            gdu += tl.where(has_prev, acc_u * up, 0.0)
        tl.store(gx_ptr + idx, acc_u.to(gx_ptr.dtype.element_ty), mask=mask)
    if NEED_DU:
        tl.store(gdu_ptr + offs, gdu * dscale, mask=mask)
    if NEED_DV:
        tl.store(gdv_ptr + offs, gdv * dscale, mask=mask)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding: kernels/_common.py (loihi_op_args), shared with the CPU scan.


def _fwd(tensors, f, i):
    x, du, dv, decu, decv, decth, decr, u0, v0, th0s, r0 = tensors
    s_f, s_d, thr_f, thr_s_f = f[:4]
    theta0, step, alif, graded, traces, dti, need = i
    T, M = x.shape
    dev = x.device
    spk = torch.empty_like(x)
    u, v = f32_empty(T, M, device=dev), f32_empty(T, M, device=dev)
    store_lim = bool(alif and (need & 0b111))
    store_tr = bool(alif and traces)
    lim = f32_empty(T, M, device=dev) if store_lim else None
    th_tr = f32_empty(T, M, device=dev) if store_tr else None
    r_tr = f32_empty(T, M, device=dev) if store_tr else None
    thf = f32_empty(M, device=dev) if alif else None
    rf = f32_empty(M, device=dev) if alif else None
    launch(_loihi_fwd, M, x, spk, u, v, ptr(lim, v), ptr(th_tr, v), ptr(r_tr, v), decu, decv, decth, decr,
           u0, v0, th0s, r0, ptr(thf, v), ptr(rf, v), T, M, s_f, s_d, thr_f, thr_s_f, theta0, step,
           fusion=False, ALIF=bool(alif), GRADED=bool(graded), STORE_LIM=store_lim, STORE_TR=store_tr,
           OUT_BF16=x.dtype == torch.bfloat16)
    return [spk, u, v, th_tr, r_tr, thf, rf, lim]


def _bwd(saved, grads, f, i, needs):
    v, u, lim, du, dv = saved
    g_s, g_u, g_v = grads[:3]
    thr_f, tau_rho, scale_rho, dscale = f[2], f[4], f[5], f[6]
    T, M = v.shape
    dev = v.device
    need_du, need_dv = bool(needs[1]), bool(needs[2])
    a_u = (1 - du / 4096).to(torch.float32).contiguous()
    a_v = (1 - dv / 4096).to(torch.float32).contiguous()
    gx = torch.empty((T, M), dtype=IO_DTYPES[i[5]], device=dev)
    gdu = f32_empty(M, device=dev) if need_du else None
    gdv = f32_empty(M, device=dev) if need_dv else None
    launch(_loihi_bwd, M, v, ptr(u, v), ptr(lim, v), contig(g_s, v), contig(g_v, v), contig(g_u, v),
           a_u, a_v, gx, ptr(gdu, a_u), ptr(gdv, a_v), T, M, thr_f, tau_rho, scale_rho, dscale,
           ALIF=bool(i[2]), GRADED=bool(i[3]), HAS_GS=g_s is not None, HAS_GV=g_v is not None,
           HAS_GU=g_u is not None, NEED_DU=need_du, NEED_DV=need_dv)
    return [gx if needs[0] else None, gdu, gdv] + [None] * 8


LOIHI_CUBA_SCAN = loihi_scan("loihi_cuba_triton", False, _fwd, _bwd, SAVED_BYTES["loihi_cuba"])
LOIHI_ALIF_SCAN = loihi_scan("loihi_alif_triton", True, _fwd, _bwd, SAVED_BYTES["loihi_alif"])

_I64 = "*i64"
for _name, _alif in (("loihi_cuba_triton", False), ("loihi_alif_triton", True)):
    aot(_name, "loihi_fwd", _loihi_fwd, dict(ALIF=_alif, GRADED=True, STORE_LIM=_alif, STORE_TR=_alif, OUT_BF16=True,
                                             BLOCK=512),
        x_ptr="io", s_ptr="io", decu_ptr=_I64, decv_ptr=_I64, decth_ptr=_I64, decr_ptr=_I64, u0_ptr=_I64,
        v0_ptr=_I64, th0s_ptr=_I64, r0_ptr=_I64, theta0="i32", step="i32")
    aot(_name, "loihi_bwd", _loihi_bwd, dict(ALIF=_alif, GRADED=False, HAS_GS=True, HAS_GV=True, HAS_GU=True,
                                             NEED_DU=True, NEED_DV=True, BLOCK=512),
        fusion=True, gs_ptr="io", gx_ptr="io")


def _run(x_seq, params, state, return_traces, alif: bool):
    tensors, f, i = loihi_op_args(x_seq, params, state, return_traces, alif)
    outs = (LOIHI_ALIF_SCAN if alif else LOIHI_CUBA_SCAN).apply(tensors, f, i)
    return loihi_results(outs, x_seq, params, return_traces, alif)


def _supports(x_seq, params=None, has_norm=False, **_) -> Optional[str]:
    return device_reason(x_seq) or loihi_reason(x_seq, params, has_norm)


def loihi_cuba_triton(x_seq, params, state, return_traces=False):
    """Fused Loihi CUBA (for :func:`spikefuse.functional.loihi.cuba_multistep`), kernel contract:
    ``state`` is the (current, voltage) pair; returns ``((spikes,), (current, voltage),
    (current, voltage) traces or None)``, bit-identical to the reference.

    Example (CUDA, or TRITON_INTERPRET=1)::

        >>> s, st = loihi.cuba_multistep(x.cuda(), p, backend="triton")   # doctest: +SKIP
    """
    return _run(x_seq, params, state, return_traces, alif=False)


def loihi_alif_triton(x_seq, params, state, return_traces=False):
    """Fused Loihi ALIF (for :func:`spikefuse.functional.loihi.alif_multistep`): state and traces
    are (current, voltage, threshold, refractory) tuples, as AlifState / AlifTraces."""
    return _run(x_seq, params, state, return_traces, alif=True)
