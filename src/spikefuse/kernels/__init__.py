"""Backend registry and dispatch for multi-step (fused) implementations.

Every functional multi-step entry point takes ``backend="auto" | "reference" | "triton" | "cpu"``
and asks :func:`resolve` for an implementation (through :mod:`spikefuse.functional._dispatch`,
the only caller):

    impl = kernels.resolve("lif", backend, x_seq, **options)
    if impl is not None:
        outputs, final_state, traces = impl(x_seq, params, state, return_traces, **extra)
    ... else the reference loop ...

Kernels are leaves: they take and return raw tensors (tuples in the family's State / Traces
field order) and import only :mod:`spikefuse._core`, :mod:`spikefuse.fixed_point`,
:mod:`spikefuse.surrogate` and :mod:`spikefuse.kernels._common`, never functional/; neither
backend imports the other.

A backend module registers ``(family, backend) -> Kernel(fn, supports)``; ``supports(x_seq,
**options)`` returns ``None`` when it can run the case, or a string saying why not.

- ``"reference"``: always the plain-torch loop of ``step`` (resolve returns None).
- ``"triton"`` / ``"cpu"``: that backend, or a ``ValueError`` saying why it cannot run the case.
- ``"auto"``: the first supporting backend in :data:`AUTO_ORDER` for the input's device, else the
  reference loop.

The global default backend (used where a call passes ``backend=None``) is set with
:func:`set_backend` or the context manager :func:`use_backend`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch

BACKENDS = ("auto", "reference", "triton", "cpu")

#: order tried by "auto", per device type
AUTO_ORDER = {"cuda": ("triton",), "cpu": ("cpu",)}


@dataclass(frozen=True)
class Kernel:
    fn: Callable
    supports: Callable[..., Optional[str]]


_REGISTRY: dict[tuple[str, str], Kernel] = {}
_default_backend = "auto"
_loaded = False
_cpu_loaded = False


def register(family: str, backend: str, fn: Callable, supports: Callable[..., Optional[str]] | None = None):
    """Register ``fn`` as the ``backend`` implementation of ``family``."""
    if backend not in BACKENDS or backend in ("auto", "reference"):
        raise ValueError(f"backend: expected 'triton' or 'cpu', got {backend!r}")
    _REGISTRY[(family, backend)] = Kernel(fn, supports or (lambda *a, **k: None))


def _load_backends() -> None:
    """Import the backend modules that :mod:`spikefuse.families` lists, once (they register
    themselves)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    load_cpu()
    from ..families import kernel_modules

    for mod in kernel_modules():
        if mod == "spikefuse.kernels.cpu":
            continue
        try:
            __import__(mod)
        except ImportError:  # optional backend not installed (e.g. triton)
            pass


def load_backends() -> None:
    """Import every backend module now (see :func:`_load_backends`)."""
    _load_backends()


def gpu_present() -> bool:
    """Whether a CUDA device is visible (cheap: no context is created)."""
    try:
        return torch.cuda.is_available()
    except Exception:  # a broken driver install: treat as no GPU
        return False


def load_cpu() -> None:
    """Import the CPU backend (cheap: plain torch). functional/ does it when imported, so that a
    CPU ``"auto"`` / ``"cpu"`` resolve inside torch.compile imports nothing (an import is a graph
    break); importing triton is slow and waits for the first call that needs it."""
    global _cpu_loaded
    if _cpu_loaded:
        return
    _cpu_loaded = True
    __import__("spikefuse.kernels.cpu")


def _ensure_loaded(backend: str, device_type: str) -> None:
    if _loaded:
        return
    if backend == "cpu" or (backend == "auto" and set(AUTO_ORDER.get(device_type, ())) <= {"cpu"}):
        load_cpu()
        return
    _load_backends()


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def get_backend() -> str:
    return _default_backend


def set_backend(backend: str) -> None:
    """Set the global default backend used when a call passes ``backend=None``."""
    global _default_backend
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    _default_backend = backend


@contextlib.contextmanager
def use_backend(backend: str):
    """Temporarily change the global default backend."""
    old = get_backend()
    set_backend(backend)
    try:
        yield
    finally:
        set_backend(old)


def available(family: str) -> list[str]:
    """Backends registered for ``family`` (besides "reference")."""
    _load_backends()
    return [b for (f, b) in _REGISTRY if f == family]


def resolve(family: str, backend: str | None, x: torch.Tensor, **options) -> Optional[Callable]:
    """Return the kernel function to use, or None for the reference loop."""
    if backend is None:
        backend = _default_backend
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "reference":
        return None
    _ensure_loaded(backend, x.device.type)
    if backend == "auto":
        for b in AUTO_ORDER.get(x.device.type, ()):
            k = _REGISTRY.get((family, b))
            if k is not None and k.supports(x, **options) is None:
                return k.fn
        return None
    k = _REGISTRY.get((family, backend))
    if k is None:
        hint = " (is triton installed? pip install -e \".[triton]\" from the spikefuse checkout)" if backend == "triton" else ""
        raise ValueError(f"backend: no {backend!r} implementation of {family!r}{hint}")
    why = k.supports(x, **options)
    if why is not None:
        raise ValueError(f"backend: {backend!r} cannot run this {family!r} case: {why}")
    return k.fn
