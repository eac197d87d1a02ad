"""Numba scans of norse's refractory LIF and AdEx LIF, loaded through :mod:`.jit` (never at
import of the library). Float32, the reference's operation order (the equations and the op
encodings: kernels/_norse_host.py) and, in the reverse scans, autograd's order of summing each
gradient: the same arithmetic as the Triton VJPs of kernels/triton/norse.py (whose docstring
gives the order). The feed-forward LIF's charge and norse's surrogates are reused from
:mod:`._nb_peers`. AdEx's ``exp((v - v_th) / delta_T)``: per step and tile, a first loop writes
the arguments of the row into a tile buffer, one :func:`._nb_vml.exp_row` call (torch.exp's
routine, MKL VML: the reference's bits; without it libm's expf) turns them into the exps, then
the lane loop reads them (libm's expf called in the lane loop cost ~9 ns per neuron-step and
kept it scalar). The surrogates' exps (norse's HeaviErfc, the only norse method with one) the
same way in the reverse scans: a row of arguments (:func:`._nb_peers.exp_arg`, at ``rho`` and at
``vd - v_th`` for the refractory LIF, at ``vd - v_th`` for AdEx), one ``exp_row`` each, read by
the lane loop through :func:`._nb_peers.sg_times_ex` (bit-identical to the reference with VML).

Arrays: ``x`` and the traces C-contiguous fp32 ``(T, M)``; the per-neuron parameters stacked as
``P`` ``(n_params, M)`` (the last two rows: the surrogate's c0, c1 per neuron) and the initial state as ``S0`` ``(3, M)``; absent incoming gradients
are 1-element dummies with their flag off. Each variant (surrogate, which gradients exist) is
its own compiled kernel with its flags as compile-time constants (closures, as in
:mod:`._nb_peers`; compiled by :func:`._nb_kernel.kernel`, which lets LLVM vectorise the lane
loops); a kernel runs the neuron range ``[j0, j1)`` tile by tile, the time loop
inside a tile, and :func:`.jit.run` gives each thread one range.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ._nb_kernel import kernel, prefer_wide_vectors, stable_uuids
from ._nb_peers import exp_arg, has_exp, norse_charge, sg_times_ex, trow
from ._nb_vml import AVAILABLE, exp_row

#: neurons per tile (the time loop runs inside a tile; longer runs per step and array for the
#: prefetcher). Interleaved A/B (thread CPU time, 1 thread, min of 7, (500,16,1024)): refractory
#: fwd / f+b 12.7 / 35.9 ms (2048) -> 11.8 / 34.9 (8192), AdEx 24.4 / 57.7 -> 23.0 / 55.7
TILE = 8192
#: alignment of the threads' neuron ranges (no result depends on where a range starts)
SPLIT = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)


@njit(cache=True, inline="always")
def uniform_rows(P, a, e):
    """Whether every parameter row of ``P`` has one value (bitwise) over neurons ``[a, e)``: the
    parameters given as numbers (norse's default), or one value per channel of a single channel.
    A tile's lane loops then take the parameters as scalars (:func:`params_refrac` / :func:`params_adex`: the same operands, so
    the same results) instead of reading 8 (refractory) or 11 (AdEx) parameter rows per step,
    which competed with the state, carry and I/O rows for L1."""
    b = P.view(np.int32)
    for r in range(P.shape[0]):
        b0 = b[r, a]
        for k in range(a + 1, e):
            if b[r, k] != b0:
                return False
    return True


@njit(cache=True, nogil=True)
def all_uniform(P):
    """:func:`uniform_rows` over every neuron: the forward's ``uni`` variant (:func:`make_fwd`)."""
    return uniform_rows(P, 0, P.shape[1]) if P.shape[1] > 0 else True


@njit(cache=True, inline="always")
def params_refrac(P, k):
    """The refractory LIF's parameters of neuron ``k`` as a tuple: (am, asn, vl, vth, vr,
    rho_reset, c0, c1)."""
    return (P[0, k], P[1, k], P[2, k], P[3, k], P[4, k], P[5, k], P[6, k], P[7, k])


@njit(cache=True, inline="always")
def rows_refrac(P, a, e):
    """The refractory LIF's parameter rows over neurons ``[a, e)`` as a tuple of 1-D views. A
    lane loop reads ``row[jj]`` (an index LLVM knows is not negative: contiguous vector loads;
    ``P[r, a + jj]`` keeps numba's negative-index fix-up per lane and is loaded by gathers)."""
    return (P[0, a:e], P[1, a:e], P[2, a:e], P[3, a:e], P[4, a:e], P[5, a:e], P[6, a:e], P[7, a:e])


@njit(cache=True, inline="always")
def at_refrac(R, jj):
    """:func:`params_refrac` of neuron ``jj`` of the rows ``R`` (:func:`rows_refrac`)."""
    return (R[0][jj], R[1][jj], R[2][jj], R[3][jj], R[4][jj], R[5][jj], R[6][jj], R[7][jj])


@njit(cache=True, inline="always")
def rows_adex(P, a, e):
    """AdEx's parameter rows over ``[a, e)`` (as :func:`rows_refrac`)."""
    return (P[0, a:e], P[1, a:e], P[2, a:e], P[3, a:e], P[4, a:e], P[5, a:e], P[6, a:e], P[7, a:e], P[8, a:e],
            P[9, a:e], P[10, a:e])


@njit(cache=True, inline="always")
def at_adex(R, jj):
    """:func:`params_adex` of neuron ``jj`` of the rows ``R`` (:func:`rows_adex`)."""
    return (R[0][jj], R[1][jj], R[2][jj], R[3][jj], R[4][jj], R[5][jj], R[6][jj], R[7][jj], R[8][jj], R[9][jj],
            R[10][jj])


@njit(cache=True, inline="always")
def params_adex(P, k):
    """AdEx's parameters of neuron ``k`` as a tuple: (am, asn, aa, vl, vth, vr, ac, asp, dT, c0,
    c1)."""
    return (P[0, k], P[1, k], P[2, k], P[3, k], P[4, k], P[5, k], P[6, k], P[7, k], P[8, k], P[9, k], P[10, k])


# --------------------------------------------------------------------------- refractory LIF


@njit(cache=True, inline="always")
def refrac_parts(x, v, i, rho, am, asn, vl, vth, vr):
    """(j, w, vd, i', zl, vn, m, zo, relu(rho - m))."""
    j, w, vd, i_new = norse_charge(x, v, i, am, asn, vl)
    zl = F1 if vd - vth > F0 else F0
    vn = (F1 - zl) * vd + zl * vr
    m = F1 if rho > F0 else F0
    zo = (F1 - m) * zl
    r1 = rho - m
    r2 = r1 if r1 > F0 else F0
    return j, w, vd, i_new, zl, vn, m, zo, r2


@njit(cache=True, inline="always")
def refrac_step(x, v, i, rho, p):
    """One forward step of a neuron with parameters ``p`` (:func:`params_refrac`): (z, v', i', rho')."""
    _, _, _, i_new, _, vn, m, zo, r2 = refrac_parts(x, v, i, rho, p[0], p[1], p[2], p[3], p[4])
    return zo, (F1 - m) * vn + m * v, i_new, (F1 - zo) * r2 + zo * p[5]


@njit(cache=True, inline="always")
def refrac_vjp(C, jj, x, v, i, rho, g, p, has_sg, kid, acc, need_params, ex_r, ex_v):
    """One step back for a neuron with parameters ``p`` (:func:`params_refrac`): reads the carries ``C[:, jj]`` (v: m v, v + dv, vl - v;
    i; rho: rho - m, threshold(rho)) plus this step's incoming gradients ``g`` (spike, v, i,
    rho traces), writes the carries of step t-1 and returns gX. ``ex_r`` / ``ex_v``: the
    surrogate's exp at ``rho`` / ``vd - v_th`` (HeaviErfc; :func:`._nb_peers.sg_times_ex`)."""
    gz, gv, gi, gr = g
    am, asn, vl, vth, vr, rr, c0, c1 = p
    j, w, vd, _, zl, vn, m, zo, r2 = refrac_parts(x, v, i, rho, am, asn, vl, vth, vr)
    g_vo = ((C[0, jj] + gv) + C[1, jj]) + C[2, jj]
    g_i = C[3, jj] + gi
    g_rho = (C[4, jj] + gr) + C[5, jj]
    g_r1 = g_rho * (F1 - zo) if r2 > F0 else F0
    g_vn = g_vo * (F1 - m)
    g_vd = g_vn * (F1 - zl)
    g_vth = F0
    g_rs = F0
    if has_sg:
        g_zo = gz + g_rho * rr
        g_zo = g_zo + (-(g_rho * r2))
        g_m = (((-g_r1) + (-(g_zo * zl))) + g_vo * v) + (-(g_vo * vn))
        g_rs = sg_times_ex(g_m, rho, kid, c0, c1, ex_r)
        g_zl = (g_zo * (F1 - m) + g_vn * vr) + (-(g_vn * vd))
        g_u = sg_times_ex(g_zl, vd - vth, kid, c0, c1, ex_v)
        g_vd = g_vd + g_u
        g_vth = -g_u
    g_w = g_vd * am
    g_j = (g_i + g_i * asn) + g_w
    C[0, jj], C[1, jj], C[2, jj], C[3, jj], C[4, jj], C[5, jj] = g_vo * m, g_vd, -g_w, g_j, g_r1, g_rs
    if need_params:
        acc[0, jj] += g_vd * w
        acc[1, jj] += g_i * j
        acc[2, jj] += g_w
        acc[3, jj] += g_vth
        acc[4, jj] += g_vn * zl
        acc[5, jj] += g_rho * zo
    return g_j


# --------------------------------------------------------------------------- AdEx


@njit(cache=True, inline="always")
def adex_arg(v, p):
    """The exp's argument ``(v - v_th) / delta_T`` of a neuron with parameters ``p`` (as the
    reference computes it)."""
    return (v - p[4]) / p[8]


@njit(cache=True, inline="always")
def adex_parts(x, v, i, a, p, e):
    """(j, s3, vd, i', e, y, q, q3, ad, z) of one step (``p`` the parameters, :func:`params_adex`;
    ``e`` the exp of :func:`adex_arg`)."""
    am, asn, aa, vl, vth, vr, ac, asp, dT = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    j = i + x
    y = (v - vth) / dT
    s3 = (((vl - v) + dT * e) + j) - a
    vd = v + am * s3
    i_new = j + asn * j
    q = v - vl
    q3 = ac * q - a
    ad = a + aa * q3
    z = F1 if vd - vth > F0 else F0
    return j, s3, vd, i_new, e, y, q, q3, ad, z


@njit(cache=True, inline="always")
def adex_step(x, v, i, a, p, e):
    """One forward step of a neuron with parameters ``p`` (``e``: the exp of :func:`adex_arg`):
    (z, v', i', a')."""
    _, _, vd, i_new, _, _, _, _, ad, z = adex_parts(x, v, i, a, p, e)
    return z, (F1 - z) * vd + z * p[5], i_new, ad + z * p[7]


@njit(cache=True, inline="always")
def fwd_lane_refrac(jj, xt, zt, vt, it, st, v, i, s, ex, p):
    """One refractory neuron's forward step (``jj`` of the tile, parameters ``p``): state, traces."""
    zt[jj], v[jj], i[jj], s[jj] = refrac_step(xt[jj], v[jj], i[jj], s[jj], p)
    vt[jj], it[jj], st[jj] = v[jj], i[jj], s[jj]


@njit(cache=True, inline="always")
def fwd_lane_adex(jj, xt, zt, vt, it, st, v, i, s, ex, p):
    """One AdEx neuron's forward step (``jj`` of the tile, parameters ``p``, its exp ``ex[jj]``)."""
    zt[jj], v[jj], i[jj], s[jj] = adex_step(xt[jj], v[jj], i[jj], s[jj], p, ex[jj])
    vt[jj], it[jj], st[jj] = v[jj], i[jj], s[jj]


@functools.lru_cache(maxsize=None)
def make_fwd(model: int, uni: int = 0, tile: int = TILE):
    """The forward kernel of ``model`` (0 the refractory LIF, 1 AdEx); ``S`` the third state's
    trace (rho or a), ``last`` ``(3, M)`` the final state; ``tstep`` the row step of the traces
    ``V, I, S``: 1 stores every step's state, 0 (``(1, M)`` scratch arrays: an inference forward,
    no trace asked for) overwrites one row that stays in cache. ``uni``: every parameter row of
    ``P`` has one value (:func:`uniform_rows` over all neurons, checked by the caller); the lane
    loops then take them as scalars from column 0 (the same operands, so the same results).

    A compile-time variant rather than the backward's per-tile test: with both lane loops in one
    kernel LLVM compiled the per-neuron loop ~20 % slower than alone (AdEx, 500 x 16384)."""
    vml = AVAILABLE        # a closure constant: cached variants differ with and without VML
    TILE = tile            # a closure constant too (benchmarks compare tiles in one process)
    params = params_refrac if model == 0 else params_adex
    fwd_lane = fwd_lane_refrac if model == 0 else fwd_lane_adex

    @kernel
    def norse_fwd(x, P, S0, Z, V, I, S, last, tstep, j0, j1):
        T = x.shape[0]
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            n = e - a
            v, i, s = S0[0, a:e].copy(), S0[1, a:e].copy(), S0[2, a:e].copy()
            ex = np.empty(n if model == 1 else 1, np.float32)
            p0 = params(P, a)
            for t in range(T):
                r = t * tstep
                xt, zt, vt, it, st = x[t, a:e], Z[t, a:e], V[r, a:e], I[r, a:e], S[r, a:e]
                if model == 1:
                    if uni:
                        for jj in range(n):
                            ex[jj] = adex_arg(v[jj], p0)
                    else:
                        for jj in range(n):
                            ex[jj] = adex_arg(v[jj], params(P, a + jj))
                    exp_row(n, ex, vml)
                if uni:
                    for jj in range(n):
                        fwd_lane(jj, xt, zt, vt, it, st, v, i, s, ex, p0)
                else:
                    for jj in range(n):
                        fwd_lane(jj, xt, zt, vt, it, st, v, i, s, ex, params(P, a + jj))
            last[0, a:e], last[1, a:e], last[2, a:e] = v, i, s

    return norse_fwd


@njit(cache=True, inline="always")
def adex_vjp(C, jj, x, v, i, a, g, p, has_sg, kid, acc, need_params, e, ex_v):
    """One step back for a neuron with parameters ``p`` (:func:`params_adex`; ``e``: the exp of
    :func:`adex_arg` of ``v``; ``ex_v``: the
    surrogate's exp at ``vd - v_th``, HeaviErfc): carries
    ``C[:, jj]`` (v: v - v_leak, v + dv, v - v_th, v_leak - v; i; a: a + da, q2 - a, s2 - a);
    returns gX."""
    gz, gv, gi, ga = g
    am, asn, aa, vl, vth, vr, ac, asp, dT, c0, c1 = p
    j, s3, vd, _, e, y, q, q3, _, z = adex_parts(x, v, i, a, p, e)
    g_vn = (((C[0, jj] + gv) + C[1, jj]) + C[2, jj]) + C[3, jj]
    g_i = C[4, jj] + gi
    g_an = ((C[5, jj] + ga) + C[6, jj]) + C[7, jj]
    g_vd = g_vn * (F1 - z)
    g_vth = F0
    if has_sg:
        g_z = gz + g_an * asp
        g_z = (g_z + g_vn * vr) + (-(g_vn * vd))
        g_u = sg_times_ex(g_z, vd - vth, kid, c0, c1, ex_v)
        g_vd = g_vd + g_u
        g_vth = -g_u
    g_q3 = g_an * aa
    g_q = g_q3 * ac
    g_s = g_vd * am
    g_y = (g_s * dT) * e
    g_y0 = g_y / dT
    g_j = (g_i + g_i * asn) + g_s
    C[0, jj], C[1, jj], C[2, jj], C[3, jj] = g_q, g_vd, g_y0, -g_s
    C[4, jj], C[5, jj], C[6, jj], C[7, jj] = g_j, g_an, -g_q3, -g_s
    if need_params:
        acc[0, jj] += g_vd * s3
        acc[1, jj] += g_i * j
        acc[2, jj] += g_an * q3
        acc[3, jj] += g_s + (-g_q)
        acc[4, jj] += g_vth + (-g_y0)
        acc[5, jj] += g_vn * z
        acc[6, jj] += g_q3 * q
        acc[7, jj] += g_an * z
        acc[8, jj] += g_s * e + (-g_y) * (y / dT)
    return g_j


@njit(cache=True, inline="always")
def sg_args_refrac(jj, xt, vp, ip, sp, exr, exv, kid, p):
    """The refractory surrogate's exp arguments of neuron ``jj`` of the tile (HeaviErfc): at
    ``rho`` into ``exr``, at ``vd - v_th`` (``vd`` as the lane loop forms it) into ``exv``."""
    vd = norse_charge(xt[jj], vp[jj], ip[jj], p[0], p[1], p[2])[2]
    exr[jj] = exp_arg(sp[jj], kid, p[6])
    exv[jj] = exp_arg(vd - p[3], kid, p[6])


@njit(cache=True, inline="always")
def sg_args_adex(jj, xt, vp, ip, sp, ex, exv, kid, p):
    """AdEx's surrogate exp argument at ``vd - v_th`` of neuron ``jj`` (``ex``: its AdEx exps)."""
    vd = adex_parts(xt[jj], vp[jj], ip[jj], sp[jj], p, ex[jj])[2]
    exv[jj] = exp_arg(vd - p[4], kid, p[9])


@njit(cache=True, inline="always")
def _g_in(jj, rows, has_gz, has_gv, has_gi, has_gs):
    """This step's incoming gradients of neuron ``jj`` (spike, v, i, third state; 0 if absent)."""
    gzt, gvt, git, gst = rows[4], rows[5], rows[6], rows[7]
    return (gzt[jj] if has_gz else F0, gvt[jj] if has_gv else F0, git[jj] if has_gi else F0,
            gst[jj] if has_gs else F0)


@njit(cache=True, inline="always")
def bwd_lane_refrac(C, acc, jj, rows, p, has_sg, kid, need_params, sx, has_gz, has_gv, has_gi, has_gs):
    """One refractory neuron's step back (``rows``: x, v, i, rho of step t-1, the incoming
    gradient rows, gx, the two surrogate exp rows)."""
    xt, vp, ip, sp, gxt, exr, exv = rows[0], rows[1], rows[2], rows[3], rows[8], rows[9], rows[10]
    g = _g_in(jj, rows, has_gz, has_gv, has_gi, has_gs)
    gxt[jj] = refrac_vjp(C, jj, xt[jj], vp[jj], ip[jj], sp[jj], g, p, has_sg, kid, acc, need_params,
                         exr[jj] if sx else F0, exv[jj] if sx else F0)


@njit(cache=True, inline="always")
def bwd_lane_adex(C, acc, jj, rows, p, has_sg, kid, need_params, sx, has_gz, has_gv, has_gi, has_gs):
    """One AdEx neuron's step back (``rows`` as :func:`bwd_lane_refrac`'s, AdEx's exps in place
    of the rho exps)."""
    xt, vp, ip, sp, gxt, ex, exv = rows[0], rows[1], rows[2], rows[3], rows[8], rows[9], rows[10]
    g = _g_in(jj, rows, has_gz, has_gv, has_gi, has_gs)
    gxt[jj] = adex_vjp(C, jj, xt[jj], vp[jj], ip[jj], sp[jj], g, p, has_sg, kid, acc, need_params, ex[jj],
                       exv[jj] if sx else F0)


@functools.lru_cache(maxsize=None)
def make_bwd(model: int, kid: int, has_sg: int, has_gz: int, has_gv: int, has_gi: int, has_gs: int,
             need_params: int, tile: int = TILE, wide: int = 1):
    """The reverse-scan kernel of one variant: ``model`` 0 the refractory LIF (6 carries, 6
    parameter gradients), 1 AdEx (8, 9); ``V, I, S`` the traces (S: rho or a), ``GL`` ``(3, M)``
    the final-state gradients (zeros where absent), ``G0`` the carries out of step 0, ``gp`` the
    per-neuron parameter gradients."""
    n_carry, n_grad, n_v = (6, 6, 3) if model == 0 else (8, 9, 4)
    vml = AVAILABLE        # a closure constant: cached variants differ with and without VML
    TILE = tile
    WIDE = wide    # 512-bit vectors (prefer_wide_vectors; 0 for A/B)
    params = params_refrac if model == 0 else params_adex
    param_rows, param_at = (rows_refrac, at_refrac) if model == 0 else (rows_adex, at_adex)
    sg_args = sg_args_refrac if model == 0 else sg_args_adex
    bwd_lane = bwd_lane_refrac if model == 0 else bwd_lane_adex

    @kernel
    def norse_bwd(V, I, S, x, gz, gvs, gis, gss, GL, P, S0, gx, G0, gp, j0, j1):
        prefer_wide_vectors(WIDE)
        T = V.shape[0]
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            C = np.zeros((n_carry, e - a), np.float32)
            C[0], C[n_v], C[n_v + 1] = GL[0, a:e], GL[1, a:e], GL[2, a:e]
            acc = np.zeros((n_grad, e - a), np.float32)
            ex = np.empty(e - a if model == 1 else 1, np.float32)
            sx = has_sg and has_exp(kid)    # the surrogate's exps (HeaviErfc): rows of their own
            exr = np.zeros(e - a if (sx and model == 0) else 1, np.float32)
            exv = np.zeros(e - a if sx else 1, np.float32)
            uni = uniform_rows(P, a, e)     # then the lane loops take the parameters as scalars
            p0 = params(P, a)
            R = param_rows(P, a, e)     # the tile's parameter rows, indexed from 0: contiguous loads
            for t in range(T - 1, -1, -1):
                vp = S0[0, a:e] if t == 0 else V[t - 1, a:e]
                ip = S0[1, a:e] if t == 0 else I[t - 1, a:e]
                sp = S0[2, a:e] if t == 0 else S[t - 1, a:e]
                xt, gxt = x[t, a:e], gx[t, a:e]
                gzt = trow(gz, t, a, e) if has_gz else gz[0, 0:1]     # (1, M): broadcast over time
                gvt = trow(gvs, t, a, e) if has_gv else gvs[0, 0:1]
                git = trow(gis, t, a, e) if has_gi else gis[0, 0:1]
                gst = trow(gss, t, a, e) if has_gs else gss[0, 0:1]
                if model == 1:
                    if uni:
                        for jj in range(e - a):
                            ex[jj] = adex_arg(vp[jj], p0)
                    else:
                        for jj in range(e - a):
                            ex[jj] = adex_arg(vp[jj], param_at(R, jj))
                    exp_row(e - a, ex, vml)
                e1 = exr if model == 0 else ex
                if sx:      # the exp arguments at rho and at u = vd - v_th, vd as the lane loop forms it
                    if uni:
                        for jj in range(e - a):
                            sg_args(jj, xt, vp, ip, sp, e1, exv, kid, p0)
                    else:
                        for jj in range(e - a):
                            sg_args(jj, xt, vp, ip, sp, e1, exv, kid, param_at(R, jj))
                    if model == 0:
                        exp_row(e - a, exr, vml)
                    exp_row(e - a, exv, vml)
                rows = (xt, vp, ip, sp, gzt, gvt, git, gst, gxt, e1, exv)
                if uni:
                    for jj in range(e - a):
                        bwd_lane(C, acc, jj, rows, p0, has_sg, kid, need_params, sx, has_gz, has_gv, has_gi, has_gs)
                else:
                    for jj in range(e - a):
                        bwd_lane(C, acc, jj, rows, param_at(R, jj), has_sg, kid, need_params, sx, has_gz, has_gv,
                                 has_gi, has_gs)
            G0[:, a:e] = C
            if need_params:
                gp[:, a:e] = acc

    return norse_bwd


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
