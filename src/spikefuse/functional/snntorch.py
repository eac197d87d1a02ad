"""snnTorch's ``Leaky`` and ``Synaptic`` neurons, step for step (snnTorch 0.9 - 1.0 semantics).

``mem`` is what snnTorch calls the membrane: the value its ``forward`` returns, *before* the
reset that this step's spike causes (with the default ``reset_delay=True`` the reset is applied
one step later, from the previous membrane). One step, in snnTorch's operation order, with
``b = clamp(beta, 0, 1)``, ``a = clamp(alpha, 0, 1)`` and ``H(u) = 1[u > 0]`` (a *strict*
comparison: snnTorch's surrogates fire on ``mem - threshold > 0``)::

    R        = H(mem - threshold), detached          (snnTorch's mem_reset: .clone().detach())
    Leaky    subtract  mem' = (b * mem + x) - R * threshold
             zero      mem' = b * ((1 - R) * mem) + x          (the input survives the reset)
             none      mem' = b * mem + x
    Synaptic syn' = a * syn + x,  m = b * mem + syn'
             subtract  mem' = m - R * threshold
             zero      mem' = m - m * R                        (the whole new membrane is wiped,
                                                                input included; syn' is kept)
             none      mem' = m
    spike    S = H(mem' - threshold) * graded_spikes_factor     (surrogate gradient in backward)

With ``reset_delay=False`` the reset of this step's spike follows at once, as snnTorch does it
(``D = S / graded_spikes_factor - R``, *not* detached): subtract ``mem' = mem' - D * threshold``,
zero ``mem' = mem' - D * mem'``.

The state starts at zero (snnTorch's ``mem`` and ``syn`` start empty and become
``zeros_like(input)``). Parameters are numbers or tensors broadcasting against one step
``(B, *features)``; tensors that require grad (snnTorch's ``learn_beta`` / ``learn_threshold``
/ ``learn_alpha`` / ``learn_graded_spikes_factor``) receive gradients through the same graph as
in snnTorch. The surrogate defaults to ``ATan(2.0)``, snnTorch's default ``atan()`` (its
gradient ``alpha/2 / (1 + (pi/2 alpha u)^2)``); ``FastSigmoid(slope)`` is snnTorch's
``fast_sigmoid``. ``Leaky`` has fused kernels (kernels/triton/peers.py, kernels/cpu/peers.py;
``"auto"`` falls back to the loop for what they do not cover, e.g. a learnable
``graded_spikes_factor``); so has ``Synaptic`` (every reset mechanism, ``reset_delay``, learnable
``alpha`` / ``beta`` / ``threshold``; the surrogates with an in-kernel formula).

    >>> import torch
    >>> x = torch.tensor([0.6, 0.6, 0.0]).reshape(3, 1, 1)
    >>> s, st, tr = leaky_multistep(x, LeakyParams(beta=0.5), return_traces=True)
    >>> s.flatten().tolist(), tr.mem.flatten().tolist()    # 0.6, 0.9, 0.45: never > 1
    ([0.0, 0.0, 0.0], [0.6000000238418579, 0.9000000357627869, 0.45000001788139343])
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._core import compute_dtype
from .._validate import _describe, check_bool, check_choice, check_tensor
from .._validate import bool_field, callable_field, checked_record, choice_field, number_field, tensor_field
from ..surrogate import ATan, Surrogate
from ._peers import begin, cast, check_param, check_state_tensor, check_surrogate, finish, fused, run_loop

__all__ = ["RESET_MECHANISMS", "LeakyParams", "LeakyState", "LeakyTraces", "SynapticParams",
           "SynapticState", "SynapticTraces", "leaky_step", "leaky_multistep", "synaptic_step",
           "synaptic_multistep"]

Number = Union[float, int]
#: snnTorch's ``reset_mechanism`` values
RESET_MECHANISMS = ("subtract", "zero", "none")


@checked_record(beta=number_field(), threshold=number_field(), reset_mechanism=choice_field("subtract", "zero", "none"),
                reset_delay=bool_field, graded_spikes_factor=number_field(), surrogate=callable_field)
class LeakyParams(NamedTuple):
    """snnTorch ``Leaky``: ``beta`` (decay, clamped to [0, 1] in every step), ``threshold``,
    ``reset_mechanism`` (``"subtract"`` / ``"zero"`` / ``"none"``), ``reset_delay``,
    ``graded_spikes_factor``, ``surrogate`` (snnTorch's ``spike_grad``)."""

    beta: Union[Number, Tensor]
    threshold: Union[Number, Tensor] = 1.0
    reset_mechanism: str = "subtract"
    reset_delay: bool = True
    graded_spikes_factor: Union[Number, Tensor] = 1.0
    surrogate: Surrogate = ATan(2.0)


@checked_record(mem=tensor_field(floating=True))
class LeakyState(NamedTuple):
    """snnTorch's ``mem`` after the last step (before the reset of that step's spike when
    ``reset_delay=True``), shape ``(B, *features)``."""

    mem: Tensor


@checked_record(mem=tensor_field(floating=True))
class LeakyTraces(NamedTuple):
    """``mem`` of every step, ``(T, B, *features)``: what snnTorch's forward returns each step."""

    mem: Tensor


@checked_record(alpha=number_field(), beta=number_field(), threshold=number_field(),
                reset_mechanism=choice_field("subtract", "zero", "none"), reset_delay=bool_field, surrogate=callable_field)
class SynapticParams(NamedTuple):
    """snnTorch ``Synaptic``: ``alpha`` (synaptic decay), ``beta`` (membrane decay), both
    clamped to [0, 1]; the rest as :class:`LeakyParams` (snnTorch's ``Synaptic`` has no
    ``graded_spikes_factor`` argument: its spikes are 0 or 1)."""

    alpha: Union[Number, Tensor]
    beta: Union[Number, Tensor]
    threshold: Union[Number, Tensor] = 1.0
    reset_mechanism: str = "subtract"
    reset_delay: bool = True
    surrogate: Surrogate = ATan(2.0)


@checked_record(syn=tensor_field(floating=True), mem=tensor_field(floating=True))
class SynapticState(NamedTuple):
    """snnTorch's ``syn`` and ``mem`` after the last step, each ``(B, *features)``."""

    syn: Tensor
    mem: Tensor


@checked_record(syn=tensor_field(floating=True), mem=tensor_field(floating=True))
class SynapticTraces(NamedTuple):
    """``syn`` and ``mem`` of every step, ``(T, B, *features)``."""

    syn: Tensor
    mem: Tensor


# --------------------------------------------------------------------------- checks


def _check_params(params, cls, step_shape, device) -> None:
    if not isinstance(params, cls):
        raise TypeError(f"params: expected a {cls.__name__}, got {_describe(params)}")
    for name in ("alpha", "beta", "threshold", "graded_spikes_factor"):
        if name in cls._fields:
            check_param(f"params.{name}", getattr(params, name), step_shape, device)
    check_choice("params.reset_mechanism", params.reset_mechanism, RESET_MECHANISMS)
    check_bool("params.reset_delay", params.reset_delay)
    check_surrogate("params.surrogate", params.surrogate)


def _initial(state, cls, shape, x, cdt) -> tuple:
    if state is None:
        return tuple(torch.zeros(tuple(shape), dtype=cdt, device=x.device) for _ in cls._fields)
    if not isinstance(state, tuple) or len(state) != len(cls._fields):
        fields = ", ".join(f"{f}=..." for f in cls._fields)
        raise TypeError(f"state: expected a {cls.__name__}({fields}) or None, got {_describe(state)}")
    return tuple(check_state_tensor(f"state.{f}", v, shape, x.device).to(cdt)
                 for f, v in zip(cls._fields, state))


# --------------------------------------------------------------------------- the step


def _clamp01(p):
    return p.clamp(0, 1) if isinstance(p, Tensor) else min(max(p, 0.0), 1.0)


def _fire(mem, threshold, gsf, surrogate):
    """snnTorch's ``fire``: ``spike_grad(mem - threshold) * graded_spikes_factor``."""
    return surrogate(mem - threshold, strict=True) * gsf


def _late_reset(mem, spk, reset, threshold, gsf, mechanism):
    """``reset_delay=False``: the reset of this step's spike, at once (not detached)."""
    do_reset = spk / gsf - reset
    if mechanism == "subtract":
        return mem - do_reset * threshold
    if mechanism == "zero":
        return mem - do_reset * mem
    return mem


def _leaky(x, mem, beta, threshold, gsf, mechanism, delay, surrogate):
    """One trusted step in the compute dtype; returns ``(spike, mem')``."""
    reset = surrogate(mem - threshold, strict=True).detach()
    b = _clamp01(beta)
    if mechanism == "subtract":
        new = b * mem + x - reset * threshold
    elif mechanism == "zero":
        new = b * ((1 - reset) * mem) + x
    else:
        new = b * mem + x
    spk = _fire(new, threshold, gsf, surrogate)
    if not delay:
        new = _late_reset(new, spk, reset, threshold, gsf, mechanism)
    return spk, new


def _synaptic(x, syn, mem, alpha, beta, threshold, gsf, mechanism, delay, surrogate):
    """One trusted step in the compute dtype; returns ``(spike, syn', mem')``."""
    reset = surrogate(mem - threshold, strict=True).detach()
    a, b = _clamp01(alpha), _clamp01(beta)
    syn_new = a * syn + x
    new = b * mem + syn_new
    if mechanism == "subtract":
        new = new - reset * threshold
    elif mechanism == "zero":
        # snnTorch subtracts a second evaluation of the same membrane (its own graph branch,
        # clamps included, so that the gradients sum in snnTorch's order)
        new = new - (_clamp01(beta) * mem + (_clamp01(alpha) * syn + x)) * reset
    spk = _fire(new, threshold, gsf, surrogate)
    if not delay:
        new = _late_reset(new, spk, reset, threshold, gsf, mechanism)
    return spk, syn_new, new


def _leaky_fn(params, cdt):
    beta, thr, gsf = (cast(getattr(params, n), cdt) for n in ("beta", "threshold", "graded_spikes_factor"))
    mech, delay, sur = params.reset_mechanism, params.reset_delay, params.surrogate

    def step(x_t, state):
        s, mem = _leaky(x_t, state[0], beta, thr, gsf, mech, delay, sur)
        return s, (mem,), (mem,)

    return step


def _synaptic_fn(params, cdt):
    alpha, beta, thr = (cast(getattr(params, n), cdt) for n in ("alpha", "beta", "threshold"))
    gsf = 1.0
    mech, delay, sur = params.reset_mechanism, params.reset_delay, params.surrogate

    def step(x_t, state):
        s, syn, mem = _synaptic(x_t, state[0], state[1], alpha, beta, thr, gsf, mech, delay, sur)
        return s, (syn, mem), (syn, mem)

    return step


# --------------------------------------------------------------------------- public API


def _one_step(x, state, params, params_cls, state_cls, make):
    check_tensor("x", x, min_ndim=1)
    _check_params(params, params_cls, tuple(x.shape), x.device)
    cdt = compute_dtype(x.dtype)
    s, new, _ = make(params, cdt)(x.to(cdt), _initial(state, state_cls, x.shape, x, cdt))
    return s.to(x.dtype), state_cls(*new)


def _multi(name, family, x_seq, params, state, backend, return_traces, classes, make, kernel=None):
    params_cls, state_cls, traces_cls = classes
    cdt = begin(name, family, x_seq, backend, return_traces, kernel, after=True)
    step_shape = tuple(x_seq.shape[1:])
    _check_params(params, params_cls, step_shape, x_seq.device)
    init = _initial(state, state_cls, step_shape, x_seq, cdt)
    out = fused(kernel, backend, x_seq, params, init, return_traces, state_cls, traces_cls)
    if out is None:
        spikes, last, traces = run_loop(make(params, cdt), x_seq, cdt, init, return_traces)
        out = (spikes, state_cls(*last), traces_cls(*traces)) if return_traces else (spikes, state_cls(*last))
    return finish(x_seq, out, return_traces)


def leaky_step(x: Tensor, state: Optional[LeakyState], params: LeakyParams):
    """One snnTorch ``Leaky`` step on ``x`` ``(B, *features)``; ``state=None`` is ``mem = 0``.
    Returns ``(spike, LeakyState(mem))``, as snnTorch's ``spk, mem = lif(x, mem)``.

    >>> import torch
    >>> s, st = leaky_step(torch.tensor([[1.0]]), None, LeakyParams(beta=0.9))
    >>> s.item(), st.mem.item()          # mem = 1.0 is at the threshold: 1.0 > 1.0 is false
    (0.0, 1.0)
    """
    return _one_step(x, state, params, LeakyParams, LeakyState, _leaky_fn)


def leaky_multistep(x_seq: Tensor, params: LeakyParams, state: Optional[LeakyState] = None,
                    backend: Optional[str] = None, return_traces: bool = False):
    """snnTorch ``Leaky`` over ``x_seq`` ``(T, B, *features)``: the numbers of looping
    :func:`leaky_step`. Returns ``(spikes, LeakyState)`` or, with ``return_traces``,
    ``(spikes, LeakyState, LeakyTraces(mem))``. ``backend``: None / ``"auto"`` /
    ``"reference"`` / ``"triton"`` / ``"cpu"`` (the fused scans: the same spikes and states)."""
    return _multi("leaky_multistep", "snntorch.leaky", x_seq, params, state, backend, return_traces,
                  (LeakyParams, LeakyState, LeakyTraces), _leaky_fn, kernel="snntorch_leaky")


def synaptic_step(x: Tensor, state: Optional[SynapticState], params: SynapticParams):
    """One snnTorch ``Synaptic`` step; ``state=None`` is ``syn = mem = 0``. Returns
    ``(spike, SynapticState(syn, mem))``, as snnTorch's ``spk, syn, mem = lif(x, syn, mem)``.

    >>> import torch
    >>> s, st = synaptic_step(torch.tensor([[0.5]]), None, SynapticParams(alpha=0.5, beta=0.5))
    >>> s.item(), st.syn.item(), st.mem.item()
    (0.0, 0.5, 0.5)
    """
    return _one_step(x, state, params, SynapticParams, SynapticState, _synaptic_fn)


def synaptic_multistep(x_seq: Tensor, params: SynapticParams, state: Optional[SynapticState] = None,
                       backend: Optional[str] = None, return_traces: bool = False):
    """snnTorch ``Synaptic`` over ``x_seq`` ``(T, B, *features)``; see :func:`leaky_multistep`
    (traces: ``SynapticTraces(syn, mem)``)."""
    return _multi("synaptic_multistep", "snntorch.synaptic", x_seq, params, state, backend, return_traces,
                  (SynapticParams, SynapticState, SynapticTraces), _synaptic_fn, kernel="snntorch_synaptic")
