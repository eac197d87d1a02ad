"""Numba IF / LIF scans (SPEC.md section 15), loaded through :mod:`.jit` (never at import of
the library). Float32 throughout, in the reference's operation order (functional/lif.py
``_charge`` / ``_step``; autograd's order for the VJP: see :func:`_vjp_h`), so forward results are
bit-identical to the reference loop.

Arrays are C-contiguous fp32 ``(T, M)`` / ``(M,)`` (absent ones: a 1-element dummy with its
``has_*`` flag off). Each variant (kind, reset, surrogate; :func:`make_bwd` says which flags are
run-time arguments) is its own compiled kernel with the flags as compile-time constants (a
closure: numba folds them, so the inner loop vectorises; numba caches each variant on disk by the
closure's values). A kernel runs a contiguous neuron range ``[j0, j1)`` tile by tile (``TILE``
neurons, the time loop inside a tile, so the state stays in L1); :func:`.jit.run` gives each thread one range. Kernels use
``error_model="numpy"``: a division by zero gives inf/NaN as in torch (the default Python error
model would raise, and its check keeps the loop from vectorising).
"""
from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._nb_kernel import kernel, stable_uuids
from ._nb_vml import AVAILABLE as VML
from ._nb_vml import exp_row

#: neurons per tile of a kernel's inner loop (the state of a tile stays in L1 / L2 over its time
#: loop); measured at (T, M) = (100, 32768) and (500, 16384), one thread, the kernels called
#: directly (CPU time, median): 512 / 2048 / 4096 gave forward 5.6 / 3.3 / 3.2 ms, backward
#: 4.35 / 3.05 / 3.1 ms at T=100 and 16.9 / 10.6 / 9.5, 12.4 / 9.7 / 8.8 ms at T=500 (each tile
#: and step pays for its row slices and loop set-up, which 512 neurons do not amortise)
TILE = 4096
#: granularity of the thread ranges (:func:`.jit.run`): ranges need not be tile-aligned (a
#: kernel's last tile of a range is partial), so they stay balanced for mid-sized ``M``
SPLIT = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)


@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` with one rounding (the fused multiply-add instruction, as SLEEF's AVX2 code
    uses it); float32 arguments."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f, [f, f, f]), "llvm.fma.f32")
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def pow2i(typingctx, q):
    """``2.0 ** q`` as float32 for an int32 ``q`` in the normal range ``[-126, 127]``: the exponent
    field ``(q + 127) << 23`` reinterpreted (exact, as ``ldexp(1, q)``; unlike a call to libm's
    ``ldexp`` it vectorises)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.add(args[0], ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return sig, codegen


# SLEEF's expf (xexpf, 1-ulp): the vectorised exp of torch's CPU sigmoid kernel (AVX2)
_R_LN2 = np.float32(1.442695040888963407359924681001892137426645954152985934135449406931)
_L2U = np.float32(-0.693145751953125)
_L2L = np.float32(-1.428606765330187045e-06)
_EXP_POLY = tuple(np.float32(c) for c in (0.00139304355252534151077271, 0.00833336077630519866943359,
                                          0.0416664853692054748535156, 0.166666671633720397949219, 0.5))
_EXP_C0 = np.float32(0.000198527617612853646278381)


@njit(cache=True, inline="always")
def sleef_expf(d):
    """``exp(d)`` in float32 as SLEEF's vectorised ``xexpf`` computes it (range reduction by
    ``q = rint(d / ln 2)`` in two fma steps, a degree-6 polynomial, ``* 2^(q/2) * 2^(q - q/2)``;
    ``0`` below -104, ``inf`` above 100). Bit-identical to torch's AVX2 and AVX512 ``Vectorized<float>::exp``
    (checked on 2^20 random values in tests/kernels/test_kernels_cpu_lif.py)."""
    dq = d if (d > np.float32(-110.0) and d < np.float32(110.0)) else F0   # NaN: q = 0, s = NaN
    q = np.int32(np.rint(dq * _R_LN2))
    qf = np.float32(q)
    s = fma32(qf, _L2U, d)
    s = fma32(qf, _L2L, s)
    u = _EXP_C0
    for c in _EXP_POLY:
        u = fma32(u, s, c)
    u = F1 + fma32(s * s, u, s)
    e1 = np.int32(q >> 1)
    u = (u * pow2i(e1)) * pow2i(np.int32(q - e1))    # |e1|, |q - e1| <= 80: normal powers of two
    if d < np.float32(-104.0):
        u = F0
    if d > np.float32(100.0):
        u = np.float32(np.inf)
    return u


@njit(cache=True, inline="always")
def sg_times(g, d, kid, c0, c1):
    """``g * surrogate'(d)`` as SpikeFn's backward computes it (SuperSpike divides); Sigmoid's
    exp as torch's scalar path computes it (libm's expf)."""
    return sg_times_at(g, d, kid, c0, c1, False)


@njit(cache=True, inline="always")
def sg_times_at(g, d, kid, c0, c1, vec):
    """:func:`sg_times` for an element that torch's sigmoid kernel computes in a vector lane
    (``vec``: SLEEF's expf) or in its scalar remainder loop (libm's expf)."""
    if kid == 0:    # ATan: (1 / (1 + (c0 d)^2)) * c1,  c0 = pi/2 a, c1 = a/2
        z = d * c0
        return g * ((F1 / (F1 + z * z)) * c1)
    if kid == 1:    # Sigmoid: (a s) (1 - s)
        a = -(d * c0)
        s = F1 / (F1 + (sleef_expf(a) if vec else np.exp(a)))
        return g * ((c0 * s) * (F1 - s))
    if kid == 2:    # SuperSpike: g / (a |d| + 1)^2
        q = c0 * abs(d) + F1
        return g / (q * q)
    if kid == 3:    # SLAYER exp: c1 * exp(-|d| / c0), c1 = scale / (2 tau)
        return g * (c1 * np.exp(-abs(d) / c0))
    q = F1 - abs(d) / c0   # Triangle: height * max(1 - |d| / width, 0)
    if q < F0:
        q = F0
    return g * (c1 * q)


@njit(cache=True, inline="always")
def charge(x, v, tau, vr, kind, recip):
    if kind == 0:
        return v + x
    if kind == 1:
        if recip:
            return v + (x - (v - vr)) * tau
        return v + (x - (v - vr)) / tau
    if recip:
        return v - (v - vr) * tau + x
    return v - (v - vr) / tau + x


@njit(cache=True, inline="always")
def spike(d, tie):
    """The spike at ``d = H - Vth``: 1 above 0, ``tie`` at exactly 0 (``1.0``: ``threshold=">="``,
    ``0.0``: ``">"``, the strict comparison), else 0 (NaN: 0). ``tie`` is a run-time float32: two
    selects, no branch, so the lane loop vectorises as with one comparison; ``d == 0`` holds for
    +0 and -0 alike, as ``d >= 0`` does."""
    s = F1 if d > F0 else F0
    return tie if d == F0 else s


@njit(cache=True, inline="always")
def reset(h, vth, vr, hard, tie):
    """(spike 0/1, V after reset), in the reference's arithmetic (``S Vr + (1 - S) H``: no
    data-dependent branch, so random spike patterns cost no mispredictions); ``tie``: see
    :func:`spike`."""
    s = spike(h - vth, tie)
    if hard:
        return s, s * vr + (F1 - s) * h
    return s, h - s * vth


@functools.lru_cache(maxsize=None)
def make_fwd(kind: int, hard: int, recip: int, uni: int = 0):
    """The forward kernel for one variant (flags are compile-time constants): runs neurons
    ``[j0, j1)`` tile by tile, the time loop inside a tile. ``store_h`` / ``store_v`` (run-time
    flags: they only pick a row, outside the inner loop) write the charge H (what the backward
    reads; else it goes to a tile scratch row, so a forward without gradients or traces moves 8
    bytes per neuron-step, not 12) and the post-reset trace; ``tie`` (float32, run-time:
    :func:`spike`) is the spike at ``H == Vth``.

    ``uni``: tau, v_threshold and v_reset have one value each (numbers, or one-element tensors
    such as PLIF's tau: ``common.one_value``), so the lane loop takes element 0 of each row
    as a scalar instead of reading three rows per step: the same operands, the same bits.
    Measured (issue 15, 2-core Zen 5 VM, a stream kernel of this loop at (100, 32768), one
    thread): 2.0 -> 1.5 ms with 4096-neuron tiles; the rows' reads from L2 were a quarter of
    the forward's time."""
    UNI = uni      # a closure constant: the dead branch of each select below is compiled away

    @kernel
    def lif_fwd(x, tau, vth, vr, v0, H, S, vlast, vseq, store_h, store_v, tie, j0, j1):
        T = x.shape[0]
        ta0, th0, rs0 = tau[0], vth[0], vr[0]     # uni: every neuron's value
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            v = v0[a:b].copy()
            scr = np.empty(b - a, np.float32)
            ta, th, rs = tau[a:b], vth[a:b], vr[a:b]
            for t in range(T):
                xt, st = x[t, a:b], S[t, a:b]
                ht = H[t, a:b] if store_h else scr
                for j in range(b - a):
                    tj = ta0 if UNI else ta[j]
                    thj = th0 if UNI else th[j]
                    rj = rs0 if UNI else rs[j]
                    h = charge(xt[j], v[j], tj, rj, kind, recip)
                    s, vn = reset(h, thj, rj, hard, tie)
                    ht[j] = h
                    st[j] = s
                    v[j] = vn
                if store_v:
                    vseq[t, a:b] = v
            vlast[a:b] = v

    return lif_fwd


@njit(cache=True, inline="always")
def _vjp_h(gv, gspk, ghx, h, vth, vr, hard, detach, kid, c0, c1, vec, tie, ex):
    """gH of one step in autograd's order (reset ops run backward before SpikeFn): returns
    (gH, the surrogate term, spike); ``vec``: see :func:`sg_times_at`, ``tie``: :func:`spike`;
    ``ex`` (SLAYER exp, kid 3): ``exp(-|h - vth| / c0)`` as torch.exp computed it."""
    d = h - vth
    s = spike(d, tie)
    if hard:
        gsum = gspk if detach else (gspk + (-(gv * h))) + gv * vr
        ghr = gv * (F1 - s)
    else:
        gsum = gspk if detach else gspk + (-gv) * vth
        ghr = gv
    ghr = ghx + ghr
    gsg = gsum * (c1 * ex) if kid == 3 else sg_times_at(gsum, d, kid, c0, c1, vec)
    return ghr + gsg, gsg, s


@njit(cache=True, inline="always")
def rowsum_fold(pt, a, n, loc, fblk, frest, t, geo):
    """Folds the elements ``[a, a + n)`` of row ``t`` (in ``pt[:n]``; ``a`` a multiple of the
    group size) into the state of torch's CPU sum of a contiguous fp32 row (SumKernel.cpp
    ``cascade_sum`` -> ``vectorized_inner_sum``: ``row_sum`` with 4 vectors of ``L`` lanes per
    group, ``multi_row_sum``'s 4 cascade levels of ``2^lpow`` groups). ``loc`` ``(2, T, G)``: the
    cascade's levels 0 and 1 (``G = 4 L``, index ``k L + lane`` for vector ``k`` of a group) of
    the caller's neuron range; ``fblk`` ``(T, K, G)``: level 1's total at each of its steps into
    level 2 (every ``2^(2 lpow)`` groups; ``K = groups >> 2 lpow``), which :func:`rowsum_final`
    adds into levels 2 and 3 in order; ``frest`` ``(T, G)``: the row's elements past the last
    whole group (leftover vectors, scalar tail), added at :func:`rowsum_final`. ``geo``: ``(L,
    lpow, groups, vectors)`` of the row. Within a range the row must be folded in index order; a
    range that starts at a multiple of ``G 2^(2 lpow)`` neurons (levels 0 and 1 are empty there
    in the serial sum too) may be folded by another thread into its own ``loc``: levels 2 and 3
    are only summed at the end, from ``fblk``, so every range gives the serial sum's bits."""
    G = loc.shape[2]
    lpow = geo[1]
    lstep = 1 << lpow
    ngrp = geo[2]
    acc0, acc1 = loc[0, t], loc[1, t]
    gi0 = a // G
    nfull = min(n // G, max(0, ngrp - gi0))    # whole groups of this piece in multi_row_sum's range
    g = 0
    while g < nfull:
        run = min(nfull - g, lstep - (gi0 + g) % lstep)     # groups up to the next level step
        for r in range(g * G, (g + run) * G, G):
            src = pt[r:r + G]
            for q in range(G):
                acc0[q] += src[q]
        g += run
        i = gi0 + g
        if i % lstep == 0:
            for q in range(G):
                acc1[q] += acc0[q]
                acc0[q] = F0
            if (i & ((lstep - 1) << lpow)) == 0:    # level 1 steps into level 2: kept in fblk
                blk = fblk[t, (i >> (2 * lpow)) - 1]
                for q in range(G):
                    blk[q] = acc1[q]
                    acc1[q] = F0
    if gi0 + nfull == ngrp:     # past the groups: leftover vectors, scalar tail
        r = frest[t]
        for off in range(nfull * G, n):
            r[a + off - ngrp * G] = pt[off]


@njit(cache=True, inline="always")
def rowsum_final(loc, fblk, frest, t, geo, M, a2, a3):
    """torch's sum of row ``t`` from the state of :func:`rowsum_fold` (``loc``: the levels 0 and
    1 of the range that ends the row; ``a2``, ``a3``: scratch ``(G,)``): level 1's totals of
    ``fblk`` added into level 2 in order, level 2 into level 3 every ``2^lpow`` of them (the
    serial cascade's steps), then ``multi_row_sum``'s levels added into level 0, the leftover
    vectors into vector 0, vectors 1-3 into vector 0, then ``final_acc``: the scalar tail from 0,
    the lanes in order; stored as ``0 + final_acc``."""
    G = loc.shape[2]
    L, lpow, ngrp, nvec = geo[0], geo[1], geo[2], geo[3]
    lstep = 1 << lpow
    a2[:] = F0
    a3[:] = F0
    for k in range(ngrp >> (2 * lpow)):
        blk = fblk[t, k]
        for q in range(G):
            a2[q] += blk[q]
        if ((k + 1) & (lstep - 1)) == 0:
            for q in range(G):
                a3[q] += a2[q]
                a2[q] = F0
    a0 = loc[0, t]
    for aj in (loc[1, t], a2, a3):
        for q in range(G):
            a0[q] += aj[q]
    r = frest[t]
    for v in range(nvec - 4 * ngrp):
        for q in range(L):
            a0[q] += r[v * L + q]
    for k in range(1, 4):
        for q in range(L):
            a0[q] += a0[k * L + q]
    f = F0
    for k in range(nvec * L, M):
        f += r[k - ngrp * G]
    for q in range(L):
        f += a0[q]
    return F0 + f


@njit(cache=True, nogil=True)
def fold_final(loc, fblk, frest, geo, M, out):
    """``out[t]``: :func:`rowsum_final` of every row (after the kernel's ranges have folded it)."""
    G = loc.shape[2]
    a2, a3 = np.zeros(G, np.float32), np.zeros(G, np.float32)
    for t in range(out.shape[0]):
        out[t] = rowsum_final(loc, fblk, frest, t, geo, M, a2, a3)


@njit(cache=True, nogil=True)
def fold_rows(a, loc, fblk, frest, geo, out, align):
    """``out[t]``: torch's sum of row ``t`` of ``a`` (``(T, M)``) by :func:`rowsum_fold` over
    ranges of ``align`` neurons (each into a fresh state, as the kernels' threads) in
    ``TILE``-sized pieces (the kernels' order) and :func:`fold_final` (the probe of
    kernels/cpu/lif.py and the tests)."""
    T, M = a.shape
    for j0 in range(0, M, align):
        j1 = min(M, j0 + align)
        own = np.zeros(loc.shape, np.float32)
        for s in range(j0, j1, TILE):
            e = min(j1, s + TILE)
            for t in range(T):
                rowsum_fold(a[t, s:e], s, e - s, own, fblk, frest, t, geo)
        if j1 == M:
            loc[:] = own
    fold_final(loc, fblk, frest, geo, M, out)


@functools.lru_cache(maxsize=None)
def make_bwd(lif: int, decay: int, recip: int, hard: int, detach: int, kid: int, has_gvseq: int, params: int,
             tau_only: int = 0, uni: int = 0):
    """The reverse-scan kernel for one variant over neurons ``[j0, j1)``; writes gX (when
    ``need_x``), gV0 and the parameter gradients that are needed. ``lanes`` (Sigmoid): 1 where
    torch's sigmoid kernel computes a neuron in a vector lane.

    Compile-time flags (one compiled kernel each) are those that change the arithmetic of the
    lane loop: the neuron kind (``lif``: 0 for IF; ``decay``: decay_input), ``recip`` (the tau
    slot holds 1/tau), ``hard`` / ``detach`` (the reset), the surrogate ``kid``, ``has_gvseq``
    (the trace gradient changes the order of the sums) and ``params`` (whether any parameter
    needs a gradient). Making ``hard`` / ``detach`` / ``decay`` / ``has_gvseq`` run-time selects
    inside the loop was measured 10-15 % slower in cache (0.48 vs 0.43 ns per neuron-step at
    T=100, M=4096), so they stay constants. The other options are run-time arguments that only
    pick, once per step and tile (outside the lane loop), which row the loop reads or writes, so
    they add no variant: ``has_gs`` / ``has_ghseq`` (an absent output gradient reads a tile of
    zeros: the loop adds ``0.0 + y`` as it did with the constant, so the same bits), ``need_x``
    (an unneeded gX goes to a scratch row), ``has_gvlast`` (the initial carry), ``sstep`` /
    ``vstep`` / ``hstep`` (1, or 0 for an output gradient broadcast over time, given as its one
    row: :func:`.jit.grad_rows`), ``need_tau`` / ``need_vth`` / ``need_vr`` / ``per_step``, and
    ``tie`` (float32: the recomputed spike at ``H == Vth``, 0 for ``threshold=">"``; :func:`spike`).

    With ``params`` the loop computes every parameter term of the neuron kind (tau unless IF,
    v_threshold, v_reset for a hard reset) and the run-time ``need_tau`` / ``need_vth`` /
    ``need_vr`` / ``per_step`` pick where they go (unneeded ones: scratch rows). Each parameter's
    gradient is the sum of per-step terms, one or two per step, which autograd of the reference
    adds in a fixed order: step ``T-1`` first, and within a step the reset's term before the
    threshold's (v_threshold, soft reset) or the charge's (v_reset, hard reset). ``per_step=0``
    (a parameter of one value per neuron) adds them here in that order into ``gtau`` / ``gvth`` /
    ``gvr``; ``per_step=1`` (a parameter broadcast over neurons) writes each term into its
    ``(T, M)`` array (``ptau``; ``pth1``/``pth2``; ``pr1``/``pr2``, the first-added term first)
    for the caller to reduce step by step as autograd does; with ``fold`` (PLIF: one tau for all
    neurons, kernels/cpu/lif.py ``_fold_geo``) each step's tau terms go to a tile scratch row
    folded into torch's row-sum order instead (:func:`rowsum_fold` into the range's own levels 0
    and 1 and the shared ``fblk``; the range that ends the rows leaves its levels in ``floc``;
    the caller then sums each step by :func:`fold_final`), so no ``(T, M)`` array is written or
    read. Ranges must then start at multiples of ``G 2^(2 lpow)`` neurons (the glue's split).

    ``tau_only`` (compile-time; the caller sets it when tau is the only parameter that needs a
    gradient, PLIF's case): the lane loop itself computes each step's tau term (it reads
    ``H[t-1]``, reset, and ``x[t]`` for decay_input) instead of writing ``gH`` to a scratch row for
    a second loop over the step's rows: the same terms in the same order (the same bits), one
    pass per step. Measured (the kernel called directly, plif, 1 thread): backward 3.50 -> 2.66 ms
    at (100, 32, 1024), 10.2 -> 8.3 ms at (500, 16, 1024); what is left is mostly the divider
    (four divisions per neuron-step with ATan: its ``1 / (1 + z^2)``, ``gH / tau`` and the
    reference's ``(a / tau) / tau``, none replaceable by a product bit for bit).

    SLAYER exp (``kid`` 3): per step and tile a first loop writes the exp arguments
    ``-|H - Vth| / c0`` of the row into a tile buffer, one :func:`._nb_vml.vexp` call (torch.exp's
    routine, MKL VML: the reference's bits; without it libm's expf) turns them into the exps,
    then the lane loop reads them (no call inside it, so it vectorises).

    ``uni`` (compile-time, as in :func:`make_fwd`): tau, v_threshold and v_reset have one value
    each, so every loop takes element 0 of the rows as a scalar: the same operands, the same
    bits, up to three fewer rows read per step in each loop."""
    vml = VML      # a closure constant: cached variants differ with and without VML
    UNI = uni      # a closure constant: the dead branch of each select below is compiled away

    @kernel
    def lif_bwd(H, x, gs, gvseq, ghseq, has_gs, has_ghseq, sstep, vstep, hstep, gvlast, has_gvlast, tau,
                vth, vr, v0, c0, c1, tie, lanes, need_x, gx, gv0, need_tau, need_vth, need_vr,
                per_step, gtau, gvth, gvr, ptau, pth1, pth2, pr1, pr2, fold, floc, fblk, frest, fgeo, j0, j1):
        T = H.shape[0]
        split = has_gvseq and lif != 0
        kind = 1 if decay else 2    # of _tau_term (lif only)
        n_tau = params and need_tau and lif != 0
        n_th = params and need_vth and not tau_only
        n_r = params and need_vr and hard and not tau_only
        # fold: levels 0 and 1 of this range's cascade sums (rowsum_fold)
        loc = np.zeros((2, T, floc.shape[2]) if (n_tau and fold) else (2, 1, 1), np.float32)
        ta0, th0, rs0 = tau[0], vth[0], vr[0]     # uni: every neuron's value
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            n = b - a
            carry = gvlast[a:b].copy() if has_gvlast else np.zeros(n, np.float32)
            cq = np.zeros(n, np.float32)    # split: carry = gH[t+1], cq = its -dV term
            zero = np.zeros(n, np.float32)  # an absent input row
            scr = np.empty(n, np.float32)   # an unneeded output row
            scr2 = np.empty(n if tau_only else 1, np.float32)   # the tau terms of a step (fold)
            # params: this step's gV, gH, surrogate term and charge term (q) per neuron, for the
            # parameter loops below (one short loop per needed gradient, each with few arrays, so
            # it vectorises; the lane loop writing every term into rows that may alias did not)
            nk = n if (params and not tau_only) else 1
            kv, kh, kg, kq = np.empty(nk, np.float32), np.empty(nk, np.float32), np.empty(nk, np.float32), \
                np.empty(nk, np.float32)
            at, ath, ar = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
            ta, th, rs = tau[a:b], vth[a:b], vr[a:b]
            ln = lanes[a:b] if kid == 1 else lanes[0:1]
            ex = np.zeros(n if kid == 3 else 1, np.float32)
            for t in range(T - 1, -1, -1):
                ht = H[t, a:b]
                gst = gs[t * sstep, a:b] if has_gs else zero
                gvt = gvseq[t * vstep, a:b] if has_gvseq else gvseq[0, 0:1]
                ghxt = ghseq[t * hstep, a:b] if has_ghseq else zero
                gxt = gx[t, a:b] if need_x else scr
                if tau_only:    # V[t-1] after its reset is read in the lane loop (V0 at t = 0)
                    xp = x[t, a:b] if decay else zero
                    hp = v0[a:b] if t == 0 else H[t - 1, a:b]
                    first = t == 0
                    pt = ptau[t, a:b] if (per_step and not fold) else scr2
                if kid == 3:    # the reference's exp(-|d| / c0), d = H - Vth
                    for jj in range(n):
                        thj = th0 if UNI else th[jj]
                        ex[jj] = -abs(ht[jj] - thj) / c0
                    exp_row(n, ex, vml)
                for jj in range(n):
                    tj = ta0 if UNI else ta[jj]
                    thj = th0 if UNI else th[jj]
                    rj = rs0 if UNI else rs[jj]
                    if split:       # autograd adds the trace's gradient first
                        gv = (gvt[jj] + carry[jj]) + (-cq[jj])
                    else:
                        gv = gvt[jj] + carry[jj] if has_gvseq else carry[jj]
                    vec = ln[jj] != 0 if kid == 1 else False
                    gh, gsg, s = _vjp_h(gv, gst[jj], ghxt[jj], ht[jj], thj, rj, hard, detach, kid, c0, c1,
                                        vec, tie, ex[jj] if kid == 3 else F0)
                    if lif == 0:
                        q = gh
                        gvp = gh
                    else:
                        q = gh * tj if recip else gh / tj
                        gvp = gh + (-q)
                    gxt[jj] = q if decay else gh
                    if split:
                        carry[jj] = gh
                        cq[jj] = q
                    else:
                        carry[jj] = gvp
                    if tau_only:
                        vpr = reset(hp[jj], thj, rj, hard, tie)[1]
                        e = _tau_term(gh, xp[jj], hp[jj] if first else vpr, tj, rj, kind, recip)
                        pt[jj] = e
                        at[jj] = at[jj] + e
                    elif params:
                        kv[jj] = gv
                        kh[jj] = gh
                        kg[jj] = gsg
                        kq[jj] = q
                if n_th:    # hard: the threshold's -gsg; soft: the reset's -gV S first, then -gsg
                    if per_step:
                        p1 = pth1[t, a:b]
                        if hard:
                            for jj in range(n):
                                p1[jj] = -kg[jj]
                        else:
                            p2 = pth2[t, a:b]
                            for jj in range(n):
                                thj = th0 if UNI else th[jj]
                                p1[jj] = (-kv[jj]) * spike(ht[jj] - thj, tie)
                                p2[jj] = -kg[jj]
                    elif hard:
                        for jj in range(n):
                            ath[jj] = ath[jj] + (-kg[jj])
                    else:
                        for jj in range(n):
                            thj = th0 if UNI else th[jj]
                            ath[jj] = (ath[jj] + (-kv[jj]) * spike(ht[jj] - thj, tie)) + (-kg[jj])
                if n_r:     # v_reset (hard reset): the reset's gV S, then the charge's term
                    if per_step:
                        r1 = pr1[t, a:b]
                        for jj in range(n):
                            thj = th0 if UNI else th[jj]
                            r1[jj] = kv[jj] * spike(ht[jj] - thj, tie)
                        if lif != 0:
                            r2 = pr2[t, a:b]
                            for jj in range(n):
                                r2[jj] = kq[jj]
                    elif lif == 0:
                        for jj in range(n):
                            thj = th0 if UNI else th[jj]
                            ar[jj] = ar[jj] + kv[jj] * spike(ht[jj] - thj, tie)
                    else:
                        for jj in range(n):
                            thj = th0 if UNI else th[jj]
                            ar[jj] = (ar[jj] + kv[jj] * spike(ht[jj] - thj, tie)) + kq[jj]
                if tau_only and fold:
                    rowsum_fold(pt, a, n, loc, fblk, frest, t, fgeo)
                if n_tau and not tau_only:   # V[t-1] after its reset (V0 at t = 0), x[t] (decay_input)
                    xp = x[t, a:b] if decay else zero
                    pt = ptau[t, a:b] if (per_step and not fold) else scr
                    if t == 0:
                        hp = v0[a:b]
                        for jj in range(n):
                            tj = ta0 if UNI else ta[jj]
                            rj = rs0 if UNI else rs[jj]
                            e = _tau_term(kh[jj], xp[jj], hp[jj], tj, rj, kind, recip)
                            pt[jj] = e
                            at[jj] = at[jj] + e
                    else:
                        hp = H[t - 1, a:b]
                        for jj in range(n):
                            tj = ta0 if UNI else ta[jj]
                            thj = th0 if UNI else th[jj]
                            rj = rs0 if UNI else rs[jj]
                            vp = reset(hp[jj], thj, rj, hard, tie)[1]
                            e = _tau_term(kh[jj], xp[jj], vp, tj, rj, kind, recip)
                            pt[jj] = e
                            at[jj] = at[jj] + e
                    if fold:
                        rowsum_fold(pt, a, n, loc, fblk, frest, t, fgeo)
            if split:
                for jj in range(n):
                    carry[jj] = carry[jj] + (-cq[jj])
            gv0[a:b] = carry
            if params and not per_step:
                if need_tau:
                    gtau[a:b] = at
                if need_vth:
                    gvth[a:b] = ath
                if need_vr:
                    gvr[a:b] = ar
        if n_tau and fold and j1 == H.shape[1]:    # the range that ends the rows: its levels 0, 1
            floc[:] = loc

    return lif_bwd


@njit(cache=True, inline="always")
def _tau_term(gh, x, vp, tau, vr, kind, recip):
    """This step's gradient of the tau slot (div backward: ``-g ((a / tau) / tau)``)."""
    if kind == 1:
        a = x - (vp - vr)
        return gh * a if recip else -gh * ((a / tau) / tau)
    b = vp - vr
    return -gh * b if recip else gh * ((b / tau) / tau)


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
