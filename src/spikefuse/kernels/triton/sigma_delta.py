"""Triton forward/backward scans for the Loihi sigma-delta neuron (lava-dl ``sigma_delta.Neuron``,
SPEC.md 10), bit-exact with :mod:`spikefuse.functional.sigma_delta` (CPU semantics).

Forward, per neuron and step (``acc`` float64 as the reference's float64 ``cumsum``; the rest
fp32; ``step = float32(1 / s_scale)``)::

    acc += float64(x[t]);  σ = float32(acc)                     Sigma
    a = act(σ + bias)                                            act: identity or ReLU
    Δ = (a - pre) + res
    without cum_error:  y = Δ if |Δ| >= θd else 0 Δ
    with cum_error:     err += Δ;  y = Δ if |err| >= θd else 0 Δ;  err = 0 where |y| > 0
    res = Δ - y;  pre = a;  out[t] = floor(y / step) step           (IEEE division)

Backward (reverse scan; the floor is straight-through, residual/error detached, SPEC 10.3)::

    g_a[t] = g_y[t] - g_y[t+1] (+ activation-trace gradient, + final ``pre`` gradient at T-1)
    g_z[t] = g_a[t] 1[a[t] > 0] (ReLU);  g_bias += g_z[t]
    r += float64(g_z[t] + g_σ[t]) (+ final-sum gradient at T-1);  g_x[t] = float32(r)
    g_θd += (|Δ| > θd ? -Δ scale_grad exp(-(|Δ| - θd)/tau_grad) / θd : -sign(Δ)) g_y[t]
    g_acc0 = r;  g_pre0 = -g_y[0]

``r`` is the reverse cumulative sum in float64, as autograd's ``cumsum`` backward of the float64
running sum. Saved for backward per neuron-step (``SAVED_BYTES``): the ReLU mask (1 byte, only
with ReLU), plus Δ (fp32, 4 B) when the threshold learns (it *is* the delta trace when
``return_traces``). Other activations are not fused: ``supports`` returns a reason and
``"auto"`` uses the reference.

GPU note: the reference on CUDA divides by the quantisation step as a multiplication by its
reciprocal and runs a parallel ``cumsum``; the kernel follows the CPU reference (IEEE division,
sequential float64 sum), identical for power-of-two ``s_scale`` and up to float64 rounding of
the running sum otherwise.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .. import _sigma_delta_host as host
from .._common import IO_DTYPES
from .._sigma_delta_host import ACT_RELU, activation_kind  # noqa: F401  (re-exported)
from .common import aot, contig, device_reason, f32_empty, launch, ptr, rne_bf16

SAVED_BYTES = host.SAVED_BYTES


@triton.jit
def delta_step(a, pre, res, err, th, CUM: tl.constexpr):
    """One Delta-unit step: returns (y unquantised, Δ, res, err)."""
    d = (a - pre) + res
    if CUM:
        err = err + d
        y = tl.where(tl.abs(err) >= th, d, d * 0.0)
        err = tl.where(tl.abs(y) > 0.0, 0.0, err)
    else:
        y = tl.where(tl.abs(d) >= th, d, d * 0.0)
    return y, d, d - y, err


@triton.jit
def delta_threshold_grad(d, th, gy, tau_grad, scale_grad):
    """SPEC 10.3 per-element threshold gradient."""
    sub = tl.abs(d) - th
    relax = scale_grad * tl.exp(-tl.abs(sub) / tau_grad)
    sgn = tl.where(d > 0.0, 1.0, tl.where(d < 0.0, -1.0, 0.0))
    return tl.where(sub > 0.0, -d * relax / th, -sgn) * gy


@triton.jit
def _sd_fwd(x_ptr, y_ptr, sig_ptr, a_ptr, d_ptr, keep_ptr, th_ptr, bias_ptr,
            acc0_ptr, pre0_ptr, res0_ptr, err0_ptr, accl_ptr, prel_ptr, resl_ptr, errl_ptr,
            T, M, step_f,
            ACT: tl.constexpr, HAS_BIAS: tl.constexpr, CUM: tl.constexpr, STORE_SIG: tl.constexpr,
            STORE_A: tl.constexpr, STORE_D: tl.constexpr, STORE_KEEP: tl.constexpr,
            OUT_BF16: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    th = tl.load(th_ptr + offs, mask=mask, other=1.0)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs, mask=mask, other=0.0)
    acc = tl.load(acc0_ptr + offs, mask=mask, other=0.0)
    pre = tl.load(pre0_ptr + offs, mask=mask, other=0.0)
    res = tl.load(res0_ptr + offs, mask=mask, other=0.0)
    err = tl.load(err0_ptr + offs, mask=mask, other=0.0)
    for t in range(T):
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        acc = acc + x.to(tl.float64)
        sig = acc.to(tl.float32)
        z = sig
        if HAS_BIAS:
            z = sig + bias
        if ACT == 1:
            a = tl.where(z < 0.0, 0.0, z)  # NaN stays NaN, as torch.relu
        else:
            a = z
        y, d, res, err = delta_step(a, pre, res, err, th, CUM)
        pre = a
        out = tl.math.floor(tl.math.div_rn(y, step_f)) * step_f  # IEEE division: bit-equal to torch
        if OUT_BF16:
            out = rne_bf16(out)
        tl.store(y_ptr + idx, out.to(y_ptr.dtype.element_ty), mask=mask)
        if STORE_SIG:
            tl.store(sig_ptr + idx, sig, mask=mask)
        if STORE_A:
            tl.store(a_ptr + idx, a, mask=mask)
        if STORE_D:
            tl.store(d_ptr + idx, d, mask=mask)
        if STORE_KEEP:  # relu backward passes the gradient where not (a <= 0)
            tl.store(keep_ptr + idx, tl.where(a <= 0.0, 0, 1).to(tl.int8), mask=mask)
    tl.store(accl_ptr + offs, acc, mask=mask)
    tl.store(prel_ptr + offs, pre, mask=mask)
    tl.store(resl_ptr + offs, res, mask=mask)
    tl.store(errl_ptr + offs, err, mask=mask)


@triton.jit
def _sd_bwd(gy_ptr, gsig_ptr, ga_ptr, gaccl_ptr, gprel_ptr, keep_ptr, d_ptr, th_ptr,
            gx_ptr, gth_ptr, gb_ptr, gacc0_ptr, gpre0_ptr,
            T, M, tau_grad, scale_grad,
            ACT: tl.constexpr, HAS_GY: tl.constexpr, HAS_GSIG: tl.constexpr, HAS_GA: tl.constexpr,
            HAS_GACCL: tl.constexpr, HAS_GPREL: tl.constexpr, NEED_TH: tl.constexpr,
            GX_BF16: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    r = tl.zeros([BLOCK], dtype=tl.float64)
    gy_next = zero
    gy = zero
    gth = zero
    gb = zero
    if NEED_TH:
        th = tl.load(th_ptr + offs, mask=mask, other=1.0)
    for k in range(T):
        t = T - 1 - k
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        last = (tl.zeros([BLOCK], dtype=tl.int32) + k) == 0  # vector, joins a load mask
        if HAS_GY:
            gy = tl.load(gy_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        ga = gy - gy_next
        if HAS_GA:
            ga += tl.load(ga_ptr + idx, mask=mask, other=0.0)
        if HAS_GPREL:
            ga += tl.load(gprel_ptr + offs, mask=mask & last, other=0.0)
        if ACT == 1:
            keep = tl.load(keep_ptr + idx, mask=mask, other=0)
            gz = tl.where(keep != 0, ga, 0.0)
        else:
            gz = ga
        gb += gz
        gs = gz
        if HAS_GSIG:
            gs += tl.load(gsig_ptr + idx, mask=mask, other=0.0)
        gs64 = gs.to(tl.float64)
        if HAS_GACCL:
            gs64 = gs64 + tl.load(gaccl_ptr + offs, mask=mask & last, other=0.0)
        r = r + gs64
        gx = r.to(tl.float32)
        if GX_BF16:
            gx = rne_bf16(gx)
        tl.store(gx_ptr + idx, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        if NEED_TH:
            d = tl.load(d_ptr + idx, mask=mask, other=0.0)
            gth += delta_threshold_grad(d, th, gy, tau_grad, scale_grad)
        gy_next = gy
    tl.store(gacc0_ptr + offs, r, mask=mask)
    tl.store(gpre0_ptr + offs, -gy_next, mask=mask)
    tl.store(gb_ptr + offs, gb, mask=mask)
    if NEED_TH:
        tl.store(gth_ptr + offs, gth, mask=mask)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding, saved tensors and fake functions: kernels/_sigma_delta_host.py (shared with the
# CPU backend)


def _fwd(tensors, f, i):
    x, th, bias, acc0, pre0, res0, err0 = tensors
    act, cum = i[0], i[1]
    T, M = x.shape
    dev = x.device
    traces, store_d, store_keep = host.store_flags(i)
    y = torch.empty_like(x)
    sig = f32_empty(T, M, device=dev) if traces else None
    a = f32_empty(T, M, device=dev) if traces else None
    d = f32_empty(T, M, device=dev) if store_d else None
    keep = torch.empty((T, M), dtype=torch.int8, device=dev) if store_keep else None
    accl = torch.empty(M, dtype=torch.float64, device=dev)
    prel, resl, errl = (f32_empty(M, device=dev) for _ in range(3))
    launch(_sd_fwd, M, x, y, ptr(sig, prel), ptr(a, prel), ptr(d, prel), ptr(keep, errl), th, ptr(bias, prel),
           acc0, pre0, res0, err0, accl, prel, resl, errl, T, M, f[0], fusion=False,
           ACT=int(act), HAS_BIAS=bias is not None, CUM=bool(cum), STORE_SIG=bool(traces),
           STORE_A=bool(traces), STORE_D=store_d, STORE_KEEP=store_keep, OUT_BF16=x.dtype == torch.bfloat16)
    return [y, sig, a, d, accl, prel, resl, errl, keep]


def _bwd(saved, grads, f, i, needs):
    keep, d, th = saved
    g_y, g_sig, g_a, _, g_accl, g_prel = grads[:6]
    act, dti, T = i[0], i[3], i[5]
    M = th.shape[0]
    dev = th.device
    need_th = bool(needs[1])
    gx = torch.empty((T, M), dtype=IO_DTYPES[dti], device=dev)
    gth = f32_empty(M, device=dev) if need_th else None
    gb = f32_empty(M, device=dev)
    gacc0 = torch.empty(M, dtype=torch.float64, device=dev)
    gpre0 = f32_empty(M, device=dev)
    launch(_sd_bwd, M, *(contig(g, gb) for g in (g_y, g_sig, g_a, g_accl, g_prel, keep, d)),
           th if need_th else gb, gx, ptr(gth, gb), gb, gacc0, gpre0, T, M, f[1], f[2],
           ACT=int(act), HAS_GY=g_y is not None, HAS_GSIG=g_sig is not None, HAS_GA=g_a is not None,
           HAS_GACCL=g_accl is not None, HAS_GPREL=g_prel is not None, NEED_TH=need_th,
           GX_BF16=IO_DTYPES[dti] == torch.bfloat16)
    out = [gx, gth, gb, gacc0, gpre0]
    return [g if n else None for g, n in zip(out, needs[:5])] + [None, None]


SIGMA_DELTA_SCAN = host.scan_function("triton", _fwd, _bwd)

aot("loihi_sigma_delta_triton", "sd_fwd", _sd_fwd, dict(ACT=1, HAS_BIAS=True, CUM=True, STORE_SIG=True, STORE_A=True,
                                                        STORE_D=True, STORE_KEEP=True, OUT_BF16=True, BLOCK=512),
    x_ptr="io", y_ptr="io", keep_ptr="*i8", acc0_ptr="*fp64", accl_ptr="*fp64")
aot("loihi_sigma_delta_triton", "sd_bwd", _sd_bwd, dict(ACT=1, HAS_GY=True, HAS_GSIG=True, HAS_GA=True, HAS_GACCL=True,
                                                        HAS_GPREL=True, NEED_TH=True, GX_BF16=True, BLOCK=512),
    fusion=True, gy_ptr="io", gaccl_ptr="*fp64", keep_ptr="*i8", gx_ptr="io", gacc0_ptr="*fp64")


def sigma_delta_supports(x_seq, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton scan can run this case: identity or ReLU activation, any threshold /
    bias broadcasting to one step, ``cum_error`` on or off."""
    if params is None:
        return "no params given"
    return device_reason(x_seq) or host.supports_common(x_seq, params, state)


def loihi_sigma_delta_triton(x_seq, params, state, return_traces=False):
    """Fused sigma-delta (kernel contract of
    :func:`spikefuse.functional.sigma_delta.sigma_delta_multistep`): returns
    ``((y,), state, traces or None)``, tuples in SigmaDeltaState / SigmaDeltaTraces field order,
    with bit-identical forward numbers.

    Example (CUDA, or TRITON_INTERPRET=1)::

        >>> y, st = sigma_delta_multistep(x.cuda(), p, backend="triton")  # doctest: +SKIP
    """
    return host.call(SIGMA_DELTA_SCAN, x_seq, params, state, return_traces)
