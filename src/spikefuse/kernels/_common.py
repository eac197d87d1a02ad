"""Helpers shared by the fused backends (CPU and Triton): parameter expansion, ``supports``
reasons, the LIF variants and the hxtorch CUBA constants. Neither backend imports the other;
both import this module (and :mod:`spikefuse._core`).

Parameters arrive as Python numbers or tensors broadcastable to the state shape ``(B, *features)``
(DESIGN.md: scalar = shared, per-channel = one per feature). Fused kernels want one fp32 value
per neuron, so :func:`expand_param` turns a parameter into a flat, contiguous fp32 vector of
``B * prod(features)`` entries. The expansion is an ordinary differentiable torch op, so a kernel
returns a per-neuron gradient and autograd sums it back to the parameter's own shape.

Example::

    >>> import torch
    >>> expand_param(2.0, (2, 3), torch.device("cpu"))
    tensor([2., 2., 2., 2., 2., 2.])
    >>> expand_param(torch.tensor([1.0, 2.0, 3.0]), (2, 3), torch.device("cpu"))
    tensor([1., 2., 3., 1., 2., 3.])
"""
from __future__ import annotations

import functools
import math
from numbers import Real
from typing import Optional, Sequence

import torch

from .._core import expand_param, f32, f32_ratio, flat_param, is_compiling, sum_to  # noqa: F401  (re-exported)
from ..fixed_point import alif_constants, cuba_constants, decay_view, round_ste, trunc_int
from .scan import ScanFunction, ScanSpec

IO_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class KernelSurrogate:
    """A surrogate rebuilt from its kernel id and parameters (what crosses a torch.library op
    boundary): ``kernel_id`` and ``kernel_params`` as on :class:`spikefuse.surrogate.Surrogate`."""

    def __init__(self, kernel_id: int, a0: float, a1: float):
        self.kernel_id = int(kernel_id)
        self.kernel_params = (float(a0), float(a1))


def _broadcasts(shape: tuple, target: tuple) -> bool:
    """:func:`broadcasts_to` without its cache (what a torch.compile trace calls: Dynamo does not
    trace into an ``lru_cache`` wrapper, it warns that it ignores the cache and runs the wrapped
    function anyway)."""
    if len(shape) > len(target):
        return False
    return all(a == b or a == 1 for a, b in zip(shape[::-1], target[::-1]))


@functools.lru_cache(maxsize=256)
def broadcasts_to(shape: tuple, target: tuple) -> bool:
    """True if a tensor of ``shape`` broadcasts to exactly ``target`` (what
    ``torch.broadcast_shapes(shape, target) == target`` says, without its per-call cost: the
    kernels' ``supports`` rules ask it for every parameter on every call, with the same few
    shape pairs; issue 15 item 3). Cached for eager calls; under torch.compile
    :func:`param_reason` calls the uncached rule (the trace runs once, the cache would only
    make Dynamo warn).

    >>> broadcasts_to((3,), (2, 3)), broadcasts_to((1, 3), (2, 3)), broadcasts_to((2, 1, 3), (2, 3))
    (True, True, False)
    """
    return _broadcasts(shape, target)


def param_reason(name: str, p, shape: Sequence[int], device: torch.device) -> Optional[str]:
    """None if ``p`` can be expanded to ``shape`` on ``device``, else a reason string."""
    if p is None or isinstance(p, bool):
        return f"{name} must be a number or a tensor, got {p!r}"
    if isinstance(p, Real):
        return None
    if not isinstance(p, torch.Tensor):
        return f"{name} must be a number or a tensor, got {type(p).__name__}"
    fits = _broadcasts if is_compiling() else broadcasts_to
    if not fits(tuple(p.shape), tuple(shape)):
        return f"{name} of shape {tuple(p.shape)} does not broadcast to the state shape {tuple(shape)}"
    if p.numel() > 1 and p.device != device:
        return f"{name} is on {p.device}, the input on {device}"
    if not (p.is_floating_point() or p.dtype in (torch.int32, torch.int64)):
        return f"{name} has dtype {p.dtype}, expected a floating dtype"
    return None



def lif_param_reason(x_seq: torch.Tensor, params, v0=None) -> Optional[str]:
    """None if the LIF parameters (``tau``/``v_reset`` may be None, ``v_threshold`` may not) and
    a tensor ``v0`` expand to the state shape of ``x_seq``, else the first reason (both the CPU
    and the Triton LIF ``supports`` rules use it; both kernels run either ``threshold``
    comparison, ``">="`` and the strict ``">"``)."""
    shape = tuple(x_seq.shape[1:])
    rtau = getattr(params, "reciprocal_tau", None)
    for name, p in (("tau", params.tau), ("v_threshold", params.v_threshold), ("v_reset", params.v_reset),
                    ("reciprocal_tau", rtau)):
        if p is None and name != "v_threshold":
            continue
        why = param_reason(name, p, shape, x_seq.device)
        if why is not None:
            return why
    if v0 is not None and not isinstance(v0, (int, float)):
        why = param_reason("v0", v0, shape, x_seq.device)
        if why is not None:
            return why
    return None


#: LIF kernel variants (SPEC: IF has no tau; LIF with or without decay_input)
KIND_IF, KIND_LIF_DECAY_INPUT, KIND_LIF = 0, 1, 2


def lif_kind(params) -> int:
    """The LIF kernel variant of ``params`` (a LIFParams; a ``reciprocal_tau`` is a LIF too)."""
    if params.tau is None and getattr(params, "reciprocal_tau", None) is None:
        return KIND_IF
    return KIND_LIF_DECAY_INPUT if params.decay_input else KIND_LIF


def lif_outputs(spk, vlast, hseq, vseq, x_shape, return_traces: bool):
    """A fused LIF kernel's flat ``(T, M)`` / ``(M,)`` results viewed back in the input's shape
    ``x_shape = (T, B, *features)``, in the kernel contract: ``((spikes,), (v_last,),
    (h_seq, v_seq) or None)`` (LIFState / LIFTraces field order)."""
    shape = tuple(x_shape[1:])
    traces = (hseq.view(tuple(x_shape)), vseq.view(tuple(x_shape))) if return_traces else None
    return (spk.view(x_shape),), (vlast.view(shape),), traces


def lif_v0(state):
    """The initial membrane of a LIF kernel call: ``state`` is ``(v0,)`` or None."""
    return None if state is None else state[0]


def grad_bits(tensors) -> int:
    """Which op inputs need a gradient, as bits (``needs_input_grad`` of an autograd Function,
    known before the op runs): the forward uses it to store only what backward will read."""
    if not torch.is_grad_enabled():
        return 0
    return sum(1 << k for k, t in enumerate(tensors) if isinstance(t, torch.Tensor) and t.requires_grad)


def bit(bits: int, k: int) -> bool:
    return bool((bits >> k) & 1)


@torch.compiler.assume_constant_result
def to_f32(v: float) -> float:
    """``v`` rounded to float32, as a Python float (a constant under torch.compile, no
    ``.item()`` graph break)."""
    return float(torch.tensor(v, dtype=torch.float32).item())


def needs_grad(p) -> bool:
    return isinstance(p, torch.Tensor) and p.requires_grad


def io_reason(x: torch.Tensor, dtypes=IO_DTYPES) -> Optional[str]:
    if x.dtype not in dtypes:
        names = "/".join(str(d).replace("torch.", "") for d in dtypes)
        return f"input dtype {x.dtype} is not supported (expected {names}); the reference path handles it"
    if x.dim() < 2:
        return f"input must be (T, B, *features), got shape {tuple(x.shape)}"
    if x.numel() == 0:
        return "empty input"
    return None


_GRAD_PARAMS = ("leak", "reset", "threshold", "tau_syn", "tau_mem")


def cuba_consts(params, dt: float, refractory_time, shape, device, flat):
    """Per-neuron constants, computed with the reference's arithmetic, then ``flat(p)``:
    (leak, reset, threshold, a_m, c_s, alpha, R). ``alpha`` and ``R`` carry no gradient."""
    def cast(p):
        return p.to(torch.float32) if isinstance(p, torch.Tensor) else float(p)

    a_m = dt / cast(params.tau_mem)
    c_s = 1.0 - dt / cast(params.tau_syn)
    alpha = params.alpha.detach() if isinstance(params.alpha, torch.Tensor) else params.alpha
    R = 0.0 if refractory_time is None else cuba_ref_steps(refractory_time, dt)
    return tuple(flat(p, shape, device) for p in (params.leak, params.reset, params.threshold,
                                                  a_m, c_s, alpha, R))


def cuba_supports_common(x_seq, params, refractory) -> Optional[str]:
    if params is None:
        return "no CubaParams given"
    why = io_reason(x_seq)
    if why is not None:
        return why
    if getattr(params, "method", "superspike") != "superspike":
        return f"method {params.method!r} has no kernel"
    shape = tuple(x_seq.shape[1:])
    for name in _GRAD_PARAMS + ("alpha",) + (("refractory_time",) if refractory else ()):
        why = param_reason(name, getattr(params, name), shape, x_seq.device)
        if why is not None:
            return why
    return None


def cuba_ref_steps(refractory_time, dt: float):
    """Refractory steps ``float32(refractory_time) / float32(dt)`` (a number, or a tensor
    without gradient), as the reference computes them."""
    if isinstance(refractory_time, torch.Tensor):
        return refractory_time.detach().to(torch.float32) / torch.tensor(dt, dtype=torch.float32,
                                                                          device=refractory_time.device)
    return f32_ratio(refractory_time, dt)


def cuba_final_state(spikes, membrane, current, refractory_time, dt: float, last=None):
    """The hxtorch CUBA final state ``(z, v, i[, ref])`` from a kernel's traces. The refractory
    counter was loaded at the last spike ``k`` with ``R`` and decremented once per later step,
    floored at 0. ``last``: the step of each neuron's last spike (-1: none), in the membrane's
    dtype and the step shape, when the caller has it (the CPU kernels find it without reading
    every step); else it is computed from the spikes."""
    cdt = membrane.dtype
    z = spikes[-1].to(cdt)
    if refractory_time is None:
        return (z, membrane[-1], current[-1])
    T = spikes.shape[0]
    if last is None:
        idx = torch.arange(T, device=spikes.device, dtype=cdt).reshape((T,) + (1,) * (spikes.dim() - 1))
        # spikes are exactly 0/1 here (kernel output): float ops, no bool masks (those are slow on CPU)
        last = (spikes.detach().to(cdt) * (idx + 1)).amax(0) - 1
    R = cuba_ref_steps(refractory_time, dt)
    R = R.to(cdt) if isinstance(R, torch.Tensor) else R
    ref = torch.where(last >= 0, torch.relu(R - (T - 1 - last)), torch.zeros_like(last))
    return (z, membrane[-1], current[-1], ref)


# --------------------------------------------------------------------------- peer families
# Shared by kernels/triton/peers.py and kernels/cpu/peers.py (snnTorch Leaky, norse LIF).

#: reset mechanisms of the snnTorch Leaky kernels (their index is the kernels' MECH flag)
SNNTORCH_MECHS = ("subtract", "zero", "none")

#: surrogate id meaning "no gradient through the spike" (norse's ``method="heaviside"``)
SG_NONE = -1


def sg_consts(kernel_id: int, a0: float, a1: float) -> tuple:
    """``(c0, c1)`` of the in-kernel ``g * surrogate'(d)`` of the peer kernels: the Python
    numbers of the reference's surrogate expressions (spikefuse/surrogate.py), in double: the
    kernels take them as fp32 scalars, rounded as torch rounds a Python scalar operand. ATan:
    ``(pi/2 a, a/2)``; SLAYER exp: ``(tau, scale / (2 tau))``; the others their own two
    parameters."""
    pairs = {0: (math.pi / 2 * a0, a0 / 2), 3: (a0, a1 / (2 * a0) if a0 else 0.0)}
    return pairs.get(int(kernel_id), (float(a0), float(a1)))


def params_reason(x_seq: torch.Tensor, params, names, state=None) -> Optional[str]:
    """None if every ``params.<name>`` and every state tensor expands to the state shape of
    ``x_seq``, else the first reason."""
    shape = tuple(x_seq.shape[1:])
    for name in names:
        why = param_reason(name, getattr(params, name), shape, x_seq.device)
        if why is not None:
            return why
    for k, s in enumerate(state or ()):
        why = param_reason(f"state[{k}]", s, shape, x_seq.device)
        if why is not None:
            return why
    return None


def clamp01_param(p, shape, device) -> torch.Tensor:
    """snnTorch's ``clamp(beta, 0, 1)`` as a per-neuron fp32 vector (differentiable for a tensor)."""
    if isinstance(p, torch.Tensor):
        return expand_param(p, shape, device).clamp(0, 1)
    return expand_param(min(max(p, 0.0), 1.0), shape, device)


def leaky_reason(x_seq: torch.Tensor, params, state=None) -> Optional[str]:
    """The backend-independent part of the snnTorch Leaky ``supports`` rules."""
    if params is None:
        return "no LeakyParams given"
    if needs_grad(params.graded_spikes_factor):
        return ("a graded_spikes_factor that requires grad (learn_graded_spikes_factor) has no kernel "
                "gradient; the reference loop runs it")
    return params_reason(x_seq, params, ("beta", "threshold", "graded_spikes_factor"), state)


#: norse's own surrogate ids of the peer kernels' ``g * sg(d)`` (after the shared 0-4):
#: HeaviTanh ``1 - tanh(alpha d)^2``, HeaviCirc, HeaviErfc ``2 exp(-(alpha d)^2) / sqrt(pi)``
SG_NORSE_TANH, SG_NORSE_CIRC, SG_NORSE_ERFC = 5, 6, 7


#: norse threshold method -> ``alpha -> (surrogate id, c0, c1)`` of the kernels' ``g * sg(d)``
NORSE_SG = {"super": lambda a: (2, a, 0.0), "triangle": lambda a: (4, 1.0, a),
            "heaviside": lambda a: (SG_NONE, 0.0, 0.0),
            "tanh": lambda a: (SG_NORSE_TANH, a, 0.0),
            "circ": lambda a: (SG_NORSE_CIRC, a, a ** 2),  # alpha ** 2 as norse squares a Python float
            "heavi_erfc": lambda a: (SG_NORSE_ERFC, a, math.sqrt(math.pi))}


def norse_reason(x_seq: torch.Tensor, params, state=None) -> Optional[str]:
    """The backend-independent part of the norse LIF ``supports`` rules."""
    if params is None:
        return "no NorseLIFParams given"
    why = io_reason(x_seq)
    if why is not None:
        return why
    if getattr(params, "method", None) not in NORSE_SG:
        return (f"method {getattr(params, 'method', None)!r} has no in-kernel surrogate (kernels: "
                f"{sorted(NORSE_SG)}); the reference loop runs it")
    # alpha may be per neuron: the kernels read the surrogate's constants as rows (norse_sg_rows)
    return params_reason(x_seq, params, ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "alpha"), state)


def norse_sg_rows(params, shape, device) -> tuple:
    """``(surrogate id, c0, c1)``: ``c0``, ``c1`` per-neuron fp32 rows of the in-kernel ``g *
    surrogate'(d)`` (:data:`NORSE_SG`), from ``alpha`` as the reference uses it: an fp32 tensor
    (a number cast as norse's modules cast it), detached, per neuron or shared; circ's
    ``alpha ** 2`` squared in fp32 as the reference squares it. Shared by every norse kernel
    (norse.lif here, the refractory and AdEx LIF in kernels/_norse_host.py)."""
    a = params.alpha.detach() if isinstance(params.alpha, torch.Tensor) else torch.tensor(float(params.alpha))
    a = a.to(device=device, dtype=torch.float32)
    sg = NORSE_SG[params.method](1.0)[0]
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    c0 = one if params.method == "triangle" else zero if sg == SG_NONE else a
    c1 = {"triangle": a, "circ": a ** 2, "heavi_erfc": torch.full_like(a, math.sqrt(math.pi))}.get(params.method, zero)
    return sg, expand_param(c0, shape, device), expand_param(c1, shape, device)


def norse_consts(params, dt: float, state, shape, device) -> tuple:
    """Per-neuron fp32 ``(a_m, a_sn, v_leak, v_th, v_reset, c0, c1, v0, i0)`` and the surrogate
    id: ``a_m = dt * tau_mem_inv``, ``a_sn = -dt * tau_syn_inv`` with the reference's rounding
    (a Python ``dt`` times an fp32 tensor), differentiable in the tensor parameters; ``c0``,
    ``c1`` from ``alpha`` (:func:`norse_sg_rows`, no gradient)."""
    def f32(p):
        return p.to(torch.float32) if isinstance(p, torch.Tensor) else torch.tensor(float(p), device=device)

    a_m, a_sn = dt * f32(params.tau_mem_inv), -dt * f32(params.tau_syn_inv)
    flat = tuple(expand_param(p, shape, device) for p in (a_m, a_sn, params.v_leak, params.v_th, params.v_reset))
    sg, c0, c1 = norse_sg_rows(params, shape, device)
    return (*flat, c0, c1, *(expand_param(p, shape, device) for p in state)), sg


#: the name the peer-family encodings use for :func:`grad_bits`
input_grad_bits = grad_bits


# One op encoding per peer family, shared by the Triton and CPU ScanSpecs (only the scans differ).
#
# snnTorch Leaky: tensors (x (T, M) contiguous, b = clamp(beta, 0, 1), threshold,
# graded_spikes_factor, mem0 (M,) fp32); floats (c0, c1 of the surrogate, :func:`sg_consts`);
# ints (mechanism index, reset_delay, surrogate id, traces, io dtype index, grad bits).
# Outputs (spikes, mem_last, mem_seq or None); saved (mem_seq, x (reset_delay=False), the params, mem0).
#
# norse LIF: tensors (x, a_m, a_sn, v_leak, v_th, v_reset, c0, c1, v0, i0: c0, c1 the surrogate's
# constants per neuron, from a shared or per-neuron alpha, no gradient); no floats; ints
# (surrogate id or SG_NONE, traces, io dtype index, grad bits). Outputs (z, v_last, i_last,
# v_seq or None, i_seq or None); saved (v_seq, i_seq, every input).


def leaky_encode(x_seq: torch.Tensor, params, state, return_traces: bool):
    shape, dev, T = tuple(x_seq.shape[1:]), x_seq.device, x_seq.shape[0]
    m0 = torch.zeros(shape, device=dev) if state is None else state[0]
    tensors = [x_seq.reshape(T, -1).contiguous(), clamp01_param(params.beta, shape, dev),
               expand_param(params.threshold, shape, dev), expand_param(params.graded_spikes_factor, shape, dev),
               expand_param(m0, shape, dev)]
    sur = params.surrogate
    i = [SNNTORCH_MECHS.index(params.reset_mechanism), int(bool(params.reset_delay)), int(sur.kernel_id),
         int(bool(return_traces)), IO_DTYPES.index(x_seq.dtype), input_grad_bits(tensors)]
    return tensors, list(sg_consts(sur.kernel_id, *sur.kernel_params)), i


def leaky_run(scan, x_seq: torch.Tensor, params, state, return_traces: bool):
    """Run a Leaky ScanFunction; results in the kernel contract ``((spikes,), (mem_last,),
    (mem_seq,) or None)``."""
    spk, mlast, mseq = scan.apply(*leaky_encode(x_seq, params, state, return_traces))
    traces = (mseq.view(x_seq.shape),) if return_traces else None
    return (spk.view(x_seq.shape),), (mlast.view(tuple(x_seq.shape[1:])),), traces


def _leaky_save(tensors, outputs, f, i, needs):
    x, b, thr, gsf, m0 = tensors
    return [outputs[2], None if i[1] else x, b, thr, gsf, m0]


def _leaky_fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    return [torch.empty_like(x), x.new_empty((M,), dtype=torch.float32),
            x.new_empty((T, M), dtype=torch.float32) if (i[3] or i[5]) else None]


def _fake_grads(saved, dti, needs):
    """Gradient shapes: the input's ``(T, M)`` in its dtype, one ``(M,)`` fp32 per other input."""
    T, M = saved[0].shape
    out = [saved[0].new_empty((T, M), dtype=IO_DTYPES[dti])]
    out += [saved[0].new_empty((M,)) for _ in needs[1:]]
    return [g if n else None for g, n in zip(out, needs)]


def leaky_spec(name: str, forward, backward):
    """The Leaky ScanSpec ``name`` with a backend's ``forward`` / ``backward`` scans."""
    return ScanSpec(
        name=name, inputs=("x", "beta", "threshold", "graded_spikes_factor", "mem0"), states=("mem",),
        params=("beta", "threshold", "graded_spikes_factor"), outputs=("spikes", "mem_last", "mem_seq"),
        saved=("mem_seq",), saved_bytes=4, moved_bytes=12, forward=forward, save=_leaky_save,
        backward=backward, fake=_leaky_fake,
        fake_backward=lambda saved, grads, f, i, needs: _fake_grads(saved, i[4], needs))


def synaptic_reason(x_seq: torch.Tensor, params, state=None) -> Optional[str]:
    """The backend-independent part of the snnTorch Synaptic ``supports`` rules."""
    if params is None:
        return "no SynapticParams given"
    return params_reason(x_seq, params, ("alpha", "beta", "threshold"), state)


# snnTorch Synaptic: tensors (x (T, M) contiguous, a = clamp(alpha, 0, 1), b = clamp(beta, 0, 1),
# threshold, syn0, mem0 (M,) fp32); floats (c0, c1); ints (mechanism index, reset_delay,
# surrogate id, traces, io dtype index, grad bits). Outputs (spikes, syn_last, mem_last, syn_seq
# or None, mem_seq or None); saved (syn_seq, mem_seq, a, b, threshold, syn0, mem0): the input is
# not re-read (``b mem + syn'`` is recomputed from the traces).


def synaptic_run(scan, x_seq: torch.Tensor, params, state, return_traces: bool):
    """Run a Synaptic ScanFunction; results in the kernel contract ``((spikes,), (syn_last,
    mem_last), (syn_seq, mem_seq) or None)``."""
    shape, dev, T = tuple(x_seq.shape[1:]), x_seq.device, x_seq.shape[0]
    s0, m0 = (torch.zeros(shape, device=dev),) * 2 if state is None else state
    tensors = [x_seq.reshape(T, -1).contiguous(), clamp01_param(params.alpha, shape, dev),
               clamp01_param(params.beta, shape, dev), expand_param(params.threshold, shape, dev),
               expand_param(s0, shape, dev), expand_param(m0, shape, dev)]
    sur = params.surrogate
    i = [SNNTORCH_MECHS.index(params.reset_mechanism), int(bool(params.reset_delay)), int(sur.kernel_id),
         int(bool(return_traces)), IO_DTYPES.index(x_seq.dtype), input_grad_bits(tensors)]
    spk, sl, ml, sseq, mseq = scan.apply(tensors, list(sg_consts(sur.kernel_id, *sur.kernel_params)), i)
    traces = (sseq.view(x_seq.shape), mseq.view(x_seq.shape)) if return_traces else None
    return (spk.view(x_seq.shape),), (sl.view(shape), ml.view(shape)), traces


def _two_state_fake(x: torch.Tensor, keep) -> list:
    """Output shapes of a two-state peer scan: (spikes, two last states, two traces or None)."""
    T, M = x.shape
    seq = [x.new_empty((T, M), dtype=torch.float32) if keep else None for _ in range(2)]
    return [torch.empty_like(x), x.new_empty((M,), dtype=torch.float32), x.new_empty((M,), dtype=torch.float32),
            *seq]


def _synaptic_fake(tensors, f, i):
    return _two_state_fake(tensors[0], i[3] or i[5])


def synaptic_spec(name: str, forward, backward):
    """The Synaptic ScanSpec ``name`` with a backend's ``forward`` / ``backward`` scans."""
    return ScanSpec(
        name=name, inputs=("x", "alpha", "beta", "threshold", "syn0", "mem0"), states=("syn", "mem"),
        params=("alpha", "beta", "threshold"), outputs=("spikes", "syn_last", "mem_last", "syn_seq", "mem_seq"),
        saved=("syn_seq", "mem_seq"), saved_bytes=8, moved_bytes=16, forward=forward,
        save=lambda tensors, outputs, f, i, needs: [outputs[3], outputs[4], *tensors[1:]], backward=backward,
        fake=_synaptic_fake, fake_backward=lambda saved, grads, f, i, needs: _fake_grads(saved, i[4], needs))


def norse_run(scan, x_seq: torch.Tensor, params, state, return_traces: bool, dt: float):
    """Run a norse LIF ScanFunction; results ``((z,), (v, i), (v_seq, i_seq) or None)``."""
    shape, T = tuple(x_seq.shape[1:]), x_seq.shape[0]
    flat, sg = norse_consts(params, dt, state, shape, x_seq.device)
    tensors = [x_seq.reshape(T, -1).contiguous(), *flat]
    z, vl, il, vseq, iseq = scan.apply(
        tensors, [], [sg, int(bool(return_traces)), IO_DTYPES.index(x_seq.dtype), input_grad_bits(tensors)])
    traces = (vseq.view(x_seq.shape), iseq.view(x_seq.shape)) if return_traces else None
    return (z.view(x_seq.shape),), (vl.view(shape), il.view(shape)), traces


def _norse_fake(tensors, f, i):
    return _two_state_fake(tensors[0], i[1] or i[3])


def norse_spec(name: str, forward, backward):
    """The norse LIF ScanSpec ``name`` with a backend's ``forward`` / ``backward`` scans."""
    return ScanSpec(
        name=name, inputs=("x", "a_m", "a_sn", "v_leak", "v_th", "v_reset", "c0", "c1", "v0", "i0"), states=("v", "i"),
        params=("a_m", "a_sn", "v_leak", "v_th", "v_reset"), outputs=("spikes", "v_last", "i_last", "v_seq", "i_seq"),
        saved=("v_seq", "i_seq"), saved_bytes=8, moved_bytes=20, forward=forward,
        save=lambda tensors, outputs, f, i, needs: [outputs[3], outputs[4], *tensors], backward=backward,
        fake=_norse_fake, fake_backward=lambda saved, grads, f, i, needs: _fake_grads(saved, i[2], needs))


# --------------------------------------------------------------------------- Loihi CUBA / ALIF
# One op encoding for the Triton and CPU Loihi scans (kernels/triton/loihi.py, kernels/cpu/loihi.py):
# tensors (x (T, M) contiguous; du, dv (M,) fp32 rounded decays (differentiable); keep_u, keep_v,
# keep_th, keep_r (4096 - D), u0, v0, th0, r0 (M,) int64); floats (s_f, s_d, thr_f, thr_s_f,
# tau_rho, scale_rho, dscale); ints (theta0, step (integers), alif, graded, traces, io dtype index,
# grad bits). Outputs (spikes, u, v, theta, r traces (ALIF with traces), final theta, r (ALIF),
# spike limit theta_f + r_f (ALIF, when a gradient is needed)).


def loihi_reason(x_seq, params=None, has_norm=False) -> Optional[str]:
    """The Loihi CUBA / ALIF ``supports`` rules both backends share (besides the device)."""
    if params is None:
        return "no params given"
    if has_norm:
        return "norm sits between the current and voltage integrators and needs whole-sequence statistics"
    why = io_reason(x_seq)
    if why is not None:
        return why
    if params.scale * 64 >= 2 ** 24:
        return f"scale {params.scale} too large for exact float32 scaling"
    return None


def _loihi_int_init(state_field: torch.Tensor, s_scale: int) -> torch.Tensor:
    # as the reference's _int_state: trunc(float32(state) * s_scale) in int64
    return torch.trunc((state_field.detach().to(torch.float32) * s_scale).double()).to(torch.int64).reshape(-1).contiguous()


def _loihi_keep(d: torch.Tensor, shape, dev) -> torch.Tensor:
    """4096 - round(D) as per-neuron int64."""
    return (4096 - torch.round(d.detach()).to(torch.int64)).expand(tuple(shape)).reshape(-1).contiguous().to(dev)


def loihi_op_args(x_seq, params, state, return_traces: bool, alif: bool):
    """``(tensors, f, i)`` of a Loihi scan op (the encoding above) for a kernel-contract call."""
    shape, dev, T = tuple(x_seq.shape[1:]), x_seq.device, x_seq.shape[0]
    if alif:
        s_scale, th0, step, tau_rho, scale_rho = alif_constants(params)
        thr = 0.0
    else:
        s_scale, _, thr, tau_rho, scale_rho = cuba_constants(params)
        th0, step = 0.0, 0.0
    du = round_ste(decay_view("params.current_decay", params.current_decay, x_seq))
    dv = round_ste(decay_view("params.voltage_decay", params.voltage_decay, x_seq))
    ku, kv = _loihi_keep(du, shape, dev), _loihi_keep(dv, shape, dev)
    u0, v0 = _loihi_int_init(state[0], s_scale), _loihi_int_init(state[1], s_scale)
    if alif:
        dth = decay_view("params.threshold_decay", params.threshold_decay, x_seq)
        dr = decay_view("params.refractory_decay", params.refractory_decay, x_seq)
        kth, kr = _loihi_keep(dth, shape, dev), _loihi_keep(dr, shape, dev)
        th0s, r0 = _loihi_int_init(state[2], s_scale), _loihi_int_init(state[3], s_scale)
    else:
        kth = kr = th0s = r0 = ku
    dscale = 1.0 if params.decay_grad == "lava" else -1.0 / 4096
    tensors = [x_seq.reshape(T, -1).contiguous(), expand_param(du, shape, dev), expand_param(dv, shape, dev),
               ku, kv, kth, kr, u0, v0, th0s, r0]
    f = [float(s_scale), float(s_scale), f32(thr), f32(thr * s_scale), float(tau_rho), float(scale_rho), dscale]
    i = [int(th0 * s_scale), int(step * s_scale), int(alif), int(bool(params.graded_spike)), int(bool(return_traces)),
         IO_DTYPES.index(x_seq.dtype), input_grad_bits(tensors)]
    return tensors, f, i


def loihi_results(outs, x_seq, params, return_traces: bool, alif: bool):
    """A Loihi scan op's outputs in the kernel contract: ``((spikes,), final_state, traces or None)``."""
    s, u, v, th_tr, r_tr, thf, rf, _ = outs
    shape = tuple(x_seq.shape[1:])
    if alif:  # the threshold / refractory outputs carry no gradient (as the reference's)
        th_tr, r_tr, thf, rf = (None if t is None else t.detach() for t in (th_tr, r_tr, thf, rf))
    if x_seq.dtype not in (torch.float16, torch.bfloat16):
        s = s.to(torch.float32)
    s, u, v = s.view(x_seq.shape), u.view(x_seq.shape), v.view(x_seq.shape)
    if alif:
        final = (u[-1], v[-1], thf.view(shape), rf.view(shape))
        traces = (u, v, th_tr.view(x_seq.shape), r_tr.view(x_seq.shape)) if return_traces else None
    else:
        s_scale, _, thr, _, _ = cuba_constants(params)
        reset = (trunc_int(v[-1].detach() * s_scale) >= thr * s_scale).to(v.dtype)
        final = (u[-1], v[-1] - (v[-1] * reset).detach())
        traces = (u, v)
    return (s,), final, traces if return_traces else None


def _loihi_save(tensors, outputs, f, i, needs):
    return [outputs[2], outputs[1] if needs[1] else None, outputs[7], tensors[1], tensors[2]]


def _loihi_fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    alif, traces, need = i[2], i[4], i[6]

    def seq(on):
        return x.new_empty((T, M), dtype=torch.float32) if on else None

    last = x.new_empty((M,), dtype=torch.float32) if alif else None
    return [torch.empty_like(x), seq(True), seq(True), seq(alif and traces), seq(alif and traces), last,
            None if last is None else torch.empty_like(last), seq(alif and (need & 0b111))]


def _loihi_fake_bwd(saved, grads, f, i, needs):
    v = saved[0]
    T, M = v.shape
    out = [v.new_empty((T, M), dtype=IO_DTYPES[i[5]]) if needs[0] else None]
    return out + [v.new_empty((M,)) if n else None for n in needs[1:3]] + [None] * 8


def loihi_scan(name: str, alif: bool, forward, backward, saved_bytes: int):
    """The ScanFunction of a Loihi scan (the op encoding above) with the backend's ``forward`` /
    ``backward``; saved for backward: the voltage trace (an output), ALIF's spike limit, and the
    current trace when the current decay learns."""
    states = ("current", "voltage") + (("threshold", "refractory") if alif else ())
    return ScanFunction(ScanSpec(
        name=name, inputs=("x", "current_decay", "voltage_decay", "keep_u", "keep_v", "keep_threshold",
                           "keep_refractory", "u0", "v0", "threshold0", "refractory0"),
        states=states, params=("current_decay", "voltage_decay"),
        outputs=("spikes", "current", "voltage", "threshold", "refractory", "threshold_last",
                 "refractory_last", "spike_limit"),
        saved=("voltage",) + (("spike_limit",) if alif else ()) + ("current (when its decay learns)",),
        saved_bytes=saved_bytes,
        # x, s, u, v (fp32 I/O); ALIF training also writes the spike limit
        moved_bytes=16 + (4 if alif else 0),
        forward=forward, save=_loihi_save, backward=backward, fake=_loihi_fake, fake_backward=_loihi_fake_bwd))
