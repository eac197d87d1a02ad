"""Small internals shared by functional/, kernels/ and the validation layer (public names).

Everything here is a leaf: it imports torch only, so kernels can use it without reaching up into
:mod:`spikefuse.functional` (ARCHITECTURE.md 6.1).

- :func:`describe` — how error messages show an argument (tensor shape/dtype/device, else type
  and repr).
- :func:`compute_dtype` — fp64 inputs compute in fp64, every other float dtype in fp32.
- :func:`sum_to` — reduce a broadcast gradient back to a parameter's shape.
- :func:`scalar_tensor` / :func:`flat_param` — numbers as 0-d fp32 tensors; parameters as
  per-neuron fp32 vectors (numbers stay numbers).
- :func:`is_compiling` — whether torch.compile is tracing (value checks skip themselves then).

>>> import torch
>>> compute_dtype(torch.bfloat16), compute_dtype(torch.float64)
(torch.float32, torch.float64)
>>> sum_to(torch.ones(2, 3), torch.ones(3)).tolist()
[2.0, 2.0, 2.0]
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

__all__ = ["describe", "compute_dtype", "sum_to", "scalar_tensor", "expand_param", "flat_param",
           "is_compiling", "f32", "f32_ratio", "check_not_transformed"]


def describe(x) -> str:
    """``Tensor(shape=..., dtype=..., device=...)`` for a tensor, else ``"<type> <repr>"``."""
    if isinstance(x, torch.Tensor):
        return f"Tensor(shape={tuple(x.shape)}, dtype={x.dtype}, device={x.device})"
    return f"{type(x).__name__} {x!r}"


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a float input is computed in: fp64 stays fp64, everything else is fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def sum_to(g: Optional[torch.Tensor], like, *, cast: bool = False) -> Optional[torch.Tensor]:
    """Reduce gradient ``g`` to the shape of ``like`` (a tensor; a 0-d ``like`` gets ``g.sum()``),
    optionally cast to ``like.dtype``. None for ``g is None`` or a non-tensor ``like``."""
    if g is None or not isinstance(like, torch.Tensor):
        return None
    if g.shape != like.shape:
        g = g.sum_to_size(like.shape) if like.dim() else g.sum()
    return g.to(like.dtype) if cast else g


def scalar_tensor(p):
    """A number as a 0-d fp32 tensor (the same fp32 value, without per-op scalar wrapping, and
    what ``torch.lerp`` / ``addcmul`` want); tensors pass through."""
    return p if isinstance(p, torch.Tensor) else torch.tensor(float(p), dtype=torch.float32)


def expand_param(p, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """``p`` (number or tensor broadcastable to ``shape``) as a flat contiguous fp32 vector.

    >>> expand_param(torch.tensor([1.0, 2.0, 3.0]), (2, 3), torch.device("cpu")).tolist()
    [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    """
    n = 1
    for s in shape:
        n *= int(s)
    if isinstance(p, torch.Tensor):
        return p.to(device=device, dtype=torch.float32).expand(tuple(shape)).reshape(n).contiguous()
    return torch.full((n,), float(p), dtype=torch.float32, device=device)


def flat_param(p, shape: Sequence[int], device: torch.device):
    """Python numbers stay numbers (cheaper scalar ops); tensors become per-neuron fp32 vectors."""
    if isinstance(p, torch.Tensor):
        return expand_param(p, shape, device)
    return float(p)


@torch.compiler.assume_constant_result
def f32(a: float) -> float:
    """Python number ``a`` rounded to float32, as a Python float (torch.compile evaluates it once
    at trace time instead of tracing the ``.item()``).

    >>> f32(0.1)
    0.10000000149011612
    """
    return float(torch.tensor(float(a), dtype=torch.float32).item())


@torch.compiler.assume_constant_result
def f32_ratio(a: float, b: float) -> float:
    """``float32(a) / float32(b)`` in float32 (e.g. hxtorch's refractory steps), as a Python float.

    >>> f32_ratio(5e-6, 1e-6)
    5.0
    """
    return float((torch.tensor(float(a), dtype=torch.float32) / torch.tensor(float(b), dtype=torch.float32)).item())


def _under_functorch() -> bool:
    try:
        return torch._C._functorch.peek_interpreter_stack() is not None
    except AttributeError:  # pragma: no cover - torch without functorch internals
        return False


def check_not_transformed(name: str) -> None:
    """Raise a clear error inside ``torch.func.grad`` / ``vmap`` / ``jacrev`` etc.: the
    multi-step functions are not functorch-transformable (the spike surrogates and the fused
    scans are autograd Functions / torch.library ops without functorch rules, and the boundary
    checks read tensor values, which vmap cannot batch)."""
    if not is_compiling() and _under_functorch():
        raise RuntimeError(
            f"{name}: torch.func transforms (grad, vmap, jacrev, ...) are not supported: the "
            "surrogate spike functions and the fused scans are autograd Functions / torch.library "
            "ops without functorch (setup_context / vmap) rules, and the input checks read tensor "
            "values. Use torch.autograd.grad for gradients, a batch dimension (or a Python loop) "
            "for ensembles, or torch.compile for speed.")


def is_compiling() -> bool:
    """True while torch.compile / torch.export trace the caller."""
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - very old torch
        return False
