"""Numba scans of the peer families (snnTorch ``Leaky`` and ``Synaptic``, norse's feed-forward
LIF), loaded through :mod:`.jit` (never at import of the library). Float32 throughout, in the
reference's operation order (functional/snntorch.py ``_leaky`` / ``_synaptic``,
functional/norse.py ``_lif_update``) and,
for the VJPs, autograd's order of summing gradients: the same arithmetic as the Triton VJPs of
kernels/triton/peers.py (see its docstring for the equations), so outputs, final states and
input / initial-state gradients are bit-identical to the reference loop (surrogates without a
transcendental; SLAYER exp and norse's heavi_erfc with MKL VML: :func:`sg_times_ex`; snnTorch's
Sigmoid on an AVX2 / AVX512 CPU: :func:`sig_row`; norse's tanh / circ may differ by an ulp
of libm's ``tanh`` / ``pow``).

Arrays are C-contiguous fp32 ``(T, M)`` / ``(M,)``; absent ones are 1-element dummies with their
``has_*`` flag off. Each variant (options, surrogate, which gradients exist) is its own compiled
kernel with the flags as compile-time constants (a closure, as in :mod:`._nb_lif`: the inner
loop over a tile's row vectorises: the reverse scans ran 4-6x faster than the same loops with
runtime flags on the 2-core development machine); flags that only pick an array (whether a
trace or gX is stored: else the row goes to a tile scratch; whether a last-state gradient seeds
the carry) are run-time arguments. A kernel runs the neuron range ``[j0, j1)`` tile by tile
(``TILE`` neurons: 8 KiB of each row, so a row spans whole pages for the prefetcher; per-neuron
parameters are sliced per tile, as ``p[a + jj]`` would make numba gather them lane by lane), the
time loop inside a tile, and :func:`.jit.run` gives each thread one range. A ``(T, M)`` gradient
may arrive as one ``(1, M)`` row (:func:`trow`: the same gradient at every step).
``error_model="numpy"``: a division by zero gives inf/NaN as in torch.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ._nb_kernel import kernel, stable_uuids
from ._nb_lif import sg_times, sleef_expf
from ._nb_vml import AVAILABLE as VML
from ._nb_vml import exp_row

TILE = 2048
F0 = np.float32(0.0)
F1 = np.float32(1.0)
F2 = np.float32(2.0)
F15 = np.float32(1.5)


@njit(cache=True, inline="always")
def trow(g, t, a, e):
    """Row ``t`` (neurons ``[a, e)``) of a ``(T, M)`` gradient, or of its single row when the
    gradient is the same at every step (a ``(1, M)`` array: the glue passes one row of a
    gradient broadcast over time, e.g. of a ``sum``, instead of a materialised copy)."""
    return g[min(t, g.shape[0] - 1), a:e]


@njit(cache=True, inline="always")
def uniform(p, a, e):
    """Whether the per-neuron parameter ``p`` (a C-contiguous fp32 ``(M,)`` array) has the same
    bits at every neuron of ``[a, e)`` (a parameter given as a number, or one value per
    channel of a single channel). A kernel then runs a tile's lane loop with ``p[a]`` as a
    scalar: the same operands, so the same results, and one stream fewer per parameter (the
    rows of five to seven parameters no longer compete with the state and I/O rows for L1)."""
    b = p.view(np.int32)
    b0 = b[a]
    for k in range(a + 1, e):
        if b[k] != b0:
            return False
    return True


@njit(cache=True, inline="always")
def peer_sg_times(g, d, kid, c0, c1):
    """``g * surrogate'(d)``: the shared surrogates (ids 0-4, :func:`._nb_lif.sg_times`) and
    norse's HeaviTanh (5), HeaviCirc (6, ``c1 = alpha ** 2``), HeaviErfc (7, ``c1 =
    sqrt(pi)``) in norse's operation order (``c0 = alpha``; libm's tanh / pow / exp: to ~1e-6
    of torch's, not bit for bit)."""
    if kid < 5:
        return sg_times(g, d, kid, c0, c1)
    if kid == 5:
        t = np.tanh(d * c0)
        return g * (F1 - t * t)
    if kid == 6:
        r2 = c1 + d * d
        a = (d * d) / (F2 * r2 ** F15)
        b = F1 / (F2 * np.sqrt(r2))
        return g * (((-a + b) * F2) * c0)
    y = c0 * d
    return g * ((F2 * np.exp(-(y * y))) / c1)


@njit(cache=True, inline="always")
def has_exp(kid):
    """Whether surrogate ``kid`` has an exp the kernels take from a row of exps (:func:`exp_arg`):
    SLAYER's exp (3), norse's HeaviErfc (7)."""
    return kid == 3 or kid == 7


@njit(cache=True, inline="always")
def exp_arg(d, kid, c0):
    """The argument of the exp of surrogate ``kid`` at ``d`` in the reference's operations:
    ``-|d| / tau`` (SLAYER, ``c0 = tau``), ``-((alpha d)^2)`` (HeaviErfc, ``c0 = alpha``; torch's
    ``pow(2)`` is ``y * y``)."""
    if kid == 3:
        return -abs(d) / c0
    y = c0 * d
    return -(y * y)


@njit(cache=True, inline="always")
def sg_times_ex(g, d, kid, c0, c1, ex):
    """:func:`peer_sg_times` with the exp of SLAYER (3) / HeaviErfc (7) given as ``ex`` (from the
    kernel's row of exps: :func:`._nb_vml.exp_row`, torch.exp's bits with MKL VML); other ids
    ignore it."""
    if kid == 3:
        return g * (c1 * ex)
    if kid == 7:
        return g * ((F2 * ex) / c1)
    return peer_sg_times(g, d, kid, c0, c1)


@njit(cache=True, inline="always")
def sg_times_lane(g, d, kid, c0, c1, ex):
    """:func:`sg_times_ex`, with Sigmoid's (1) exp given as ``ex`` too (from :func:`sig_row`):
    ``s = 1 / (1 + ex)``, ``g ((c0 s) (1 - s))`` as :func:`._nb_lif.sg_times_at`."""
    if kid == 1:
        s = F1 / (F1 + ex)
        return g * ((c0 * s) * (F1 - s))
    return sg_times_ex(g, d, kid, c0, c1, ex)


@njit(cache=True, inline="always")
def sig_row(n, ag, ex, ln):
    """``ex[:n]``: the exps of Sigmoid's arguments ``ag[:n]`` (``-(d c0)``) as torch's CPU sigmoid
    computes them: SLEEF's expf in its vector lanes, libm's in its scalar remainder (``ln[jj] ==
    0``; kernels/cpu/lif.py ``torch_vec_lanes`` of the reference's ``(B, N)`` row). The first
    loop has no branch, so it vectorises; the second rewrites the few remainder elements."""
    for jj in range(n):
        ex[jj] = sleef_expf(ag[jj])
    for jj in range(n):
        if ln[jj] == 0:
            ex[jj] = np.exp(ag[jj])


# --------------------------------------------------------------------------- snnTorch Leaky


@njit(cache=True, inline="always")
def leaky_charge(x, m, b, thr, mech):
    """(new membrane before this step's spike, the detached delayed reset R)."""
    r = F1 if m - thr > F0 else F0
    if mech == 0:
        return (b * m + x) - r * thr, r
    if mech == 1:
        return b * ((F1 - r) * m) + x, r
    return b * m + x, r


@njit(cache=True, inline="always")
def leaky_late(n, r, thr, gsf, mech):
    """``reset_delay=False``: the reset of this step's spike, at once (not detached)."""
    spk = (F1 if n - thr > F0 else F0) * gsf
    d = spk / gsf - r
    if mech == 0:
        return n - d * thr
    if mech == 1:
        return n - d * n
    return n


@njit(cache=True, inline="always")
def leaky_step(x, m, b, thr, gsf, mech, delay):
    """One forward step: (spike, the membrane snnTorch returns)."""
    n, r = leaky_charge(x, m, b, thr, mech)
    spk = (F1 if n - thr > F0 else F0) * gsf
    if not delay:
        n = leaky_late(n, r, thr, gsf, mech)
    return spk, n


@functools.lru_cache(maxsize=None)
def make_leaky_fwd(mech: int, delay: int):
    """The forward kernel of one variant (flags are compile-time constants)."""

    @kernel
    def leaky_fwd(x, b, thr, gsf, m0, S, Mseq, mlast, store, j0, j1):
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            m, scr = m0[a:e].copy(), np.empty(e - a, np.float32)
            ba, ta, ga = b[a:e], thr[a:e], gsf[a:e]  # tile slices: contiguous vector loads
            for t in range(x.shape[0]):
                xt, st, mt = x[t, a:e], S[t, a:e], Mseq[t, a:e] if store else scr
                for jj in range(e - a):
                    st[jj], n = leaky_step(xt[jj], m[jj], ba[jj], ta[jj], ga[jj], mech, delay)
                    m[jj] = n
                    mt[jj] = n
            mlast[a:e] = m

    return leaky_fwd


@njit(cache=True, inline="always")
def leaky_late_vjp(gn2, gspk, n, r, thr, gsf, mech):
    """Backward of the late reset: (gN without the spike term, gS total, threshold term)."""
    spk = (F1 if n - thr > F0 else F0) * gsf
    d = spk / gsf - r
    if mech == 0:
        return gn2, gspk + ((-gn2) * thr) / gsf, (-gn2) * d
    if mech == 1:
        return gn2 + (-gn2) * d, gspk + ((-gn2) * n) / gsf, F0
    return gn2, gspk, F0


@njit(cache=True, inline="always")
def leaky_vjp(gn, gspk, n, m, r, b, thr, gsf, mech, delay, gth, kid, c0, c1, ex):
    """(gX, g_mem[t-1], g_b, g_thr) of one step; ``gn`` the gradient of this step's membrane;
    ``ex``: the surrogate's exp (:func:`sg_times_lane`)."""
    gu = sg_times_lane(gspk * gsf, n - thr, kid, c0, c1, ex)
    gn = gn + gu
    if mech == 1:
        return gn, (gn * b) * (F1 - r), gn * ((F1 - r) * m), gth + (-gu)
    if mech == 0:
        return gn, gn * b, gn * m, (gth + (-gn) * r) + (-gu)
    return gn, gn * b, gn * m, gth + (-gu)


@functools.lru_cache(maxsize=None)
def make_leaky_bwd(mech: int, delay: int, kid: int, has_gs: int, has_gm: int, need_params: int):
    """The reverse-scan kernel of one variant (flags are compile-time constants; ``has_glast``,
    the initial carry, and ``need_x``, whether gX is stored, are run-time flags: they pick an
    array, not an operation); writes gX, g_mem0 and (``need_params``) the per-neuron beta /
    threshold gradients. SLAYER exp (``kid`` 3): per step and tile a first loop writes the exp
    arguments of the row into a tile buffer, one :func:`._nb_vml.exp_row` (torch.exp's bits), then
    the lane loop reads them (as :func:`._nb_lif.make_bwd`). Sigmoid (``kid`` 1): ``lanes`` (uint8,
    per neuron; a 1-element dummy otherwise) is 1 where torch's sigmoid computes the neuron in a
    vector lane: the row of Sigmoid's exps by :func:`sig_row` first, the same way."""
    vml = VML      # a closure constant: cached variants differ with and without VML

    @kernel
    def leaky_bwd(Mseq, x, gs, gmseq, glast, has_glast, b, thr, gsf, m0, c0, c1, lanes, gx, need_x, gm0, gb, gthr,
                  j0, j1):
        T = Mseq.shape[0]
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            carry = glast[a:e].copy() if has_glast else np.zeros(e - a, np.float32)
            scr = np.empty(e - a, np.float32)
            ab, at = np.zeros(e - a, np.float32), np.zeros(e - a, np.float32)
            ba, ta, ga = b[a:e], thr[a:e], gsf[a:e]
            ex = np.zeros(e - a if (has_exp(kid) or kid == 1) else 1, np.float32)
            ag = np.zeros(e - a if kid == 1 else 1, np.float32)
            ln = lanes[a:e] if kid == 1 else lanes[0:1]
            for t in range(T - 1, -1, -1):
                mp = m0[a:e] if t == 0 else Mseq[t - 1, a:e]
                mt = Mseq[t, a:e]
                xt = x[t, a:e] if not delay else x[0, 0:1]
                gst = trow(gs, t, a, e) if has_gs else gs[0, 0:1]
                gmt = trow(gmseq, t, a, e) if has_gm else gmseq[0, 0:1]
                gxt = gx[t, a:e] if need_x else scr
                if has_exp(kid):    # the surrogate's exp at n - thr, n as the lane loop forms it
                    for jj in range(e - a):
                        n = mt[jj] if delay else leaky_charge(xt[jj], mp[jj], ba[jj], ta[jj], mech)[0]
                        ex[jj] = exp_arg(n - ta[jj], kid, c0)
                    exp_row(e - a, ex, vml)
                if kid == 1:        # Sigmoid's exp at -(d c0), d = n - thr
                    for jj in range(e - a):
                        n = mt[jj] if delay else leaky_charge(xt[jj], mp[jj], ba[jj], ta[jj], mech)[0]
                        ag[jj] = -((n - ta[jj]) * c0)
                    sig_row(e - a, ag, ex, ln)
                for jj in range(e - a):
                    m, th = mp[jj], ta[jj]
                    r = F1 if m - th > F0 else F0
                    gn = carry[jj] + gmt[jj] if has_gm else carry[jj]
                    gspk = gst[jj] if has_gs else F0
                    gth = F0
                    if delay:
                        n = mt[jj]
                    else:
                        n = leaky_charge(xt[jj], m, ba[jj], th, mech)[0]
                        gn, gspk, gth = leaky_late_vjp(gn, gspk, n, r, th, ga[jj], mech)
                    g, gm, gbt, gth = leaky_vjp(gn, gspk, n, m, r, ba[jj], th, ga[jj], mech, delay, gth, kid, c0, c1,
                                                ex[jj] if (has_exp(kid) or kid == 1) else F0)
                    gxt[jj] = g
                    carry[jj] = gm
                    if need_params:
                        ab[jj] += gbt
                        at[jj] += gth
            gm0[a:e] = carry
            if need_params:
                gb[a:e] = ab
                gthr[a:e] = at

    return leaky_bwd


# --------------------------------------------------------------------------- norse LIF


@njit(cache=True, inline="always")
def norse_charge(x, v, i, am, asn, vl):
    """(jumped current j, leak term w, decayed voltage vd, decayed current)."""
    j = i + x
    w = (vl - v) + j
    vd = v + am * w
    return j, w, vd, j + asn * j


@njit(cache=True, inline="always")
def norse_lane(xv, v, i, am, asn, vl, vth, vr):
    """One forward step of a neuron: (z, v', i')."""
    _, _, vd, i_new = norse_charge(xv, v, i, am, asn, vl)
    z = F1 if vd - vth > F0 else F0
    return z, (F1 - z) * vd + z * vr, i_new


@kernel
def norse_fwd(x, am, asn, vl, vth, vr, v0, i0, Z, V, I, vlast, ilast, store, j0, j1):
    """The forward scan; a tile whose parameters are :func:`uniform` runs its lane loop with
    them as scalars (same results)."""
    T = x.shape[0]
    for a in range(j0, j1, TILE):
        e = min(j1, a + TILE)
        v, i = v0[a:e].copy(), i0[a:e].copy()
        scr_v, scr_i = np.empty(e - a, np.float32), np.empty(e - a, np.float32)
        ama, asa, vla, vta, vra = am[a:e], asn[a:e], vl[a:e], vth[a:e], vr[a:e]
        uni = uniform(am, a, e) and uniform(asn, a, e) and uniform(vl, a, e) and uniform(vth, a, e) and \
            uniform(vr, a, e)
        am0, as0, vl0, vt0, vr0 = am[a], asn[a], vl[a], vth[a], vr[a]
        for t in range(T):
            xt, zt = x[t, a:e], Z[t, a:e]
            vt, it = (V[t, a:e], I[t, a:e]) if store else (scr_v, scr_i)
            if uni:
                for jj in range(e - a):
                    z, v_new, i_new = norse_lane(xt[jj], v[jj], i[jj], am0, as0, vl0, vt0, vr0)
                    zt[jj] = z
                    vt[jj] = v_new
                    it[jj] = i_new
                    v[jj] = v_new
                    i[jj] = i_new
            else:
                for jj in range(e - a):
                    z, v_new, i_new = norse_lane(xt[jj], v[jj], i[jj], ama[jj], asa[jj], vla[jj], vta[jj], vra[jj])
                    zt[jj] = z
                    vt[jj] = v_new
                    it[jj] = i_new
                    v[jj] = v_new
                    i[jj] = i_new
        vlast[a:e] = v
        ilast[a:e] = i


@njit(cache=True, inline="always")
def norse_gvd(gvn, gz_in, has_gz, vd, u, z, vr, has_sg, kid, c0, c1, ex):
    """(gradient of the decayed voltage, threshold term): the reset's ``z * v_reset`` and
    ``1 - z`` terms reach the spike in autograd's order, then the surrogate (``ex``: its exp,
    :func:`sg_times_ex`; only read for SLAYER / HeaviErfc)."""
    gvd = gvn * (F1 - z)
    if not has_sg:
        return gvd, F0
    gz = gvn * vr
    if has_gz:
        gz = gz_in + gz
    gu = sg_times_ex(gz + (-(gvn * vd)), u, kid, c0, c1, ex)
    return gvd + gu, -gu


@njit(cache=True, inline="always")
def norse_vjp_lane(jj, xt, vp, ip, gzt, gvt, git, ca, cb, ci, acc, gxt, ex, am, asn, vl, vth, vr, c0, c1, kid, has_sg,
                   has_gz, has_gv, has_gi, need_params):
    """One neuron's step back (``jj`` of the tile; the parameters as values): gX, the carries
    and the parameter sums."""
    jump, w, vd, _ = norse_charge(xt[jj], vp[jj], ip[jj], am, asn, vl)
    u = vd - vth
    z = F1 if u > F0 else F0
    gvn = (ca[jj] + gvt[jj] if has_gv else ca[jj]) + cb[jj]
    gid = ci[jj] + git[jj] if has_gi else ci[jj]
    gvd, g_vth = norse_gvd(gvn, gzt[jj] if has_gz else F0, has_gz, vd, u, z, vr, has_sg,
                           kid, c0, c1, ex[jj] if (has_sg and has_exp(kid)) else F0)
    gw = gvd * am
    gj = (gid + gid * asn) + gw
    gxt[jj] = gj
    ca[jj], cb[jj], ci[jj] = gvd, -gw, gj
    if need_params:
        acc[0, jj] += gvd * w
        acc[1, jj] += gid * jump
        acc[2, jj] += gw
        acc[3, jj] += g_vth
        acc[4, jj] += gvn * z


@functools.lru_cache(maxsize=None)
def make_norse_bwd(kid: int, has_sg: int, has_gz: int, has_gv: int, has_gi: int, need_params: int):
    """The reverse-scan kernel of one variant (flags are compile-time constants; ``has_gvl`` /
    ``has_gil``, which pick the initial carries, are run-time flags); ``gp`` ``(5, M)``: the
    per-neuron gradients of (a_m, a_sn, v_leak, v_th, v_reset). HeaviErfc / SLAYER exp: the row of
    exps first (:func:`._nb_vml.exp_row`, torch.exp's bits), as in :func:`make_leaky_bwd`."""
    vml = VML      # a closure constant: cached variants differ with and without VML

    @kernel
    def norse_bwd(V, I, x, gz, gvseq, giseq, gvlast, gilast, has_gvl, has_gil, am, asn, vl, vth, vr, c0, c1, v0, i0,
                  gx, gv0, gi0, gp, j0, j1):
        T = V.shape[0]
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            ca = gvlast[a:e].copy() if has_gvl else np.zeros(e - a, np.float32)
            cb = np.zeros(e - a, np.float32)
            ci = gilast[a:e].copy() if has_gil else np.zeros(e - a, np.float32)
            acc = np.zeros((5, e - a), np.float32)
            ama, asa, vla, vta, vra = am[a:e], asn[a:e], vl[a:e], vth[a:e], vr[a:e]
            c0a, c1a = c0[a:e], c1[a:e]
            uni = uniform(am, a, e) and uniform(asn, a, e) and uniform(vl, a, e) and uniform(vth, a, e) and \
                uniform(vr, a, e) and uniform(c0, a, e) and uniform(c1, a, e)
            am0, as0, vl0, vt0, vr0, c00, c10 = am[a], asn[a], vl[a], vth[a], vr[a], c0[a], c1[a]
            ex = np.zeros(e - a if (has_sg and has_exp(kid)) else 1, np.float32)
            for t in range(T - 1, -1, -1):
                vp = v0[a:e] if t == 0 else V[t - 1, a:e]
                ip = i0[a:e] if t == 0 else I[t - 1, a:e]
                xt, gxt = x[t, a:e], gx[t, a:e]
                gzt = trow(gz, t, a, e) if has_gz else gz[0, 0:1]
                gvt = trow(gvseq, t, a, e) if has_gv else gvseq[0, 0:1]
                git = trow(giseq, t, a, e) if has_gi else giseq[0, 0:1]
                if has_sg and has_exp(kid):     # the surrogate's exp at u = vd - v_th
                    for jj in range(e - a):
                        vd = norse_charge(xt[jj], vp[jj], ip[jj], ama[jj], asa[jj], vla[jj])[2]
                        ex[jj] = exp_arg(vd - vta[jj], kid, c0a[jj])
                    exp_row(e - a, ex, vml)
                if uni:
                    for jj in range(e - a):
                        norse_vjp_lane(jj, xt, vp, ip, gzt, gvt, git, ca, cb, ci, acc, gxt, ex, am0, as0, vl0, vt0,
                                       vr0, c00, c10, kid, has_sg, has_gz, has_gv, has_gi, need_params)
                else:
                    for jj in range(e - a):
                        norse_vjp_lane(jj, xt, vp, ip, gzt, gvt, git, ca, cb, ci, acc, gxt, ex, ama[jj], asa[jj],
                                       vla[jj], vta[jj], vra[jj], c0a[jj], c1a[jj], kid, has_sg, has_gz, has_gv,
                                       has_gi, need_params)
            gv0[a:e] = ca + cb
            gi0[a:e] = ci
            if need_params:
                gp[:, a:e] = acc

    return norse_bwd


# --------------------------------------------------------------------------- snnTorch Synaptic


@njit(cache=True, inline="always")
def synaptic_charge(sn, m, b, thr, mech):
    """(membrane before this step's spike, detached delayed reset R) from ``syn'`` and the
    previous membrane; "zero" subtracts the whole new membrane (``m - m R``)."""
    r = F1 if m - thr > F0 else F0
    n = b * m + sn
    if mech == 0:
        return n - r * thr, r
    if mech == 1:
        return n - n * r, r
    return n, r


@njit(cache=True, inline="always")
def synaptic_step(x, s, m, a, b, thr, mech, delay):
    """One forward step: (spike, syn', the membrane snnTorch returns)."""
    sn = a * s + x
    n, r = synaptic_charge(sn, m, b, thr, mech)
    spk = F1 if n - thr > F0 else F0
    if not delay:
        n = leaky_late(n, r, thr, F1, mech)
    return spk, sn, n


@functools.lru_cache(maxsize=None)
def make_synaptic_fwd(mech: int, delay: int):
    """The forward kernel of one variant (flags are compile-time constants)."""

    @kernel
    def synaptic_fwd(x, al, be, thr, s0, m0, S, Sseq, Mseq, slast, mlast, store, j0, j1):
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            s, m = s0[a:e].copy(), m0[a:e].copy()
            scr_s, scr_m = np.empty(e - a, np.float32), np.empty(e - a, np.float32)
            aa, ba, ta = al[a:e], be[a:e], thr[a:e]
            for t in range(x.shape[0]):
                xt, st = x[t, a:e], S[t, a:e]
                sst, mst = (Sseq[t, a:e], Mseq[t, a:e]) if store else (scr_s, scr_m)
                for jj in range(e - a):
                    st[jj], sn, n = synaptic_step(xt[jj], s[jj], m[jj], aa[jj], ba[jj], ta[jj], mech, delay)
                    s[jj], m[jj], sst[jj], mst[jj] = sn, n, sn, n
            slast[a:e] = s
            mlast[a:e] = m

    return synaptic_fwd


@njit(cache=True, inline="always")
def synaptic_vjp(gn, gspk, sn, m, a, b, thr, mech, delay, kid, c0, c1, ex):
    """One step back from ``gn`` (this step's membrane, all of its uses summed) and ``gspk``:
    (g of ``b mem + syn'``, g of the zero reset's second evaluation ``m2``, g_thr); ``ex``: the
    surrogate's exp (:func:`sg_times_lane`)."""
    n, r = synaptic_charge(sn, m, b, thr, mech)
    gth = F0
    if not delay:
        gn, gspk, gth = leaky_late_vjp(gn, gspk, n, r, thr, F1, mech)
    gu = sg_times_lane(gspk * F1, n - thr, kid, c0, c1, ex)
    gn = gn + gu
    gth = gth + (-gu)
    gm2 = F0
    if mech == 0:
        gth = gth + (-gn) * r
    elif mech == 1:
        gm2 = (-gn) * r
    return gn, gm2, gth


@functools.lru_cache(maxsize=None)
def make_synaptic_bwd(mech: int, delay: int, kid: int, has_gs: int, has_gss: int, has_gms: int, need_params: int):
    """The reverse-scan kernel of one variant (flags are compile-time constants; ``has_gsl`` /
    ``has_gml`` (the initial carries) and ``need_x`` (gX stored) are run-time flags). Carries: the
    gradients of the previous ``syn`` / ``mem`` from this step's two uses of each (``a syn``,
    ``b mem`` and, for "zero", the reset's second evaluation) kept apart, summed in autograd's
    order ``((second + trace) + first)``; ``gp`` ``(3, M)``: the alpha / beta / threshold
    gradients. SLAYER exp: the row of exps first, Sigmoid: ``lanes``, as in :func:`make_leaky_bwd`."""
    zero = mech == 1
    vml = VML      # a closure constant: cached variants differ with and without VML

    @kernel
    def synaptic_bwd(Sseq, Mseq, gs, gsseq, gmseq, gslast, gmlast, has_gsl, has_gml, al, be, thr, s0, m0, c0, c1,
                     lanes, gx, need_x, gs0, gm0, gp, j0, j1):
        T = Sseq.shape[0]
        for a in range(j0, j1, TILE):
            e = min(j1, a + TILE)
            scr = np.empty(e - a, np.float32)
            sa = gslast[a:e].copy() if has_gsl else np.zeros(e - a, np.float32)
            ma = gmlast[a:e].copy() if has_gml else np.zeros(e - a, np.float32)
            sb, mb = np.zeros(e - a, np.float32), np.zeros(e - a, np.float32)
            acc = np.zeros((3, e - a), np.float32)
            aa, ba, ta = al[a:e], be[a:e], thr[a:e]
            ex = np.zeros(e - a if (has_exp(kid) or kid == 1) else 1, np.float32)
            ag = np.zeros(e - a if kid == 1 else 1, np.float32)
            ln = lanes[a:e] if kid == 1 else lanes[0:1]
            for t in range(T - 1, -1, -1):
                sp = s0[a:e] if t == 0 else Sseq[t - 1, a:e]
                mp = m0[a:e] if t == 0 else Mseq[t - 1, a:e]
                snt = Sseq[t, a:e]
                gst = trow(gs, t, a, e) if has_gs else gs[0, 0:1]
                gsst = trow(gsseq, t, a, e) if has_gss else gsseq[0, 0:1]
                gmst = trow(gmseq, t, a, e) if has_gms else gmseq[0, 0:1]
                gxt = gx[t, a:e] if need_x else scr
                if has_exp(kid):    # the surrogate's exp at n - thr (n before the late reset)
                    for jj in range(e - a):
                        n = synaptic_charge(snt[jj], mp[jj], ba[jj], ta[jj], mech)[0]
                        ex[jj] = exp_arg(n - ta[jj], kid, c0)
                    exp_row(e - a, ex, vml)
                if kid == 1:        # Sigmoid's exp at -(d c0), d = n - thr
                    for jj in range(e - a):
                        n = synaptic_charge(snt[jj], mp[jj], ba[jj], ta[jj], mech)[0]
                        ag[jj] = -((n - ta[jj]) * c0)
                    sig_row(e - a, ag, ex, ln)
                for jj in range(e - a):
                    gn = (ma[jj] + gmst[jj] if has_gms else ma[jj]) + mb[jj]
                    gsn = (sa[jj] + gsst[jj] if has_gss else sa[jj]) + sb[jj]
                    gm, gm2, gth = synaptic_vjp(gn, gst[jj] if has_gs else F0, snt[jj], mp[jj], aa[jj], ba[jj],
                                                ta[jj], mech, delay, kid, c0, c1,
                                                ex[jj] if (has_exp(kid) or kid == 1) else F0)
                    gsn = gsn + gm
                    gxt[jj] = gsn + gm2 if zero else gsn
                    if zero:
                        ma[jj], mb[jj], sa[jj], sb[jj] = gm2 * ba[jj], gm * ba[jj], gm2 * aa[jj], gsn * aa[jj]
                    else:
                        ma[jj], mb[jj], sa[jj], sb[jj] = gm * ba[jj], F0, gsn * aa[jj], F0
                    if need_params:
                        acc[0, jj] += gsn * sp[jj] + gm2 * sp[jj]
                        acc[1, jj] += gm * mp[jj] + gm2 * mp[jj]
                        acc[2, jj] += gth
            gs0[a:e] = sa + sb
            gm0[a:e] = ma + mb
            if need_params:
                gp[:, a:e] = acc

    return synaptic_bwd


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
