"""Numba sigma-delta scans (SPEC.md 10, lava-dl ``sigma_delta.Neuron``), loaded through
:mod:`.jit`: the step and reverse step of :mod:`spikefuse.kernels.triton.sigma_delta`, per
neuron, in the same operations (running sum in float64, the rest float32, IEEE division by the
quantisation step), so the forward is bit-identical to the reference loop.

Arrays are C-contiguous ``(T, M)`` / ``(M,)`` (absent ones: a 1-element dummy, never read: its
flag is off). Each variant is a closure with its flags as compile-time constants (see
``_nb_lif``); a kernel runs neurons ``[j0, j1)`` tile by tile, the time loop inside a tile, so a
neuron's state stays in L1.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ._nb_kernel import kernel, stable_uuids
from ._nb_vml import AVAILABLE as VML
from ._nb_vml import exp_row

#: neurons per tile of the forward (the time loop runs inside a tile: longer contiguous runs per
#: step and array for the prefetcher). Interleaved A/B (thread CPU time, 1 thread, (500,16,1024),
#: loaded machine): fwd 15.7 / 14.4 / 13.4 ms at 512 / 2048 / 8192 (min of 9, with the upfront
#: input scan), 10.5 / 10.1 / 9.9 at 2048 / 4096 / 8192 (min of 21, rotated order, without it)
TILE = 8192
#: neurons per tile of the backward: f+b with the 8192 forward 17.5 / 15.6 / 15.6 ms at 512 /
#: 2048 / 8192 (min of 15; (100,32,1024): 6.65 / 6.59 at 512 / 2048)
BWD_TILE = 2048
#: alignment of the threads' neuron ranges (:func:`.jit.run`): no result depends on where a range
#: starts, so ranges need not be whole tiles
SPLIT = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)


@njit(cache=True, inline="always")
def threshold_arg(d, th, tau_grad):
    """The exp argument of SPEC 10.3's relaxation as the reference computes it in float32:
    ``-|(|d| - th)| / tau_grad``."""
    return -abs(abs(d) - th) / tau_grad


@njit(cache=True, inline="always")
def threshold_grad(d, th, gy, e, scale_grad):
    """SPEC 10.3 per-element threshold gradient (the Triton kernel's ``delta_threshold_grad``),
    from ``e``, the exp of :func:`threshold_arg`: ``relax = scale_grad e``."""
    sub = abs(d) - th
    relax = scale_grad * e
    sgn = F1 if d > F0 else (-F1 if d < F0 else F0)
    return (-d * relax / th if sub > F0 else -sgn) * gy


@functools.lru_cache(maxsize=None)
def make_fwd(relu: int, has_bias: int, cum: int, traces: int, store_d: int, store_keep: int, tile: int = TILE):
    TILE = tile    # a closure constant (benchmarks compare tiles in one process)

    @kernel
    def sd_fwd(x, th, bias, acc0, pre0, res0, err0, step_f, Y, SIG, A, D, KEEP, accl, prel, resl, errl,
               j0, j1):
        T = x.shape[0]
        for a0 in range(j0, j1, TILE):
            b0 = min(j1, a0 + TILE)
            n = b0 - a0
            acc = acc0[a0:b0].copy()
            pre = pre0[a0:b0].copy()
            res = res0[a0:b0].copy()
            err = err0[a0:b0].copy()
            tht = th[a0:b0]
            bs = bias[a0:b0] if has_bias else bias[0:1]
            for t in range(T):
                xt, yt = x[t, a0:b0], Y[t, a0:b0]
                st = SIG[t, a0:b0] if traces else SIG[0, 0:1]
                at = A[t, a0:b0] if traces else A[0, 0:1]
                dt = D[t, a0:b0] if store_d else D[0, 0:1]
                kt = KEEP[t, a0:b0] if store_keep else KEEP[0, 0:1]
                for j in range(n):
                    ac = acc[j] + np.float64(xt[j])
                    acc[j] = ac
                    sig = np.float32(ac)
                    z = sig + bs[j] if has_bias else sig
                    av = (F0 if z < F0 else z) if relu else z      # NaN stays NaN, as torch.relu
                    d = (av - pre[j]) + res[j]
                    if cum:
                        e = err[j] + d
                        y = d if abs(e) >= tht[j] else d * F0
                        err[j] = F0 if abs(y) > F0 else e
                    else:
                        y = d if abs(d) >= tht[j] else d * F0
                    res[j] = d - y
                    pre[j] = av
                    yt[j] = np.floor(y / step_f) * step_f          # IEEE float32 division
                    if traces:
                        st[j] = sig
                        at[j] = av
                    if store_d:
                        dt[j] = d
                    if store_keep:                                  # relu passes where not (a <= 0)
                        kt[j] = 0 if av <= F0 else 1
            accl[a0:b0] = acc
            prel[a0:b0] = pre
            resl[a0:b0] = res
            errl[a0:b0] = err

    return sd_fwd


@functools.lru_cache(maxsize=None)
def make_bwd(relu: int, has_gy: int, has_gsig: int, has_ga: int, need_th: int, need_b: int,
             tile: int = BWD_TILE):
    """Reverse scan (the Triton ``_sd_bwd``): ``g_a = g_y[t] - g_y[t+1]`` (+ traces, + final
    ``pre`` at T-1), the ReLU mask, the float64 reverse cumulative sum ``r`` (gx = float32(r)),
    ``g_acc0 = r``, ``g_pre0 = -g_y[0]``. The threshold and bias gradients' per-step terms
    (``need_th``, ``need_b``) go to ``(T, M)`` buffers ``GTH`` / ``GB`` (row ``t``: step ``t``'s
    terms), which the host reduces with torch as the reference's autograd does (bit-identical;
    see :mod:`.sigma_delta`); neither flag: nothing written.
    ``gy_t``, ``gsig_t``, ``ga_t``: each upstream gradient's row step (0: one row broadcast over
    time, see ``loihi.grad_rows``). ``has_gaccl``, ``has_gprel`` (the final state's gradients,
    read at the last step only) are run-time flags: fewer compiled variants. The threshold
    gradient's exps are torch.exp's: per step and tile row their float32 arguments into a
    buffer, one :func:`._nb_vml.exp_row`, then the lane loop reads them."""
    vml = VML      # a closure constant: cached variants differ with and without VML
    TILE = tile    # a closure constant too

    @kernel
    def sd_bwd(gy, gsig, ga_in, gy_t, gsig_t, ga_t, gaccl, gprel, has_gaccl, has_gprel, KEEP, D, th, tau_grad,
               scale_grad, GX, GTH, GB, gacc0, gpre0, j0, j1):
        T = GX.shape[0]
        for a0 in range(j0, j1, TILE):
            b0 = min(j1, a0 + TILE)
            n = b0 - a0
            r = np.zeros(n, np.float64)
            gnext = np.zeros(n, np.float32)
            tht = th[a0:b0] if need_th else th[0:1]
            ex = np.empty(n if need_th else 1, np.float32)    # the step's relaxation exps
            for t in range(T - 1, -1, -1):
                last = t == T - 1
                gyt = gy[t * gy_t, a0:b0] if has_gy else gy[0, 0:1]
                gst = gsig[t * gsig_t, a0:b0] if has_gsig else gsig[0, 0:1]
                gat = ga_in[t * ga_t, a0:b0] if has_ga else ga_in[0, 0:1]
                kt = KEEP[t, a0:b0] if relu else KEEP[0, 0:1]
                dt = D[t, a0:b0] if need_th else D[0, 0:1]
                gxt = GX[t, a0:b0]
                gtht = GTH[t, a0:b0] if need_th else GTH[0, 0:1]
                gbt = GB[t, a0:b0] if need_b else GB[0, 0:1]
                if need_th:
                    for j in range(n):
                        ex[j] = threshold_arg(dt[j], tht[j], tau_grad)
                    exp_row(n, ex, vml)
                for j in range(n):
                    g = gyt[j] if has_gy else F0
                    ga = g - gnext[j]
                    if has_ga:
                        ga += gat[j]
                    if has_gprel and last:
                        ga += gprel[a0 + j]
                    gz = (ga if kt[j] != 0 else F0) if relu else ga
                    if need_b:
                        gbt[j] = gz
                    gs = gz + gst[j] if has_gsig else gz
                    gs64 = np.float64(gs)
                    if has_gaccl and last:
                        gs64 = gs64 + gaccl[a0 + j]
                    rr = r[j] + gs64
                    r[j] = rr
                    gxt[j] = np.float32(rr)
                    if need_th:
                        gtht[j] = threshold_grad(dt[j], tht[j], g, ex[j], scale_grad)
                    gnext[j] = g
            gacc0[a0:b0] = r
            gpre0[a0:b0] = -gnext

    return sd_bwd


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
