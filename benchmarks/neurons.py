"""Neuron scan benchmarks: spikefuse backends against each other, the memory-bandwidth bound
and (when installed) peer libraries. See benchmarks/README.md.

    python benchmarks/neurons.py                       # CUDA if available, else --device cpu
    python benchmarks/neurons.py --device cpu --json out.json
    python benchmarks/neurons.py --families lif --shapes 100,32,4096 500,16,4096 --peers
    python benchmarks/neurons.py --open-neuromorphic --on-sizes 4096 8192 16384

For each family, backend and shape it reports forward time (inference, no graph) and
forward+backward time (a surrogate-gradient training step of the neuron alone), peak memory
(CUDA: ``max_memory_allocated`` above the inputs; everywhere: bytes saved for backward, counted
with ``torch.autograd.graph.saved_tensors_hooks``), the HBM roofline bound of our fused kernel
(bytes it must move / bandwidth) and the measured/bound ratio.
"""
from __future__ import annotations

import argparse
import json
import math
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

from spikefuse import finite_checks, kernels  # noqa: E402

H100_BANDWIDTH = 3.35e12  # B/s, H100 SXM HBM3

GPU_SHAPES = [(100, 32, 4096), (500, 16, 4096), (100, 256, 1024), (1000, 8, 512)]
RESONATOR_FAMILIES = ("loihi_rf", "loihi_rf_iz", "loihi_adrf", "loihi_adrf_iz")
FAMILIES = ("lif", "cuba", "cuba_refractory", "loihi_cuba", "loihi_alif") + RESONATOR_FAMILIES + ("loihi_sigma_delta",)
CPU_SHAPES = [(100, 32, 1024), (200, 8, 512)]


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
    e.g. the input, which is alive anyway)."""
    seen = {}
    skip = {(t.untyped_storage().data_ptr(), t.device) for t in exclude}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device)
            if key in skip:
                return t
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except Exception:  # pragma: no cover - sparse etc.
            pass
        return t

    box = {"bytes": 0}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield box
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


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One runnable neuron scan: ``run(x, grad)`` returns a tensor to reduce into a loss."""

    family: str
    impl: str  # backend name or peer name
    run: Callable[[torch.Tensor], torch.Tensor]
    # bytes our fused kernel moves per neuron-step: forward, forward+backward (None for peers)
    bytes_fwd: Optional[float] = None
    bytes_fwdbwd: Optional[float] = None
    prepare: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


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


def _saved_bytes(backend: str, family: str) -> int:
    try:
        if backend == "triton":
            from spikefuse.kernels import triton as mod
        else:
            from spikefuse.kernels import cpu as mod
        return mod.SAVED_BYTES.get(family, 0)
    except Exception:
        return 0


def spikefuse_cases(family: str, backends, io_bytes: int) -> list[Case]:
    """Cases for our own backends, with the traffic model of the fused kernel (bytes per
    neuron-step that must cross HBM). Forward (inference): read x, write spikes and any state
    traces the family returns. Training adds the bytes saved for backward (written in forward,
    read in backward), and backward reads the output gradients and writes the input gradient."""
    cases = []
    for be in backends:
        if be != "reference" and be not in kernels.available(family.replace("_refractory", "")):
            continue
        sb = _saved_bytes(be, family)
        if family == "lif":
            from spikefuse.functional.lif import LIFParams, lif_multistep

            p = LIFParams(tau=2.0, v_threshold=1.0, v_reset=0.0)

            def run(x, be=be, p=p):
                return lif_multistep(x, p, backend=be)[0]

            # fwd: x, S; train: + H (4 B) written and read; bwd: gS in, gX out
            fwd = 2 * io_bytes
            cases.append(Case("lif", be, run, fwd, fwd + 2 * 4 + 2 * io_bytes))
        elif family in ("cuba", "cuba_refractory"):
            from spikefuse.functional.cuba import CubaParams, cuba_lif_integration, cuba_refractory_lif_integration

            p = CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6, refractory_time=2e-6)
            f = cuba_refractory_lif_integration if family == "cuba_refractory" else cuba_lif_integration

            def run(x, be=be, p=p, f=f):
                z, v, i, _ = f(x, p, dt=1e-6, backend=be)
                return z + 0.01 * v

            # fwd: x, z, membrane + current (fp32 outputs); train: + mask (refractory);
            # bwd: reads membrane, current, gz, g_membrane; writes gx
            fwd = 2 * io_bytes + 8
            extra = 1 if family == "cuba_refractory" else 0
            cases.append(Case(family, be, run, fwd, fwd + 2 * extra + 8 + io_bytes + 4 + io_bytes))
        elif family in ("loihi_cuba", "loihi_alif"):
            from spikefuse.functional import loihi as L

            if family == "loihi_cuba":
                p = L.CubaParams(1.0, 2048.0, 1024.0)
                f = L.cuba_multistep
            else:
                p = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0)
                f = L.alif_multistep

            def run(x, be=be, p=p, f=f):
                return f(x, p, backend=be)[0]

            # fwd: x, s, current + voltage traces (fp32); ALIF trains with theta+r (4 B) saved;
            # bwd: reads voltage (+ theta+r), gs; writes gx
            fwd = 2 * io_bytes + 8
            lim = 4 if family == "loihi_alif" else 0
            cases.append(Case(family, be, run, fwd, fwd + 2 * lim + 4 + 2 * io_bytes))
        elif family in RESONATOR_FAMILIES:
            from spikefuse.functional import resonator as R

            model = family[len("loihi_"):]
            if model.startswith("adrf"):  # period 8, decay 0.1; threshold/refractory decays 0.25/0.5
                p = R.AdRFParams(2607.0, 2607.0, 1024.0, 2048.0, threshold=0.5, threshold_step=0.25)
            else:
                p = R.RFParams(2607.0, 2607.0, threshold=0.5)
            f = getattr(R, f"{model}_multistep")

            def run(x, be=be, p=p, f=f):
                return f((x, x), p, backend=be)[0]  # the same tensor as real and imaginary input

            # fwd: xr, xi, s; train: + re/im (8 B) and, adaptive, theta+r (4 B) written and read;
            # bwd: reads gs, writes gxr, gxi
            fwd = 3 * io_bytes
            saved = 12 if model.startswith("adrf") else 8
            cases.append(Case(family, be, run, fwd, fwd + 2 * saved + 3 * io_bytes))
        elif family == "loihi_sigma_delta":
            from spikefuse.functional.sigma_delta import SigmaDeltaParams, sigma_delta_multistep

            p = SigmaDeltaParams(threshold=0.09375, activation=torch.relu)

            def run(x, be=be, p=p):
                return sigma_delta_multistep(x, p, backend=be)[0]

            # fwd: x, y; train: + the 1-byte ReLU mask written and read; bwd: reads gy, writes gx
            fwd = 2 * io_bytes
            cases.append(Case(family, be, run, fwd, fwd + 2 * 1 + 2 * io_bytes))
    return cases


def peer_cases(family: str, device) -> list[Case]:
    """Peers, import-guarded; LIF with tau=2, V_th=1, hard reset to 0 (their closest setting)."""
    if family != "lif":
        return []
    cases = []
    try:  # SpikingJelly activation_based multi-step LIF
        from spikingjelly.activation_based import neuron as sj_neuron, surrogate as sj_sur

        for be in ("torch", "cupy", "triton"):
            try:
                node = sj_neuron.LIFNode(tau=2.0, surrogate_function=sj_sur.ATan(), step_mode="m",
                                         backend=be).to(device)
            except Exception:
                continue

            def run(x, node=node):
                node.reset()
                return node(x)

            cases.append(Case("lif", f"spikingjelly-{be}", run))
    except ImportError:
        pass
    try:  # snnTorch Leaky, a Python loop over time
        import snntorch as snn

        beta = 0.5  # V <- beta V + (1 - beta) X   ~ tau = 2 with decay_input
        lif = snn.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero").to(device)

        def run(x, lif=lif):
            mem = torch.zeros_like(x[0])
            out = []
            for t in range(x.shape[0]):
                spk, mem = lif(x[t] * (1 - beta), mem)
                out.append(spk)
            return torch.stack(out)

        cases.append(Case("lif", "snntorch", run))
    except ImportError:
        pass
    try:  # Norse LIF (Python loop inside), eager and torch.compile
        import norse.torch as norse

        def make(compiled):
            mod = norse.LIF(p=norse.LIFParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(1.0))).to(device)
            f = (lambda x: mod(x)[0])
            return torch.compile(f) if compiled else f

        cases.append(Case("lif", "norse", make(False)))
        cases.append(Case("lif", "norse+compile", make(True)))
    except ImportError:
        pass
    return cases


def bench_case(case: Case, shape, device, dtype, bandwidth: float, repeat: int) -> Row:
    T, B, N = shape
    row = Row(case.family, case.impl, tuple(shape), str(dtype).replace("torch.", ""))
    g = torch.Generator(device="cpu").manual_seed(0)
    x = (torch.randn(T, B, N, generator=g) * 0.8 + 0.6).to(device=device, dtype=dtype)
    if case.family.startswith("cuba"):
        x = x * 0.5
    try:
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
    except Exception as e:  # a backend that cannot run this case
        row.note = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        return row
    if case.bytes_fwd is not None:
        n = T * B * N
        row.bound_fwd_ms = 1e3 * n * case.bytes_fwd / bandwidth
        row.bound_fwdbwd_ms = 1e3 * n * case.bytes_fwdbwd / bandwidth
        row.ratio_fwd = row.fwd_ms / row.bound_fwd_ms
        row.ratio_fwdbwd = row.fwdbwd_ms / row.bound_fwdbwd_ms
    return row


# --------------------------------------------------------------------------- Open Neuromorphic setup


def open_neuromorphic(sizes, device, dtype, backends, repeat, T=500, B=16) -> list[Row]:
    """Linear(n, n) followed by a LIF over T=500 steps, batch 16 (time folded into batch for
    the Linear), forward+backward; the Open Neuromorphic SNN library benchmark setup."""
    from spikefuse.functional.lif import LIFParams, lif_multistep

    rows = []
    for n in sizes:
        lin = torch.nn.Linear(n, n).to(device=device, dtype=dtype)
        x = torch.randn(T, B, n, device=device, dtype=dtype)
        for be in backends:
            row = Row("open-neuromorphic", be, (T, B, n), str(dtype).replace("torch.", ""))

            def run():
                y = lin(x.reshape(T * B, n)).reshape(T, B, n)
                s, _ = lif_multistep(y, LIFParams(tau=2.0), backend=be)
                return s

            def step():
                run().float().sum().backward()
                lin.zero_grad(set_to_none=True)

            try:
                with torch.no_grad():
                    row.fwd_ms = 1e3 * _time(run, device, repeat)
                row.fwdbwd_ms = 1e3 * _time(step, device, repeat)
                peak = _peak_cuda(step, device)
                row.peak_mb = None if peak is None else peak / 2**20
            except Exception as e:
                row.note = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- output


def _fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


def print_table(rows: list[Row], file=sys.stdout) -> None:
    head = ("family", "impl", "T,B,N", "dtype", "fwd ms", "f+b ms", "bound f/f+b ms",
            "ratio f/f+b", "saved MB", "peak MB", "note")
    lines = [head]
    for r in rows:
        lines.append((
            r.family, r.impl, ",".join(map(str, r.shape)), r.dtype, _fmt(r.fwd_ms), _fmt(r.fwdbwd_ms),
            f"{_fmt(r.bound_fwd_ms, '{:.3f}')}/{_fmt(r.bound_fwdbwd_ms, '{:.3f}')}",
            f"{_fmt(r.ratio_fwd, '{:.1f}')}/{_fmt(r.ratio_fwdbwd, '{:.1f}')}",
            _fmt(r.saved_mb, "{:.1f}"), _fmt(r.peak_mb, "{:.1f}"), r.note,
        ))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    for k, l in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(l, widths)).rstrip(), file=file)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)


def main(argv=None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY",
                    help=" ".join(FAMILIES))
    ap.add_argument("--backends", nargs="+", default=None,
                    help="spikefuse backends (default: reference + triton on cuda, reference + cpu on cpu)")
    ap.add_argument("--shapes", nargs="+", default=None, help="T,B,N triples")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--bandwidth", type=float, default=H100_BANDWIDTH, help="memory bandwidth in B/s")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peers", action="store_true", help="also run installed peers (SpikingJelly, snnTorch, Norse)")
    ap.add_argument("--open-neuromorphic", action="store_true",
                    help="also run Linear(n,n)+LIF, batch 16, T=500 (sizes from --on-sizes)")
    ap.add_argument("--on-sizes", nargs="+", type=int, default=None,
                    help="n for the Open Neuromorphic setup (default 4096 8192 16384 on cuda, 256 512 on cpu)")
    ap.add_argument("--on-T", type=int, default=500)
    ap.add_argument("--stat", default="median", choices=["median", "min"],
                    help="statistic over the repeats (min is steadier on a shared machine)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for CPU runs")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--finite-checks", action="store_true",
                    help="keep spikefuse's NaN/inf scan of tensor arguments on while timing (default off: "
                         "it reads every input element and syncs the GPU once per call, the same cost "
                         "for every backend)")
    args = ap.parse_args(argv)

    global STAT
    STAT = min if args.stat == "min" else statistics.median
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    shapes = ([tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes
              else (GPU_SHAPES if device.type == "cuda" else CPU_SHAPES))
    backends = args.backends or (["reference", "triton"] if device.type == "cuda" else ["reference", "cpu"])
    torch.set_grad_enabled(True)

    rows: list[Row] = []
    with finite_checks(bool(args.finite_checks)):  # every timed call runs inside
        for fam in args.families:
            cases = spikefuse_cases(fam, backends, torch.empty((), dtype=dtype).element_size())
            if args.peers:
                cases += peer_cases(fam, device)
            for shape in shapes:
                for case in cases:
                    row = bench_case(case, shape, device, dtype, args.bandwidth, args.repeat)
                    rows.append(row)
                    print(f"  {row.family:16s} {row.impl:20s} {shape}: fwd {_fmt(row.fwd_ms)} ms, "
                          f"f+b {_fmt(row.fwdbwd_ms)} ms {row.note}", file=sys.stderr, flush=True)
        if args.open_neuromorphic:
            sizes = args.on_sizes or ([4096, 8192, 16384] if device.type == "cuda" else [256, 512])
            rows += open_neuromorphic(sizes, device, dtype, backends, args.repeat, T=args.on_T)

    # speedups over the reference loop, per family and shape
    ref = {(r.family, r.shape): r for r in rows if r.impl == "reference" and r.fwdbwd_ms}
    for r in rows:
        base = ref.get((r.family, r.shape))
        if base and r.fwdbwd_ms and r is not base:
            r.extra["speedup_fwd_vs_reference"] = base.fwd_ms / r.fwd_ms
            r.extra["speedup_fwdbwd_vs_reference"] = base.fwdbwd_ms / r.fwdbwd_ms
            r.note = (r.note + f" x{base.fwdbwd_ms / r.fwdbwd_ms:.1f} f+b vs reference").strip()

    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu, '}"
          f"{'' if device.type == 'cuda' else str(torch.get_num_threads()) + ' threads'}), dtype {args.dtype}, "
          f"bandwidth for the bound {args.bandwidth:.3g} B/s, {args.stat} of {args.repeat}, "
          f"finite checks {'on' if args.finite_checks else 'off'}")
    print_table(rows)
    if args.json:
        meta = {"device": str(device), "dtype": args.dtype, "bandwidth": args.bandwidth,
                "stat": args.stat, "threads": torch.get_num_threads(), "finite_checks": bool(args.finite_checks),
                "torch": torch.__version__, "saved_bytes_per_neuron_step": _saved_table()}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    return rows


def _saved_table():
    out = {}
    for be in ("cpu", "triton"):
        try:
            mod = __import__(f"spikefuse.kernels.{be}", fromlist=["SAVED_BYTES"])
            out[be] = dict(mod.SAVED_BYTES)
        except Exception:
            pass
    return out


if __name__ == "__main__":
    main()
