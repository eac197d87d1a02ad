"""Fused CPU path for the Loihi fixed-point CUBA and ALIF neurons (lava-dl semantics, SPEC.md
3.3, 3.4, 4, 5): the numba scans of :mod:`._nb_loihi` behind the same op encoding as the Triton
kernels (``kernels/_common.py``: ``loihi_op_args`` / ``loihi_scan``).

Forward: the reference's integer arithmetic (in int32 lanes where the states stay within 2**19
LSB and the scale is a power of two, else in exact float64 where they are proven within 2**40,
else int64, per tile of neurons: see ``_nb_loihi``) and its float conversions, so
spikes, every trace and the final state are bit-identical. Backward: the reference's float reverse scan
(the two chained leaky integrators, the reset ignored) with the reference's operation order and
the surrogate's exps computed as torch.exp does (``_nb_vml``: the float32 arguments of a row, one
MKL VML call), so the fp32 input gradient is bit-identical to the reference's. The decay gradients are the reference's own ``(acc[1:] * y[:-1]).sum(0)``: the kernel
writes the per-step products and torch sums them (its cascade order over time), so they are
bit-identical wherever the input gradient is (a sum in time order differed by up to 7e-6
relative); that costs a ``(T, M)`` fp32 buffer per learnable decay.

Multi-threaded over neurons with :func:`.jit.run`. Without numba (or with
``SPIKEFUSE_NO_NUMBA=1``) ``supports`` says so and ``backend="auto"`` runs the reference loop
(the int64 loop has no faster torch-op form); one ``RuntimeWarning`` says so.

Saved for backward per neuron-step (``SAVED_BYTES``): the voltage trace (fp32, an output),
ALIF's spike limit ``theta_f + r_f`` (4 B), and the current trace (an output) only when the
current decay learns.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .._common import IO_DTYPES, loihi_op_args, loihi_reason, loihi_results, loihi_scan
from . import jit
from .common import check_flagged_tiles, empty32

SAVED_BYTES = {"loihi_cuba": 4, "loihi_alif": 8}


def _i64(t: Optional[torch.Tensor]):
    return np.zeros(1, np.int64) if t is None else t.detach().contiguous().numpy()


def _one_value_i64(a: np.ndarray) -> bool:
    """Whether the int64 vector ``a`` holds one value (a decay given as a number, expanded)."""
    return a.size <= 1 or bool((a == a[0]).all())


def _f32_out(on: bool, *shape) -> Optional[torch.Tensor]:
    """An fp32 output the kernel writes in full (pooled when large: :func:`.jit.empty`), or None."""
    return empty32(*shape) if on else None


def _fwd(tensors, f, i):
    x, _, _, *ints = tensors
    s_f, s_d, thr_f, thr_s_f = f[:4]
    theta0, step, alif, graded, traces, _, need = i
    T, M = x.shape
    store_lim, store_tr = bool(alif and (need & 0b111)), bool(alif and traces)
    S, U, V = (empty32(T, M) for _ in range(3))
    lim, th_tr, r_tr = _f32_out(store_lim, T, M), _f32_out(store_tr, T, M), _f32_out(store_tr, T, M)
    thf, rf = _f32_out(bool(alif), M), _f32_out(bool(alif), M)
    s = int(s_d)
    nb = _nb()
    ex = np.zeros(-(-M // nb.SPLIT), np.int8)      # one flag per SPLIT neurons
    ints = [_i64(t) for t in ints]
    # uni: each decay keep has one value over all neurons (decays given as numbers): the lane loop
    # reads them as scalars (_nb_loihi._make_tile); CUBA passes its u keep as the ALIF dummies
    uni = int(all(_one_value_i64(k) for k in ints[:4 if alif else 2]))
    flags = (int(alif), int(graded), int(store_lim), int(store_tr), int(s & (s - 1) == 0))
    args = (jit.np32(x), S.numpy(), U.numpy(), V.numpy(), jit.np32(lim, 2), jit.np32(th_tr, 2), jit.np32(r_tr, 2),
            *ints, jit.np32(thf), jit.np32(rf), np.float32(s_f), np.float64(s_d),
            np.float64(1.0 / s), np.float32(thr_f), np.float32(thr_s_f), np.int64(theta0), np.int64(step))
    # i32: the int32 tiles first (a power-of-two s within 2**60: 1/s is exact in float32)
    jit.run(nb.make_fwd(*flags, uni=uni, i32=int(s <= 2 ** 60)), M, nb.SPLIT, *args, ex)
    if ex.any():  # tiles that left the float64 path's bounds: again in int64 (compiled on first need)
        check_flagged_tiles(ex, nb.SPLIT, x)    # the input's NaN/inf scan (checks_finite below)
        nb.rerun_int64(nb.make_fwd_i64(*flags, uni=uni), ex, M, nb.SPLIT, args)
    LAST["int64_chunks"] = int(ex.sum())
    spk = S if x.dtype == torch.float32 else S.to(x.dtype)
    return [spk, U, V, th_tr, r_tr, thf, rf, lim]


#: ``int64_chunks``: how many ``SPLIT``-neuron chunks of the last forward ran in int64 (those of
#: the tiles that left the float64 path's proven bounds; tests and benchmarks read it)
LAST: dict = {}


grad_rows = jit.grad_rows  # (array, row step) of an upstream (T, M) gradient; one row when broadcast over time


def _decay_grad(P: Optional[torch.Tensor], lava: bool) -> Optional[torch.Tensor]:
    """A decay's per-neuron gradient from the kernel's per-step terms ``P[1:]`` as the reference
    forms it: ``(P[1:]).sum(0)`` (torch's own summation order over time), lava's rule as is,
    the exact rule ``-term / 4096``."""
    if P is None:
        return None
    term = P[1:].sum(0) if P.shape[0] > 1 else torch.zeros(P.shape[1])
    return term if lava else -term / 4096


def _bwd(saved, grads, f, i, needs):
    """gx and the per-neuron decay gradients; ``grads`` are those of (spikes, u, v)."""
    v, u, lim, du, dv = saved
    T, M = v.shape
    graded, io = i[3], IO_DTYPES[i[5]]
    # RealSpike's backward: graded scale_rho exp(min(x, 0) / tau_rho), binary
    # scale_rho / (2 tau_rho) exp(-|x| / tau_rho), its coefficient a Python number (fp32 in the op)
    coef = f[5] if graded else f[5] / (2 * f[4])
    decay_keep = [jit.np32((1 - d / 4096).to(torch.float32)) for d in (du, dv)]  # a = 1 - D/4096
    gx = empty32(T, M)
    # per-step decay terms (scratch: row 0 is never written nor read, P[1:] is summed)
    pu, pv = _f32_out(bool(needs[1]), T, M), _f32_out(bool(needs[2]), T, M)
    k = _nb().make_bwd(int(i[2]), int(graded), *(int(g is not None) for g in grads[:3]), int(pu is not None),
                       int(pv is not None))
    rows = [grad_rows(g) for g in grads[:3]]
    jit.run(k, M, _nb().SPLIT, jit.np32(v, 2), jit.np32(u, 2), jit.np32(lim, 2), *(r[0] for r in rows),
            *(r[1] for r in rows), *decay_keep, gx.numpy(), jit.np32(pu, 2), jit.np32(pv, 2), np.float32(f[2]),
            np.float32(f[4]), np.float32(coef))
    gdu, gdv = (_decay_grad(p, f[6] == 1.0) for p in (pu, pv))  # f[6]: 1 (lava) or -1/4096 (exact)
    if not needs[0]:
        gx = None
    elif io != torch.float32:
        gx = gx.to(io)
    return [gx, gdu, gdv] + [None] * 8


def _nb():
    nb = jit.kernels("loihi")
    if nb is None:  # supports() refused the case: only a direct ScanSpec call gets here
        raise RuntimeError("spikefuse: the numba Loihi CPU kernels are unavailable (see the RuntimeWarning)")
    return nb


LOIHI_CUBA_SCAN = loihi_scan("loihi_cuba_cpu", False, _fwd, _bwd, SAVED_BYTES["loihi_cuba"])
LOIHI_ALIF_SCAN = loihi_scan("loihi_alif_cpu", True, _fwd, _bwd, SAVED_BYTES["loihi_alif"])


@torch.compiler.assume_constant_result
def _numba_missing() -> str:
    """Why the numba kernels cannot load ("" when they can); loads them on the first call (a
    constant under torch.compile: no import is traced)."""
    return "" if jit.kernels("loihi") is not None else "numba is unavailable (the int64 scan needs its kernels)"


def loihi_cpu_supports(x_seq, params=None, has_norm=False, **_) -> Optional[str]:
    """None when the fused CPU Loihi CUBA / ALIF path can run this case, else the reason."""
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return loihi_reason(x_seq, params, has_norm) or _numba_missing() or None


def _run(x_seq, params, state, return_traces, alif: bool):
    tensors, f, i = loihi_op_args(x_seq, params, state, return_traces, alif)
    outs = (LOIHI_ALIF_SCAN if alif else LOIHI_CUBA_SCAN).apply(tensors, f, i)
    return loihi_results(outs, x_seq, params, return_traces, alif)


def loihi_cuba_cpu(x_seq, params, state, return_traces=False):
    """Fused CPU Loihi CUBA (for :func:`spikefuse.functional.loihi.cuba_multistep`), kernel
    contract: ``state`` is the (current, voltage) pair; returns ``((spikes,), (current, voltage),
    (current, voltage) traces or None)``, bit-identical to the reference.

    Example::

        >>> import torch
        >>> from spikefuse.functional import loihi
        >>> p = loihi.CubaParams(threshold=1.0, current_decay=2048.0, voltage_decay=1024.0)
        >>> x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(5, 1, 1)
        >>> loihi.cuba_multistep(x, p, backend="cpu")[0].flatten().tolist()
        [0.0, 1.0, 0.0, 0.0, 0.0]
    """
    return _run(x_seq, params, state, return_traces, alif=False)


def loihi_alif_cpu(x_seq, params, state, return_traces=False):
    """Fused CPU Loihi ALIF (for :func:`spikefuse.functional.loihi.alif_multistep`): state and
    traces are (current, voltage, threshold, refractory) tuples, as AlifState / AlifTraces."""
    return _run(x_seq, params, state, return_traces, alif=True)


# the NaN/inf scan of the input: by the float64 pass's tile flags (check_flagged_tiles)
loihi_cuba_cpu.checks_finite = loihi_alif_cpu.checks_finite = True
