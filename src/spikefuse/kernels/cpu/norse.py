"""Fused CPU scans of norse's refractory LIF (``norse_lif_refrac_cpu``) and AdEx LIF
(``norse_lif_adex_cpu``): ScanSpecs whose forward and hand-written reverse scan are the numba
kernels of :mod:`._nb_norse` (the equations and op encodings: kernels/_norse_host.py; the
summation order that makes the gradients bit-identical: kernels/triton/norse.py).

Without numba (not installed, broken, or ``SPIKEFUSE_NO_NUMBA=1``) ``supports`` says so: the
``"auto"`` backend then runs the reference loop and ``backend="cpu"`` raises a ``ValueError``
naming the reason.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .._common import IO_DTYPES, SG_NONE
from .._norse_host import SAVED_BYTES, adex_reason, adex_run, adex_spec, keep_traces, refrac_reason, refrac_run, refrac_spec
from ..scan import ScanFunction
from . import jit
from .common import empty32 as _empty
from .common import numba_reason

__all__ = ["ADEX_SCAN", "REFRAC_SCAN", "SAVED_BYTES", "norse_lif_adex_cpu", "norse_lif_adex_supports",
           "norse_lif_refrac_cpu", "norse_lif_refrac_supports"]

_F32 = torch.float32


def _nb():
    nb = jit.kernels("norse")
    if nb is None:  # supports() refuses this case first
        raise RuntimeError("spikefuse: the numba norse kernels are unavailable")
    return nb


def _io(t: torch.Tensor, dti: int) -> torch.Tensor:
    return t if IO_DTYPES[dti] == _F32 else t.to(IO_DTYPES[dti])


def _stack(ts) -> np.ndarray:
    return torch.stack([t.detach().to(_F32) for t in ts]).contiguous().numpy()


def _fwd(model: int, tensors, i, n_params: int):
    x = tensors[0]
    T, M = x.shape
    nb = _nb()
    keep = keep_traces(i)
    # without traces or a backward the state sequences are not kept: one scratch row each
    z, seq, last = _empty(T, M), [_empty(T if keep else 1, M) for _ in range(3)], _empty(3, M)
    P = _stack(tensors[1:1 + n_params])
    # parameters with one value each (norse's defaults, numbers): the lane loops take them as scalars
    jit.run(nb.make_fwd(model, int(nb.all_uniform(P))), M, nb.SPLIT, jit.np32(x, 2), P, _stack(tensors[1 + n_params:]), z.numpy(), *(s.numpy() for s in seq), last.numpy(), int(keep),
            steps=T)
    return [_io(z, i[2]), *(last[k].clone() for k in range(3)), *(s if keep else None for s in seq)]


def _bwd(model: int, saved, grads, f, i, needs, n_params: int, carries):
    """``n_params`` parameter rows, the last two the surrogate's constants (no gradient);
    ``carries``: how many carried terms each state has, summed into the initial-state gradient
    in that order (autograd's)."""
    seqs, x, params, state0 = saved[:3], saved[3], saved[4:4 + n_params], saved[4 + n_params:]
    g_z, g_last, g_seq = grads[0], grads[1:4], grads[4:7]
    T, M = seqs[0].shape
    nb = _nb()
    sg = i[0]
    n_grad = n_params - 2
    need_params = any(needs[1:1 + n_grad])
    gl = torch.zeros(3, M)
    for k, g in enumerate(g_last):
        if g is not None:
            gl[k] = g
    gx, g0, gp = _empty(T, M), _empty(sum(carries), M), _empty(n_grad, M) if need_params else None
    has = (int(g is not None) for g in (g_z, *g_seq))
    k = nb.make_bwd(model, max(sg, 0), int(sg != SG_NONE), *has, int(need_params))
    # an output gradient broadcast over time (a sum's) crosses as its one row (jit.grad_rows)
    jit.run(k, M, nb.SPLIT, *(s.numpy() for s in seqs), jit.np32(x, 2), *(jit.grad_rows(g)[0] for g in (g_z, *g_seq)),
            gl.numpy(), _stack(params), _stack(state0), gx.numpy(), g0.numpy(), jit.np32(gp, 2))
    gs, r = [], 0
    for n in carries:
        g = g0[r]
        for extra in g0[r + 1:r + n]:
            g = g + extra  # the uses of the initial state in step 0, summed as autograd sums them
        gs.append(g.clone())
        r += n
    out = [_io(gx, i[2]), *(gp[q].clone() if need_params else None for q in range(n_grad)), None, None, *gs]
    return [g if n else None for g, n in zip(out, needs)]


REFRAC_SCAN = ScanFunction(refrac_spec("norse_lif_refrac_cpu", lambda t, f, i: _fwd(0, t, i, 8),
                                       lambda s, g, f, i, n: _bwd(0, s, g, f, i, n, 8, (3, 1, 2))))
ADEX_SCAN = ScanFunction(adex_spec("norse_lif_adex_cpu", lambda t, f, i: _fwd(1, t, i, 11),
                                   lambda s, g, f, i, n: _bwd(1, s, g, f, i, n, 11, (4, 1, 3))))


def _cpu_reason(x_seq: torch.Tensor) -> Optional[str]:
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return numba_reason("norse")


def norse_lif_refrac_cpu(x_seq: torch.Tensor, params, state, return_traces: bool = False, *, dt: float):
    """Fused norse refractory LIF on CPU, the kernel contract of
    :func:`spikefuse.kernels.triton.norse.norse_lif_refrac_triton`: ``((z,), ((v, i), rho),
    ((v_seq, i_seq), rho_seq) or None)``."""
    return refrac_run(REFRAC_SCAN, x_seq, params, state, return_traces, dt)


def norse_lif_refrac_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the CPU refractory-LIF scan can run this case, else the reason."""
    return _cpu_reason(x_seq) or refrac_reason(x_seq, params, state)


def norse_lif_adex_cpu(x_seq: torch.Tensor, params, state, return_traces: bool = False, *, dt: float):
    """Fused norse AdEx LIF on CPU, the kernel contract of
    :func:`spikefuse.kernels.triton.norse.norse_lif_adex_triton`: ``((z,), (v, i, a), (v_seq,
    i_seq, a_seq) or None)``."""
    return adex_run(ADEX_SCAN, x_seq, params, state, return_traces, dt)


def norse_lif_adex_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the CPU AdEx scan can run this case, else the reason."""
    return _cpu_reason(x_seq) or adex_reason(x_seq, params, state)
