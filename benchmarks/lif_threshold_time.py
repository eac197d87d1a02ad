"""Thread CPU time per neuron-step of the fused CPU LIF scan (``backend="cpu"``) with
``threshold=">="`` and with the strict ``">"``, forward and forward+backward, min of 5 calls after
a warm-up, one thread: the strict comparison is a run-time argument of the same compiled kernel,
so the two should not differ beyond noise.

    python benchmarks/lif_threshold_time.py 100,32,1024 500,16,1024
"""
import sys
import time
from pathlib import Path

import torch

try:  # run from a checkout without installing
    import spikefuse  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from spikefuse.functional.lif import LIFParams, lif_multistep  # noqa: E402

torch.set_num_threads(1)


def ns_per_step(fn, n, repeat=5):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        ts.append(time.thread_time() - t0)
    return min(ts) * 1e9 / n


def main(argv):
    for arg in argv or ["100,32,1024"]:
        shape = tuple(int(v) for v in arg.split(","))
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.6
        for thr in (">=", ">"):
            p = LIFParams(tau=2.0, threshold=thr)

            def fwd():
                with torch.no_grad():
                    lif_multistep(x, p, backend="cpu")

            def fwd_bwd():
                xg = x.clone().requires_grad_()
                lif_multistep(xg, p, backend="cpu")[0].sum().backward()

            print(f"lif {arg}  threshold={thr!r:5s} fwd {ns_per_step(fwd, x.numel()):5.2f} ns/n-step"
                  f"  f+b {ns_per_step(fwd_bwd, x.numel()):5.2f} ns/n-step", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
