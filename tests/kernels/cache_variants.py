"""Run by tests/kernels/test_kernels_cpu_cache.py in a fresh process: the Loihi forwards named on
the command line (``cuba``: CUBA, per-neuron decays; ``alif``: ALIF, decays as numbers), each
on the fused CPU backend and on the reference; prints, as JSON, whether every output, state and
trace was bit-identical, per family."""
import json
import sys

import torch

from spikefuse.functional import loihi as L


def run(name: str) -> bool:
    g = torch.Generator().manual_seed(4)
    C = 48
    x = torch.randn(25, 3, C, generator=g) * 0.8 + 0.4
    if name == "cuba":
        p, f = L.CubaParams(1.0, torch.rand(C, generator=g) * 3000 + 500, 1024.0, scale=64), L.cuba_multistep
    else:
        p, f = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0, scale=64), L.alif_multistep
    a, b = (f(x, p, backend=be, return_traces=True) for be in ("cpu", "reference"))
    flat = lambda o: [o[0], *o[1], *o[2]]    # noqa: E731
    return all(torch.equal(u, v) for u, v in zip(flat(a), flat(b))) and 0 < float(a[0].sum()) < a[0].numel()


if __name__ == "__main__":
    json.dump({n: run(n) for n in sys.argv[1:]}, sys.stdout)
