"""IF / LIF / parametric LIF with SpikingJelly semantics (SPEC.md sections 2.4 and 15).

One time step, with ``H`` the charge (pre-reset membrane), ``S`` the spike and ``V`` the
membrane after the reset::

    IF                      H = V + X
    LIF, decay_input=True   H = V + (X - (V - V_reset)) / tau
    LIF, decay_input=False  H = V - (V - V_reset) / tau + X      (cext ``detach_input=True``)
    spike                   S = surrogate(H - V_th)              (1[H - V_th >= 0] forward;
                                                                 1[H - V_th > 0] with threshold=">")
    hard reset              V = S_r * V_reset + (1 - S_r) * H
    soft reset (v_reset=None)  V = H - S_r * V_th, and the charge uses 0 as V_reset

``S_r`` is ``S`` or, with ``detach_reset=True``, ``S.detach()``; autograd through this loop
gives exactly the hand-written BPTT of SpikingJelly's cext (SPEC 15.1 and 15.3):
``gs2h = surrogate'(H - V_th)``, hard ``gv2h = 1 - S + (V_reset - H) gs2h (1 - detach_reset)``,
soft ``gv2h = 1 - V_th gs2h (1 - detach_reset)``.

Parameters are Python numbers or tensors that broadcast against one step's shape
``(B, *features)`` with ordinary torch broadcasting (a per-feature tensor of shape
``features`` or, for conv maps ``(C, H, W)``, a per-channel tensor of shape ``(C, 1, 1)``).
``tau`` may be a tensor that requires grad (parametric LIF); gradients flow to it, and to
tensor ``v_threshold`` / ``v_reset`` as well.

Dtypes: fp32 is the reference. fp16/bf16 inputs are accepted; the state is computed in fp32
and the spikes are returned in the input dtype. fp64 inputs are computed in fp64.

Example::

    >>> import torch
    >>> from spikefuse.functional.lif import LIFParams, lif_multistep
    >>> x = torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1, 1)
    >>> s, state = lif_multistep(x, LIFParams(tau=2.0), backend="reference")
    >>> s.flatten().tolist()
    [0.0, 1.0, 0.0, 1.0, 0.0]
"""
from __future__ import annotations

import math
import struct
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._core import check_not_transformed, compute_dtype, is_compiling
from .._validate import (
    _describe,
    check_bool,
    check_broadcastable,
    check_choice,
    check_number,
    check_sequence,
    scan_deferred,
    check_finite_after,
    check_tensor,
    checked_record,
    bool_field,
    number_field,
    tensor_field,
    caller_is_outside,
    check_shape,
    choice_field,
)
from ..surrogate import ATan, Surrogate
from . import _dispatch

__all__ = [
    "LIFParams",
    "LIFState",
    "LIFTraces",
    "lif_step",
    "lif_update",
    "lif_multistep",
    "if_step",
    "if_multistep",
    "initial_state",
    "THRESHOLDS",
]

Number = Union[float, int]


@checked_record(tau=number_field(optional=True), v_threshold=number_field(), v_reset=number_field(optional=True),
                decay_input=bool_field, detach_reset=bool_field, reciprocal_tau=number_field(optional=True),
                threshold=choice_field(">=", ">"))
class LIFParams(NamedTuple):
    """Parameters of the SpikingJelly IF/LIF neuron.

    - ``tau``: membrane time constant (``> 1``, as SpikingJelly asserts), a number or a tensor
      broadcasting over ``(B, *features)``; ``None`` makes the neuron an IF (``H = V + X``).
    - ``v_threshold``: firing threshold (finite number or tensor).
    - ``v_reset``: reset potential (hard reset) or ``None`` for soft reset
      (``V = H - S V_th``; the charge then uses 0 as the resting potential).
    - ``decay_input``: ``True``: input scaled by ``1/tau``; ``False`` (cext
      ``detach_input=True``): input added unscaled.
    - ``detach_reset``: use ``S.detach()`` inside the reset.
    - ``surrogate``: a :class:`spikefuse.surrogate.Surrogate` (backward of the spike).
    - ``reciprocal_tau``: ``1/tau`` given directly (a number or tensor in ``(0, 1]``, e.g.
      ParametricLIF's ``sigmoid(w)``); the charge then **multiplies** by it, as SpikingJelly's
      ParametricLIF and cext neurons do (``/ tau`` and ``* (1/tau)`` can differ by one ulp).
      ``tau`` must be None when it is given. The fused CPU kernel runs it; the Triton scan
      leaves it to the reference loop.
    - ``threshold``: the spike comparison, ``">="`` (SpikingJelly: ``H - V_th >= 0`` fires, the
      default) or ``">"`` (snnTorch, norse, NIR: a membrane exactly at the threshold does not
      fire). The fused kernels (``backend="cpu"``, ``"triton"``, and ``"auto"``) run both, with
      this loop's numbers, ties at the threshold included.

    >>> LIFParams(tau=None, v_reset=None)   # IF neuron with soft reset
    LIFParams(tau=None, v_threshold=1.0, v_reset=None, decay_input=True, detach_reset=False, surrogate=ATan(alpha=2.0), reciprocal_tau=None, threshold='>=')
    """

    tau: Optional[Union[Number, Tensor]] = 2.0
    v_threshold: Union[Number, Tensor] = 1.0
    v_reset: Optional[Union[Number, Tensor]] = 0.0
    decay_input: bool = True
    detach_reset: bool = False
    surrogate: Surrogate = ATan(2.0)
    reciprocal_tau: Optional[Union[Number, Tensor]] = None
    threshold: str = ">="


#: the spike comparisons of :attr:`LIFParams.threshold`
THRESHOLDS = (">=", ">")


@checked_record(v=tensor_field(floating=True))
class LIFState(NamedTuple):
    """Membrane potential after the reset of the last step, shape ``(B, *features)``."""

    v: Tensor


@checked_record(h=tensor_field(floating=True), v=tensor_field(floating=True))
class LIFTraces(NamedTuple):
    """Per-step traces, each ``(T, B, *features)``: ``h`` = charge before the reset,
    ``v`` = membrane after the reset (SpikingJelly's ``v_seq``)."""

    h: Tensor
    v: Tensor


# --------------------------------------------------------------------------- helpers



def _as_compute(p, dtype):
    """Tensor params are cast to the compute dtype (keeping their graph); numbers stay."""
    if isinstance(p, Tensor):
        return p.to(dtype)
    return p


def _validate_params(params, step_shape, device, check_tau: bool = True) -> None:
    if not isinstance(params, LIFParams):
        raise TypeError(f"params: expected a LIFParams, got {_describe(params)}")
    # device and shape first (a tensor on another device cannot be range-checked here)
    for name in ("tau", "v_threshold", "v_reset", "reciprocal_tau"):
        p = getattr(params, name)
        if isinstance(p, Tensor):
            if p.device != device:
                raise ValueError(
                    f"params.{name}: expected a tensor on {device} (the input's device), "
                    f"got one on {p.device}"
                )
            check_broadcastable(f"params.{name}", p, step_shape)
    if params.tau is not None:
        # SpikingJelly asserts tau > 1 (1/tau is the fraction of the distance to the rest
        # potential that decays per step); a learnable 1/sigmoid(w) may round to exactly 1.
        if check_tau:
            check_number("params.tau", params.tau, gt=1.0)
        else:
            check_number("params.tau", params.tau, ge=1.0)
    if params.reciprocal_tau is not None:
        if params.tau is not None:
            raise ValueError(
                "params.reciprocal_tau: give either tau or reciprocal_tau (= 1/tau), got both "
                f"(tau={_describe(params.tau)})"
            )
        if check_tau:
            check_number("params.reciprocal_tau", params.reciprocal_tau, gt=0.0, lt=1.0)
        else:
            check_number("params.reciprocal_tau", params.reciprocal_tau, gt=0.0, le=1.0)
    check_number("params.v_threshold", params.v_threshold)
    if params.v_reset is not None:
        check_number("params.v_reset", params.v_reset)
    check_bool("params.decay_input", params.decay_input)
    check_bool("params.detach_reset", params.detach_reset)
    check_choice("params.threshold", params.threshold, THRESHOLDS)
    if not isinstance(params.surrogate, Surrogate):
        raise TypeError(
            "params.surrogate: expected a spikefuse.surrogate.Surrogate instance, "
            f"got {_describe(params.surrogate)}"
        )


def _validate_state(state, shape, device) -> Tensor:
    if not isinstance(state, tuple) or len(state) != 1:
        raise TypeError(f"state: expected a LIFState(v=...) or None, got {_describe(state)}")
    v = state[0]
    check_tensor("state.v", v, finite=False)
    if v.device != device:
        raise ValueError(f"state.v: expected a tensor on {device} (the input's device), got {v.device}")
    if tuple(v.shape) != tuple(shape):
        raise ValueError(
            f"state.v: expected shape {tuple(shape)} (one step of the input), got {tuple(v.shape)}"
        )
    if not _is_fresh(v):  # a resting state initial_state made (and nobody changed) is finite
        check_tensor("state.v", v)
    return v


def _mark_fresh(v: Tensor) -> Tensor:
    """Remember that ``v`` is a resting state made here from validated parameters (its version
    counter moves on any in-place change, which ends the promise)."""
    if type(v) is Tensor and not is_compiling():
        v._spikefuse_fresh = v._version
    return v


def _is_fresh(v: Tensor) -> bool:
    return getattr(v, "_spikefuse_fresh", None) == v._version


def initial_state(shape, params: LIFParams, dtype=torch.float32, device=None) -> LIFState:
    """The resting state: ``V = v_reset`` (0 for soft reset) of the given step shape.

    >>> initial_state((2, 3), LIFParams(v_reset=-0.5)).v[0, 0].item()
    -0.5
    """
    shape = check_shape("shape", shape)
    if not isinstance(params, LIFParams):
        raise TypeError(f"params: expected a LIFParams, got {_describe(params)}")
    vr = params.v_reset
    if _finite_number(vr) and dtype in (torch.float32, torch.float64) and not is_compiling():
        # 0 + v_reset in the state dtype as one fill (+ 0.0: the sum turns -0.0 into +0.0)
        v = torch.full(shape, 0.0 if vr is None else _rounded(vr, dtype) + 0.0, dtype=dtype, device=device)
        return LIFState(_mark_fresh(v))
    v = torch.zeros(shape, dtype=dtype, device=device)
    if vr is not None:
        v = v + (vr.to(dtype) if isinstance(vr, Tensor) else vr)
    return LIFState(v)


def _rounded(x: Number, dtype: torch.dtype) -> float:
    """The number ``x`` rounded to ``dtype`` (fp32 / fp64) as torch rounds a scalar operand (the C
    cast to float, round to nearest even, which ``struct``'s ``"f"`` packing is: ~0.3 us against
    a torch.tensor's ~5; out of the float32 range torch's inf)."""
    if dtype == torch.float64:
        return float(x)
    try:
        return _F32.unpack(_F32.pack(float(x)))[0]
    except OverflowError:
        return float(torch.tensor(float(x), dtype=torch.float32))


_F32 = struct.Struct("f")


def _finite_number(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))


def _charge(x: Tensor, v: Tensor, tau, v_reset, decay_input: bool) -> Tensor:
    """``tau`` is a number/tensor (divide) or a :class:`_Reciprocal` (multiply)."""
    if tau is None:
        return v + x
    if isinstance(tau, _Reciprocal):
        vr = 0.0 if v_reset is None else v_reset
        if decay_input:
            return v + (x - (v - vr)) * tau.value
        return v - (v - vr) * tau.value + x
    if v_reset is None:
        # soft reset: the resting potential of the charge is 0
        if decay_input:
            return v + (x - v) / tau
        return v - v / tau + x
    if decay_input:
        return v + (x - (v - v_reset)) / tau
    return v - (v - v_reset) / tau + x


def _step(x: Tensor, v: Tensor, tau, v_th, v_reset, decay_input, detach_reset, surrogate,
          strict: bool = False):
    """One trusted step in the compute dtype; returns (spike, h, v_new). ``strict``: fire on
    ``H - V_th > 0`` (``threshold=">"``) instead of ``>= 0``."""
    h = _charge(x, v, tau, v_reset, decay_input)
    s = surrogate(h - v_th, strict=strict)
    s_r = s.detach() if detach_reset else s
    if v_reset is None:
        v_new = h - s_r * v_th
    else:
        v_new = s_r * v_reset + (1.0 - s_r) * h
    return s, h, v_new


class _Reciprocal(NamedTuple):
    """``1/tau`` given directly (:attr:`LIFParams.reciprocal_tau`): the charge multiplies."""

    value: Union[Number, Tensor]


def _cast_params(params: LIFParams, cdt: torch.dtype):
    if params.reciprocal_tau is not None:
        tau = _Reciprocal(_as_compute(params.reciprocal_tau, cdt))
    else:
        tau = _as_compute(params.tau, cdt)
    return (
        tau,
        _as_compute(params.v_threshold, cdt),
        _as_compute(params.v_reset, cdt),
    )


# --------------------------------------------------------------------------- public API


def _lif_step(x, state, params, check_tau: bool = True):
    check_tensor("x", x, min_ndim=1)
    _validate_params(params, tuple(x.shape), x.device, check_tau=check_tau)
    cdt = compute_dtype(x.dtype)
    if state is None:
        v = initial_state(x.shape, params, dtype=cdt, device=x.device).v
    else:
        v = _validate_state(state, x.shape, x.device).to(cdt)
    tau, v_th, v_reset = _cast_params(params, cdt)
    s, _, v_new = _step(
        x.to(cdt), v, tau, v_th, v_reset, params.decay_input, params.detach_reset, params.surrogate,
        params.threshold == ">",
    )
    return s.to(x.dtype), LIFState(v_new)


def lif_step(x: Tensor, state: Optional[LIFState], params: LIFParams = LIFParams()):
    """One IF/LIF step: ``x`` is ``(B, *features)``; returns ``(spike, LIFState)``.

    ``state=None`` starts from ``V = v_reset`` (0 for soft reset). The spike has the dtype of
    ``x``; the state is fp32 (fp64 for fp64 input).

    >>> import torch
    >>> s, st = lif_step(torch.tensor([[1.5]]), None, LIFParams(tau=2.0))
    >>> s.item(), st.v.item()
    (0.0, 0.75)
    """
    return _lif_step(x, state, params)


def lif_update(x: Tensor, v: Tensor, params: LIFParams = LIFParams()):
    """One IF/LIF update on raw tensors: ``(spike, h, v_new)`` from the input ``x`` and the
    membrane ``v`` (both ``(B, *features)``, computed in their dtype), the same equations as
    :func:`lif_step` (which wraps the state in :class:`LIFState` and casts to the compute
    dtype). For layers that add their own term to the charge in a per-step loop (e.g.
    :class:`spikefuse.layers.RecurrentLIF`'s recurrent feedback); they validate once, so the
    arguments are checked for calls from outside the library only.

    >>> import torch
    >>> s, h, v = lif_update(torch.tensor([[1.5]]), torch.zeros(1, 1), LIFParams(tau=2.0))
    >>> s.item(), h.item(), v.item()
    (0.0, 0.75, 0.75)
    """
    if caller_is_outside():
        check_tensor("x", x, min_ndim=1)
        _validate_state(LIFState._make((v,)), tuple(x.shape), x.device)
        _validate_params(params, tuple(x.shape), x.device)
        if v.dtype != x.dtype:
            raise TypeError(f"v: expected the dtype of x ({x.dtype}), got {v.dtype}")
    tau, v_th, v_reset = _cast_params(params, x.dtype)
    return _step(x, v, tau, v_th, v_reset, params.decay_input, params.detach_reset, params.surrogate)


def _lif_multistep(x_seq, params, state=None, backend=None, return_traces=False, check_tau=True):
    check_not_transformed("lif_multistep")
    check_sequence("x_seq", x_seq, min_ndim=2, finite=False)
    scan = scan_deferred("x_seq", x_seq)  # NaN/inf: by the final state (check_finite_after)
    step_shape = tuple(x_seq.shape[1:])
    _validate_params(params, step_shape, x_seq.device, check_tau=check_tau)
    check_bool("return_traces", return_traces)
    cdt = compute_dtype(x_seq.dtype)
    if state is None and not isinstance(params.v_reset, Tensor):
        v0 = None   # the resting state: a kernel starts from v_reset (kernel contract: state None)
    elif state is None:  # a tensor v_reset: V0 = 0 + v_reset carries its gradient
        v0 = initial_state(step_shape, params, dtype=cdt, device=x_seq.device).v
    else:
        v0 = _validate_state(state, step_shape, x_seq.device).to(cdt)

    out = _dispatch.fused("lif", backend, x_seq, params, None if v0 is None else (v0,), return_traces,
                          LIFState, LIFTraces, options=dict(params=params, v0=v0, return_traces=return_traces))
    if out is not None:
        if scan:
            check_finite_after("x_seq", x_seq, out.state.v)
        return _dispatch.result(out, return_traces)
    if v0 is None:
        v0 = initial_state(step_shape, params, dtype=cdt, device=x_seq.device).v

    tau, v_th, v_reset = _cast_params(params, cdt)
    strict = params.threshold == ">"
    v = v0
    spikes, hs, vs = [], [], []
    # unbind once: indexing x_seq[t] would make backward O(T^2) (each index's gradient is a
    # full-size zero tensor with one slice filled)
    for x_t in x_seq.to(cdt).unbind(0):
        s, h, v = _step(
            x_t, v, tau, v_th, v_reset,
            params.decay_input, params.detach_reset, params.surrogate, strict,
        )
        spikes.append(s)
        if return_traces:
            hs.append(h)
            vs.append(v)
    if scan:
        check_finite_after("x_seq", x_seq, v)
    spikes = torch.stack(spikes).to(x_seq.dtype)
    if return_traces:
        return spikes, LIFState(v), LIFTraces(torch.stack(hs), torch.stack(vs))
    return spikes, LIFState(v)


def lif_multistep(
    x_seq: Tensor,
    params: LIFParams = LIFParams(),
    state: Optional[LIFState] = None,
    backend: Optional[str] = None,
    return_traces: bool = False,
):
    """Run the IF/LIF neuron over a time-first sequence ``x_seq`` of shape ``(T, B, *features)``.

    Returns ``(spikes, LIFState)`` or, with ``return_traces=True``,
    ``(spikes, LIFState, LIFTraces(h, v))``; ``spikes`` has the shape and dtype of ``x_seq``,
    the state holds ``V[T-1]`` (after the reset). The numbers equal looping :func:`lif_step`.

    ``backend``: ``None`` (global default, see :func:`spikefuse.kernels.set_backend`),
    ``"auto"``, ``"reference"`` (this plain-torch loop), ``"cpu"`` or ``"triton"``.

    >>> import torch
    >>> x = torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).reshape(5, 1, 1)
    >>> s, st, tr = lif_multistep(x, LIFParams(tau=None), backend="reference", return_traces=True)
    >>> s.flatten().tolist(), tr.h.flatten().tolist()
    ([1.0, 1.0, 0.0, 1.0, 0.0], [1.5, 1.5, 0.5, 3.5, 0.0])
    """
    return _lif_multistep(x_seq, params, state, backend, return_traces)


def _if_params(params):
    if params is None:
        return LIFParams(tau=None)
    if isinstance(params, LIFParams) and params.tau is not None:
        raise ValueError(f"params.tau: expected None for an IF neuron, got {_describe(params.tau)}")
    if isinstance(params, LIFParams) and params.reciprocal_tau is not None:
        raise ValueError(
            f"params.reciprocal_tau: expected None for an IF neuron, got {_describe(params.reciprocal_tau)}"
        )
    return params


def if_step(x: Tensor, state: Optional[LIFState] = None, params: Optional[LIFParams] = None):
    """One IF step (``H = V + X``); ``params`` defaults to ``LIFParams(tau=None)``.

    >>> import torch
    >>> if_step(torch.tensor([[1.5]]))[0].item()
    1.0
    """
    return lif_step(x, state, _if_params(params))


def if_multistep(
    x_seq: Tensor,
    params: Optional[LIFParams] = None,
    state: Optional[LIFState] = None,
    backend: Optional[str] = None,
    return_traces: bool = False,
):
    """IF neuron over a sequence; see :func:`lif_multistep` (``params.tau`` must be None).

    >>> import torch
    >>> s, st = if_multistep(torch.full((3, 1, 1), 0.5), backend="reference")
    >>> s.flatten().tolist()
    [0.0, 1.0, 0.0]
    """
    return lif_multistep(x_seq, _if_params(params), state, backend, return_traces)
