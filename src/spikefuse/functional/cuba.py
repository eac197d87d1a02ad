"""BrainScaleS-2 current-based LIF in physical units, hxtorch semantics (SPEC.md 2.3, 13, 16).

One step (:func:`cuba_lif_step`), with ``a_m = dt/tau_mem`` and ``a_s = dt/tau_syn``::

    dv = a_m * (leak - v + i)          # uses the OLD current: one step of synaptic delay
    i  = i * (1 - a_s) + x             # the input enters the current after its decay
    v  = v + dv                        # replaced by the measured CADC value when given
    z  = superspike(v - threshold)     # forward 1[v > threshold]; replaced by measured spikes
    v  = (1 - z.detach()) * v + z.detach() * reset    # skipped when a CADC trace is given

The recorded membrane is **post-reset**; the reset never carries gradient through ``z``
(``dv_post/dv_pre = 1 - z``). The refractory variant applies :func:`refractory_update` after
each step: while the counter ``ref > 0`` the membrane is clamped to ``reset`` and spikes are
suppressed; a spike loads the counter with ``refractory_time / dt`` (not rounded, so 2.5 blocks
three steps). The ratio ``refractory_time / dt`` is computed in the compute dtype, as hxtorch
computes it in the dtype of its state: ``5e-6 / 1e-6`` is exactly 5 in float32 (fp32, fp16 and
bf16 inputs) and 5.000000000000001 in float64, which blocks six steps, as in hxtorch.

Initial state: ``z = 0``, ``v = leak``, ``i = 0`` (and ``ref = 0``).

Parameters (:class:`CubaParams`) are Python numbers or tensors that broadcast against one
step ``(B, *features)`` without enlarging it (e.g. per-neuron tensors of shape ``(N,)``).
``0 < dt/tau_syn <= 1`` and ``0 < dt/tau_mem <= 1`` are required (stable Euler step).
Tensor parameters that require grad receive gradients from the reference loop.

Hardware observables (SPEC 13.5): ``hw_data = (spikes, membrane_cadc, membrane_madc)``, each
optional and time-first. A given CADC trace replaces the integrated membrane (before the
threshold; no software reset); given spikes replace the emitted spikes. Gradients flow to the
software values through :func:`inject` (forward ``b``, gradient to ``a``). The MADC trace is
returned untouched. The output length is ``T_eff = min(T, len(spikes), len(cadc))``.

Kernel contract (for the fused backends). When ``hw_data is None`` and ``state is None``,
:func:`cuba_lif_integration` / :func:`cuba_refractory_lif_integration` /
:func:`cuba_lif_multistep` call, before the reference loop::

    impl = kernels.resolve("cuba", backend, x, params=params, refractory=<bool>, dt=dt)
    if impl is not None:       # through functional/_dispatch.py, which packs the final state
        (spikes, membrane, current), final, _ = impl(x, params, None, False, dt=dt,
                                                     refractory_time=refractory_time_or_None)

- ``x``: the validated input ``(T, B, *features)`` as given by the user (any float dtype);
- ``params``: a validated :class:`CubaParams` (numbers or tensors broadcasting against
  ``(B, *features)``; ``params.method == "superspike"``, ``params.alpha > 0``);
- ``dt``: a Python float; ``refractory_time_or_None``: ``params.refractory_time`` for the
  refractory variant, else ``None`` (the counter increment is ``float32(rt) / float32(dt)``);
- returns ``spikes`` (dtype of ``x``), ``membrane`` (post-reset) and ``current`` (after the
  update), each ``(T, B, *features)``, membrane/current in fp32 (fp64 for fp64 input);
  identical numbers to the reference loop, and differentiable w.r.t. ``x`` with the same
  gradients as autograd through the loop (SuperSpike backward, detached reset, refractory
  mask without gradient); ``final`` is ``(z, v, i[, ref])`` in CubaState /
  CubaRefractoryState field order. A kernel that cannot differentiate a tensor parameter that requires
  grad must refuse the case in its ``supports`` function.

Example::

    >>> import torch
    >>> from spikefuse.functional.cuba import CubaParams, cuba_lif_integration
    >>> p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
    >>> z, v, i, _ = cuba_lif_integration(x, p, dt=1e-6, backend="reference")
    >>> z.flatten().tolist()
    [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
"""
from __future__ import annotations

from numbers import Real
from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from .._core import check_not_transformed, compute_dtype, f32_ratio
from ..surrogate import SuperSpike
from .._validate import (
    _describe,
    check_bool,
    check_broadcastable,
    check_choice,
    check_number,
    check_finite_after,
    check_sequence,
    check_tensor,
    scan_deferred,
)
from . import _dispatch
from .._validate import caller_is_outside, check_scalar, check_shape, checked_record, tensor_field

__all__ = [
    "CubaParams",
    "HXTORCH_DEFAULTS",
    "CubaState",
    "CubaRefractoryState",
    "CubaTraces",
    "superspike",
    "spiking_threshold",
    "inject",
    "initial_state",
    "cuba_lif_step",
    "refractory_update",
    "cuba_refractory_lif_step",
    "cuba_lif_integration",
    "cuba_refractory_lif_integration",
    "cuba_lif_multistep",
    "crossing_offsets",
]

Param = Union[float, int, Tensor]


class _CubaParamFields(NamedTuple):
    leak: Param = 0.0
    reset: Param = 0.0
    threshold: Param = 1.0
    tau_syn: Param = 10e-6
    tau_mem: Param = 10e-6
    refractory_time: Param = 1e-6
    method: str = "superspike"
    alpha: Param = 50.0


class CubaParams(_CubaParamFields):
    """Parameters of the hxtorch CUBA LIF (keyword arguments only).

    Defaults are normalised software units: ``leak = reset = 0``, ``threshold = 1``,
    ``tau_syn = tau_mem = 10e-6`` s (with the default ``dt = 1e-6`` s: decays of 0.9 per step),
    ``refractory_time = 1e-6`` s (one blocked step; only used by the refractory variant),
    SuperSpike slope ``alpha = 50``. hxtorch's module defaults (hardware-like units: leak 80,
    reset 80, threshold 125) are :data:`HXTORCH_DEFAULTS`.

    The fields are ``leak, reset, threshold, tau_syn, tau_mem, refractory_time, method,
    alpha``; hxtorch's ``CUBALIFParams`` orders them ``tau_mem, tau_syn, refractory_time,
    leak, threshold, reset, alpha``, so a positional call could silently mean other values:
    it is refused. Only the complete tuple of all eight fields in this order (the form in
    which ``copy``, ``pickle`` and ``torch.utils._pytree`` rebuild a NamedTuple) is accepted
    positionally.

    >>> CubaParams(threshold=0.5).tau_mem
    1e-05
    >>> CubaParams(10e-6, 10e-6)
    Traceback (most recent call last):
    ...
    TypeError: CubaParams: pass the parameters by keyword (leak=..., reset=..., threshold=..., tau_syn=..., tau_mem=..., refractory_time=..., method=..., alpha=...); got 2 positional argument(s), and hxtorch's CUBALIFParams orders its fields tau_mem, tau_syn, refractory_time, leak, threshold, reset, alpha
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        if args and len(args) != len(cls._fields):
            names = ", ".join(f"{f}=..." for f in cls._fields)
            raise TypeError(
                f"CubaParams: pass the parameters by keyword ({names}); got {len(args)} positional "
                "argument(s), and hxtorch's CUBALIFParams orders its fields tau_mem, tau_syn, "
                "refractory_time, leak, threshold, reset, alpha"
            )
        return super().__new__(cls, *args, **kwargs)


#: hxtorch's module defaults (SPEC 13)
HXTORCH_DEFAULTS = CubaParams(
    leak=80.0, reset=80.0, threshold=125.0, tau_syn=10e-6, tau_mem=10e-6,
    refractory_time=1e-6, method="superspike", alpha=50.0,
)


@checked_record(z=tensor_field(floating=True), v=tensor_field(floating=True), i=tensor_field(floating=True))
class CubaState(NamedTuple):
    """State after a step, each ``(B, *features)``: spikes ``z``, post-reset membrane ``v``,
    synaptic current ``i``."""

    z: Tensor
    v: Tensor
    i: Tensor


@checked_record(z=tensor_field(floating=True), v=tensor_field(floating=True), i=tensor_field(floating=True), ref=tensor_field(floating=True))
class CubaRefractoryState(NamedTuple):
    """:class:`CubaState` plus the refractory counter ``ref`` (in steps, not rounded)."""

    z: Tensor
    v: Tensor
    i: Tensor
    ref: Tensor


@checked_record(membrane=tensor_field(floating=True), current=tensor_field(floating=True), membrane_madc=tensor_field(floating=True, optional=True))
class CubaTraces(NamedTuple):
    """Per-step traces, each ``(T, B, *features)``: post-reset ``membrane`` and ``current``
    (after the update); ``membrane_madc`` is the MADC trace passed through (or None)."""

    membrane: Tensor
    current: Tensor
    membrane_madc: Optional[Tensor] = None


# --------------------------------------------------------------------------- autograd pieces


def superspike(x: Tensor, alpha: Param = 50.0) -> Tensor:
    """SuperSpike spike (SPEC 2.3): forward ``1[x > 0]`` (strict), backward
    ``1 / (alpha |x| + 1)^2``. Trusted inner function; see :func:`spiking_threshold`.

    >>> import torch
    >>> superspike(torch.tensor([0.0, 0.2])).tolist()
    [0.0, 1.0]
    """
    if caller_is_outside():  # the CUBA / EventProp loops call it per step on checked values
        check_tensor("x", x)
        check_number("alpha", alpha, gt=0)
    if isinstance(alpha, Tensor):
        alpha = alpha.detach().to(x.dtype)
    return SuperSpike.trusted(alpha)(x, strict=True)


def spiking_threshold(input: Tensor, method: str = "superspike", alpha: Param = 50.0) -> Tensor:
    """hxtorch's ``spiking_threshold``: the spike of ``input = v - threshold``.

    Only ``method="superspike"`` exists (forward ``1[input > 0]``, backward
    ``1/(alpha|input| + 1)^2``); any other method raises ``ValueError``.

    >>> import torch
    >>> x = torch.tensor([0.2], requires_grad=True)
    >>> spiking_threshold(x, "superspike", 50.0).backward()
    >>> round(x.grad.item(), 7)   # 1 / (50 * 0.2 + 1)^2
    0.0082645
    """
    check_tensor("input", input)
    check_choice("method", method, ("superspike",))
    check_number("alpha", alpha, gt=0)
    return superspike(input, alpha)


class _Inject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a_shape = a.shape
        out_shape = torch.broadcast_shapes(a.shape, b.shape)
        return b.detach().to(a.dtype).expand(out_shape).clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.sum_to_size(ctx.a_shape), None


def inject(a: Tensor, b: Tensor) -> Tensor:
    """Hardware-observable injection ("Unterjubel"): returns ``b`` (in ``a``'s dtype) in
    forward and passes the incoming gradient unchanged to ``a`` (none to ``b``).

    >>> import torch
    >>> a = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> y = inject(a, torch.tensor([5.0, 6.0]))
    >>> y.tolist()
    [5.0, 6.0]
    >>> (3 * y).sum().backward(); a.grad.tolist()
    [3.0, 3.0]
    """
    finite = caller_is_outside()  # NaN/inf scan for user calls; the library's loops pass checked tensors
    check_tensor("a", a, finite=finite)
    check_tensor("b", b, finite=finite)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"b: shape {tuple(b.shape)} does not broadcast against a's shape {tuple(a.shape)}"
        ) from None
    return _Inject.apply(a, b)


# --------------------------------------------------------------------------- helpers



def _cast(p, dtype):
    return p.to(dtype) if isinstance(p, Tensor) else float(p)


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, Real):
        raise TypeError(f"dt: expected a positive number (seconds), got {_describe(dt)}")
    check_number("dt", dt, gt=0)
    return float(dt)


def _check_tau_ratios(taus, dt, prefix: str = "") -> None:
    """Each ``(name, tau)`` of ``taus``: ``tau > 0`` and ``0 < dt/tau <= 1`` (errors name
    ``prefix + name``); used here and by the CUBA / EventProp modules."""
    for name, tau in taus:
        check_number(f"{prefix}{name}", tau, gt=0)
        ratio = dt / (tau.detach().double() if isinstance(tau, Tensor) else float(tau))
        check_number(f"dt/{prefix}{name}", ratio, gt=0, le=1)


def _validate_params(params, step_shape, device, dt: float, refractory: bool) -> None:
    if not isinstance(params, CubaParams):
        raise TypeError(f"params: expected a CubaParams, got {_describe(params)}")
    check_choice("params.method", params.method, ("superspike",))
    for name in ("leak", "reset", "threshold"):
        check_number(f"params.{name}", getattr(params, name))
    check_number("params.alpha", params.alpha, gt=0)
    _check_tau_ratios((("tau_syn", params.tau_syn), ("tau_mem", params.tau_mem)), dt, "params.")
    if refractory:
        check_number("params.refractory_time", params.refractory_time, ge=0)
    for name in ("leak", "reset", "threshold", "tau_syn", "tau_mem", "alpha", "refractory_time"):
        p = getattr(params, name)
        if isinstance(p, Tensor):
            check_broadcastable(f"params.{name}", p, step_shape)
            if p.device != device:
                raise ValueError(
                    f"params.{name}: expected a tensor on {device} (the input's device), "
                    f"got one on {p.device}"
                )


def _validate_hw(hw_data, x: Tensor):
    """Return (spikes_hw, cadc, madc, T_eff)."""
    T = x.shape[0]
    if hw_data is None:
        return None, None, None, T
    if not isinstance(hw_data, (tuple, list)) or not 1 <= len(hw_data) <= 3:
        raise TypeError(
            "hw_data: expected a tuple (spikes, membrane_cadc, membrane_madc) of tensors or None, "
            f"got {_describe(hw_data)}"
        )
    hw = list(hw_data) + [None] * (3 - len(hw_data))
    names = ("hw_data[0] (spikes)", "hw_data[1] (membrane_cadc)", "hw_data[2] (membrane_madc)")
    for k, (name, tr) in enumerate(zip(names, hw)):
        if tr is None:
            continue
        check_tensor(name, tr, finite=(k < 2))
        if tr.device != x.device:
            raise ValueError(f"{name}: expected a tensor on {x.device} (the input's device), got {tr.device}")
        if k < 2:
            if tr.dim() != x.dim() or tuple(tr.shape[1:]) != tuple(x.shape[1:]) or tr.shape[0] < 1:
                raise ValueError(
                    f"{name}: expected shape (T', {', '.join(str(s) for s in x.shape[1:])}) with "
                    f"T' >= 1 (time-first, same batch/features as x {tuple(x.shape)}), got {tuple(tr.shape)}"
                )
            T = min(T, tr.shape[0])
    return hw[0], hw[1], hw[2], T


def _validate_state(state, step_shape, device, refractory: bool):
    cls = CubaRefractoryState if refractory else CubaState
    n = 4 if refractory else 3
    if not isinstance(state, tuple) or len(state) != n:
        raise TypeError(f"state: expected a {cls.__name__} or None, got {_describe(state)}")
    for name, s in zip(cls._fields, state):
        check_tensor(f"state.{name}", s)
        try:
            ok = torch.broadcast_shapes(tuple(s.shape), tuple(step_shape)) == torch.Size(step_shape)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"state.{name}: expected a shape broadcasting to one step {tuple(step_shape)}, "
                f"got {tuple(s.shape)}"
            )
        if s.device != device:
            raise ValueError(f"state.{name}: expected a tensor on {device} (the input's device), got {s.device}")


def initial_state(shape, params: CubaParams = CubaParams(), dtype=torch.float32, device=None,
                  refractory: bool = False):
    """Resting state of one step of shape ``shape``: ``z = 0``, ``v = leak``, ``i = 0``
    (``ref = 0``), as :class:`CubaState` (or :class:`CubaRefractoryState`).

    >>> initial_state((1, 2), CubaParams(leak=0.5)).v.tolist()
    [[0.5, 0.5]]
    """
    shape = check_shape("shape", shape)
    check_bool("refractory", refractory)
    if not isinstance(params, CubaParams):
        raise TypeError(f"params: expected a CubaParams, got {_describe(params)}")
    zeros = torch.zeros(shape, dtype=dtype, device=device)
    leak = params.leak
    v = zeros + (leak.detach().to(dtype) if isinstance(leak, Tensor) else float(leak))
    if refractory:
        return CubaRefractoryState(zeros, v, zeros.clone(), zeros.clone())
    return CubaState(zeros, v, zeros.clone())


def _ref_steps(refractory_time, dt: float, dtype) -> Union[float, Tensor]:
    """refractory_time / dt computed in the compute dtype ``dtype``, as hxtorch computes
    ``z * refractory_time / dt`` in the dtype of its state (float32 for float32 input: 5e-6/1e-6
    is 5; float64 for float64 input: 5.000000000000001, which blocks six steps)."""
    if isinstance(refractory_time, Tensor):
        rt = refractory_time.detach().to(dtype)
        return rt / torch.tensor(dt, dtype=dtype, device=rt.device)
    if dtype == torch.float64:
        return float(refractory_time) / float(dt)   # IEEE double division, as torch's float64
    return f32_ratio(refractory_time, dt)


# --------------------------------------------------------------------------- trusted steps


def _step(x, z, v, i, leak, reset, threshold, a_m, a_s, alpha, spikes_hw, membrane_hw):
    dv = a_m * (leak - v + i)
    i = i * (1.0 - a_s) + x
    v = v + dv
    if membrane_hw is not None:
        v = _Inject.apply(v, membrane_hw)
    z = superspike(v - threshold, alpha)
    if spikes_hw is not None:
        z = _Inject.apply(z, spikes_hw)
    if membrane_hw is None:
        zd = z.detach()
        v = (1.0 - zd) * v + zd * reset
    return z, v, i


def _refractory(z, v, ref, reset, ref_steps, spikes_hw, membrane_hw):
    m = (ref > 0).to(v.dtype)
    v = (1.0 - m) * v + m * reset
    if membrane_hw is not None:
        v = _Inject.apply(v, membrane_hw)
    z = (1.0 - m) * z
    if spikes_hw is not None:
        z = _Inject.apply(z, spikes_hw)
    zd = z.detach()
    ref = (1.0 - zd) * torch.relu(ref - m) + zd * ref_steps
    return z, v, ref


class _Cast(NamedTuple):
    leak: Param
    reset: Param
    threshold: Param
    a_m: Param
    a_s: Param
    alpha: Param


def _cast_params(params: CubaParams, dt: float, cdt) -> _Cast:
    return _Cast(
        _cast(params.leak, cdt),
        _cast(params.reset, cdt),
        _cast(params.threshold, cdt),
        dt / _cast(params.tau_mem, cdt),
        dt / _cast(params.tau_syn, cdt),
        _cast(params.alpha, cdt),
    )


def _prep_hw_step(name, tr, shape, device, cdt):
    if tr is None:
        return None
    check_tensor(name, tr)
    if tuple(tr.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (one step of x), got {tuple(tr.shape)}")
    if tr.device != device:
        raise ValueError(f"{name}: expected a tensor on {device} (the input's device), got {tr.device}")
    return tr.to(cdt)


# --------------------------------------------------------------------------- public steps


def cuba_lif_step(
    x: Tensor,
    state: Optional[CubaState] = None,
    params: CubaParams = CubaParams(),
    *,
    dt: float = 1e-6,
    spikes_hw: Optional[Tensor] = None,
    membrane_hw: Optional[Tensor] = None,
):
    """One hxtorch CUBA LIF step (SPEC 13.1): ``x`` is ``(B, *features)``; returns
    ``(z, CubaState(z, v, i))`` with the post-reset membrane. ``state=None`` is the resting
    state. ``spikes_hw`` / ``membrane_hw`` (one step each) replace the spike / integrated
    membrane values (see :func:`inject`).

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    >>> z, s = cuba_lif_step(torch.ones(1, 1), None, p)
    >>> z.item(), s.v.item(), s.i.item()   # the input reaches v one step later
    (0.0, 0.0, 1.0)
    """
    check_tensor("x", x, min_ndim=1)
    dt = _check_dt(dt)
    _validate_params(params, tuple(x.shape), x.device, dt, refractory=False)
    cdt = compute_dtype(x.dtype)
    if state is None:
        state = initial_state(x.shape, params, cdt, x.device)
    else:
        _validate_state(state, tuple(x.shape), x.device, refractory=False)
    sh = _prep_hw_step("spikes_hw", spikes_hw, x.shape, x.device, cdt)
    mh = _prep_hw_step("membrane_hw", membrane_hw, x.shape, x.device, cdt)
    c = _cast_params(params, dt, cdt)
    z, v, i = _step(x.to(cdt), state.z.to(cdt), state.v.to(cdt), state.i.to(cdt), c.leak, c.reset,
                    c.threshold, c.a_m, c.a_s, c.alpha, sh, mh)
    return z.to(x.dtype), CubaState(z, v, i)


def refractory_update(
    z: Tensor,
    v: Tensor,
    ref: Tensor,
    spikes_hw: Optional[Tensor] = None,
    membrane_hw: Optional[Tensor] = None,
    *,
    reset: Param = 0.0,
    refractory_time: Param = 1e-6,
    dt: float = 1e-6,
):
    """hxtorch's refractory update (SPEC 13.3), applied after :func:`cuba_lif_step`::

        m   = 1[ref > 0]                                   (no gradient)
        v   = (1 - m) v + m reset      -> replaced by membrane_hw if given
        z   = (1 - m) z                -> replaced by spikes_hw if given
        ref = (1 - z) relu(ref - m) + z refractory_time / dt

    Returns ``(z, v, ref)``. ``refractory_time / dt`` is computed in the compute dtype of ``v``
    (float32, float64 for float64 ``v``) and not rounded.

    >>> import torch
    >>> z, v, ref = refractory_update(torch.ones(1), torch.zeros(1), torch.zeros(1),
    ...                               refractory_time=2.5e-6, dt=1e-6)
    >>> ref.item()
    2.5
    """
    check_tensor("z", z)
    check_tensor("v", v)
    check_tensor("ref", ref)
    dt = _check_dt(dt)
    check_number("reset", reset)
    check_number("refractory_time", refractory_time, ge=0)
    check_broadcastable("reset", reset, tuple(v.shape))
    check_broadcastable("refractory_time", refractory_time, tuple(v.shape))
    for name, t in (("z", z), ("ref", ref)):
        try:
            torch.broadcast_shapes(t.shape, v.shape)
        except RuntimeError:
            raise ValueError(f"{name}: shape {tuple(t.shape)} does not broadcast against v {tuple(v.shape)}") from None
    cdt = compute_dtype(v.dtype)
    sh = _prep_hw_step("spikes_hw", spikes_hw, v.shape, v.device, cdt)
    mh = _prep_hw_step("membrane_hw", membrane_hw, v.shape, v.device, cdt)
    steps = _ref_steps(refractory_time, dt, cdt)
    steps = steps.to(v.dtype) if isinstance(steps, Tensor) else steps
    return _refractory(z, v, ref, _cast(reset, v.dtype), steps, sh, mh)


def cuba_refractory_lif_step(
    x: Tensor,
    state: Optional[CubaRefractoryState] = None,
    params: CubaParams = CubaParams(),
    *,
    dt: float = 1e-6,
    spikes_hw: Optional[Tensor] = None,
    membrane_hw: Optional[Tensor] = None,
):
    """One refractory CUBA LIF step: :func:`cuba_lif_step` then :func:`refractory_update`;
    returns ``(z, CubaRefractoryState(z, v, i, ref))``.

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, refractory_time=2e-6)
    >>> s = CubaRefractoryState(*(torch.zeros(1, 1) for _ in range(2)), torch.ones(1, 1), torch.zeros(1, 1))
    >>> z, s = cuba_refractory_lif_step(torch.zeros(1, 1), s, p)
    >>> z.item(), s.ref.item()
    (1.0, 2.0)
    """
    check_tensor("x", x, min_ndim=1)
    dt = _check_dt(dt)
    _validate_params(params, tuple(x.shape), x.device, dt, refractory=True)
    cdt = compute_dtype(x.dtype)
    if state is None:
        state = initial_state(x.shape, params, cdt, x.device, refractory=True)
    else:
        _validate_state(state, tuple(x.shape), x.device, refractory=True)
    sh = _prep_hw_step("spikes_hw", spikes_hw, x.shape, x.device, cdt)
    mh = _prep_hw_step("membrane_hw", membrane_hw, x.shape, x.device, cdt)
    c = _cast_params(params, dt, cdt)
    z, v, i = _step(x.to(cdt), state.z.to(cdt), state.v.to(cdt), state.i.to(cdt), c.leak, c.reset,
                    c.threshold, c.a_m, c.a_s, c.alpha, sh, mh)
    z, v, ref = _refractory(z, v, state.ref.to(cdt), c.reset,
                            _ref_steps(params.refractory_time, dt, cdt), sh, mh)
    return z.to(x.dtype), CubaRefractoryState(z, v, i, ref)


# --------------------------------------------------------------------------- sequences


def _run(x, params, hw_data, dt, backend, state, refractory: bool, name: str = "x"):
    """Validated run; returns (spikes, membrane, current, madc, final_state). Without hw_data
    the NaN/inf check of ``x`` is done through the final state (a non-finite input at any step
    stays in the current ``i``, which is never reset: _validate.check_finite_after)."""
    check_not_transformed("cuba_lif_integration")
    check_sequence(name, x, min_ndim=2, finite=hw_data is not None)
    after = hw_data is None and scan_deferred(name, x)
    dt = _check_dt(dt)
    step_shape = tuple(x.shape[1:])
    _validate_params(params, step_shape, x.device, dt, refractory)
    spikes_hw, cadc, madc, T = _validate_hw(hw_data, x)
    cdt = compute_dtype(x.dtype)
    if state is not None:
        _validate_state(state, step_shape, x.device, refractory)

    if hw_data is None and state is None:
        out = _dispatch.fused(
            "cuba", backend, x, params, None, False,
            CubaRefractoryState if refractory else CubaState,
            options=dict(params=params, refractory=refractory, dt=dt),
            extra=dict(dt=dt, refractory_time=params.refractory_time if refractory else None))
        if out is not None:
            spikes, membrane, current = out.outputs
            if after:
                check_finite_after(name, x, *out.state)
            return spikes, membrane, current, None, out.state
    else:
        check_choice("backend", backend, (None,) + _dispatch.BACKENDS)
        if backend not in (None, "auto", "reference"):
            raise ValueError(
                f"backend: {backend!r} cannot run a cuba case with hw_data or an initial state; "
                "use backend='reference' or 'auto'"
            )

    if state is None:
        state = initial_state(step_shape, params, cdt, x.device, refractory)
    z, v, i = (s.to(cdt) for s in state[:3])
    z = z.expand(step_shape)
    v = v.expand(step_shape)
    i = i.expand(step_shape)
    ref = state[3].to(cdt).expand(step_shape) if refractory else None
    c = _cast_params(params, dt, cdt)
    ref_steps = _ref_steps(params.refractory_time, dt, cdt) if refractory else None
    # unbind once (indexing [t] would make backward O(T^2)); the input may be longer than T_eff
    xs = x[:T].to(cdt).unbind(0)
    sh = spikes_hw[:T].to(cdt).unbind(0) if spikes_hw is not None else [None] * T
    mh = cadc[:T].to(cdt).unbind(0) if cadc is not None else [None] * T
    zs, vs, is_ = [], [], []
    for x_t, st, mt in zip(xs, sh, mh):
        z, v, i = _step(x_t, z, v, i, c.leak, c.reset, c.threshold, c.a_m, c.a_s, c.alpha, st, mt)
        if refractory:
            z, v, ref = _refractory(z, v, ref, c.reset, ref_steps, st, mt)
        zs.append(z)
        vs.append(v)
        is_.append(i)
    final = CubaRefractoryState(z, v, i, ref) if refractory else CubaState(z, v, i)
    if after:
        check_finite_after(name, x, *final)
    return torch.stack(zs).to(x.dtype), torch.stack(vs), torch.stack(is_), madc, final


def cuba_lif_integration(
    x: Tensor,
    params: CubaParams = CubaParams(),
    hw_data=None,
    dt: float = 1e-6,
    backend: Optional[str] = None,
    state: Optional[CubaState] = None,
):
    """hxtorch's ``cuba_lif_integration`` (SPEC 13.2) over ``x`` of shape ``(T, B, *features)``.

    Returns ``(spikes, membrane, current, membrane_madc)``: each ``(T_eff, B, *features)``
    (``T_eff = min(T, len(hw spikes), len(hw CADC))``), the membrane post-reset, the current
    after the update; the 4th entry is ``hw_data[2]`` passed through (None if absent).
    ``hw_data = (spikes, membrane_cadc, membrane_madc)``, entries optional (SPEC 13.5).
    ``state`` (a :class:`CubaState`) replaces the resting start.

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
    >>> z, v, i, madc = cuba_lif_integration(x, p, dt=1e-6, backend="reference")
    >>> [round(a, 5) for a in v.flatten().tolist()]
    [0.0, 0.0, 0.25, 0.25, 0.0, 0.23125]
    """
    z, v, i, madc, _ = _run(x, params, hw_data, dt, backend, state, refractory=False)
    return z, v, i, madc


def cuba_refractory_lif_integration(
    x: Tensor,
    params: CubaParams = CubaParams(),
    hw_data=None,
    dt: float = 1e-6,
    backend: Optional[str] = None,
    state: Optional[CubaRefractoryState] = None,
):
    """hxtorch's ``cuba_refractory_lif_integration`` (SPEC 13.3): as
    :func:`cuba_lif_integration` with :func:`refractory_update` after every step, using
    ``params.refractory_time``. ``state`` is a :class:`CubaRefractoryState`.

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, refractory_time=2e-6)
    >>> x = torch.zeros(6, 1, 1); x[0] = 1.0; x[3] = 0.8
    >>> z, v, i, _ = cuba_refractory_lif_integration(x, p, dt=1e-6, backend="reference")
    >>> z.flatten().tolist()
    [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    """
    z, v, i, madc, _ = _run(x, params, hw_data, dt, backend, state, refractory=True)
    return z, v, i, madc


def cuba_lif_multistep(
    x_seq: Tensor,
    params: CubaParams = CubaParams(),
    state=None,
    backend: Optional[str] = None,
    return_traces: bool = False,
    *,
    dt: float = 1e-6,
    hw_data=None,
    refractory: bool = False,
):
    """The DESIGN.md-style multi-step entry point: returns ``(spikes, state)`` or, with
    ``return_traces=True``, ``(spikes, state, CubaTraces(membrane, current, membrane_madc))``.
    ``state`` is the final :class:`CubaState` (:class:`CubaRefractoryState` with
    ``refractory=True``), usable as the start of the next call. Same numbers as looping
    :func:`cuba_lif_step` (:func:`cuba_refractory_lif_step`).

    >>> import torch
    >>> s, st = cuba_lif_multistep(torch.full((3, 1, 1), 0.5), CubaParams(), backend="reference")
    >>> st.i.item() > 0
    True
    """
    check_bool("return_traces", return_traces)
    check_bool("refractory", refractory)
    z, v, i, madc, final = _run(x_seq, params, hw_data, dt, backend, state, refractory, name="x_seq")
    if return_traces:
        return z, final, CubaTraces(v, i, madc)
    return z, final


def crossing_offsets(membrane: Tensor, current: Tensor, params: CubaParams = CubaParams(),
                     dt: float = 1e-6, state: Optional[CubaState] = None) -> Tensor:
    """Sub-step threshold-crossing offsets for :func:`spikefuse.losses.first_spike_time`.

    For a spike at step ``k`` of :func:`cuba_lif_integration` the membrane rises linearly
    within the step from ``v[k-1]`` (post-reset) to ``v'_k = v[k-1] + dt/tau_mem (leak -
    v[k-1] + i[k-1])`` (pre-reset, old current); the crossing sits at fraction
    ``f = (threshold - v[k-1]) / (v'_k - v[k-1])`` of the step and the returned offset is
    ``f - 1`` in ``(-1, 0]`` (so ``t_k = (k + offset) dt``). Non-spiking steps get the same
    formula (clipped to ``[-1, 0]``); the values carry no gradient.

    >>> import torch
    >>> p = CubaParams(threshold=0.3, tau_syn=2e-6, tau_mem=2e-6)
    >>> x = torch.zeros(3, 1, 1); x[0] = 1.0
    >>> z, v, i, _ = cuba_lif_integration(x, p, dt=1e-6, backend="reference")
    >>> round(crossing_offsets(v, i, p, 1e-6)[1].item(), 4)   # 0 -> 0.5 crosses 0.3 at 0.6
    -0.4
    """
    dt = _check_traces(membrane, current, params, dt)
    with torch.no_grad():
        cdt = compute_dtype(membrane.dtype)
        st = initial_state(membrane.shape[1:], params, cdt, membrane.device) if state is None else state
        v_prev = torch.cat([st.v.to(cdt).expand(membrane.shape[1:])[None], membrane[:-1].to(cdt)])
        i_prev = torch.cat([st.i.to(cdt).expand(membrane.shape[1:])[None], current[:-1].to(cdt)])
        c = _cast_params(params, dt, cdt)
        v_pre = v_prev + c.a_m * (c.leak - v_prev + i_prev)
        return _offsets(v_prev, v_pre, c.threshold)


def _check_traces(membrane, current, params, dt) -> float:
    """Validate the arguments of a ``crossing_offsets`` (here and in
    :mod:`spikefuse.functional.eventprop`): two equal-shape sequences, ``dt`` and ``params``.
    Returns ``dt`` as a float."""
    check_sequence("membrane", membrane)
    check_sequence("current", current)
    if membrane.shape != current.shape:
        raise ValueError(f"current: expected the shape of membrane {tuple(membrane.shape)}, got {tuple(current.shape)}")
    dt = _check_dt(dt)
    _validate_params(params, tuple(membrane.shape[1:]), membrane.device, dt, refractory=False)
    return dt


def _offsets(v_prev: Tensor, v_pre: Tensor, threshold) -> Tensor:
    den = v_pre - v_prev
    f = (threshold - v_prev) / torch.where(den == 0, torch.ones_like(den), den)
    f = torch.where(den == 0, torch.ones_like(f), f)
    return (f.clamp(0.0, 1.0) - 1.0)
