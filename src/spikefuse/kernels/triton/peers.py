"""Triton fused scans of the peer families, through the generic template (:mod:`.generic`):
snnTorch ``Leaky`` (``snntorch.leaky``), snnTorch ``Synaptic`` (``snntorch.synaptic``) and
norse's feed-forward LIF (``norse.lif``).

Each family is a step / VJP pair of ``@triton.jit`` functions written in the reference's
operation order (functional/snntorch.py ``_leaky`` / ``_synaptic``, functional/norse.py
``_lif_update``; the VJPs sum gradients in autograd's order), run by the template's
``scan_fwd`` / ``scan_bwd``, and one :class:`~spikefuse.kernels.scan.ScanSpec` each, registered
through ScanFunction as ``snntorch_leaky_triton`` / ``snntorch_synaptic_triton`` /
``norse_lif_triton``.

snnTorch ``Leaky`` (state ``mem``, the membrane *before* this step's delayed reset; ``b`` the
clamped beta; ``R`` detached)::

    R = 1[mem - thr > 0]
    subtract  n = (b mem + x) - R thr      zero  n = b ((1 - R) mem) + x      none  n = b mem + x
    S = 1[n - thr > 0] gsf
    reset_delay=False:  D = S / gsf - R;   subtract n = n - D thr;   zero n = n - D n

Saved for backward: the ``mem`` trace (4 bytes per neuron-step; with ``reset_delay=False`` the
pre-reset ``n`` is recomputed from ``mem[t-1]`` and the input). Parameter gradients: beta
(autograd maps it through the clamp) and threshold; a ``graded_spikes_factor`` that requires
grad is refused.

snnTorch ``Synaptic`` (state ``(syn, mem)``; ``a``, ``b`` the clamped alpha, beta; spikes 0/1)::

    R = 1[mem - thr > 0];  syn' = a syn + x;  m = b mem + syn'
    subtract  n = m - R thr      zero  n = m - m R  (the whole new membrane)      none  n = m
    S = 1[n - thr > 0];  reset_delay=False: D = S - R, then n - D thr / n - D n as Leaky

Saved: the ``syn`` and ``mem`` traces (8 bytes per neuron-step); ``m`` is recomputed from
``syn'[t]`` and ``mem[t-1]``, the input is not re-read. Autograd reaches the previous ``syn`` /
``mem`` through ``a syn`` / ``b mem`` and (zero) through the reset's second evaluation of the
membrane; the VJP carries the two terms apart and adds them as autograd does.

norse LIF (state ``(v, i)``; ``a_m = dt tau_mem_inv``, ``a_sn = -dt tau_syn_inv`` computed by
the caller with torch's arithmetic, so autograd maps their gradients to the inverse time
constants)::

    j = i + x;  vd = v + a_m ((v_leak - v) + j);  i' = j + a_sn j
    z = 1[vd - v_th > 0];  v' = (1 - z) vd + z v_reset        (the reset is not detached)

Saved: the ``v`` and ``i`` traces (8 bytes per neuron-step); the input is re-read. Surrogates:
every norse method: ``super`` (SuperSpike, ``g / (alpha |u| + 1)^2``), ``triangle``,
``heaviside`` (no gradient), and ``tanh`` / ``circ`` / ``heavi_erfc`` (:func:`norse_sg`, in
norse's operation order; tanh and ``pow(r, 1.5)`` built from exp / sqrt, so those gradients
agree with the reference to ~1e-6, not bit for bit). ``alpha`` shared or per neuron: the
surrogate's constants ``c0``, ``c1`` are per-neuron parameter rows without a gradient (as in
the refractory and AdEx kernels, kernels/triton/norse.py).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import (IO_DTYPES, leaky_reason, leaky_run, leaky_spec, norse_reason, norse_run, norse_spec,
                       synaptic_reason, synaptic_run, synaptic_spec)
from ..scan import ScanFunction
from .common import aot, common_reason, device_reason
from .generic import _Family, _empty, _grads_wanted, plus, scan_bwd, scan_fwd

#: bytes saved for backward per neuron-step, by kernel key
SAVED_BYTES = {"snntorch_leaky": 4, "snntorch_synaptic": 8, "norse_lif": 8}


@triton.jit
def sg_times(g, d, SG: tl.constexpr, c0, c1):
    """``g * surrogate'(d)`` as SpikeFn's backward computes it (kernels/_common.sg_consts gives
    ``c0, c1``; SuperSpike divides, ``1 / (1 + z^2)`` is torch's ``scalar / tensor``)."""
    if SG == 0:
        z = d * c0
        r = g * (tl.math.div_rn(1.0, 1.0 + z * z) * c1)
    elif SG == 1:
        s = tl.math.div_rn(1.0, 1.0 + tl.exp(-(d * c0)))
        r = g * ((c0 * s) * (1.0 - s))
    elif SG == 2:
        q = c0 * tl.abs(d) + 1.0
        r = tl.math.div_rn(g, q * q)
    elif SG == 3:
        r = g * (c1 * tl.exp(tl.math.div_rn(-tl.abs(d), c0)))
    elif SG == 4:
        r = g * (c1 * tl.maximum(1.0 - tl.math.div_rn(tl.abs(d), c0), 0.0))
    else:
        r = g * norse_sg(d, SG, c0, c1)
    return r


@triton.jit
def norse_sg(d, SG: tl.constexpr, c0, c1):
    """norse's HeaviTanh (5), HeaviCirc (6, ``c1 = alpha ** 2``) and HeaviErfc (7, ``c1 =
    sqrt(pi)``) derivatives in norse's operation order (``c0 = alpha``). Triton (and its
    interpreter) has no tanh / pow: ``tanh(y) = sign(y) (1 - e) / (1 + e)``, ``e = exp(-2|y|)``
    and ``r^1.5 = r sqrt(r)``, an ulp or so from torch's: these gradients agree to ~1e-6."""
    if SG == 5:
        y = d * c0
        e = tl.exp(-2.0 * tl.abs(y))
        t = tl.math.div_rn(1.0 - e, 1.0 + e)
        t = tl.where(y < 0.0, -t, t)
        r = 1.0 - t * t
    elif SG == 6:
        r2 = c1 + d * d
        sq = tl.sqrt_rn(r2)
        a = tl.math.div_rn(d * d, 2.0 * (r2 * sq))
        b = tl.math.div_rn(1.0, 2.0 * sq)
        r = ((-a + b) * 2.0) * c0
    else:
        y = c0 * d
        r = tl.math.div_rn(2.0 * tl.exp(-(y * y)), c1)
    return r


# --------------------------------------------------------------------------- snnTorch Leaky


@triton.jit
def leaky_charge(x, m, b, thr, MECH: tl.constexpr):
    """The new membrane before this step's spike, and the detached delayed reset ``R``."""
    r = tl.where(m - thr > 0.0, 1.0, 0.0)
    if MECH == 0:
        n = (b * m + x) - r * thr
    elif MECH == 1:
        n = b * ((1.0 - r) * m) + x
    else:
        n = b * m + x
    return n, r


@triton.jit
def leaky_scan_step(x, state, params, OPT: tl.constexpr):
    """state (mem,), params (b, thr, gsf), OPT (MECH, DELAY); outputs (S, mem)."""
    b, thr, gsf = params[0], params[1], params[2]
    n, r = leaky_charge(x, state[0], b, thr, OPT[0])
    spk = tl.where(n - thr > 0.0, 1.0, 0.0) * gsf
    if not OPT[1]:
        d = tl.math.div_rn(spk, gsf) - r
        if OPT[0] == 0:
            n = n - d * thr
        elif OPT[0] == 1:
            n = n - d * n
    return (spk, n), (n,)


@triton.jit
def leaky_late_vjp(gn2, gspk, n, r, thr, gsf, MECH: tl.constexpr):
    """Backward of ``reset_delay=False``'s late reset: (gN without the spike term, gS total,
    threshold term)."""
    spk = tl.where(n - thr > 0.0, 1.0, 0.0) * gsf
    d = tl.math.div_rn(spk, gsf) - r
    gthr = 0.0 * gn2
    if MECH == 0:
        gd = (-gn2) * thr
        gthr = (-gn2) * d
        gna = gn2
    elif MECH == 1:
        gd = (-gn2) * n
        gna = gn2 + (-gn2) * d
    else:
        gd = 0.0 * gn2
        gna = gn2
    if MECH != 2:
        gspk = gspk + tl.math.div_rn(gd, gsf)
    return gna, gspk, gthr


@triton.jit
def leaky_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (mem,), cur (x,) (reset_delay=False only), gouts (gS, g_mem_seq), carry (g_mem,),
    state0 (mem0,), scal (c0, c1), OPT (MECH, DELAY, SG). Returns (gX, (g_mem[t-1],),
    (g_b, g_thr))."""
    b, thr, gsf = params[0], params[1], params[2]
    m = tl.where(t > 0, lag_prev[0], state0[0])
    r = tl.where(m - thr > 0.0, 1.0, 0.0)
    gn = plus(carry[0], gouts[1], has[1])
    gspk = gouts[0]
    if OPT[1]:
        n = lag[0]
        gthr = 0.0 * gn
    else:
        n, _ = leaky_charge(cur[0], m, b, thr, OPT[0])
        gn, gspk, gthr = leaky_late_vjp(gn, gspk, n, r, thr, gsf, OPT[0])
    gu = sg_times(gspk * gsf, n - thr, OPT[2], scal[0], scal[1])
    gn = gn + gu
    if OPT[0] == 1:
        q = (1.0 - r) * m
        gm = (gn * b) * (1.0 - r)
        gb = gn * q
        gthr = gthr + (-gu)
    else:
        gm = gn * b
        gb = gn * m
        if OPT[0] == 0:
            gthr = gthr + (-gn) * r + (-gu)
        else:
            gthr = gthr + (-gu)
    return gn, (gm,), (gb, gthr)


#: pointer-tuple types of the ahead-of-time compile cases (bf16 I/O, everything present)
_P, _IO = "*fp32", "*bf16"


def _aot(spec: str, prefix: str, fam: _Family, opts, counts) -> None:
    """The sm_90 AOT cases of a peer spec (tests/kernels/test_kernels_compile.py compiles them):
    ``opts`` the forward and backward OPT tuples, ``counts`` the numbers of outputs, states,
    parameters, carried gradients and parameter gradients."""
    n_out, n_state, n_param, n_carry, n_gparam = counts
    aot(spec, f"{prefix}_fwd", scan_fwd, dict(STEP=fam.step, INIT=None, OPT=opts[0], P_OTHER=fam.fwd_other,
                                              BLOCK=512),
        x_ptr="io", out_ptrs=(_IO,) + (_P,) * (n_out - 1), state0_ptrs=(_P,) * n_state, last_ptrs=(_P,) * n_state,
        param_ptrs=(_P,) * n_param)
    aot(spec, f"{prefix}_bwd", scan_bwd, dict(VJP=fam.vjp, OPT=opts[1], P_OTHER=fam.bwd_other, BLOCK=512),
        fusion=fam.bwd_fusion, lag_ptrs=(_P,) * n_state, cur_ptrs=(_IO,), gout_ptrs=(_IO,) + (_P,) * (n_out - 1),
        glast_ptrs=(_P,) * n_carry, state0_ptrs=(_P,) * n_state, param_ptrs=(_P,) * n_param,
        scal=("fp32", "fp32"), gx_ptr="io", gstate0_ptrs=(_P,) * n_carry, gparam_ptrs=(_P,) * n_gparam)


_LEAKY = _Family(leaky_scan_step, leaky_scan_vjp, (0.0, 1.0, 1.0), (0.0, 1.0, 1.0), bwd_fusion=False)


def _leaky_fwd(tensors, f, i):
    x, b, thr, gsf, m0 = tensors
    mech, delay, sg, traces, dti, need = i
    T, M = x.shape
    spk, mlast = torch.empty_like(x), _empty(M, like=x)
    mseq = _empty((T, M), like=x) if (traces or need) else None
    _LEAKY.fwd(x, (spk, mseq), (m0,), (mlast,), (b, thr, gsf), (mech, bool(delay)))
    return [spk, mlast, mseq]


def _leaky_bwd(saved, grads, f, i, needs):
    mseq, x, b, thr, gsf, m0 = saved
    g_spk, g_mlast, g_mseq = grads
    mech, delay, sg, _, dti, _ = i
    T, M = mseq.shape
    gx, gm0 = _empty((T, M), IO_DTYPES[dti], like=mseq), _empty(M, like=mseq)
    gp = _grads_wanted(needs[1:3], M, mseq)
    _LEAKY.bwd(gx, ((mseq,), (x,)), (g_spk, g_mseq), (g_mlast,), (m0,), (b, thr, gsf), (f[0], f[1]),
               (gm0,), gp, (mech, bool(delay), sg))
    return [gx if needs[0] else None, *gp, None, gm0 if needs[4] else None]


LEAKY_SCAN = ScanFunction(leaky_spec("snntorch_leaky_triton", _leaky_fwd, _leaky_bwd))
_aot("snntorch_leaky_triton", "leaky", _LEAKY, ((0, False), (0, False, 0)), (2, 1, 3, 1, 2))


def snntorch_leaky_triton(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused snnTorch ``Leaky`` scan, kernel contract: ``state`` is ``(mem0,)`` or None (zeros);
    returns ``((spikes,), (mem_last,), (mem_seq,) or None)``. Differentiable in ``x_seq``,
    ``mem0`` and tensor ``beta`` / ``threshold``.

        >>> (s,), (m,), _ = snntorch_leaky_triton(x.cuda(), LeakyParams(beta=0.9))   # doctest: +SKIP
    """
    return leaky_run(LEAKY_SCAN, x_seq, params, state, return_traces)


def snntorch_leaky_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton Leaky scan can run this case, else the reason."""
    if params is None:
        return "no LeakyParams given"
    return common_reason(x_seq, params.surrogate) or leaky_reason(x_seq, params, state)


# --------------------------------------------------------------------------- snnTorch Synaptic


@triton.jit
def synaptic_charge(sn, m, b, thr, MECH: tl.constexpr):
    """The new membrane before this step's spike from ``syn'`` and the previous membrane, and
    the detached delayed reset ``R`` ("zero" subtracts the whole new membrane: ``n - n R``)."""
    r = tl.where(m - thr > 0.0, 1.0, 0.0)
    n = b * m + sn
    if MECH == 0:
        n = n - r * thr
    elif MECH == 1:
        n = n - n * r
    return n, r


@triton.jit
def synaptic_scan_step(x, state, params, OPT: tl.constexpr):
    """state (syn, mem), params (a, b, thr), OPT (MECH, DELAY); outputs (S, syn, mem)."""
    a, b, thr = params[0], params[1], params[2]
    sn = a * state[0] + x
    n, r = synaptic_charge(sn, state[1], b, thr, OPT[0])
    spk = tl.where(n - thr > 0.0, 1.0, 0.0)
    if not OPT[1]:
        d = spk - r
        if OPT[0] == 0:
            n = n - d * thr
        elif OPT[0] == 1:
            n = n - d * n
    return (spk, sn, n), (sn, n)


@triton.jit
def synaptic_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (syn, mem) traces, gouts (gS, g_syn_seq, g_mem_seq), carry (sa, ma, sb, mb): the
    gradients of the previous syn / mem from this step's uses, kept apart and summed in
    autograd's order ``(second + trace) + first`` (``first`` the ``a syn`` / ``b mem`` terms,
    ``second`` the zero reset's re-evaluation of the membrane, else 0), state0 (syn0, mem0),
    OPT (MECH, DELAY, SG). Returns (gX, carry of step t-1, (g_a, g_b, g_thr))."""
    a, b, thr = params[0], params[1], params[2]
    sp = tl.where(t > 0, lag_prev[0], state0[0])
    mp = tl.where(t > 0, lag_prev[1], state0[1])
    n, r = synaptic_charge(lag[0], mp, b, thr, OPT[0])
    gn = plus(carry[1], gouts[2], has[2]) + carry[3]
    gsn = plus(carry[0], gouts[1], has[1]) + carry[2]
    gspk = gouts[0]
    gthr = 0.0 * gn
    if not OPT[1]:
        gn, gspk, gthr = leaky_late_vjp(gn, gspk, n, r, thr, 1.0, OPT[0])
    gu = sg_times(gspk * 1.0, n - thr, OPT[2], scal[0], scal[1])
    gn = gn + gu
    gthr = gthr + (-gu)
    gsn = gsn + gn
    if OPT[0] == 1:
        gm2 = (-gn) * r
        gx = gsn + gm2
        nxt = (gm2 * a, gm2 * b, gsn * a, gn * b)
        ga = gsn * sp + gm2 * sp
        gb = gn * mp + gm2 * mp
    else:
        if OPT[0] == 0:
            gthr = gthr + (-gn) * r
        gx = gsn
        nxt = (gsn * a, gn * b, tl.zeros_like(gn), tl.zeros_like(gn))
        ga = gsn * sp
        gb = gn * mp
    return gx, nxt, (ga, gb, gthr)


_SYNAPTIC = _Family(synaptic_scan_step, synaptic_scan_vjp, (0.0, 0.0, 1.0), (0.0, 0.0, 1.0), bwd_fusion=False)


def _synaptic_fwd(tensors, f, i):
    x, al, be, thr, s0, m0 = tensors
    mech, delay, sg, traces, dti, need = i
    T, M = x.shape
    keep = bool(traces or need)
    spk, slast, mlast = torch.empty_like(x), _empty(M, like=x), _empty(M, like=x)
    sseq, mseq = (_empty((T, M), like=x), _empty((T, M), like=x)) if keep else (None, None)
    _SYNAPTIC.fwd(x, (spk, sseq, mseq), (s0, m0), (slast, mlast), (al, be, thr), (mech, bool(delay)))
    return [spk, slast, mlast, sseq, mseq]


def _synaptic_bwd(saved, grads, f, i, needs):
    sseq, mseq, al, be, thr, s0, m0 = saved
    g_spk, g_slast, g_mlast, g_sseq, g_mseq = grads
    mech, delay, sg, _, dti, _ = i
    T, M = sseq.shape
    gx = _empty((T, M), IO_DTYPES[dti], like=sseq)
    g0 = tuple(_empty(M, like=sseq) for _ in range(4))
    gp = _grads_wanted(needs[1:4], M, sseq)
    _SYNAPTIC.bwd(gx, ((sseq, mseq), (None,)), (g_spk, g_sseq, g_mseq), (g_slast, g_mlast, None, None), (s0, m0),
                  (al, be, thr), (f[0], f[1]), g0, gp, (mech, bool(delay), sg))
    gs0, gm0 = g0[0] + g0[2], g0[1] + g0[3]  # each state's two uses in step 0, summed as autograd sums them
    return [gx if needs[0] else None, *gp, gs0 if needs[4] else None, gm0 if needs[5] else None]


SYNAPTIC_SCAN = ScanFunction(synaptic_spec("snntorch_synaptic_triton", _synaptic_fwd, _synaptic_bwd))
_aot("snntorch_synaptic_triton", "synaptic", _SYNAPTIC, ((1, False), (1, False, 0)), (3, 2, 3, 4, 3))


def snntorch_synaptic_triton(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused snnTorch ``Synaptic`` scan, kernel contract: ``state`` is ``(syn0, mem0)`` or None
    (zeros); returns ``((spikes,), (syn_last, mem_last), (syn_seq, mem_seq) or None)``.
    Differentiable in ``x_seq``, the state and tensor ``alpha`` / ``beta`` / ``threshold``."""
    return synaptic_run(SYNAPTIC_SCAN, x_seq, params, state, return_traces)


def snntorch_synaptic_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton Synaptic scan can run this case, else the reason."""
    if params is None:
        return "no SynapticParams given"
    return common_reason(x_seq, params.surrogate) or synaptic_reason(x_seq, params, state)


# --------------------------------------------------------------------------- norse LIF


@triton.jit
def norse_charge(x, v, i, a_m, a_sn, vl):
    """(jumped current j, the leak term w, decayed voltage vd, decayed current)."""
    j = i + x
    w = (vl - v) + j
    vd = v + a_m * w
    return j, w, vd, j + a_sn * j


@triton.jit
def norse_scan_step(x, state, params, OPT: tl.constexpr):
    """state (v, i), params (a_m, a_sn, v_leak, v_th, v_reset, c0, c1); outputs (z, v, i)."""
    j, w, vd, i_new = norse_charge(x, state[0], state[1], params[0], params[1], params[2])
    z = tl.where(vd - params[3] > 0.0, 1.0, 0.0)
    v_new = (1.0 - z) * vd + z * params[4]
    return (z, v_new, i_new), (v_new, i_new)


@triton.jit
def norse_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (v, i) traces, cur (x,), gouts (gz, g_v_seq, g_i_seq), carry (gv_a, gv_b, gi): the
    next step's two gradients of ``v`` kept apart (autograd adds the trace's first, then these
    in its order: ``(g_trace + gv_a) + gv_b``), state0 (v0, i0), params (a_m, a_sn, v_leak,
    v_th, v_reset, c0, c1: the surrogate's constants per neuron), OPT (SG,). Returns (gX,
    (gv_a, gv_b, gi) of step t-1, (g_am, g_asn, g_vl, g_vth, g_vr))."""
    a_m, a_sn, vl, vth, vr = params[0], params[1], params[2], params[3], params[4]
    v = tl.where(t > 0, lag_prev[0], state0[0])
    i = tl.where(t > 0, lag_prev[1], state0[1])
    j, w, vd, _ = norse_charge(cur[0], v, i, a_m, a_sn, vl)
    u = vd - vth
    z = tl.where(u > 0.0, 1.0, 0.0)
    gvn = plus(carry[0], gouts[1], has[1]) + carry[1]
    gid = plus(carry[2], gouts[2], has[2])
    gvd = gvn * (1.0 - z)
    g_vth = 0.0 * gvd
    if OPT[0] != -1:  # the spike carries a gradient (autograd: z*v_reset, then 1 - z)
        gz = gvn * vr
        if has[0]:
            gz = gouts[0] + gz
        gz = gz + (-(gvn * vd))
        gu = sg_times(gz, u, OPT[0], params[5], params[6])
        gvd = gvd + gu
        g_vth = -gu
    gw = gvd * a_m
    gj = (gid + gid * a_sn) + gw
    return gj, (gvd, -gw, gj), (gvd * w, gid * j, gw, g_vth, gvn * z)


#: masked-lane parameter values (a_m, a_sn, v_leak, v_th, v_reset, c0, c1)
_NORSE_OTHER = (0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0)
_NORSE = _Family(norse_scan_step, norse_scan_vjp, _NORSE_OTHER, _NORSE_OTHER, bwd_fusion=False)


def _norse_fwd(tensors, f, i):
    x, a_m, a_sn, vl, vth, vr, c0, c1, v0, i0 = tensors
    sg, traces, dti, need = i
    T, M = x.shape
    keep = bool(traces or need)
    z, vlast, ilast = torch.empty_like(x), _empty(M, like=x), _empty(M, like=x)
    vseq, iseq = (_empty((T, M), like=x), _empty((T, M), like=x)) if keep else (None, None)
    _NORSE.fwd(x, (z, vseq, iseq), (v0, i0), (vlast, ilast), (a_m, a_sn, vl, vth, vr, c0, c1), (sg,))
    return [z, vlast, ilast, vseq, iseq]


def _norse_bwd(saved, grads, f, i, needs):
    vseq, iseq, x, a_m, a_sn, vl, vth, vr, c0, c1, v0, i0 = saved
    g_z, g_vlast, g_ilast, g_vseq, g_iseq = grads
    sg, _, dti, _ = i
    T, M = vseq.shape
    gx = _empty((T, M), IO_DTYPES[dti], like=vseq)
    gv0a, gv0b, gi0 = (_empty(M, like=vseq) for _ in range(3))
    gp = _grads_wanted(needs[1:6], M, vseq)
    _NORSE.bwd(gx, ((vseq, iseq), (x,)), (g_z, g_vseq, g_iseq), (g_vlast, None, g_ilast), (v0, i0),
               (a_m, a_sn, vl, vth, vr, c0, c1), (0.0, 0.0), (gv0a, gv0b, gi0), gp, (sg,))
    gv0 = gv0a + gv0b  # v0's two uses in step 0, summed as autograd sums them
    # c0, c1 (the surrogate's rows from alpha) have no gradient
    return [gx if needs[0] else None, *gp, None, None, gv0 if needs[8] else None, gi0 if needs[9] else None]


NORSE_LIF_SCAN = ScanFunction(norse_spec("norse_lif_triton", _norse_fwd, _norse_bwd))
_aot("norse_lif_triton", "norse_lif", _NORSE, ((2,), (2,)), (3, 2, 7, 3, 5))

def norse_lif_triton(x_seq: torch.Tensor, params, state, return_traces: bool = False, *, dt: float):
    """Fused norse feed-forward LIF, kernel contract: ``params`` norse's LIFParameters (numbers
    or tensors), ``state`` ``(v0, i0)`` (norse's resting state when the caller built it);
    returns ``((z,), (v, i), (v_seq, i_seq) or None)``. Differentiable in ``x_seq``, the state
    and tensor ``tau_syn_inv`` / ``tau_mem_inv`` / ``v_leak`` / ``v_th`` / ``v_reset``."""
    return norse_run(NORSE_LIF_SCAN, x_seq, params, state, return_traces, dt)


def norse_lif_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton norse LIF scan can run this case, else the reason."""
    return device_reason(x_seq) or norse_reason(x_seq, params, state)


__all__ = ["LEAKY_SCAN", "NORSE_LIF_SCAN", "SAVED_BYTES", "SYNAPTIC_SCAN", "norse_lif_supports", "norse_lif_triton",
           "snntorch_leaky_supports", "snntorch_leaky_triton", "snntorch_synaptic_supports",
           "snntorch_synaptic_triton"]
