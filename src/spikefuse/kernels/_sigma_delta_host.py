"""Host side of the fused sigma-delta scans (SPEC.md 10), shared by the Triton and the CPU
backend: the op encoding, what is saved for backward, the fake (shape-only) functions, the
``supports`` rules that do not depend on the device, and the kernel-contract wrapper
:func:`call` around a backend's :class:`~spikefuse.kernels.scan.ScanFunction`.

Op encoding: tensors (x (T, M) contiguous; threshold, bias (or absent) (M,) fp32; acc0 (M,)
fp64; pre0 (M,) fp32 (differentiable); res0, err0 (M,) fp32 (detached)); floats (step_f,
tau_grad, scale_grad); ints (activation, cum_error, traces, io dtype index, grad bits, T, then
the step shape's rank and sizes and, with a bias, the bias's rank and sizes: the CPU backward
reduces the bias gradient to that shape as the reference does).
Outputs (y, σ/a/Δ sequences (σ, a with traces; Δ with traces or a learnable threshold), final
acc (fp64), pre, res, err, ReLU keep mask (training)). The threshold is saved always (M values,
alive anyway): backward reads its shape and device from it.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._common import IO_DTYPES, bit, expand_param, grad_bits, io_reason, param_reason, to_f32
from .scan import ScanFunction, ScanSpec

#: bytes saved for backward per neuron and time step (ReLU mask; + 4 with a learnable threshold)
SAVED_BYTES = {"loihi_sigma_delta": 1}

ACT_IDENTITY, ACT_RELU = 0, 1


def activation_kind(act) -> Optional[int]:
    """In-kernel activation id of ``act`` (None = identity, torch/F.relu, nn.ReLU), else None."""
    if act is None:
        return ACT_IDENTITY
    if act is torch.relu or act is torch.nn.functional.relu:
        return ACT_RELU
    if type(act) is torch.nn.ReLU and not act.inplace:
        return ACT_RELU
    return None


def store_flags(i) -> tuple[bool, bool, bool]:
    """(traces, store Δ, store the ReLU keep mask) of the op ints ``i``: Δ with traces or a
    learnable threshold, the mask with ReLU when any input needs a gradient."""
    act, traces, need = i[0], i[2], i[4]
    return bool(traces), bool(traces or bit(need, 1)), bool(act == ACT_RELU and (need & 0b11111))


def save(tensors, outputs, f, i, needs):
    return [outputs[8], outputs[3] if needs[1] else None, tensors[1]]


def fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    traces, store_d, store_keep = store_flags(i)

    def seq(on, dtype=torch.float32):
        return x.new_empty((T, M), dtype=dtype) if on else None

    def last(dtype=torch.float32):
        return x.new_empty((M,), dtype=dtype)

    return [torch.empty_like(x), seq(traces), seq(traces), seq(store_d), last(torch.float64),
            last(), last(), last(), seq(store_keep, torch.int8)]


def fake_backward(saved, grads, f, i, needs):
    th = saved[2]
    M = th.shape[0]
    out = [th.new_empty((i[5], M), dtype=IO_DTYPES[i[3]]), th.new_empty((M,)), th.new_empty((M,)),
           th.new_empty((M,), dtype=torch.float64), th.new_empty((M,))]
    return [g if n else None for g, n in zip(out, needs[:5])] + [None, None]


def scan_function(backend: str, forward, backward) -> ScanFunction:
    """The ScanFunction ``loihi_sigma_delta_<backend>`` of a backend's raw ``forward`` /
    ``backward`` (this module's op encoding, save and fake functions)."""
    return ScanFunction(ScanSpec(
        name=f"loihi_sigma_delta_{backend}",
        inputs=("x", "threshold", "bias", "sigma0", "act0", "residual0", "error0"),
        states=("sigma", "act", "residual", "error"), params=("threshold", "bias"),
        outputs=("y", "sigma", "act", "delta", "sigma_last", "act_last", "residual_last", "error_last",
                 "relu_keep"),
        saved=("relu_keep", "delta (when the threshold learns)"), saved_bytes=SAVED_BYTES["loihi_sigma_delta"],
        # x, y (fp32 I/O) + the ReLU mask written in training
        moved_bytes=9, forward=forward, save=save, backward=backward, fake=fake, fake_backward=fake_backward))


def _nondiff(n: int, traces: bool) -> tuple:
    """Indices of the op outputs (y, σ, a, Δ, acc, pre, res, err) that carry no gradient for the
    grad bits ``n`` of (x, threshold, bias, acc0, pre0): exactly where the reference's do not."""
    out = [6, 7] + ([3] if traces else [])
    if not (bit(n, 0) or bit(n, 2) or bit(n, 3)):  # σ, a, final sum/pre depend on x, bias, acc0 only
        out += [4, 5] + ([1, 2] if traces else [])
    elif not (bit(n, 0) or bit(n, 3)):  # only the bias: σ and the final sum do not depend on it
        out += [4] + ([1] if traces else [])
    return tuple(out)


def supports_common(x_seq, params, state) -> Optional[str]:
    """The device-independent rules: identity or ReLU activation, any threshold / bias
    broadcasting to one step, ``cum_error`` on or off, a float64 sigma state."""
    if params is None:
        return "no params given"
    why = io_reason(x_seq)
    if why is not None:
        return why
    if state is not None and state.sigma.dtype == torch.float32:
        return "a float32 sigma state (lava-dl's persistent float32 sum) runs on the reference loop"
    if activation_kind(params.activation) is None:
        return (f"activation {params.activation!r} has no in-kernel formula (identity and ReLU "
                "are fused); the reference path handles it")
    shape = tuple(x_seq.shape[1:])
    for name in ("threshold", "bias"):
        p = getattr(params, name)
        if p is not None:
            why = param_reason(f"params.{name}", p, shape, x_seq.device)
            if why is not None:
                return why
    return None


def call(scan, x_seq, params, state, return_traces=False):
    """Run the sigma-delta ScanFunction ``scan`` in the kernel contract of
    :func:`spikefuse.functional.sigma_delta.sigma_delta_multistep`: ``((y,), state, traces or
    None)``, tuples in SigmaDeltaState / SigmaDeltaTraces field order."""
    shape = tuple(x_seq.shape[1:])
    T = x_seq.shape[0]
    dev = x_seq.device
    M = x_seq[0].numel()
    th = expand_param(params.threshold, shape, dev)
    bias = expand_param(params.bias, shape, dev) if params.bias is not None else None
    acc0 = state[0].to(device=dev, dtype=torch.float64).expand(shape).reshape(M).contiguous()
    pre0 = expand_param(state[1], shape, dev)
    res0 = expand_param(state[2].detach(), shape, dev)
    err0 = expand_param(state[3].detach(), shape, dev)
    step_f = to_f32(1.0 / params.s_scale)
    tensors = [x_seq.reshape(T, M).contiguous(), th, bias, acc0, pre0, res0, err0]
    need = grad_bits(tensors)
    # + the step shape and the bias's (-> the CPU backward's bias reduction; none: no ints)
    bshape = [] if bias is None else [len(params.bias.shape), *params.bias.shape]
    i = [activation_kind(params.activation), int(bool(params.cum_error)), int(bool(return_traces)),
         IO_DTYPES.index(x_seq.dtype), need, T, len(shape), *shape, *bshape]
    outs = scan.apply(tensors, [step_f, float(params.tau_grad), float(params.scale_grad)], i)
    for k in _nondiff(need, bool(return_traces)):
        if outs[k] is not None:
            outs[k] = outs[k].detach()
    y, sig, a, d, accl, prel, resl, errl, _ = outs
    if x_seq.dtype not in (torch.float16, torch.bfloat16):
        y = y.to(torch.float32)
    y = y.view(x_seq.shape)
    final = (accl.view(shape), prel.view(shape), resl.view(shape), errl.view(shape))
    if not return_traces:
        return (y,), final, None
    return (y,), final, (sig.view(x_seq.shape), a.view(x_seq.shape), d.view(x_seq.shape))
