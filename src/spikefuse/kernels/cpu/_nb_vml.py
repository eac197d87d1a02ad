"""``vexp(n, src, dst)``: torch's CPU ``exp`` of float32, callable from numba kernels.

Why: torch.exp of a float32 CPU tensor (ATen's ``IMPLEMENT_FLOAT_KERNEL(exp)``) hands each
contiguous run of elements (a non-contiguous one copied through an 8 KiB buffer) to ``vml::vexp``,
which in an MKL build of torch (x86-64 wheels) is MKL VML's ``vmsExp(n, a, r, VML_HA |
VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE)``. libm's ``expf`` (numba's ``np.exp``) differs from it in
~1 % of float32 values (SLEEF's ``xexpf``: ~10 %), so a kernel that reproduces an ``exp`` of the
reference bit for bit calls the same routine. libtorch_cpu.so links MKL statically and exports
VML's Fortran entry points, not the C ones: ``VMSEXP_(const int32 *n, const float *a, float *r,
const int64 *mode)``; checked on this torch build (2.13.0+cpu, MKL 2024.2): 0 of 4M values
in [-30, 0] and of 4M in [-110, 90] (denormal results included), the edge values (+-0, +-inf,
NaN, -104, 88.7, denormal arguments), lengths 1-69, 127-129, 2047-2049, 32768 and offsets 0-7
differ from torch.exp; with ``VML_FTZDAZ_ON`` 8 % of the wide range did (denormals flushed).

How: the kernel calls an external symbol of its own name (:data:`SYMBOL`) that
``llvmlite.binding.add_symbol`` maps, at import of this module, to the address of
``VMSEXP_`` in the loaded libtorch_cpu.so (found with ctypes). The compiled code names the symbol,
not an address, so numba's on-disk cache (``cache=True``) stays valid across processes: the
kernel modules import this one first, which adds the symbol before any cached kernel is linked.

Without the symbol (a torch without MKL, e.g. aarch64 wheels, where torch.exp is SLEEF's)
:data:`AVAILABLE` is False and says why in :data:`REASON`; ``vexp`` then computes libm's ``expf``
element by element (the kernels' path before this module), so a kernel compiled against it
still links and runs (``SPIKEFUSE_NO_VML=1`` forces that path, for tests). Kernels take ``AVAILABLE`` as a closure constant, so their cached variants
differ between the two cases.
"""
from __future__ import annotations

import ctypes
import os
from typing import Optional

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from ._nb_kernel import stable_uuids

#: the name the kernels call; mapped to MKL's ``VMSEXP_`` (a name of our own: no clash with a
#: symbol of the process)
SYMBOL = "spikefuse_vml_vmsexp"
#: the name of MKL's ``MKL_Set_Num_Threads_Local(int)`` for the kernels (set to 1 around each call)
SYMBOL_THREADS = "spikefuse_vml_set_threads_local"
#: ATen's mode of every VML call (aten/src/ATen/cpu/vml.h): VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE
MODE = 0x00000002 | 0x00140000 | 0x00000100


def _find() -> tuple[Optional[int], str]:
    """(the address of ``VMSEXP_`` in libtorch_cpu.so, "") or (None, why not)."""
    if os.environ.get("SPIKEFUSE_NO_VML", "") not in ("", "0"):
        return None, "SPIKEFUSE_NO_VML is set"
    try:
        import torch

        if not torch.backends.mkl.is_available():
            return None, "this torch build has no MKL (its exp is not VML's)"
        path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
        lib = ctypes.CDLL(path)
        fns = lib.VMSEXP_, lib.MKL_Set_Num_Threads_Local  # (mkl_set_num_threads_local: the Fortran form)
    except (OSError, AttributeError, ImportError) as e:
        return None, f"MKL VML's VMSEXP_ is not exported by libtorch_cpu ({type(e).__name__}: {e})"
    return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in fns), ""


def _register() -> tuple[bool, str]:
    addrs, why = _find()
    if addrs is None:
        return False, why
    import llvmlite.binding as llvm

    llvm.add_symbol(SYMBOL, addrs[0])
    llvm.add_symbol(SYMBOL_THREADS, addrs[1])
    return True, ""


#: whether ``vexp`` is MKL VML's vmsExp (torch.exp's); False: libm's expf, and :data:`REASON` says why
AVAILABLE, REASON = _register()


@intrinsic
def vexp(typingctx, n, src, dst):
    """``dst[k] = exp(src[k])`` for ``k < n`` (1-D C-contiguous float32 arrays, ``n`` at most
    their length, an integer below 2^31; ``src`` may be ``dst``): one VML call, as torch.exp
    computes it (:data:`AVAILABLE`), else a loop of libm's expf. The call runs on the calling
    thread alone (``MKL_Set_Num_Threads_Local(1)`` around it, then the previous value): VML
    otherwise opens an OpenMP team of its own for a long row (measured on the 2-core VM: n =
    8192-65536 took 60-130 ns per element instead of 1.5, spinning), and the kernels already run
    one range per thread."""
    if not (isinstance(n, types.Integer) and isinstance(src, types.Array) and isinstance(dst, types.Array)):
        return None
    for a in (src, dst):
        if a.dtype != types.float32 or a.ndim != 1 or a.layout != "C":
            return None
    sig = types.none(n, src, dst)

    def codegen(context, builder, signature, args):
        nv, s, d = args
        sp = context.make_array(signature.args[1])(context, builder, s).data
        dp = context.make_array(signature.args[2])(context, builder, d).data
        i32, i64 = ir.IntType(32), ir.IntType(64)
        n32 = builder.trunc(nv, i32) if nv.type.width > 32 else builder.sext(nv, i32) if nv.type.width < 32 else nv
        if AVAILABLE:
            fty = ir.FunctionType(ir.VoidType(), [i32.as_pointer(), sp.type, dp.type, i64.as_pointer()])
            fn = cgutils.get_or_insert_function(builder.module, fty, SYMBOL)
            pn = cgutils.alloca_once(builder, i32)
            pm = cgutils.alloca_once(builder, i64)
            builder.store(n32, pn)
            builder.store(ir.Constant(i64, MODE), pm)
            tty = ir.FunctionType(i32, [i32])
            threads = cgutils.get_or_insert_function(builder.module, tty, SYMBOL_THREADS)
            old = builder.call(threads, [ir.Constant(i32, 1)])
            builder.call(fn, [pn, sp, dp, pm])
            builder.call(threads, [old])
        else:
            f = ir.FloatType()
            expf = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f, [f]), "llvm.exp.f32")
            with cgutils.for_range(builder, builder.sext(n32, i64)) as loop:
                v = builder.load(builder.gep(sp, [loop.index]))
                builder.store(builder.call(expf, [v]), builder.gep(dp, [loop.index]))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def exp_row(n, buf, vml):
    """``buf[k] = exp(buf[k])`` for ``k < n``, in place, as a kernel's row of exps: one
    :func:`vexp` call (torch.exp's bits) when ``vml``, else libm's ``expf`` element by element
    (numba's ``np.exp``: the kernels' path before this module). ``vml`` is the caller's closure
    constant :data:`AVAILABLE` (so its cached variants differ with and without VML: numba keys a
    cache on closure values, not on module globals)."""
    if vml:
        vexp(n, buf, buf)
    else:
        for k in range(n):
            buf[k] = np.exp(buf[k])


stable_uuids(globals())    # numba objects pickle alike in every process (disk cache)
