"""Host side of the fused resonate-and-fire scans RF, RF-Iz, AdRF, AdRF-Iz (SPEC.md 2.1, 2.2,
3.4, 6-9), shared by the Triton and the CPU backend: the integer constants and initial state as
the reference computes them, the op encoding, what is saved for backward, the fake (shape-only)
functions, the ScanSpec of each model and the kernel-contract wrapper :func:`run`.

Op encoding: tensors (xr, xi (T, M) contiguous; S, C (M,) rounded decays fp32 and re0, im0 (M,)
fp32 initial state, all differentiable; Si, Ci, keep_th, keep_r, re0, im0, th0, r0 (M,) int64);
floats (s_f, theta_f, thr_s_f, rho, kappa, reset_im_f); ints (reset_im, theta0, step (integers,
as the kernel takes them), model, graded, traces, lava, io dtype index, grad bits, alias: see
:func:`prepare`). Outputs
(spikes, re/im sequences (stored for traces or backward), re/im of the last step, theta/r
sequences (adaptive, traces), final theta, r (adaptive), spike limit (adaptive, training),
RF-Iz reset mask (exact decay gradients)).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..fixed_point import RESONATOR_SURROGATE_MULTIPLIERS, decay_view, round_ste
from ._common import IO_DTYPES, bit, expand_param, grad_bits, io_reason, to_f32
from .scan import ScanFunction, ScanSpec

#: bytes saved for backward per neuron and time step (RF-Iz: + 1 with exact decay gradients)
SAVED_BYTES = {"loihi_rf": 8, "loihi_rf_iz": 8, "loihi_adrf": 12, "loihi_adrf_iz": 12}

MODELS = {"rf": 0, "rf_iz": 1, "adrf": 2, "adrf_iz": 3}
FAMILIES = {"loihi_rf": "rf", "loihi_rf_iz": "rf_iz", "loihi_adrf": "adrf", "loihi_adrf_iz": "adrf_iz"}


def store_flags(i) -> tuple[bool, bool, bool, bool]:
    """What the forward writes for the op ints ``i``: (re/im sequences, spike limit, θ/r
    sequences, RF-Iz reset mask)."""
    model, traces, lava, need = i[3], i[5], i[6], i[8]
    adaptive, need_grad = model >= 2, bool(need & 0b111111)
    need_dec = bit(need, 2) or bit(need, 3)
    return (bool(traces or need_grad), adaptive and need_grad, bool(adaptive and traces),
            bool(model == 1 and need_dec and not lava))


def save(tensors, outputs, f, i, needs):
    return [outputs[1], outputs[2], outputs[9], outputs[10]] + list(tensors[2:6])


def fake(tensors, f, i):
    xr = tensors[0]
    T, M = xr.shape
    adaptive = i[3] >= 2
    ri, lim, tr, rst = store_flags(i)

    def seq(on, dtype=torch.float32):
        return xr.new_empty((T, M), dtype=dtype) if on else None

    def last(on=True):
        return xr.new_empty((M,), dtype=torch.float32) if on else None

    return [torch.empty_like(xr), seq(ri), seq(ri), last(), last(), seq(tr), seq(tr), last(adaptive), last(adaptive),
            seq(lim), seq(rst, torch.int8)]


def fake_backward(saved, grads, f, i, needs):
    re = saved[0]
    T, M = re.shape
    out = [re.new_empty((T, M), dtype=IO_DTYPES[i[7]]) for _ in range(2)] + [re.new_empty((M,)) for _ in range(4)]
    return [g if n else None for g, n in zip(out, needs[:6])] + [None] * 8


def scan_function(family: str, backend: str, forward, backward) -> ScanFunction:
    """The ScanFunction ``<family>_<backend>`` of a backend's raw ``forward`` / ``backward``."""
    adaptive = family.startswith("loihi_adrf")
    return ScanFunction(ScanSpec(
        name=f"{family}_{backend}",
        inputs=("x_real", "x_imag", "sin_decay", "cos_decay", "real0", "imag0", "sin_int", "cos_int",
                "keep_threshold", "keep_refractory", "real0_int", "imag0_int", "threshold0_int", "refractory0_int"),
        states=("real", "imag") + (("threshold", "refractory") if adaptive else ()),
        params=("sin_decay", "cos_decay"),
        outputs=("spikes", "real", "imag", "real_last", "imag_last", "threshold", "refractory",
                 "threshold_last", "refractory_last", "spike_limit", "reset_mask"),
        saved=("real", "imag") + (("spike_limit",) if adaptive else ()),
        saved_bytes=SAVED_BYTES[family],
        # xr, xi, s (fp32 I/O) + the saved re/im (and the spike limit) written in training
        moved_bytes=12 + SAVED_BYTES[family],
        forward=forward, save=save, backward=backward, fake=fake, fake_backward=fake_backward))


def scan_functions(backend: str, forward, backward) -> dict:
    """model -> ScanFunction of every family."""
    return {model: scan_function(family, backend, forward, backward) for family, model in FAMILIES.items()}


def supports_common(x_seq, params) -> Optional[str]:
    """The device-independent rules (any model option, per-channel decays)."""
    if params is None:
        return "no params given"
    why = io_reason(x_seq)
    if why is not None:
        return why
    s = getattr(params, "s_scale", 4096)
    if isinstance(s, int) and s >= 2 ** 24:
        return f"s_scale {s} too large for exact float32 scaling"
    return None


def _int_init(v: torch.Tensor, shape, s_scale: int) -> torch.Tensor:
    """As the reference's ``trunc_int(state * s)``: float32 product, truncated via float64."""
    v = v.detach().to(torch.float32).expand(tuple(shape))
    return torch.trunc((v * s_scale).double()).to(torch.int64).reshape(-1).contiguous()


def _int_vec(d: torch.Tensor, shape, keep: bool = False) -> torch.Tensor:
    """round(d) (or 4096 - round(d)) as a flat per-neuron int64 vector."""
    di = torch.round(d.detach()).to(torch.int64)
    if keep:
        di = 4096 - di
    return di.expand(tuple(shape)).reshape(-1).contiguous()


def _adaptive_args(params, state, like, shape, s: int, theta: float):
    """(keep_th, keep_r, th0, r0 int64 vectors, theta0, step) of the adaptive models."""
    Dth = decay_view("params.threshold_decay", params.threshold_decay, like).to(torch.float32)
    Dr = decay_view("params.refractory_decay", params.refractory_decay, like).to(torch.float32)
    kth, kr = _int_vec(Dth, shape, keep=True), _int_vec(Dr, shape, keep=True)
    return kth, kr, _int_init(state[2], shape, s), _int_init(state[3], shape, s), int(theta * s), \
        int(float(params.threshold_step) * s)


def prepare(model: str, x_seq, params, state, return_traces: bool):
    """The op's ``(tensors, floats, ints)`` for a kernel call (see the module docstring)."""
    xr, xi = x_seq
    shape = tuple(xr.shape[1:])
    T = xr.shape[0]
    dev = xr.device
    like = torch.empty((), dtype=torch.float32, device=dev).expand((1,) + shape)  # shape/dtype only
    s = int(params.s_scale)
    theta = float(params.threshold)
    tau_m, scale_m = RESONATOR_SURROGATE_MULTIPLIERS[model]
    rho = tau_m * float(params.tau_grad) * theta
    kappa = scale_m * float(params.scale_grad)
    S = round_ste(decay_view("params.sin_decay", params.sin_decay, like).to(torch.float32))
    C = round_ste(decay_view("params.cos_decay", params.cos_decay, like).to(torch.float32))
    Si, Ci = _int_vec(S, shape), _int_vec(C, shape)
    if model in ("adrf", "adrf_iz"):
        kth, kr, th0i, r0i, theta0, step = _adaptive_args(params, state, like, shape, s, theta)
    else:
        kth = kr = th0i = r0i = Si
        theta0 = step = 0
    thr = theta * s
    reset_im = int(thr - 1)
    x2 = xr.reshape(T, -1).contiguous()
    # one tensor as both inputs (``(x, x)``, a real drive): the imaginary slot gets it detached and
    # the backward returns the sum of both input gradients in the real slot (:func:`input_grads`),
    # instead of two (T, M) gradients that autograd then adds in a pass of its own
    alias = xi is xr and xr.requires_grad and torch.is_grad_enabled()
    xi2 = (x2.detach() if alias else x2) if xi is xr else xi.reshape(T, -1).contiguous()
    tensors = [x2, xi2, expand_param(S, shape, dev),
               expand_param(C, shape, dev), expand_param(state[0], shape, dev), expand_param(state[1], shape, dev),
               Si, Ci, kth, kr, _int_init(state[0], shape, s), _int_init(state[1], shape, s), th0i, r0i]
    f = [float(s), to_f32(theta), to_f32(thr), float(rho), float(kappa), to_f32(float(reset_im) / s)]
    i = [reset_im, theta0, step, MODELS[model], int(bool(params.graded_spike)), int(bool(return_traces)),
         int(params.decay_grad == "lava"), IO_DTYPES.index(xr.dtype), grad_bits(tensors), int(alias)]
    return tensors, f, i


def input_grads(gxr, gxi, i):
    """The op's (x_real, x_imag) gradients from the real and imaginary input gradients of the
    reverse scan (fp32, or the I/O dtype), both in the I/O dtype: with the alias bit ``i[9]``
    (one tensor as both inputs, :func:`prepare`) their sum in the real slot, the addition autograd
    would make (two terms commute: the same bits in either order), and None for the imaginary one;
    ``gxi`` None: the real slot already holds that sum (a kernel that added them itself, fp32 I/O
    only: an fp16 / bf16 sum is of the two rounded gradients, as autograd adds them)."""
    io = IO_DTYPES[i[7]]
    gxr = gxr if gxr.dtype == io else gxr.to(io)
    if not i[9]:
        return gxr, gxi if gxi.dtype == io else gxi.to(io)
    if gxi is None:
        return gxr, None
    return gxr + (gxi if gxi.dtype == io else gxi.to(io)), None


def finish(model: str, outs, xr, params, return_traces: bool):
    """The kernel contract's ``((spikes,), final_state, traces or None)`` from the op outputs."""
    shape = tuple(xr.shape[1:])
    spk, re, im, rel, iml, th, r, thl, rl, _, _ = outs
    # theta / r carry no gradient (as the reference's); re/im sequences are outputs only as traces
    th, r, thl, rl = (None if t is None else t.detach() for t in (th, r, thl, rl))
    if xr.dtype not in (torch.float16, torch.bfloat16):
        spk = spk.to(torch.float32)
    spk = spk.view(xr.shape)
    rel, iml = rel.view(shape), iml.view(shape)
    if model == "rf":
        final = (rel, iml)
    elif model == "rf_iz":
        # Izhikevich reset, straight-through, exactly as the reference
        theta, s = float(params.threshold), int(params.s_scale)
        fired = (iml >= theta).to(rel.dtype)
        reset_f = float(int(theta * s - 1)) / s
        final = (rel - (rel * fired).detach(), iml + ((reset_f - iml) * fired).detach())
    else:
        final = (rel, iml, thl.view(shape), rl.view(shape))
    if not return_traces:
        return (spk,), final, None
    re, im = re.view(xr.shape), im.view(xr.shape)
    if th is not None:
        return (spk,), final, (re, im, th.view(xr.shape), r.view(xr.shape))
    return (spk,), final, (re, im)


def run(scans: dict, model: str, x_seq, params, state, return_traces: bool):
    """One fused call of ``scans[model]`` in the kernel contract of the reference's
    ``<model>_multistep``."""
    tensors, f, i = prepare(model, x_seq, params, state, return_traces)
    return finish(model, scans[model].apply(tensors, f, i), x_seq[0], params, return_traces)


def make(scans: dict, model: str, backend: str, example: str):
    """The registered kernel function ``loihi_<model>_<backend>`` over ``scans``."""
    def fn(x_seq, params, state, return_traces=False):
        return run(scans, model, x_seq, params, state, return_traces)

    fn.__name__ = f"loihi_{model}_{backend}"
    fn.__doc__ = (
        f"Fused Loihi {model} on the {backend} backend (kernel contract of "
        f":func:`spikefuse.functional.resonator.{model}_multistep`): returns ``((spikes,), state, "
        "traces or None)`` as tuples in the reference's State / Traces field order, with "
        f"bit-identical forward numbers.\n\nExample::\n\n    >>> {example}  # doctest: +SKIP\n")
    return fn
