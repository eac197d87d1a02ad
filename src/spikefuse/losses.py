"""Losses and readouts for spiking networks: first-spike times, time-to-first-spike cross
entropy, max-over-time membrane readout.

Spike times and their gradient
------------------------------
:func:`first_spike_time` reads the time of a neuron's first (or ``n``-th) spike from a
time-first spike tensor ``(T, B, *F)``:

- forward: ``t = (k + offset[k]) * dt`` where ``k`` is the step index of the spike and
  ``offset`` an optional sub-step correction in ``[-1, 0]`` (default 0). The offsets of
  :func:`spikefuse.functional.eventprop.crossing_offsets` /
  :func:`spikefuse.functional.cuba.crossing_offsets` interpolate the threshold crossing
  linearly inside the step, which makes ``t`` continuous in the weights (finite differences
  become meaningful). A neuron without such a spike gets ``T * dt`` (one step past the end)
  and zero gradient.
- backward: the spike indicator at step ``k`` receives ``-dL/dt`` (zero elsewhere): a larger
  spike value means an earlier spike. This is exactly what the EventProp neuron expects as
  ``grad_spikes`` (SPEC 14.3), so with ``dt`` in the neuron's unit (seconds) EventProp returns
  the exact spike-time gradient. For surrogate-gradient (BPTT) neurons the same convention
  is a heuristic that pushes the membrane up before an early-wanted spike. The offsets carry
  no gradient.

Example::

    >>> import torch
    >>> s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]).reshape(3, 1, 2)
    >>> first_spike_time(s).tolist()          # neuron 1 never fires: T
    [[1.0, 3.0]]
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validate import _describe, check_choice, check_number, check_scalar, check_sequence, check_tensor

__all__ = [
    "first_spike_time",
    "spike_time_cross_entropy",
    "max_membrane",
    "max_membrane_cross_entropy",
]


class _SpikeTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, n, dt, offsets):
        T = spikes.shape[0]
        fired = spikes > 0
        count = torch.cumsum(fired.to(torch.int32), 0)
        hit = fired & (count == n)
        has = hit.any(0)
        idx = hit.to(torch.uint8).argmax(0)  # first True (0 where none)
        t = idx.to(torch.float64 if spikes.dtype == torch.float64 else torch.float32)
        if offsets is not None:
            t = t + offsets.gather(0, idx[None])[0].to(t.dtype)
        t = torch.where(has, t, torch.full_like(t, float(T))) * dt
        ctx.save_for_backward(idx, has)
        ctx.shape = spikes.shape
        ctx.dtype = spikes.dtype
        return t

    @staticmethod
    def backward(ctx, grad):
        idx, has = ctx.saved_tensors
        g = torch.zeros(ctx.shape, dtype=ctx.dtype, device=grad.device)
        g.scatter_(0, idx[None], torch.where(has, -grad, torch.zeros_like(grad)).to(ctx.dtype)[None])
        return g, None, None, None


def first_spike_time(spikes: Tensor, dt: float = 1.0, offsets: Optional[Tensor] = None,
                     n: int = 1) -> Tensor:
    """Time of the first (``n``-th) spike per neuron: ``spikes (T, B, *F) -> (B, *F)``.

    ``t = (k + offsets[k]) * dt`` for the spike at step ``k``; ``T * dt`` where there is none.
    Backward: ``-dL/dt`` into the spike at step ``k`` (see the module docstring). A spike is
    any value ``> 0``.

    >>> import torch
    >>> s = torch.zeros(4, 1, 1); s[1] = 1; s[3] = 1
    >>> s.requires_grad_(True) is s
    True
    >>> t = first_spike_time(s, dt=0.5, n=2); t.item()
    1.5
    >>> t.sum().backward(); s.grad.flatten().tolist()
    [0.0, 0.0, 0.0, -1.0]
    """
    check_sequence("spikes", spikes, min_ndim=2)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)):
        raise TypeError(f"dt: expected a positive number, got {_describe(dt)}")
    check_number("dt", dt, gt=0)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int >= 1, got {_describe(n)}")
    check_number("n", n, ge=1)
    if offsets is not None:
        check_tensor("offsets", offsets)
        if offsets.shape != spikes.shape:
            raise ValueError(f"offsets: expected the shape of spikes {tuple(spikes.shape)}, got {tuple(offsets.shape)}")
        if offsets.device != spikes.device:
            raise ValueError(f"offsets: expected a tensor on {spikes.device}, got {offsets.device}")
        if bool(((offsets < -1) | (offsets > 0)).any()):
            raise ValueError("offsets: expected values in [-1, 0] (fraction of a step before the spike's index)")
        offsets = offsets.detach()
    return _SpikeTime.apply(spikes, int(n), float(dt), offsets)


def _check_target(target: Tensor, B: int, C: int):
    if not isinstance(target, Tensor):
        raise TypeError(f"target: expected a tensor of class indices, got {_describe(target)}")
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"target: expected an integer tensor of class indices, got dtype {target.dtype}")
    if tuple(target.shape) != (B,):
        raise ValueError(f"target: expected shape ({B},) (one class per sample), got {tuple(target.shape)}")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= C):
        raise ValueError(
            f"target: class indices must lie in [0, {C - 1}], got min {int(target.min())}, max {int(target.max())}"
        )


def spike_time_cross_entropy(times: Tensor, target: Tensor, tau: float = 1.0,
                             reduction: str = "mean") -> Tensor:
    """Cross entropy over first-spike times: ``softmax(-times / tau)`` over classes (the
    earliest output spike wins). ``times`` is ``(B, C)`` (from :func:`first_spike_time`, same
    unit as ``tau``), ``target`` ``(B,)`` class indices.

    >>> import torch
    >>> t = torch.tensor([[1.0, 3.0]])
    >>> round(spike_time_cross_entropy(t, torch.tensor([0])).item(), 4)   # -log(1/(1+e^-2))
    0.1269
    """
    check_tensor("times", times, ndim=2)
    check_scalar("tau", tau, gt=0)
    check_choice("reduction", reduction, ("mean", "sum", "none"))
    _check_target(target, times.shape[0], times.shape[1])
    return F.cross_entropy(-times / tau, target.long().to(times.device), reduction=reduction)


def max_membrane(membrane: Tensor) -> Tensor:
    """Max-over-time readout: ``(T, B, *F) -> (B, *F)`` (gradient to the arg-max step).

    >>> import torch
    >>> max_membrane(torch.tensor([[[0.1, 0.5]], [[0.3, 0.2]]])).tolist()
    [[0.30000001192092896, 0.5]]
    """
    check_sequence("membrane", membrane, min_ndim=2)
    return membrane.amax(0) if membrane.shape[0] > 1 else membrane[0]


def max_membrane_cross_entropy(membrane: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross entropy of the max-over-time membrane of a readout layer (hxtorch's readout):
    ``membrane (T, B, C)``, ``target (B,)``.

    >>> import torch
    >>> m = torch.zeros(3, 1, 2); m[1, 0, 0] = 2.0
    >>> round(max_membrane_cross_entropy(m, torch.tensor([0])).item(), 4)
    0.1269
    """
    check_sequence("membrane", membrane, min_ndim=3)
    if membrane.dim() != 3:
        raise ValueError(f"membrane: expected shape (T, B, C), got {tuple(membrane.shape)}")
    check_choice("reduction", reduction, ("mean", "sum", "none"))
    _check_target(target, membrane.shape[1], membrane.shape[2])
    return F.cross_entropy(max_membrane(membrane), target.long().to(membrane.device), reduction=reduction)
