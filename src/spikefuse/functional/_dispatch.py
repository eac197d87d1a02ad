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

__all__ = ["BACKENDS", "Fused", "fused", "resolve"]

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


def call(impl: Callable, x, params, state, return_traces: bool, state_type, traces_type=None,
         **extra) -> Fused:
    """Run kernel ``impl`` and pack its raw tuples into ``state_type`` / ``traces_type``."""
    outputs, final, traces = impl(x, params, state, return_traces, **extra)
    packed = traces_type(*traces) if (traces is not None and traces_type is not None) else None
    return Fused(tuple(outputs), state_type(*final), packed)


def fused(family: str, backend: Optional[str], x, params, state, return_traces: bool, state_type,
          traces_type=None, *, options: Optional[dict] = None, extra: Optional[dict] = None,
          x_resolve=None) -> Optional[Fused]:
    """Resolve ``family`` on ``backend`` for input ``x`` (``x_resolve`` when ``x`` is a pair)
    with the ``supports`` keyword ``options``; None means the reference loop runs, else the
    kernel's packed :class:`Fused` results (``extra`` are keyword arguments of the kernel)."""
    impl = resolve(family, backend, x if x_resolve is None else x_resolve, **(options or {}))
    if impl is None:
        return None
    return call(impl, x, params, state, return_traces, state_type, traces_type, **(extra or {}))


def result(out: Fused, return_traces: bool):
    """``(*outputs, state)`` or, with traces, ``(*outputs, state, traces)``: the multi-step
    functions' return shape."""
    if return_traces:
        return (*out.outputs, out.state, out.traces)
    return (*out.outputs, out.state)
