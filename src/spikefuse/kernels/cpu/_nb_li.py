"""Numba scans of the leaky-integrator readout (:class:`spikefuse.layers.LeakyIntegrator`, its
autograd node ``layers._LIScan``), loaded through :mod:`.jit` (never at import of the library).

The recurrences and their operation order are those of ``layers._li_loop`` (the definition, which
autograd differentiates) and of the NumPy loops of ``layers._LIScan`` (the fallback without
numba)::

    forward   v[t] = v[t-1] * decay + x[t] * gain          (v[-1] = +0.0)
    backward  u[T-1] = g[T-1];  u[t] = g[t] + u[t+1] * decay;  gx[t] = u[t] * gain (+ 0.0 if T > 1)

each product rounded before the sum (numba does not contract to fused multiply-adds without
``fastmath``), in the arrays' dtype (``decay``, ``gain`` and ``zero`` are passed as scalars of
that dtype: float32 or float64), so outputs and gradients are the loop's bit for bit. The
trailing ``+ 0.0`` is the loop's summation of the per-step gradients into zeros (a -0.0 becomes
+0.0). Arrays are C-contiguous ``(T, M)``; a kernel runs neurons ``[j0, j1)`` with the time loop
outside (a readout has few neurons: one row per step).
"""
from __future__ import annotations

import numpy as np

from ._nb_kernel import kernel, stable_uuids

#: neurons per range of :func:`.jit.run`
SPLIT = 4096


@kernel
def li_fwd(x, decay, gain, zero, out, j0, j1):
    T = x.shape[0]
    for j in range(j0, j1):
        out[0, j] = zero * decay + x[0, j] * gain
    for t in range(1, T):
        for j in range(j0, j1):
            out[t, j] = out[t - 1, j] * decay + x[t, j] * gain


@kernel
def li_bwd(g, decay, gain, zero, gx, j0, j1):
    T = g.shape[0]
    u = np.empty(j1 - j0, dtype=g.dtype)
    for j in range(j0, j1):
        u[j - j0] = g[T - 1, j]
    if T == 1:
        for j in range(j0, j1):
            gx[0, j] = u[j - j0] * gain
        return
    for j in range(j0, j1):
        gx[T - 1, j] = u[j - j0] * gain + zero
    for t in range(T - 2, -1, -1):
        for j in range(j0, j1):
            v = g[t, j] + u[j - j0] * decay
            u[j - j0] = v
            gx[t, j] = v * gain + zero


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
