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

from ...fixed_point import RESONATOR_SURROGATE_MULTIPLIERS, decay_view, round_ste
from .._common import IO_DTYPES, expand_param, io_reason
from ..scan import ScanFunction, ScanSpec
from .common import (adapt_threshold, aot, bit, contig, device_reason, f32_empty, grad_bits, launch, ptr, rne_bf16,
                     rstz12, slayer_grad, to_f32)

#: bytes saved for backward per neuron and time step (RF-Iz: + 1 with exact decay gradients)
SAVED_BYTES = {"loihi_rf": 8, "loihi_rf_iz": 8, "loihi_adrf": 12, "loihi_adrf_iz": 12}

MODELS = {"rf": 0, "rf_iz": 1, "adrf": 2, "adrf_iz": 3}
FAMILIES = {"loihi_rf": "rf", "loihi_rf_iz": "rf_iz", "loihi_adrf": "adrf", "loihi_adrf_iz": "adrf_iz"}


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
# op encoding: tensors (xr, xi (T, M) contiguous; S, C (M,) rounded decays fp32 and re0, im0 (M,)
# fp32 initial state, all differentiable; Si, Ci, keep_th, keep_r, re0, im0, th0, r0 (M,) int64);
# floats (s_f, theta_f, thr_s_f, rho, kappa, reset_im_f); ints (reset_im, theta0, step (integers,
# as the kernel takes them), model, graded, traces, lava, io dtype index, grad bits). Outputs
# (spikes, re/im sequences (stored for traces or backward), re/im of the last step, theta/r
# sequences (adaptive, traces), final theta, r (adaptive), spike limit (adaptive, training),
# RF-Iz reset mask (exact decay gradients)).


def _fwd(tensors, f, i):
    xr, xi, S, C, re0, im0, Si, Ci, kth, kr, re0i, im0i, th0i, r0i = tensors
    s_f, theta_f, thr_s_f = f[:3]
    reset_im, theta0, step, model, graded, traces, lava, dti, need = i
    T, M = xr.shape
    dev = xr.device
    adaptive = model >= 2
    need_grad = bool(need & 0b111111)
    need_dec = bit(need, 2) or bit(need, 3)
    store_ri, store_lim, store_tr = bool(traces or need_grad), adaptive and need_grad, bool(adaptive and traces)
    store_rst = bool(model == 1 and need_dec and not lava)

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


def _save(tensors, outputs, f, i, needs):
    return [outputs[1], outputs[2], outputs[9], outputs[10]] + list(tensors[2:6])


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
    out = [gxr, gxi, gS, gC, gre0, gim0]
    return [g if n else None for g, n in zip(out, needs[:6])] + [None] * 8


def _fake(tensors, f, i):
    xr = tensors[0]
    T, M = xr.shape
    model, traces, lava, need = i[3], i[5], i[6], i[8]
    adaptive = model >= 2
    need_grad = bool(need & 0b111111)

    def seq(on, dtype=torch.float32):
        return xr.new_empty((T, M), dtype=dtype) if on else None

    def last(on=True):
        return xr.new_empty((M,), dtype=torch.float32) if on else None

    ri = bool(traces or need_grad)
    rst = model == 1 and (bit(need, 2) or bit(need, 3)) and not lava
    return [torch.empty_like(xr), seq(ri), seq(ri), last(), last(), seq(adaptive and traces), seq(adaptive and traces),
            last(adaptive), last(adaptive), seq(adaptive and need_grad), seq(rst, torch.int8)]


def _fake_bwd(saved, grads, f, i, needs):
    re = saved[0]
    T, M = re.shape
    out = [re.new_empty((T, M), dtype=IO_DTYPES[i[7]]) for _ in range(2)] + [re.new_empty((M,)) for _ in range(4)]
    return [g if n else None for g, n in zip(out, needs[:6])] + [None] * 8


def _spec(family: str) -> ScanFunction:
    adaptive = family.startswith("loihi_adrf")
    return ScanFunction(ScanSpec(
        name=f"{family}_triton",
        inputs=("x_real", "x_imag", "sin_decay", "cos_decay", "real0", "imag0", "sin_int", "cos_int",
                "keep_threshold", "keep_refractory", "real0_int", "imag0_int", "threshold0_int", "refractory0_int"),
        states=("real", "imag") + (("threshold", "refractory") if adaptive else ()),
        params=("sin_decay", "cos_decay"),
        outputs=("spikes", "real", "imag", "real_last", "imag_last", "threshold", "refractory",
                 "threshold_last", "refractory_last", "spike_limit", "reset_mask"),
        saved=("real", "imag") + (("spike_limit",) if adaptive else ()),
        saved_bytes=SAVED_BYTES[family],
        # xr, xi, s (fp32 I/O) + the saved re/im (and the spike limit) written in training
        moved_bytes=12 + SAVED_BYTES[family],
        forward=_fwd, save=_save, backward=_bwd, fake=_fake, fake_backward=_fake_bwd))


SCANS = {model: _spec(family) for family, model in FAMILIES.items()}

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


def _int_init(v: torch.Tensor, shape, s_scale: int) -> torch.Tensor:
    """As the reference's ``trunc_int(state * s)``: float32 product, truncated via float64."""
    v = v.detach().to(torch.float32).expand(tuple(shape))
    return torch.trunc((v * s_scale).double()).to(torch.int64).reshape(-1).contiguous()


def _int_vec(d: torch.Tensor, shape, keep: bool = False) -> torch.Tensor:
    """round(d) (or 4096 - round(d)) as a flat per-neuron int64 vector."""
    di = torch.round(d.detach()).to(torch.int64)
    if keep:
        di = 4096 - di
    return di.expand(tuple(shape)).reshape(-1).contiguous()


_f32 = to_f32


def _run(model: str, x_seq, params, state, return_traces: bool):
    xr, xi = x_seq
    shape = tuple(xr.shape[1:])
    T = xr.shape[0]
    dev = xr.device
    like = torch.empty((), dtype=torch.float32, device=dev).expand((1,) + shape)  # shape/dtype only
    s = int(params.s_scale)
    theta = float(params.threshold)
    adaptive = model in ("adrf", "adrf_iz")
    tau_m, scale_m = RESONATOR_SURROGATE_MULTIPLIERS[model]
    rho = tau_m * float(params.tau_grad) * theta
    kappa = scale_m * float(params.scale_grad)
    lava = params.decay_grad == "lava"
    S = round_ste(decay_view("params.sin_decay", params.sin_decay, like).to(torch.float32))
    C = round_ste(decay_view("params.cos_decay", params.cos_decay, like).to(torch.float32))
    Si, Ci = _int_vec(S, shape), _int_vec(C, shape)
    re0 = expand_param(state[0], shape, dev)
    im0 = expand_param(state[1], shape, dev)
    re0i = _int_init(state[0], shape, s)
    im0i = _int_init(state[1], shape, s)
    if adaptive:
        Dth = decay_view("params.threshold_decay", params.threshold_decay, like).to(torch.float32)
        Dr = decay_view("params.refractory_decay", params.refractory_decay, like).to(torch.float32)
        kth, kr = _int_vec(Dth, shape, keep=True), _int_vec(Dr, shape, keep=True)
        th0i = _int_init(state[2], shape, s)
        r0i = _int_init(state[3], shape, s)
        theta0, step = int(theta * s), int(float(params.threshold_step) * s)
    else:
        kth = kr = th0i = r0i = Si
        theta0 = step = 0
    thr = theta * s
    reset_im = int(thr - 1)
    tensors = [xr.reshape(T, -1).contiguous(), xi.reshape(T, -1).contiguous(), expand_param(S, shape, dev),
               expand_param(C, shape, dev), re0, im0, Si, Ci, kth, kr, re0i, im0i, th0i, r0i]
    f = [float(s), _f32(theta), _f32(thr), float(rho), float(kappa), _f32(float(reset_im) / s)]
    i = [reset_im, theta0, step, MODELS[model], int(bool(params.graded_spike)), int(bool(return_traces)), int(lava),
         IO_DTYPES.index(xr.dtype), grad_bits(tensors)]
    spk, re, im, rel, iml, th, r, thl, rl, _, _ = SCANS[model].apply(tensors, f, i)
    # theta / r carry no gradient (as the reference's); re/im sequences are outputs only as traces
    th, r, thl, rl = (None if t is None else t.detach() for t in (th, r, thl, rl))
    if xr.dtype not in (torch.float16, torch.bfloat16):
        spk = spk.to(torch.float32)
    spk = spk.view(xr.shape)
    rel, iml = rel.view(shape), iml.view(shape)
    if model == "rf":
        final = (rel, iml)
    elif model == "rf_iz":
        # Izhikevich reset, straight-through, exactly as the reference
        fired = (iml >= theta).to(rel.dtype)
        reset_f = float(int(theta * s - 1)) / s
        final = (rel - (rel * fired).detach(), iml + ((reset_f - iml) * fired).detach())
    else:
        final = (rel, iml, thl.view(shape), rl.view(shape))
    if not return_traces:
        return (spk,), final, None
    re, im = re.view(xr.shape), im.view(xr.shape)
    if adaptive:
        return (spk,), final, (re, im, th.view(xr.shape), r.view(xr.shape))
    return (spk,), final, (re, im)


def res_supports(x_seq, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton scans can run this case (any model option, per-channel decays)."""
    if params is None:
        return "no params given"
    why = device_reason(x_seq) or io_reason(x_seq)
    if why is not None:
        return why
    s = getattr(params, "s_scale", 4096)
    if isinstance(s, int) and s >= 2 ** 24:
        return f"s_scale {s} too large for exact float32 scaling"
    return None


def _make(model: str):
    def fn(x_seq, params, state, return_traces=False):
        return _run(model, x_seq, params, state, return_traces)

    fn.__name__ = f"loihi_{model}_triton"
    fn.__doc__ = (
        f"Fused Loihi {model} (kernel contract of "
        f":func:`spikefuse.functional.resonator.{model}_multistep`): returns ``((spikes,), state, "
        "traces or None)`` as tuples in the reference's State / Traces field order, with "
        "bit-identical forward numbers.\n\n"
        "Example (CUDA, or TRITON_INTERPRET=1)::\n\n"
        f"    >>> s, st = resonator.{model}_multistep((xr.cuda(), xi.cuda()), p, backend=\"triton\")"
        "  # doctest: +SKIP\n")
    return fn


loihi_rf_triton = _make("rf")
loihi_rf_iz_triton = _make("rf_iz")
loihi_adrf_triton = _make("adrf")
loihi_adrf_iz_triton = _make("adrf_iz")
