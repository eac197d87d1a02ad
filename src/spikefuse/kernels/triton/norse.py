"""Triton fused scans of norse's refractory LIF (``norse.lif_refrac``) and adaptive exponential
LIF (``norse.lif_adex``), through the generic template (:mod:`.generic`); the equations and the
op encodings are in kernels/_norse_host.py. The feed-forward LIF's pieces are reused: its charge
(:func:`.peers.norse_charge`) and its in-kernel surrogates (:func:`.peers.sg_times`, every norse
method; ``heaviside``: no gradient through the spike).

Both steps are written in the reference's operation order (functional/norse.py
``_refrac_step`` / ``_adex_step``) and both VJPs sum each gradient in autograd's order: the
backward engine runs the nodes of these graphs in reverse creation order, so a tensor with
several uses receives the gradient of its *last* use first, e.g. the refractory ``v`` (used by
``vl - v``, ``v + dv``, ``m v``) takes ``((g_trace + g_mv) + g_vd) + g_w``. The carries keep
those terms apart (a tuple entry per use) until they are summed. So the refractory LIF's
spikes, traces, final state and input / initial-state gradients are bit-identical to the
reference (surrogates without a transcendental; tanh / circ / heavi_erfc to ~1e-6 as for
``norse.lif``).

AdEx has ``exp((v - v_th) / delta_T)`` in its forward: in the interpreter the kernel rounds
numpy's float64 ``exp`` to float32 (numpy's float32 ``exp`` differs from torch's on ~40 % of
arguments), torch's CPU ``exp`` is SLEEF's (1-ulp, vectorised): the two differ by an ulp on ~1 %
of arguments, so traces agree with the CPU reference to an ulp or so per step and spikes are
equal unless a membrane lands within those ulps of ``v_th``. On CUDA the kernel
calls libdevice's ``expf``, the function torch's CUDA ``exp`` compiles to (not re-measured on a
GPU this session).

Saved for backward: the three state traces (12 bytes per neuron-step); the input is re-read and
the step recomputed from the previous state.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import IO_DTYPES
from .._norse_host import SAVED_BYTES, adex_reason, adex_run, adex_spec, keep_traces, refrac_reason, refrac_run, refrac_spec
from ..scan import ScanFunction
from .common import INTERPRET, aot, device_reason
from .generic import _Family, _empty, _grads_wanted, plus, scan_bwd, scan_fwd
from .peers import norse_charge, sg_times

try:  # libdevice's expf (what torch's CUDA exp runs); the interpreter has no extern calls
    from triton.language.extra import libdevice as _libdevice
except ImportError:  # pragma: no cover - older layouts
    _libdevice = None

__all__ = ["ADEX_SCAN", "REFRAC_SCAN", "SAVED_BYTES", "norse_lif_adex_supports", "norse_lif_adex_triton",
           "norse_lif_refrac_supports", "norse_lif_refrac_triton"]

_LIBDEVICE_EXP = tl.constexpr(_libdevice is not None and not INTERPRET)


@triton.jit
def _exp(y):
    if _LIBDEVICE_EXP:
        e = _libdevice.exp(y)
    else:  # the interpreter: numpy's float32 exp is a few ulps off; its float64 exp rounded is not
        e = tl.exp(y.to(tl.float64)).to(tl.float32)
    return e


# --------------------------------------------------------------------------- refractory LIF


@triton.jit
def refrac_parts(x, v, i, rho, params):
    """The forward step's intermediates: (j, w, vd, i', zl, vn, m, zo, relu(rho - m))."""
    a_m, a_sn, vl, vth, vr = params[0], params[1], params[2], params[3], params[4]
    j, w, vd, i_new = norse_charge(x, v, i, a_m, a_sn, vl)
    zl = tl.where(vd - vth > 0.0, 1.0, 0.0)
    vn = (1.0 - zl) * vd + zl * vr
    m = tl.where(rho > 0.0, 1.0, 0.0)
    zo = (1.0 - m) * zl
    r2 = tl.maximum(rho - m, 0.0)
    return j, w, vd, i_new, zl, vn, m, zo, r2


@triton.jit
def refrac_scan_step(x, state, params, OPT: tl.constexpr):
    """state (v, i, rho), params (a_m, a_sn, v_leak, v_th, v_reset, rho_reset, c0, c1); outputs (z,
    v, i, rho)."""
    v, rho = state[0], state[2]
    j, w, vd, i_new, zl, vn, m, zo, r2 = refrac_parts(x, v, state[1], rho, params)
    v_new = (1.0 - m) * vn + m * v
    rho_new = (1.0 - zo) * r2 + zo * params[5]
    return (zo, v_new, i_new, rho_new), (v_new, i_new, rho_new)


@triton.jit
def refrac_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (v, i, rho) traces, cur (x,), gouts (gz, g_v_seq, g_i_seq, g_rho_seq), carry (v: from
    ``m v``, ``v + dv``, ``vl - v``; i; rho: from ``rho - m``, ``threshold(rho)``), state0 (v0,
    i0, rho0), OPT (SG,). Returns (gX, carry of step t-1, (g_am, g_asn, g_vl, g_vth, g_vr, g_rr))."""
    a_m, a_sn, vr, rr = params[0], params[1], params[4], params[5]
    v = tl.where(t > 0, lag_prev[0], state0[0])
    i = tl.where(t > 0, lag_prev[1], state0[1])
    rho = tl.where(t > 0, lag_prev[2], state0[2])
    j, w, vd, _, zl, vn, m, zo, r2 = refrac_parts(cur[0], v, i, rho, params)
    g_vo = (plus(carry[0], gouts[1], has[1]) + carry[1]) + carry[2]
    g_i = plus(carry[3], gouts[2], has[2])
    g_rho = plus(carry[4], gouts[3], has[3]) + carry[5]
    g_r1 = tl.where(r2 > 0.0, g_rho * (1.0 - zo), 0.0)
    g_vn = g_vo * (1.0 - m)
    g_vd = g_vn * (1.0 - zl)
    g_vth = 0.0 * g_vd
    g_rs = 0.0 * g_vd
    if OPT[0] != -1:  # the spike and the refractory mask carry the surrogate's gradient
        g_zo = g_rho * rr
        if has[0]:
            g_zo = gouts[0] + g_zo
        g_zo = g_zo + (-(g_rho * r2))
        g_m = (((-g_r1) + (-(g_zo * zl))) + g_vo * v) + (-(g_vo * vn))
        g_rs = sg_times(g_m, rho, OPT[0], params[6], params[7])
        g_zl = (g_zo * (1.0 - m) + g_vn * vr) + (-(g_vn * vd))
        g_u = sg_times(g_zl, vd - params[3], OPT[0], params[6], params[7])
        g_vd = g_vd + g_u
        g_vth = -g_u
    g_w = g_vd * a_m
    g_j = (g_i + g_i * a_sn) + g_w
    return g_j, (g_vo * m, g_vd, -g_w, g_j, g_r1, g_rs), (g_vd * w, g_i * j, g_w, g_vth, g_vn * zl, g_rho * zo)


#: masked-lane parameter values (a_m, a_sn, v_leak, v_th, v_reset, rho_reset, c0, c1)
_REFRAC_OTHER = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0)
_REFRAC = _Family(refrac_scan_step, refrac_scan_vjp, _REFRAC_OTHER, _REFRAC_OTHER, bwd_fusion=False)


def _fwd(fam: _Family, tensors, i, n_params: int):
    x, rest = tensors[0], tensors[1:]
    T, M = x.shape
    keep = keep_traces(i)
    z, last = torch.empty_like(x), tuple(_empty(M, like=x) for _ in range(3))
    seq = tuple(_empty((T, M), like=x) if keep else None for _ in range(3))
    fam.fwd(x, (z, *seq), tuple(rest[n_params:]), last, tuple(rest[:n_params]), (i[0],))
    return [z, *last, *seq]


def _bwd(fam: _Family, saved, grads, f, i, needs, n_params: int, carries):
    """``n_params`` parameter rows, the last two the surrogate's constants (no gradient);
    ``carries``: how many carried terms each state has (summed into its initial-state gradient
    in that order, as autograd sums them)."""
    seqs, x, params, state0 = saved[:3], saved[3], saved[4:4 + n_params], saved[4 + n_params:]
    g_z, g_last, g_seq = grads[0], grads[1:4], grads[4:7]
    T, M = seqs[0].shape
    gx = _empty((T, M), IO_DTYPES[i[2]], like=seqs[0])
    glast, gstate = [], []
    for g, n in zip(g_last, carries):
        glast += [g] + [None] * (n - 1)
        gstate += [_empty(M, like=seqs[0]) for _ in range(n)]
    gp = _grads_wanted(needs[1:n_params - 1], M, seqs[0])
    fam.bwd(gx, (tuple(seqs), (x,)), (g_z, *g_seq), tuple(glast), tuple(state0), tuple(params), (0.0,),
            tuple(gstate), gp, (i[0],))
    g0, k = [], 0
    for n in carries:
        g = gstate[k]
        for extra in gstate[k + 1:k + n]:
            g = g + extra  # the uses of the initial state in step 0, summed as autograd sums them
        g0.append(g)
        k += n
    out = [gx, *gp, None, None, *g0]
    return [g if need else None for g, need in zip(out, needs)]


REFRAC_SCAN = ScanFunction(refrac_spec("norse_lif_refrac_triton", lambda t, f, i: _fwd(_REFRAC, t, i, 8),
                                       lambda s, g, f, i, n: _bwd(_REFRAC, s, g, f, i, n, 8, (3, 1, 2))))


# --------------------------------------------------------------------------- AdEx


@triton.jit
def adex_parts(x, v, i, a, params):
    """(j, s3 = the bracket of dv, vd, i', the exponential e, y = (v - v_th) / delta_T, q = v -
    v_leak, q3 = adaptation_current q - a, ad, z)."""
    a_m, a_sn, a_a, vl, vth = params[0], params[1], params[2], params[3], params[4]
    ac, dT = params[6], params[8]
    j = i + x
    y = tl.math.div_rn(v - vth, dT)
    e = _exp(y)
    s3 = (((vl - v) + dT * e) + j) - a
    vd = v + a_m * s3
    i_new = j + a_sn * j
    q = v - vl
    q3 = ac * q - a
    ad = a + a_a * q3
    z = tl.where(vd - vth > 0.0, 1.0, 0.0)
    return j, s3, vd, i_new, e, y, q, q3, ad, z


@triton.jit
def adex_scan_step(x, state, params, OPT: tl.constexpr):
    """state (v, i, a), params (a_m, a_sn, a_a, v_leak, v_th, v_reset, adaptation_current,
    adaptation_spike, delta_T, c0, c1); outputs (z, v, i, a)."""
    j, s3, vd, i_new, e, y, q, q3, ad, z = adex_parts(x, state[0], state[1], state[2], params)
    v_new = (1.0 - z) * vd + z * params[5]
    a_new = ad + z * params[7]
    return (z, v_new, i_new, a_new), (v_new, i_new, a_new)


@triton.jit
def adex_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (v, i, a) traces, cur (x,), gouts (gz, g_v_seq, g_i_seq, g_a_seq), carry (v: from ``v -
    v_leak``, ``v + dv``, ``v - v_th``, ``v_leak - v``; i; a: from ``a + da``, ``q2 - a``, ``s2 -
    a``), state0 (v0, i0, a0), OPT (SG,). Returns (gX, carry of step t-1, the 9 parameter
    gradients)."""
    a_m, a_sn, a_a, vr, ac, asp, dT = params[0], params[1], params[2], params[5], params[6], params[7], params[8]
    v = tl.where(t > 0, lag_prev[0], state0[0])
    i = tl.where(t > 0, lag_prev[1], state0[1])
    a = tl.where(t > 0, lag_prev[2], state0[2])
    j, s3, vd, _, e, y, q, q3, _, z = adex_parts(cur[0], v, i, a, params)
    g_vn = ((plus(carry[0], gouts[1], has[1]) + carry[1]) + carry[2]) + carry[3]
    g_i = plus(carry[4], gouts[2], has[2])
    g_an = (plus(carry[5], gouts[3], has[3]) + carry[6]) + carry[7]
    g_vd = g_vn * (1.0 - z)
    g_vth = 0.0 * g_vd
    if OPT[0] != -1:
        g_z = g_an * asp
        if has[0]:
            g_z = gouts[0] + g_z
        g_z = (g_z + g_vn * vr) + (-(g_vn * vd))
        g_u = sg_times(g_z, vd - params[4], OPT[0], params[9], params[10])
        g_vd = g_vd + g_u
        g_vth = -g_u
    g_q3 = g_an * a_a
    g_q = g_q3 * ac
    g_s = g_vd * a_m
    g_y = (g_s * dT) * e
    g_y0 = tl.math.div_rn(g_y, dT)
    g_j = (g_i + g_i * a_sn) + g_s
    g_dT = g_s * e + (-g_y) * tl.math.div_rn(y, dT)
    grads = (g_vd * s3, g_i * j, g_an * q3, g_s + (-g_q), g_vth + (-g_y0), g_vn * z, g_q3 * q, g_an * z, g_dT)
    return g_j, (g_q, g_vd, g_y0, -g_s, g_j, g_an, -g_q3, -g_s), grads


_ADEX_OTHER = (0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
_ADEX = _Family(adex_scan_step, adex_scan_vjp, _ADEX_OTHER, _ADEX_OTHER, bwd_fusion=False)

ADEX_SCAN = ScanFunction(adex_spec("norse_lif_adex_triton", lambda t, f, i: _fwd(_ADEX, t, i, 11),
                                   lambda s, g, f, i, n: _bwd(_ADEX, s, g, f, i, n, 11, (4, 1, 3))))


# --------------------------------------------------------------------------- AOT cases, entry points

#: pointer-tuple types of the ahead-of-time compile cases (bf16 I/O, everything present)
_P, _IO = "*fp32", "*bf16"


def _aot(spec: str, prefix: str, fam: _Family, n_param: int, n_carry: int) -> None:
    """The sm_90 AOT cases (tests/kernels/test_kernels_compile.py): SuperSpike, every pointer present;
    ``n_param`` parameter rows, two of them (c0, c1) without a gradient."""
    aot(spec, f"{prefix}_fwd", scan_fwd, dict(STEP=fam.step, INIT=None, OPT=(2,), P_OTHER=fam.fwd_other, BLOCK=512),
        x_ptr="io", out_ptrs=(_IO, _P, _P, _P), state0_ptrs=(_P,) * 3, last_ptrs=(_P,) * 3, param_ptrs=(_P,) * n_param)
    aot(spec, f"{prefix}_bwd", scan_bwd, dict(VJP=fam.vjp, OPT=(2,), P_OTHER=fam.bwd_other, BLOCK=512),
        lag_ptrs=(_P,) * 3, cur_ptrs=(_IO,), gout_ptrs=(_IO, _P, _P, _P), glast_ptrs=(_P,) * n_carry,
        state0_ptrs=(_P,) * 3, param_ptrs=(_P,) * n_param, scal=("fp32",), gx_ptr="io",
        gstate0_ptrs=(_P,) * n_carry, gparam_ptrs=(_P,) * (n_param - 2))


_aot("norse_lif_refrac_triton", "norse_lif_refrac", _REFRAC, 8, 6)
_aot("norse_lif_adex_triton", "norse_lif_adex", _ADEX, 11, 8)


def norse_lif_refrac_triton(x_seq: torch.Tensor, params, state, return_traces: bool = False, *, dt: float):
    """Fused norse refractory LIF, kernel contract: ``params`` norse's LIFRefracParameters,
    ``state`` ``((v0, i0), rho0)``; returns ``((z,), ((v, i), rho), ((v_seq, i_seq), rho_seq) or
    None)``. Differentiable in ``x_seq``, the state and the tensor parameters (not ``alpha``)."""
    return refrac_run(REFRAC_SCAN, x_seq, params, state, return_traces, dt)


def norse_lif_refrac_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton refractory-LIF scan can run this case, else the reason."""
    return device_reason(x_seq) or refrac_reason(x_seq, params, state)


def norse_lif_adex_triton(x_seq: torch.Tensor, params, state, return_traces: bool = False, *, dt: float):
    """Fused norse AdEx LIF, kernel contract: ``state`` ``(v0, i0, a0)``; returns ``((z,), (v, i,
    a), (v_seq, i_seq, a_seq) or None)``. Differentiable in ``x_seq``, the state and the tensor
    parameters (not ``alpha``)."""
    return adex_run(ADEX_SCAN, x_seq, params, state, return_traces, dt)


def norse_lif_adex_supports(x_seq: torch.Tensor, params=None, state=None, **_) -> Optional[str]:
    """None when the Triton AdEx scan can run this case, else the reason."""
    return device_reason(x_seq) or adex_reason(x_seq, params, state)
