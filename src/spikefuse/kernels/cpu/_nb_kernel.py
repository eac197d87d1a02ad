"""``kernel``: the numba decorator of the top-level CPU kernels (the functions :func:`.jit.run`
calls), ``njit(cache=True, nogil=True, error_model="numpy")`` plus numba's ``noalias`` flag.

Why: a kernel's lane loop reads and writes many rows of different arrays (the norse refractory
backward: 6 carry rows, 6 parameter-gradient rows, the gradient row and 8 rows it reads). LLVM
vectorises such a loop only when it can prove the rows do not overlap, which for pointers it
cannot tell apart takes a run-time check per pair of rows; above its limit (8 checks) it leaves
the loop scalar. numba's ``noalias`` flag (its ``Flags.noalias``, used by its own parfors, not
exposed as an ``njit`` option) marks every array argument of the compiled function ``noalias``:
LLVM may then assume that what the kernel writes through one argument is not read or written
through another. Measured (benchmarks/cpu_time.py 100,32,1024, 1 thread, CPU time, AVX-512 VM):
norse.lif_refrac fwd+bwd 36.0 -> 21.1 ms, norse.lif_adex 46.4 -> 33.3 ms, snntorch.synaptic
10.3 -> 7.5 ms; the results do not change (the tests compare the kernels with the reference bit
for bit).

The contract that this asks of the glue (kernels/cpu/*.py): no array a kernel writes shares
memory with another array argument of the same call. It holds because every written array is a
fresh output (``jit.empty`` / ``common.empty32``, distinct pooled buffers while alive) or a fresh
1-element dummy (``jit.np32(None)``); arrays passed twice only to be read are fine.

Where numba's internals differ (the flag or the option table moved), :data:`NOALIAS` is False and
the kernels compile without it (same results, slower); ``SPIKEFUSE_NO_NOALIAS=1`` forces that,
for A/B measurements. numba keys its on-disk cache on the source and closure values, not on the
flags, so a cached kernel is reused whichever way it was compiled (both are correct).
"""
from __future__ import annotations

import hashlib

import os

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import _bound_block_labels

_bound_block_labels()   # every kernel module imports this one: see jit._bound_block_labels


def _register() -> tuple[bool, str]:
    if os.environ.get("SPIKEFUSE_NO_NOALIAS", "") not in ("", "0"):
        return False, "SPIKEFUSE_NO_NOALIAS is set"
    try:
        from numba.core import cpu, options
        from numba.core.compiler import Flags

        if "noalias" not in Flags.options:
            return False, "this numba has no noalias flag"
        if not hasattr(cpu.CPUTargetOptions, "noalias"):
            cpu.CPUTargetOptions.noalias = options.TargetOptions.Mapping("noalias")
    except (ImportError, AttributeError, TypeError) as e:
        return False, f"numba's option table differs ({type(e).__name__}: {e})"
    return True, ""


#: whether the kernels compile with numba's ``noalias`` flag; False: :data:`REASON` says why
NOALIAS, REASON = _register()

_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", **({"noalias": True} if NOALIAS else {}))


def kernel(fn):
    """``@kernel``: ``fn`` compiled as a top-level CPU kernel (module docstring), with a
    deterministic uuid (:func:`stable_uuid`) and, made in a kernel factory, a name of its own
    variant (:func:`name_variant`)."""
    name_variant(fn)
    disp = njit(**_OPTIONS)(fn)
    stable_uuid(disp)
    return disp


def _variant_repr(value) -> str:
    """:func:`_stable_repr`, except that an object it names by type only (an array, say) is
    told apart by its pickled bytes (the same in every process for the same value)."""
    rep = _stable_repr(value)
    if rep == type(value).__qualname__ and not isinstance(value, (tuple, str)):
        import pickle

        try:
            rep += ":" + hashlib.sha256(pickle.dumps(value, protocol=4)).hexdigest()
        except Exception:    # noqa: BLE001 - unpicklable: its type is all that names it
            pass
    return rep


def name_variant(fn) -> None:
    """Appends to the ``__qualname__`` of a function made inside a kernel factory (a ``<locals>``
    name with a closure) a digest of its closure values: ``tile_v<16 hex>``.

    Why: numba names a compiled function's machine-code symbol after its qualname and a
    counter of the process that compiled it (``..._make_tile..tileB3v10``), and the disk cache
    keeps the symbols. Two variants of one factory (the same qualname, other closure values:
    other code) compiled in two processes can therefore carry the same symbol; loaded from the
    cache into one process, a kernel that calls the second (the Loihi and resonator forwards
    call their tile function) was linked to the first one's code: wrong results, or writes past
    an array (heap corruption), depending on which variants a process had loaded before. Found
    when a Loihi variant was added (2026-12-06); tests/kernels/test_kernels_cpu_cache.py loads
    variants compiled in separate processes into one. With the digest, symbols that coincide
    name the same code."""
    if "<locals>" in fn.__qualname__ and getattr(fn, "__closure__", None) and not getattr(fn, "_sf_named", False):
        rep = ",".join(_variant_repr(c.cell_contents) for c in fn.__closure__)
        fn.__qualname__ += "_v" + hashlib.sha256(rep.encode()).hexdigest()[:16]
        fn._sf_named = True


def _uuid_slot(obj):
    """The name-mangled attribute holding a numba Dispatcher's / intrinsic's uuid (None while
    unset), or None where ``obj`` is neither or numba's layout differs."""
    if not callable(getattr(obj, "_set_uuid", None)):
        return None
    for cls in type(obj).__mro__:
        slot = f"_{cls.__name__.lstrip('_')}__uuid"    # Python's name mangling
        if slot in vars(cls):
            return slot
    return None


def _stable_repr(value) -> str:
    """A description of a closure value that is the same in every process: a numba object by
    its (stable) uuid, a number / string / bool / None by ``repr``, a tuple element-wise, any
    other object by its type (the pickled closure still tells those apart: this names only)."""
    if _uuid_slot(value) is not None:
        stable_uuid(value)
        return value._uuid
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ",".join(_stable_repr(v) for v in value) + ")"
    return type(value).__qualname__


def stable_uuid(obj) -> None:
    """Gives the numba Dispatcher or intrinsic ``obj`` a uuid that is the same in every process
    (where it has none yet): ``spikefuse:<module>.<qualname>``, and for a function made inside a
    kernel factory (a ``<locals>`` name) its closure values too.

    Why (issue 15): numba keys a cached kernel on the pickled values of its closure, and a
    Dispatcher or intrinsic pickles with its uuid, which numba draws at random in each process.
    A kernel whose closure holds one (a factory's tile function, the parameter function of the
    variant) or whose closure's functions refer to one (every module-level helper: ``state``,
    ``prefer_wide_vectors``, ...) therefore missed the disk cache in every new process: compiled
    again (~1 s per variant) and appended another entry to the cache (98 entries, 141 MB for one
    Loihi forward on the development machine). Each ``_nb_*`` module names its own objects
    (:func:`stable_uuids`), :func:`kernel` the factories' kernels; tests/kernels/
    test_kernels_cpu_cache.py checks the keys in two processes. Without numba's uuid attribute
    (another layout), nothing is named: the kernels still run, compiling once per process."""
    slot = _uuid_slot(obj)
    if slot is None or getattr(obj, slot, None) is not None:
        return
    fn = getattr(obj, "py_func", None) or getattr(obj, "_defn", None)
    if fn is None:
        return
    name = f"spikefuse:{fn.__module__}.{fn.__qualname__}"
    if "<locals>" in fn.__qualname__ and getattr(fn, "__closure__", None):
        name += "[" + ",".join(_stable_repr(c.cell_contents) for c in fn.__closure__) + "]"
    obj._set_uuid(name)


def stable_uuids(namespace: dict) -> None:
    """:func:`stable_uuid` of every numba Dispatcher and intrinsic in a module's ``namespace``
    (its ``globals()``, at the end of each ``_nb_*`` module)."""
    for value in list(namespace.values()):
        stable_uuid(value)


@intrinsic
def prefetch(typingctx, arr, idx):
    """A read prefetch hint (``llvm.prefetch``, locality 3, data cache) of the cache line holding
    ``arr[idx]`` (a 1-D C-contiguous array, ``idx`` within it): no effect on any value.

    Why (issue 15): a kernel with short tiles reads (and writes) one short run of each ``(T, M)``
    array per step (a tile's row: 2 KiB at 512 neurons) and the next step's run is in another
    page, where the hardware prefetcher (which stays within a page) has to start over; hinting
    the next step's rows during this step's work hides that latency (the Loihi backward,
    :mod:`._nb_loihi`). Where tiles are long (8192 neurons: 32 KiB rows) the hints measured
    slower (Loihi CUBA forward 16.8 -> 24.6 ms): there the rows' length does it. The resonator
    backward (1024-neuron tiles, or 256 / 512 with hints) and the sigma-delta backward measured
    alike with and without them."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and isinstance(idx, types.Integer)):
        return None
    sig = types.none(arr, idx)

    def codegen(context, builder, signature, args):
        a, i = args
        data = context.make_array(signature.args[0])(context, builder, a).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        ptr = builder.bitcast(builder.gep(data, [i]), i8p)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def prefetch_row(row, n):
    """:func:`prefetch` of each cache line (16 float32) of ``row[:n]``."""
    for j in range(0, n, 16):
        prefetch(row, j)


@intrinsic
def prefer_wide_vectors(typingctx, wide):
    """With ``wide`` an integer constant (a kernel factory's closure value) other than 0, marks
    the calling kernel's LLVM function ``"prefer-vector-width"="512"``: its loops vectorise with
    512-bit registers where the CPU has them (AVX-512), while the rest of the process keeps
    LLVM's default for such CPUs (256 bits, the ``prefer-256-bit`` tuning numba's host features
    carry). No effect on any value (the same operations, more lanes at once); a CPU without
    AVX-512 vectorises as wide as it can. llvmlite's attribute set accepts only the names it
    knows, so the string attribute goes in through ``set.add``. ``wide`` 0: nothing (the kernel
    as before, for A/B measurements). An integer, not a choice between two intrinsics as the
    closure value: numba's on-disk cache keys a kernel on its closure values, and an intrinsic
    object does not pickle to the same bytes in another process (every process compiled again).

    Why per kernel: measured process-wide (``NUMBA_CPU_FEATURES=<host>,-prefer-256-bit``), the
    resonator forward got faster while the LIF and AdEx kernels got slower (19.2 -> 25.0,
    40.7 -> 47.9 ms f+b; benchmarks/README.md)."""
    if not isinstance(wide, types.IntegerLiteral):
        return None
    on = bool(wide.literal_value)
    sig = types.none(wide)

    def codegen(context, builder, signature, args):
        if on:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return sig, codegen


stable_uuids(globals())
