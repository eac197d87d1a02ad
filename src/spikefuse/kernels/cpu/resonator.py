"""Fused CPU path for the Loihi resonate-and-fire family RF, RF-Iz, AdRF, AdRF-Iz (SPEC.md 2.1,
2.2, 3.4, 6-9): the numba scans of :mod:`._nb_resonator` behind ScanSpecs with the Triton scans'
op encoding (:mod:`spikefuse.kernels._resonator_host`).

Forward: bit-identical to the int64 reference :mod:`spikefuse.functional.resonator` (spikes,
re/im and θ/r traces, final state). Backward: the reverse scan the Triton kernel defines (the
float rotation's VJP with the spike surrogates fused, both ``decay_grad`` modes), in the
reference's operation order without fused multiply-adds, the surrogates' exps torch.exp's and
their coefficients the reference's (Python doubles rounded to fp32), the upstream gradients of a
step summed in autograd's order: fp32 gradients bit-identical to the reference's. A gradient
broadcast over time (of a ``sum``) is read as one row (:func:`.jit.grad_rows`), not copied. fp16/bf16 I/O runs through fp32
buffers (one conversion each way).

One tensor as both inputs (``f((x, x))``, :func:`._resonator_host.prepare`): the backward kernel
writes the sum of the two input gradients (``make_bwd(fuse=1)``), which autograd would otherwise
add in a pass of its own over two fresh (T, M) gradients. Measured (f+b, (500, 16, 1024), min of 6
interleaved with ``(x, x.view_as(x))``): RF 36.6 -> 30.3 ms and AdRF 45.1 -> 38.0 ms on one
thread; RF 19.4 -> 16.1, AdRF 24.6 -> 20.9, RF-Iz 18.8 -> 15.1 ms on two.

Without numba :func:`res_cpu_supports` returns the reason: ``backend="auto"`` runs the reference
loop (today's path; :mod:`.jit` warns once), ``backend="cpu"`` raises a ValueError saying why.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .. import _resonator_host as host
from .._common import IO_DTYPES
from . import jit
from .common import check_flagged_tiles, np_f32, np_i64, np_view, numba_reason

SAVED_BYTES = host.SAVED_BYTES
#: ``int64_chunks``: how many ``SPLIT``-neuron chunks of the last forward ran in int64 (those of
#: the tiles that left the float64 path's proven bounds, see ``_nb_resonator.make_fwd``)
LAST: dict = {}


def _seq(on: bool, T: int, M: int, dtype=torch.float32):
    """A ``(T, M)`` output the kernel writes in full (pooled when large: :func:`.jit.empty`), or None."""
    return jit.empty((T, M), dtype) if on else None


def _fwd(tensors, f, i):
    xr, xi, S, C, re0, im0, Si, Ci, kth, kr, re0i, im0i, th0i, r0i = tensors
    s_f, theta_f, thr_s_f = (np_f32(v) for v in f[:3])
    reset_im, theta0, step, model, graded = i[:5]
    T, M = xr.shape
    flags = host.store_flags(i)
    store_ri, store_lim, store_tr, store_rst = flags
    nb = jit.kernels("resonator")
    spk = jit.empty((T, M))
    re, im, lim = _seq(store_ri, T, M), _seq(store_ri, T, M), _seq(store_lim, T, M)
    th, r = _seq(store_tr, T, M), _seq(store_tr, T, M)
    rst = _seq(store_rst, T, M, torch.int8)
    last = [torch.empty(M, dtype=torch.float32) if k < 2 or model >= 2 else None for k in range(4)]
    vflags = (model, int(graded), *(int(v) for v in flags))
    ex = np.zeros(-(-M // nb.SPLIT), np.int8)      # one flag per SPLIT neurons
    ints = [np_view(t) for t in (Si, Ci, kth, kr, re0i, im0i, th0i, r0i)]
    args = (jit.np32(xr), jit.np32(xi), *ints, jit.np32(im0), s_f, theta_f, thr_s_f,
            *(np_i64(v) for v in (reset_im, theta0, step)), spk.numpy(),
            *(jit.np32(t, 2) for t in (re, im, lim, th, r)), np_view(rst), *(jit.np32(t) for t in last))
    jit.run(nb.make_fwd(*vflags), M, nb.SPLIT, *args, ex)
    if ex.any():  # tiles that left the float64 path's bounds: again in int64 (compiled on first need)
        check_flagged_tiles(ex, nb.SPLIT, xr, xi)   # the inputs' NaN/inf scan (checks_finite below)
        nb.rerun_int64(nb.make_fwd_i64(*vflags), ex, M, nb.SPLIT, args)
    LAST["int64_chunks"] = int(ex.sum())
    if xr.dtype != torch.float32:
        spk = spk.to(xr.dtype)
    return [spk, re, im, last[0], last[1], th, r, last[2], last[3], lim, rst]


def _bwd(saved, grads, f, i, needs):
    re, im, lim, rst, S, C, re0, im0 = saved
    T, M = re.shape
    model, graded, lava, io = i[3], i[4], i[6], IO_DTYPES[i[7]]
    need_dec = bool(needs[2] or needs[3])
    nb = jit.kernels("resonator")
    fuse = bool(i[9]) and io == torch.float32   # one input as both: the kernel writes gxr + gxi
    gxr, gxi = jit.empty((T, M)), None if fuse else jit.empty((T, M))
    gre0, gim0, gS, gC = (torch.empty(M, dtype=torch.float32) for _ in range(4))
    gs = grads[:5]  # spikes, re/im traces, re/im of the last step
    k = nb.make_bwd(model, int(graded), *(int(g is not None) for g in gs), int(need_dec), int(lava), nb.BWD_TILE,
                    int(fuse))
    rows = [jit.grad_rows(g) for g in gs[:3]]    # a gradient broadcast over time: one row, step 0
    rho, kappa = f[3], f[4]
    # the surrogates' Python-number coefficients (double, rounded to fp32 in the reference's ops):
    # 1 / (2 rho), 2 rho, -(kappa / rho); RealSpike's kappa (graded) or kappa / (2 rho)
    consts = (rho, kappa, 1 / (2 * rho), 2 * rho, -(kappa / rho), kappa if graded else kappa / (2 * rho))
    jit.run(k, M, nb.SPLIT, jit.np32(re), jit.np32(im), jit.np32(lim, 2), np_view(rst),
            *(r[0] for r in rows), *(r[1] for r in rows), jit.np32(gs[3]), jit.np32(gs[4]),
            *(jit.np32(v / 4096) for v in (S, C)), jit.np32(re0), jit.np32(im0),
            *(np_f32(v) for v in (f[1], *consts, f[5], 1.0 if lava else 1.0 / 4096)),
            gxr.numpy(), jit.np32(gxi, 2), gre0.numpy(), gim0.numpy(), gS.numpy(), gC.numpy())
    out = [*host.input_grads(gxr, gxi, i), gS, gC, gre0, gim0]
    return [g if n else None for g, n in zip(out, needs[:6])] + [None] * 8


SCANS = host.scan_functions("cpu", _fwd, _bwd)


def res_cpu_supports(x_seq, params=None, state=None, **_) -> Optional[str]:
    """None when the fused CPU scans can run this case: CPU tensors, numba, any model option,
    per-channel decays."""
    if params is None:
        return "no params given"
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return host.supports_common(x_seq, params) or numba_reason("resonator")


_EXAMPLE = 's, st = resonator.{m}_multistep((xr, xi), p, backend="cpu")'
loihi_rf_cpu = host.make(SCANS, "rf", "cpu", _EXAMPLE.format(m="rf"))
loihi_rf_iz_cpu = host.make(SCANS, "rf_iz", "cpu", _EXAMPLE.format(m="rf_iz"))
loihi_adrf_cpu = host.make(SCANS, "adrf", "cpu", _EXAMPLE.format(m="adrf"))
loihi_adrf_iz_cpu = host.make(SCANS, "adrf_iz", "cpu", _EXAMPLE.format(m="adrf_iz"))
# the NaN/inf scan of the inputs: by the float64 pass's tile flags (common.check_flagged_tiles)
for _k in (loihi_rf_cpu, loihi_rf_iz_cpu, loihi_adrf_cpu, loihi_adrf_iz_cpu):
    _k.checks_finite = True
