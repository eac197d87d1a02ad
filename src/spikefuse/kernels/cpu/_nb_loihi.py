"""Numba Loihi CUBA / ALIF scans (lava-dl fixed point, SPEC.md 3.3, 3.4, 4, 5), loaded through
:mod:`.jit`. The forward is the integer dynamics of the Triton kernel
(``kernels/triton/loihi.py``), int64 state and the same float conversions, so spikes, traces and
final state are bit-identical to the reference; the backward is its float reverse scan, in the
reference's operation order (``a acc + g`` with the product rounded first: numba does not
contract to fused multiply-adds without ``fastmath``).

Per step, integers are ``value * s`` (``s = 64 * scale``), ``keep = 4096 - D``::

    u = rstz(u keep_u) + int(f32(x) * s);   u_f = f32(f64(u) / s)
    v = rstz(v keep_v) + int(u_f * s);      v_f = f32(f64(v) / s)      (pre-reset, recorded)
    CUBA: spike = v_f >= thr;  next v = 0 where f32(v) >= f32(thr s)
    ALIF: r = rstz(r keep_r);  theta = rstz((theta - theta0) keep_th) + theta0
          spike = v_f >= f32(theta) + f32(r);  fired = int(v_f * s) >= theta + r
          where fired: r += 2 theta, theta += step

Arrays are C-contiguous ``(T, M)`` / ``(M,)`` (absent ones: a 1-element dummy with its flag
off); each variant is a closure with its flags as compile-time constants (cached on disk per
variant, see ``_nb_lif``); a kernel runs neurons ``[j0, j1)`` tile by tile, the time loop inside.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

TILE = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)
I0 = np.int64(0)


@njit(cache=True, inline="always")
def rstz12(a):
    """sign(a) (|a| >> 12) on int64, branch-free: a negative ``a`` is biased by 4095 so that the
    arithmetic shift rounds toward zero."""
    return (a + ((a >> 63) & 4095)) >> 12


#: 2**52 + 2**51: ``bits(MAGIC) + y`` is the bit pattern of the double ``MAGIC + y`` for |y| < 2**51
MAGIC = np.float64(6755399441055744.0)
MAGIC_BITS = np.int64(np.array([MAGIC]).view(np.int64)[0])


@intrinsic
def _f64_from_bits(typingctx, y):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def to_f64(y, fast):
    """float64(y) of an int64; ``fast`` (|y| < 2**51, checked by the caller) through the
    exponent trick, which vectorises (AVX2 has no packed int64 -> double conversion)."""
    if fast:
        return _f64_from_bits(y + MAGIC_BITS) - MAGIC
    return np.float64(y)


@njit(cache=True, inline="always")
def trunc_i64(f, fast):
    """int64(f) of a float32, rounding toward zero; ``fast`` (|f| < 2**31) through int32."""
    if fast:
        return np.int64(np.int32(f))
    return np.int64(f)


@njit(cache=True, inline="always")
def to_f32(y, s_d, inv, fast, pow2):
    """f32(f64(y) / s); for a power-of-two ``s`` the division is a multiplication by ``inv = 1/s``
    (exact: same bits)."""
    if pow2:
        return np.float32(to_f64(y, fast) * inv)
    return np.float32(to_f64(y, fast) / s_d)


@functools.lru_cache(maxsize=None)
def make_fwd(alif: int, graded: int, store_lim: int, store_tr: int, fast: int, pow2: int):
    """The forward scan of one variant: spikes (fp32), current and voltage traces, and for
    ALIF the spike limit (``store_lim``), threshold / refractory traces (``store_tr``) and the
    final threshold / refractory. ``fast``: the caller has bounded every state below 2**30 (the
    float -> int conversions go through int32, int -> float through the exponent trick: the
    same values, vectorised); ``pow2``: the scale ``s`` is a power of two."""

    @njit(cache=True, nogil=True, error_model="numpy")
    def loihi_fwd(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf, rf,
                  s_f, s_d, inv, thr_f, thr_s_f, theta0, step, j0, j1):
        T = x.shape[0]
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            n = b - a
            u, v = u0[a:b].copy(), v0[a:b].copy()
            th, r = (th0[a:b].copy(), r0[a:b].copy()) if alif else (u0[0:1].copy(), u0[0:1].copy())
            ku, kv, kth, kr = keep_u[a:b], keep_v[a:b], keep_th[a:b], keep_r[a:b]
            for t in range(T):
                xt, st, ut, vt = x[t, a:b], S[t, a:b], U[t, a:b], V[t, a:b]
                limt = LIM[t, a:b] if store_lim else LIM[0, 0:1]
                tht, rt = (TH[t, a:b], R[t, a:b]) if store_tr else (TH[0, 0:1], R[0, 0:1])
                for j in range(n):
                    uj = rstz12(u[j] * ku[j]) + trunc_i64(xt[j] * s_f, fast)
                    uf = to_f32(uj, s_d, inv, fast, pow2)
                    vj = rstz12(v[j] * kv[j]) + trunc_i64(uf * s_f, fast)
                    vf = to_f32(vj, s_d, inv, fast, pow2)
                    if alif:
                        rj = rstz12(r[j] * kr[j])
                        tj = rstz12((th[j] - theta0) * kth[j]) + theta0
                        thj, rjf = to_f32(tj, s_d, inv, fast, pow2), to_f32(rj, s_d, inv, fast, pow2)
                        lim = thj + rjf
                        z = F1 if vf >= lim else F0
                        fi = np.int64(1) if trunc_i64(vf * s_f, fast) >= tj + rj else I0
                        if store_lim:
                            limt[j] = lim
                        if store_tr:
                            tht[j] = thj
                            rt[j] = rjf
                        r[j] = rj + 2 * tj * fi
                        th[j] = tj + step * fi
                    else:
                        z = F1 if vf >= thr_f else F0
                        vj = I0 if np.float32(to_f64(vj, fast)) >= thr_s_f else vj  # f32(f64(v)) == f32(v)
                    st[j] = z * vf if graded else z
                    ut[j] = uf
                    vt[j] = vf
                    u[j] = uj
                    v[j] = vj
            if alif:
                for j in range(n):
                    thf[a + j] = to_f32(th[j], s_d, inv, fast, pow2)
                    rf[a + j] = to_f32(r[j], s_d, inv, fast, pow2)

    return loihi_fwd


@intrinsic
def _f64_bits(typingctx, y):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _fma64(typingctx, a, b, c):
    def codegen(context, builder, sig, args):
        return builder.fma(*args)
    return types.float64(types.float64, types.float64, types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01   # ln 2 = _LN2_HI + _LN2_LO
_LN2_LO = 1.90821492927058770002e-10
#: exp(s) = 1 + s + s^2 (1/2! + s/3! + ... + s^10/12!) on |s| <= ln2 / 2 (Taylor, error < 1e-14)
_P = tuple(1.0 / math.factorial(k) for k in range(12, 1, -1))
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9, _P10 = _P


@njit(cache=True, inline="always")
def exp_f32(d):
    """exp(d) of a float32 ``d <= 0``, computed in float64 and rounded once (so float32-correct
    but for one case in many millions), branch-free so that the loop vectorises (libm's expf is
    a call per element): ``d = q ln2 + s`` (q by the round-to-integer trick), the polynomial,
    times ``2^q`` built in the exponent field; 0 below -104 (exp < 2^-150)."""
    x = np.float64(d)
    t = x * _LOG2E + MAGIC
    q = t - MAGIC
    s = _fma64(q, -_LN2_LO, _fma64(q, -_LN2_HI, x))
    p = _fma64(_fma64(_fma64(_fma64(_fma64(_P0, s, _P1), s, _P2), s, _P3), s, _P4), s, _P5)
    p = _fma64(_fma64(_fma64(_fma64(_fma64(p, s, _P6), s, _P7), s, _P8), s, _P9), s, _P10)
    e = (1.0 + _fma64(s * s, p, s)) * _f64_from_bits(((_f64_bits(t) - MAGIC_BITS) + 1023) << 52)
    return np.float32(e) if d >= np.float32(-104.0) else F0


@njit(cache=True, inline="always")
def slayer_times(g, x, tau, coef, graded):
    """``g`` times SLAYER's pseudo-derivative at ``x = v - limit``, as RealSpike's backward:
    graded ``coef exp(min(x, 0) / tau)`` (coef = scale_rho), binary ``coef exp(-|x| / tau)``
    (coef = f32(scale_rho / (2 tau_rho)))."""
    if graded:
        return g * (coef * exp_f32((x if x < F0 else F0) / tau))
    return g * (coef * exp_f32(-abs(x) / tau))


@functools.lru_cache(maxsize=None)
def make_bwd(alif: int, graded: int, has_gs: int, has_gu: int, has_gv: int, need_du: int, need_dv: int):
    """The reverse scan of one variant (the float model of the two chained integrators,
    ignoring the reset, as lava-dl's): ``gv = gs d(v_f - limit) + g_v[t]``,
    ``acc_v = a_v acc_v + gv``, ``acc_u = a_u acc_u + (acc_v + g_u[t])``, ``gx[t] = acc_u``;
    decay gradients ``dscale sum_{t>=1} acc[t] y[t-1]`` per neuron."""

    @njit(cache=True, nogil=True, error_model="numpy")
    def loihi_bwd(V, U, LIM, gs, gus, gvs, a_u, a_v, gx, gdu, gdv, thr_f, tau, coef, dscale, j0, j1):
        T = V.shape[0]
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            acc = np.zeros((4, b - a), np.float32)  # acc_u, acc_v, their decay-gradient sums
            au, av = a_u[a:b], a_v[a:b]
            for t in range(T - 1, -1, -1):
                vt = V[t, a:b]
                limt = LIM[t, a:b] if (alif and has_gs) else LIM[0, 0:1]
                gst = gs[t, a:b] if has_gs else gs[0, 0:1]
                gvt = gvs[t, a:b] if has_gv else gvs[0, 0:1]
                gut = gus[t, a:b] if has_gu else gus[0, 0:1]
                vp = V[t - 1, a:b] if (need_dv and t > 0) else V[0, 0:1]
                up = U[t - 1, a:b] if (need_du and t > 0) else U[0, 0:1]
                gxt = gx[t, a:b]
                for j in range(b - a):
                    g = F0
                    if has_gs:
                        lim = limt[j] if alif else thr_f
                        g = slayer_times(gst[j], vt[j] - lim, tau, coef, graded)
                    if has_gv:
                        g = g + gvt[j] if has_gs else gvt[j]
                    av_j = av[j] * acc[1, j] + g
                    gu = av_j + gut[j] if has_gu else av_j
                    au_j = au[j] * acc[0, j] + gu
                    if need_du and t > 0:
                        acc[2, j] += au_j * up[j]
                    if need_dv and t > 0:
                        acc[3, j] += av_j * vp[j]
                    acc[0, j] = au_j
                    acc[1, j] = av_j
                    gxt[j] = au_j
            if need_du:
                gdu[a:b] = acc[2] * dscale
            if need_dv:
                gdv[a:b] = acc[3] * dscale

    return loihi_bwd
