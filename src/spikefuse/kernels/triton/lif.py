"""Triton forward/backward scans for SpikingJelly-style IF / LIF (SPEC.md section 15).

Per step (H = charge, S = spike, V = membrane after reset; Vr = v_reset, or 0 for soft reset)::

    IF                      H = V + X
    LIF, decay_input        H = V + (X - (V - Vr)) / tau
    LIF, not decay_input    H = V - (V - Vr) / tau + X
    S = 1[H - Vth >= 0]       (threshold=">": S = 1[H - Vth > 0], the STRICT constexpr)
    hard reset  V = S Vr + (1 - S) H          soft reset  V = H - S Vth

The step and its vector-Jacobian product are two small ``@triton.jit`` functions
(:func:`lif_step`, :func:`lif_vjp`); the forward scan (:func:`_lif_fwd`) and the reverse scan
(:func:`_lif_bwd`) call them once per time step with the state held in registers.

Saved for backward: H in fp32, 4 bytes per neuron-step (``SAVED_BYTES["lif"]``). Everything else
is recomputed: S = 1[H - Vth >= 0] (``> 0`` when STRICT); the previous membrane V[t-1] = reset(H[t-1]) (or v0), needed only
for the tau gradient. With ``return_traces=True`` the returned ``h_seq`` *is* the saved buffer.

Backward per step (SPEC 15.3 plus the trace gradients of newer SpikingJelly)::

    gV    = gV_carry + g_v_seq[t]                  (gV_carry starts as g_v_last)
    gH    = gS[t] sg + gV dV/dH + g_h_seq[t]       sg = surrogate'(H - Vth)
    gX[t] = gH dH/dX,   gV_carry = gH dH/dV
    g_tau += gH dH/dtau,  g_vth += -gS sg + gV dV/dVth,  g_vr += gV dV/dVr + gH dH/dVr

Parameter gradients are reduced over time in registers and written per neuron; autograd then
sums them over batch/features back to the parameter's shape (a deterministic second pass).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import (IO_DTYPES, KIND_LIF_DECAY_INPUT, expand_param, lif_kind, lif_outputs, lif_param_reason,
                       lif_v0)
from ..scan import ScanFunction, ScanSpec
from .common import aot, common_reason, contig, f32_empty, grad_bits, launch, ptr, surrogate_grad

#: bytes saved for backward per neuron and time step
SAVED_BYTES = {"lif": 4}


@triton.jit
def lif_fire(h, vth, STRICT: tl.constexpr):
    """The spike condition: ``H - Vth >= 0`` (SpikingJelly), ``H - Vth > 0`` when ``STRICT``
    (``threshold=">"``: snnTorch / norse / NIR). The same difference as the reference's
    ``surrogate(h - v_th, strict)``, so a charge exactly at the threshold ties the same way."""
    if STRICT:
        fire = h - vth > 0.0
    else:
        fire = h - vth >= 0.0
    return fire


@triton.jit
def lif_step(x, v, tau, vth, vr, KIND: tl.constexpr, HARD: tl.constexpr, STRICT: tl.constexpr):
    """One step: returns (H, S as 0/1 fp32, V after reset)."""
    if KIND == 0:
        h = v + x
    elif KIND == 1:
        h = v + tl.math.div_rn(x - (v - vr), tau)  # IEEE division: bit-equal to torch
    else:
        h = v - tl.math.div_rn(v - vr, tau) + x
    s = tl.where(lif_fire(h, vth, STRICT), 1.0, 0.0)
    if HARD:
        vn = tl.where(s > 0.0, vr, h)
    else:
        vn = h - s * vth
    return h, s, vn


@triton.jit
def lif_reset(h, vth, vr, HARD: tl.constexpr, STRICT: tl.constexpr):
    """V after reset from the charge H (used to recompute V[t-1] in backward)."""
    fire = lif_fire(h, vth, STRICT)
    if HARD:
        v = tl.where(fire, vr, h)
    else:
        v = tl.where(fire, h - vth, h)
    return v


@triton.jit
def lif_vjp(gs, gv, gh_extra, h, vprev, x, tau, vth, vr, a0, a1,
            KIND: tl.constexpr, HARD: tl.constexpr, DETACH: tl.constexpr, SG: tl.constexpr,
            STRICT: tl.constexpr):
    """VJP of one step. ``gs``/``gv`` are the gradients of S and V (after reset) of this step.

    Returns (gX, gV_prev, g_tau, g_vth, g_vr) for this step."""
    sg = surrogate_grad(h - vth, SG, a0, a1)
    s = tl.where(lif_fire(h, vth, STRICT), 1.0, 0.0)
    if HARD:
        if DETACH:
            gv2h = 1.0 - s
            dv_dvth = 0.0 * s
        else:
            gv2h = 1.0 - s + (vr - h) * sg
            dv_dvth = -(vr - h) * sg
        dv_dvr = s
    else:
        if DETACH:
            gv2h = 1.0 + 0.0 * s
            dv_dvth = -s
        else:
            gv2h = 1.0 - vth * sg
            dv_dvth = -s + vth * sg
        dv_dvr = 0.0 * s
    gh = gs * sg + gv * gv2h + gh_extra
    if KIND == 0:
        gx = gh
        gvp = gh
        gtau = 0.0 * gh
        dh_dvr = 0.0 * gh
    elif KIND == 1:
        gx = gh / tau
        gvp = gh * (1.0 - 1.0 / tau)
        gtau = -gh * (x - (vprev - vr)) / (tau * tau)
        dh_dvr = 1.0 / tau + 0.0 * gh
    else:
        gx = gh
        gvp = gh * (1.0 - 1.0 / tau)
        gtau = gh * (vprev - vr) / (tau * tau)
        dh_dvr = 1.0 / tau + 0.0 * gh
    gvth = -gs * sg + gv * dv_dvth
    gvr = gv * dv_dvr + gh * dh_dvr
    return gx, gvp, gtau, gvth, gvr


@triton.jit
def load_lif_params(tau_ptr, vth_ptr, vr_ptr, offs, mask):
    """Per-neuron (tau, v_threshold, v_reset); lanes past M get the harmless 1, 1, 0."""
    tau = tl.load(tau_ptr + offs, mask=mask, other=1.0)
    vth = tl.load(vth_ptr + offs, mask=mask, other=1.0)
    vr = tl.load(vr_ptr + offs, mask=mask, other=0.0)
    return tau, vth, vr


@triton.jit
def _lif_fwd(x_ptr, spk_ptr, tau_ptr, vth_ptr, vr_ptr, v0_ptr, vlast_ptr, h_ptr, vseq_ptr,
             T, M,
             KIND: tl.constexpr, HARD: tl.constexpr, STORE_H: tl.constexpr,
             STORE_V: tl.constexpr, STRICT: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    tau, vth, vr = load_lif_params(tau_ptr, vth_ptr, vr_ptr, offs, mask)
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    for t in range(T):
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        h, s, v = lif_step(x, v, tau, vth, vr, KIND, HARD, STRICT)
        tl.store(spk_ptr + idx, s.to(spk_ptr.dtype.element_ty), mask=mask)
        if STORE_H:
            tl.store(h_ptr + idx, h, mask=mask)
        if STORE_V:
            tl.store(vseq_ptr + idx, v, mask=mask)
    tl.store(vlast_ptr + offs, v, mask=mask)


@triton.jit
def _lif_bwd(h_ptr, x_ptr, gs_ptr, gvseq_ptr, ghseq_ptr, gvlast_ptr,
             tau_ptr, vth_ptr, vr_ptr, v0_ptr,
             gx_ptr, gv0_ptr, gtau_ptr, gvth_ptr, gvr_ptr,
             T, M, a0, a1,
             KIND: tl.constexpr, HARD: tl.constexpr, DETACH: tl.constexpr, SG: tl.constexpr,
             HAS_GS: tl.constexpr, HAS_GVSEQ: tl.constexpr, HAS_GHSEQ: tl.constexpr,
             HAS_GVLAST: tl.constexpr, NEED_PARAMS: tl.constexpr, STRICT: tl.constexpr,
             BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    tau, vth, vr = load_lif_params(tau_ptr, vth_ptr, vr_ptr, offs, mask)
    if HAS_GVLAST:
        gv_carry = tl.load(gvlast_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        gv_carry = tl.zeros([BLOCK], dtype=tl.float32)
    acc_tau = tl.zeros([BLOCK], dtype=tl.float32)
    acc_vth = tl.zeros([BLOCK], dtype=tl.float32)
    acc_vr = tl.zeros([BLOCK], dtype=tl.float32)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    if NEED_PARAMS:
        v0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    h = tl.load(h_ptr + tl.cast(T - 1, tl.int64) * M + offs, mask=mask, other=0.0)
    for i in range(T):
        t = T - 1 - i
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        if HAS_GS:
            gs = tl.load(gs_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        else:
            gs = zero
        gv = gv_carry
        if HAS_GVSEQ:
            gv += tl.load(gvseq_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        if HAS_GHSEQ:
            ghx = tl.load(ghseq_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        else:
            ghx = zero
        # H[t-1] (clamped to row 0 at t = 0, where it is not used): carried to the next step
        hp = tl.load(h_ptr + tl.cast(tl.maximum(t - 1, 0), tl.int64) * M + offs, mask=mask, other=0.0)
        if NEED_PARAMS:
            # previous membrane (only the tau gradient needs it) and the input (decay_input)
            vprev = tl.where(t > 0, lif_reset(hp, vth, vr, HARD, STRICT), v0)
            if KIND == 1:
                x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
            else:
                x = zero
        else:
            vprev = zero
            x = zero
        gx, gv_carry, gtau, gvth, gvr = lif_vjp(gs, gv, ghx, h, vprev, x, tau, vth, vr, a0, a1,
                                               KIND, HARD, DETACH, SG, STRICT)
        tl.store(gx_ptr + idx, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        if NEED_PARAMS:
            acc_tau += gtau
            acc_vth += gvth
            acc_vr += gvr
        h = hp
    tl.store(gv0_ptr + offs, gv_carry, mask=mask)
    if NEED_PARAMS:
        tl.store(gtau_ptr + offs, acc_tau, mask=mask)
        tl.store(gvth_ptr + offs, acc_vth, mask=mask)
        tl.store(gvr_ptr + offs, acc_vr, mask=mask)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding: tensors (x (T, M) contiguous, tau, vth, vr, v0 (M,) fp32); floats (a0, a1: the
# surrogate's parameters); ints (kind, hard, detach_reset, surrogate id, traces, io dtype index,
# grad bits of the five tensors, strict: 1 for threshold=">"). Outputs (spikes, v_last, H or None,
# v_seq or None): H is written when traces are asked for or a gradient is needed (it is what
# backward reads).


def _fwd(tensors, f, i):
    x, tau, vth, vr, v0 = tensors
    kind, hard, detach, sg, traces, dti, need, strict = i
    T, M = x.shape
    store_h = bool(traces or need)
    spk = torch.empty_like(x)
    vlast = f32_empty(M, device=x.device)
    hseq = f32_empty(T, M, device=x.device) if store_h else None
    vseq = f32_empty(T, M, device=x.device) if traces else None
    launch(_lif_fwd, M, x, spk, tau, vth, vr, v0, vlast, ptr(hseq, vlast), ptr(vseq, vlast), T, M,
           fusion=False, KIND=kind, HARD=bool(hard), STORE_H=store_h, STORE_V=bool(traces),
           STRICT=bool(strict))
    return [spk, vlast, hseq, vseq]


def _save(tensors, outputs, f, i, needs):
    x, tau, vth, vr, v0 = tensors
    return [outputs[2], x if i[0] == KIND_LIF_DECAY_INPUT else None, tau, vth, vr, v0]


def _bwd(saved, grads, f, i, needs):
    hseq, x, tau, vth, vr, v0 = saved
    g_spk, g_vlast, g_hseq, g_vseq = grads
    kind, hard, detach, sg, traces, dti, _, strict = i
    T, M = hseq.shape
    dev = hseq.device
    need_params = any(needs[1:4])
    gx = torch.empty((T, M), dtype=IO_DTYPES[dti], device=dev)
    gv0 = f32_empty(M, device=dev)
    gtau, gvth, gvr = (f32_empty(M, device=dev) for _ in range(3)) if need_params else (gv0,) * 3
    launch(_lif_bwd, M, hseq, ptr(x, gv0), contig(g_spk, gv0), contig(g_vseq, gv0), contig(g_hseq, gv0),
           contig(g_vlast, gv0), tau, vth, vr, v0, gx, gv0, gtau, gvth, gvr, T, M, f[0], f[1],
           KIND=kind, HARD=bool(hard), DETACH=bool(detach), SG=sg,
           HAS_GS=g_spk is not None, HAS_GVSEQ=g_vseq is not None, HAS_GHSEQ=g_hseq is not None,
           HAS_GVLAST=g_vlast is not None, NEED_PARAMS=need_params, STRICT=bool(strict))
    out = [gx, gtau, gvth, gvr, gv0]
    return [g if n and (k in (0, 4) or need_params) else None for k, (g, n) in enumerate(zip(out, needs))]


def _fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    traces, need = i[4], i[6]
    return [torch.empty_like(x), x.new_empty((M,), dtype=torch.float32),
            x.new_empty((T, M), dtype=torch.float32) if (traces or need) else None,
            x.new_empty((T, M), dtype=torch.float32) if traces else None]


def _fake_bwd(saved, grads, f, i, needs):
    T, M = saved[0].shape
    h = saved[0]
    out = [h.new_empty((T, M), dtype=IO_DTYPES[i[5]])] + [h.new_empty((M,)) for _ in range(4)]
    return [g if n else None for g, n in zip(out, needs)]


LIF_SCAN = ScanFunction(ScanSpec(
    name="lif_triton", inputs=("x", "tau", "v_threshold", "v_reset", "v0"), states=("v",),
    params=("tau", "v_threshold", "v_reset"), outputs=("spikes", "v_last", "h_seq", "v_seq"),
    saved=("h_seq",), saved_bytes=SAVED_BYTES["lif"], moved_bytes=12,
    forward=_fwd, save=_save, backward=_bwd, fake=_fake, fake_backward=_fake_bwd))

aot("lif_triton", "lif_fwd", _lif_fwd, dict(KIND=1, HARD=True, STORE_H=True, STORE_V=True, STRICT=False,
                                                     BLOCK=512),
    x_ptr="io", spk_ptr="io")
aot("lif_triton", "lif_bwd", _lif_bwd, dict(KIND=1, HARD=False, DETACH=False, SG=1, HAS_GS=True, HAS_GVSEQ=True,
                                            HAS_GHSEQ=True, HAS_GVLAST=True, NEED_PARAMS=True, STRICT=False,
                                            BLOCK=512),
    fusion=True, x_ptr="io", gs_ptr="io", gx_ptr="io")


def lif_supports(x_seq: torch.Tensor, params=None, v0=None, return_traces=False, **_) -> Optional[str]:
    """None when the Triton LIF scan can run this case, else the reason."""
    if params is None:
        return "no LIFParams given"
    if getattr(params, "reciprocal_tau", None) is not None:
        return "reciprocal_tau (the charge multiplies by 1/tau) has no Triton scan; the cpu/reference paths run it"
    why = common_reason(x_seq, params.surrogate)
    if why is not None:
        return why
    return lif_param_reason(x_seq, params, v0)


def lif_triton(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused LIF scan, kernel contract: ``state`` is ``(v0,)`` or None (rest); returns
    ``((spikes,), (v_last,), (h_seq, v_seq) or None)``: spikes in ``x_seq.dtype``, v_last
    ``(B, *features)`` fp32, the traces ``(T, B, *features)`` fp32 when ``return_traces``.
    Differentiable in x_seq, v0 and tensor tau/v_threshold/v_reset.

    Example (needs CUDA, or TRITON_INTERPRET=1 set before importing triton)::

        >>> (s,), (v,), _ = lif_triton(x.cuda(), params)      # doctest: +SKIP
    """
    shape = tuple(x_seq.shape[1:])
    dev = x_seq.device
    v0 = lif_v0(state)
    kind = lif_kind(params)
    hard = params.v_reset is not None
    tau = expand_param(params.tau if params.tau is not None else 1.0, shape, dev)
    vth = expand_param(params.v_threshold, shape, dev)
    vr = expand_param(params.v_reset if hard else 0.0, shape, dev)
    if v0 is None:      # at rest: 0 + v_reset, as the reference's resting state (-0.0 -> +0.0)
        v0f = vr.detach() + 0.0
    else:
        v0f = expand_param(v0, shape, dev)
    sur = params.surrogate
    a0, a1 = sur.kernel_params
    T = x_seq.shape[0]
    tensors = [x_seq.reshape(T, -1).contiguous(), tau, vth, vr, v0f]
    need = grad_bits(tensors)
    i = [kind, int(hard), int(bool(params.detach_reset)), int(sur.kernel_id), int(bool(return_traces)),
         IO_DTYPES.index(x_seq.dtype), need, int(getattr(params, "threshold", ">=") == ">")]
    spk, vlast, hseq, vseq = LIF_SCAN.apply(tensors, [float(a0), float(a1)], i)
    if not return_traces:
        hseq = vseq = None
    return lif_outputs(spk, vlast, hseq, vseq, x_seq.shape, return_traces)
