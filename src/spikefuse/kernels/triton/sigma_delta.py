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
from torch.autograd.function import once_differentiable
import triton
import triton.language as tl

from .._common import expand_param, io_reason, param_reason
from .common import device_reason, launch_geometry, rne_bf16

#: bytes saved for backward per neuron and time step (ReLU mask; + 4 with a learnable threshold)
SAVED_BYTES = {"loihi_sigma_delta": 1}

ACT_IDENTITY, ACT_RELU = 0, 1


def activation_kind(act) -> Optional[int]:
    """In-kernel activation id of ``act`` (None = identity, torch/F.relu, nn.ReLU), else None."""
    if act is None:
        return ACT_IDENTITY
    if act is torch.relu or act is torch.nn.functional.relu:
        return ACT_RELU
    if type(act) is torch.nn.ReLU and not act.inplace:
        return ACT_RELU
    return None


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


class _SigmaDeltaScan(torch.autograd.Function):
    """Inputs: x (T, M) I/O dtype; threshold, bias (M,) fp32 (bias may be None); acc0 (M,) fp64;
    pre0 (M,) fp32 (differentiable); res0, err0 (M,) fp32 (detached); static config.
    Outputs: y, σ/a/Δ sequences (None unless stored), final acc (fp64), pre, res, err."""

    @staticmethod
    def forward(ctx, x, th, bias, acc0, pre0, res0, err0, cfg, scal):
        act, cum, traces = cfg
        step_f, tau_grad, scale_grad = scal
        T, M = x.shape
        dev = x.device
        x = x.contiguous()
        n = ctx.needs_input_grad
        need_grad = any(n[:5])
        need_th = bool(n[1])
        store_keep = bool(act == ACT_RELU and need_grad)
        store_d = bool(traces or need_th)
        f32 = dict(dtype=torch.float32, device=dev)
        y = torch.empty_like(x)
        sig = torch.empty((T, M), **f32) if traces else None
        a = torch.empty((T, M), **f32) if traces else None
        d = torch.empty((T, M), **f32) if store_d else None
        keep = torch.empty((T, M), dtype=torch.int8, device=dev) if store_keep else None
        accl = torch.empty(M, dtype=torch.float64, device=dev)
        prel = torch.empty(M, **f32)
        resl = torch.empty(M, **f32)
        errl = torch.empty(M, **f32)

        def _p(t):
            return prel if t is None else t

        block, warps = launch_geometry(M)
        _sd_fwd[(triton.cdiv(M, block),)](
            x, y, _p(sig), _p(a), _p(d), keep if keep is not None else errl, th, _p(bias),
            acc0, pre0, res0, err0, accl, prel, resl, errl, T, M, step_f,
            ACT=int(act), HAS_BIAS=bias is not None, CUM=bool(cum), STORE_SIG=bool(traces),
            STORE_A=bool(traces), STORE_D=store_d, STORE_KEEP=store_keep,
            OUT_BF16=x.dtype == torch.bfloat16, BLOCK=block, num_warps=warps, enable_fp_fusion=False)
        ctx.cfg = cfg
        ctx.scal = scal
        ctx.x_dtype = x.dtype
        ctx.shape = (T, M)
        ctx.device = dev
        if need_grad:
            ctx.save_for_backward(keep, d if need_th else None, th.detach() if need_th else None)
        ctx.set_materialize_grads(False)
        # differentiable outputs exactly where the reference's are
        nondiff = [resl, errl] + ([d] if traces else [])
        if not (n[0] or n[2] or n[3]):  # σ, a, final sum/pre depend on x, bias, acc0 only
            nondiff += [accl, prel] + ([sig, a] if traces else [])
        elif not (n[0] or n[3]):  # only the bias: σ and the final sum do not depend on it
            nondiff += [accl] + ([sig] if traces else [])
        ctx.mark_non_differentiable(*nondiff)
        if not traces:
            d = None
        return y, sig, a, d, accl, prel, resl, errl

    @staticmethod
    @once_differentiable
    def backward(ctx, g_y, g_sig, g_a, _gd, g_accl, g_prel, _gres, _gerr):
        act, cum, traces = ctx.cfg
        step_f, tau_grad, scale_grad = ctx.scal
        keep, d, th = ctx.saved_tensors
        T, M = ctx.shape
        dev = ctx.device
        n = ctx.needs_input_grad
        need_th = bool(n[1])
        f32 = dict(dtype=torch.float32, device=dev)
        gx = torch.empty((T, M), dtype=ctx.x_dtype, device=dev)
        gth = torch.empty(M, **f32) if need_th else None
        gb = torch.empty(M, **f32)
        gacc0 = torch.empty(M, dtype=torch.float64, device=dev)
        gpre0 = torch.empty(M, **f32)

        def _c(g):
            return gb if g is None else g.contiguous()

        block, warps = launch_geometry(M)
        _sd_bwd[(triton.cdiv(M, block),)](
            _c(g_y), _c(g_sig), _c(g_a), _c(g_accl), _c(g_prel), _c(keep), _c(d), _c(th),
            gx, _c(gth), gb, gacc0, gpre0, T, M, tau_grad, scale_grad,
            ACT=int(act), HAS_GY=g_y is not None, HAS_GSIG=g_sig is not None, HAS_GA=g_a is not None,
            HAS_GACCL=g_accl is not None, HAS_GPREL=g_prel is not None, NEED_TH=need_th,
            GX_BF16=ctx.x_dtype == torch.bfloat16, BLOCK=block, num_warps=warps)
        return (gx if n[0] else None, gth, gb if n[2] else None, gacc0 if n[3] else None,
                gpre0 if n[4] else None, None, None, None, None)


def sigma_delta_supports(x_seq, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton scan can run this case: identity or ReLU activation, any threshold /
    bias broadcasting to one step, ``cum_error`` on or off."""
    if params is None:
        return "no params given"
    why = device_reason(x_seq) or io_reason(x_seq)
    if why is not None:
        return why
    if state is not None and state.sigma.dtype == torch.float32:
        return "a float32 sigma state (lava-dl's persistent float32 sum) runs on the reference loop"
    if activation_kind(params.activation) is None:
        return (f"activation {params.activation!r} has no in-kernel formula (identity and ReLU "
                "are fused); the reference path handles it")
    shape = tuple(x_seq.shape[1:])
    for name in ("threshold", "bias"):
        p = getattr(params, name)
        if p is not None:
            why = param_reason(f"params.{name}", p, shape, x_seq.device)
            if why is not None:
                return why
    return None


def loihi_sigma_delta_triton(x_seq, params, state, return_traces=False):
    """Fused sigma-delta (kernel contract of
    :func:`spikefuse.functional.sigma_delta.sigma_delta_multistep`): returns
    ``((y,), state, traces or None)``, tuples in SigmaDeltaState / SigmaDeltaTraces field order,
    with bit-identical forward numbers.

    Example (CUDA, or TRITON_INTERPRET=1)::

        >>> y, st = sigma_delta_multistep(x.cuda(), p, backend="triton")  # doctest: +SKIP
    """
    shape = tuple(x_seq.shape[1:])
    T = x_seq.shape[0]
    dev = x_seq.device
    M = x_seq[0].numel()
    th = expand_param(params.threshold, shape, dev)
    bias = expand_param(params.bias, shape, dev) if params.bias is not None else None
    acc0 = state[0].to(device=dev, dtype=torch.float64).expand(shape).reshape(M).contiguous()
    pre0 = expand_param(state[1], shape, dev)
    res0 = expand_param(state[2].detach(), shape, dev)
    err0 = expand_param(state[3].detach(), shape, dev)
    step_f = float(torch.tensor(1.0 / params.s_scale, dtype=torch.float32).item())
    cfg = (activation_kind(params.activation), bool(params.cum_error), bool(return_traces))
    scal = (step_f, float(params.tau_grad), float(params.scale_grad))
    y, sig, a, d, accl, prel, resl, errl = _SigmaDeltaScan.apply(
        x_seq.reshape(T, M), th, bias, acc0, pre0, res0, err0, cfg, scal)
    if x_seq.dtype not in (torch.float16, torch.bfloat16):
        y = y.to(torch.float32)
    y = y.view(x_seq.shape)
    final = (accl.view(shape), prel.view(shape), resl.view(shape), errl.view(shape))
    if not return_traces:
        return (y,), final, None
    return (y,), final, (sig.view(x_seq.shape), a.view(x_seq.shape), d.view(x_seq.shape))
