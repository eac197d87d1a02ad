"""``spikefuse bench``: forward and forward+backward time per neuron family and backend.

For every family (``lif``, ``cuba``, ``loihi_cuba``, ``loihi_alif``, ``eventprop``) the
benchmark builds the neuron module, and for ``"reference"`` plus every backend that
:func:`spikefuse.kernels.available` lists for that family, times the forward pass and the
forward + backward pass on a random input ``(T, batch, features)`` on the current device
(median of ``repeat`` runs after one warm-up). A backend that cannot run the case on this
device (e.g. Triton on the CPU) is listed with the reason instead of a time.

Default shapes are small on the CPU (``T=32, batch=16, features=256``) and larger on CUDA
(``T=128, batch=64, features=4096``). Timings are printed, never asserted.

Example::

    >>> rows = run(T=4, batch=2, features=8, repeat=1, families="lif", device="cpu",
    ...            printer=None)
    >>> rows[0]["family"], rows[0]["backend"]
    ('lif', 'reference')
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Callable, Optional

import torch

from . import kernels

__all__ = ["FAMILIES", "run", "time_module"]


def _lif(backend, n):
    from .neuron import LIF

    return LIF(tau=2.0, backend=backend), 1.5


def _cuba(backend, n):
    from .neuron import CubaLIF

    return CubaLIF(threshold=1.0, backend=backend), 3.0


def _loihi_cuba(backend, n):
    from .neuron.loihi import cuba

    m = cuba.Neuron(threshold=1.0, current_decay=0.25, voltage_decay=0.03)
    m.backend = backend
    return m, 1.0


def _loihi_alif(backend, n):
    from .neuron.loihi import alif

    m = alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=0.25, voltage_decay=0.03,
                    threshold_decay=0.1, refractory_decay=0.1)
    m.backend = backend
    return m, 1.0


def _eventprop(backend, n):
    from .neuron import EventPropLIF

    return EventPropLIF(n, n, threshold=0.5), 1.0


#: family -> factory(backend, features) -> (module taking (T, B, features), input scale)
FAMILIES: dict[str, Callable] = {
    "lif": _lif,
    "cuba": _cuba,
    "loihi_cuba": _loihi_cuba,
    "loihi_alif": _loihi_alif,
    "eventprop": _eventprop,
}


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


def run(T: Optional[int] = None, batch: Optional[int] = None, features: Optional[int] = None,
        repeat: int = 5, device: str = "auto", families=None, json_path: Optional[str] = None,
        printer: Optional[Callable[[str], None]] = print) -> list[dict]:
    """Benchmark ``families`` (None = all; a list or a comma-separated string) and return
    one row per (family, backend): ``fwd_ms``, ``fwd_bwd_ms``, ``speedup_fwd_bwd`` (vs the
    reference loop) or ``skipped`` (why the backend cannot run here)."""
    for name, v in (("T", T), ("batch", batch), ("features", features), ("repeat", repeat)):
        _check_pos(name, v)
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: expected one of ['auto', 'cpu', 'cuda'], got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but no CUDA device is available")
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    small = dev.type == "cpu"
    T = T or (32 if small else 128)
    batch = batch or (16 if small else 64)
    features = features or (256 if small else 4096)
    if families is None:
        fams = list(FAMILIES)
    else:
        fams = [f.strip() for f in families.split(",")] if isinstance(families, str) else list(families)
        bad = [f for f in fams if f not in FAMILIES]
        if bad:
            raise ValueError(f"families: unknown {bad}; expected a subset of {list(FAMILIES)}")

    gen = torch.Generator().manual_seed(0)
    rows = []
    for fam in fams:
        backends = ["reference"] + [b for b in kernels.available(fam) if b != "reference"]
        ref_time = None
        for backend in backends:
            row = {"family": fam, "backend": backend, "device": str(dev), "T": T, "batch": batch,
                   "features": features}
            try:
                module, scale = FAMILIES[fam](backend, features)
                module = module.to(dev)
                x = (torch.rand(T, batch, features, generator=gen) * scale).to(dev)
                if backend != "reference":
                    why = _why_not(fam, backend, x)
                    if why is not None:
                        raise ValueError(why)
                fwd, fwd_bwd = time_module(module, x, repeat)
                row.update(fwd_ms=1e3 * fwd, fwd_bwd_ms=1e3 * fwd_bwd)
                if backend == "reference":
                    ref_time = fwd_bwd
                row["speedup_fwd_bwd"] = (ref_time / fwd_bwd) if ref_time else None
            except Exception as e:  # report, keep going
                row["skipped"] = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            rows.append(row)

    if printer is not None:
        printer(f"spikefuse bench on {dev} (T={T}, batch={batch}, features={features}, "
                f"median of {repeat})")
        printer(f"{'family':<12} {'backend':<10} {'forward ms':>11} {'fwd+bwd ms':>11} {'speedup':>8}")
        for r in rows:
            if "skipped" in r:
                printer(f"{r['family']:<12} {r['backend']:<10} {'-':>11} {'-':>11} {'-':>8}  ({r['skipped']})")
            else:
                sp = f"{r['speedup_fwd_bwd']:.2f}x" if r.get("speedup_fwd_bwd") else "-"
                printer(f"{r['family']:<12} {r['backend']:<10} {r['fwd_ms']:>11.3f} "
                        f"{r['fwd_bwd_ms']:>11.3f} {sp:>8}")
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
