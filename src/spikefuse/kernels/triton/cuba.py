"""Triton forward/backward scans for the hxtorch CUBA LIF, plain and refractory (SPEC.md 13).

Per step (``a_m = dt/tau_mem``, ``c_s = 1 - dt/tau_syn``; the one-step synaptic delay of hxtorch:
the membrane uses the *old* current)::

    dv = a_m ((leak - v) + i);  i = i c_s + x;  v' = v + dv;  z = 1[v' - threshold > 0]
    v  = reset if z else v'                          (the reset carries no gradient through z)
    refractory:  m = 1[ref > 0];  v = reset if m;  z = 0 if m;  ref = R if z else relu(ref - m)

:func:`cuba_step` and :func:`cuba_vjp` are the step and its VJP; :func:`_cuba_fwd` and
:func:`_cuba_bwd` the two scans. Forward writes spikes (I/O dtype) and the fp32 membrane and
current traces (the model's outputs). Backward re-reads those traces and recomputes the
pre-reset membrane bit-exactly (both kernels are compiled without FMA contraction), so the
plain model saves nothing extra (``SAVED_BYTES["cuba"] = 0``); the refractory model saves its
mask as int8 (``SAVED_BYTES["cuba_refractory"] = 1``). Parameter gradients (leak, reset,
threshold, a_m, c_s; autograd maps the last two to tau_mem / tau_syn) are reduced over time in
registers and written per neuron.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import IO_DTYPES, cuba_consts, cuba_final_state, cuba_supports_common, expand_param
from ..scan import ScanFunction, ScanSpec
from .common import aot, contig, device_reason, f32_empty, grad_bits, launch, ptr

SAVED_BYTES = {"cuba": 0, "cuba_refractory": 1}


@triton.jit
def cuba_step(x, v, i, ref, leak, reset, thr, a_m, c_s, R, REFRAC: tl.constexpr):
    """One step; returns (z, v, i, ref, m) with m the refractory mask (0/1 fp32)."""
    dv = a_m * ((leak - v) + i)
    i = i * c_s + x
    vp = v + dv
    fire = vp - thr > 0.0
    v = tl.where(fire, reset, vp)
    if REFRAC:
        m = tl.where(ref > 0.0, 1.0, 0.0)
        v = tl.where(m > 0.0, reset, v)
        fire = fire & (m == 0.0)
        ref = tl.where(fire, R, tl.maximum(ref - m, 0.0))
    else:
        m = 0.0 * v
    z = tl.where(fire, 1.0, 0.0)
    return z, v, i, ref, m


@triton.jit
def cuba_vjp(gz, gv_out, gi_tot, v_old, i_old, m, leak, reset, thr, a_m, c_s, alpha):
    """VJP of one step. ``gv_out``/``gi_tot``: total gradients of this step's membrane and
    current outputs; ``gz`` of its spike. Returns (gv_old, gi_old, g_leak, g_reset, g_thr,
    g_a_m, g_c_s); the input gradient equals ``gi_tot``."""
    drive = (leak - v_old) + i_old
    vp = v_old + a_m * drive
    d = vp - thr
    zp = tl.where(d > 0.0, 1.0, 0.0)
    den = alpha * tl.abs(d) + 1.0
    sg = 1.0 / (den * den)
    gpost = gv_out * (1.0 - m)
    gzm = gz * (1.0 - m)
    gvp = gpost * (1.0 - zp) + gzm * sg
    gv_old = gvp * (1.0 - a_m)
    gi_old = gvp * a_m + gi_tot * c_s
    g_reset = gpost * zp + gv_out * m
    return gv_old, gi_old, gvp * a_m, g_reset, -gzm * sg, gvp * drive, gi_tot * i_old


@triton.jit
def load_cuba_params(leak_ptr, reset_ptr, thr_ptr, am_ptr, cs_ptr, offs, mask):
    """Per-neuron (leak, reset, threshold, a_m, c_s); lanes past M get 0 and a threshold of 1."""
    leak = tl.load(leak_ptr + offs, mask=mask, other=0.0)
    reset = tl.load(reset_ptr + offs, mask=mask, other=0.0)
    thr = tl.load(thr_ptr + offs, mask=mask, other=1.0)
    a_m = tl.load(am_ptr + offs, mask=mask, other=0.0)
    c_s = tl.load(cs_ptr + offs, mask=mask, other=0.0)
    return leak, reset, thr, a_m, c_s


@triton.jit
def _cuba_fwd(x_ptr, z_ptr, v_ptr, i_ptr, m_ptr,
              leak_ptr, reset_ptr, thr_ptr, am_ptr, cs_ptr, R_ptr,
              T, M, REFRAC: tl.constexpr, STORE_M: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    leak, reset, thr, a_m, c_s = load_cuba_params(leak_ptr, reset_ptr, thr_ptr, am_ptr, cs_ptr, offs, mask)
    R = tl.load(R_ptr + offs, mask=mask, other=0.0)
    v = leak
    i = tl.zeros([BLOCK], dtype=tl.float32)
    ref = tl.zeros([BLOCK], dtype=tl.float32)
    for t in range(T):
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        z, v, i, ref, m = cuba_step(x, v, i, ref, leak, reset, thr, a_m, c_s, R, REFRAC)
        tl.store(z_ptr + idx, z.to(z_ptr.dtype.element_ty), mask=mask)
        tl.store(v_ptr + idx, v, mask=mask)
        tl.store(i_ptr + idx, i, mask=mask)
        if STORE_M:
            tl.store(m_ptr + idx, m.to(tl.int8), mask=mask)


@triton.jit
def _cuba_bwd(v_ptr, i_ptr, m_ptr, gz_ptr, gv_ptr, gi_ptr,
              leak_ptr, reset_ptr, thr_ptr, am_ptr, cs_ptr, alpha_ptr,
              gx_ptr, gleak_ptr, greset_ptr, gthr_ptr, gam_ptr, gcs_ptr,
              T, M, REFRAC: tl.constexpr, HAS_GZ: tl.constexpr, HAS_GV: tl.constexpr,
              HAS_GI: tl.constexpr, NEED_PARAMS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    leak, reset, thr, a_m, c_s = load_cuba_params(leak_ptr, reset_ptr, thr_ptr, am_ptr, cs_ptr, offs, mask)
    alpha = tl.load(alpha_ptr + offs, mask=mask, other=1.0)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    gv = zero
    gi = zero
    acc_leak = zero
    acc_reset = zero
    acc_thr = zero
    acc_am = zero
    acc_cs = zero
    for k in range(T):
        t = T - 1 - k
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        prev = tl.cast(tl.maximum(t - 1, 0), tl.int64) * M + offs
        v_old = tl.where(t > 0, tl.load(v_ptr + prev, mask=mask, other=0.0), leak)
        i_old = tl.where(t > 0, tl.load(i_ptr + prev, mask=mask, other=0.0), zero)
        if REFRAC:
            m = tl.load(m_ptr + idx, mask=mask, other=0).to(tl.float32)
        else:
            m = zero
        if HAS_GZ:
            gz = tl.load(gz_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        else:
            gz = zero
        gv_out = gv
        if HAS_GV:
            gv_out += tl.load(gv_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        gi_tot = gi
        if HAS_GI:
            gi_tot += tl.load(gi_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        gv, gi, g_leak, g_reset, g_thr, g_am, g_cs = cuba_vjp(gz, gv_out, gi_tot, v_old, i_old, m,
                                                              leak, reset, thr, a_m, c_s, alpha)
        tl.store(gx_ptr + idx, gi_tot.to(gx_ptr.dtype.element_ty), mask=mask)
        if NEED_PARAMS:
            acc_leak += g_leak
            acc_reset += g_reset
            acc_thr += g_thr
            acc_am += g_am
            acc_cs += g_cs
    if NEED_PARAMS:
        tl.store(gleak_ptr + offs, acc_leak, mask=mask)
        tl.store(greset_ptr + offs, acc_reset, mask=mask)
        tl.store(gthr_ptr + offs, acc_thr, mask=mask)
        tl.store(gam_ptr + offs, acc_am, mask=mask)
        tl.store(gcs_ptr + offs, acc_cs, mask=mask)


# --------------------------------------------------------------------------- ScanSpec / op
# op encoding: tensors (x (T, M) contiguous; leak, reset, threshold, a_m, c_s, alpha, R (M,)
# fp32); floats [0.0] (an empty list cannot cross the op's autograd); ints (refractory, io dtype index, grad bits of the tensors). Outputs
# (spikes, membrane, current, refractory mask or None): the int8 mask is written only for the
# refractory model when a gradient is needed (backward reads it). One spec per variant, so each
# states its own saved bytes; both run the same functions.


def _fwd(tensors, f, i):
    x, leak, reset, thr, a_m, c_s, alpha, R = tensors
    refractory, dti, need = i
    T, M = x.shape
    spk = torch.empty_like(x)
    mem = f32_empty(T, M, device=x.device)
    cur = f32_empty(T, M, device=x.device)
    store_m = bool(refractory and need)
    msk = torch.empty((T, M), dtype=torch.int8, device=x.device) if store_m else None
    launch(_cuba_fwd, M, x, spk, mem, cur, ptr(msk, mem), leak, reset, thr, a_m, c_s, R, T, M,
           fusion=False, REFRAC=bool(refractory), STORE_M=store_m)
    return [spk, mem, cur, msk]


def _save(tensors, outputs, f, i, needs):
    return [outputs[1], outputs[2], outputs[3]] + list(tensors[1:7])


def _bwd(saved, grads, f, i, needs):
    mem, cur, msk, leak, reset, thr, a_m, c_s, alpha = saved
    g_spk, g_mem, g_cur = grads[:3]
    T, M = mem.shape
    need_params = any(needs[1:6])
    gx = torch.empty((T, M), dtype=IO_DTYPES[i[1]], device=mem.device)
    pg = [f32_empty(M, device=mem.device) for _ in range(5)] if need_params else [mem] * 5
    launch(_cuba_bwd, M, mem, cur, ptr(msk, mem), contig(g_spk, mem), contig(g_mem, mem), contig(g_cur, mem),
           leak, reset, thr, a_m, c_s, alpha, gx, *pg, T, M, fusion=False,
           REFRAC=bool(i[0]), HAS_GZ=g_spk is not None, HAS_GV=g_mem is not None,
           HAS_GI=g_cur is not None, NEED_PARAMS=need_params)
    out = [gx if needs[0] else None] + [g if (need_params and n) else None for g, n in zip(pg, needs[1:6])]
    return out + [None, None]


def _fake(tensors, f, i):
    x = tensors[0]
    T, M = x.shape
    return [torch.empty_like(x), x.new_empty((T, M), dtype=torch.float32), x.new_empty((T, M), dtype=torch.float32),
            x.new_empty((T, M), dtype=torch.int8) if (i[0] and i[2]) else None]


def _fake_bwd(saved, grads, f, i, needs):
    mem = saved[0]
    T, M = mem.shape
    out = [mem.new_empty((T, M), dtype=IO_DTYPES[i[1]]) if needs[0] else None]
    return out + [mem.new_empty((M,)) if n else None for n in needs[1:6]] + [None, None]


def _spec(name: str, saved_bytes: int, moved_bytes: int) -> ScanFunction:
    return ScanFunction(ScanSpec(
        name=name, inputs=("x", "leak", "reset", "threshold", "a_m", "c_s", "alpha", "refractory_steps"),
        states=("z", "v", "i") + (("ref",) if saved_bytes else ()),
        params=("leak", "reset", "threshold", "tau_syn", "tau_mem"),
        outputs=("spikes", "membrane", "current", "refractory_mask"),
        saved=("membrane", "current") + (("refractory_mask",) if saved_bytes else ()),
        saved_bytes=saved_bytes, moved_bytes=moved_bytes,
        forward=_fwd, save=_save, backward=_bwd, fake=_fake, fake_backward=_fake_bwd))


#: x, z, membrane, current (fp32 I/O); the refractory model also writes its 1-byte mask
CUBA_SCAN = _spec("cuba_triton", SAVED_BYTES["cuba"], 16)
CUBA_REFRACTORY_SCAN = _spec("cuba_refractory_triton", SAVED_BYTES["cuba_refractory"], 17)

aot("cuba_triton", "cuba_fwd", _cuba_fwd, dict(REFRAC=False, STORE_M=False, BLOCK=512),
    x_ptr="io", z_ptr="io", m_ptr="*i8")
aot("cuba_refractory_triton", "cuba_fwd", _cuba_fwd, dict(REFRAC=True, STORE_M=True, BLOCK=512),
    x_ptr="io", z_ptr="io", m_ptr="*i8")
for _name, _r in (("cuba_triton", False), ("cuba_refractory_triton", True)):
    aot(_name, "cuba_bwd", _cuba_bwd, dict(REFRAC=_r, HAS_GZ=True, HAS_GV=True, HAS_GI=True, NEED_PARAMS=True,
                                           BLOCK=512), m_ptr="*i8", gz_ptr="io", gx_ptr="io")


def cuba_triton_supports(x_seq, params=None, refractory=False, dt=None, **_) -> Optional[str]:
    """None when the Triton CUBA scan can run this case, else the reason."""
    return device_reason(x_seq) or cuba_supports_common(x_seq, params, refractory)


def cuba_triton(x_seq: torch.Tensor, params, state=None, return_traces: bool = False, *, dt: float,
                refractory_time=None):
    """Fused hxtorch CUBA LIF (refractory when ``refractory_time`` is not None), the kernel
    contract of :func:`spikefuse.kernels.cpu.cuba.cuba_cpu`: ``((spikes, membrane, current),
    final_state, None)``. Differentiable in x and tensor leak/reset/threshold/tau_syn/tau_mem.

    Example (needs CUDA, or TRITON_INTERPRET=1 set before importing triton)::

        >>> (z, v, i), final, _ = cuba_triton(x.cuda(), CubaParams(threshold=0.3), dt=1e-6)  # doctest: +SKIP
    """
    shape = tuple(x_seq.shape[1:])
    T = x_seq.shape[0]
    consts = cuba_consts(params, dt, refractory_time, shape, x_seq.device, expand_param)
    tensors = [x_seq.reshape(T, -1).contiguous(), *consts]
    refractory = refractory_time is not None
    scan = CUBA_REFRACTORY_SCAN if refractory else CUBA_SCAN
    spk, mem, cur, _ = scan.apply(tensors, [0.0], [int(refractory), IO_DTYPES.index(x_seq.dtype), grad_bits(tensors)])
    spk, mem, cur = spk.view(x_seq.shape), mem.view(x_seq.shape), cur.view(x_seq.shape)
    return (spk, mem, cur), cuba_final_state(spk, mem, cur, refractory_time, dt), None
