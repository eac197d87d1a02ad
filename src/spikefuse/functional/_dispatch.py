"""The one place where functional/ meets the fused kernels.

Kernels are leaves with one raw-tensor contract (ARCHITECTURE.md 6.2)::

    impl(x, params, state, return_traces, **extra)
        -> (outputs: tuple, final_state: tuple, traces: tuple | None)

``state`` and ``final_state`` are tuples in the family's State field order, ``traces`` in its
Traces field order; ``params`` is the family's validated Params object, read by attribute (the
kernels never import functional/). :func:`fused` resolves the backend and packs the raw tuples
into the family's NamedTuples; every multi-step function calls it before its reference loop.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from .. import kernels
from .._validate import NonFiniteInput

__all__ = ["BACKENDS", "Fused", "call", "checks_finite", "fused", "resolve"]

BACKENDS = kernels.BACKENDS

kernels.load_cpu()  # now, not inside a torch.compile trace (see kernels.load_cpu)
if kernels.gpu_present():  # on a GPU machine the Triton backend too: a model compiled before
    kernels.load_backends()  # any eager call would otherwise break its graph at that import


class Fused(NamedTuple):
    """A kernel's results, packed: ``outputs`` tuple, the family's State, its Traces (or None)."""

    outputs: tuple
    state: tuple
    traces: Optional[tuple]


def resolve(family: str, backend: Optional[str], x, **options) -> Optional[Callable]:
    """The kernel for ``(family, backend)`` or None for the reference loop (see
    :func:`spikefuse.kernels.resolve`)."""
    return kernels.resolve(family, backend, x, **options)


def checks_finite(impl: Optional[Callable]) -> bool:
    """Whether kernel ``impl`` scans its input for NaN/inf itself (its function's
    ``checks_finite`` attribute; it raises :class:`spikefuse._validate.NonFiniteInput`): then
    :func:`call` skips the caller's full scan of the input. False for the reference loop (None)."""
    return impl is not None and bool(getattr(impl, "checks_finite", False))


def call(impl: Callable, x, params, state, return_traces: bool, state_type, traces_type=None,
         *, values_check: Optional[Callable[[], None]] = None, **extra) -> Fused:
    """Run kernel ``impl`` and pack its raw tuples into ``state_type`` / ``traces_type``.

    ``values_check``: the caller's NaN/inf scan of its input (raising the error that names the
    argument). It runs before the kernel, unless the kernel scans its input itself
    (:func:`checks_finite`: e.g. the fixed-point CPU kernels, whose float64 path flags every tile
    that meets a NaN/inf, so only such tiles are read again); then it runs only when the kernel
    raised :class:`spikefuse._validate.NonFiniteInput`."""
    if values_check is not None and not checks_finite(impl):
        values_check()
    try:
        outputs, final, traces = impl(x, params, state, return_traces, **extra)
    except NonFiniteInput:
        if values_check is not None:
            values_check()
        raise
    packed = traces_type(*traces) if (traces is not None and traces_type is not None) else None
    return Fused(tuple(outputs), state_type(*final), packed)


def fused(family: str, backend: Optional[str], x, params, state, return_traces: bool, state_type,
          traces_type=None, *, options: Optional[dict] = None, extra: Optional[dict] = None,
          x_resolve=None, values_check: Optional[Callable[[], None]] = None) -> Optional[Fused]:
    """Resolve ``family`` on ``backend`` for input ``x`` (``x_resolve`` when ``x`` is a pair)
    with the ``supports`` keyword ``options``; None means the reference loop runs (after
    ``values_check``, when given), else the kernel's packed :class:`Fused` results (``extra`` are
    keyword arguments of the kernel; ``values_check``: see :func:`call`)."""
    impl = resolve(family, backend, x if x_resolve is None else x_resolve, **(options or {}))
    if impl is None:
        if values_check is not None:
            values_check()
        return None
    return call(impl, x, params, state, return_traces, state_type, traces_type, values_check=values_check,
                **(extra or {}))


def result(out: Fused, return_traces: bool):
    """``(*outputs, state)`` or, with traces, ``(*outputs, state, traces)``: the multi-step
    functions' return shape."""
    if return_traces:
        return (*out.outputs, out.state, out.traces)
    return (*out.outputs, out.state)
