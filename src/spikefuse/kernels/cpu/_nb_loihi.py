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

import numpy as np
from numba import njit

TILE = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)
I0 = np.int64(0)


@njit(cache=True, inline="always")
def rstz12(a):
    """sign(a) (|a| >> 12) on int64, branch-free: a negative ``a`` is biased by 4095 so that the
    arithmetic shift rounds toward zero."""
    return (a + ((a >> 63) & 4095)) >> 12


@njit(cache=True, inline="always")
def to_f32(y, s_d):
    return np.float32(np.float64(y) / s_d)


@functools.lru_cache(maxsize=None)
def make_fwd(alif: int, graded: int, store_lim: int, store_tr: int):
    """The forward scan of one variant: spikes (fp32), current and voltage traces, and for
    ALIF the spike limit (``store_lim``), threshold / refractory traces (``store_tr``) and the
    final threshold / refractory."""

    @njit(cache=True, nogil=True, error_model="numpy")
    def loihi_fwd(x, S, U, V, LIM, TH, R, keep_u, keep_v, keep_th, keep_r, u0, v0, th0, r0, thf, rf,
                  s_f, s_d, thr_f, thr_s_f, theta0, step, j0, j1):
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
                    uj = rstz12(u[j] * ku[j]) + np.int64(xt[j] * s_f)
                    uf = to_f32(uj, s_d)
                    vj = rstz12(v[j] * kv[j]) + np.int64(uf * s_f)
                    vf = to_f32(vj, s_d)
                    if alif:
                        rj = rstz12(r[j] * kr[j])
                        tj = rstz12((th[j] - theta0) * kth[j]) + theta0
                        thj, rjf = to_f32(tj, s_d), to_f32(rj, s_d)
                        lim = thj + rjf
                        z = F1 if vf >= lim else F0
                        fi = np.int64(1) if np.int64(vf * s_f) >= tj + rj else I0
                        if store_lim:
                            limt[j] = lim
                        if store_tr:
                            tht[j] = thj
                            rt[j] = rjf
                        r[j] = rj + 2 * tj * fi
                        th[j] = tj + step * fi
                    else:
                        z = F1 if vf >= thr_f else F0
                        vj = I0 if np.float32(vj) >= thr_s_f else vj
                    st[j] = z * vf if graded else z
                    ut[j] = uf
                    vt[j] = vf
                    u[j] = uj
                    v[j] = vj
            if alif:
                for j in range(n):
                    thf[a + j] = to_f32(th[j], s_d)
                    rf[a + j] = to_f32(r[j], s_d)

    return loihi_fwd


@njit(cache=True, inline="always")
def slayer_times(g, x, tau, coef, graded):
    """``g`` times SLAYER's pseudo-derivative at ``x = v - limit``, as RealSpike's backward:
    graded ``coef exp(min(x, 0) / tau)`` (coef = scale_rho), binary ``coef exp(-|x| / tau)``
    (coef = f32(scale_rho / (2 tau_rho)))."""
    if graded:
        return g * (coef * np.exp((x if x < F0 else F0) / tau))
    return g * (coef * np.exp(-abs(x) / tau))


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
