"""Numba hxtorch CUBA LIF scans, plain and refractory (SPEC.md section 13), loaded through
:mod:`.jit`. The same fp32 operations in the same order as the torch-op loop of :mod:`.cuba`
(so the forward is bit-identical to the reference; resets are the reference's 0/1 products,
``(1 - z) v + z reset``, so the inner loop has no data-dependent branch); per-neuron constant
arrays ``(M,)``. Variants are closures with their flags as compile-time constants; a kernel runs
neurons ``[j0, j1)`` tile by tile (see ``_nb_lif``).
"""
from __future__ import annotations

import functools

import numpy as np

from numba import njit

from ._nb_kernel import kernel, stable_uuids

#: neurons per tile (the time loop runs inside a tile): longer contiguous runs per step and array
#: for the hardware prefetcher. Measured (/tmp A/B, thread CPU time, 1 thread, AVX-512 VM), cuba
#: fwd / f+b at (500, 16, 1024): 2048: 10.8 / 19.3 ms, 4096: 8.8 / 17.5, 8192: 7.8 / 16.3, 16384:
#: 8.5 / 17.4; at (100, 32, 1024): 2.86 / 5.52 -> 2.48 / 5.09 (8192)
TILE = 8192
#: alignment of the threads' neuron ranges (:func:`.jit.run`): ranges need not be whole tiles (no
#: result depends on where a range starts), so a call below 2 tiles still splits over threads
SPLIT = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)


@njit(cache=True, inline="always")
def fwd_lane(j, refractory, xt, zt, vt, it, mt, v, i, ref, lk, rs, th, am, cs, rr):
    """One neuron's forward step (``j`` of the tile; the constants as values)."""
    dv = ((lk - v[j]) + i[j]) * am
    ci = i[j] * cs + xt[j]
    vn = v[j] + dv
    z = F1 if vn > th else F0
    vn = (F1 - z) * vn + z * rs          # the reference's reset, no branch
    if refractory:
        m = F1 if ref[j] > F0 else F0
        mt[j] = np.uint8(m)
        vn = (F1 - m) * vn + m * rs
        z = (F1 - m) * z
        r = ref[j] - m
        r = F0 if r < F0 else r             # relu (NaN stays NaN)
        ref[j] = (F1 - z) * r + z * rr
    zt[j] = z
    vt[j] = vn
    it[j] = ci


@functools.lru_cache(maxsize=None)
def make_fwd(refractory: int, uni: int = 0, tile: int = TILE):
    """The forward of one variant; ``uni``: every constant is a number (the caller's
    ``const_row``s), so the lane loop takes them as scalars (element 0) instead of six rows per
    step (the same operands: the same results)."""
    TILE = tile     # a closure constant (benchmarks compare tiles in one process)

    @kernel
    def cuba_fwd(x, leak, reset, thr, a_m, c_s, R, Z, V, I, MK, j0, j1):
        T = x.shape[0]
        lk0, rs0, th0, am0, cs0, rr0 = leak[0], reset[0], thr[0], a_m[0], c_s[0], R[0]
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            n = b - a
            v0 = leak[a:b] + F0
            i0 = np.zeros(n, np.float32)
            ref = np.zeros(n, np.float32)
            lk, rs, th, am, cs, rr = leak[a:b], reset[a:b], thr[a:b], a_m[a:b], c_s[a:b], R[a:b]
            for t in range(T):
                xt, zt, vt, it = x[t, a:b], Z[t, a:b], V[t, a:b], I[t, a:b]
                v = V[t - 1, a:b] if t > 0 else v0          # the state: the previous step's outputs
                i = I[t - 1, a:b] if t > 0 else i0
                mt = MK[t, a:b] if refractory else MK[0, 0:1]
                if uni:
                    for j in range(n):
                        fwd_lane(j, refractory, xt, zt, vt, it, mt, v, i, ref, lk0, rs0, th0, am0, cs0, rr0)
                else:
                    for j in range(n):
                        fwd_lane(j, refractory, xt, zt, vt, it, mt, v, i, ref, lk[j], rs[j], th[j], am[j], cs[j],
                                 rr[j])

    return cuba_fwd


@functools.lru_cache(maxsize=None)
def make_bwd(refractory: int, has_gz: int, has_gv: int, has_gi: int, need_x: int, need_params: int,
             per_step: int = 0, uni: int = 0, tile: int = TILE):
    """Reverse scan in the reference's autograd order (functional/cuba.py ``_step``: the next
    step's ``v + dv`` before its ``leak - v``, the reset's ``(1 - z) v`` before SuperSpike, the
    output traces first), so gX is bit-identical to the reference; (``need_params``) per-neuron
    sums over time, step ``T-1`` first as autograd adds them, for leak, reset, threshold, a_m and
    c_s. ``zstep`` / ``vstep`` / ``istep``: 1, or 0 for an output gradient broadcast over time (its
    one row: :func:`.jit.grad_rows`). ``per_step`` (a parameter broadcast over neurons) also
    writes each step's terms, as autograd of the reference forms them, into ``Pk`` row
    ``t * pstep[k]`` (``pstep[k] = 0``: a scratch row) for the caller to reduce step by step:
    ``k`` = 0 leak (``gV' a_m``), 1 reset of the refractory clamp (``gV m``), 2 reset of the spike
    (``gV (1 - m) z'``), 3 threshold (``-gZ sg``), 4 a_m (``gV' drive``), 5 c_s (``gI i[t-1]``).
    ``uni``: every constant a number, taken as scalars (as :func:`make_fwd`'s)."""

    TILE = tile

    @kernel
    def cuba_bwd(V, I, MK, gz, gvm, gic, zstep, vstep, istep, leak, thr, alpha, a_m, c_s, gx, g_leak, g_reset, g_thr, g_am,
                 g_cs, P0, P1, P2, P3, P4, P5, pstep, j0, j1):
        T = V.shape[0]
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            n = b - a
            gv = np.zeros(n, np.float32)
            gi = np.zeros(n, np.float32)
            acc = np.zeros((5, n), np.float32)
            lk, th, al, am, cs = leak[a:b], thr[a:b], alpha[a:b], a_m[a:b], c_s[a:b]
            lk0, th0, al0, am0, cs0 = leak[0], thr[0], alpha[0], a_m[0], c_s[0]
            for t in range(T - 1, -1, -1):
                vp = V[t - 1, a:b] if t > 0 else lk
                ip = I[t - 1, a:b] if t > 0 else I[0, 0:1]
                gzt = gz[t * zstep, a:b] if has_gz else gz[0, 0:1]
                gvt = gvm[t * vstep, a:b] if has_gv else gvm[0, 0:1]
                git = gic[t * istep, a:b] if has_gi else gic[0, 0:1]
                gxt = gx[t, a:b] if need_x else gx[0, 0:1]
                mt = MK[t, a:b] if refractory else MK[0, 0:1]
                p0, p1, p2 = P0[t * pstep[0], a:b], P1[t * pstep[1], a:b], P2[t * pstep[2], a:b]
                p3, p4, p5 = P3[t * pstep[3], a:b], P4[t * pstep[4], a:b], P5[t * pstep[5], a:b]
                for j in range(n):
                    # the constants: scalars (uni, a compile-time flag: numba prunes the other arm) or rows
                    lkj = lk0 if uni else lk[j]
                    thj = th0 if uni else th[j]
                    alj = al0 if uni else al[j]
                    amj = am0 if uni else am[j]
                    csj = cs0 if uni else cs[j]
                    ipj = ip[j] if t > 0 else F0
                    drive = (lkj - vp[j]) + ipj if t > 0 else lkj - lkj
                    d = (drive * amj + vp[j]) - thj
                    zp = F1 if d > F0 else F0
                    m = F1 if (refractory and mt[j] != 0) else F0
                    keep = F1 - (zp if zp > m else m)
                    q = abs(d) * alj + F1
                    gzsg = gzt[j] / (q * q) if has_gz else F0      # SuperSpike's backward divides
                    if refractory and m > F0:
                        gzsg = F0
                    gvn, gin = gv[j], gi[j]                         # gv', gi_tot of step t+1
                    gv_tot = (gvt[j] + gvn) + (-(gvn * amj)) if has_gv else gvn + (-(gvn * amj))
                    gvp = gv_tot * keep + gzsg
                    gi_tot = (git[j] + gin * csj) + gvn * amj if has_gi else gin * csj + gvn * amj
                    if need_x:
                        gxt[j] = gi_tot
                    if need_params:
                        acc[0, j] += gvp * amj
                        acc[1, j] += gv_tot if m > F0 else gv_tot * zp
                        acc[2, j] -= gzsg
                        acc[3, j] += gvp * drive
                        acc[4, j] += gi_tot * ipj
                    if per_step:
                        p0[j] = gvp * amj
                        p1[j] = gv_tot * m
                        p2[j] = (gv_tot * (F1 - m) if refractory else gv_tot) * zp
                        p3[j] = -gzsg
                        p4[j] = gvp * drive
                        p5[j] = gi_tot * ipj
                    gv[j] = gvp
                    gi[j] = gi_tot
            if need_params:
                g_leak[a:b] = acc[0]
                g_reset[a:b] = acc[1]
                g_thr[a:b] = acc[2]
                g_am[a:b] = acc[3]
                g_cs[a:b] = acc[4]

    return cuba_bwd


@kernel
def last_spike(Z, out, j0, j1):
    """``out[j]`` = the last step ``t`` with ``Z[t, j] != 0`` (-1 without a spike), for neurons
    ``[j0, j1)``: rows from the last step back, stopping once every neuron of the range has one
    (a spiking population is done after a few rows; the reference's formula reads all ``T``)."""
    T = Z.shape[0]
    for j in range(j0, j1):
        out[j] = -1
    left = j1 - j0
    t = T - 1
    while t >= 0 and left > 0:
        for j in range(j0, j1):
            if out[j] < 0 and Z[t, j] != F0:
                out[j] = t
                left -= 1
        t -= 1


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
