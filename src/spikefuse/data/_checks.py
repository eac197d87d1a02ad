"""Argument checks shared by the dataset modules (:mod:`.events`, :mod:`.randman`,
:mod:`.yinyang`)."""
from __future__ import annotations

from numbers import Integral

__all__ = ["check_int", "check_flags"]


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
