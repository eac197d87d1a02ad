"""Neuron scan benchmarks: spikefuse backends against each other, the memory-bandwidth bound
and (when installed) peer libraries. See benchmarks/README.md.

    python benchmarks/neurons.py                       # CUDA if available, else --device cpu
    python benchmarks/neurons.py --device cpu --threads 1 --json out.json
    python benchmarks/neurons.py --device cpu --threads 1 all --no-default   # side by side
    python benchmarks/neurons.py --families lif --shapes 100,32,4096 500,16,4096 --peers
    python benchmarks/neurons.py --open-neuromorphic --on-sizes 4096 8192 16384
    python benchmarks/neurons.py --families lif --t-scaling      # time vs T of every path

The families and their traffic models come from :mod:`spikefuse.families`. For each family,
backend and shape it reports forward time (inference, no graph) and forward+backward time (a
surrogate-gradient training step of the neuron alone), peak memory (CUDA:
``max_memory_allocated`` above the inputs; everywhere: bytes saved for backward, counted with
``torch.autograd.graph.saved_tensors_hooks``), the HBM roofline bound of our fused kernel
(bytes it must move / bandwidth) and the measured/bound ratio. Every family also gets a
``default`` row: the neuron module as a user builds it (backend ``auto``) with the NaN/inf
checks on, beside the tuned rows (checks off unless ``--finite-checks``). Peers
(``benchmarks/peers.py``) each give a row, timed or ``not run: <reason>``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

try:  # run from a checkout without installing
    import spikefuse  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from spikefuse import families, finite_checks, kernels  # noqa: E402
from spikefuse.kernels import scan  # noqa: E402

H100_BANDWIDTH = 3.35e12  # B/s, H100 SXM HBM3

GPU_SHAPES = [(100, 32, 4096), (500, 16, 4096), (100, 256, 1024), (1000, 8, 512)]
#: registry ids of the families with a benchmark case (aliases and kernel keys accepted too)
FAMILIES = tuple(families.ids(with_bench=True))
CPU_SHAPES = [(100, 32, 1024), (200, 8, 512)]
T_SCALING = (50, 100, 200, 400)


# --------------------------------------------------------------------------- measurement


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


STAT = statistics.median


def _time(fn: Callable[[], None], device, repeat: int, warmup: int = 1) -> float:
    """Wall time in seconds of ``fn`` (median, or min with ``--stat min``, over ``repeat``
    calls after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return STAT(ts)


@contextmanager
def _count_saved(*exclude: torch.Tensor):
    """Counts bytes autograd saves for backward (distinct storages, not counting ``exclude``,
    e.g. the input, which is alive anyway). The graph built inside cannot run backward: the
    pack hook keeps no reference to the tensor (a saved *output* packed as itself is a reference
    cycle through C++ that Python's collector cannot see: the graph and its outputs would never
    be freed, which filled the CPU kernels' buffer pool over a long run and made the later
    families page-fault on fresh memory)."""
    seen = {}
    keep = []  # the saved tensors, alive until the count ends: no storage reused, counted twice
    skip = {(t.untyped_storage().data_ptr(), t.device) for t in exclude}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device)
            if key not in skip:
                seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
                keep.append(t)
        except Exception:  # pragma: no cover - sparse etc.
            pass
        return None

    def unpack(_):
        raise RuntimeError("benchmarks/neurons.py: the saved-bytes graph is not for backward")

    box = {"bytes": 0}
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield box
    keep.clear()
    box["bytes"] = sum(seen.values())


def _peak_cuda(fn, device) -> Optional[int]:
    if device.type != "cuda":
        return None
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def measure_copy_bandwidth(device, mbytes: int = 64, repeat: int = 7) -> float:
    """This machine's copy bandwidth in B/s at the current thread count: the best of ``repeat``
    ``dst.copy_(src)`` of ``mbytes`` MiB (counted as read + write), the bound's denominator on a
    CPU (a memory-bound scan cannot beat a copy of the same bytes)."""
    n = mbytes * 2**20 // 4
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best


def measure_first_touch(device, mbytes: int = 64, repeat: int = 5) -> tuple:
    """``(fresh, mapped)`` write bandwidth in B/s on a CPU: ``fill_`` of a freshly allocated
    ``mbytes`` MiB tensor (above glibc's largest mmap threshold, so every allocation is a new
    mapping: a page fault per 4 KiB on first touch) and of one already written; best of
    ``repeat``. A fresh large output pays the first, whatever library makes it (spikefuse's CPU
    kernels reuse their output buffers: ``kernels.cpu.jit.empty``); on CUDA ``(None, None)``."""
    if device.type != "cpu":
        return None, None
    n = mbytes * 2**20 // 4
    fresh = mapped = float("inf")
    keep = torch.empty(n)
    keep.fill_(1.0)
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.empty(n).fill_(1.0)
        fresh = min(fresh, time.perf_counter() - t0)
        t0 = time.perf_counter()
        keep.fill_(1.0)
        mapped = min(mapped, time.perf_counter() - t0)
    return n * 4 / fresh, n * 4 / mapped


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One runnable neuron scan: ``run(x)`` returns a tensor to reduce into a loss (``run`` None:
    a row that says why it was not run, in ``note``)."""

    family: str
    impl: str  # backend name, "default" or peer name
    run: Optional[Callable[[torch.Tensor], torch.Tensor]]
    # bytes our fused kernel moves per neuron-step: forward, forward+backward (None for peers)
    bytes_fwd: Optional[float] = None
    bytes_fwdbwd: Optional[float] = None
    checks: Optional[bool] = None  # finite checks for this case (None: the run's setting)
    note: str = ""


@dataclass
class Row:
    family: str
    impl: str
    shape: tuple
    dtype: str
    fwd_ms: Optional[float] = None
    fwdbwd_ms: Optional[float] = None
    peak_mb: Optional[float] = None
    saved_mb: Optional[float] = None
    bound_fwd_ms: Optional[float] = None
    bound_fwdbwd_ms: Optional[float] = None
    ratio_fwd: Optional[float] = None
    ratio_fwdbwd: Optional[float] = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def family(name: str) -> families.Family:
    """The registry record of ``name`` (id, alias or kernel key) that has a benchmark case."""
    fam = families.get(name)
    if fam.bench is None:
        raise ValueError(f"families: {fam.id!r} has no benchmark case in spikefuse.families")
    return fam


def _saved_bytes(backend: str, fam: families.Family) -> int:
    """Bytes per neuron-step the family's ``backend`` kernel saves: its ScanSpec's
    ``saved_bytes`` (the module's SAVED_BYTES only for a variant without a spec of its own)."""
    keys = (fam.id.replace("-", "_").replace(".", "_"), fam.kernel)
    tables = []
    for mod in (fam.kernels.get(backend), f"spikefuse.kernels.{backend}"):
        try:
            tables.append(getattr(families.load(mod), "SAVED_BYTES", {}))  # importing registers its specs
        except Exception:
            continue
    for k in keys:
        s = scan.find(backend, k)
        if s is not None:
            return s.saved_bytes
        for table in tables:
            if k in table:
                return table[k]
    return 0


def _default_case(fam: families.Family) -> Case:
    """The module as a user builds it: backend None (the global default, "auto"), checks on."""
    make = families.load(fam.bench.module)
    built = {}

    def run(x):
        n = x.shape[-1]
        if n not in built:
            built[n] = make(None, n).to(x.device)
        m = built[n]
        if callable(getattr(m, "reset", None)):
            m.reset()
        out = m(x)
        return out[0] if isinstance(out, tuple) else out

    return Case(fam.id, "default", run, checks=True)


def spikefuse_cases(name: str, backends, io_bytes: int, default: bool = True) -> list[Case]:
    """``default`` (module, auto backend, checks on) plus one case per listed backend that the
    family has (``reference`` always), with the traffic model of the fused kernel."""
    fam = family(name)
    make = families.load(fam.bench.case)
    cases = [_default_case(fam)] if default else []
    for be in backends:
        if be != "reference" and be not in (kernels.available(fam.kernel) if fam.kernel else []):
            continue
        c = make(be, io_bytes)
        cases.append(Case(fam.id, be, c.run, c.bytes_fwd, c.bytes_fwdbwd))
    return cases + _generic_cases(fam, cases)


def _generic_cases(fam: families.Family, cases: list[Case]) -> list[Case]:
    """A/B rows ``triton-generic``: the generic Triton scan template where it has a port."""
    if not any(c.impl == "triton" for c in cases):
        return []
    try:
        from spikefuse.kernels.triton import generic
    except ImportError:
        return []
    return generic.ab_cases(fam.kernel, cases)


def _peer_case(name: str, build, device) -> Case:
    label = peers.spikingjelly_label(device) if name == "spikingjelly" else name
    try:
        return Case("lif", label, build(device))
    except ImportError as e:
        return Case("lif", label, None, note=f"not run: {e.name or e} is not installed")
    except Exception as e:  # noqa: BLE001 - a peer that cannot be built says why
        return Case("lif", label, None, note=f"not run: {type(e).__name__}: {str(e).splitlines()[0][:100]}")


def peer_cases(name: str, device, compile: bool = False) -> list[Case]:
    """One case per peer of benchmarks/peers.py (LIF only; the peers have no equivalent of the
    other families). torch.compile peers only with ``compile`` (minutes of compilation on a CPU)."""
    if family(name).id != "lif":
        return family_peer_cases(name, device)
    cases = []
    for peer, build in peers.LIF_PEERS.items():
        if "+compile" in peer and not compile:
            cases.append(Case("lif", peer, None, note="not run: torch.compile peers need --peer-compile"))
        else:
            cases.append(_peer_case(peer, build, device))
    return cases


def family_peer_cases(name: str, device) -> list[Case]:
    """The peer rows of a non-LIF family (benchmarks/peers.py ``FAMILY_PEERS``: snnTorch Leaky /
    Synaptic, norse LIF, sinabs LIF with the family case's parameters), labelled by library."""
    fid = family(name).id
    out = []
    for label, build in getattr(peers, "FAMILY_PEERS", {}).get(fid, {}).items():
        case = _peer_case(label, build, device)
        out.append(Case(fid, case.impl, case.run, note=case.note))
    return out


def _checks(case: Case):
    return contextlib.nullcontext() if case.checks is None else finite_checks(case.checks)


def _input(case: Case, shape, device, dtype) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(0)
    scale = families.get(case.family).bench.case_scale
    return ((torch.randn(*shape, generator=g) * 0.8 + 0.6) * scale).to(device=device, dtype=dtype)


def _measure(case: Case, row: Row, x, device, repeat: int) -> None:
    with torch.no_grad():
        row.fwd_ms = 1e3 * _time(lambda: case.run(x), device, repeat)
    xg = x.clone().requires_grad_()

    def step():
        out = case.run(xg)
        out.float().sum().backward()
        xg.grad = None

    row.fwdbwd_ms = 1e3 * _time(step, device, repeat)
    with _count_saved(xg) as box:
        out = case.run(xg)
    row.saved_mb = box["bytes"] / 2**20
    del out
    peak = _peak_cuda(step, device)
    row.peak_mb = None if peak is None else peak / 2**20


def bench_case(case: Case, shape, device, dtype, bandwidth: float, repeat: int) -> Row:
    T, B, N = shape
    row = Row(case.family, case.impl, tuple(shape), str(dtype).replace("torch.", ""), note=case.note)
    if case.checks is not None:
        row.extra["finite_checks"] = case.checks
    if case.run is None:
        return row
    try:
        with _checks(case):
            _measure(case, row, _input(case, shape, device, dtype), device, repeat)
    except Exception as e:  # a backend or peer that cannot run this case
        row.note = f"not run: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        row.fwd_ms = row.fwdbwd_ms = None
        return row
    n = T * B * N
    row.extra["ns_per_neuron_step_fwd"] = 1e6 * row.fwd_ms / n
    row.extra["ns_per_neuron_step_fwdbwd"] = 1e6 * row.fwdbwd_ms / n
    if case.bytes_fwd is not None:
        row.bound_fwd_ms = 1e3 * n * case.bytes_fwd / bandwidth
        row.bound_fwdbwd_ms = 1e3 * n * case.bytes_fwdbwd / bandwidth
        row.ratio_fwd = row.fwd_ms / row.bound_fwd_ms
        row.ratio_fwdbwd = row.fwdbwd_ms / row.bound_fwdbwd_ms
    return row


# --------------------------------------------------------------------------- Open Neuromorphic setup


def _on_spikefuse(n, device, mode, backend):
    """spikefuse in the setup: published = the whole sequence through Linear (time folded into
    the batch) and one multi-step LIF call; per-step = one Linear and one LIF(step_mode="s")
    call per time step. ``backend="default"``: the module as built, checks on."""
    from spikefuse.neuron import LIF

    fc = torch.nn.Linear(n, n).to(device)
    if mode == "published":
        lif = LIF(tau=2.0, backend=None if backend == "default" else backend).to(device)

        def run(x):
            lif.reset()
            T, B = x.shape[:2]
            return lif(fc(x.reshape(T * B, n)).reshape(T, B, n))
    else:
        lif = LIF(tau=2.0, step_mode="s").to(device)

        def run(x):
            lif.reset()
            return torch.stack([lif(fc(x_t)) for x_t in x])

    return run, fc


def _on_builders(mode, backends, with_peers: bool):
    """(impl, checks, build(n, device) -> (run, module)) for one mode."""
    ours = ["default"] + (list(backends) if mode == "published" else ["spikefuse"])
    out = [(("spikefuse-" + be) if be not in ("default", "spikefuse") else be, be == "default",
            lambda n, d, be=be: _on_spikefuse(n, d, mode, be)) for be in ours]
    if with_peers:
        out += [(name, None, lambda n, d, f=f: f(n, d, mode)) for name, f in peers.ON_PEERS.items()]
    return out


def _on_row(impl, checks, build, mode, x, device, repeat) -> Row:
    T, B, n = x.shape
    row = Row(f"on-{mode}", impl, (T, B, n), str(x.dtype).replace("torch.", ""))
    if checks is not None:
        row.extra["finite_checks"] = checks
    try:
        run, module = build(n, device)
        module.to(dtype=x.dtype)

        def step():
            run(x).float().sum().backward()
            module.zero_grad(set_to_none=True)

        with contextlib.nullcontext() if checks is None else finite_checks(checks):
            with torch.no_grad():
                row.fwd_ms = 1e3 * _time(lambda: run(x), device, repeat)
            row.fwdbwd_ms = 1e3 * _time(step, device, repeat)
            peak = _peak_cuda(step, device)
        row.peak_mb = None if peak is None else peak / 2**20
    except ImportError as e:
        row.note = f"not run: {e.name or e} is not installed"
    except Exception as e:  # noqa: BLE001
        row.note = f"not run: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        row.fwd_ms = row.fwdbwd_ms = None
    return row


def open_neuromorphic(sizes, device, dtype, backends, repeat, T=500, B=16, with_peers=True,
                      modes=("published", "per-step")) -> list[Row]:
    """Linear(n, n) followed by a LIF over T=500 steps, batch 16, forward and forward+backward
    of ``output.sum()``: the Open Neuromorphic SNN library benchmark setup, ``published`` (each
    library as the benchmark script wrote it) and ``per-step`` (one Linear call and one neuron
    call per time step for every library)."""
    rows = []
    for n in sizes:
        x = torch.randn(T, B, n, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
        for mode in modes:
            for impl, checks, build in _on_builders(mode, backends, with_peers):
                rows.append(_on_row(impl, checks, build, mode, x, device, repeat))
                r = rows[-1]
                print(f"  {r.family:16s} {r.impl:20s} {r.shape}: fwd {_fmt(r.fwd_ms)} ms, "
                      f"f+b {_fmt(r.fwdbwd_ms)} ms {r.note}", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- output


def _fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


def print_table(rows: list[Row], file=sys.stdout) -> None:
    several = len({r.extra.get("threads") for r in rows}) > 1
    head = ("family", "impl", "T,B,N") + (("thr",) if several else ()) + ("dtype", "fwd ms", "f+b ms", "f+b ns/n-step", "bound f/f+b ms",
            "ratio f/f+b", "saved MB", "peak MB", "note")
    lines = [head]
    for r in rows:
        lines.append((
            r.family, r.impl, ",".join(map(str, r.shape)), *((str(r.extra.get("threads")),) if several else ()),
            r.dtype, _fmt(r.fwd_ms), _fmt(r.fwdbwd_ms),
            _fmt(r.extra.get("ns_per_neuron_step_fwdbwd"), "{:.2f}"),
            f"{_fmt(r.bound_fwd_ms, '{:.3f}')}/{_fmt(r.bound_fwdbwd_ms, '{:.3f}')}",
            f"{_fmt(r.ratio_fwd, '{:.1f}')}/{_fmt(r.ratio_fwdbwd, '{:.1f}')}",
            _fmt(r.saved_mb, "{:.1f}"), _fmt(r.peak_mb, "{:.1f}"), r.note,
        ))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    for k, l in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(l, widths)).rstrip(), file=file)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                    help="registry ids, aliases or kernel keys: " + " ".join(FAMILIES))
    ap.add_argument("--backends", nargs="+", default=None,
                    help="spikefuse backends (default: reference + triton on cuda, reference + cpu on cpu)")
    ap.add_argument("--shapes", nargs="+", default=None, help="T,B,N triples")
    ap.add_argument("--t-scaling", action="store_true",
                    help=f"shapes T,8,512 for T in {T_SCALING} and a time-per-step summary (linear in T?)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--bandwidth", type=float, default=None,
                    help="memory bandwidth in B/s for the bound (default: H100 HBM3 on cuda; on cpu the "
                         "copy bandwidth measured at the start of the run, at --threads)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peers", action="store_true",
                    help="also run the peers of benchmarks/peers.py (a 'not run' row for each one missing)")
    ap.add_argument("--peer-compile", action="store_true", help="include the torch.compile peers")
    ap.add_argument("--no-default", action="store_true", help="leave out the 'default' rows")
    ap.add_argument("--open-neuromorphic", action="store_true",
                    help="also run Linear(n,n)+LIF, batch 16, T=500 (sizes from --on-sizes), published and per-step")
    ap.add_argument("--on-sizes", nargs="+", type=int, default=None,
                    help="n for the Open Neuromorphic setup (default 4096 8192 16384 on cuda, 256 512 on cpu)")
    ap.add_argument("--on-T", type=int, default=500)
    ap.add_argument("--on-modes", nargs="+", default=["published", "per-step"], choices=["published", "per-step"])
    ap.add_argument("--stat", default="median", choices=["median", "min"],
                    help="statistic over the repeats (default median)")
    ap.add_argument("--threads", nargs="+", default=None, metavar="N",
                    help="torch.set_num_threads for CPU runs: one or more counts, 'all' = every CPU this "
                         "process may run on; with several, the whole run is repeated per count (the "
                         "bound's bandwidth measured at each) and a side-by-side summary follows")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--finite-checks", action="store_true",
                    help="keep spikefuse's NaN/inf scan on in the tuned rows too (the 'default' rows "
                         "always have it on)")
    return ap


def _check_families(names) -> list[str]:
    out = []
    for n in names:
        try:
            out.append(family(n).id)
        except (TypeError, ValueError) as e:
            raise SystemExit(f"--families: {e}") from None
    return out


def _family_rows(args, fams, shapes, backends, device, dtype) -> list[Row]:
    rows: list[Row] = []
    for fam in fams:
        cases = spikefuse_cases(fam, backends, torch.empty((), dtype=dtype).element_size(),
                                default=not args.no_default)
        if args.peers:
            cases += peer_cases(fam, device, compile=args.peer_compile)
        for shape in shapes:
            for case in cases:
                row = bench_case(case, shape, device, dtype, args.bandwidth, args.repeat)
                rows.append(row)
                print(f"  {row.family:16s} {row.impl:20s} {shape}: fwd {_fmt(row.fwd_ms)} ms, "
                      f"f+b {_fmt(row.fwdbwd_ms)} ms {row.note}", file=sys.stderr, flush=True)
    return rows


def add_speedups(rows: list[Row]) -> None:
    """Forward+backward speed-up of every row over the reference loop (same family and shape)."""
    ref = {(r.family, r.shape): r for r in rows if r.impl in ("reference", "spikefuse-reference") and r.fwdbwd_ms}
    for r in rows:
        base = ref.get((r.family, r.shape))
        if base and r.fwdbwd_ms and r is not base:
            r.extra["speedup_fwd_vs_reference"] = base.fwd_ms / r.fwd_ms
            r.extra["speedup_fwdbwd_vs_reference"] = base.fwdbwd_ms / r.fwdbwd_ms
            r.note = (r.note + f" x{base.fwdbwd_ms / r.fwdbwd_ms:.1f} f+b vs reference").strip()


def t_scaling_summary(rows: list[Row], file=None) -> None:
    """f+b time per step for each (family, impl) over T: flat = linear in T."""
    file = file or sys.stdout
    by = {}
    for r in rows:
        if r.fwdbwd_ms:
            by.setdefault((r.family, r.impl), []).append((r.shape[0], r.fwdbwd_ms / r.shape[0]))
    print("f+b ms per time step vs T (constant = linear in T; last/first = growth of the per-step cost)", file=file)
    for (fam, impl), pts in by.items():
        pts.sort()
        series = "  ".join(f"T={t}: {v:.3f}" for t, v in pts)
        print(f"  {fam:16s} {impl:20s} {series}  last/first {pts[-1][1] / pts[0][1]:.2f}", file=file)


def thread_counts(values) -> list[int]:
    """``--threads`` values: positive integers or ``all`` (every CPU this process may run on),
    in the order given, without repeats; ``None``: the current count. SystemExit on a bad one."""
    if not values:
        return [torch.get_num_threads()]
    out = []
    for v in values:
        if str(v).lower() == "all":
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        else:
            try:
                n = int(v)
            except ValueError:
                raise SystemExit(f"--threads: {v!r} is neither a positive integer nor 'all'") from None
            if n < 1:
                raise SystemExit(f"--threads: {n} is not a positive thread count")
        if n not in out:
            out.append(n)
    return out


def main(argv=None) -> list[Row]:
    args = _parser().parse_args(argv)
    global STAT
    STAT = min if args.stat == "min" else statistics.median
    counts = thread_counts(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    fams = _check_families(args.families)
    if args.t_scaling:
        shapes = [(t, 8, 512) for t in T_SCALING]
    elif args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    else:
        shapes = GPU_SHAPES if device.type == "cuda" else CPU_SHAPES
    backends = args.backends or (["reference", "triton"] if device.type == "cuda" else ["reference", "cpu"])
    torch.set_grad_enabled(True)
    given = args.bandwidth
    args.bandwidths = {}
    rows: list[Row] = []
    for threads in counts:
        torch.set_num_threads(threads)
        bw = given
        if bw is None:
            bw = H100_BANDWIDTH if device.type == "cuda" else measure_copy_bandwidth(device)
        args.bandwidth = args.bandwidths[threads] = bw
        args.first_touch = measure_first_touch(device)
        if len(counts) > 1:
            print(f"-- {threads} thread(s), bandwidth for the bound {bw:.3g} B/s", file=sys.stderr, flush=True)
        with finite_checks(bool(args.finite_checks)):  # the tuned rows; "default" rows turn them on
            part = _family_rows(args, fams, shapes, backends, device, dtype)
            if args.open_neuromorphic:
                sizes = args.on_sizes or ([4096, 8192, 16384] if device.type == "cuda" else [256, 512])
                part += open_neuromorphic(sizes, device, dtype, backends, args.repeat, T=args.on_T,
                                          with_peers=args.peers, modes=tuple(args.on_modes))
        add_speedups(part)
        for r in part:
            r.extra["threads"] = threads
            r.extra["bandwidth"] = bw
        rows += part
    _report(args, rows, device)
    return rows


def thread_summary(rows: list[Row], file=None) -> None:
    """A markdown table, one line per (family, impl) and one column per (threads, shape): the
    forward+backward time and its ratio to the bound at that thread count (rows of one thread
    count only: nothing)."""
    file = file or sys.stdout
    counts = sorted({r.extra.get("threads") for r in rows if r.extra.get("threads") is not None})
    if len(counts) < 2:
        return
    shapes = list(dict.fromkeys(r.shape for r in rows))
    cols = [(t, s) for t in counts for s in shapes]
    cell = {}
    for r in rows:
        cell[(r.family, r.impl), (r.extra.get("threads"), r.shape)] = r
    keys = list(dict.fromkeys((r.family, r.impl) for r in rows))

    def fmt(r):
        if r is None or r.fwdbwd_ms is None:
            return "-"
        return f"{r.fwdbwd_ms:.1f} ms" + ("" if r.ratio_fwdbwd is None else f" ({r.ratio_fwdbwd:.1f}x)")

    print("forward+backward (ratio to the bound at that thread count):", file=file)
    print("| family | impl | " + " | ".join(f"{','.join(map(str, s))}, {t} thr" for t, s in cols) + " |", file=file)
    print("| --- | --- |" + " --- |" * len(cols), file=file)
    for k in keys:
        print(f"| {k[0]} | {k[1]} | " + " | ".join(fmt(cell.get((k, c))) for c in cols) + " |", file=file)


def _report(args, rows, device) -> None:
    counts = sorted(args.bandwidths) if getattr(args, "bandwidths", None) else [torch.get_num_threads()]
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu, {'/'.join(map(str, counts))} threads")
    bws = "/".join(f"{args.bandwidths.get(t, args.bandwidth):.3g}" for t in counts) if getattr(
        args, "bandwidths", None) else f"{args.bandwidth:.3g}"
    print(f"device: {device} ({where}), dtype {args.dtype}, bandwidth for the bound {bws} B/s, "
          f"{args.stat} of {args.repeat}, finite checks {'on' if args.finite_checks else 'off'} "
          "(the 'default' rows: on)")
    fresh, mapped = getattr(args, "first_touch", (None, None))
    if fresh:
        print(f"first touch: writing a fresh large tensor {fresh / 1e9:.2f} GB/s vs {mapped / 1e9:.2f} GB/s into "
              "mapped memory (page faults; not in the bound: spikefuse's CPU kernels reuse their output buffers, "
              "other rows may not)")
    print_table(rows)
    if args.t_scaling:
        t_scaling_summary(rows)
    thread_summary(rows)
    if args.json:
        meta = {"device": str(device), "dtype": args.dtype, "bandwidth": args.bandwidth,
                "bandwidth_by_threads": {str(t): b for t, b in getattr(args, "bandwidths", {}).items()},
                "stat": args.stat, "repeat": args.repeat, "threads": torch.get_num_threads(),
                "thread_counts": counts,
                "finite_checks": bool(args.finite_checks), "torch": torch.__version__,
                "first_touch_write_bandwidth": getattr(args, "first_touch", (None, None))[0],
                "mapped_write_bandwidth": getattr(args, "first_touch", (None, None))[1],
                "argv": sys.argv[1:], "saved_bytes_per_neuron_step": _saved_table(),
                "moved_bytes_per_neuron_step": _saved_table("moved_bytes")}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))


def _saved_table(field: str = "saved_bytes"):
    """backend -> {kernel key: bytes per neuron-step} read from the registered ScanSpecs (saved
    bytes of a variant without a spec of its own: its module's SAVED_BYTES)."""
    out = {}
    for be in ("cpu", "triton"):
        for mod in sorted({m for f in families.FAMILIES.values() for b, m in f.kernels.items() if b == be}):
            try:
                table = getattr(families.load(mod), "SAVED_BYTES", {})
            except Exception:
                continue
            if field == "saved_bytes":
                out.setdefault(be, {}).update(table)
        for name, s in scan.SPECS.items():
            if name.endswith("_" + be):
                out.setdefault(be, {})[name[:-len(be) - 1]] = getattr(s, field)
    return out


if __name__ == "__main__":
    main()
