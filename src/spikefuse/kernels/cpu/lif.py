"""Fused CPU path for SpikingJelly-style IF / LIF (SPEC.md section 15).

Forward: the time loop runs under ``no_grad`` on flat ``(M,)`` fp32 buffers with ``out=``/in-place
torch ops (5-8 cheap vectorised ops per step, no autograd graph), writing the charge H and the
spikes of every step into ``(T, M)`` buffers. Selections use 0/1 float masks (``blend_``) rather
than ``torch.where``, whose data-dependent branches are several times slower on CPU. The
arithmetic follows the reference expression order exactly (``v + (x - (v - vr)) / tau``;
``1[H - Vth >= 0]``; the reset gives exactly ``Vr`` or ``H``), so spikes, traces and the final
state match the reference loop bit for bit. The post-reset trace (when requested) is derived from
H and the spikes in one vectorised pass.

Backward: every per-step factor of the VJP depends only on the saved H, so the surrogate
derivative ``sg``, ``dV/dH`` and the constant parts are computed for all T at once; only the
linear recurrence ``gH[t] = a[t] + gV dV/dH[t]; gV = gH[t] dH/dV`` runs sequentially (two ops per
step). Parameter gradients (tau, v_threshold, v_reset) and the initial-state gradient are then
vectorised reductions over time.

Saved for backward: H (fp32), 4 bytes per neuron-step (``SAVED_BYTES["lif"]``), plus the input
for ``decay_input`` LIF when tau needs a gradient (it is alive anyway as the caller's tensor).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from .common import expand_param, io_reason, needs_grad, param_reason
from .cuba import blend_

SAVED_BYTES = {"lif": 4}

KIND_IF, KIND_LIF_DECAY_INPUT, KIND_LIF = 0, 1, 2


def surrogate_grad_(x: torch.Tensor, surrogate) -> torch.Tensor:
    """``surrogate.grad(x)`` computed in place in ``x`` (fp32) for the families with a kernel id;
    any other surrogate (``Custom``) is evaluated by its own ``grad``."""
    kid = getattr(surrogate, "kernel_id", -1)
    a0, a1 = surrogate.kernel_params if kid >= 0 else (0.0, 0.0)
    if kid == 0:  # ATan: (a/2) / (1 + (pi/2 a x)^2)
        return x.mul_(math.pi / 2 * a0).square_().add_(1.0).reciprocal_().mul_(a0 / 2)
    if kid == 1:  # Sigmoid: a s (1 - s)
        x.mul_(a0).sigmoid_()
        return torch.addcmul(x, x, x, value=-1.0, out=x).mul_(a0)
    if kid == 2:  # SuperSpike: 1 / (a |x| + 1)^2
        return x.abs_().mul_(a0).add_(1.0).square_().reciprocal_()
    if kid == 3:  # SLAYER exp: scale/(2 tau) exp(-|x|/tau)
        return x.abs_().mul_(-1.0 / a0).exp_().mul_(a1 / (2 * a0))
    if kid == 4:  # Triangle: h max(0, 1 - |x|/w)
        return x.abs_().mul_(-1.0 / a0).add_(1.0).clamp_(min=0.0).mul_(a1)
    return surrogate.grad(x).to(torch.float32)


def _reset(h, sf, vth, vr, hard: bool):
    """V after reset from H and the 0/1 float spikes ``sf`` (vectorised, any shape; the same
    float-mask arithmetic as the forward loop, so bit-identical to it)."""
    out = torch.empty_like(h)
    if hard:
        return blend_(out, h, sf, vr)
    torch.mul(sf, vth, out=out)
    return torch.sub(h, out, out=out)


def _forward_loop(x32, tau, vth, vr, v0, kind: int, hard: bool):
    """Runs the scan; returns H (T, M) fp32, the spikes as 0/1 fp32 (T, M) and V_last (M,) fp32.
    Selections use 0/1 float masks (see :func:`blend_`): a data-dependent ``torch.where`` is
    several times slower on CPU."""
    T, M = x32.shape
    H = torch.empty((T, M), dtype=torch.float32)
    S = torch.empty((T, M), dtype=torch.float32)
    v = v0.clone()
    tmp = torch.empty(M, dtype=torch.float32)
    vr_zero = not isinstance(vr, torch.Tensor) and vr == 0.0  # v - 0.0 == v exactly: skip it
    for t in range(T):
        h = H[t]
        xt = x32[t]
        if kind == KIND_IF:
            torch.add(v, xt, out=h)
        elif kind == KIND_LIF_DECAY_INPUT:
            if vr_zero:
                torch.sub(xt, v, out=tmp)
            else:
                torch.sub(v, vr, out=tmp)
                torch.sub(xt, tmp, out=tmp)
            tmp.div_(tau)
            torch.add(v, tmp, out=h)
        else:
            if vr_zero:
                torch.div(v, tau, out=tmp)
            else:
                torch.sub(v, vr, out=tmp)
                tmp.div_(tau)
            torch.sub(v, tmp, out=tmp)
            torch.add(tmp, xt, out=h)
        st = S[t]
        torch.sub(h, vth, out=st).ge_(0.0)                     # S = 1[H - Vth >= 0] as 0/1 float
        if hard:
            blend_(v, h, st, vr)                                 # V = Vr where S else H
        else:
            torch.mul(st, vth, out=v)
            torch.sub(h, v, out=v)                               # V = H - S Vth
    return H, S, v


class _LIFCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau, vth, vr, v0, cfg):
        kind, hard, detach, surrogate, traces, out_dtype = cfg
        with torch.no_grad():
            x32 = x if x.dtype == torch.float32 else x.float()
            taud, vthd, vrd = (p.detach() if isinstance(p, torch.Tensor) else p for p in (tau, vth, vr))
            H, sf, vlast = _forward_loop(x32, taud, vthd, vrd, v0.detach(), kind, hard)
            spk = sf if out_dtype == torch.float32 else sf.to(out_dtype)
            vseq = _reset(H, sf, vthd, vrd, hard) if traces else None
        ctx.cfg = cfg
        ctx.tensor_params = tuple(isinstance(p, torch.Tensor) for p in (tau, vth, vr))
        ctx.consts = tuple(None if isinstance(p, torch.Tensor) else p for p in (tau, vth, vr))
        ctx.x_dtype = x.dtype
        xs = x if (kind == KIND_LIF_DECAY_INPUT and ctx.needs_input_grad[1]) else None
        tp = [p if isinstance(p, torch.Tensor) else None for p in (tau, vth, vr)]
        ctx.save_for_backward(H, xs, v0, *tp)
        ctx.set_materialize_grads(False)
        if traces:
            return spk, vlast, H, vseq
        return spk, vlast, None, None

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spk, g_vlast, g_hseq, g_vseq):
        kind, hard, detach, surrogate, traces, out_dtype = ctx.cfg
        H, x, v0, tau_t, vth_t, vr_t = ctx.saved_tensors
        tau = tau_t if tau_t is not None else ctx.consts[0]
        vth = vth_t if vth_t is not None else ctx.consts[1]
        vr = vr_t if vr_t is not None else ctx.consts[2]
        T, M = H.shape
        need_tau, need_vth, need_vr = ctx.needs_input_grad[1:4]
        with torch.no_grad():
            # few full-size temporaries, updated in place: fresh (T, M) buffers cost page faults
            s = H >= vth
            sg = surrogate_grad_(torch.sub(H, vth), surrogate)
            if hard:
                if detach:
                    gv2h = (~s).float()
                else:  # 1 - S + (Vr - H) sg
                    gv2h = torch.neg(H).add_(vr).mul_(sg).add_(~s)
            else:
                gv2h = None if detach else torch.mul(sg, -vth).add_(1.0)  # None: dV/dH = 1
            # a[t] = everything of gH[t] that does not depend on the carried gV
            a = sg.clone() if need_vth else sg
            if g_spk is not None:
                a.mul_(g_spk)
            else:
                a.zero_()
            if g_vseq is not None:
                a.add_(g_vseq) if gv2h is None else a.addcmul_(g_vseq, gv2h)
            if g_hseq is not None:
                a.add_(g_hseq)
            dhdv = 1.0 if kind == KIND_IF else 1.0 - 1.0 / tau
            carry = g_vlast.float().clone() if g_vlast is not None else torch.zeros(M)
            gH = a
            for t in range(T - 1, -1, -1):
                if gv2h is None:
                    gH[t].add_(carry)
                else:
                    gH[t].addcmul_(carry, gv2h[t])
                torch.mul(gH[t], dhdv, out=carry)
            gv0 = carry
            sf = s.float() if (need_vth or need_vr) else None
            g_tau = g_vth = g_vr = None
            if need_vth or need_vr:
                # gradient reaching V[t] (after reset): carried from step t+1 plus the trace's
                gv_in = torch.empty_like(H)
                if T > 1:
                    torch.mul(gH[1:], dhdv, out=gv_in[:-1])
                if g_vlast is not None:
                    gv_in[-1] = g_vlast.float()
                else:
                    gv_in[-1] = 0.0
                if g_vseq is not None:
                    gv_in.add_(g_vseq.float())
            if need_vth:
                if hard:
                    dvdvth = torch.zeros_like(H) if detach else (H - vr) * sg
                else:
                    dvdvth = -sf if detach else vth * sg - sf
                g = gv_in * dvdvth
                if g_spk is not None:
                    g.sub_(g_spk.float() * sg)
                g_vth = g.sum(0)
            if need_vr:
                g = gv_in * sf if hard else torch.zeros_like(H)
                if kind != KIND_IF:
                    g.add_(gH / tau)
                g_vr = g.sum(0)
            if need_tau and kind != KIND_IF:
                vprev = torch.empty_like(H)
                vprev[0] = v0
                if T > 1:
                    vprev[1:] = _reset(H[:-1], s[:-1].float(), vth, vr, hard)
                if kind == KIND_LIF_DECAY_INPUT:
                    g_tau = -(gH * (x.float() - (vprev - vr))).sum(0) / (tau * tau)
                else:
                    g_tau = (gH * (vprev - vr)).sum(0) / (tau * tau)
            if ctx.needs_input_grad[0]:
                gx = gH.div_(tau) if kind == KIND_LIF_DECAY_INPUT else gH
                gx = gx.to(ctx.x_dtype)
            else:
                gx = None
        return (gx, g_tau, g_vth, g_vr, gv0 if ctx.needs_input_grad[4] else None, None)


def lif_supports(x_seq: torch.Tensor, params=None, v0=None, return_traces=False, **_) -> Optional[str]:
    """None when the fused CPU LIF path can run this case, else the reason."""
    if params is None:
        return "no LIFParams given"
    if x_seq.device.type != "cpu":
        return f"the cpu backend needs CPU tensors, got {x_seq.device}"
    why = io_reason(x_seq)
    if why is not None:
        return why
    shape = tuple(x_seq.shape[1:])
    for name, p in (("tau", params.tau), ("v_threshold", params.v_threshold), ("v_reset", params.v_reset)):
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


def _flat(p, shape, dev):
    """Python numbers stay numbers (cheaper scalar ops); tensors become per-neuron fp32 vectors."""
    if isinstance(p, torch.Tensor):
        return expand_param(p, shape, dev)
    return float(p)


def lif_cpu(x_seq: torch.Tensor, params, v0=None, return_traces: bool = False):
    """Fused CPU IF/LIF scan with a hand-written backward.

    Returns ``(spikes, v_last, h_seq, v_seq)`` like the Triton kernel: spikes in ``x_seq.dtype``,
    v_last ``(B, *features)`` fp32, traces ``(T, B, *features)`` fp32 or None.

    Example::

        >>> import torch
        >>> from types import SimpleNamespace
        >>> from spikefuse.surrogate import ATan
        >>> p = SimpleNamespace(tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
        ...                     detach_reset=False, surrogate=ATan())
        >>> s, v, _, _ = lif_cpu(torch.tensor([[[1.5]], [[1.5]], [[0.5]]]), p)
        >>> s.flatten().tolist(), v.flatten().tolist()
        ([0.0, 1.0, 0.0], [0.25])
    """
    shape = tuple(x_seq.shape[1:])
    dev = x_seq.device
    T = x_seq.shape[0]
    kind = KIND_IF if params.tau is None else (KIND_LIF_DECAY_INPUT if params.decay_input else KIND_LIF)
    hard = params.v_reset is not None
    tau = _flat(params.tau if params.tau is not None else 1.0, shape, dev)
    vth = _flat(params.v_threshold, shape, dev)
    vr = _flat(params.v_reset if hard else 0.0, shape, dev)
    if v0 is None:
        v0f = vr.detach().clone() if isinstance(vr, torch.Tensor) else torch.full(
            (x_seq[0].numel(),), vr, dtype=torch.float32)
    else:
        v0f = expand_param(v0, shape, dev)
    cfg = (kind, hard, bool(params.detach_reset), params.surrogate, bool(return_traces), x_seq.dtype)
    spk, vlast, hseq, vseq = _LIFCPU.apply(x_seq.reshape(T, -1), tau, vth, vr, v0f, cfg)
    spk = spk.view(x_seq.shape)
    vlast = vlast.view(shape)
    if return_traces:
        hseq = hseq.view((T,) + shape)
        vseq = vseq.view((T,) + shape)
    return spk, vlast, hseq, vseq
