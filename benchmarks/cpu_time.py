"""CPU time (``time.thread_time``, one thread) per neuron-step of a family's fused CPU kernel
through its benchmark case (spikefuse.families), forward and forward+backward, min of 5: robust
to the scheduler waits of a loaded machine (not to memory contention), so before/after
comparisons of kernel code hold where wall times (benchmarks/neurons.py) do not. Also the minor
page faults per call (``getrusage`` ``ru_minflt``, median of the 5 timed calls): a fresh large
output costs one per 4 KiB on first touch (kernels/cpu/jit.py ``empty``; ``SPIKEFUSE_CPU_POOL_MB=0``
turns its buffer pool off, the glue as it was before the pool).

    python benchmarks/cpu_time.py 100,32,1024 loihi.cuba loihi.rf loihi.sigma_delta
"""
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

try:  # run from a checkout without installing
    import spikefuse  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from spikefuse import families  # noqa: E402

torch.set_num_threads(1)


def cpu_seconds(fn, n=5):
    """Minimum thread CPU time of ``fn`` over ``n`` calls after one warm-up call, and the median
    of the minor page faults of those calls."""
    fn()
    ts, faults = [], []
    for _ in range(n):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.thread_time()
        fn()
        ts.append(time.thread_time() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return min(ts), statistics.median(faults)


def main(argv):
    T, B, N = (int(v) for v in argv[0].split(","))
    for name in argv[1:]:
        fam = families.get(name)
        c = families.load(fam.bench.case)("cpu", 4)
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(T, B, N, generator=g) * 0.8 + 0.6) * fam.bench.case_scale
        with torch.no_grad():
            f, ff = cpu_seconds(lambda: c.run(x))
        xg = x.clone().requires_grad_()

        def step():
            c.run(xg).float().sum().backward()
            xg.grad = None

        fb, fbf = cpu_seconds(step)
        n = T * B * N
        print(f"{name:18s} {T},{B},{N}  fwd {f * 1e9 / n:6.2f} ns/n-step {f * 1e3:7.2f} ms {ff:6.0f} faults"
              f"  f+b {fb * 1e9 / n:6.2f} ns/n-step {fb * 1e3:7.2f} ms {fbf:6.0f} faults", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
