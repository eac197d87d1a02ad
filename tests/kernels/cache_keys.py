"""Run as a script: every family's CPU kernels forward and backward on a tiny input (and the
Loihi / resonator int64 reruns), then print, as JSON, the disk-cache key digest of every
spikefuse numba kernel alive, per qualified name: what numba's cache hashes for a kernel (its
bytecode and its pickled closure values, ``numba.core.caching``). Two processes printing the
same digests share cache entries; a digest that differs is a kernel that compiles again in
every process (tests/kernels/test_kernels_cpu_cache.py)."""
from __future__ import annotations

import gc
import hashlib
import json
import sys

import torch

from spikefuse import families, kernels


def run_all() -> None:
    g = torch.Generator().manual_seed(0)
    for fid in families.ids(with_bench=True):
        fam = families.get(fid)
        if not fam.kernel or "cpu" not in kernels.available(fam.kernel):
            continue
        case = families.load(fam.bench.case)("cpu", 4)
        x = ((torch.randn(3, 2, 40, generator=g) * 0.8 + 0.6) * fam.bench.case_scale).requires_grad_()
        with torch.no_grad():
            case.run(x)
        case.run(x).float().sum().backward()
    from spikefuse.kernels.cpu import _nb_loihi, _nb_resonator
    _nb_loihi.make_fwd_i64(1, 0, 1, 1, 0)
    _nb_resonator.make_fwd_i64(2, 0, 1, 1, 1, 1)


def keys() -> dict:
    from numba.core.dispatcher import Dispatcher
    from numba.core.serialize import dumps

    out: dict = {}
    for obj in gc.get_objects():
        if not isinstance(obj, Dispatcher) or not obj.py_func.__module__.startswith("spikefuse."):
            continue
        fn = obj.py_func
        cells = b"" if fn.__closure__ is None else dumps(tuple(c.cell_contents for c in fn.__closure__))
        digest = hashlib.sha256(fn.__code__.co_code + cells).hexdigest()[:16]
        out.setdefault(f"{fn.__module__}.{fn.__qualname__}", []).append(digest)
    return {k: sorted(v) for k, v in out.items()}


if __name__ == "__main__":
    run_all()
    json.dump(keys(), sys.stdout)
