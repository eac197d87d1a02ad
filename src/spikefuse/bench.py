"""``spikefuse bench``: forward and forward+backward time per neuron family and backend.

For every family of :mod:`spikefuse.families` that has a bench spec (``lif``, ``if``, ``plif``,
``cuba``, ``cuba-refractory``, ``loihi.cuba``, ``loihi.alif``, the Loihi resonators,
``loihi.sigma_delta``, ``eventprop``) the benchmark builds the neuron module and times, on a
random input ``(T, batch, features)`` on the current device (median of ``repeat`` runs after
one warm-up), the forward pass and the forward + backward pass:

- ``default``: what a user gets with no settings: the module's default backend (``auto``)
  with the NaN/inf input checks on;
- ``reference`` and every backend that :func:`spikefuse.kernels.available` lists for the
  family's kernel key: the tuned path, finite checks off.

A backend that cannot run the case on this device (e.g. Triton on the CPU) is listed with the
reason instead of a time. ``speedup_fwd_bwd`` is relative to the ``reference`` row.

Default shapes are small on the CPU (``T=32, batch=16, features=256``) and larger on CUDA
(``T=128, batch=64, features=4096``). Timings are printed, never asserted.

Example::

    >>> rows = run(T=4, batch=2, features=8, repeat=1, families="lif", device="cpu",
    ...            printer=None)
    >>> [(r["family"], r["backend"], r["finite_checks"]) for r in rows][:2]
    [('lif', 'default', True), ('lif', 'reference', False)]
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Callable, Optional

import torch

from . import families as _families
from . import kernels
from ._validate import finite_checks

__all__ = ["FAMILIES", "run", "time_module"]


def _factory(fam):
    make = _families.load(fam.bench.module)

    def build(backend, n):
        return make(backend, n), fam.bench.module_scale

    return build


#: family id -> factory(backend, features) -> (module taking (T, B, features), input scale);
#: read from :data:`spikefuse.families.FAMILIES`
FAMILIES: dict[str, Callable] = {f.id: _factory(f) for f in _families.FAMILIES.values() if f.bench}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_module(module, x: torch.Tensor, repeat: int = 5) -> tuple[float, float]:
    """Median seconds of ``module(x)`` and of ``module(x)`` + backward of its sum."""
    device = x.device

    def reset():
        fn = getattr(module, "reset", None)
        if callable(fn):
            fn()

    def fwd():
        reset()
        with torch.no_grad():
            module(x)

    def fwd_bwd():
        reset()
        xg = x.detach().requires_grad_()
        out = module(xg)
        out = out[0] if isinstance(out, tuple) else out
        (out.float() * torch.linspace(0.5, 1.5, out.shape[-1], device=device)).sum().backward()

    results = []
    for fn in (fwd, fwd_bwd):
        fn()  # warm-up (compilation, caches)
        _sync(device)
        ts = []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            ts.append(time.perf_counter() - t0)
        results.append(statistics.median(ts))
    return results[0], results[1]


def _check_pos(name, v):
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")


def _device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected one of ['auto', 'cpu', 'cuda'], got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but no CUDA device is available")
    return torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def _family_ids(families) -> list[str]:
    """Registry ids of ``families`` (None = every family with a bench spec); aliases and
    kernel keys (``loihi-cuba``, ``loihi_cuba``) are accepted."""
    if families is None:
        return list(FAMILIES)
    names = [f.strip() for f in families.split(",")] if isinstance(families, str) else list(families)
    known = {}
    for f in _families.FAMILIES.values():
        if f.id in FAMILIES:
            for n in (f.id, *f.aliases, f.kernel):
                known.setdefault(n, f.id)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"families: unknown {bad}; expected a subset of {list(FAMILIES)}")
    return [known[n] for n in names]


def _bench_row(fam: str, backend: str, dev, shape, gen, repeat: int) -> dict:
    """One row: ``backend="default"`` is the module as built (backend ``None``), checks on."""
    T, batch, features = shape
    default = backend == "default"
    row = {"family": fam, "backend": backend, "device": str(dev), "T": T, "batch": batch,
           "features": features, "finite_checks": default}
    try:
        module, scale = FAMILIES[fam](None if default else backend, features)
        module = module.to(dev)
        x = (torch.rand(T, batch, features, generator=gen) * scale).to(dev)
        why = None if default or backend == "reference" else _why_not(fam, backend, x)
        if why is not None:
            raise ValueError(why)
        with finite_checks(default):
            fwd, fwd_bwd = time_module(module, x, repeat)
        row.update(fwd_ms=1e3 * fwd, fwd_bwd_ms=1e3 * fwd_bwd)
    except Exception as e:  # report, keep going
        row["skipped"] = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    return row


def _print_rows(rows, printer, dev, shape, repeat) -> None:
    T, batch, features = shape
    printer(f"spikefuse bench on {dev} (T={T}, batch={batch}, features={features}, median of {repeat}, "
            f"{torch.get_num_threads()} threads; 'default' = backend auto with finite checks on, "
            "the other rows with checks off)")
    printer(f"{'family':<18} {'backend':<10} {'forward ms':>11} {'fwd+bwd ms':>11} {'speedup':>8}")
    for r in rows:
        if "skipped" in r:
            printer(f"{r['family']:<18} {r['backend']:<10} {'-':>11} {'-':>11} {'-':>8}  ({r['skipped']})")
        else:
            sp = f"{r['speedup_fwd_bwd']:.2f}x" if r.get("speedup_fwd_bwd") else "-"
            printer(f"{r['family']:<18} {r['backend']:<10} {r['fwd_ms']:>11.3f} "
                    f"{r['fwd_bwd_ms']:>11.3f} {sp:>8}")


def run(T: Optional[int] = None, batch: Optional[int] = None, features: Optional[int] = None,
        repeat: int = 5, device: str = "auto", families=None, json_path: Optional[str] = None,
        printer: Optional[Callable[[str], None]] = print) -> list[dict]:
    """Benchmark ``families`` (None = all; a list or a comma-separated string of registry
    ids) and return one row per (family, backend): ``fwd_ms``, ``fwd_bwd_ms``,
    ``finite_checks``, ``speedup_fwd_bwd`` (vs the reference loop) or ``skipped`` (why the
    backend cannot run here)."""
    for name, v in (("T", T), ("batch", batch), ("features", features), ("repeat", repeat)):
        _check_pos(name, v)
    dev = _device(device)
    small = dev.type == "cpu"
    shape = (T or (32 if small else 128), batch or (16 if small else 64), features or (256 if small else 4096))
    fams = _family_ids(families)

    gen = torch.Generator().manual_seed(0)
    rows = []
    for fam in fams:
        key = _families.get(fam).kernel
        backends = ["default", "reference"] + [b for b in (kernels.available(key) if key else []) if b != "reference"]
        fam_rows = [_bench_row(fam, b, dev, shape, gen, repeat) for b in backends]
        ref_time = next((r.get("fwd_bwd_ms") for r in fam_rows if r["backend"] == "reference"), None)
        for r in fam_rows:
            if "fwd_bwd_ms" in r:
                r["speedup_fwd_bwd"] = (ref_time / r["fwd_bwd_ms"]) if ref_time else None
        rows += fam_rows

    if printer is not None:
        _print_rows(rows, printer, dev, shape, repeat)
    if json_path is not None:
        with open(json_path, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


def _why_not(family: str, backend: str, x: torch.Tensor) -> Optional[str]:
    """Cheap device check before building a kernel call (the module raises the exact reason)."""
    if backend == "triton" and x.device.type != "cuda":
        import os

        if os.environ.get("TRITON_INTERPRET") != "1":
            return "triton needs a CUDA device (or TRITON_INTERPRET=1)"
    return None
