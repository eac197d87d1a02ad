"""Numba IF / LIF scans (SPEC.md section 15), loaded through :mod:`.jit` (never at import of
the library). Float32 throughout, in the reference's operation order (functional/lif.py
``_charge`` / ``_step``; autograd's order for the VJP: see :func:`_vjp_h`), so forward results are
bit-identical to the reference loop.

Arrays are C-contiguous fp32 ``(T, M)`` / ``(M,)`` (absent ones: a 1-element dummy with its
``has_*`` flag off). Each variant (kind, reset, surrogate, which gradients exist) is its own
compiled kernel with the flags as compile-time constants (a closure: numba folds them, so the
inner loop vectorises; numba caches each variant on disk by the closure's values). A kernel runs
a contiguous neuron range ``[j0, j1)`` tile by tile (``TILE`` neurons, the time loop inside a
tile, so the state stays in L1); :func:`.jit.run` gives each thread one range. Kernels use
``error_model="numpy"``: a division by zero gives inf/NaN as in torch (the default Python error
model would raise, and its check keeps the loop from vectorising).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

TILE = 512
F0 = np.float32(0.0)
F1 = np.float32(1.0)


@njit(cache=True, inline="always")
def sg_times(g, d, kid, c0, c1):
    """``g * surrogate'(d)`` as SpikeFn's backward computes it (SuperSpike divides)."""
    if kid == 0:    # ATan: (1 / (1 + (c0 d)^2)) * c1,  c0 = pi/2 a, c1 = a/2
        z = d * c0
        return g * ((F1 / (F1 + z * z)) * c1)
    if kid == 1:    # Sigmoid: (a s) (1 - s)
        s = F1 / (F1 + np.exp(-(d * c0)))
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
def reset(h, vth, vr, hard):
    """(spike 0/1, V after reset), in the reference's arithmetic (``S Vr + (1 - S) H``: no
    data-dependent branch, so random spike patterns cost no mispredictions)."""
    s = F1 if h - vth >= F0 else F0
    if hard:
        return s, s * vr + (F1 - s) * h
    return s, h - s * vth


@functools.lru_cache(maxsize=None)
def make_fwd(kind: int, hard: int, recip: int, store_v: int):
    """The forward kernel for one variant (flags are compile-time constants): runs neurons
    ``[j0, j1)`` tile by tile, the time loop inside a tile."""

    @njit(cache=True, nogil=True, error_model="numpy")
    def lif_fwd(x, tau, vth, vr, v0, H, S, vlast, vseq, j0, j1):
        T = x.shape[0]
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            v = v0[a:b].copy()
            ta, th, rs = tau[a:b], vth[a:b], vr[a:b]
            for t in range(T):
                xt, ht, st = x[t, a:b], H[t, a:b], S[t, a:b]
                for j in range(b - a):
                    h = charge(xt[j], v[j], ta[j], rs[j], kind, recip)
                    s, vn = reset(h, th[j], rs[j], hard)
                    ht[j] = h
                    st[j] = s
                    v[j] = vn
                if store_v:
                    vseq[t, a:b] = v
            vlast[a:b] = v

    return lif_fwd


@njit(cache=True, inline="always")
def _vjp_h(gv, gspk, ghx, h, vth, vr, hard, detach, kid, c0, c1):
    """gH of one step in autograd's order (reset ops run backward before SpikeFn): returns
    (gH, the surrogate term, spike)."""
    d = h - vth
    s = F1 if d >= F0 else F0
    if hard:
        gsum = gspk if detach else (gspk + (-(gv * h))) + gv * vr
        ghr = gv * (F1 - s)
    else:
        gsum = gspk if detach else gspk + (-gv) * vth
        ghr = gv
    ghr = ghx + ghr
    gsg = sg_times(gsum, d, kid, c0, c1)
    return ghr + gsg, gsg, s


@functools.lru_cache(maxsize=None)
def make_bwd(kind: int, hard: int, detach: int, recip: int, kid: int, has_gs: int, has_gvseq: int,
             has_ghseq: int, has_gvlast: int, need_x: int, need_tau: int, need_vth: int, need_vr: int,
             per_step: int):
    """The reverse-scan kernel for one variant (flags are compile-time constants) over neurons
    ``[j0, j1)``; writes gX, gV0 and the parameter gradients that are needed (``need_*``).

    Each parameter's gradient is the sum of per-step terms, one or two per step, which autograd
    of the reference adds in a fixed order: step ``T-1`` first, and within a step the reset's
    term before the threshold's (v_threshold, soft reset) or the charge's (v_reset, hard reset).
    ``per_step=0`` (a parameter of one value per neuron) adds them here in that order into
    ``gtau`` / ``gvth`` / ``gvr``; ``per_step=1`` (a parameter broadcast over neurons) writes
    each term into its ``(T, M)`` array (``ptau``; ``pth1``/``pth2``; ``pr1``/``pr2``, the
    first-added term first) for the caller to reduce step by step as autograd does."""

    @njit(cache=True, nogil=True, error_model="numpy")
    def lif_bwd(H, x, gs, gvseq, ghseq, gvlast, tau, vth, vr, v0, c0, c1, gx, gv0, gtau, gvth, gvr,
                ptau, pth1, pth2, pr1, pr2, j0, j1):
        T = H.shape[0]
        split = has_gvseq and kind != 0
        for a in range(j0, j1, TILE):
            b = min(j1, a + TILE)
            n = b - a
            carry = gvlast[a:b].copy() if has_gvlast else np.zeros(n, np.float32)
            cq = np.zeros(n, np.float32)    # split: carry = gH[t+1], cq = its -dV term
            at, ath, ar = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
            ta, th, rs = tau[a:b], vth[a:b], vr[a:b]
            for t in range(T - 1, -1, -1):
                ht = H[t, a:b]
                gst = gs[t, a:b] if has_gs else gs[0, 0:1]
                gvt = gvseq[t, a:b] if has_gvseq else gvseq[0, 0:1]
                ghxt = ghseq[t, a:b] if has_ghseq else ghseq[0, 0:1]
                gxt = gx[t, a:b] if need_x else gx[0, 0:1]
                hp = H[t - 1, a:b] if (need_tau and t > 0) else v0[a:b]
                xp = x[t, a:b] if (need_tau and kind == 1) else x[0, 0:1]
                pt = ptau[t, a:b] if (per_step and need_tau) else ptau[0, 0:1]
                p1 = pth1[t, a:b] if (per_step and need_vth) else pth1[0, 0:1]
                p2 = pth2[t, a:b] if (per_step and need_vth and not hard) else pth2[0, 0:1]
                r1 = pr1[t, a:b] if (per_step and need_vr) else pr1[0, 0:1]
                r2 = pr2[t, a:b] if (per_step and need_vr and kind != 0) else pr2[0, 0:1]
                first = t == 0
                for jj in range(n):
                    if split:       # autograd adds the trace's gradient first
                        gv = (gvt[jj] + carry[jj]) + (-cq[jj])
                    else:
                        gv = gvt[jj] + carry[jj] if has_gvseq else carry[jj]
                    gspk = gst[jj] if has_gs else F0
                    ghx = ghxt[jj] if has_ghseq else F0
                    gh, gsg, s = _vjp_h(gv, gspk, ghx, ht[jj], th[jj], rs[jj], hard, detach, kid, c0, c1)
                    if kind == 0:
                        q = gh
                        gvp = gh
                    else:
                        q = gh * ta[jj] if recip else gh / ta[jj]
                        gvp = gh + (-q)
                    if need_x:
                        gxt[jj] = q if kind == 1 else gh
                    if split:
                        carry[jj] = gh
                        cq[jj] = q
                    else:
                        carry[jj] = gvp
                    if need_vth:    # hard: the threshold's -gsg; soft: the reset's -gV S first
                        e1 = -gsg if hard else (-gv) * s
                        if per_step:
                            p1[jj] = e1
                            if not hard:
                                p2[jj] = -gsg
                        else:
                            ath[jj] = ath[jj] + e1 if hard else (ath[jj] + e1) + (-gsg)
                    if need_vr:     # hard reset only: the reset's gV S, then the charge's
                        if per_step:
                            r1[jj] = gv * s
                            if kind != 0:
                                r2[jj] = q
                        else:
                            ar[jj] = ar[jj] + gv * s if kind == 0 else (ar[jj] + gv * s) + q
                    if need_tau:
                        vr_ = reset(hp[jj], th[jj], rs[jj], hard)[1]
                        vp = hp[jj] if first else vr_
                        e = _tau_term(gh, xp[jj] if kind == 1 else F0, vp, ta[jj], rs[jj], kind, recip)
                        if per_step:
                            pt[jj] = e
                        else:
                            at[jj] = at[jj] + e
            if split:
                for jj in range(n):
                    carry[jj] = carry[jj] + (-cq[jj])
            gv0[a:b] = carry
            if need_tau and not per_step:
                gtau[a:b] = at
            if need_vth and not per_step:
                gvth[a:b] = ath
            if need_vr and not per_step:
                gvr[a:b] = ar

    return lif_bwd


@njit(cache=True, inline="always")
def _tau_term(gh, x, vp, tau, vr, kind, recip):
    """This step's gradient of the tau slot (div backward: ``-g ((a / tau) / tau)``)."""
    if kind == 1:
        a = x - (vp - vr)
        return gh * a if recip else -gh * ((a / tau) / tau)
    b = vp - vr
    return -gh * b if recip else gh * ((b / tau) / tau)
