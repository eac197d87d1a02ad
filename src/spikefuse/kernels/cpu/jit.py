"""The compiled CPU kernels: numba, loaded on first use, with a fallback (per family: the CPU
backend's torch-op loops for IF/LIF and CUBA, the reference loop for the others).

Why numba: measured on the 2-core development machine at (T, B, N) = (100, 32, 1024), one
thread, the numba LIF scan (forward + backward) runs at a few ns per neuron-step against the
torch-op loop's per-op dispatch (see README, Performance), needs no C compiler at install (a
``torch.utils.cpp_extension`` build needs one and 30-60 s), and caches its machine code on disk
(``cache=True``), so only the first process on a machine pays the compile.

Numba is imported on the first kernel call, never at ``import spikefuse``. When it is missing
(or fails to import / compile) :func:`kernels` returns None, the CPU backend runs its fallback
(:func:`fallback`; same results) and one ``RuntimeWarning`` per kernel module says so.
``SPIKEFUSE_NO_NUMBA=1`` forces the fallback.

The kernels are written in float32 exactly as the reference orders its operations (Python
constants cast to float32, no ``fastmath``, so no reassociation or fused multiply-add), and run
over the flattened neuron axis: :func:`run` gives each of ``torch.get_num_threads()`` threads one
contiguous range of neurons (the kernels release the GIL); inside a range the time loop runs
tile by tile, so a neuron's state stays in registers / L1. Each kernel variant is compiled with
its flags as constants (see ``_nb_lif``), so its inner loop vectorises.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

import torch

_STATE: dict = {}


#: what the CPU backend runs without numba, per kernel module: the IF/LIF and CUBA families have
#: torch-op loops of their own; the others (Loihi, RF, sigma-delta, the peers' neurons) have no
#: CPU path but the compiled one, so ``"auto"`` runs their reference loop
FALLBACKS = {"lif": "its torch-op loops", "cuba": "its torch-op loops"}


def fallback(name: str) -> str:
    """What runs the families of kernel module ``name`` when numba is unavailable."""
    return FALLBACKS.get(name, "the reference loop")


def _warn_once(name: str, msg: str) -> None:
    warned = _STATE.setdefault("warned", set())
    if name not in warned:
        warned.add(name)
        warnings.warn(f"spikefuse: {msg}; for the {name!r} kernels the CPU backend runs {fallback(name)} "
                      "(same results, slower)", RuntimeWarning, stacklevel=3)


def _import_numba():
    import numba  # noqa: F401  (ImportError: the fallback)
    return numba


def kernels(name: str):
    """The compiled kernel module ``name`` (``"lif"``, ...), or None when numba is unavailable
    (then one warning per module and process, naming what runs instead: :func:`fallback`)."""
    mods = _STATE.setdefault("mods", {})
    if name in mods:
        return mods[name]
    mod = None
    if os.environ.get("SPIKEFUSE_NO_NUMBA", "") not in ("", "0"):
        _warn_once(name, "SPIKEFUSE_NO_NUMBA is set")
    else:
        try:
            _import_numba()
            import importlib

            mod = importlib.import_module(f"{__package__}._nb_{name}")
        except Exception as e:  # ImportError, or a numba that fails to load
            _warn_once(name, f"numba is unavailable ({type(e).__name__}: {e})")
            mod = None
    mods[name] = mod
    return mod


def ranges(M: int, tile: int, threads: Optional[int] = None) -> list:
    """``[j0, j1)`` neuron ranges, one per thread: ``threads`` (default
    ``torch.get_num_threads()``) contiguous, tile-aligned, near-equal chunks of ``M``."""
    nt = max(1, -(-M // tile))
    n = max(1, min(threads or torch.get_num_threads(), nt))
    cuts = [tile * ((nt * k) // n) for k in range(n)] + [M]
    return [(cuts[k], min(M, cuts[k + 1])) for k in range(n)]


def run(kernel, M: int, tile: int, *args) -> None:
    """``kernel(*args, j0, j1)`` over the neuron ranges of :func:`ranges`: the calling thread
    runs the first, a thread pool the others (the kernels release the GIL: ``nogil=True``)."""
    rs = ranges(M, tile)
    if len(rs) == 1:
        kernel(*args, 0, M)
        return
    pool = _pool(len(rs) - 1)
    futs = [pool.submit(kernel, *args, j0, j1) for j0, j1 in rs[1:]]
    kernel(*args, *rs[0])
    for f in futs:
        f.result()


def _pool(n: int):
    """The worker pool (made again in a forked child, whose copy has no threads)."""
    pool, pid = _STATE.get("pool"), _STATE.get("pool_pid")
    if pool is not None and pid != os.getpid():
        pool = None
    if pool is None or pool._max_workers < n:
        from concurrent.futures import ThreadPoolExecutor

        if pool is not None:
            pool.shutdown(wait=True)
        pool = _STATE["pool"] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="spikefuse-cpu")
        _STATE["pool_pid"] = os.getpid()
    return pool


def np32(t: Optional[torch.Tensor], ndim: int = 1):
    """A contiguous fp32 numpy view of ``t`` (for None a 1-element dummy of ``ndim`` dims)."""
    import numpy as np

    if t is None:
        return np.zeros((1,) * ndim, dtype=np.float32)
    return t.detach().to(torch.float32).contiguous().numpy()


def reset_for_tests() -> None:
    """Forget the loaded modules and the warning (tests of the fallback)."""
    keep = {k: _STATE[k] for k in ("pool", "pool_pid") if k in _STATE}
    _STATE.clear()
    _STATE.update(keep)
