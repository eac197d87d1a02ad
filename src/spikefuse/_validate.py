"""Validation helpers for the public boundary (DESIGN.md, "Errors").

Every helper raises ``TypeError`` (wrong kind of object / dtype) or ``ValueError`` (wrong
shape, range, device, non-finite values) with a message that names the argument, what was
expected and what was given. Inner layers and kernels trust validated inputs.
"""
from __future__ import annotations

import contextlib
import math
import sys
from numbers import Integral, Real
from typing import Callable, Mapping, Sequence

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


class NonFiniteInput(ValueError):
    """Raised by a fused kernel that scans its input's values itself (its function has
    ``checks_finite = True``, see :func:`spikefuse.functional._dispatch.call`) when they hold
    NaN/inf: the caller then runs its usual check of the input, which raises the error that names
    the argument. (A kernel on the ``torch.compile`` op path raises it as is.)"""

    def __init__(self, msg: str = "the input of a fused scan contains NaN or inf values"):
        super().__init__(msg)


def all_finite(x: torch.Tensor) -> bool:
    """True if floating tensor ``x`` holds no NaN/inf: one pass, no full-size temporary
    (``aminmax`` propagates NaN, and +-inf shows in the max or the min)."""
    lo, hi = torch.aminmax(x.detach())
    # two Python floats: torch.isfinite of a 0-d tensor dispatches a composite of several ops
    # (~13 us each on a CPU), which was most of a small scan's check (issue 15 item 3)
    return math.isfinite(lo.item()) and math.isfinite(hi.item())


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
        check_has_data(name, x)  # the device before the values
        if not all_finite(x):
            raise ValueError(f"{name}: contains NaN or inf values")
    return x


def finite_scan_wanted(x: torch.Tensor) -> bool:
    """Whether :func:`check_tensor` would read ``x``'s values for NaN/inf (checks on, a
    floating tensor with elements, not under ``torch.compile``)."""
    return _FINITE_CHECKS and x.is_floating_point() and bool(x.numel()) and not is_compiling()


def scan_deferred(name: str, x: torch.Tensor) -> bool:
    """The first half of a NaN/inf check of a scan's input ``x`` that is finished after the scan
    by :func:`check_finite_after`: True when the values are to be checked (finite checks on, a
    floating tensor with elements, not under ``torch.compile``), after the checks that must come
    before any value is read (not under a function transform, a tensor with values)."""
    if not finite_scan_wanted(x):
        return False
    check_not_transformed(name)
    check_has_data(name, x)
    return True


def check_finite_after(name: str, x: torch.Tensor, *finals) -> None:
    """The NaN/inf check of ``x`` for a scan whose arithmetic carries a NaN or inf of its input at
    any step into its final state (the neuron families that declare it in their tests: a NaN stays
    NaN, an inf becomes NaN at the reset or stays inf): the final states ``finals`` are checked
    (one step's worth of values), and only when one of them is not finite is ``x`` read in full,
    raising :func:`check_tensor`'s error if it holds NaN/inf. A finite ``x`` whose state overflowed
    raises nothing, as the check before the scan did not. This spares a full read of the input per
    call (about 10 % of a fused CPU scan's forward and backward)."""
    for s in finals:
        if isinstance(s, torch.Tensor) and s.is_floating_point() and s.numel() and not all_finite(s):
            if not all_finite(x):
                raise ValueError(f"{name}: contains NaN or inf values")
            return


def check_has_data(name: str, x: torch.Tensor) -> None:
    """A 'meta' tensor has a shape but no values: refused where values are about to be read
    (the NaN/inf scan), with the way to run shape-only tensors (finite checks off)."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name}: expected a tensor with values (cpu or cuda), got a 'meta' tensor; its values "
            "cannot be checked for NaN/inf (spikefuse.set_finite_checks(False) skips that scan)"
        )


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
        check_has_data(name, v)
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


def check_size(name: str, v, *, ge: int = 1) -> int:
    """A size or count: an integer (not a bool, not a float: ``Dense(5, 2.5)`` is refused
    rather than truncated) ``>= ge``; returns it as a Python int.

    >>> check_size("out_features", 2.5)
    Traceback (most recent call last):
    ...
    TypeError: out_features: expected an int, got float 2.5
    """
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise TypeError(f"{name}: expected an int, got {_describe(v)}")
    if v < ge:
        raise ValueError(f"{name}: must be {'> 0' if ge == 1 else f'>= {ge}'}, got {v}")
    return int(v)


def check_sizes(name: str, v, *, ge: int = 1, n: int = 2):
    """An int or a tuple of ``n`` ints, each ``>= ge`` (pool/conv sizes as torch takes them)."""
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{name}: expected an int or {n} ints, got {len(v)} values {tuple(v)!r}")
        return tuple(check_size(f"{name}[{k}]", e, ge=ge) for k, e in enumerate(v))
    return check_size(name, v, ge=ge)


def check_scalar(name: str, v, **bounds) -> float:
    """A scalar parameter: a number or a one-element tensor (range-checked as
    :func:`check_number`), returned as a Python float; a longer tensor is refused naming
    ``name`` (instead of torch's "only one element tensors can be converted")."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name}: expected a number or a one-element tensor, got {_describe(v)}")
        check_has_data(name, v)
    check_number(name, v, **bounds)
    return float(v)


def check_optional_tensor(name: str, v, *, floating: bool = True) -> None:
    """``None`` or a tensor (:func:`check_tensor`, finite when the finite checks are on)."""
    if v is not None:
        check_tensor(name, v, floating=floating)


def caller_is_outside(depth: int = 2) -> bool:
    """True when the function ``depth - 1`` frames up was called from outside the spikefuse
    package (user code, tests, copy/pickle). A public helper that the library also calls in its
    own per-step loops checks its arguments for outside callers only: inner code passes
    validated values (DESIGN.md "Errors") and pays nothing per step. While torch.compile
    traces, False (frames cannot be inspected there, and value checks stay out of graphs)."""
    if is_compiling():
        return False
    try:
        frame = sys._getframe(depth)
    except ValueError:  # pragma: no cover - no such frame
        return True
    mod = frame.f_globals.get("__name__", "") or ""
    return not (mod == "spikefuse" or mod.startswith("spikefuse."))


def tensor_field(floating: bool = False, optional: bool = False) -> Callable:
    """A :func:`checked_record` field check: a tensor (floating, or any numeric dtype), finite
    when the finite checks are on (``optional``: ``None`` allowed)."""

    def check(name, v):
        if optional and v is None:
            return
        check_tensor(name, v, floating=floating)
        if not (v.is_floating_point() or v.dtype in _INT_DTYPES):
            raise TypeError(f"{name}: expected a numeric tensor, got dtype {v.dtype}")

    return check


def number_field(optional: bool = False, **bounds) -> Callable:
    """A :func:`checked_record` field check: a finite number or a numeric tensor in range
    (tensor values read only when the finite checks are on)."""

    def check(name, v):
        if optional and v is None:
            return
        if isinstance(v, torch.Tensor) and not _FINITE_CHECKS:
            if not (v.is_floating_point() or v.dtype in _INT_DTYPES):
                raise TypeError(f"{name}: expected a numeric tensor, got dtype {v.dtype}")
            return
        check_number(name, v, **bounds)

    return check


def bool_field(name, v) -> None:
    """A :func:`checked_record` field check for a flag (a real bool: no truthy strings)."""
    check_bool(name, v)


def int_field(ge: int = 1) -> Callable:
    """A :func:`checked_record` field check for an integer field (a scale, a count)."""

    def check(name, v):
        check_size(name, v, ge=ge)

    return check


def choice_field(*choices) -> Callable:
    """A :func:`checked_record` field check: one of ``choices`` (strings)."""

    def check(name, v):
        if not isinstance(v, str):
            raise TypeError(f"{name}: expected one of {list(choices)}, got {_describe(v)}")
        check_choice(name, v, choices)

    return check


#: torch.compiler.is_compiling itself (the fast path of the record checks; torch.compile folds it)
_compiler_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)


def _record_prefix(cls_name: str) -> str:
    """How errors name a record's fields: ``params.tau``, ``state.v``, ``traces.h`` (as the
    step functions name the same fields), else ``ClassName.field``."""
    for kind in ("Params", "State", "Traces"):
        if cls_name.endswith(kind):
            return kind.lower()
    return cls_name


def checked_record(**checks: Callable) -> Callable:
    """Class decorator for a NamedTuple record (Params, State, Traces): building one from
    outside the library checks the named fields (``check(field_name, value)``), so a NaN or a
    string is refused where it is written, naming the field. Records the library builds in its
    own loops, ``_make``/``_replace`` and torch.compile's tracing skip the checks (the step
    functions check what they are given). The record stays a plain NamedTuple (pytree,
    torch.compile and pickling treat it as one): the check is an ``__init__``."""

    def deco(cls):
        fields: Mapping[str, Callable] = dict(checks)
        unknown = set(fields) - set(cls._fields)
        if unknown:  # pragma: no cover - a typo in the library
            raise AttributeError(f"{cls.__name__}: no field(s) {sorted(unknown)}")

        prefix = _record_prefix(cls.__name__)

        def __init__(self, *args, **kwargs):  # noqa: N807 - NamedTuple.__new__ did the work
            # inlined caller_is_outside (a record is built per step in the library's loops: ~1 us)
            if _compiler_is_compiling():
                return
            mod = sys._getframe(1).f_globals.get("__name__", "") or ""
            if mod == "spikefuse" or mod.startswith("spikefuse."):
                return
            for field, check in fields.items():
                check(f"{prefix}.{field}", getattr(self, field))

        cls.__init__ = __init__
        return cls

    return deco


def callable_field(name, v) -> None:
    """A :func:`checked_record` field check: ``None`` or a callable (an activation, a surrogate)."""
    if v is not None and not callable(v):
        raise TypeError(f"{name}: expected a callable or None, got {_describe(v)}")


def check_shape(name: str, shape) -> tuple:
    """A shape: a tuple/list/torch.Size of ints >= 0; returned as a tuple."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"{name}: expected a shape (a tuple of ints), got {_describe(shape)}")
    return tuple(check_size(f"{name}[{k}]", d, ge=0) for k, d in enumerate(shape))
