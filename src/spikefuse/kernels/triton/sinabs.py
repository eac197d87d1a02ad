"""Triton fused scan of sinabs' ``LIF`` / ``IAF`` (``sinabs_lif_triton``), through the generic
template (:mod:`.generic`): multi-spike counts (MultiSpike, MaxSpike) or single spikes,
MembraneSubtract / MembraneReset, the ``min_v_mem`` clamp, the synaptic current, ``norm_input``.

The step (kernels/_sinabs_host.py gives the equations and the op encoding) is written in the
reference's operation order (functional/sinabs.py ``_make_step``), so spikes, traces and final
states are bit-identical to it; the VJP sums gradients in autograd's order (nodes run in reverse
creation order: the trace stack, then the next step, then this step), so input and initial-state
gradients are bit-identical too, except through the surrogates with an ``exp`` (SingleExponential,
PeriodicExponential, Gaussian: an ulp of ``exp``). ``a_mem``, ``1 - a_mem`` and ``a_syn`` get
per-neuron gradients (learnable ``tau_mem`` / ``tau_syn`` / alphas), summed by autograd.

Saved for backward: the ``v_mem`` and ``i_syn`` traces (8 bytes per neuron-step; 4 without a
synapse); the step is recomputed from the previous state and the re-read input.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import IO_DTYPES
from .._sinabs_host import SAVED_BYTES, keeps, sinabs_reason, sinabs_run, sinabs_spec
from ..scan import ScanFunction
from .common import aot, device_reason
from .generic import _Family, _empty, _grads_wanted, plus, scan_bwd, scan_fwd
from .peers import sg_times

__all__ = ["SINABS_SCAN", "SAVED_BYTES", "sinabs_lif_supports", "sinabs_lif_triton"]


@triton.jit
def sinabs_charge(x, v, i, am, oma, asyn, SYN: tl.constexpr, NORM: tl.constexpr):
    """(j = i + x, the new synaptic current i', the membrane u before the spike)."""
    j = x
    i2 = x
    if SYN:
        j = i + x
        i2 = asyn * j
    a = am * v
    if NORM:
        u = a + oma * i2
    else:
        u = a + i2
    return j, i2, u


@triton.jit
def sinabs_spike(u, thr, MODE: tl.constexpr, MAXF: tl.constexpr, RECIP: tl.constexpr):
    """SingleSpike ``1[u - thr >= 0]``, MultiSpike ``(u > 0) trunc(u / thr)`` (MaxSpike: at most
    ``MAXF``)."""
    if MODE == 0:
        s = tl.where(u - thr >= 0.0, 1.0, 0.0)
    else:
        if RECIP:
            q = u * tl.math.div_rn(1.0, thr)
        else:
            q = tl.math.div_rn(u, thr)
        s = tl.where(u > 0.0, 1.0, 0.0) * tl.where(q < 0.0, tl.math.ceil(q), tl.math.floor(q))
        if MODE == 2:
            s = tl.minimum(s, MAXF)
    return s


@triton.jit
def sinabs_reset(u, s, c, RESET: tl.constexpr):
    """The membrane after the reset, before the clamp, and the ``1[S == 0]`` mask."""
    m = tl.where(s == 0.0, 1.0, 0.0)
    if RESET == 0:
        v2 = u - s * c
    else:
        v2 = u * m + c
    return v2, m


@triton.jit
def sinabs_scan_step(x, state, params, OPT: tl.constexpr):
    """state (v, i), params (a_mem, 1 - a_mem, a_syn, thr, c, min_v_mem, hw), OPT (MODE, MAXF,
    RESET, SYN, NORM, CLAMP, RECIP); outputs (S, v, i)."""
    j, i2, u = sinabs_charge(x, state[0], state[1], params[0], params[1], params[2], OPT[3], OPT[4])
    s = sinabs_spike(u, params[3], OPT[0], OPT[1], OPT[6])
    v, _ = sinabs_reset(u, s, params[4], OPT[2])
    if OPT[5]:
        v = tl.maximum(v - params[5], 0.0) + params[5]
    return (s, v, i2), (v, i2)


@triton.jit
def sinabs_sg(g, u, thr, hw, scal, SG: tl.constexpr, RECIP: tl.constexpr):
    """``g * surrogate'`` as the reference's spike backward: spikefuse surrogates of ``u - thr``
    (SG 0-4), sinabs' PeriodicExponential (10), Gaussian (11), Heaviside (12) of the membrane."""
    if SG < 10:
        r = sg_times(g, u - thr, SG, scal[0], scal[1])
    elif SG == 10:
        if RECIP:
            vn = u * tl.math.div_rn(1.0, thr) - 0.5
        else:
            vn = tl.math.div_rn(u, thr) - 0.5
        periodic = thr * (2.0 * (vn - tl.math.floor(vn)) - 1.0)
        new = periodic * tl.where(u >= thr, 1.0, 0.0) + (u - thr) * tl.where(u < thr, 1.0, 0.0)
        r = g * (scal[1] * tl.exp(tl.math.div_rn(-tl.abs(new), scal[0])))
    elif SG == 11:
        q = (u - thr) - scal[0]
        dens = tl.math.div_rn(tl.exp(tl.math.div_rn(-(q * q), scal[1])), scal[2])
        r = g * (dens * scal[3])
    else:
        r = g * tl.math.div_rn(tl.where(u >= hw, 1.0, 0.0), thr)
    return r


@triton.jit
def sinabs_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (v, i) traces, cur (x,), gouts (gS, g_v_seq, g_i_seq), carry (gv, gi), state0 (v0,
    i0), OPT (MODE, MAXF, RESET, SYN, NORM, CLAMP, RECIP, SG). Returns (gX, (gv, gi) of step
    t-1, (g_a_mem, g_1-a_mem, g_a_syn))."""
    am, oma, asyn, thr, c, mn = params[0], params[1], params[2], params[3], params[4], params[5]
    v = tl.where(t > 0, lag_prev[0], state0[0])
    i = tl.where(t > 0, lag_prev[1], state0[1])
    j, i2, u = sinabs_charge(cur[0], v, i, am, oma, asyn, OPT[3], OPT[4])
    s = sinabs_spike(u, thr, OPT[0], OPT[1], OPT[6])
    v2, m = sinabs_reset(u, s, c, OPT[2])
    gv = plus(carry[0], gouts[1], has[1])
    if OPT[5]:  # relu's backward: 0 where its result is <= 0
        gv = tl.where(v2 - mn > 0.0, gv, 0.0)
    if OPT[2] == 0:  # subtract: the spike gets the reset's gradient (after the spike stack's)
        gu = gv
        gs = plus((-gv) * c, gouts[0], has[0])
        gu = gu + sinabs_sg(gs, u, thr, params[6], scal, OPT[7], OPT[6])
    else:
        gu = gv * m
        if has[0]:
            gu = gu + sinabs_sg(gouts[0], u, thr, params[6], scal, OPT[7], OPT[6])
    gvp = gu * am
    g_am = gu * v
    g_oma = 0.0 * gu
    gb = gu
    if OPT[4]:
        gb = gu * oma
        g_oma = gu * i2
    g_as = 0.0 * gu
    gi = 0.0 * gu
    gx = gb
    if OPT[3]:  # i' gets the trace's and the next step's gradients first, then this step's
        gi2 = plus(carry[1], gouts[2], has[2]) + gb
        gx = gi2 * asyn
        g_as = gi2 * j
        gi = gx
    return gx, (gvp, gi), (g_am, g_oma, g_as)


_SINABS = _Family(sinabs_scan_step, sinabs_scan_vjp, (1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
                  (1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0), bwd_fusion=False)


def _opts(i) -> tuple:
    mode, maxn, reset, syn, norm, clamp, recip = i[:7]
    return (mode, float(maxn), reset, bool(syn), bool(norm), bool(clamp), bool(recip))


def _fwd(tensors, f, i):
    x, am, oma, asyn, thr, c, mn, hw, v0, i0 = tensors
    T, M = x.shape
    kv, ki = keeps(i)
    s, vlast = torch.empty_like(x), _empty(M, like=x)
    ilast = _empty(M, like=x) if i[3] else None
    vseq = _empty((T, M), like=x) if kv else None
    iseq = _empty((T, M), like=x) if ki else None
    _SINABS.fwd(x, (s, vseq, iseq), (v0, i0), (vlast, ilast), (am, oma, asyn, thr, c, mn, hw), _opts(i))
    return [s, vlast, ilast, vseq, iseq]


def _bwd(saved, grads, f, i, needs):
    vseq, iseq, x, am, oma, asyn, thr, c, mn, hw, v0, i0 = saved
    g_s, g_vlast, g_ilast, g_vseq, g_iseq = grads
    T, M = vseq.shape
    gx, gv0 = _empty((T, M), IO_DTYPES[i[9]], like=vseq), _empty(M, like=vseq)
    gi0 = _empty(M, like=vseq) if i[3] else None
    gp = _grads_wanted(needs[1:4], M, vseq)
    _SINABS.bwd(gx, ((vseq, iseq), (x,)), (g_s, g_vseq, g_iseq), (g_vlast, g_ilast), (v0, i0),
                (am, oma, asyn, thr, c, mn, hw), tuple(f), (gv0, gi0), gp, (*_opts(i), i[7]))
    return [gx if needs[0] else None, *gp, None, None, None, None, gv0 if needs[8] else None,
            gi0 if needs[9] else None]


SINABS_SCAN = ScanFunction(sinabs_spec("sinabs_lif_triton", _fwd, _bwd))

#: the sm_90 AOT cases (tests/kernels/test_kernels_compile.py): multi-spike, subtract, synapse,
#: norm_input, clamp, ATan; bf16 I/O, every pointer present
_P, _IO, _OPT = "*fp32", "*bf16", (1, 2.0, 0, True, True, True, False)
aot("sinabs_lif_triton", "sinabs_lif_fwd", scan_fwd, dict(STEP=_SINABS.step, INIT=None, OPT=_OPT,
                                                          P_OTHER=_SINABS.fwd_other, BLOCK=512),
    x_ptr="io", out_ptrs=(_IO, _P, _P), state0_ptrs=(_P, _P), last_ptrs=(_P, _P), param_ptrs=(_P,) * 7)
aot("sinabs_lif_triton", "sinabs_lif_bwd", scan_bwd, dict(VJP=_SINABS.vjp, OPT=(*_OPT, 0), P_OTHER=_SINABS.bwd_other,
                                                          BLOCK=512),
    lag_ptrs=(_P, _P), cur_ptrs=(_IO,), gout_ptrs=(_IO, _P, _P), glast_ptrs=(_P, _P), state0_ptrs=(_P, _P),
    param_ptrs=(_P,) * 7, scal=("fp32",) * 4, gx_ptr="io", gstate0_ptrs=(_P, _P), gparam_ptrs=(_P,) * 3)


def sinabs_lif_triton(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused sinabs LIF / IAF scan, kernel contract: ``params`` a SinabsParams with its surrogate
    resolved, ``state`` ``(v0, i0 or None)`` or None (zeros); returns ``((spikes,), (v_last,
    i_last or None), (v_seq, i_seq or None) or None)``. Differentiable in ``x_seq``, the state and
    tensor ``alpha_mem`` / ``alpha_syn``."""
    return sinabs_run(SINABS_SCAN, x_seq, params, state, return_traces)


def sinabs_lif_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton sinabs scan can run this case, else the reason."""
    return device_reason(x_seq) or sinabs_reason(x_seq, params, state)
