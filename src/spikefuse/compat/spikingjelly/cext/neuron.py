"""Mirror of ``spikingjelly.cext.neuron`` (SPEC.md 2.4, 15) over :mod:`spikefuse.functional.lif`.

Names, signatures, defaults and return tuples are cext's; layouts are time-first
(``x_seq`` is ``(T, N, ...)``, ``v`` one step ``(N, ...)``). Everything runs through spikefuse's
functional LIF (``reciprocal_tau`` is passed as such: the charge multiplies by ``1/tau`` as
cext does):

- templates: ``hard_reset_forward_template(x, v, v_threshold, v_reset, *args)`` and the
  ``soft_reset_*``, ``*_fptt_*``, ``*_with_grad_*`` variants, ``backward_template``,
  ``bptt_template``. The charge comes from ``*args``: none = IF, ``(reciprocal_tau,
  detach_input)`` = LIF (cext leaves the templates abstract; here they run).
- ``LIF_hard_reset_forward/_fptt/_forward_with_grad/_fptt_with_grad``, ``LIF_backward``,
  ``LIF_bptt``, the same for ``IF_*`` (no ``reciprocal_tau``/``detach_input``) and
  ``ParametricLIF_*`` (also return / take ``grad_h_to_rtau`` and return ``grad_rtau``), and the
  ``soft_reset`` forms that cext documents but never implemented.
- autograd functions ``LIFStep``, ``LIFMultiStep``, ``IFStep``, ``IFMultiStep``,
  ``ParametricLIFStep``, ``ParametricLIFMultiStep`` (``.apply(...) -> (spike, v_next)``; soft
  reset with ``v_reset=None`` instead of cext's ``NotImplementedError``).
- modules ``BaseNode``, ``LIFNode`` (``tau=100.0``), ``MultiStepLIFNode``, ``IFNode``,
  ``MultiStepIFNode``, ``ParametricLIFNode`` (``init_tau=2.0``), ``MultiStepParametricLIFNode``.

Surrogates are chosen by ``grad_surrogate_function_index`` (``surrogate_function_dict``:
``'ATan': 0``, ``'Sigmoid': 1``) with one ``alpha`` (module default 2.0 for both).

``detach_input=True`` adds the input unscaled (``H = V - (V - V_reset)/tau + X``); it detaches
nothing.

>>> import torch
>>> from spikefuse.compat.spikingjelly.cext import neuron
>>> x = torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1)
>>> s, v = neuron.LIF_hard_reset_fptt(x, torch.zeros(1), 1.0, 0.0, 0.5, False)
>>> s.flatten().tolist(), v.tolist()
([0.0, 1.0, 0.0, 1.0, 0.0], [0.0])
"""
from __future__ import annotations

import math

import torch
from torch import nn

from spikefuse import surrogate as _sg
from spikefuse._validate import _describe, check_bool, check_number
from spikefuse.functional.lif import LIFParams, LIFState, _lif_multistep, _lif_step

surrogate_function_dict = {"ATan": 0, "Sigmoid": 1}
_SURROGATE_CLASSES = (_sg.ATan, _sg.Sigmoid)

# --------------------------------------------------------------------------- arguments


def _surrogate(alpha, index):
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(_SURROGATE_CLASSES):
        raise ValueError(
            f"grad_surrogate_function_index: expected one of {sorted(surrogate_function_dict.values())} "
            f"({surrogate_function_dict}), got {index!r}"
        )
    check_number("alpha", alpha, gt=0)
    return _SURROGATE_CLASSES[index](float(alpha))


def _params(v_threshold, v_reset, reciprocal_tau=None, detach_input=False, alpha=2.0,
            detach_reset=False, index=0) -> LIFParams:
    check_number("v_threshold", v_threshold)
    if v_reset is not None:
        check_number("v_reset", v_reset)
    check_bool("detach_input", detach_input)
    check_bool("detach_reset", detach_reset)
    if reciprocal_tau is not None:
        check_number("reciprocal_tau", reciprocal_tau, gt=0, le=1)
    return LIFParams(
        tau=None, v_threshold=v_threshold, v_reset=v_reset, decay_input=not detach_input,
        detach_reset=detach_reset, surrogate=_surrogate(alpha, index), reciprocal_tau=reciprocal_tau,
    )


def _check_x_v(x, v, x_name: str, seq: bool):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{x_name}: expected a torch.Tensor, got {_describe(x)}")
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v: expected a torch.Tensor (the membrane potential), got {_describe(v)}")
    if seq and x.dim() < 2:
        raise ValueError(f"{x_name}: expected a time-first sequence (T, N, ...), got shape {tuple(x.shape)}")
    step = tuple(x.shape[1:]) if seq else tuple(x.shape)
    if tuple(v.shape) != step:
        raise ValueError(
            f"v: expected shape {step} (one step of {x_name}), got {tuple(v.shape)}"
        )


def _charge_args(args, name: str):
    """``*args`` of a template: () = IF, (reciprocal_tau[, detach_input]) = LIF."""
    if len(args) > 2:
        raise TypeError(f"{name}: expected (reciprocal_tau, detach_input) or nothing after the reset "
                        f"arguments, got {len(args)} extra arguments")
    return (args + (False,))[:2] if args else (None, False)


# --------------------------------------------------------------------------- running


def _step(x, v, params):
    _check_x_v(x, v, "x", seq=False)
    s, st = _lif_step(x, LIFState(v), params, check_tau=False)
    return s, st.v


def _fptt(x_seq, v, params, traces=False):
    _check_x_v(x_seq, v, "x_seq", seq=True)
    out = _lif_multistep(x_seq, params, LIFState(v), None, return_traces=traces, check_tau=False)
    return out


def _step_with_grad(x, v, params, rtau_grad=False):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {_describe(x)}")
    out = _seq_grads(x.unsqueeze(0), v, params, rtau_grad, name="x")
    return tuple(o if i == 1 else o[0] for i, o in enumerate(out))


def _seq_with_grad(x_seq, v, params, name):
    _check_x_v(x_seq, v, name, seq=True)
    with torch.no_grad():
        s, st, tr = _lif_multistep(x_seq, params, LIFState(v), None, return_traces=True, check_tau=False)
    v_prev = torch.cat([v.to(tr.v.dtype).unsqueeze(0), tr.v[:-1]])
    return s, st.v, tr.h, v_prev


def _grads(s, v_next, h, params, x, v_prev, rtau_grad):
    """(spike, v_next, grad_s_to_h, grad_v_to_h[, grad_h_to_rtau]) from the forward traces
    (SPEC 15.1: gs2h = surrogate'(H - V_th); hard gv2h = 1 - S + (V_reset - H) gs2h (1 -
    detach_reset); soft gv2h = 1 - V_th gs2h (1 - detach_reset))."""
    keep = 0.0 if params.detach_reset else 1.0
    gs2h = params.surrogate.grad(h - params.v_threshold)
    if params.v_reset is None:
        gv2h = 1.0 - params.v_threshold * gs2h * keep
    else:
        gv2h = 1.0 - s.to(h.dtype) + (params.v_reset - h) * gs2h * keep
    out = (s, v_next, gs2h, gv2h)
    if rtau_grad:
        vr = 0.0 if params.v_reset is None else params.v_reset
        dh = x.to(h.dtype) - (v_prev.to(h.dtype) - vr) if params.decay_input else -(v_prev.to(h.dtype) - vr)
        out = out + (dh,)
    return out


def _seq_grads(x_seq, v, params, rtau_grad=False, name="x_seq"):
    s, v_next, h, v_prev = _seq_with_grad(x_seq, v, params, name)
    return _grads(s, v_next, h, params, x_seq, v_prev, rtau_grad)


def _backward(grad_spike, grad_v_next, gs2h, gv2h, dhdx, dhdv, gh2rtau=None):
    """One step of the chain rule (SPEC 15.3): gH = gS gs2h + gV gv2h, gX = gH dH/dX,
    gV_prev = gH dH/dV (and sum(gH dH/drtau) for the parametric LIF)."""
    gh = grad_spike * gs2h + grad_v_next * gv2h
    out = (gh * dhdx, gh * dhdv)
    return out + ((gh * gh2rtau).sum().reshape(1),) if gh2rtau is not None else out


def _bptt(grad_spike_seq, grad_v_next, gs2h, gv2h, dhdx, dhdv, gh2rtau=None):
    """Reverse-time loop of :func:`_backward` (SPEC 15.3); returns (grad_x_seq, grad_v[, grad_rtau])."""
    grad_x = torch.empty_like(gs2h)
    gv = grad_v_next
    g_rtau = torch.zeros((), dtype=gs2h.dtype, device=gs2h.device)
    for t in range(gs2h.shape[0] - 1, -1, -1):
        gh = grad_spike_seq[t] * gs2h[t] + gv * gv2h[t]
        grad_x[t] = gh * dhdx
        gv = gh * dhdv
        if gh2rtau is not None:
            g_rtau = g_rtau + (gh * gh2rtau[t]).sum()
    return (grad_x, gv) + ((g_rtau.reshape(1),) if gh2rtau is not None else ())


def _lif_partials(reciprocal_tau, detach_input):
    check_number("reciprocal_tau", reciprocal_tau, gt=0, le=1)
    check_bool("detach_input", detach_input)
    return (1.0 if detach_input else reciprocal_tau), 1.0 - reciprocal_tau


# --------------------------------------------------------------------------- templates


def hard_reset_forward_template(x: torch.Tensor, v: torch.Tensor, v_threshold: float, v_reset: float, *args, **kwargs):
    """One step with hard reset; returns ``(spike, v_next)``. ``*args``: nothing (IF) or
    ``(reciprocal_tau, detach_input)`` (LIF)."""
    rtau, di = _charge_args(args, "hard_reset_forward_template")
    return _step(x, v, _params(v_threshold, v_reset, rtau, di))


def hard_reset_fptt_template(x_seq: torch.Tensor, v: torch.Tensor, v_threshold: float, v_reset: float, *args, **kwargs):
    """Multi-step :func:`hard_reset_forward_template`: ``(spike_seq, v_next = V[T-1])``."""
    rtau, di = _charge_args(args, "hard_reset_fptt_template")
    s, st = _fptt(x_seq, v, _params(v_threshold, v_reset, rtau, di))
    return s, st.v


def soft_reset_forward_template(x: torch.Tensor, v: torch.Tensor, v_threshold: float, *args, **kwargs):
    """One step with soft reset (``V = H - S V_th``); returns ``(spike, v_next)``."""
    rtau, di = _charge_args(args, "soft_reset_forward_template")
    return _step(x, v, _params(v_threshold, None, rtau, di))


def soft_reset_fptt_template(x_seq: torch.Tensor, v: torch.Tensor, v_threshold: float, *args, **kwargs):
    """Multi-step :func:`soft_reset_forward_template`."""
    rtau, di = _charge_args(args, "soft_reset_fptt_template")
    s, st = _fptt(x_seq, v, _params(v_threshold, None, rtau, di))
    return s, st.v


def hard_reset_forward_with_grad_template(x: torch.Tensor, v: torch.Tensor, v_threshold: float, v_reset: float,
                                          alpha: float, detach_reset: bool, grad_surrogate_function_index: int,
                                          *args, **kwargs):
    """One step; returns ``(spike, v_next, grad_s_to_h, grad_v_to_h)``."""
    rtau, di = _charge_args(args, "hard_reset_forward_with_grad_template")
    p = _params(v_threshold, v_reset, rtau, di, alpha, detach_reset, grad_surrogate_function_index)
    return _step_with_grad(x, v, p)


def hard_reset_fptt_with_grad_template(x_seq: torch.Tensor, v: torch.Tensor, v_threshold: float, v_reset: float,
                                       alpha: float, detach_reset: bool, grad_surrogate_function_index: int,
                                       *args, **kwargs):
    """Multi-step: ``(spike_seq, v_next, grad_s_to_h, grad_v_to_h)``, the last two ``(T, ...)``."""
    rtau, di = _charge_args(args, "hard_reset_fptt_with_grad_template")
    p = _params(v_threshold, v_reset, rtau, di, alpha, detach_reset, grad_surrogate_function_index)
    return _seq_grads(x_seq, v, p)


def soft_reset_forward_with_grad_template(x: torch.Tensor, v: torch.Tensor, v_threshold: float, alpha: float,
                                          detach_reset: bool, grad_surrogate_function_index: int, *args, **kwargs):
    """Soft-reset :func:`hard_reset_forward_with_grad_template`."""
    rtau, di = _charge_args(args, "soft_reset_forward_with_grad_template")
    p = _params(v_threshold, None, rtau, di, alpha, detach_reset, grad_surrogate_function_index)
    return _step_with_grad(x, v, p)


def soft_reset_fptt_with_grad_template(x_seq: torch.Tensor, v: torch.Tensor, v_threshold: float, alpha: float,
                                       detach_reset: bool, grad_surrogate_function_index: int, *args, **kwargs):
    """Soft-reset :func:`hard_reset_fptt_with_grad_template`."""
    rtau, di = _charge_args(args, "soft_reset_fptt_with_grad_template")
    p = _params(v_threshold, None, rtau, di, alpha, detach_reset, grad_surrogate_function_index)
    return _seq_grads(x_seq, v, p)


def backward_template(grad_spike: torch.Tensor, grad_v_next: torch.Tensor, grad_s_to_h: torch.Tensor,
                      grad_v_to_h, *args, **kwargs):
    """``(grad_x, grad_v)`` of one step from the saved ``grad_s_to_h``, ``grad_v_to_h``
    (``*args``: nothing = IF, ``(reciprocal_tau, detach_input)`` = LIF)."""
    rtau, di = _charge_args(args, "backward_template")
    dhdx, dhdv = (1.0, 1.0) if rtau is None else _lif_partials(rtau, di)
    return _backward(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, dhdx, dhdv)


def bptt_template(grad_spike_seq: torch.Tensor, grad_v_next: torch.Tensor, grad_s_to_h: torch.Tensor,
                  grad_v_to_h: torch.Tensor, *args, **kwargs):
    """``(grad_x_seq, grad_v)``: BPTT over the saved sequences; ``grad_v`` is dL/dV[-1]."""
    rtau, di = _charge_args(args, "bptt_template")
    dhdx, dhdv = (1.0, 1.0) if rtau is None else _lif_partials(rtau, di)
    return _bptt(grad_spike_seq, grad_v_next, grad_s_to_h, grad_v_to_h, dhdx, dhdv)


# --------------------------------------------------------------------------- LIF / IF / ParametricLIF


def LIF_hard_reset_forward(x, v, v_threshold, v_reset, reciprocal_tau, detach_input):
    return hard_reset_forward_template(x, v, v_threshold, v_reset, reciprocal_tau, detach_input)


def LIF_hard_reset_fptt(x_seq, v, v_threshold, v_reset, reciprocal_tau, detach_input):
    return hard_reset_fptt_template(x_seq, v, v_threshold, v_reset, reciprocal_tau, detach_input)


def LIF_hard_reset_forward_with_grad(x, v, v_threshold, v_reset, alpha, detach_reset,
                                     grad_surrogate_function_index, reciprocal_tau, detach_input):
    return hard_reset_forward_with_grad_template(x, v, v_threshold, v_reset, alpha, detach_reset,
                                                 grad_surrogate_function_index, reciprocal_tau, detach_input)


def LIF_hard_reset_fptt_with_grad(x_seq, v, v_threshold, v_reset, alpha, detach_reset,
                                  grad_surrogate_function_index, reciprocal_tau, detach_input):
    return hard_reset_fptt_with_grad_template(x_seq, v, v_threshold, v_reset, alpha, detach_reset,
                                              grad_surrogate_function_index, reciprocal_tau, detach_input)


def LIF_soft_reset_forward(x, v, v_threshold, reciprocal_tau, detach_input):
    return soft_reset_forward_template(x, v, v_threshold, reciprocal_tau, detach_input)


def LIF_soft_reset_fptt(x_seq, v, v_threshold, reciprocal_tau, detach_input):
    return soft_reset_fptt_template(x_seq, v, v_threshold, reciprocal_tau, detach_input)


def LIF_backward(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, reciprocal_tau, detach_input):
    return backward_template(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, reciprocal_tau, detach_input)


def LIF_bptt(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, reciprocal_tau, detach_input):
    return bptt_template(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, reciprocal_tau, detach_input)


def IF_hard_reset_forward(x, v, v_threshold, v_reset):
    return hard_reset_forward_template(x, v, v_threshold, v_reset)


def IF_hard_reset_fptt(x_seq, v, v_threshold, v_reset):
    return hard_reset_fptt_template(x_seq, v, v_threshold, v_reset)


def IF_hard_reset_forward_with_grad(x, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index):
    return hard_reset_forward_with_grad_template(x, v, v_threshold, v_reset, alpha, detach_reset,
                                                 grad_surrogate_function_index)


def IF_hard_reset_fptt_with_grad(x_seq, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index):
    return hard_reset_fptt_with_grad_template(x_seq, v, v_threshold, v_reset, alpha, detach_reset,
                                              grad_surrogate_function_index)


def IF_soft_reset_forward(x, v, v_threshold):
    return soft_reset_forward_template(x, v, v_threshold)


def IF_soft_reset_fptt(x_seq, v, v_threshold):
    return soft_reset_fptt_template(x_seq, v, v_threshold)


def IF_backward(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h):
    return backward_template(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h)


def IF_bptt(grad_spike_seq, grad_v_next, grad_s_to_h, grad_v_to_h):
    return bptt_template(grad_spike_seq, grad_v_next, grad_s_to_h, grad_v_to_h)


def ParametricLIF_hard_reset_forward_with_grad(x, v, v_threshold, v_reset, alpha, detach_reset,
                                               grad_surrogate_function_index, reciprocal_tau, detach_input):
    """``(spike, v_next, grad_s_to_h, grad_v_to_h, grad_h_to_rtau)``; ``grad_h_to_rtau`` is
    ``X - (V - V_reset)`` (``-(V - V_reset)`` with ``detach_input``)."""
    p = _params(v_threshold, v_reset, reciprocal_tau, detach_input, alpha, detach_reset, grad_surrogate_function_index)
    return _step_with_grad(x, v, p, rtau_grad=True)


def ParametricLIF_hard_reset_fptt_with_grad(x_seq, v, v_threshold, v_reset, alpha, detach_reset,
                                            grad_surrogate_function_index, reciprocal_tau, detach_input):
    """Multi-step :func:`ParametricLIF_hard_reset_forward_with_grad`."""
    p = _params(v_threshold, v_reset, reciprocal_tau, detach_input, alpha, detach_reset, grad_surrogate_function_index)
    return _seq_grads(x_seq, v, p, rtau_grad=True)


def ParametricLIF_backward(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, grad_h_to_rtau, reciprocal_tau,
                           detach_input):
    """``(grad_x, grad_v, grad_rtau)``; ``grad_rtau`` (shape ``(1,)``) sums over all neurons."""
    dhdx, dhdv = _lif_partials(reciprocal_tau, detach_input)
    return _backward(grad_spike, grad_v_next, grad_s_to_h, grad_v_to_h, dhdx, dhdv, grad_h_to_rtau)


def ParametricLIF_bptt(grad_spike_seq, grad_v_next, grad_s_to_h, grad_v_to_h, grad_h_to_rtau, reciprocal_tau,
                       detach_input):
    """``(grad_x_seq, grad_v, grad_rtau)``; ``grad_rtau`` sums over time and neurons."""
    dhdx, dhdv = _lif_partials(reciprocal_tau, detach_input)
    return _bptt(grad_spike_seq, grad_v_next, grad_s_to_h, grad_v_to_h, dhdx, dhdv, grad_h_to_rtau)


# --------------------------------------------------------------------------- autograd functions


def _autograd_step(x, v, v_threshold, v_reset, alpha, detach_reset, index, reciprocal_tau=None, detach_input=False):
    return _step(x, v, _params(v_threshold, v_reset, reciprocal_tau, detach_input, alpha, detach_reset, index))


def _autograd_seq(x_seq, v, v_threshold, v_reset, alpha, detach_reset, index, reciprocal_tau=None,
                  detach_input=False):
    p = _params(v_threshold, v_reset, reciprocal_tau, detach_input, alpha, detach_reset, index)
    s, st = _fptt(x_seq, v, p)
    return s, st.v


class LIFStep:
    """``LIFStep.apply(x, v, v_threshold, v_reset, alpha, detach_reset,
    grad_surrogate_function_index, reciprocal_tau, detach_input) -> (spike, v_next)``; the
    backward is autograd through spikefuse's step, equal to cext's ``LIF_backward``."""

    @staticmethod
    def apply(x, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index,
              reciprocal_tau, detach_input):
        return _autograd_step(x, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index,
                              reciprocal_tau, detach_input)


class LIFMultiStep:
    """``LIFMultiStep.apply(x_seq, v, ...) -> (spike_seq, v_next)`` (arguments as :class:`LIFStep`)."""

    @staticmethod
    def apply(x_seq, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index,
              reciprocal_tau, detach_input):
        return _autograd_seq(x_seq, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index,
                             reciprocal_tau, detach_input)


class IFStep:
    """``IFStep.apply(x, v, v_threshold, v_reset, alpha, detach_reset,
    grad_surrogate_function_index) -> (spike, v_next)``."""

    @staticmethod
    def apply(x, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index):
        return _autograd_step(x, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index)


class IFMultiStep:
    """``IFMultiStep.apply(x_seq, v, ...) -> (spike_seq, v_next)``."""

    @staticmethod
    def apply(x_seq, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index):
        return _autograd_seq(x_seq, v, v_threshold, v_reset, alpha, detach_reset, grad_surrogate_function_index)


class ParametricLIFStep(LIFStep):
    """As :class:`LIFStep`; ``reciprocal_tau`` is a tensor (``w.sigmoid()``) that gets a gradient."""


class ParametricLIFMultiStep(LIFMultiStep):
    """As :class:`LIFMultiStep`; ``reciprocal_tau`` is a tensor that gets a gradient."""


# --------------------------------------------------------------------------- modules


class BaseNode(nn.Module):
    """cext ``BaseNode(v_threshold=1.0, v_reset=0.0, surrogate_function='ATan', alpha=2.0,
    detach_reset=False)``: ``v`` is the float ``v_reset`` after :meth:`reset`, a tensor after a
    forward. ``v_reset=None`` is a soft reset (cext raises NotImplementedError there)."""

    def __init__(self, v_threshold=1.0, v_reset=0.0, surrogate_function="ATan", alpha=2.0, detach_reset=False):
        super().__init__()
        check_number("v_threshold", v_threshold)
        if v_reset is not None:
            check_number("v_reset", v_reset)
        if surrogate_function not in surrogate_function_dict:
            raise ValueError(
                f"surrogate_function: expected one of {list(surrogate_function_dict)}, got {surrogate_function!r}"
            )
        check_number("alpha", alpha, gt=0)
        self.v_threshold = v_threshold
        self.v_reset = v_reset
        self.surrogate_function = surrogate_function
        self.grad_surrogate_function_index = surrogate_function_dict[surrogate_function]
        self.alpha = alpha
        self.detach_reset = check_bool("detach_reset", detach_reset)
        self.reset()

    def reset(self):
        self.v = self.v_reset

    def extra_repr(self):
        return (f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, detach_reset={self.detach_reset}, "
                f"surrogate_function={self.surrogate_function}, alpha={self.alpha}")

    def _v_for(self, step: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.v, torch.Tensor):
            fill = 0.0 if self.v is None else float(self.v)
            self.v = torch.full_like(step.detach(), fill)
        return self.v

    def _run(self, x, multi: bool, *charge):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"dv{'_seq' if multi else ''}: expected a torch.Tensor, got {_describe(x)}")
        if multi and x.dim() < 2:
            raise ValueError(f"dv_seq: expected a time-first sequence (T, N, ...), got shape {tuple(x.shape)}")
        v = self._v_for(x[0] if multi else x)
        fn = _autograd_seq if multi else _autograd_step
        args = (x, v, self.v_threshold, self.v_reset, self.alpha, self.detach_reset,
                self.grad_surrogate_function_index) + charge
        if self.training:
            out, self.v = fn(*args)
        else:
            with torch.no_grad():
                out, self.v = fn(*args)
        return out


def _check_tau(name, tau):
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"{name}: expected a number > 1, got {_describe(tau)}")
    check_number(name, tau, gt=1.0)


class LIFNode(BaseNode):
    """cext ``LIFNode(tau=100.0, detach_input=False, v_threshold=1.0, v_reset=0.0,
    surrogate_function='ATan', alpha=2.0, detach_reset=False)``, one step ``(N, ...)``."""

    def __init__(self, tau=100.0, detach_input=False, v_threshold=1.0, v_reset=0.0, surrogate_function="ATan",
                 alpha=2.0, detach_reset=False):
        super().__init__(v_threshold, v_reset, surrogate_function, alpha, detach_reset)
        _check_tau("tau", tau)
        self.reciprocal_tau = 1 / tau
        self.detach_input = check_bool("detach_input", detach_input)

    def forward(self, dv: torch.Tensor):
        return self._run(dv, False, self.reciprocal_tau, self.detach_input)

    def extra_repr(self):
        return super().extra_repr() + f" tau={1 / self.reciprocal_tau}"


class MultiStepLIFNode(LIFNode):
    """:class:`LIFNode` over a sequence ``dv_seq`` of shape ``(T, N, ...)``; stores ``V[T-1]``."""

    def forward(self, dv_seq: torch.Tensor):
        return self._run(dv_seq, True, self.reciprocal_tau, self.detach_input)


class IFNode(BaseNode):
    """cext ``IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function='ATan', alpha=2.0,
    detach_reset=False)``."""

    def forward(self, dv: torch.Tensor):
        return self._run(dv, False)


class MultiStepIFNode(IFNode):
    """:class:`IFNode` over ``dv_seq`` ``(T, N, ...)``."""

    def forward(self, dv_seq: torch.Tensor):
        return self._run(dv_seq, True)


class ParametricLIFNode(BaseNode):
    """cext ``ParametricLIFNode(init_tau=2.0, detach_input=False, v_threshold=1.0, v_reset=0.0,
    surrogate_function='ATan', alpha=2.0, detach_reset=False)``: ``w`` (shape ``(1,)``) starts at
    ``-log(init_tau - 1)``; the charge multiplies by ``w.sigmoid()``."""

    def __init__(self, init_tau=2.0, detach_input=False, v_threshold=1.0, v_reset=0.0, surrogate_function="ATan",
                 alpha=2.0, detach_reset=False):
        super().__init__(v_threshold, v_reset, surrogate_function, alpha, detach_reset)
        _check_tau("init_tau", init_tau)
        self.w = nn.Parameter(torch.tensor([-math.log(init_tau - 1)], dtype=torch.float32))
        self.detach_input = check_bool("detach_input", detach_input)

    def forward(self, dv: torch.Tensor):
        return self._run(dv, False, self.w.sigmoid(), self.detach_input)


class MultiStepParametricLIFNode(ParametricLIFNode):
    """:class:`ParametricLIFNode` over ``dv_seq`` ``(T, N, ...)``."""

    def forward(self, dv_seq: torch.Tensor):
        return self._run(dv_seq, True, self.w.sigmoid(), self.detach_input)
