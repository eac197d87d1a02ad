"""Numba resonate-and-fire scans RF, RF-Iz, AdRF, AdRF-Iz (SPEC.md 2.1, 2.2, 3.4, 6-9), loaded
through :mod:`.jit`: per neuron, the step and reverse step of
:mod:`spikefuse.kernels.triton.resonator` (int64 fixed point, ``rstz`` toward zero, float32
recording by IEEE division), so the forward is bit-identical to the int64 reference. As in
``_nb_loihi``, the integers are held as integer-valued float64 (vectorised; exact while re / im
stay within 2**40, theta / r within 2**39, checked every step) and a tile that leaves the bounds
runs again in int64. Before that a tile runs in int32 lanes (twice the lanes per vector) while re / im
stay within 2**18 LSB (theta / r 2**18, ``x s`` 2**20), and in float64 again where they leave it:
RF forward 5.46 -> 4.41 ms, AdRF-Iz 7.05 -> 6.34 ms ((100, 32, 1024), one thread, Zen 4 VM). The backward's exponentials are torch.exp's (``_nb_vml``: per step and tile
row, the float32 arguments into a buffer and one call), see :func:`make_bwd`.

``model``: 0 RF, 1 RF-Iz, 2 AdRF, 3 AdRF-Iz. Arrays are C-contiguous ``(T, M)`` / ``(M,)``
(absent ones: a 1-element dummy, never read). Each variant is a closure with its flags as
compile-time constants; a kernel runs neurons ``[j0, j1)`` tile by tile, the time loop inside a
tile (see ``_nb_lif``).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ._nb_kernel import kernel, prefer_wide_vectors, stable_uuids
from ._nb_loihi import (F64_LIMIT, I32_LIMIT_TH, I32_XS, INV4096, LIMIT_TH, adapt, over, pz, rerun_int64,  # noqa: F401
                        rz32, slayer_arg, state, tile_state, tr)
from ._nb_vml import AVAILABLE as VML
from ._nb_vml import exp_row

#: neurons per tile of the forward (longer contiguous runs per step and array for the
#: prefetcher). Interleaved A/B (thread CPU time, 1 thread, min of 5): RF fwd at (500,16,1024)
#: 23.2 / 17.1 / 15.9 / 15.4 ms at 256 / 1024 / 4096 / 8192, at (100,32,1024) 10.4 / - / 7.3 / 6.9;
#: AdRF-Iz (500,16,1024) 28.9 / - / 21.3 / 21.3
TILE = 8192
#: alignment of the threads' neuron ranges (:func:`.jit.run`) and the granularity of the forward's
#: flags ``EX`` (one per ``SPLIT`` neurons; TILE and BWD_TILE are multiples of it), as ``_nb_loihi``
SPLIT = 256
#: neurons per tile of the backward (its state is four fp32 rows; the exp row ``2 BWD_TILE``):
#: res_bwd at (100, 32, 1024), one thread, RF: 512 / 1024 / 2048 / 4096 took 6.3 / 5.6 / 6.6 / 6.9 ms;
#: RF f+b at (500,16,1024) with the 8192 forward tile 45.7 / 42.9 / 44.7 / 46.1 / 45.3 ms at
#: 512 / 1024 / 2048 / 4096 / 8192
BWD_TILE = 1024
#: |re|, |im| bound of the int32 path: products with a rotation factor (|S|, |C| <= 4096) below
#: 2**30, a step's two of them plus an input below 2**21
I32_LIMIT = np.float64(2.0 ** 18 - 1)
#: the float64 forward tiles with 512-bit vectors (:func:`._nb_kernel.prefer_wide_vectors`)
WIDE = 1
F0 = np.float32(0.0)
F1 = np.float32(1.0)
F2 = np.float32(2.0)
HALF = np.float32(0.5)


@njit(cache=True, inline="always")
def rstz12(a):
    """sign(a) (|a| >> 12) on int64 (Loihi's shift toward zero)."""
    return -((-a) >> 12) if a < 0 else a >> 12


@njit(cache=True, inline="always")
def rz(a, flt):
    """rstz12 of an integer-valued float64 (|a| < 2**53: trunc(a / 4096), exact) or an int64."""
    if flt:
        return np.trunc(a * INV4096)
    return rstz12(a)


@njit(cache=True, inline="always")
def sign(x):
    return F1 if x > F0 else (-F1 if x < F0 else F0)


@njit(cache=True, inline="always")
def phase_re_arg(re, thr, rho, graded):
    """The exp argument of the phase spike's real-part factor as ComplexSpike's backward computes
    it in float32: graded ``-clamp(thr - re, min=0) / rho`` (NaN stays NaN, as torch.clamp),
    binary ``-|re - thr| / rho``."""
    if graded:
        m = thr - re
        return -(F0 if m < F0 else m) / rho
    return -abs(re - thr) / rho


@njit(cache=True, inline="always")
def complex_spike_vjp(gs, re, im, thr, e_re, e_im, kappa, c2, two_rho, ckr, graded):
    """SPEC 2.2 phase-spike surrogate: (dL/dre, dL/dim) for an upstream gradient ``gs``, from the
    exps ``e_re`` (of :func:`phase_re_arg`) and ``e_im`` (of ``-|im| / rho``), in ComplexSpike's
    order with its Python-number coefficients as float32: ``c2 = 1 / (2 rho)``,
    ``two_rho = 2 rho``, ``ckr = -(kappa / rho)`` (each computed in double, then rounded)."""
    x = re - thr
    d_re = e_re if graded else c2 * e_re
    d_im = c2 * e_im
    step = HALF * (F1 + sign(x) * (F1 - two_rho * d_re))
    return gs * kappa * d_re * d_im, gs * (ckr * sign(im) * d_im * step)


@njit(cache=True, inline="always")
def in_bounds(Si, Ci, kth, kr, re0, im0, th0, r0, reset_im, theta0, step, a, b, adaptive, ls=F64_LIMIT, lt=LIMIT_TH):
    """Whether a tile's decays, initial state and constants are within the float64 path's bounds
    (|S|, |C| and the keeps within 4096, re / im within 2**40, theta / r and the constants within
    2**39, step 2**38)."""
    bad = 0
    for j in range(a, b):
        bad |= over(re0[j], ls) | over(im0[j], ls) | over(Si[j], 4096.0) | over(Ci[j], 4096.0)
        if adaptive:
            bad |= over(th0[j], lt) | over(r0[j], lt)
            bad |= 0 if (0 <= kth[j] <= 4096 and 0 <= kr[j] <= 4096) else 1
    if over(reset_im, lt) or over(theta0, lt) or over(step, lt / 2):
        bad = 1
    return bad == 0


@functools.lru_cache(maxsize=None)
def make_fwd(model: int, graded: int, store_ri: int, store_lim: int, store_tr: int, store_rst: int,
             tile: int = TILE, split: int = SPLIT, wide: int = WIDE, i32: int = 1):
    """The forward scan of one variant. With ``i32`` each tile first runs in int32 lanes
    (:func:`_make_tile` ``flt`` 2, within :data:`I32_LIMIT`) and, where a value leaves that
    bound, again in float64 from its initial state. Each tile runs in float64 (integer-valued doubles,
    exact within the bounds of :func:`in_bounds`, checked at every step: see
    ``_nb_loihi.make_fwd``); a tile where a value leaves them marks each ``split``-neuron chunk
    it spans in ``EX`` (1), and the caller runs those again in int64 from their initial state
    with :func:`make_fwd_i64` (compiled on first need only). ``tile``, ``split``: closure
    constants (benchmarks compare tiles in one process)."""
    tile_f64 = _make_tile(1, model, graded, store_ri, store_lim, store_tr, store_rst, wide)
    tile_i32 = _make_tile(2, model, graded, store_ri, store_lim, store_tr, store_rst, wide) if i32 else tile_f64
    I32 = bool(i32)
    TILE, SPLIT = tile, split
    assert TILE % SPLIT == 0

    @kernel
    def res_fwd(xr, xi, Si, Ci, kth, kr, re0, im0, th0, r0, im0f, s_f, theta_f, thr_s_f, reset_im, theta0, step,
                SPK, RE, IM, LIM, TH, R, RST, rel, iml, thl, rl, EX, j0, j1):
        for a0 in range(j0, j1, TILE):
            b0 = min(j1, a0 + TILE)
            ok = False
            if I32:    # int32 first where the tile starts within its bounds
                ok = in_bounds(Si, Ci, kth, kr, re0, im0, th0, r0, reset_im, theta0, step, a0, b0, model >= 2,
                               I32_LIMIT, I32_LIMIT_TH)
                if ok:
                    ok = tile_i32(xr, xi, Si, Ci, kth, kr, re0, im0, th0, r0, im0f, s_f, theta_f, thr_s_f,
                                  reset_im, theta0, step, SPK, RE, IM, LIM, TH, R, RST, rel, iml, thl, rl, a0, b0)
            if not ok:    # float64 (from the initial state again where int32 failed)
                ok = in_bounds(Si, Ci, kth, kr, re0, im0, th0, r0, reset_im, theta0, step, a0, b0, model >= 2)
                if ok:
                    ok = tile_f64(xr, xi, Si, Ci, kth, kr, re0, im0, th0, r0, im0f, s_f, theta_f, thr_s_f,
                                  reset_im, theta0, step, SPK, RE, IM, LIM, TH, R, RST, rel, iml, thl, rl, a0, b0)
            for k in range(a0 // SPLIT, (b0 + SPLIT - 1) // SPLIT):
                EX[k] = 0 if ok else 1

    return res_fwd


@functools.lru_cache(maxsize=None)
def make_fwd_i64(model: int, graded: int, store_ri: int, store_lim: int, store_tr: int, store_rst: int,
                 tile: int = TILE):
    """The int64 forward of the variant of :func:`make_fwd` over neurons ``[j0, j1)`` (the rerun
    of the tiles that left the float64 bounds; the same arguments but ``EX``)."""
    tile_i64 = _make_tile(0, model, graded, store_ri, store_lim, store_tr, store_rst)
    TILE = tile

    @kernel
    def res_fwd_i64(xr, xi, Si, Ci, kth, kr, re0, im0, th0, r0, im0f, s_f, theta_f, thr_s_f, reset_im, theta0,
                    step, SPK, RE, IM, LIM, TH, R, RST, rel, iml, thl, rl, j0, j1):
        for a0 in range(j0, j1, TILE):
            tile_i64(xr, xi, Si, Ci, kth, kr, re0, im0, th0, r0, im0f, s_f, theta_f, thr_s_f, reset_im, theta0,
                     step, SPK, RE, IM, LIM, TH, R, RST, rel, iml, thl, rl, a0, min(j1, a0 + TILE))

    return res_fwd_i64


def _make_tile(flt, model, graded, store_ri, store_lim, store_tr, store_rst, wide=0):
    """One tile's time loop in float64 (``flt`` 1: False as soon as a value leaves the bounds),
    int32 (``flt`` 2: the same within :data:`I32_LIMIT`, ``_nb_loihi.I32_LIMIT_TH`` and ``I32_XS``;
    integers below 2**24 convert to float32 exactly, as the int64 reference's do) or int64
    (``flt`` 0, always True); ``wide``: 512-bit vectors (:func:`._nb_kernel.prefer_wide_vectors`)."""
    I32 = int(flt == 2)    # closure constants: the int32 path's branches, the helpers' flag
    F = 0 if I32 else flt
    adaptive = model >= 2
    WIDE = wide    # a closure constant: prefer_wide_vectors takes it as a literal
    phase = model == 0 or model == 2           # the complex (phase) spike condition

    @kernel
    def tile(xr, xi, Si, Ci, kth, kr, re0, im0, th0, r0, im0f, s_f, theta_f, thr_s_f, reset_im, theta0, step,
             SPK, RE, IM, LIM, TH, R, RST, rel, iml, thl, rl, a0, b0):
        prefer_wide_vectors(WIDE)
        T, n = xr.shape[0], b0 - a0
        re, im = tile_state(re0[a0:b0], F, I32), tile_state(im0[a0:b0], F, I32)
        th, rf = tile_state(th0[a0:b0], F, I32), tile_state(r0[a0:b0], F, I32)
        S, C = tile_state(Si[a0:b0], F, I32), tile_state(Ci[a0:b0], F, I32)
        kt, krr = tile_state(kth[a0:b0], F, I32), tile_state(kr[a0:b0], F, I32)
        imp = im0f[a0:b0].copy()                 # the previous step's float imag
        ref_ = np.zeros(n, np.float32)
        bad = 0
        for t in range(T):
            xrt, xit, st = xr[t, a0:b0], xi[t, a0:b0], SPK[t, a0:b0]
            ret = RE[t, a0:b0] if store_ri else RE[0, 0:1]
            imt = IM[t, a0:b0] if store_ri else IM[0, 0:1]
            lmt = LIM[t, a0:b0] if store_lim else LIM[0, 0:1]
            tht = TH[t, a0:b0] if store_tr else TH[0, 0:1]
            rt = R[t, a0:b0] if store_tr else R[0, 0:1]
            rst_t = RST[t, a0:b0] if store_rst else RST[0, 0:1]
            for j in range(n):
                r_, i_ = re[j], im[j]
                if I32:    # the same integers in int32 lanes (bounded: see _make_tile)
                    xsr, xsi = xrt[j] * s_f, xit[j] * s_f
                    okx = (abs(xsr) < I32_XS) & (abs(xsi) < I32_XS)    # False for inf / NaN too
                    bad |= 0 if okx else 1
                    re_new = np.int32(rz32(C[j] * r_) - rz32(S[j] * i_) + np.int32(xsr if okx else F0))
                    im_new = np.int32(rz32(S[j] * r_) + rz32(C[j] * i_) + np.int32(xsi if okx else F0))
                    bad |= over(re_new, I32_LIMIT) | over(im_new, I32_LIMIT)
                else:
                    re_new = pz(rz(C[j] * r_, flt) - rz(S[j] * i_, flt) + tr(xrt[j] * s_f, flt), flt)
                    im_new = pz(rz(S[j] * r_, flt) + rz(C[j] * i_, flt) + tr(xit[j] * s_f, flt), flt)
                    if flt:
                        bad |= over(re_new, F64_LIMIT) | over(im_new, F64_LIMIT)
                re_f = np.float32(re_new) / s_f
                im_f = np.float32(im_new) / s_f
                if model == 0:
                    spk = (re_f >= theta_f) & (imp[j] < F0) & (im_f >= F0)
                    re[j], im[j] = re_new, im_new
                elif model == 1:
                    spk = im_f >= theta_f
                    rs = np.float32(im_new) >= thr_s_f   # torch compares int64 >= float in float32
                    if store_rst:
                        rst_t[j] = 1 if rs else 0
                    re[j] = re_new - re_new if rs else re_new
                    im[j] = reset_im if rs else im_new
                else:
                    if I32:
                        rr = rz32(rf[j] * krr[j])
                        tt = np.int32(rz32((th[j] - theta0) * kt[j]) + theta0)
                    else:
                        rr = pz(rz(rf[j] * krr[j], flt), flt)
                        tt = pz(rz((th[j] - theta0) * kt[j], flt) + theta0, flt)
                    th_f = np.float32(tt) / s_f
                    r_f = np.float32(rr) / s_f
                    lim = th_f + r_f
                    if model == 2:
                        spk = (re_f >= lim) & (imp[j] < F0) & (im_f >= F0)
                        fired = (re_new >= tt + rr) & (im_new >= 0) & (i_ < 0)
                    else:
                        spk = im_f >= lim
                        fired = im_new >= tt + rr
                    rf[j], th[j], b_ = adapt(lmt, tht, rt, j, lim, th_f, r_f, fired, rr, tt, step, store_lim,
                                             store_tr, flt)
                    bad |= b_
                    re[j], im[j] = re_new, im_new
                imp[j] = im_f
                ref_[j] = re_f
                out = F1 if spk else F0
                if graded:
                    out = out * (re_f if phase else im_f)
                st[j] = out
                if store_ri:
                    ret[j] = re_f
                    imt[j] = im_f
            if bad:
                return False
        rel[a0:b0] = ref_
        iml[a0:b0] = imp
        if adaptive:
            for j in range(n):
                thl[a0 + j] = np.float32(th[j]) / s_f
                rl[a0 + j] = np.float32(rf[j]) / s_f
        return True

    return tile


@functools.lru_cache(maxsize=None)
def make_bwd(model: int, graded: int, has_gs: int, has_gre: int, has_gim: int, has_grel: int, has_giml: int,
             need_dec: int, lava: int, tile: int = BWD_TILE, fuse: int = 0, wide: int = 1):
    """Reverse scan of the float rotation (the Triton ``_res_bwd``, the reference's
    ``_ResonatorFn.backward``): the spike surrogate and the trace / final-state gradients enter
    at each step, ``a = g_re + C'a + S'b``, ``b = g_im - S'a + C'b``; decay gradients from the
    previous step's (exact: post-reset, initial state at t = 0; lava: recorded, t >= 1 only)
    state. ``gs_t``, ``gre_t``, ``gim_t``: the row step of each upstream (T, M) gradient (0: one
    row for every step, a gradient autograd broadcast over time, e.g. of a sum:
    :func:`.jit.grad_rows`).

    The surrogate's exps are torch.exp's: per step and tile row a first loop writes their
    float32 arguments as the reference computes them into a buffer (phase: the real-part
    factor's, then ``-|im| / rho``, one row of ``2 n``), one :func:`._nb_vml.exp_row`, then the
    scan's loop reads them (no call in it, so it vectorises; the surrogate's arithmetic fused
    there measured faster than in a loop of its own). Tiles of :data:`BWD_TILE` neurons.

    ``fuse`` (one tensor as both inputs: ``_resonator_host.prepare``'s alias): ``GXR`` gets the
    sum of the two input gradients, the addition autograd would make afterwards (two terms
    commute), and ``GXI`` is a dummy, not written: one (T, M) stream written instead of two, and
    no pass of autograd's reading both (measured: kernels/cpu/resonator.py)."""
    phase = model == 0 or model == 2
    vml = VML      # a closure constant: cached variants differ with and without VML
    BWD_TILE = tile    # a closure constant too
    WIDE = wide        # 512-bit vectors (prefer_wide_vectors; 0 for A/B)

    @kernel
    def res_bwd(RE, IM, LIM, RST, GS, GRE, GIM, gs_t, gre_t, gim_t, grel, giml, Sf, Cf, re0f, im0f, theta_f,
                rho, kappa, c2, two_rho, ckr, kiz, reset_im_f, dscale, GXR, GXI, gre0, gim0, gS, gC, j0, j1):
        prefer_wide_vectors(WIDE)
        T = GXR.shape[0]
        for a0 in range(j0, j1, BWD_TILE):
            b0 = min(j1, a0 + BWD_TILE)
            n = b0 - a0
            A, B = np.zeros(n, np.float32), np.zeros(n, np.float32)
            dS, dC = np.zeros(n, np.float32), np.zeros(n, np.float32)
            ex = np.empty((2 * n if phase else n) if has_gs else 1, np.float32)   # the step's exps
            sf, cf = Sf[a0:b0], Cf[a0:b0]
            for t in range(T - 1, -1, -1):
                ret, imt = RE[t, a0:b0], IM[t, a0:b0]
                gst = GS[t * gs_t, a0:b0] if has_gs else GS[0, 0:1]
                gret = GRE[t * gre_t, a0:b0] if has_gre else GRE[0, 0:1]
                gimt = GIM[t * gim_t, a0:b0] if has_gim else GIM[0, 0:1]
                lmt = LIM[t, a0:b0] if (has_gs and model >= 2) else LIM[0, 0:1]
                tp = t - 1 if t > 0 else 0
                rep, imp = RE[tp, a0:b0], IM[tp, a0:b0]
                rsp = RST[tp, a0:b0] if (model == 1 and need_dec and not lava) else RST[0, 0:1]
                gxrt, gxit = GXR[t, a0:b0], (GXI[0, 0:1] if fuse else GXI[t, a0:b0])
                if has_gs and phase:
                    for j in range(n):
                        ex[j] = phase_re_arg(ret[j], lmt[j] if model >= 2 else theta_f, rho, graded)
                        ex[n + j] = -abs(imt[j]) / rho
                    exp_row(2 * n, ex, vml)
                elif has_gs:
                    for j in range(n):
                        ex[j] = slayer_arg(imt[j] - (lmt[j] if model >= 2 else theta_f), rho, graded)
                    exp_row(n, ex, vml)
                last = t == T - 1
                for j in range(n):
                    # autograd's order of the reference's sums: the trace's gradient (from the
                    # caller's nodes, run first), the final state's (re[-1]: its select node was
                    # made after the spike's), then the surrogate's; two terms commute
                    g_re = gret[j] if has_gre else F0
                    g_im = gimt[j] if has_gim else F0
                    if has_grel and last:          # final-state gradient enters at the last step
                        g_re = g_re + grel[a0 + j] if has_gre else grel[a0 + j]
                    if has_giml and last:
                        g_im = g_im + giml[a0 + j] if has_gim else giml[a0 + j]
                    if has_gs:
                        if phase:
                            gr_, gi_ = complex_spike_vjp(gst[j], ret[j], imt[j], lmt[j] if model >= 2 else theta_f,
                                                         ex[j], ex[n + j], kappa, c2, two_rho, ckr, graded)
                            g_re = g_re + gr_ if (has_gre or has_grel) else gr_
                            g_im = g_im + gi_ if (has_gim or has_giml) else gi_
                        else:    # RealSpike: grad * (coef * exp(...)), coef kappa / (2 rho) binary
                            sg = gst[j] * (kiz * ex[j])
                            g_im = g_im + sg if (has_gim or has_giml) else sg
                    a, b = A[j], B[j]
                    an = g_re + cf[j] * a + sf[j] * b
                    bn = g_im - sf[j] * a + cf[j] * b
                    A[j], B[j] = an, bn
                    if fuse:
                        gxrt[j] = an + bn
                    else:
                        gxrt[j], gxit[j] = an, bn
                    if need_dec:
                        if t > 0:
                            p_re, p_im = rep[j], imp[j]
                            if model == 1 and not lava and rsp[j] != 0:   # started from the reset state
                                p_re, p_im = F0, reset_im_f
                        elif lava:                 # lava: t >= 1 only
                            p_re, p_im = F0, F0
                        else:                      # exact: t = 0 starts from the initial float state
                            p_re, p_im = re0f[a0 + j], im0f[a0 + j]
                        dS[j] += -an * p_im + bn * p_re
                        dC[j] += an * p_re + bn * p_im
            for j in range(n):
                gre0[a0 + j] = cf[j] * A[j] + sf[j] * B[j]
                gim0[a0 + j] = -sf[j] * A[j] + cf[j] * B[j]
                if need_dec:
                    gS[a0 + j] = dS[j] * dscale
                    gC[a0 + j] = dC[j] * dscale

    return res_bwd


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
