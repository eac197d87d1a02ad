"""Fused CPU path for the Loihi sigma-delta neuron (SPEC.md 10): the numba scans of
:mod:`._nb_sigma_delta` behind a ScanSpec with the Triton scan's op encoding
(:mod:`spikefuse.kernels._sigma_delta_host`).

Forward: bit-identical to :mod:`spikefuse.functional.sigma_delta` (y, every trace, the final
float64 sum, pre, residual, error). Backward: the reverse scan the Triton kernel defines (float64
reverse cumulative sum, so gx is bit-identical to the reference's). The threshold and bias
gradients are bit-identical too: the kernel writes their per-step terms into a ``(T, M)`` fp32
buffer each (only for a parameter that learns; the threshold terms are the reference's bits,
their exps torch.exp's through ``_nb_vml``) and torch reduces them in the reference's own ops:
``sum(0)`` for the threshold (its ``g.sum(0)``, then the expand's ``sum_to``), one ``sum_to`` of
the ``(T, *step)`` terms to the bias's shape for the bias (:func:`_bias_grad`). fp16/bf16 I/O runs through fp32 buffers (one conversion each way; the results are
rounded to nearest even as the reference's ``.to(dtype)``).

Without numba (not installed, or ``SPIKEFUSE_NO_NUMBA=1``) :func:`sigma_delta_cpu_supports`
returns the reason, so ``backend="auto"`` runs the reference loop (today's path; :mod:`.jit` warns
once) and ``backend="cpu"`` raises a ValueError that says why.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .. import _sigma_delta_host as host
from .._common import IO_DTYPES
from ..._validate import NonFiniteInput, all_finite, finite_scan_wanted
from . import jit
from .common import np_f32, np_view, numba_reason

SAVED_BYTES = host.SAVED_BYTES


def _f32(n: int):
    return torch.empty(n, dtype=torch.float32)


def _fwd(tensors, f, i):
    x, th, bias, acc0, pre0, res0, err0 = tensors
    act, cum = i[0], i[1]
    T, M = x.shape
    traces, store_d, store_keep = host.store_flags(i)
    nb = jit.kernels("sigma_delta")
    f32 = torch.float32
    y = jit.empty((T, M))                                   # written in full by the kernel (pooled)
    sig = jit.empty((T, M)) if traces else None
    a = jit.empty((T, M)) if traces else None
    d = jit.empty((T, M)) if store_d else None
    keep = jit.empty((T, M), torch.int8) if store_keep else None
    accl = torch.empty(M, dtype=torch.float64)
    prel, resl, errl = _f32(M), _f32(M), _f32(M)
    k = nb.make_fwd(int(act == host.ACT_RELU), int(bias is not None), int(bool(cum)), int(traces), int(store_d),
                    int(store_keep))
    jit.run(k, M, nb.SPLIT, jit.np32(x), jit.np32(th), jit.np32(bias), np_view(acc0),
            jit.np32(pre0), jit.np32(res0), jit.np32(err0), np_f32(f[0]), y.numpy(), *(jit.np32(t, 2) for t in (sig, a, d)),
            np_view(keep), accl.numpy(), prel.numpy(), resl.numpy(), errl.numpy())
    # the input's NaN/inf scan (checks_finite below): the float64 running sum carries a NaN/inf
    # of any step into its final value (NaN stays NaN, inf stays inf or becomes NaN; a finite
    # float32 step cannot overflow a finite float64 sum), so only when a final sum (M values) is
    # not finite is the (T, M) input read: a non-finite initial sum (a direct call; the functional
    # layer checks the state) with a finite input raises nothing, as the reference does not
    if finite_scan_wanted(x) and not all_finite(accl) and not all_finite(x):
        raise NonFiniteInput()
    if x.dtype != f32:
        y = y.to(x.dtype)
    return [y, sig, a, d, accl, prel, resl, errl, keep]


def _bias_grad(GB: torch.Tensor, i) -> torch.Tensor:
    """The bias gradient from its per-step terms ``GB`` (``(T, M)``), bit-identical to the
    reference's: autograd reduces the broadcast add ``σ + bias`` with one ``at::sum_to`` of the
    ``(T, *step)`` gradient to the bias's shape (``i[6:]``: the step and bias shapes, see
    :func:`.._sigma_delta_host.call`), here the same op on the same tensor. Returned as the
    gradient of the kernel's ``(M,)`` expanded bias, whose backward (``expand``'s ``sum_to``) then
    reduces it again: each bias value sits at one neuron it broadcasts to (the first along each
    broadcast dim), zeros elsewhere, so that sum adds only zeros and gives the same bits."""
    k = i[6]
    shape = tuple(i[7:7 + k])
    bshape = tuple(i[8 + k:8 + k + i[7 + k]])
    r = GB.view(GB.shape[0], *shape).sum_to_size(bshape)
    if bshape == shape:
        return r.reshape(-1)
    padded = (1,) * (k - len(bshape)) + bshape
    full = torch.zeros(shape, dtype=torch.float32)
    full[tuple(slice(0, 1) if b == 1 else slice(None) for b in padded)] = r.view(padded)
    return full.view(-1)


def _bwd(saved, grads, f, i, needs):
    keep, d, th = saved
    M, T, io = th.shape[0], i[5], IO_DTYPES[i[3]]
    relu, need_th, need_b = int(i[0] == host.ACT_RELU), bool(needs[1]), bool(needs[2])
    g_y, g_sig, g_a, g_accl, g_prel = (grads[k] for k in (0, 1, 2, 4, 5))  # not the Δ trace's (detached)
    nb = jit.kernels("sigma_delta")
    gx = jit.empty((T, M))
    # per-step threshold / bias terms, reduced below by torch as the reference's autograd does
    GTH = jit.empty((T, M)) if need_th else None
    GB = jit.empty((T, M)) if need_b else None
    gpre0 = _f32(M)
    gacc0 = torch.empty(M, dtype=torch.float64)
    k = nb.make_bwd(relu, *(int(g is not None) for g in (g_y, g_sig, g_a)), int(need_th), int(need_b))
    gaccl = np_view(g_accl.to(torch.float64)) if g_accl is not None else gacc0.numpy()
    rows = [jit.grad_rows(g) for g in (g_y, g_sig, g_a)]
    jit.run(k, M, nb.SPLIT, *(r[0] for r in rows), *(r[1] for r in rows), gaccl, jit.np32(g_prel),
            np.bool_(g_accl is not None), np.bool_(g_prel is not None),
            np_view(keep if relu else None), jit.np32(d if need_th else None, 2), jit.np32(th),
            np_f32(f[1]), np_f32(f[2]), gx.numpy(), jit.np32(GTH, 2), jit.np32(GB, 2), gacc0.numpy(), gpre0.numpy())
    gth = GTH.sum(0) if need_th else None          # the reference's g.sum(0) over the same (T, M)
    gb = _bias_grad(GB, i) if need_b else None
    out = [gx if io == torch.float32 else gx.to(io), gth, gb, gacc0, gpre0]
    return [g if n else None for g, n in zip(out, needs[:5])] + [None, None]


SIGMA_DELTA_SCAN = host.scan_function("cpu", _fwd, _bwd)


def sigma_delta_cpu_supports(x_seq, params=None, state=None, **_) -> Optional[str]:
    """None when the fused CPU scan can run this case: CPU tensors, numba, identity or ReLU
    activation, any threshold / bias broadcasting to one step, ``cum_error`` on or off."""
    if params is None:
        return "no params given"
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    return host.supports_common(x_seq, params, state) or numba_reason("sigma_delta")


def loihi_sigma_delta_cpu(x_seq, params, state, return_traces=False):
    """Fused CPU sigma-delta (kernel contract of
    :func:`spikefuse.functional.sigma_delta.sigma_delta_multistep`): ``((y,), state, traces or
    None)``, tuples in SigmaDeltaState / SigmaDeltaTraces field order, bit-identical forward.

    Example::

        >>> import torch
        >>> from types import SimpleNamespace
        >>> p = SimpleNamespace(threshold=0.09375, activation=torch.relu, bias=None, tau_grad=1.0,
        ...                     scale_grad=1.0, cum_error=False, s_scale=4096)
        >>> x = torch.tensor([0.5, 0, 0, 0.02, 0.1, -0.3, 0]).reshape(7, 1, 1)
        >>> z = torch.zeros(1, 1)
        >>> (y,), st, _ = loihi_sigma_delta_cpu(x, p, (z.double(), z, z, z))
        >>> (y.flatten() * 4096).tolist()
        [2048.0, 0.0, 0.0, 0.0, 491.0, -1229.0, 0.0]
    """
    return host.call(SIGMA_DELTA_SCAN, x_seq, params, state, return_traces)


# the NaN/inf scan of the input: by the final float64 sums (see _fwd; functional/_dispatch.call)
loihi_sigma_delta_cpu.checks_finite = True
