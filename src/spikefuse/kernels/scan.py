"""One autograd/launch glue for the fused scans: :class:`ScanSpec` + :class:`ScanFunction`.

A fused kernel is a forward scan and a hand-written reverse scan over raw tensors. Its
:class:`ScanSpec` states the facts about it (names of the inputs, states, params, outputs and
saved traces; bytes saved for backward and bytes moved per neuron-step) and gives three raw
functions:

- ``forward(tensors, f, i) -> list[Tensor | None]``: the outputs;
- ``save(tensors, outputs, f, i, needs) -> list[Tensor | None]``: what backward keeps;
- ``backward(saved, grads, f, i, needs) -> list[Tensor | None]``: one gradient per input;
- ``fake(tensors, f, i)`` / ``fake_backward(saved, grads, f, i, needs)``: output shapes and dtypes
  (torch.compile traces with these, without running the scan).

``tensors`` are the op's tensor inputs in ``spec.inputs`` order (None where absent), ``f`` its
float and ``i`` its int configuration (numbers kept as Python floats: a Python scalar and a 0-d
tensor round differently in some ops).

Bytes per neuron-step: ``saved_bytes`` are what the forward keeps for backward beyond the
caller's tensors; ``moved_bytes`` what the training forward reads and writes with fp32 I/O
(inputs, outputs, and the saved buffers it writes). A spec is named ``<kernel key>_<backend>``
(:func:`find`).

:class:`ScanFunction` registers all specs behind two ``torch.library`` custom ops,
``spikefuse::scan_fwd`` and ``spikefuse::scan_bwd`` (``custom_op`` + ``register_fake`` +
``register_autograd``, the arrangement SpikingJelly uses), so ``torch.compile(fullgraph=True)``
sees one opaque node per scan in forward and one in backward, and eager calls go through the same
path. Absent tensors cross the op boundary as empty tensors. The backward op is first-order only:
differentiating it raises (as ``once_differentiable`` did).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["ScanSpec", "ScanFunction", "find", "register_spec", "spec", "SPECS", "through_op"]

#: every registered spec, by name
SPECS: dict[str, "ScanSpec"] = {}


@dataclass(frozen=True)
class ScanSpec:
    """The facts about one fused scan (see the module docstring)."""

    name: str
    inputs: tuple[str, ...]
    states: tuple[str, ...]
    params: tuple[str, ...]
    outputs: tuple[str, ...]
    saved: tuple[str, ...]
    saved_bytes: int
    moved_bytes: int
    forward: Callable
    save: Callable
    backward: Callable
    fake: Callable
    fake_backward: Callable


def register_spec(s: ScanSpec) -> ScanSpec:
    SPECS[s.name] = s
    return s


def spec(name: str) -> ScanSpec:
    return SPECS[name]


def find(backend: str, kernel: str) -> Optional[ScanSpec]:
    """The spec of registry kernel key ``kernel`` (a family variant: ``"cuba_refractory"``) on
    ``backend``, registered as ``f"{kernel}_{backend}"``; None if that backend module (imported
    first by the caller) registered none."""
    return SPECS.get(f"{kernel}_{backend}")


def _absent(device) -> Tensor:
    return torch.empty(0, device=device)


def _none(ts: Sequence[Tensor]) -> list:
    """Empty tensors mark absent entries at the op boundary."""
    return [None if t.numel() == 0 else t for t in ts]


def _fill(ts: Sequence[Optional[Tensor]], device) -> list[Tensor]:
    return [_absent(device) if t is None else t for t in ts]


def _device(ts):
    for t in ts:
        if t is not None:
            return t.device
    return torch.device("cpu")


@torch.library.custom_op("spikefuse::scan_fwd", mutates_args=())
def scan_fwd(kernel: str, tensors: list[Tensor], f: list[float], i: list[int]) -> list[Tensor]:
    """Forward scan of ``kernel`` (a registered :class:`ScanSpec`)."""
    ts = _none(tensors)
    with torch.no_grad():
        outs = SPECS[kernel].forward(ts, list(f), list(i))
    return _fill(outs, _device(ts))


@scan_fwd.register_fake
def _scan_fwd_fake(kernel, tensors, f, i):
    ts = _none(tensors)
    return _fill(SPECS[kernel].fake(ts, list(f), list(i)), _device(ts))


@torch.library.custom_op("spikefuse::scan_bwd", mutates_args=())
def scan_bwd(kernel: str, saved: list[Tensor], grads: list[Tensor], f: list[float], i: list[int],
             needs: list[bool]) -> list[Tensor]:
    """Reverse scan of ``kernel``: one gradient per forward input (empty where not needed)."""
    sv, gs = _none(saved), _none(grads)
    with torch.no_grad():
        out = SPECS[kernel].backward(sv, gs, list(f), list(i), list(needs))
    return _fill(out, _device(sv))


@scan_bwd.register_fake
def _scan_bwd_fake(kernel, saved, grads, f, i, needs):
    sv, gs = _none(saved), _none(grads)
    return _fill(SPECS[kernel].fake_backward(sv, gs, list(f), list(i), list(needs)), _device(sv))


def _setup_context(ctx, inputs, output):
    kernel, tensors, f, i = inputs
    ts = _none(tensors)
    needs = [t is not None and t.requires_grad for t in ts]
    saved = SPECS[kernel].save(ts, _none(output), list(f), list(i), needs)
    ctx.kernel, ctx.f, ctx.i, ctx.needs = kernel, list(f), list(i), needs
    ctx.n_saved = len(saved)
    ctx.device = _device(ts)
    ctx.save_for_backward(*_fill(saved, ctx.device))
    ctx.set_materialize_grads(False)


def _backward(ctx, grads):
    saved = list(ctx.saved_tensors)
    gs = _fill(list(grads), ctx.device)
    needs = ctx.needs  # as needs_input_grad: whether each input requires grad
    out = scan_bwd(ctx.kernel, saved, gs, ctx.f, ctx.i, needs)
    return None, [g if (n and g.numel()) else None for g, n in zip(out, needs)], None, None


scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def _no_double_backward(ctx, grads):
    raise RuntimeError(
        f"spikefuse fused scan {ctx.kernel!r}: the hand-written backward is first-order only; "
        "cannot differentiate twice (once_differentiable). Use backend='reference' for "
        "higher-order gradients")


def _bwd_setup(ctx, inputs, output):
    ctx.kernel = inputs[0]


scan_bwd.register_autograd(_no_double_backward, setup_context=_bwd_setup)


def _eager_ok(ts) -> bool:
    """True when a call can skip the custom-op dispatch: plain tensors, no torch.compile /
    export trace, no dispatch or function mode (make_fx, FakeTensorMode, opcheck) and no
    forced op path (:func:`through_op`)."""
    if _FORCE_OP[0] or torch.compiler.is_compiling():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled():
        return False  # make_fx, FakeTensorMode, opcheck and friends trace through these
    return all(t is None or type(t) in _PLAIN for t in ts)


_PLAIN = (Tensor, torch.nn.Parameter)
_FORCE_OP = [False]


class through_op:
    """Context manager: every scan goes through the ``spikefuse::scan_fwd`` op, as it does under
    torch.compile (tests that spy on the op)."""

    def __enter__(self):
        self._old, _FORCE_OP[0] = _FORCE_OP[0], True
        return self

    def __exit__(self, *exc):
        _FORCE_OP[0] = self._old
        return False


class _EagerScan(torch.autograd.Function):
    """The eager path of :class:`ScanFunction`: the op's forward, save and backward called
    directly (no torch.library dispatch, pytree flattening or empty placeholder tensors); the
    same functions as the op, so the same numbers. Backward with ``create_graph=True`` calls
    the ``scan_bwd`` op, whose registered autograd refuses a second derivative."""

    @staticmethod
    def forward(ctx, kernel, f, i, *ts):
        s = SPECS[kernel]
        outs = s.forward(list(ts), list(f), list(i))
        needs = [t is not None and t.requires_grad for t in ts]
        if any(needs):
            saved = s.save(list(ts), list(outs), list(f), list(i), needs)
            ctx.kernel, ctx.f, ctx.i, ctx.needs, ctx.n_saved = kernel, list(f), list(i), needs, len(saved)
            ctx.save_for_backward(*saved)
        ctx.set_materialize_grads(False)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        saved, needs = list(ctx.saved_tensors), ctx.needs
        if torch.is_grad_enabled():  # create_graph: the op path (first-order only)
            dev = _device(saved)
            out = _none(scan_bwd(ctx.kernel, _fill(saved, dev), _fill(list(grads), dev), ctx.f, ctx.i, needs))
        else:
            out = SPECS[ctx.kernel].backward(saved, list(grads), list(ctx.f), list(ctx.i), list(needs))
        return (None, None, None, *[g if (n and g is not None and g.numel()) else None for g, n in zip(out, needs)])


class ScanFunction:
    """Runs a registered :class:`ScanSpec`: ``ScanFunction(spec).apply(tensors, f, i)`` returns
    the outputs as a list, None where absent. Under torch.compile / export / a dispatch mode the
    call goes through the ``spikefuse::scan_fwd`` op (with its registered backward); eager calls
    on plain tensors run the same spec functions through a ``torch.autograd.Function`` (the op's
    dispatch costs more than a small scan: issue 15 item 3)."""

    def __init__(self, s: ScanSpec):
        self.spec = register_spec(s)

    def apply(self, tensors: Sequence[Optional[Tensor]], f: Sequence[float], i: Sequence[int]) -> list:
        ts = list(tensors)
        f = [float(v) for v in f]
        i = [int(v) for v in i]
        if _eager_ok(ts):
            if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)):
                with torch.no_grad():
                    return _none_outs(self.spec.forward(ts, f, i))
            return _none_outs(_EagerScan.apply(self.spec.name, f, i, *ts))
        outs = scan_fwd(self.spec.name, _fill(ts, _device(ts)), f, i)
        return _none(outs)


def _none_outs(outs) -> list:
    """The op's output convention on the eager path: absent (None or empty) outputs are None."""
    return [None if (t is None or t.numel() == 0) else t for t in outs]
