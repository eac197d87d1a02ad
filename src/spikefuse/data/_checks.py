"""Argument checks shared by the dataset modules (:mod:`.events`, :mod:`.randman`,
:mod:`.yinyang`)."""
from __future__ import annotations

from numbers import Integral, Real

__all__ = ["check_int", "check_flags", "check_scalar", "check_data_tensor"]


def check_int(name: str, v, *, ge: int) -> int:
    """``v`` as an int ``>= ge``; TypeError for a non-int (bool included), ValueError below ``ge``.

    >>> check_int("n_steps", 3, ge=1)
    3
    """
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    if v < ge:
        raise ValueError(f"{name}: must be >= {ge}, got {v}")
    return int(v)


def check_flags(transform=None, **flags) -> None:
    """Every keyword flag a bool (TypeError naming it: no truthy strings), ``transform`` callable or None.

    >>> check_flags(binary=False, flatten=True)
    """
    for name, v in flags.items():
        if not isinstance(v, bool):
            raise TypeError(f"{name}: expected bool, got {type(v).__name__} {v!r}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")


def check_scalar(name: str, v, **bounds) -> float:
    """A real number (a one-element tensor too) within ``bounds`` (as ``check_number``), as float.

    >>> check_scalar("gain", 2, gt=0)
    2.0
    """
    import torch

    from .._validate import check_number

    if isinstance(v, torch.Tensor) and v.numel() != 1:
        raise ValueError(f"{name}: expected a single number, got a tensor of shape {tuple(v.shape)}")
    if not isinstance(v, (Real, torch.Tensor)) or isinstance(v, bool):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    check_number(name, v, **bounds)
    return float(v)


def check_data_tensor(name: str, x, **kw):
    """``check_tensor`` after the device check: refuses 'meta' (and other storage-less) tensors
    before any value is read."""
    import torch

    from .._validate import check_tensor

    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        raise ValueError(f"{name}: expected a tensor with data (cpu or cuda), got a tensor on device 'meta'")
    return check_tensor(name, x, **kw)
