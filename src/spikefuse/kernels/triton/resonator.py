"""Triton forward/backward scans for the Loihi resonate-and-fire family RF, RF-Iz, AdRF, AdRF-Iz
(lava-dl semantics, SPEC.md 2.1, 2.2, 3.4, 6-9), bit-exact with the int64 reference
:mod:`spikefuse.functional.resonator`.

Forward, per neuron and step (integers are ``value * s``, ``s = s_scale``; ``rstz`` shifts
toward zero; ``f(y) = float32(y) / s`` with IEEE division, as the reference's
``int64.to(float32) / s``)::

    re_new = rstz(C re, 12) - rstz(S im, 12) + trunc(f32(xr s))
    im_new = rstz(S re, 12) + rstz(C im, 12) + trunc(f32(xi s))            recorded re_f, im_f
    RF       s = 1[re_f >= θ] 1[im_prev_f < 0] 1[im_f >= 0]   (im_prev_f at t = 0: the float state)
    RF-Iz    s = 1[im_f >= θ];  where float32(im_new) >= float32(θ s): re, im = 0, int(θ s - 1)
    AdRF     r = rstz(r (4096 - Dr)); θ = rstz((θ - θ0)(4096 - Dθ)) + θ0      recorded θ_f, r_f
             s = 1[re_f >= θ_f + r_f] 1[im_prev_f < 0] 1[im_f >= 0]        (float, the output)
             fired = re_new >= θ + r and im_new >= 0 and im < 0            (int, the state update)
             where fired: r += 2 θ, θ += step
    AdRF-Iz  as AdRF with s = 1[im_f >= θ_f + r_f], fired = im_new >= θ + r
    graded spikes emit s * re_f (RF, AdRF) or s * im_f (RF-Iz, AdRF-Iz).

The spike surrogates (SPEC 2.1 real spike on ``im`` for the -Iz models, SPEC 2.2 complex spike
for RF/AdRF, with the multipliers of :data:`spikefuse.fixed_point.RESONATOR_SURROGATE_MULTIPLIERS`)
are fused into the reverse scan of the float resonator (SPEC 6.2)::

    g_re[t], g_im[t] = surrogate(gS[t]) + trace gradients (+ final-state gradient at T-1)
    a = g_re[t] + C' a + S' b;  b = g_im[t] - S' a + C' b;   gxr[t], gxi[t] = a, b
    dS += -a im_prev + b re_prev;  dC += a re_prev + b im_prev                (C' = C/4096)

``decay_grad="exact"``: factor 1/4096, t = 0 counts with the initial float state, RF-Iz uses the
post-reset previous state; ``"lava"``: factor 1, t >= 1 only, recorded (pre-reset) values.
Initial-state gradients ``C' a + S' b``, ``-S' a + C' b`` after the last (t = 0) step.

Saved for backward per neuron-step (``SAVED_BYTES``): the recorded re/im (fp32, 8 B; they are
the traces when ``return_traces``), the adaptive models also the spike limit θ_f + r_f (4 B),
RF-Iz with ``decay_grad="exact"`` and learnable decays a 1-byte reset mask. Nothing is stored
when no input needs a gradient and no traces are requested (inference writes spikes only).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .. import _resonator_host as host
from .._common import IO_DTYPES
from .._resonator_host import FAMILIES, MODELS, SAVED_BYTES  # noqa: F401  (re-exported)
from .common import (adapt_threshold, aot, contig, device_reason, f32_empty, launch, ptr, rne_bf16, rstz12,
                     slayer_grad)


@triton.jit
def res_step(re, im, S, C, xri, xii):
    """One integer resonator step (SPEC 6.2): returns (re_new, im_new)."""
    re_new = rstz12(C * re) - rstz12(S * im) + xri
    im_new = rstz12(S * re) + rstz12(C * im) + xii
    return re_new, im_new


@triton.jit
def res_vjp(ga, gb, a, b, Sf, Cf):
    """Reverse step of the float rotation: (a, b) <- (g_re + C'a + S'b, g_im - S'a + C'b)."""
    a_new = ga + Cf * a + Sf * b
    b_new = gb - Sf * a + Cf * b
    return a_new, b_new


@triton.jit
def complex_spike_vjp(gs, re, im, thr, rho, kappa, GRADED: tl.constexpr):
    """SPEC 2.2 phase-spike surrogate: (dL/dre, dL/dim) for an upstream gradient ``gs``."""
    x = re - thr
    if GRADED:
        d_re = tl.exp(-tl.maximum(thr - re, 0.0) / rho)
    else:
        d_re = 1.0 / (2.0 * rho) * tl.exp(-tl.abs(x) / rho)
    d_im = 1.0 / (2.0 * rho) * tl.exp(-tl.abs(im) / rho)
    sx = tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, 0.0))
    si = tl.where(im > 0.0, 1.0, tl.where(im < 0.0, -1.0, 0.0))
    step = 0.5 * (1.0 + sx * (1.0 - 2.0 * rho * d_re))
    g_re = gs * kappa * d_re * d_im
    g_im = gs * (-(kappa / rho) * si * d_im * step)
    return g_re, g_im


@triton.jit
def _res_fwd(xr_ptr, xi_ptr, spk_ptr, re_ptr, im_ptr, lim_ptr, th_ptr, r_ptr, rst_ptr,
             S_ptr, C_ptr, kth_ptr, kr_ptr, re0_ptr, im0_ptr, th0s_ptr, r0_ptr, im0f_ptr,
             rel_ptr, iml_ptr, thl_ptr, rl_ptr,
             T, M, s_f, theta_f, thr_s_f, reset_im, theta0, step,
             MODEL: tl.constexpr, GRADED: tl.constexpr, STORE_RI: tl.constexpr,
             STORE_LIM: tl.constexpr, STORE_TR: tl.constexpr, STORE_RST: tl.constexpr,
             OUT_BF16: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    S = tl.load(S_ptr + offs, mask=mask, other=0)
    C = tl.load(C_ptr + offs, mask=mask, other=0)
    re = tl.load(re0_ptr + offs, mask=mask, other=0)
    im = tl.load(im0_ptr + offs, mask=mask, other=0)
    im_prev_f = tl.load(im0f_ptr + offs, mask=mask, other=0.0)
    re_f = tl.zeros([BLOCK], dtype=tl.float32)
    im_f = tl.zeros([BLOCK], dtype=tl.float32)
    if MODEL >= 2:
        keep_th = tl.load(kth_ptr + offs, mask=mask, other=0)
        keep_r = tl.load(kr_ptr + offs, mask=mask, other=0)
        theta = tl.load(th0s_ptr + offs, mask=mask, other=0)
        ref = tl.load(r0_ptr + offs, mask=mask, other=0)
    for t in range(T):
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        xr = tl.load(xr_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        xi = tl.load(xi_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        re_new, im_new = res_step(re, im, S, C, (xr * s_f).to(tl.int64), (xi * s_f).to(tl.int64))
        re_f = tl.math.div_rn(re_new.to(tl.float32), s_f)  # IEEE division: bit-equal to torch
        im_f = tl.math.div_rn(im_new.to(tl.float32), s_f)
        if MODEL == 0:
            spk = (re_f >= theta_f) & (im_prev_f < 0.0) & (im_f >= 0.0)
            re = re_new
            im = im_new
        elif MODEL == 1:
            spk = im_f >= theta_f
            rst = im_new.to(tl.float32) >= thr_s_f  # torch: int64 >= float compares in float32
            if STORE_RST:
                tl.store(rst_ptr + idx, rst.to(tl.int8), mask=mask)
            re = tl.where(rst, 0, re_new)
            im = tl.where(rst, reset_im, im_new)
        else:
            theta, ref = adapt_threshold(theta, ref, theta0, keep_th, keep_r)
            th_f = tl.math.div_rn(theta.to(tl.float32), s_f)
            r_f = tl.math.div_rn(ref.to(tl.float32), s_f)
            lim = th_f + r_f
            if MODEL == 2:
                spk = (re_f >= lim) & (im_prev_f < 0.0) & (im_f >= 0.0)
                fired = (re_new >= theta + ref) & (im_new >= 0) & (im < 0)
            else:
                spk = im_f >= lim
                fired = im_new >= theta + ref
            if STORE_LIM:
                tl.store(lim_ptr + idx, lim, mask=mask)
            if STORE_TR:
                tl.store(th_ptr + idx, th_f, mask=mask)
                tl.store(r_ptr + idx, r_f, mask=mask)
            fi = fired.to(tl.int64)
            ref = ref + 2 * theta * fi
            theta = theta + step * fi
            re = re_new
            im = im_new
        im_prev_f = im_f
        out = tl.where(spk, 1.0, 0.0)
        if GRADED:
            if MODEL == 0 or MODEL == 2:
                out = out * re_f
            else:
                out = out * im_f
        if OUT_BF16:
            out = rne_bf16(out)
        tl.store(spk_ptr + idx, out.to(spk_ptr.dtype.element_ty), mask=mask)
        if STORE_RI:
            tl.store(re_ptr + idx, re_f, mask=mask)
            tl.store(im_ptr + idx, im_f, mask=mask)
    tl.store(rel_ptr + offs, re_f, mask=mask)
    tl.store(iml_ptr + offs, im_f, mask=mask)
    if MODEL >= 2:
        tl.store(thl_ptr + offs, tl.math.div_rn(theta.to(tl.float32), s_f), mask=mask)
        tl.store(rl_ptr + offs, tl.math.div_rn(ref.to(tl.float32), s_f), mask=mask)


@triton.jit
def _res_bwd(re_ptr, im_ptr, lim_ptr, rst_ptr, gs_ptr, gre_ptr, gim_ptr, grel_ptr, giml_ptr,
             Sf_ptr, Cf_ptr, re0f_ptr, im0f_ptr,
             gxr_ptr, gxi_ptr, gre0_ptr, gim0_ptr, gS_ptr, gC_ptr,
             T, M, theta_f, rho, kappa, reset_im_f, dscale,
             MODEL: tl.constexpr, GRADED: tl.constexpr, HAS_GS: tl.constexpr,
             HAS_GRE: tl.constexpr, HAS_GIM: tl.constexpr, HAS_GREL: tl.constexpr,
             HAS_GIML: tl.constexpr, NEED_DEC: tl.constexpr, LAVA: tl.constexpr,
             BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    Sf = tl.load(Sf_ptr + offs, mask=mask, other=0.0)
    Cf = tl.load(Cf_ptr + offs, mask=mask, other=0.0)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    a = zero
    b = zero
    dS = zero
    dC = zero
    if NEED_DEC:
        re0f = tl.load(re0f_ptr + offs, mask=mask, other=0.0)
        im0f = tl.load(im0f_ptr + offs, mask=mask, other=0.0)
    if NEED_DEC:  # re/im of step t-1 are read once: as the decay's previous state, then carried
        last = tl.cast(T - 1, tl.int64) * M + offs
        re_n = tl.load(re_ptr + last, mask=mask, other=0.0)
        im_n = tl.load(im_ptr + last, mask=mask, other=0.0)
    for k in range(T):
        t = T - 1 - k
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        tvec = tl.zeros([BLOCK], dtype=tl.int32) + t  # vector so that it can join a load mask
        g_re = zero
        g_im = zero
        if HAS_GS:
            gs = tl.load(gs_ptr + idx, mask=mask, other=0.0).to(tl.float32)
            if NEED_DEC:
                im = im_n
            else:
                im = tl.load(im_ptr + idx, mask=mask, other=0.0)
            if MODEL >= 2:
                thr = tl.load(lim_ptr + idx, mask=mask, other=0.0)
            else:
                thr = theta_f
            if MODEL == 0 or MODEL == 2:
                if NEED_DEC:
                    re = re_n
                else:
                    re = tl.load(re_ptr + idx, mask=mask, other=0.0)
                g_re, g_im = complex_spike_vjp(gs, re, im, thr, rho, kappa, GRADED)
            else:
                g_im = gs * slayer_grad(im - thr, rho, kappa, GRADED)
        if HAS_GRE:
            g_re += tl.load(gre_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if HAS_GIM:
            g_im += tl.load(gim_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if HAS_GREL:  # final-state gradient enters at the last step
            g_re += tl.load(grel_ptr + offs, mask=mask & (tvec == T - 1), other=0.0).to(tl.float32)
        if HAS_GIML:
            g_im += tl.load(giml_ptr + offs, mask=mask & (tvec == T - 1), other=0.0).to(tl.float32)
        a, b = res_vjp(g_re, g_im, a, b, Sf, Cf)
        tl.store(gxr_ptr + idx, a.to(gxr_ptr.dtype.element_ty), mask=mask)
        tl.store(gxi_ptr + idx, b.to(gxi_ptr.dtype.element_ty), mask=mask)
        if NEED_DEC:
            has_prev = tvec > 0
            prev = tl.cast(tl.maximum(t - 1, 0), tl.int64) * M + offs
            re_n = tl.load(re_ptr + prev, mask=mask & has_prev, other=0.0)
            im_n = tl.load(im_ptr + prev, mask=mask & has_prev, other=0.0)
            p_re = re_n
            p_im = im_n
            if MODEL == 1 and not LAVA:  # the step really started from the post-reset state
                rst = tl.load(rst_ptr + prev, mask=mask & has_prev, other=0) != 0
                p_re = tl.where(rst, 0.0, p_re)
                p_im = tl.where(rst, reset_im_f, p_im)
            if LAVA:  # lava: t >= 1 only
                p_re = tl.where(has_prev, p_re, 0.0)
                p_im = tl.where(has_prev, p_im, 0.0)
            else:  # exact: t = 0 starts from the initial float state
                p_re = tl.where(has_prev, p_re, re0f)
                p_im = tl.where(has_prev, p_im, im0f)
            dS += -a * p_im + b * p_re
            dC += a * p_re + b * p_im
    g_re0 = Cf * a + Sf * b
    g_im0 = -Sf * a + Cf * b
    tl.store(gre0_ptr + offs, g_re0, mask=mask)
    tl.store(gim0_ptr + offs, g_im0, mask=mask)
    if NEED_DEC:
        tl.store(gS_ptr + offs, dS * dscale, mask=mask)
        tl.store(gC_ptr + offs, dC * dscale, mask=mask)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding, saved tensors, fake functions and the host-side wrapper:
# kernels/_resonator_host.py (shared with the CPU backend)


def _fwd(tensors, f, i):
    xr, xi, S, C, re0, im0, Si, Ci, kth, kr, re0i, im0i, th0i, r0i = tensors
    s_f, theta_f, thr_s_f = f[:3]
    reset_im, theta0, step, model, graded = i[:5]
    T, M = xr.shape
    dev = xr.device
    adaptive = model >= 2
    store_ri, store_lim, store_tr, store_rst = host.store_flags(i)

    def seq(on):
        return f32_empty(T, M, device=dev) if on else None

    spk = torch.empty_like(xr)
    re, im, lim, th, r = seq(store_ri), seq(store_ri), seq(store_lim), seq(store_tr), seq(store_tr)
    rst = torch.empty((T, M), dtype=torch.int8, device=dev) if store_rst else None
    rel, iml = f32_empty(M, device=dev), f32_empty(M, device=dev)
    thl = f32_empty(M, device=dev) if adaptive else None
    rl = f32_empty(M, device=dev) if adaptive else None
    im0f = im0.to(torch.float32).contiguous()
    p = [ptr(t, rel) for t in (re, im, lim, th, r)]
    launch(_res_fwd, M, xr, xi, spk, *p, ptr(rst, Si), Si, Ci, kth, kr, re0i, im0i, th0i, r0i, im0f, rel, iml,
           ptr(thl, rel), ptr(rl, rel), T, M, s_f, theta_f, thr_s_f, reset_im, theta0, step, fusion=False,
           MODEL=model, GRADED=bool(graded), STORE_RI=store_ri, STORE_LIM=store_lim, STORE_TR=store_tr,
           STORE_RST=store_rst, OUT_BF16=xr.dtype == torch.bfloat16)
    return [spk, re, im, rel, iml, th, r, thl, rl, lim, rst]


def _bwd(saved, grads, f, i, needs):
    re, im, lim, rst, S, C, re0, im0 = saved
    g_s, g_re, g_im, g_rel, g_iml = grads[:5]
    theta_f, rho, kappa, reset_im_f = f[1], f[3], f[4], f[5]
    model, graded, lava, dti = i[3], i[4], i[6], i[7]
    T, M = re.shape
    dev = re.device
    need_dec = bool(needs[2] or needs[3])
    Sf = (S / 4096).to(torch.float32).contiguous()
    Cf = (C / 4096).to(torch.float32).contiguous()
    gxr = torch.empty((T, M), dtype=IO_DTYPES[dti], device=dev)
    gxi = torch.empty((T, M), dtype=IO_DTYPES[dti], device=dev)
    gre0, gim0 = f32_empty(M, device=dev), f32_empty(M, device=dev)
    gS = f32_empty(M, device=dev) if need_dec else None
    gC = f32_empty(M, device=dev) if need_dec else None
    launch(_res_bwd, M, re, im, ptr(lim, re), ptr(rst, re), *(contig(g, re) for g in (g_s, g_re, g_im, g_rel, g_iml)),
           Sf, Cf, re0.to(torch.float32).contiguous(), im0.to(torch.float32).contiguous(),
           gxr, gxi, gre0, gim0, ptr(gS, gre0), ptr(gC, gim0), T, M, theta_f, rho, kappa, reset_im_f,
           1.0 if lava else 1.0 / 4096,
           MODEL=model, GRADED=bool(graded), HAS_GS=g_s is not None, HAS_GRE=g_re is not None,
           HAS_GIM=g_im is not None, HAS_GREL=g_rel is not None, HAS_GIML=g_iml is not None,
           NEED_DEC=need_dec, LAVA=bool(lava))
    out = [*host.input_grads(gxr, gxi, i), gS, gC, gre0, gim0]
    return [g if n else None for g, n in zip(out, needs[:6])] + [None] * 8


SCANS = host.scan_functions("triton", _fwd, _bwd)

for _family, _model in FAMILIES.items():
    _m = MODELS[_model]
    _t = dict(rst_ptr="*i8", S_ptr="*i64", C_ptr="*i64", kth_ptr="*i64", kr_ptr="*i64", re0_ptr="*i64",
              im0_ptr="*i64", th0s_ptr="*i64", r0_ptr="*i64", reset_im="i32", theta0="i32", step="i32")
    aot(f"{_family}_triton", "res_fwd", _res_fwd, dict(MODEL=_m, GRADED=True, STORE_RI=True, STORE_LIM=_m >= 2,
                                                       STORE_TR=_m >= 2, STORE_RST=_m == 1, OUT_BF16=True, BLOCK=512),
        xr_ptr="io", xi_ptr="io", spk_ptr="io", **_t)
    aot(f"{_family}_triton", "res_bwd", _res_bwd, dict(MODEL=_m, GRADED=_m == 2, HAS_GS=True, HAS_GRE=True,
                                                       HAS_GIM=True, HAS_GREL=True, HAS_GIML=True, NEED_DEC=True,
                                                       LAVA=False, BLOCK=512),
        fusion=True, rst_ptr="*i8", gs_ptr="io", gxr_ptr="io", gxi_ptr="io")


def res_supports(x_seq, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton scans can run this case (any model option, per-channel decays)."""
    if params is None:
        return "no params given"
    return device_reason(x_seq) or host.supports_common(x_seq, params)


_EXAMPLE = 's, st = resonator.{m}_multistep((xr.cuda(), xi.cuda()), p, backend="triton")'
loihi_rf_triton = host.make(SCANS, "rf", "triton", _EXAMPLE.format(m="rf"))
loihi_rf_iz_triton = host.make(SCANS, "rf_iz", "triton", _EXAMPLE.format(m="rf_iz"))
loihi_adrf_triton = host.make(SCANS, "adrf", "triton", _EXAMPLE.format(m="adrf"))
loihi_adrf_iz_triton = host.make(SCANS, "adrf_iz", "triton", _EXAMPLE.format(m="adrf_iz"))
