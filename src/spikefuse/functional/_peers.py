"""Small shared pieces of the peer families (:mod:`.snntorch`, :mod:`.sinabs`): boundary checks
of their parameters and states, the reference time loop they run, and :func:`fused`, the
dispatch of those with fused kernels (snnTorch Leaky, norse's feed-forward LIF); the others
refuse ``backend="cpu"`` / ``"triton"`` by name (:func:`begin`).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .._core import check_not_transformed, compute_dtype
from .._validate import (_describe, check_bool, check_broadcastable, check_finite_after, check_number, check_sequence,
                         check_tensor, finite_scan_wanted, scan_deferred)
from ..surrogate import Surrogate
from . import _dispatch

__all__ = ["check_param", "check_surrogate", "check_state_tensor", "cast", "begin", "fused", "run_loop"]


def check_param(name: str, p, step_shape: Sequence[int], device, optional: bool = False, **bounds) -> None:
    """A number, or a tensor on ``device`` broadcasting against one step ``(B, *features)``."""
    if p is None and optional:
        return
    if isinstance(p, Tensor):
        if p.device != device:
            raise ValueError(f"{name}: expected a tensor on {device} (the input's device), got one on {p.device}")
        check_broadcastable(name, p, step_shape)
    check_number(name, p, **bounds)


def check_surrogate(name: str, s) -> None:
    if not isinstance(s, Surrogate):
        raise TypeError(f"{name}: expected a spikefuse.surrogate.Surrogate instance, got {_describe(s)}")


def check_state_tensor(name: str, v, shape, device) -> Tensor:
    """One state field: a finite floating tensor of one step's shape on the input's device."""
    check_tensor(name, v, finite=False)
    if v.device != device:
        raise ValueError(f"{name}: expected a tensor on {device} (the input's device), got {v.device}")
    if tuple(v.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (one step of the input), got {tuple(v.shape)}")
    return check_tensor(name, v)


def cast(p, dtype):
    """Tensor params in the compute dtype (keeping their graph); numbers and None stay."""
    return p.to(dtype) if isinstance(p, Tensor) else p


def begin(name: str, family: str, x_seq, backend: Optional[str], return_traces, kernel: Optional[str] = None,
          loop: Optional[str] = None, after: bool = False) -> torch.dtype:
    """Checks every multistep of a peer family starts with; returns the compute dtype. A
    multistep without a fused kernel (``kernel`` None) refuses a kernel backend by name
    (``"auto"`` / ``"reference"`` / None run the loop), saying why its reference loop runs:
    ``loop`` (default: the family has no fused kernel). One with kernels resolves its backend
    later, in :func:`fused` (which raises for a backend that cannot run the case). ``after``: the
    NaN/inf scan of ``x_seq`` is left to :func:`finish` (the family's arithmetic carries a
    non-finite input into its final state: _validate.check_finite_after)."""
    check_not_transformed(name)
    check_sequence("x_seq", x_seq, min_ndim=2, finite=not after)
    if after:
        scan_deferred("x_seq", x_seq)
    check_bool("return_traces", return_traces)
    if kernel is None and backend in ("cpu", "triton"):
        why = loop or f"{family!r} has no fused kernel (its reference loop runs on every device)"
        raise ValueError(f"backend: {why}; expected None, 'auto' or 'reference', got {backend!r}")
    return compute_dtype(x_seq.dtype)


def fused(kernel: Optional[str], backend, x_seq, params, state: tuple, return_traces: bool, state_type,
          traces_type, extra: Optional[dict] = None):
    """The fused kernel's results in the multistep return shape (``(spikes, state)`` or
    ``(spikes, state, traces)``), or None when the reference loop runs (no kernel, or ``"auto"``
    found none that supports the case)."""
    if kernel is None:
        return None
    out = _dispatch.fused(kernel, backend, x_seq, params, state, return_traces, state_type, traces_type,
                          options=dict(params=params, state=state), extra=extra)
    if out is None:
        return None
    return _dispatch.result(out, return_traces)


def finish(x_seq: Tensor, out, return_traces: bool):
    """``out`` (a multistep's return value: ``(*outputs, state[, traces])``) after the NaN/inf
    check of ``x_seq`` through the final state's tensors (:func:`begin` with ``after=True``)."""
    if finite_scan_wanted(x_seq):
        st = out[-2] if return_traces else out[-1]
        fields = [f for v in st for f in (v if isinstance(v, tuple) else (v,))]
        check_finite_after("x_seq", x_seq, *fields)
    return out


def run_loop(step: Callable, x_seq: Tensor, cdt, state: tuple, return_traces: bool):
    """``step(x_t, state) -> (spike, state, trace)`` over ``x_seq.unbind(0)`` (not ``x_seq[t]``,
    whose backward is O(T^2)); returns ``(spikes in x_seq.dtype, last state, stacked traces or
    None)``: ``trace`` is a tuple of tensors per step."""
    spikes, traces = [], []
    for x_t in x_seq.to(cdt).unbind(0):
        s, state, tr = step(x_t, state)
        spikes.append(s)
        if return_traces:
            traces.append(tr)
    out = torch.stack(spikes).to(x_seq.dtype)
    stacked = tuple(torch.stack(f) for f in zip(*traces)) if return_traces else None
    return out, state, stacked
