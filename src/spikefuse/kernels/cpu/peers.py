"""Fused CPU scans of the peer families: snnTorch ``Leaky`` (``snntorch_leaky_cpu``), snnTorch
``Synaptic`` (``snntorch_synaptic_cpu``) and norse's feed-forward LIF (``norse_lif_cpu``), ScanSpecs whose forward and hand-written reverse scan are
the numba kernels of :mod:`._nb_peers` (the equations and the bit-exactness argument are those
of kernels/triton/peers.py; the op encoding is shared, kernels/_common.py).

Without numba (not installed, broken, or ``SPIKEFUSE_NO_NUMBA=1``) ``supports`` says so: the
``"auto"`` backend then runs the family's reference loop (the fallback; :mod:`.jit` warns once)
and ``backend="cpu"`` raises a ``ValueError`` naming the reason.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .._common import (IO_DTYPES, SG_NONE, io_reason, leaky_reason, leaky_run, leaky_spec, norse_reason,
                       norse_run, norse_spec, synaptic_reason, synaptic_run, synaptic_spec)
from ..scan import ScanFunction
from . import jit
from .common import empty32 as _empty
from .common import nb_kernels, numba_ready
from .lif import _lanes  # Sigmoid: where torch's sigmoid of the (B, N) row runs a vector lane

#: bytes saved for backward per neuron-step, by kernel key
SAVED_BYTES = {"snntorch_leaky": 4, "snntorch_synaptic": 8, "norse_lif": 8}

_F32 = torch.float32
_SG_IDS = (0, 1, 2, 3, 4)


def _nb():
    return nb_kernels("peers")


def _seq(on: bool, T: int, M: int):
    """A ``(T, M)`` trace output the kernel stores (``on``), else a dummy (its ``store`` flag off)."""
    return _empty(T, M) if on else _empty(1, 1)


def _io(t: torch.Tensor, dti: int) -> torch.Tensor:
    return t if IO_DTYPES[dti] == _F32 else t.to(IO_DTYPES[dti])


# --------------------------------------------------------------------------- snnTorch Leaky


def _leaky_fwd(tensors, f, i):
    x, b, thr, gsf, m0 = tensors
    mech, delay, _, traces, dti, need = i
    T, M = x.shape
    nb = _nb()
    keep = bool(traces or need)
    spk, mseq, mlast = _empty(T, M), _seq(keep, T, M), _empty(M)
    jit.run(nb.make_leaky_fwd(mech, int(delay)), M, nb.TILE, jit.np32(x, 2), jit.np32(b), jit.np32(thr),
            jit.np32(gsf), jit.np32(m0), spk.numpy(), mseq.numpy(), mlast.numpy(), int(keep))
    return [_io(spk, dti), mlast, mseq if keep else None]


def _leaky_bwd(saved, grads, f, i, needs):
    mseq, x, b, thr, gsf, m0 = saved
    g_spk, g_mlast, g_mseq = grads
    mech, delay, kid, _, dti, _ = i
    T, M = mseq.shape
    nb = _nb()
    need_params = any(needs[1:3])
    gx, gm0 = _empty(T, M) if needs[0] else None, _empty(M)
    gb, gthr = (_empty(M), _empty(M)) if need_params else (None, None)
    k = nb.make_leaky_bwd(mech, int(delay), kid, int(g_spk is not None), int(g_mseq is not None), int(need_params))
    rows = [jit.grad_rows(g)[0] for g in (g_spk, g_mseq)]  # one (1, M) row if broadcast over time (trow)
    jit.run(k, M, nb.TILE, mseq.numpy(), jit.np32(x, 2), *rows, jit.np32(g_mlast),
            int(g_mlast is not None), jit.np32(b), jit.np32(thr), jit.np32(gsf), jit.np32(m0), np.float32(f[0]),
            np.float32(f[1]), _lanes(kid, M), jit.np32(gx, 2), int(gx is not None), gm0.numpy(), jit.np32(gb),
            jit.np32(gthr))
    return [None if gx is None else _io(gx, dti), gb if needs[1] else None, gthr if needs[2] else None, None,
            gm0 if needs[4] else None]


LEAKY_SCAN = ScanFunction(leaky_spec("snntorch_leaky_cpu", _leaky_fwd, _leaky_bwd))


def snntorch_leaky_cpu(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused snnTorch ``Leaky`` scan on CPU, the kernel contract of
    :func:`spikefuse.kernels.triton.peers.snntorch_leaky_triton`: ``((spikes,), (mem_last,),
    (mem_seq,) or None)``.

    >>> import torch
    >>> from spikefuse.functional.snntorch import LeakyParams
    >>> (s,), (m,), _ = snntorch_leaky_cpu(torch.full((3, 1, 1), 0.6), LeakyParams(beta=0.5))
    >>> s.flatten().tolist(), round(m.item(), 4)     # mem 0.6, 0.9, 1.05 (> 1: fires at the last step)
    ([0.0, 0.0, 1.0], 1.05)
    """
    return leaky_run(LEAKY_SCAN, x_seq, params, state, return_traces)


def _cpu_reason(x_seq: torch.Tensor) -> Optional[str]:
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    if not numba_ready("peers"):
        return "numba is unavailable (pip install numba, or unset SPIKEFUSE_NO_NUMBA); the reference loop runs it"
    return io_reason(x_seq)


def _surrogate_reason(params, what: str) -> Optional[str]:
    if params is None:
        return f"no {what} given"
    kid = getattr(params.surrogate, "kernel_id", -1)
    if kid not in _SG_IDS:
        return f"surrogate {params.surrogate!r} has no in-kernel formula (kernel_id {kid})"
    return None


def snntorch_leaky_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the CPU Leaky scan can run this case, else the reason."""
    return _surrogate_reason(params, "LeakyParams") or _cpu_reason(x_seq) or leaky_reason(x_seq, params, state)


# --------------------------------------------------------------------------- snnTorch Synaptic


def _synaptic_fwd(tensors, f, i):
    x, al, be, thr, s0, m0 = tensors
    mech, delay, _, traces, dti, need = i
    T, M = x.shape
    nb = _nb()
    keep = bool(traces or need)
    spk, sseq, mseq, slast, mlast = _empty(T, M), _seq(keep, T, M), _seq(keep, T, M), _empty(M), _empty(M)
    jit.run(nb.make_synaptic_fwd(mech, int(delay)), M, nb.TILE, jit.np32(x, 2), jit.np32(al), jit.np32(be),
            jit.np32(thr), jit.np32(s0), jit.np32(m0), spk.numpy(), sseq.numpy(), mseq.numpy(), slast.numpy(),
            mlast.numpy(), int(keep))
    return [_io(spk, dti), slast, mlast, sseq if keep else None, mseq if keep else None]


def _synaptic_bwd(saved, grads, f, i, needs):
    sseq, mseq, al, be, thr, s0, m0 = saved
    g_spk, g_slast, g_mlast, g_sseq, g_mseq = grads
    mech, delay, kid, _, dti, _ = i
    T, M = sseq.shape
    nb = _nb()
    need_params = any(needs[1:4])
    gx, gs0, gm0 = _empty(T, M) if needs[0] else None, _empty(M), _empty(M)
    gp = _empty(3, M) if need_params else None
    has = (int(g is not None) for g in (g_spk, g_sseq, g_mseq))
    k = nb.make_synaptic_bwd(mech, int(delay), kid, *has, int(need_params))
    rows = [jit.grad_rows(g)[0] for g in (g_spk, g_sseq, g_mseq)]  # one (1, M) row if broadcast over time
    jit.run(k, M, nb.TILE, sseq.numpy(), mseq.numpy(), *rows,
            jit.np32(g_slast), jit.np32(g_mlast), int(g_slast is not None), int(g_mlast is not None), jit.np32(al),
            jit.np32(be), jit.np32(thr), jit.np32(s0), jit.np32(m0), np.float32(f[0]), np.float32(f[1]),
            _lanes(kid, M), jit.np32(gx, 2), int(gx is not None), gs0.numpy(), gm0.numpy(), jit.np32(gp, 2))
    out = [None if gx is None else _io(gx, dti), *(gp[k].clone() if need_params else None for k in range(3)),
           gs0, gm0]
    return [g if n else None for g, n in zip(out, needs)]


SYNAPTIC_SCAN = ScanFunction(synaptic_spec("snntorch_synaptic_cpu", _synaptic_fwd, _synaptic_bwd))


def snntorch_synaptic_cpu(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """Fused snnTorch ``Synaptic`` scan on CPU, the kernel contract of
    :func:`spikefuse.kernels.triton.peers.snntorch_synaptic_triton`: ``((spikes,), (syn_last,
    mem_last), (syn_seq, mem_seq) or None)``.

    >>> import torch
    >>> from spikefuse.functional.snntorch import SynapticParams
    >>> (s,), (syn, mem), _ = snntorch_synaptic_cpu(torch.full((2, 1, 1), 0.5), SynapticParams(alpha=0.5, beta=0.5))
    >>> s.flatten().tolist(), syn.item(), mem.item()     # syn 0.5, 0.75; mem 0.5, 1.0 (not > 1)
    ([0.0, 0.0], 0.75, 1.0)
    """
    return synaptic_run(SYNAPTIC_SCAN, x_seq, params, state, return_traces)


def snntorch_synaptic_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the CPU Synaptic scan can run this case, else the reason."""
    return (_surrogate_reason(params, "SynapticParams") or _cpu_reason(x_seq)
            or synaptic_reason(x_seq, params, state))


# --------------------------------------------------------------------------- norse LIF


def _norse_fwd(tensors, f, i):
    x, am, asn, vl, vth, vr, _c0, _c1, v0, i0 = tensors  # the surrogate's rows: backward only
    _, traces, dti, need = i
    T, M = x.shape
    nb = _nb()
    keep = bool(traces or need)
    z, vseq, iseq, vlast, ilast = _empty(T, M), _seq(keep, T, M), _seq(keep, T, M), _empty(M), _empty(M)
    jit.run(nb.norse_fwd, M, nb.TILE, jit.np32(x, 2), *(jit.np32(p) for p in (am, asn, vl, vth, vr, v0, i0)),
            z.numpy(), vseq.numpy(),
            iseq.numpy(), vlast.numpy(), ilast.numpy(), int(keep))
    return [_io(z, dti), vlast, ilast, vseq if keep else None, iseq if keep else None]


def _norse_bwd(saved, grads, f, i, needs):
    vseq, iseq, x, *ps = saved
    g_z, g_vlast, g_ilast, g_vseq, g_iseq = grads
    sg, _, dti, _ = i
    T, M = vseq.shape
    nb = _nb()
    need_params = any(needs[1:6])
    gx, gv0, gi0, gp = _empty(T, M), _empty(M), _empty(M), _empty(5, M) if need_params else None
    has = (int(g is not None) for g in (g_z, g_vseq, g_iseq))
    k = nb.make_norse_bwd(max(sg, 0), int(sg != SG_NONE), *has, int(need_params))
    rows = [jit.grad_rows(g)[0] for g in (g_z, g_vseq, g_iseq)]  # one (1, M) row if broadcast over time
    jit.run(k, M, nb.TILE, vseq.numpy(), iseq.numpy(), jit.np32(x, 2), *rows, jit.np32(g_vlast), jit.np32(g_ilast),
            int(g_vlast is not None), int(g_ilast is not None), *(jit.np32(p) for p in ps), gx.numpy(), gv0.numpy(),
            gi0.numpy(), jit.np32(gp, 2))
    # no aliases; c0, c1 (the surrogate's rows from alpha) have no gradient
    out = [_io(gx, dti), *(gp[k].clone() if need_params else None for k in range(5)), None, None, gv0, gi0]
    return [g if n else None for g, n in zip(out, needs)]


NORSE_LIF_SCAN = ScanFunction(norse_spec("norse_lif_cpu", _norse_fwd, _norse_bwd))


def norse_lif_cpu(x_seq: torch.Tensor, params, state, return_traces: bool = False, *, dt: float):
    """Fused norse feed-forward LIF on CPU, the kernel contract of
    :func:`spikefuse.kernels.triton.peers.norse_lif_triton`: ``((z,), (v, i), (v_seq, i_seq)
    or None)``."""
    return norse_run(NORSE_LIF_SCAN, x_seq, params, state, return_traces, dt)


def norse_lif_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the CPU norse LIF scan can run this case, else the reason."""
    return _cpu_reason(x_seq) or norse_reason(x_seq, params, state)
