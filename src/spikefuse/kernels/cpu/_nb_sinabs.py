"""Numba scans of sinabs' ``LIF`` / ``IAF``, loaded through :mod:`.jit` (never at import of the
library). Float32 throughout, in the reference's operation order (functional/sinabs.py
``_make_step``; the equations are in kernels/_sinabs_host.py) and, for the VJP, autograd's order
of summing gradients: the same arithmetic as the Triton VJP of kernels/triton/sinabs.py, so
spikes, traces, final states and input / initial-state gradients are bit-identical to the
reference loop: the surrogates' ``exp`` is torch.exp's own routine (MKL VML through
:func:`._nb_vml.vexp`, one call per step and tile row); without MKL (:data:`._nb_vml.AVAILABLE`
False) it is libm's, which may differ by an ulp of ``exp`` (Sigmoid: see :func:`sg`).

Arrays are C-contiguous fp32 ``(T, M)`` / ``(M,)``; absent per-neuron parameters are passed as
zeros, absent sequences as 1-element dummies with their flag off. Each variant is its own
compiled kernel with its flags as compile-time constants (closures, as in :mod:`._nb_peers`),
except the flags that only pick an array (traces stored, last-state carries: run-time); a
kernel runs the neuron range ``[j0, j1)`` tile by tile, the time loop inside a tile, with the
per-tile parameter slices and the one-row time-broadcast gradients of :mod:`._nb_peers`.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ._nb_kernel import kernel, stable_uuids
from ._nb_lif import sg_times_at
from ._nb_peers import trow, uniform
from ._nb_vml import AVAILABLE, exp_row

#: neurons per tile: a tile's carries, parameter slices and exp row stay in L2 (10 rows of 16 KiB);
#: the rows a step streams are 16 KiB runs. Measured (bwd, SingleExponential, 100 x 32768, one
#: thread, min of 12 interleaved runs at load 2.6): 1024 / 2048 / 4096 / 8192 / 16384 -> 3.08 /
#: 2.94 / 2.81 / ~2.7 / ~2.8 ns per neuron-step; forward flat (1.83-1.97 ns); 4096 keeps more
#: tiles for the threads of a small M
TILE = 4096
F0 = np.float32(0.0)
F1 = np.float32(1.0)
F2 = np.float32(2.0)
FH = np.float32(0.5)


@njit(cache=True, inline="always")
def charge(x, v, i, am, oma, asy, syn, norm):
    """(j = i + x, the new synaptic current i', the membrane before the spike)."""
    j = x
    i2 = x
    if syn:
        j = i + x
        i2 = asy * j
    return j, i2, membrane(v, i2, am, oma, norm)


@njit(cache=True, inline="always")
def membrane(v, i2, am, oma, norm):
    """The membrane before the spike from the new synaptic current ``i2`` (:func:`charge`'s last
    operation: the backward reads ``i2`` from the saved i_seq, no need of x and the old current)."""
    a = am * v
    if norm:
        return a + oma * i2
    return a + i2


@njit(cache=True, inline="always")
def spike(u, thr, mode, maxf):
    """SingleSpike, MultiSpike ``(u > 0) trunc(u / thr)``, MaxSpike (at most ``maxf``)."""
    if mode == 0:
        return F1 if u - thr >= F0 else F0
    q = u / thr
    s = (F1 if u > F0 else F0) * (np.ceil(q) if q < F0 else np.floor(q))
    if mode == 2 and s > maxf:
        s = maxf
    return s


@njit(cache=True, inline="always")
def reset(u, s, c, rmode):
    """(membrane after the reset, before the clamp; the ``1[S == 0]`` mask)."""
    m = F1 if s == F0 else F0
    if rmode == 0:
        return u - s * c, m
    return u * m + c, m


@njit(cache=True, inline="always")
def step(x, v, i, am, oma, asy, thr, c, mn, mode, maxf, rmode, syn, norm, clamp):
    """One forward step: (spike, v', i')."""
    _, i2, u = charge(x, v, i, am, oma, asy, syn, norm)
    s = spike(u, thr, mode, maxf)
    v2, _ = reset(u, s, c, rmode)
    if clamp:
        r = v2 - mn
        v2 = (r if r > F0 else F0) + mn
    return s, v2, i2


#: surrogate ids whose derivative has an ``exp``: SLAYER exp (3, sinabs' default
#: SingleExponential), PeriodicExponential (10), Gaussian (11)
EXP_SG = (3, 10, 11)


@njit(cache=True, inline="always")
def sg_arg(u, thr, sid, c0, c1):
    """The argument of the surrogate's ``exp`` at membrane ``u`` (:data:`EXP_SG`; else 0), as the
    reference computes it: ``-|u - thr| / w`` (SLAYER exp), ``-|d| / w`` of the saw tooth ``d``
    (PeriodicExponential), ``-(d - mu)^2 / (2 sigma^2)`` (Gaussian)."""
    if sid == 3:
        return -abs(u - thr) / c0
    if sid == 10:
        vn = u / thr - FH
        periodic = thr * (F2 * (vn - np.floor(vn)) - F1)
        new = periodic * (F1 if u >= thr else F0) + (u - thr) * (F1 if u < thr else F0)
        return -abs(new) / c0
    if sid == 11:
        q = (u - thr) - c0
        return -(q * q) / c1
    return F0


@njit(cache=True, inline="always")
def sg(g, u, thr, hw, sid, c0, c1, c2, c3, ex):
    """``g * surrogate'``: spikefuse's of ``u - thr`` (0-4), sinabs' PeriodicExponential (10),
    Gaussian (11), Heaviside (12) of the membrane, as the reference's spike backward. ``ex``: the
    surrogate's ``exp(sg_arg(u, ...))`` (:data:`EXP_SG`), computed for a tile row at once by
    :func:`._nb_vml.vexp`, which is torch.exp's routine (MKL VML): the same bits as the
    reference. Sigmoid's exp is SLEEF's expf (:func:`._nb_lif.sleef_expf`): torch's sigmoid
    computes it so in its vector lanes (the same bits there; libm's in a step's remainder of
    ``M % 32`` (AVX512) / ``M % 16`` (AVX2) elements, where this may differ by an ulp)."""
    if sid == 3:
        return g * (c1 * ex)
    if sid < 10:
        return sg_times_at(g, u - thr, sid, c0, c1, sid == 1)
    if sid == 10:
        return g * (c1 * ex)
    if sid == 11:
        return g * ((ex / c2) * c3)
    return g * ((F1 if u >= hw else F0) / thr)


@functools.lru_cache(maxsize=None)
def make_fwd(mode: int, maxn: int, rmode: int, syn: int, norm: int, clamp: int):
    """The forward kernel of one variant (flags are compile-time constants; ``keep_v`` /
    ``keep_i``, whether the traces are stored, are run-time flags: they pick a row, not an
    operation)."""
    maxf = np.float32(maxn)

    @kernel
    def sinabs_fwd(x, am, oma, asy, thr, c, mn, v0, i0, S, V, I, vlast, ilast, keep_v, keep_i, j0, j1):
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            v, i = v0[a:e].copy(), i0[a:e].copy()
            scr_v, scr_i = np.empty(e - a, np.float32), np.empty(e - a, np.float32)
            # tile slices of the parameters: contiguous vector loads (``p[a + jj]`` gathers)
            pa, po, ps, pt, pc, pm = am[a:e], oma[a:e], asy[a:e], thr[a:e], c[a:e], mn[a:e]
            # parameters of one value over the tile (numbers): scalars in the lane loop (same bits)
            uni = uniform(am, a, e) and uniform(oma, a, e) and uniform(asy, a, e) and uniform(thr, a, e) and \
                uniform(c, a, e) and uniform(mn, a, e)
            a0, o0, s0, t0, c00, m0 = am[a], oma[a], asy[a], thr[a], c[a], mn[a]
            for t in range(x.shape[0]):
                xt, st = x[t, a:e], S[t, a:e]
                vt = V[t, a:e] if keep_v else scr_v
                it = I[t, a:e] if keep_i else scr_i
                if uni:
                    for jj in range(e - a):
                        st[jj], vn, i_n = step(xt[jj], v[jj], i[jj], a0, o0, s0, t0, c00, m0, mode, maxf, rmode, syn,
                                               norm, clamp)
                        v[jj], i[jj], vt[jj], it[jj] = vn, i_n, vn, i_n
                else:
                    for jj in range(e - a):
                        st[jj], vn, i_n = step(xt[jj], v[jj], i[jj], pa[jj], po[jj], ps[jj], pt[jj], pc[jj], pm[jj],
                                               mode, maxf, rmode, syn, norm, clamp)
                        v[jj], i[jj], vt[jj], it[jj] = vn, i_n, vn, i_n
            vlast[a:e] = v
            ilast[a:e] = i

    return sinabs_fwd


@njit(cache=True, inline="always")
def grad_u(gv, u, s, v2, m, mn, thr, c, hw, gs, has_gs, rmode, clamp, sid, c0, c1, c2, c3, ex):
    """The gradient of the membrane before the spike, from this step's state gradient ``gv``
    and the spike's ``gs``: relu's, the reset's, then the spike's (autograd's order)."""
    if clamp and not v2 - mn > F0:
        gv = F0
    if rmode == 0:
        gsv = (-gv) * c
        if has_gs:
            gsv = gsv + gs
        return gv + sg(gsv, u, thr, hw, sid, c0, c1, c2, c3, ex)
    gu = gv * m
    if has_gs:
        gu = gu + sg(gs, u, thr, hw, sid, c0, c1, c2, c3, ex)
    return gu


@njit(cache=True, inline="always")
def bwd_lane(jj, rows, outs, p, cs, mode, rmode, syn, norm, clamp, sid, from_i, has_exp, has_gs, has_gv, has_gi,
             need_params):
    """One neuron's step back (``jj`` of the tile; ``p`` its parameters as values, ``cs`` the
    surrogate's constants and the spike cap; the flags are the kernel's compile-time constants):
    gX, the carries, the parameter sums and the next step's exp argument (:func:`make_bwd`).
    Tuples, as a call of more than 30 arguments is one numba does not inline."""
    vp, ip, xt, i2t, vq, iq, xq, i2q, gst, gvt, git = rows
    cv, ci, acc, gxt, ex, exn = outs
    pa, po, ps, pt, pc, pm, ph = p
    c0, c1, c2, c3, maxf = cs
    v = vp[jj]
    if from_i:
        j, i2 = F0, i2t[jj]
        u = membrane(v, i2, pa, po, norm)
    else:
        j, i2, u = charge(xt[jj], v, ip[jj], pa, po, ps, syn, norm)
    s = spike(u, pt, mode, maxf)
    v2, m = reset(u, s, pc, rmode)
    gv = cv[jj] + gvt[jj] if has_gv else cv[jj]
    gu = grad_u(gv, u, s, v2, m, pm, pt, pc, ph, gst[jj] if has_gs else F0, has_gs,
                rmode, clamp, sid, c0, c1, c2, c3, ex[jj] if has_exp else F0)
    cv[jj] = gu * pa
    gb = gu * po if norm else gu
    if syn:
        gi2 = (ci[jj] + git[jj] if has_gi else ci[jj]) + gb
        gb = gi2 * ps
        ci[jj] = gb
        if need_params:
            acc[2, jj] += gi2 * j
    gxt[jj] = gb
    if need_params:
        acc[0, jj] += gu * v
        if norm:
            acc[1, jj] += gu * i2
    if has_exp:
        if from_i:
            un = membrane(vq[jj], i2q[jj], pa, po, norm)
        else:
            _, _, un = charge(xq[jj], vq[jj], iq[jj], pa, po, ps, syn, norm)
        exn[jj] = sg_arg(un, pt, sid, c0, c1)


@functools.lru_cache(maxsize=None)
def make_bwd(mode: int, maxn: int, rmode: int, syn: int, norm: int, clamp: int, sid: int, has_gs: int,
             has_gv: int, has_gi: int, need_params: int):
    """The reverse-scan kernel of one variant (flags are compile-time constants; ``has_gvl`` /
    ``has_gil``, which pick the initial carries, are run-time flags); ``gp`` ``(3, M)``: the
    per-neuron gradients of (a_mem, 1 - a_mem, a_syn).

    Per step and tile: with a surrogate of :data:`EXP_SG` (whose derivative the step needs: not
    for a membrane reset without a spike gradient) the lane loop of the VJP reads the row's
    ``exp`` values from a tile buffer, and the same loop writes the ``exp`` arguments of the next
    step (``t - 1``: its saved rows) into a second buffer, which one :func:`._nb_vml.vexp` call
    (torch.exp's MKL routine; without it libm's expf, element by element) then turns into that
    step's exps (the buffers swap; step ``T - 1``'s are made before the loop). No call inside the
    lane loop, so it vectorises, and one pass per step streams the saved rows: a separate
    argument loop before each step's VJP loop (the previous shape) read the rows in one pass and
    wrote the gradient in another, measured (benchmarks/cpu_time.py, sinabs.lif, one thread, min
    of 3 alternating runs) f+b 7.47 -> 6.95 ms at (100, 32, 1024), 20.1 -> 16.7 ms at
    (500, 16, 1024). The arguments and exps are the same numbers as before (VML's result does not
    depend on an element's place in a call). With a synapse the new
    current ``i'`` of a step is read from the saved i_seq (the bits the forward computed), so
    the step's input and the old current are read only for the a_syn gradient (``j = i + x``)."""
    maxf = np.float32(maxn)
    from_i = syn and not need_params
    vml = AVAILABLE        # a closure constant: cached variants differ with and without VML
    has_exp = sid in EXP_SG and (rmode == 0 or has_gs)

    @kernel
    def sinabs_bwd(V, I, x, gs, gvseq, giseq, gvlast, gilast, has_gvl, has_gil, am, oma, asy, thr, c, mn, hw, v0, i0,
                   c0, c1, c2, c3, gx, gv0, gi0, gp, j0, j1):
        T = V.shape[0]
        nx = min(TILE, j1 - j0) if has_exp else 1
        exa, exb = np.zeros(nx, np.float32), np.zeros(nx, np.float32)
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            n = e - a
            cv = gvlast[a:e].copy() if has_gvl else np.zeros(n, np.float32)
            ci = gilast[a:e].copy() if has_gil else np.zeros(n, np.float32)
            acc = np.zeros((3, n), np.float32)
            ex, exn = exa[:n], exb[:n]
            pa, po, ps, pt, pc, pm, ph = am[a:e], oma[a:e], asy[a:e], thr[a:e], c[a:e], mn[a:e], hw[a:e]
            uni = uniform(am, a, e) and uniform(oma, a, e) and uniform(asy, a, e) and uniform(thr, a, e) and \
                uniform(c, a, e) and uniform(mn, a, e) and uniform(hw, a, e)
            a0, o0, s0, t0, c00, m0, h0 = am[a], oma[a], asy[a], thr[a], c[a], mn[a], hw[a]
            if has_exp:     # the exps of step T - 1; each step's loop writes the next one's arguments
                vp = v0[a:e] if T == 1 else V[T - 2, a:e]
                ip = i0[a:e] if (T == 1 or not syn) else I[T - 2, a:e]
                xt = x[T - 1, a:e]
                i2t = I[T - 1, a:e] if from_i else I[0, 0:1]
                for jj in range(n):
                    if from_i:
                        u = membrane(vp[jj], i2t[jj], pa[jj], po[jj], norm)
                    else:
                        _, _, u = charge(xt[jj], vp[jj], ip[jj], pa[jj], po[jj], ps[jj], syn, norm)
                    ex[jj] = sg_arg(u, pt[jj], sid, c0, c1)
                exp_row(n, ex, vml)
            for t in range(T - 1, -1, -1):
                vp = v0[a:e] if t == 0 else V[t - 1, a:e]
                ip = i0[a:e] if (t == 0 or not syn) else I[t - 1, a:e]
                xt, gxt = x[t, a:e], gx[t, a:e]
                i2t = I[t, a:e] if from_i else I[0, 0:1]
                # step t - 1's rows for its exp arguments (at t = 0: step 0's again, unused)
                tn = t - 1 if t > 0 else 0
                vq = v0[a:e] if tn == 0 else V[tn - 1, a:e]
                iq = i0[a:e] if (tn == 0 or not syn) else I[tn - 1, a:e]
                xq = x[tn, a:e] if has_exp and not from_i else x[0, 0:1]
                i2q = I[tn, a:e] if from_i and has_exp else I[0, 0:1]
                gst = trow(gs, t, a, e) if has_gs else gs[0, 0:1]
                gvt = trow(gvseq, t, a, e) if has_gv else gvseq[0, 0:1]
                git = trow(giseq, t, a, e) if has_gi else giseq[0, 0:1]
                rows = (vp, ip, xt, i2t, vq, iq, xq, i2q, gst, gvt, git)
                outs = (cv, ci, acc, gxt, ex, exn)
                cs = (c0, c1, c2, c3, maxf)
                if uni:
                    p0 = (a0, o0, s0, t0, c00, m0, h0)
                    for jj in range(n):
                        bwd_lane(jj, rows, outs, p0, cs, mode, rmode, syn, norm, clamp, sid, from_i, has_exp, has_gs,
                                 has_gv, has_gi, need_params)
                else:
                    for jj in range(n):
                        bwd_lane(jj, rows, outs, (pa[jj], po[jj], ps[jj], pt[jj], pc[jj], pm[jj], ph[jj]), cs, mode,
                                 rmode, syn, norm, clamp, sid, from_i, has_exp, has_gs, has_gv, has_gi, need_params)
                if has_exp and t > 0:
                    exp_row(n, exn, vml)
                    ex, exn = exn, ex
            gv0[a:e] = cv
            gi0[a:e] = ci
            if need_params:
                gp[:, a:e] = acc

    return sinabs_bwd


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
