"""Helpers of the fused CPU backend: the step blocking of the blocked backward passes.

The helpers both backends use live in :mod:`spikefuse.kernels._common` (re-exported here for the
CPU modules).
"""
from __future__ import annotations

from typing import Optional

import torch

from .._common import (IO_DTYPES, KIND_IF, KIND_LIF, KIND_LIF_DECAY_INPUT, expand_param,  # noqa: F401
                       flat_param, io_reason, lif_kind, lif_outputs, lif_param_reason, needs_grad,
                       param_reason, sum_to)

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


#: at::internal::GRAIN_SIZE: a CPU reduction of at most this many elements (or on one thread)
#: runs serially, one cascade sum over the whole row; a larger one on several threads is split
#: into per-thread chunks (``two_pass_reduction``), whose partial sums change the bits
GRAIN_SIZE = 32768


def step_sum(terms, shape, like: torch.Tensor) -> torch.Tensor:
    """A parameter's gradient from its per-step terms (each ``(T, M)``), as autograd of the
    reference loop forms it: each term of a step reduced to the parameter's shape with
    ``sum_to_size`` (the engine's reduction of a broadcast operand), then added into one buffer
    in the order autograd runs the steps' nodes (step ``T-1`` first; a step's terms in order).

    A parameter of one value (PLIF's tau, a scalar threshold) broadcast over ``M > 1`` neurons:
    each step's term is a full reduction of its ``(M,)`` row, which torch computes serially with
    one cascade sum per row when ``M <= GRAIN_SIZE`` or on one thread; then ``a.view(T, M).sum(1)``
    (one op, each row reduced by the same cascade sum, its rows split over threads, never a row)
    gives the same T sums bit for bit (checked on many shapes in tests/kernels/test_kernels_cpu_lif.py),
    and the T fp32 adds of autograd's order run in numpy (``np.add.accumulate``: sequential fp32
    adds, the bits of ``acc.add_(g)``). Measured (``benchmarks/cpu_time.py 100,32,1024 plif``,
    one thread): the T ``sum_to_size`` / ``add_`` calls took ~1.8 ms of 10.5 ms f+b."""
    T = terms[0].shape[0]
    M = terms[0][0].numel()
    if like.numel() == 1 and M > 1 and (M <= GRAIN_SIZE or torch.get_num_threads() == 1 or T == 1):
        return _scalar_step_sum(terms, T, M, like.shape)
    acc = None
    pshape = like.shape
    for t in range(terms[0].shape[0] - 1, -1, -1):
        for a in terms:
            g = a[t].view(shape).sum_to_size(pshape)
            acc = g.clone() if acc is None else acc.add_(g)
    return acc


def _scalar_step_sum(terms, T: int, M: int, pshape) -> torch.Tensor:
    """:func:`step_sum` for a one-value parameter: one batched row reduction per term, the adds in
    autograd's order (step ``T-1`` first, a step's terms in order) as sequential fp32 adds."""
    import numpy as np

    sums = torch.stack([a.reshape(T, M).sum(1) for a in terms], 1)     # (T, terms), fp32
    seq = sums.flip(0).reshape(-1).numpy()
    acc = np.add.accumulate(seq, dtype=np.float32)[-1]
    return torch.tensor(acc, dtype=torch.float32).reshape(pshape)


def numba_reason(name: str) -> Optional[str]:
    """None when the numba kernel module ``name`` of :mod:`.jit` loads, else why not: the
    ``supports`` rule of the families whose only CPU kernel is compiled (without numba,
    ``"auto"`` runs their reference loop). A constant under torch.compile (the check runs outside
    the trace)."""
    if not numba_ready(name):
        return "numba is unavailable (pip install numba, or unset SPIKEFUSE_NO_NUMBA)"
    return None


def numba_ready(name: str) -> bool:
    """Whether the numba kernel module ``name`` of :mod:`.jit` loads (loading it on the first
    call; a constant under torch.compile: no import is traced)."""
    return not _numba_missing(name)


@torch.compiler.assume_constant_result
def _numba_missing(name: str) -> bool:
    from . import jit

    return jit.kernels(name) is None


def one_value(cs) -> int:
    """1 when every constant of ``cs`` has one value (a number, None, or a one-element tensor):
    the kernels' ``uni`` variants then read them as scalars (``_nb_cuba.make_fwd``,
    ``_nb_lif.make_fwd``)."""
    return int(all(not isinstance(c, torch.Tensor) or c.numel() == 1 for c in cs))


def np_f32(v: float):
    """A Python number as a numpy float32 scalar (a kernel argument)."""
    import numpy as np

    return np.float32(v)


def np_i64(v: int):
    """A Python int as a numpy int64 scalar (a kernel argument)."""
    import numpy as np

    return np.int64(v)


def np_view(t: Optional[torch.Tensor], dtype: str = "int8", ndim: int = 2):
    """The numpy view of a contiguous copy of ``t`` (int8 masks, int64 and float64 vectors), or a
    1-element dummy of ``dtype`` and ``ndim`` dims for None."""
    import numpy as np

    if t is None:
        return np.zeros((1,) * ndim, dtype=dtype)
    return t.detach().contiguous().numpy()


def nb_kernels(name: str):
    """The loaded numba kernel module ``name`` of :mod:`.jit`; ``RuntimeError`` when it is
    unavailable (a ScanSpec's ``supports`` refuses that case before any kernel runs)."""
    from . import jit

    nb = jit.kernels(name)
    if nb is None:
        raise RuntimeError(f"spikefuse: the numba {name} kernels are unavailable")
    return nb


def empty32(*shape) -> torch.Tensor:
    """An uninitialised fp32 CPU tensor for a kernel to write in full (an output, a saved trace,
    a gradient): from the recycling pool of :func:`.jit.empty` when it is large, so a training
    loop does not page-fault on fresh memory every call. Never for a buffer that is read before
    the kernel writes it, or that the kernel writes only in part (its values are stale)."""
    from . import jit

    return jit.empty(shape)


def check_flagged_tiles(ex, tile: int, *xs: torch.Tensor) -> None:
    """The NaN/inf scan of a fixed-point kernel's inputs (Loihi CUBA / ALIF, the resonators),
    whose float64 pass flags in ``ex`` every tile of ``tile`` neurons that met a NaN/inf (a NaN
    or inf input becomes a NaN / inf state, outside the proven bounds) or left the bounds: only
    the flagged tiles' columns of the ``(T, M)`` inputs ``xs`` are read; a NaN/inf there raises
    :class:`spikefuse._validate.NonFiniteInput` (the functional caller names the argument). The
    kernel functions that rely on it carry ``checks_finite = True`` (functional/_dispatch.py);
    with the finite checks off, nothing is read."""
    from ..._validate import NonFiniteInput, all_finite, finite_scan_wanted

    if not finite_scan_wanted(xs[0]):
        return
    for k in ex.nonzero()[0]:
        a = int(k) * tile
        for x in xs:
            if not all_finite(x[:, a:a + tile]):
                raise NonFiniteInput()
