"""Helpers shared by the fused backends (CPU and Triton): parameter expansion, dtype checks.

Parameters arrive as Python numbers or tensors broadcastable to the state shape ``(B, *features)``
(DESIGN.md: scalar = shared, per-channel = one per feature). Fused kernels want one fp32 value
per neuron, so :func:`expand_param` turns a parameter into a flat, contiguous fp32 vector of
``B * prod(features)`` entries. The expansion is an ordinary differentiable torch op, so a kernel
returns a per-neuron gradient and autograd sums it back to the parameter's own shape.

Example::

    >>> import torch
    >>> expand_param(2.0, (2, 3), torch.device("cpu"))
    tensor([2., 2., 2., 2., 2., 2.])
    >>> expand_param(torch.tensor([1.0, 2.0, 3.0]), (2, 3), torch.device("cpu"))
    tensor([1., 2., 3., 1., 2., 3.])
"""
from __future__ import annotations

from numbers import Real
from typing import Optional, Sequence

import torch

IO_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def expand_param(p, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """``p`` (number or tensor broadcastable to ``shape``) as a flat contiguous fp32 vector."""
    n = 1
    for s in shape:
        n *= int(s)
    if isinstance(p, torch.Tensor):
        return p.to(device=device, dtype=torch.float32).expand(tuple(shape)).reshape(n).contiguous()
    return torch.full((n,), float(p), dtype=torch.float32, device=device)


def param_reason(name: str, p, shape: Sequence[int], device: torch.device) -> Optional[str]:
    """None if ``p`` can be expanded to ``shape`` on ``device``, else a reason string."""
    if p is None or isinstance(p, bool):
        return f"{name} must be a number or a tensor, got {p!r}"
    if isinstance(p, Real):
        return None
    if not isinstance(p, torch.Tensor):
        return f"{name} must be a number or a tensor, got {type(p).__name__}"
    try:
        if torch.broadcast_shapes(tuple(p.shape), tuple(shape)) != torch.Size(shape):
            return f"{name} of shape {tuple(p.shape)} does not broadcast to the state shape {tuple(shape)}"
    except RuntimeError:
        return f"{name} of shape {tuple(p.shape)} does not broadcast to the state shape {tuple(shape)}"
    if p.numel() > 1 and p.device != device:
        return f"{name} is on {p.device}, the input on {device}"
    if not (p.is_floating_point() or p.dtype in (torch.int32, torch.int64)):
        return f"{name} has dtype {p.dtype}, expected a floating dtype"
    return None



def lif_param_reason(x_seq: torch.Tensor, params, v0=None) -> Optional[str]:
    """None if the LIF parameters (``tau``/``v_reset`` may be None, ``v_threshold`` may not) and
    a tensor ``v0`` expand to the state shape of ``x_seq``, else the first reason (both the CPU
    and the Triton LIF ``supports`` rules use it)."""
    shape = tuple(x_seq.shape[1:])
    rtau = getattr(params, "reciprocal_tau", None)
    for name, p in (("tau", params.tau), ("v_threshold", params.v_threshold), ("v_reset", params.v_reset),
                    ("reciprocal_tau", rtau)):
        if p is None and name != "v_threshold":
            continue
        why = param_reason(name, p, shape, x_seq.device)
        if why is not None:
            return why
    if v0 is not None and not isinstance(v0, (int, float)):
        why = param_reason("v0", v0, shape, x_seq.device)
        if why is not None:
            return why
    return None


#: elements per block of the blocked CPU backward passes: their per-step factors are computed for
#: a block of ``max(1, BLOCK_ELEMS // M)`` steps at once in small reused buffers (cache-resident;
#: fresh full-size buffers cost a page fault per 4 KiB on first touch), then the carried
#: recurrence runs over the block. 32768 is ATen's parallel grain size: elementwise ops up to that
#: size run on the calling thread, so a block op never opens an OpenMP region that a single
#: step's op would not (on a loaded machine each region can wait a scheduler slice for its workers).
BLOCK_ELEMS = 32768


def time_blocks(T: int, M: int):
    """Split ``T`` steps of ``M`` neurons into blocks of ``Tb = max(1, min(T, BLOCK_ELEMS // M))``
    steps. Returns ``(Tb, starts, cuts, ns, blocks)``: block start steps, the split points
    ``starts[1:]``, block lengths, and ``blocks(a)``, the per-block views of a ``(T, ...)`` array
    (or of a ``(Tb, M)`` scratch buffer, cut to each block's length; ``None`` gives Nones)."""
    Tb = max(1, min(T, BLOCK_ELEMS // max(M, 1)))
    starts = list(range(0, T, Tb))
    cuts = starts[1:]
    ns = [min(T, s + Tb) - s for s in starts]

    def blocks(a):
        if a is None:
            return [None] * len(starts)
        if a.shape[0] == T:
            return a.tensor_split(cuts)
        return [a if n == Tb else a[:n] for n in ns]

    return Tb, starts, cuts, ns, blocks


#: LIF kernel variants (SPEC: IF has no tau; LIF with or without decay_input)
KIND_IF, KIND_LIF_DECAY_INPUT, KIND_LIF = 0, 1, 2


def lif_kind(params) -> int:
    """The LIF kernel variant of ``params`` (a LIFParams; a ``reciprocal_tau`` is a LIF too)."""
    if params.tau is None and getattr(params, "reciprocal_tau", None) is None:
        return KIND_IF
    return KIND_LIF_DECAY_INPUT if params.decay_input else KIND_LIF


def lif_outputs(spk, vlast, hseq, vseq, x_shape, return_traces: bool):
    """A fused LIF kernel's flat ``(T, M)`` / ``(M,)`` results viewed back in the input's shape
    ``x_shape = (T, B, *features)``: (spikes, final v, h_seq, v_seq; the traces only if
    ``return_traces``)."""
    shape = tuple(x_shape[1:])
    spk = spk.view(x_shape)
    vlast = vlast.view(shape)
    if return_traces:
        hseq = hseq.view(tuple(x_shape))
        vseq = vseq.view(tuple(x_shape))
    return spk, vlast, hseq, vseq

def needs_grad(p) -> bool:
    return isinstance(p, torch.Tensor) and p.requires_grad


def io_reason(x: torch.Tensor, dtypes=IO_DTYPES) -> Optional[str]:
    if x.dtype not in dtypes:
        names = "/".join(str(d).replace("torch.", "") for d in dtypes)
        return f"input dtype {x.dtype} is not supported (expected {names}); the reference path handles it"
    if x.dim() < 2:
        return f"input must be (T, B, *features), got shape {tuple(x.shape)}"
    if x.numel() == 0:
        return "empty input"
    return None


def sum_to(g: Optional[torch.Tensor], like) -> Optional[torch.Tensor]:
    """Reduce a gradient to the shape of ``like`` (a tensor), or None."""
    if g is None or not isinstance(like, torch.Tensor):
        return None
    return g.sum_to_size(like.shape) if g.shape != like.shape else g
