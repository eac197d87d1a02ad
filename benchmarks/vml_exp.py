"""Which MKL VML exp kernel torch.exp runs on this CPU, its speed next to the other ISA kernels
libtorch_cpu.so carries, and whether their float32 results are the same bits.

Why: the CPU kernels' surrogate exps must be torch.exp's bits (``kernels/cpu/_nb_vml.py``), so
they call MKL's dispatched ``vmsExp`` and run at whatever speed MKL's dispatch picks. On an AMD
CPU MKL picks its generic kernel (``EX``), not the AVX2 (``L9``) or AVX-512 (``Z0``) one, and
those give other bits for some inputs: a faster exp here is not torch.exp's.

    PYTHONPATH=src python benchmarks/vml_exp.py             # 64M sampled floats, ~1 min
    PYTHONPATH=src python benchmarks/vml_exp.py --exhaustive  # all 2**32 floats, ~15 min

The per-ISA kernels are internal MKL symbols, called here only to measure them (never by the
library); their signature ``(int64 n, const float *a, float *r)`` was found by trying.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import time

import numpy as np
import torch

KERNELS = ("EXHAynn", "L9HAynn", "Z0HAynn")   # generic, AVX2, AVX-512 (high accuracy)


def _kernels():
    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    out = {}
    for k in KERNELS:
        try:
            f = getattr(lib, "mkl_vml_kernel_sExp_" + k)
        except AttributeError:
            continue
        f.restype = None
        out[k] = f
    return out


def _call(f, x, r):
    f(ctypes.c_int64(x.size), x.ctypes.data_as(ctypes.c_void_p), r.ctypes.data_as(ctypes.c_void_p))


def kernel_exp(name: str, x: np.ndarray) -> np.ndarray:
    """exp of a float32 array by the MKL kernel ``mkl_vml_kernel_sExp_<name>`` (for tests)."""
    x = np.ascontiguousarray(x, np.float32)
    r = np.empty_like(x)
    _call(_kernels()[name], x, r)
    return r


def _per_elem(fn, n=1 << 16, reps=200) -> float:
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps / n * 1e9


def _supported(k: str) -> bool:
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return {"L9HAynn": " avx2" in flags, "Z0HAynn": " avx512f" in flags}.get(k, True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exhaustive", action="store_true", help="compare on all 2**32 float32 values")
    ap.add_argument("--samples", type=int, default=1 << 26, help="random float32 bit patterns otherwise")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    ks = {k: f for k, f in _kernels().items() if _supported(k)} if torch.backends.mkl.is_available() else {}
    if not ks:
        print("this torch build has no MKL VML exp kernels: torch.exp is not VML's here")
        return {}
    x = (-np.random.default_rng(0).random(1 << 16) * 5).astype(np.float32)
    r = np.empty_like(x)
    xt, rt = torch.from_numpy(x), torch.from_numpy(r)
    print(f"1 thread, n = 65536 in [-5, 0]: torch.exp {_per_elem(lambda: torch.exp(xt, out=rt)):.3f} ns/elem")
    for k, f in ks.items():
        print(f"  mkl_vml_kernel_sExp_{k}: {_per_elem(lambda f=f: _call(f, x, r)):.3f} ns/elem")
    bad, total, t0 = dict.fromkeys(ks, 0), 0, time.time()
    rng = np.random.default_rng(1)
    step = 1 << 24
    stop = (1 << 32) if a.exhaustive else a.samples
    for start in range(0, stop, step):
        if a.exhaustive:
            bits = np.arange(start, min(stop, start + step), dtype=np.uint64).astype(np.uint32)
        else:
            bits = rng.integers(0, 1 << 32, min(step, stop - start), dtype=np.uint64).astype(np.uint32)
        xs = bits.view(np.float32)
        ref = torch.exp(torch.from_numpy(xs)).numpy()
        total += xs.size
        for k, f in ks.items():
            rs = np.empty_like(xs)
            _call(f, xs, rs)
            both_nan = np.isnan(rs) & np.isnan(ref)     # NaN payloads are not compared
            bad[k] += int(((rs.view(np.uint32) != ref.view(np.uint32)) & ~both_nan).sum())
    what = "all 2**32 values" if a.exhaustive else f"{total} random bit patterns"
    print(f"differing from torch.exp on {what} ({time.time() - t0:.0f} s):")
    for k, n in bad.items():
        print(f"  {k}: {n}" + ("  <- the kernel torch.exp runs here" if n == 0 else ""))
    return bad


if __name__ == "__main__":
    main()
