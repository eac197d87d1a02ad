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
its flags as constants (see ``_nb_lif``), so its inner loop vectorises. A call with little work
stays on the calling thread (:data:`MIN_WORK`).

Large outputs come from :func:`empty`, a pool that hands out again the buffers of earlier calls
once nothing holds them (so a training loop does not pay the first-touch page faults of fresh
large tensors on every call); :func:`grad_rows` passes a gradient broadcast over time as one row.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from typing import Optional

import torch

_STATE: dict = {}


#: what the CPU backend runs without numba, per kernel module: the IF/LIF and CUBA families have
#: torch-op loops of their own; the others (Loihi, RF, sigma-delta, the peers' neurons) have no
#: CPU path but the compiled one, so ``"auto"`` runs their reference loop
FALLBACKS = {"lif": "its torch-op loops", "cuba": "its torch-op loops", "li": "its NumPy loops"}


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
    _bound_block_labels()
    return numba


#: :func:`_bound_block_labels` resets numba's block-label counter at a top-level compile that
#: finds it above this (numba's own sequential numbering never gets near it)
LABEL_RESET_ABOVE = 10**24


def _bound_block_labels() -> None:
    """Keep numba's process-wide IR block-label counter (``numba.core.ir_utils._the_max_label``)
    from growing without bound. Inlining an ``inline='always'`` function that itself inlined
    others offsets its labels by the counter, then raises the counter to the result, so each
    such inlining about doubles it. The kernels here inline in nests (stop 34: ~3 decimal digits
    per kernel variant compiled), and once a label needs more than ~1020 digits, LLVM rejects
    the IR of every later compile in the process (``LLVM IR parsing error ... name is too
    long``; PyPI's llvmlite keeps LLVM's 1024-character name limit). That took a fresh-cache
    test run that compiled a few hundred variants. Labels only need to be unique within the
    function being compiled, and inlining offsets a callee's labels past the caller's own, so
    one listener on numba's ``numba:compile`` event resets the counter to 0 (what a fresh
    process starts from) when a top-level compile (not one nested in another, all of them
    under numba's compiler lock) starts with it above :data:`LABEL_RESET_ABOVE`. Installed
    once per process; a numba without these internals is left as it is."""
    if _STATE.get("labels") is not None:
        return
    _STATE["labels"] = False
    try:
        from numba.core import event, ir_utils

        counter = ir_utils._the_max_label
        if not isinstance(getattr(counter, "_value", None), int):
            return

        class _LabelBound(event.Listener):
            depth = 0

            def on_start(self, ev):
                if self.depth == 0 and counter._value > LABEL_RESET_ABOVE:
                    counter._value = 0
                self.depth += 1

            def on_end(self, ev):
                self.depth -= 1

        listener = _LabelBound()
        event.register("numba:compile", listener)
        _STATE["labels"] = listener
    except Exception:  # a numba without the event API or the counter: nothing to bound
        return


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


#: minimum neuron-steps per thread of :func:`run`: a call with less work than ``2 * MIN_WORK``
#: runs on the calling thread alone (no pool hand-off); more work is split over at most
#: ``work // MIN_WORK`` threads. Measured on the 2-core development VM at load average 5:
#: handing a range to the pool thread and waiting for it costs 31 / 37 / 92 us (min / median /
#: 90th percentile; more when the worker waits for a core), and the LIF scans cost ~1.5-3 ns per
#: neuron-step, so the split pays off above ~2 x 37 us / 2.5 ns ~ 30k neuron-steps idle and
#: ~75k under load; 2^16 per thread leaves the default ``spikefuse train`` network (T=10, B=32,
#: N=128: 41k) on one thread. ``SPIKEFUSE_CPU_MIN_WORK`` overrides it (0: always split, as
#: before; the test suite sets 0 so that its small shapes still run the multi-thread path).
MIN_WORK = int(os.environ.get("SPIKEFUSE_CPU_MIN_WORK", 1 << 16))


def ranges(M: int, tile: int, threads: Optional[int] = None, work: Optional[int] = None) -> list:
    """``[j0, j1)`` neuron ranges, one per thread: ``threads`` (default
    ``torch.get_num_threads()``) contiguous, tile-aligned, near-equal chunks of ``M``. With
    ``work`` (neuron-steps of the call) at most ``max(1, work // MIN_WORK)`` ranges. Threads only
    split the neuron axis (every sum over time stays within one neuron), so results do not depend
    on the number of ranges."""
    nt = max(1, -(-M // tile))
    n = max(1, min(threads or torch.get_num_threads(), nt))
    if work is not None and MIN_WORK > 0:
        n = max(1, min(n, work // MIN_WORK))
    cuts = [tile * ((nt * k) // n) for k in range(n)] + [M]
    return [(cuts[k], min(M, cuts[k + 1])) for k in range(n)]


def _steps(M: int, args) -> int:
    """The time steps of a kernel call: the largest leading dimension of its ``(T, M)`` arrays.
    Not the first one's: a gradient broadcast over time is passed as one ``(1, M)`` row
    (:func:`grad_rows`) and may come first (the sigma-delta backward's ``g_y``), which made a
    (500, 16384) backward count as 16384 neuron-steps of work and run on one thread."""
    steps = 1
    for a in args:
        shp = getattr(a, "shape", None)
        if shp is not None and len(shp) == 2 and shp[1] == M:
            steps = max(steps, int(shp[0]))
    return steps


#: seconds the first call of a kernel in a process (numba compiles it, or loads it from its disk
#: cache) may take before :func:`_first_run` prints its one notice; ``SPIKEFUSE_COMPILE_NOTICE_S``
#: overrides it (a negative value: never)
COMPILE_NOTICE_S = float(os.environ.get("SPIKEFUSE_COMPILE_NOTICE_S", 3.0))


def _compile_notice() -> None:
    if _STATE.get("noticed"):
        return
    _STATE["noticed"] = True
    print("spikefuse: compiling the fused CPU kernels for this machine (numba, once: they are cached on "
          "disk for later runs); the first calls of each kernel take up to a minute or two",
          file=sys.stderr, flush=True)


def _first_run(kernel, M: int, tile: int, args, steps) -> None:
    """:func:`_run` for a kernel not yet called in this process, with a timer: if the call takes
    longer than :data:`COMPILE_NOTICE_S` (numba compiling it: ~1-20 s per kernel variant, minutes
    for a first training step that compiles several; loading a cached one takes milliseconds), one
    line on stderr, once per process, says why the first steps are slow. The notice is all it
    changes."""
    if COMPILE_NOTICE_S < 0 or _STATE.get("noticed"):
        return _run(kernel, M, tile, args, steps)
    timer = threading.Timer(COMPILE_NOTICE_S, _compile_notice)
    timer.daemon = True
    timer.start()
    try:
        _run(kernel, M, tile, args, steps)
    finally:
        timer.cancel()


def run(kernel, M: int, tile: int, *args, steps: Optional[int] = None) -> None:
    """``kernel(*args, j0, j1)`` over the neuron ranges of :func:`ranges` for ``M * steps``
    neuron-steps of work (``steps`` default: :func:`_steps`): the calling thread runs the first range, a thread pool the others (the kernels
    release the GIL: ``nogil=True``); work below ``2 * MIN_WORK`` runs on the calling thread.
    A kernel's first call in the process goes through :func:`_first_run` (the compile notice)."""
    if not getattr(kernel, "overloads", True):     # a numba Dispatcher that has no machine code yet
        return _first_run(kernel, M, tile, args, steps)
    _run(kernel, M, tile, args, steps)


def _run(kernel, M: int, tile: int, args, steps: Optional[int]) -> None:
    work = M * (steps if steps is not None else _steps(M, args))
    if 0 < MIN_WORK and work < 2 * MIN_WORK:   # one range (what ranges() gives), without its lists
        kernel(*args, 0, M)
        return
    rs = ranges(M, tile, work=work)
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
        if THROTTLE_OMP:
            pool.submit(_omp_team).result()
    return pool


#: whether :func:`_pool` gives one worker an OpenMP team of its own (:func:`_omp_team`);
#: ``SPIKEFUSE_CPU_THROTTLE_OMP=0`` turns it off
THROTTLE_OMP = os.environ.get("SPIKEFUSE_CPU_THROTTLE_OMP", "1") not in ("", "0")


def _omp_team() -> None:
    """Runs one two-thread torch op on a pool worker, so that the worker owns an OpenMP team.

    Why (issue 15): after every parallel torch op, libgomp's worker threads busy-wait for the
    next region (``GOMP_SPINCOUNT``, default 300,000 spins: milliseconds on the development VM)
    before they sleep. With torch on all cores, a kernel range handed to this pool then shares
    a core with a spinning OpenMP worker: on the 2-core VM the LIF fwd+bwd at (100, 32, 1024)
    took as long on 2 threads as on 1 (8.4-9.0 vs 8.3-8.7 ms; the ``.sum()`` between forward
    and backward went from 0.5 to 6.5 ms when the two raced). libgomp spins only
    ``GOMP_SPINCOUNT`` / 300 (1,000) times when it manages more threads than the process may
    use CPUs; this team's extra thread (asleep otherwise) makes it so, which on the VM gives
    6.2 ms on 2 threads (benchmarks/README.md) and left a matmul / elementwise torch step as
    fast (7.0-7.9 vs 7.3 ms). Results do not change (only waiting does). Other OpenMP
    runtimes (Intel's) just get an idle team."""
    n = 2 * 32768 + 1       # above twice at::internal::GRAIN_SIZE: torch splits it over 2 threads
    torch.add(torch.zeros(n), 1.0)


#: outputs of at least this many bytes come from the recycling pool of :func:`empty`
POOL_MIN_BYTES = 1 << 20
#: bytes the pool may hold (in use or free); ``SPIKEFUSE_CPU_POOL_MB`` overrides it (0: no pool)
POOL_BYTES = int(float(os.environ.get("SPIKEFUSE_CPU_POOL_MB", 1024)) * 2**20)
_POOL_LOCK = threading.Lock()


def _storage_free(buf: torch.Tensor) -> bool:
    """Whether nothing but the pool's own tensor holds ``buf``'s storage (no view, tensor,
    numpy array or storage object of anyone else: they all hold a strong reference)."""
    st = buf.untyped_storage()      # torch keeps one Python storage object: someone's, if they hold it
    return torch._C._storage_Use_Count(st._cdata) <= 2 and sys.getrefcount(st) <= _OWN_REFS


def empty(shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised CPU tensor for a kernel to overwrite in full (outputs, saved tensors,
    gradients). Large ones (``POOL_MIN_BYTES``) reuse a buffer of an earlier call that nobody
    holds any more (its storage's reference count says so), so a steady training loop writes into
    memory that is already mapped: a fresh large tensor costs a page fault per 4 KiB on first
    touch (glibc returns freed blocks above its mmap / trim thresholds to the system), which on
    the development VM costs as much as the scan itself (benchmarks/README.md). The values are
    whatever the buffer held: only for memory the caller writes completely. The pool holds at
    most ``POOL_BYTES`` (oldest free buffers are dropped first; :func:`release_pool` drops all)."""
    shape = tuple(int(d) for d in shape)
    n, strides = 1, []
    for d in reversed(shape):
        strides.append(n)
        n *= d
    if n * dtype.itemsize < POOL_MIN_BYTES or POOL_BYTES <= 0 or not _POOL_OK:
        return torch.empty(shape, dtype=dtype)
    with _POOL_LOCK:    # the view is made under the lock: from then on the buffer counts as held
        buf = _take(n, dtype)
        out = None if buf is None else buf.as_strided(shape, strides[::-1])
    return torch.empty(shape, dtype=dtype) if out is None else out


def _take(n: int, dtype: torch.dtype) -> Optional[torch.Tensor]:
    """A free pooled 1-D buffer of ``dtype`` with ``n`` to ``2 n`` elements (most recently used
    last), or a new one when the pool has room (after dropping its oldest free buffers); None:
    the caller makes an unpooled tensor."""
    pool = _pool_list()
    # a buffer whose storage was moved to shared memory (torch.multiprocessing, share_memory_())
    # may be read by another process after every holder here let go: never hand it out again
    pool[:] = [b for b in pool if not b.untyped_storage().is_shared()]
    for k in range(len(pool) - 1, -1, -1):
        buf = pool[k]
        if buf.dtype == dtype and n <= buf.numel() <= 2 * n and _storage_free(buf):
            pool.append(pool.pop(k))
            return buf
    need = n * dtype.itemsize
    total = sum(b.nbytes for b in pool)
    k = 0
    while total + need > POOL_BYTES and k < len(pool):
        if _storage_free(pool[k]):
            total -= pool.pop(k).nbytes
        else:
            k += 1
    if total + need > POOL_BYTES:
        return None
    buf = torch.empty(n, dtype=dtype)
    pool.append(buf)
    return buf


def _pool_list() -> list:
    """The pool's buffers (a forked child starts its own: its copies are copy-on-write)."""
    if _STATE.get("bufs_pid") != os.getpid():
        _STATE["bufs"], _STATE["bufs_pid"] = [], os.getpid()
    return _STATE["bufs"]


def release_pool() -> int:
    """Drops the pool's free buffers (in-use ones stay until their holders let go); returns
    the bytes dropped."""
    with _POOL_LOCK:
        pool = _pool_list()
        free = [b for b in pool if _storage_free(b)]
        pool[:] = [b for b in pool if not any(b is f for f in free)]
        return sum(b.nbytes for b in free)


def _own_refs() -> int:
    """Python references to a storage object that nobody else holds, as :func:`_storage_free`
    counts them (its ``st``, ``getrefcount``'s argument, and the one torch keeps while a
    C++ side keeps while a tensor shares the storage)."""
    buf = torch.empty(1)
    st = buf.untyped_storage()
    return sys.getrefcount(st)


_POOL_OK = hasattr(torch._C, "_storage_Use_Count")
_OWN_REFS = _own_refs()


def np32(t: Optional[torch.Tensor], ndim: int = 1):
    """A contiguous fp32 numpy view of ``t`` (for None a 1-element dummy of ``ndim`` dims): ``t``'s
    own memory when it is contiguous fp32, else a converted copy, which for a large ``t`` (a
    gradient broadcast over time that a kernel reads in full, an fp16 input) is written into a
    pooled buffer of :func:`empty` (the same values as ``t.to(float32).contiguous()``, without
    fresh memory's page faults; the numpy array holds the buffer until it is dropped)."""
    import numpy as np

    if t is None:
        return np.zeros((1,) * ndim, dtype=np.float32)
    t = t.detach()
    if t.dtype == torch.float32 and t.is_contiguous():
        return t.numpy()
    if t.numel() * 4 >= POOL_MIN_BYTES and t.device.type == "cpu":
        return empty(t.shape).copy_(t).numpy()
    return t.to(torch.float32).contiguous().numpy()


def grad_rows(g: Optional[torch.Tensor]):
    """``(array, step)`` of a ``(T, M)`` gradient for a kernel that reads its row ``t * step``:
    a contiguous fp32 numpy view and 1, or for a gradient broadcast over time (stride 0 along
    dim 0, as the backward of a ``sum`` gives) its first row as ``(1, M)`` and 0, so no
    ``(T, M)`` copy is made; for None a ``(1, 1)`` dummy and 0. The one helper for every
    family: the LIF, CUBA, Loihi and sigma-delta kernels take the step; the peer kernels
    (snnTorch, norse LIF, sinabs: ``trow`` of ``_nb_peers``) take the array alone and read row
    ``min(t, rows - 1)``, which is the same row for both shapes."""
    if g is None:   # one shared (1, 1) dummy: kernels only read a gradient, and never an absent one
        dummy = _STATE.get("no_grad")
        if dummy is None:
            dummy = _STATE["no_grad"] = np32(None, 2)
        return dummy, 0
    if g.dim() == 2 and g.shape[0] > 1 and g.stride(0) == 0:
        return np32(g[0:1]), 0
    return np32(g), 1


def const_row(value: float, M: int):
    """A read-only-by-convention fp32 numpy ``(M,)`` array filled with ``value`` (a number
    parameter as the kernels take it), cached per ``(value, M)``: kernels never write it."""
    import numpy as np

    cache = _STATE.get("rows")
    if cache is None:
        cache = _STATE["rows"] = {}
    value = float(value)
    key = (value, M) if value != 0.0 else (repr(value), M)   # -0.0 and 0.0: different rows
    row = cache.get(key)
    if row is None:
        if len(cache) >= 64:
            cache.clear()
        row = cache[key] = np.full(M, np.float32(value), dtype=np.float32)
    return row


def reset_for_tests() -> None:
    """Forget the loaded modules and the warning (tests of the fallback)."""
    keep = {k: _STATE[k] for k in ("pool", "pool_pid", "bufs", "bufs_pid", "labels") if k in _STATE}
    _STATE.clear()
    _STATE.update(keep)
