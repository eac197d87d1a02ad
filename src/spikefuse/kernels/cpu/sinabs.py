"""Fused CPU scan of sinabs' ``LIF`` / ``IAF`` (``sinabs_lif_cpu``): a ScanSpec whose forward and
hand-written reverse scan are the numba kernels of :mod:`._nb_sinabs` (the equations and the
op encoding: kernels/_sinabs_host.py; the bit-exactness argument: kernels/triton/sinabs.py).

Without numba (not installed, broken, or ``SPIKEFUSE_NO_NUMBA=1``) ``supports`` says so: the
``"auto"`` backend then runs the reference loop and ``backend="cpu"`` raises a ``ValueError``
naming the reason.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .._common import IO_DTYPES
from .._sinabs_host import SAVED_BYTES, keeps, sinabs_reason, sinabs_run, sinabs_spec
from ..scan import ScanFunction
from . import jit
from .common import empty32 as _empty
from .common import nb_kernels, numba_reason

__all__ = ["SINABS_SCAN", "SAVED_BYTES", "sinabs_lif_cpu", "sinabs_lif_supports"]

_F32 = torch.float32


def _nb():
    return nb_kernels("sinabs")


def _vec(p, M: int):
    """A per-neuron parameter's numpy view; zeros for an absent one (the kernels index it)."""
    return jit.np32(p) if p is not None else np.zeros(M, np.float32)


def _fwd(tensors, f, i):
    x, am, oma, asy, thr, c, mn, _, v0, i0 = tensors
    mode, maxn, rmode, syn, norm, clamp = i[:6]
    T, M = x.shape
    kv, ki = keeps(i)
    nb = _nb()
    s, vlast, ilast = _empty(T, M), _empty(M), _empty(M)
    vseq, iseq = (_empty(T, M) if on else None for on in (kv, ki))  # absent: not stored (run-time flags)
    k = nb.make_fwd(mode, maxn, rmode, syn, norm, clamp)
    jit.run(k, M, nb.TILE, jit.np32(x, 2), *(_vec(p, M) for p in (am, oma, asy, thr, c, mn, v0, i0)), s.numpy(),
            jit.np32(vseq, 2), jit.np32(iseq, 2), vlast.numpy(), ilast.numpy(), int(kv), int(ki))
    s = s if IO_DTYPES[i[9]] == _F32 else s.to(IO_DTYPES[i[9]])
    return [s, vlast, ilast if syn else None, vseq if kv else None, iseq]


def _bwd(saved, grads, f, i, needs):
    vseq, iseq, x, am, oma, asy, thr, c, mn, hw, v0, i0 = saved
    g_s, g_vlast, g_ilast, g_vseq, g_iseq = grads
    mode, maxn, rmode, syn, norm, clamp, _, sid = i[:8]
    T, M = vseq.shape
    nb = _nb()
    need_params = any(needs[1:4])
    gx, gv0, gi0, gp = _empty(T, M), _empty(M), _empty(M), _empty(3, M) if need_params else None
    has = (int(g is not None) for g in (g_s, g_vseq, g_iseq))
    k = nb.make_bwd(mode, maxn, rmode, syn, norm, clamp, sid, *has, int(need_params))
    rows = [jit.grad_rows(g)[0] for g in (g_s, g_vseq, g_iseq)]  # one (1, M) row if broadcast over time (trow)
    jit.run(k, M, nb.TILE, vseq.numpy(), jit.np32(iseq, 2), jit.np32(x, 2), *rows, jit.np32(g_vlast),
            jit.np32(g_ilast), int(g_vlast is not None), int(g_ilast is not None),
            *(_vec(p, M) for p in (am, oma, asy, thr, c, mn, hw, v0, i0)), *(np.float32(v) for v in f),
            gx.numpy(), gv0.numpy(), gi0.numpy(), jit.np32(gp, 2))
    gx = gx if IO_DTYPES[i[9]] == _F32 else gx.to(IO_DTYPES[i[9]])
    gps = [gp[r].clone() if need_params else None for r in range(3)]  # no aliases between outputs
    out = [gx, *gps, None, None, None, None, gv0, gi0]
    return [g if n else None for g, n in zip(out, needs)]


SINABS_SCAN = ScanFunction(sinabs_spec("sinabs_lif_cpu", _fwd, _bwd))


def sinabs_lif_cpu(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused sinabs LIF / IAF scan on CPU, the kernel contract of
    :func:`spikefuse.kernels.triton.sinabs.sinabs_lif_triton`: ``((spikes,), (v_last, i_last or
    None), (v_seq, i_seq or None) or None)``."""
    return sinabs_run(SINABS_SCAN, x_seq, params, state, return_traces)


def sinabs_lif_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the CPU sinabs scan can run this case, else the reason."""
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return numba_reason("sinabs") or sinabs_reason(x_seq, params, state)
