"""Numba Loihi CUBA / ALIF scans (lava-dl fixed point, SPEC.md 3.3, 3.4, 4, 5), loaded through
:mod:`.jit`. The forward is the integer dynamics of the Triton kernel
(``kernels/triton/loihi.py``) with the same float conversions, so spikes, traces and final state
are bit-identical to the reference; the backward is its float reverse scan, in the reference's
operation order (``a acc + g`` with the product rounded first: numba does not contract to fused
multiply-adds without ``fastmath``); its surrogate exps are torch.exp's (per step and tile row:
the float32 arguments into a buffer, one :func:`._nb_vml.exp_row`, then the lane loop reads
them), so the input gradient is the reference's, bit for bit.

Per step, integers are ``value * s`` (``s = 64 * scale``), ``keep = 4096 - D``::

    u = rstz(u keep_u) + int(f32(x) * s);   u_f = f32(f64(u) / s)
    v = rstz(v keep_v) + int(u_f * s);      v_f = f32(f64(v) / s)      (pre-reset, recorded)
    CUBA: spike = v_f >= thr;  next v = 0 where f32(v) >= f32(thr s)
    ALIF: r = rstz(r keep_r);  theta = rstz((theta - theta0) keep_th) + theta0
          spike = v_f >= f32(theta) + f32(r);  fired = int(v_f * s) >= theta + r
          where fired: r += 2 theta, theta += step

The integers are held as integer-valued float64 (this CPU class, AVX2 without AVX-512, has no
vector int64 multiply; it multiplies, scales by 2**-12 and truncates doubles 4 at a time): exact
while every state is within 2**40 (a 12-bit keep times it is below 2**52, a sum of such terms
below 2**53; the proof per operation is at :data:`F64_LIMIT`, :func:`rz`, :func:`tr`), which the
loop checks at every step. A tile of neurons whose state leaves the bound (or meets inf / NaN)
runs again from its initial state in int64, the reference's own arithmetic (wrap-around
included), so the results never depend on the path.

Before float64, a tile runs in int32 lanes where ``s`` is a power of two (``_make_tile`` ``flt``
2): 16 lanes per 512-bit vector instead of 8 doubles, and no float64 round trips (an integer
below 2**24 converts to float32 exactly, so ``f32(y / s)`` is ``f32(y) * (1/s)``). It is exact
while the states stay within 2**19 LSB (ALIF's theta / r and theta0 within 2**18, an input's
``x s`` within 2**20), checked at every step; a tile that leaves them runs again in float64 from
its initial state (and in int64 beyond that). At scale 64 (``s`` 4096) the int32 bound is a
state of 128. Measured on the Zen 4 VM (forward only, one thread, (100, 32, 1024), interleaved):
CUBA 5.72 -> 4.49 ms, ALIF 8.16 -> 6.83 ms.

Arrays are C-contiguous ``(T, M)`` / ``(M,)`` (absent ones: a 1-element dummy with its flag
off); each variant is a closure with its flags as compile-time constants (cached on disk per
variant, see ``_nb_lif``); a kernel runs neurons ``[j0, j1)`` tile by tile, the time loop inside.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ._nb_kernel import kernel, prefer_wide_vectors, prefetch_row, stable_uuids
from ._nb_vml import AVAILABLE as VML
from ._nb_vml import exp_row

#: neurons per tile of the forward (the time loop runs inside a tile: longer contiguous runs per
#: step and array for the prefetcher). Interleaved A/B (thread CPU time, 1 thread, min of 5,
#: (500,16,1024)): CUBA fwd 21.1 / 16.7 / 15.9 / 15.2 ms at 512 / 2048 / 4096 / 8192, ALIF
#: 27.7 / 24.4 / - / 22.9 ms
TILE = 8192
#: neurons per tile of the backward: 512 / 2048 / 4096 / 8192 measured alike or slower (CUBA
#: f+b 31.1 / 32.5 / 31.8 / 31.1 ms, ALIF 41.1 ms at 512, 43.1 at 2048). Each step hints the
#: next step's rows to the cache (:func:`._nb_kernel.prefetch_row`, ``make_bwd(pf=1)``): f+b
#: (wall, min of 6 interleaved with ``pf=0``) at (500, 16, 1024) CUBA 25.6 -> 21.8 ms and ALIF
#: 36.5 -> 34.0 on one thread, 12.7 -> 11.7 and 18.5 -> 17.5 on two; at (100, 32, 1024) CUBA
#: 8.9 -> 8.2 ms (1 thread), 5.4 -> 5.2 (2)
BWD_TILE = 512
#: alignment of the threads' neuron ranges (:func:`.jit.run`) and the granularity of the forward's
#: flags ``EX`` (one per ``SPLIT`` neurons): a tile spans whole ``SPLIT`` chunks (TILE is a
#: multiple of SPLIT, ranges start at multiples of SPLIT), and a tile that fails flags each of its
#: chunks, so no result depends on where a range starts
SPLIT = 512
#: the float64 forward tiles with 512-bit vectors (:func:`._nb_kernel.prefer_wide_vectors`)
WIDE = 1
F0 = np.float32(0.0)
F1 = np.float32(1.0)
I0 = np.int64(0)


@njit(cache=True, inline="always")
def rstz12(a):
    """sign(a) (|a| >> 12) on int64, as the reference's ``sign(a) * (abs(a) >> 12)``, wrap-around
    included: for ``a = -2**63`` (``abs`` wraps to itself) that is ``+2**51``, which biasing a
    negative ``a`` by 4095 before the shift would get wrong."""
    return -((-a) >> 12) if a < 0 else a >> 12


#: |state| bound of the float64 path: with |keep| <= 4096 = 2**12 every product ``y keep`` is an
#: integer below 2**52 and every sum of two bounded terms below 2**53, so float64 holds it exactly
F64_LIMIT = np.float64(2.0 ** 40)
#: 2**-12: ``y keep 2**-12`` is exact (a power of two, no underflow for integers), its trunc is rstz
INV4096 = np.float64(1.0 / 4096.0)


@njit(cache=True, inline="always")
def rz(a, flt):
    """rstz12 in either arithmetic: an integer-valued float64 (|a| < 2**53: trunc(a / 4096), exact)
    or an int64."""
    if flt:
        return np.trunc(a * INV4096)
    return rstz12(a)


@njit(cache=True, inline="always")
def tr(f, flt):
    """int64(f) of a float32 (toward zero); ``flt``: as an integer-valued float64 (exact: the
    float32 widens exactly, trunc is exact)."""
    if flt:
        return np.trunc(np.float64(f))
    return np.int64(f)


#: |state| bound of the int32 path (:func:`_make_tile` ``flt`` 2): with |keep| <= 2**12 every
#: product ``y keep`` is below 2**31 in magnitude, and a step's sums stay below 2**22
I32_LIMIT = np.float64(2.0 ** 19 - 1)
#: ALIF's theta, r, theta0 bound of the int32 path: ``theta - theta0`` within 2**19 (times a keep
#: below 2**31), ``r + 2 theta`` within 2**20; the threshold step within half of it
I32_LIMIT_TH = np.float64(2.0 ** 18 - 1)
#: |x s| bound of the int32 path's input conversion (a larger, inf or NaN one fails the tile,
#: which runs again in float64): its truncation to int32 is exact and the sum with a bounded
#: state stays below 2**21
I32_XS = np.float32(2.0 ** 20)
#: 1/4096 as float32 (exact)
INV4096_32 = np.float32(1.0 / 4096.0)


@njit(cache=True, inline="always")
def rz32(a):
    """rstz12 of an int32 product (``a`` is its int64 promotion, within 2**31 by the int32 path's
    bounds, so the cast is exact): ``(a + (4095 where a < 0)) >> 12`` in int32, toward zero; the
    casts let LLVM keep 16 lanes of int32 per 512-bit vector."""
    p = np.int32(a)
    return np.int32(np.int32(p + np.int32(np.int32(p >> 31) & 4095)) >> 12)


@njit(cache=True, inline="always")
def pz(y, flt):
    """``y + 0.0`` in float64: a -0.0 (trunc of a small negative) becomes the integers' 0, so that
    the recorded floats are bit-identical, sign of zero included."""
    if flt:
        return y + 0.0
    return y


@njit(cache=True, inline="always")
def state(a, flt):
    """A tile's copy of an int64 state or decay vector, as float64 (exact: checked below 2**40)."""
    if flt:
        return a.astype(np.float64)
    return a.copy()


@njit(cache=True, inline="always")
def out_f(y, s_d, inv, pow2):
    """f32(f64(y) / s) of an integer ``y`` (int64 or integer-valued float64); for a power-of-two
    ``s`` a multiplication by ``inv = 1/s`` (the same bits)."""
    if pow2:
        return np.float32(np.float64(y) * inv)
    return np.float32(np.float64(y) / s_d)


@njit(cache=True, inline="always")
def over(y, lim):
    """1 where |y| exceeds ``lim`` or is NaN (the float64 path is not proven exact there)."""
    return 0 if abs(y) <= lim else 1


@njit(cache=True, inline="always")
def tile_in_bounds(u0, v0, th0, r0, keep_u, keep_v, keep_th, keep_r, theta0, step, a, b, alif, ls, lt):
    """Whether a tile's initial state, decays and ALIF constants are within the bounds ``ls``
    (states), ``lt`` (ALIF's theta, r, theta0; the step ``lt / 2``) of a path (float64:
    :data:`F64_LIMIT`, :data:`LIMIT_TH`; int32: :data:`I32_LIMIT`, :data:`I32_LIMIT_TH`), keeps
    in [0, 4096]."""
    bad = 0
    for j in range(a, b):
        bad |= over(u0[j], ls) | over(v0[j], ls)
        bad |= 0 if (0 <= keep_u[j] <= 4096 and 0 <= keep_v[j] <= 4096) else 1
        if alif:
            bad |= over(th0[j], lt) | over(r0[j], lt)
            bad |= 0 if (0 <= keep_th[j] <= 4096 and 0 <= keep_r[j] <= 4096) else 1
    if alif and (over(theta0, lt) or over(step, lt / 2)):
        bad = 1
    return bad == 0


@functools.lru_cache(maxsize=None)
def make_fwd(alif: int, graded: int, store_lim: int, store_tr: int, pow2: int, tile: int = TILE,
             split: int = SPLIT, wide: int = WIDE, uni: int = 0, i32: int = 1):
    """The forward scan of one variant: spikes (fp32), current and voltage traces, and for
    ALIF the spike limit (``store_lim``), threshold / refractory traces (``store_tr``) and the
    final threshold / refractory; ``pow2``: the scale ``s`` is a power of two.

    Each tile runs in float64 (integer-valued doubles, which AVX2 multiplies in vector
    registers; it has no vector int64 multiply): exact while every state stays within
    :data:`F64_LIMIT` (products below 2**52, sums below 2**53; ALIF: theta, r and theta0
    within 2**39, so theta - theta0 and theta + 2 theta + r stay within 2**41), which the loop
    checks at every step. A tile that leaves the bound (or meets a NaN / inf) is marked in
    ``EX[chunk]`` (1) for each ``split``-neuron chunk it spans (``tile`` a multiple of ``split``,
    the ranges ``[j0, j1)`` split-aligned): the caller runs them again from their initial state
    with :func:`make_fwd_i64`, the reference's own arithmetic (compiled on first need only: most
    runs never leave the bounds, and each variant's compile is seconds). ``tile``, ``split``:
    closure constants (benchmarks compare tiles in one process)."""
    tile_f64 = _make_tile(1, alif, graded, store_lim, store_tr, pow2, wide, uni)
    tile_i32 = _make_tile(2, alif, graded, store_lim, store_tr, pow2, wide, uni) if (pow2 and i32) else tile_f64
    I32 = bool(pow2 and i32)
    TILE, SPLIT = tile, split
    assert TILE % SPLIT == 0

    @kernel
    def loihi_fwd(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf, rf,
                  s_f, s_d, inv, thr_f, thr_s_f, theta0, step, EX, j0, j1):
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            ok = False
            if I32:    # int32 first where the tile's states start within its bounds
                ok = tile_in_bounds(u0, v0, th0, r0, keep_u, keep_v, keep_th, keep_r, theta0, step, a, b, alif,
                                    I32_LIMIT, I32_LIMIT_TH)
                if ok:
                    ok = tile_i32(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf,
                                  rf, s_f, s_d, inv, thr_f, thr_s_f, theta0, step, a, b)
            if not ok:    # float64 (from the initial state again where int32 failed)
                ok = tile_in_bounds(u0, v0, th0, r0, keep_u, keep_v, keep_th, keep_r, theta0, step, a, b, alif,
                                    F64_LIMIT, LIMIT_TH)
                if ok:
                    ok = tile_f64(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf,
                                  rf, s_f, s_d, inv, thr_f, thr_s_f, theta0, step, a, b)
            for k in range(a // SPLIT, (b + SPLIT - 1) // SPLIT):
                EX[k] = 0 if ok else 1

    return loihi_fwd


@functools.lru_cache(maxsize=None)
def make_fwd_i64(alif: int, graded: int, store_lim: int, store_tr: int, pow2: int, tile: int = TILE,
                 uni: int = 0):
    """The int64 forward of the variant of :func:`make_fwd` over neurons ``[j0, j1)``: the
    rerun of the tiles that left the float64 path's bounds (same arguments, no ``EX``)."""
    tile_i64 = _make_tile(0, alif, graded, store_lim, store_tr, pow2, 0, uni)
    TILE = tile

    @kernel
    def loihi_fwd_i64(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf, rf,
                      s_f, s_d, inv, thr_f, thr_s_f, theta0, step, j0, j1):
        for a in range(j0, j1, TILE):
            tile_i64(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf, rf,
                     s_f, s_d, inv, thr_f, thr_s_f, theta0, step, a, min(j1, a + TILE))

    return loihi_fwd_i64


def rerun_int64(kernel, ex, M: int, tile: int, args) -> int:
    """Runs ``kernel(*args, j0, j1)`` (an int64 forward) over each run of consecutive tiles that
    ``ex`` marks; returns how many tiles that was."""
    bad = np.flatnonzero(ex)
    k = 0
    while k < bad.size:
        e = k
        while e + 1 < bad.size and bad[e + 1] == bad[e] + 1:
            e += 1
        kernel(*args, int(bad[k]) * tile, min(M, (int(bad[e]) + 1) * tile))
        k = e + 1
    return int(bad.size)


#: ALIF's theta, r (and theta0) bound of the float64 path
LIMIT_TH = np.float64(2.0 ** 39)


@njit(cache=True, inline="always")
def adapt(limt, tht, rt, j, lim, th_f, r_f, fired, r, th, step, store_lim, store_tr, flt):
    """The adaptive threshold's step (ALIF, AdRF): record the spike limit and the float theta / r,
    then ``r += 2 theta, theta += step`` where fired; returns (r, theta, 1 where the float64 path
    left its bound)."""
    if store_lim:
        limt[j] = lim
    if store_tr:
        tht[j] = th_f
        rt[j] = r_f
    rn = r + 2 * th if fired else r
    tn = th + step if fired else th
    lt = I32_LIMIT_TH if flt == 2 else LIMIT_TH
    return rn, tn, (over(rn, lt) | over(tn, lt)) if flt else 0


@njit(cache=True, inline="always")
def tile_state(a, flt, i32):
    """A tile's copy of a state or decay vector: int32 for the int32 path (``i32``; exact, the
    tile's bounds are checked first), else :func:`state`."""
    if i32:
        return a.astype(np.int32)
    return state(a, flt)


def _make_tile(flt, alif, graded, store_lim, store_tr, pow2, wide=0, uni=0):
    """One tile's time loop in float64 (``flt`` 1: returns False as soon as a state leaves the
    bounds), int32 (``flt`` 2, a power-of-two ``s`` only: the same, with the bounds
    :data:`I32_LIMIT`, :data:`I32_LIMIT_TH`, :data:`I32_XS`; integers below 2**24 convert to
    float32 exactly, so ``f32(y / s)`` is ``f32(y) * (1/s)`` and ``int(f32(y / s) s)`` is ``y``)
    or int64 (``flt`` 0, always True); ``wide``: 512-bit vectors (:func:`._nb_kernel.prefer_wide_vectors`);
    ``uni``: every decay keep has one value over all neurons (the decays given as numbers, the
    common case: the caller checks, :func:`uniform_keeps`), so the lane loop multiplies by the
    keeps of neuron 0 as scalars: the same operands, so the same bits, and two (ALIF: four)
    float64 tile rows fewer to stream through the cache each step."""
    WIDE = wide    # a closure constant: prefer_wide_vectors takes it as a literal
    UNI = uni      # a closure constant: the dead branch of each select below is compiled away
    I32 = int(flt == 2)    # closure constants: the int32 path's branches, the helpers' flag
    assert pow2 or not I32
    F = 0 if I32 else flt

    @kernel
    def tile(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf, rf,
             s_f, s_d, inv, thr_f, thr_s_f, theta0, step, a, b):
        prefer_wide_vectors(WIDE)
        T, n = x.shape[0], b - a
        e = a + 1 if UNI else b    # the keeps' rows: one value each when uniform
        u, v = tile_state(u0[a:b], F, I32), tile_state(v0[a:b], F, I32)
        ku, kv = tile_state(keep_u[a:e], F, I32), tile_state(keep_v[a:e], F, I32)
        c = a if alif else 0
        d = b if alif else 1
        dk = c + 1 if UNI else d
        th, r = tile_state(th0[c:d], F, I32), tile_state(r0[c:d], F, I32)
        kth, kr = tile_state(keep_th[c:dk], F, I32), tile_state(keep_r[c:dk], F, I32)
        ku0, kv0, kth0, kr0 = ku[0], kv[0], kth[0], kr[0]
        inv32 = np.float32(inv)    # 1/s, exact (s a power of two within 2**60 on this path)
        bad = 0
        for t in range(T):
            xt, st, ut, vt = x[t, a:b], S[t, a:b], U[t, a:b], V[t, a:b]
            limt = LIM[t, a:b] if store_lim else LIM[0, 0:1]
            tht, rt = (TH[t, a:b], R[t, a:b]) if store_tr else (TH[0, 0:1], R[0, 0:1])
            for j in range(n):
                kuj = ku0 if UNI else ku[j]
                kvj = kv0 if UNI else kv[j]
                if I32:    # the same integers and floats in int32 lanes (bounded: see _make_tile)
                    xs = xt[j] * s_f
                    okx = abs(xs) < I32_XS    # False for inf / NaN too
                    bad |= 0 if okx else 1
                    uj = np.int32(rz32(u[j] * kuj) + np.int32(xs if okx else F0))
                    uf = np.float32(uj) * inv32
                    vj = np.int32(rz32(v[j] * kvj) + np.int32(uf * s_f))
                    vf = np.float32(vj) * inv32
                    bad |= over(uj, I32_LIMIT) | over(vj, I32_LIMIT)
                else:
                    uj = pz(rz(u[j] * kuj, flt) + tr(xt[j] * s_f, flt), flt)
                    uf = out_f(uj, s_d, inv, pow2)
                    vj = pz(rz(v[j] * kvj, flt) + tr(uf * s_f, flt), flt)
                    vf = out_f(vj, s_d, inv, pow2)
                    if flt:
                        bad |= over(uj, F64_LIMIT) | over(vj, F64_LIMIT)
                if alif:
                    krj = kr0 if UNI else kr[j]
                    kthj = kth0 if UNI else kth[j]
                    if I32:
                        rj = rz32(r[j] * krj)
                        tj = np.int32(rz32((th[j] - theta0) * kthj) + theta0)
                        thj, rjf = np.float32(tj) * inv32, np.float32(rj) * inv32
                        fired = np.int32(vf * s_f) >= tj + rj
                    else:
                        rj = pz(rz(r[j] * krj, flt), flt)
                        tj = pz(rz((th[j] - theta0) * kthj, flt) + theta0, flt)
                        thj, rjf = out_f(tj, s_d, inv, pow2), out_f(rj, s_d, inv, pow2)
                        fired = tr(vf * s_f, flt) >= tj + rj
                    lim = thj + rjf
                    z = F1 if vf >= lim else F0
                    r[j], th[j], b_ = adapt(limt, tht, rt, j, lim, thj, rjf, fired, rj, tj, step, store_lim,
                                            store_tr, flt)
                    bad |= b_
                else:
                    z = F1 if vf >= thr_f else F0
                    if I32:
                        vj = np.int32(0) if np.float32(vj) >= thr_s_f else vj    # exact below 2**24
                    else:
                        vj = vj - vj if np.float32(np.float64(vj)) >= thr_s_f else vj  # f32 via f64, as the reference
                st[j] = z * vf if graded else z
                ut[j] = uf
                vt[j] = vf
                u[j] = uj
                v[j] = vj
            if bad:
                return False
        if alif:
            for j in range(n):
                thf[a + j] = out_f(th[j], s_d, inv, pow2)
                rf[a + j] = out_f(r[j], s_d, inv, pow2)
        return True

    return tile


@njit(cache=True, inline="always")
def slayer_arg(x, tau, graded):
    """The exp argument of SLAYER's pseudo-derivative at ``x = v - limit``, as RealSpike's
    backward computes it in float32: graded ``clamp(x, max=0) / tau`` (NaN stays NaN, as
    torch.clamp), binary ``-|x| / tau``."""
    if graded:
        return (F0 if x > F0 else x) / tau
    return -abs(x) / tau


@functools.lru_cache(maxsize=None)
def make_bwd(alif: int, graded: int, has_gs: int, has_gu: int, has_gv: int, need_du: int, need_dv: int,
             tile: int = BWD_TILE, pf: int = 1, wide: int = 1):
    """The reverse scan of one variant (the float model of the two chained integrators,
    ignoring the reset, as lava-dl's): ``gv = gs d(v_f - limit) + g_v[t]``,
    ``acc_v = a_v acc_v + gv``, ``acc_u = a_u acc_u + (acc_v + g_u[t])``, ``gx[t] = acc_u``.
    For the decay gradients it writes the per-step terms ``PU[t] = acc_u[t] u[t-1]`` and
    ``PV[t] = acc_v[t] v[t-1]`` (t >= 1), which the caller sums over time with the reference's
    own ``sum(0)`` (torch's cascade order, so the sums are the same bits). ``gs_t``, ``gu_t``,
    ``gv_t``: the row step of each upstream gradient (0: one row for every step, a gradient that
    autograd broadcast over time, e.g. of a sum, passed without materialising it)."""

    vml = VML      # a closure constant: cached variants differ with and without VML
    TILE = tile    # a closure constant too
    WIDE = wide    # 512-bit vectors (prefer_wide_vectors; 0 for A/B)
    PF = pf        # hint the next step's rows (:func:`._nb_kernel.prefetch_row`; 0 for A/B)

    @kernel
    def loihi_bwd(V, U, LIM, gs, gus, gvs, gs_t, gu_t, gv_t, a_u, a_v, gx, PU, PV, thr_f, tau, coef, j0, j1):
        prefer_wide_vectors(WIDE)
        T = V.shape[0]
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            n = b - a
            acu, acv = np.zeros(n, np.float32), np.zeros(n, np.float32)
            au, av = a_u[a:b], a_v[a:b]
            ex = np.empty(n if has_gs else 1, np.float32)   # this step's surrogate exps
            for t in range(T - 1, -1, -1):
                vt = V[t, a:b]
                limt = LIM[t, a:b] if (alif and has_gs) else LIM[0, 0:1]
                gst = gs[t * gs_t, a:b] if has_gs else gs[0, 0:1]
                gvt = gvs[t * gv_t, a:b] if has_gv else gvs[0, 0:1]
                gut = gus[t * gu_t, a:b] if has_gu else gus[0, 0:1]
                du_t = need_du and t > 0
                dv_t = need_dv and t > 0
                vp, pvt = (V[t - 1, a:b], PV[t, a:b]) if dv_t else (V[0, 0:1], PV[0, 0:1])
                up, put = (U[t - 1, a:b], PU[t, a:b]) if du_t else (U[0, 0:1], PU[0, 0:1])
                gxt = gx[t, a:b]
                if PF and t > 0:    # the next step's rows (the trace, the gradient written)
                    prefetch_row(V[t - 1, a:b], n)
                    prefetch_row(gx[t - 1, a:b], n)
                    if alif and has_gs:
                        prefetch_row(LIM[t - 1, a:b], n)
                    if has_gs and gs_t:
                        prefetch_row(gs[(t - 1) * gs_t, a:b], n)
                    if has_gv and gv_t:
                        prefetch_row(gvs[(t - 1) * gv_t, a:b], n)
                    if has_gu and gu_t:
                        prefetch_row(gus[(t - 1) * gu_t, a:b], n)
                    if need_du and t > 1:
                        prefetch_row(U[t - 2, a:b], n)
                        prefetch_row(PU[t - 1, a:b], n)
                    if need_dv and t > 1:
                        prefetch_row(PV[t - 1, a:b], n)
                if has_gs:    # the reference's exp arguments, then one row of exps (torch.exp's bits)
                    for j in range(n):
                        ex[j] = slayer_arg(vt[j] - (limt[j] if alif else thr_f), tau, graded)
                    exp_row(n, ex, vml)
                for j in range(n):
                    g = F0
                    if has_gs:    # RealSpike: grad * (coef * exp(...))
                        g = gst[j] * (coef * ex[j])
                    if has_gv:
                        g = g + gvt[j] if has_gs else gvt[j]
                    av_j = av[j] * acv[j] + g
                    gu = av_j + gut[j] if has_gu else av_j
                    au_j = au[j] * acu[j] + gu
                    if du_t:
                        put[j] = au_j * up[j]
                    if dv_t:
                        pvt[j] = av_j * vp[j]
                    acu[j] = au_j
                    acv[j] = av_j
                    gxt[j] = au_j

    return loihi_bwd


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
