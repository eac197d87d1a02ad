"""Validation helpers for the public boundary (DESIGN.md, "Errors").

Every helper raises ``TypeError`` (wrong kind of object / dtype) or ``ValueError`` (wrong
shape, range, device, non-finite values) with a message that names the argument, what was
expected and what was given. Inner layers and kernels trust validated inputs.
"""
from __future__ import annotations

import contextlib
import math
from numbers import Real
from typing import Sequence

import torch

from ._core import check_not_transformed, describe, is_compiling

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_FINITE_CHECKS = True


def set_finite_checks(enabled: bool) -> None:
    """Turn the NaN/inf scan of tensor arguments on (default) or off.

    The scan reads every element and, on a GPU, synchronises the device once per call; turn
    it off for benchmarks or production runs whose inputs are known to be clean. Shape, dtype,
    device and parameter-range checks stay on.
    """
    global _FINITE_CHECKS
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected bool, got {_describe(enabled)}")
    _FINITE_CHECKS = enabled


def finite_checks_enabled() -> bool:
    return _FINITE_CHECKS


@contextlib.contextmanager
def finite_checks(enabled: bool):
    """Context manager form of :func:`set_finite_checks`."""
    old = _FINITE_CHECKS
    set_finite_checks(enabled)
    try:
        yield
    finally:
        set_finite_checks(old)


#: the old private name, kept for the modules that import it
_describe = describe


def all_finite(x: torch.Tensor) -> bool:
    """True if floating tensor ``x`` holds no NaN/inf: one pass, no full-size temporary
    (``aminmax`` propagates NaN, and +-inf shows in the max or the min)."""
    lo, hi = torch.aminmax(x.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_tensor(
    name: str,
    x,
    *,
    min_ndim: int | None = None,
    ndim: int | None = None,
    floating: bool = True,
    finite: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor (floating by default) of the expected rank, without NaN/inf."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(x)}")
    if floating and x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a floating tensor (float16/bfloat16/float32/float64), got dtype {x.dtype}"
        )
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(
            f"{name}: expected at least {min_ndim} dimensions, got shape {tuple(x.shape)}"
        )
    if finite and _FINITE_CHECKS and x.is_floating_point() and x.numel() and not is_compiling():
        check_not_transformed(name)  # vmap cannot read values: say so clearly
    if (finite and _FINITE_CHECKS and x.is_floating_point() and x.numel() and not is_compiling()
            and not all_finite(x)):
        raise ValueError(f"{name}: contains NaN or inf values")
    return x


def check_sequence(name: str, x, *, min_ndim: int = 2, finite: bool = True) -> torch.Tensor:
    """A time-first sequence ``(T, B, *features)``; T >= 1 (``finite=False``: no NaN/inf scan,
    for a caller whose callee scans the same tensor)."""
    check_tensor(name, x, min_ndim=min_ndim, finite=finite)
    if x.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one time step (T >= 1), got shape {tuple(x.shape)}")
    return x


def check_same_device(**tensors) -> None:
    devs = {k: v.device for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    if len(set(devs.values())) > 1:
        desc = ", ".join(f"{k} on {d}" for k, d in devs.items())
        raise ValueError(f"tensors must be on the same device, got {desc}")


def check_broadcastable(name: str, p, shape: Sequence[int]) -> None:
    """Parameter ``p`` (tensor or number) must broadcast against ``shape``."""
    if isinstance(p, torch.Tensor):
        try:
            torch.broadcast_shapes(tuple(p.shape), tuple(shape))
        except RuntimeError:
            raise ValueError(
                f"{name}: shape {tuple(p.shape)} does not broadcast against {tuple(shape)}"
            ) from None
        if torch.broadcast_shapes(tuple(p.shape), tuple(shape)) != torch.Size(shape):
            raise ValueError(
                f"{name}: shape {tuple(p.shape)} would enlarge the state shape {tuple(shape)}"
            )


def _as_values(name: str, v):
    if isinstance(v, bool):
        raise TypeError(f"{name}: expected a number or tensor, got bool {v!r}")
    if isinstance(v, torch.Tensor):
        if not (v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name}: expected a numeric tensor, got dtype {v.dtype}")
        vals = v.detach().double()
        if vals.numel() and not torch.isfinite(vals).all():
            raise ValueError(f"{name}: contains NaN or inf values")
        return vals
    if isinstance(v, Real):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name}: must be finite, got {v!r}")
        return torch.tensor(float(v), dtype=torch.float64)
    raise TypeError(f"{name}: expected a number or tensor, got {_describe(v)}")


def _check_real(name: str, v, gt, ge, lt, le):
    """check_number for a Python number, in Python (no tensor: nothing for torch.compile to trace)."""
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {v!r}")
    bad = None
    if gt is not None and not x > gt:
        bad = f"> {gt}"
    elif ge is not None and not x >= ge:
        bad = f">= {ge}"
    elif lt is not None and not x < lt:
        bad = f"< {lt}"
    elif le is not None and not x <= le:
        bad = f"<= {le}"
    if bad is not None:
        raise ValueError(f"{name}: must be {bad}, got {v}")
    return v


def check_number(name: str, v, *, gt=None, ge=None, lt=None, le=None):
    """Range-check a scalar or every element of a tensor; returns ``v`` unchanged. While
    torch.compile traces, a tensor's values are not read (modules check them when built)."""
    if isinstance(v, torch.Tensor) and is_compiling():
        if not (v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name}: expected a numeric tensor, got dtype {v.dtype}")
        return v
    if isinstance(v, Real) and not isinstance(v, bool):
        return _check_real(name, v, gt, ge, lt, le)
    vals = _as_values(name, v)
    if vals.numel() == 0:
        raise ValueError(f"{name}: must not be empty")
    bad = None
    if gt is not None and not bool((vals > gt).all()):
        bad = f"> {gt}"
    elif ge is not None and not bool((vals >= ge).all()):
        bad = f">= {ge}"
    elif lt is not None and not bool((vals < lt).all()):
        bad = f"< {lt}"
    elif le is not None and not bool((vals <= le).all()):
        bad = f"<= {le}"
    if bad is not None:
        shown = v if not isinstance(v, torch.Tensor) else (
            v.item() if v.numel() == 1 else f"tensor with min {vals.min().item():g}, max {vals.max().item():g}"
        )
        raise ValueError(f"{name}: must be {bad}, got {shown}")
    return v


def check_bool(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name}: expected bool, got {_describe(v)}")
    return v


def check_choice(name: str, v, choices: Sequence) -> None:
    if v not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {v!r}")
