"""Peak memory of one epoch over an event data set: streamed (binned per batch) vs materialised.

For each split size N, a synthetic SHD-layout HDF5 file (``spikes/times``, ``spikes/units``
variable-length, ``labels``; the layout :class:`spikefuse.data.events.SHD` checks) is written to a
temporary folder, and one epoch is run two ways over ``EventStream(SHD(root), n_time_bins=T)``:

- ``streamed``: :func:`spikefuse.data.stream.stream_loader` batches, each sample read from the
  file and binned when the loader asks for it;
- ``materialised``: the whole split binned first into one dense ``(T, N, 1, 700)`` float32 array
  (what an in-memory loader holds), then sliced into the same batches.

Reported per (mode, N): the tracemalloc peak (Python and numpy allocations; torch's own CPU
allocator, e.g. the collated batch, is not seen by it) and the peak RSS growth of the process
during the epoch (``resource.getrusage`` ``ru_maxrss`` after minus before). Each measurement runs
in a fresh interpreter so that ``ru_maxrss`` is its own; ``--in-process`` runs them all in this
process (faster; the RSS column is then only a lower bound, since ``ru_maxrss`` never goes down).

::

    python benchmarks/stream_memory.py                          # N = 256, 1024, 4096
    python benchmarks/stream_memory.py --sizes 128 512 --json mem.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

N_UNITS = 700
MIB = 2.0 ** 20


def write_shd(path: str, n: int, spikes: int, seed: int = 0) -> None:
    """A synthetic SHD file: n samples of ``spikes`` events over 700 units in [0, 1.4) s."""
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        sp = f.create_group("spikes")
        t = sp.create_dataset("times", (n,), dtype=h5py.vlen_dtype(np.float32))
        u = sp.create_dataset("units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            t[i] = np.sort(rng.uniform(0.0, 1.4, spikes)).astype(np.float32)
            u[i] = rng.integers(0, N_UNITS, spikes).astype(np.uint16)
        f.create_dataset("labels", data=rng.integers(0, 20, n).astype(np.uint8))


def _dataset(root: str, T: int):
    from spikefuse.data.events import SHD
    from spikefuse.data.stream import EventStream

    return EventStream(SHD(root, "train"), n_time_bins=T)


def _epoch_streamed(ds, batch_size: int) -> float:
    from spikefuse.data.stream import stream_loader

    total = 0.0
    for xb, _ in stream_loader(ds, batch_size=batch_size):
        total += float(xb.sum())
    return total


def _epoch_materialised(ds, batch_size: int) -> float:
    import torch

    x0, _ = ds[0]
    dense = np.empty((ds.T, len(ds)) + tuple(x0.shape[1:]), dtype=np.float32)
    labels = np.empty(len(ds), dtype=np.int64)
    for i in range(len(ds)):
        x, labels[i] = ds[i]
        dense[:, i] = x.numpy()
    xs, total = torch.from_numpy(dense), 0.0
    for s in range(0, len(ds), batch_size):
        total += float(xs[:, s:s + batch_size].sum())
    return total


def measure(mode: str, root: str, n: int, T: int, batch_size: int) -> dict:
    """One epoch of ``mode`` over the file in ``root``: peaks in MiB and the epoch's wall time."""
    ds = _dataset(root, T)
    run = {"streamed": _epoch_streamed, "materialised": _epoch_materialised}[mode]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    total = run(ds, batch_size)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    if started:
        tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    frame = T * N_UNITS * 4
    return {"mode": mode, "n_samples": n, "T": T, "batch_size": batch_size,
            "tracemalloc_peak_mib": peak / MIB, "rss_peak_delta_mib": (rss1 - rss0) / 1024.0,
            "dense_split_mib": n * frame / MIB, "dense_batch_mib": min(n, batch_size) * frame / MIB,
            "epoch_s": wall, "checksum": total}


def _measure_fresh(mode: str, root: str, n: int, T: int, batch_size: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_one", mode, root, str(n), str(T), str(batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes, *, T: int = 20, batch_size: int = 32, spikes: int = 500, in_process: bool = False) -> list:
    """Rows (dicts) for every size, streamed then materialised."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="sf_stream_mem_") as tmp:
        for n in sizes:
            root = os.path.join(tmp, f"n{n}")
            os.makedirs(root)
            write_shd(os.path.join(root, "shd_train.h5"), n, spikes)
            for mode in ("streamed", "materialised"):
                one = measure if in_process else _measure_fresh
                row = one(mode, root, n, T, batch_size)
                row["spikes_per_sample"], row["in_process"] = spikes, in_process
                rows.append(row)
    return rows


def format_table(rows) -> str:
    head = f"{'mode':<13}{'N':>7}{'dense split':>13}{'dense batch':>13}{'tracemalloc':>13}{'RSS delta':>11}{'epoch':>8}"
    lines = [head, " " * 20 + "MiB".rjust(13) + "MiB".rjust(13) + "peak MiB".rjust(13) + "MiB".rjust(11) + "s".rjust(8)]
    for r in rows:
        lines.append(f"{r['mode']:<13}{r['n_samples']:>7}{r['dense_split_mib']:>13.1f}{r['dense_batch_mib']:>13.2f}"
                     f"{r['tracemalloc_peak_mib']:>13.2f}{r['rss_peak_delta_mib']:>11.1f}{r['epoch_s']:>8.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096], help="samples per split")
    p.add_argument("--T", type=int, default=20, help="time bins per sample")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--spikes", type=int, default=500, help="events per sample")
    p.add_argument("--in-process", action="store_true", help="no fresh interpreter per row (RSS: lower bound)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--_one", nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._one:
        mode, root, n, T, bs = a._one
        print(json.dumps(measure(mode, root, int(n), int(T), int(bs))))
        return 0
    if min(a.sizes) < 1 or a.T < 1 or a.batch_size < 1 or a.spikes < 1:
        p.error("--sizes, --T, --batch-size and --spikes must be >= 1")
    rows = run(a.sizes, T=a.T, batch_size=a.batch_size, spikes=a.spikes, in_process=a.in_process)
    print(f"one epoch, SHD layout (700 units), T={a.T}, batch {a.batch_size}, {a.spikes} events/sample,"
          f" {'in process' if a.in_process else 'fresh interpreter per row'}")
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": vars(a) | {"_one": None}, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
