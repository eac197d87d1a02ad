"""The generic Triton scan template (ARCHITECTURE.md 6.4, stage 2): one forward and one backward
time scan that take a family's step / VJP ``@triton.jit`` functions as compile-time arguments.

This sits *beside* the per-family kernels of :mod:`.lif` and :mod:`.cuba` (which stay the default
``"triton"`` backend) as an A/B candidate. The step is inlined at compile time: in an
ahead-of-time sm_90 compile each generic kernel's PTX has the same instructions, opcode for
opcode, as the per-family kernel's (tests/kernels/test_kernels_compile_generic.py), and in the
interpreter every output and gradient is torch.equal. Switching the default still waits for a
GPU timing run (:func:`ab_cases` gives ``benchmarks/neurons.py`` its ``"triton-generic"`` rows).

Template (``M`` neurons, ``BLOCK`` of them per program, the loop over ``T`` inside the kernel)::

    scan_fwd(x, outs, state0, last, params, T, M, STEP, INIT, OPT, P_OTHER, BLOCK)
        state  = INIT(state0[...], params)        params = params[...]    (INIT None: state0)
        for t:  outs_t, state = STEP(x[t], state, params, OPT);  outs[...][t] = outs_t
        last[...] = state
    scan_bwd(lag, cur, gouts, glast, state0, params, scal, gx, gstate0, gparams, T, M, VJP, ...)
        carry = glast[...]                        acc = 0
        for t = T-1 .. 0:
            gx[t], carry, gp = VJP(t, lag[t], lag[t-1], cur[t], gouts[t], has, carry, state0,
                                   params, scal, OPT);    acc += gp
        gstate0[...] = carry;  gparams[...] = acc

``outs``, ``state0``, ``last``, ``params``, ``lag`` (saved rows read at ``t`` and ``t - 1``, the
``t`` row carried over from the previous step so that each row is loaded once), ``cur`` (rows
read at ``t``), ``gouts``, ``glast``, ``gstate0`` and ``gparams`` are Triton tuples of pointers,
walked with ``tl.static_range``. A ``None`` entry is specialised away: it loads as zeros and is
never stored (an absent output, an undefined incoming gradient, a parameter gradient nobody
wants); the VJP also gets ``has``, compile-time bools saying which ``gouts`` exist, so that it
can skip an add of an absent gradient (:func:`plus`) as the per-family kernels do. ``OPT`` is a
tuple of the family's compile-time flags, ``P_OTHER`` the parameter values for masked lanes,
``scal`` a tuple of runtime fp32 scalars. Everything in the scan is fp32; the input and
incoming gradients are read in their own dtype and converted, stores convert to the pointer's
element type (fp16/bf16 spikes and ``gx``, int8 masks).

A family is a step/VJP pair written around the existing helpers (:func:`.lif.lif_step`,
:func:`.lif.lif_vjp`, :func:`.cuba.cuba_step`, :func:`.cuba.cuba_vjp`) plus a :class:`_Family`
that says which pointers go where; :func:`lif_generic` and :func:`cuba_generic` have the raw
signatures of :func:`.lif.lif_triton` and :func:`.cuba.cuba_triton`.

Needs Triton >= 3.4 (tuple kernel arguments, in the interpreter too, and JIT functions as
constexprs: triton-lang/triton PRs 5220, 5790, 5723, 6988, merged Nov 2024 - May 2025); tested
with 3.9.0. Importing this module on an older Triton raises ImportError; the per-family kernels,
which the package's ``triton>=3.0`` floor is for, are unaffected.
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch
import triton
import triton.language as tl

from ... import kernels
from .._common import IO_DTYPES, cuba_consts, cuba_final_state, expand_param, lif_kind, lif_outputs, lif_v0
from ..scan import ScanFunction
from . import cuba as _cuba, lif as _lif
from .common import grad_bits, launch_geometry
from .cuba import SAVED_BYTES as _CUBA_SAVED, cuba_step, cuba_triton, cuba_triton_supports, cuba_vjp
from .lif import SAVED_BYTES as _LIF_SAVED, lif_reset, lif_step, lif_supports, lif_triton, lif_vjp

#: the oldest Triton with every feature the template uses
MIN_TRITON = (3, 4)
if tuple(int(p) for p in triton.__version__.split(".")[:2]) < MIN_TRITON:
    raise ImportError(f"spikefuse.kernels.triton.generic needs triton>={'.'.join(map(str, MIN_TRITON))} "
                      f"(tuple arguments, JIT functions as constexprs), got {triton.__version__}")

#: bytes saved for backward per neuron-step: the same buffers as the per-family kernels
SAVED_BYTES = {"lif": _LIF_SAVED["lif"], "cuba": _CUBA_SAVED["cuba"],
               "cuba_refractory": _CUBA_SAVED["cuba_refractory"]}


# --------------------------------------------------------------------------- the template

@triton.jit
def load_rows(ptrs, idx, mask, OTHER: tl.constexpr, BLOCK: tl.constexpr):
    """``ptrs[k][idx]`` as fp32 for every k (masked lanes ``OTHER[k]``, or 0 when ``OTHER`` is
    None); a None pointer gives zeros."""
    vals = ()
    for k in tl.static_range(len(ptrs)):
        if ptrs[k] is None:
            v = tl.zeros([BLOCK], dtype=tl.float32)
        elif OTHER is None:
            v = tl.load(ptrs[k] + idx, mask=mask, other=0.0).to(tl.float32)
        else:
            v = tl.load(ptrs[k] + idx, mask=mask, other=OTHER[k]).to(tl.float32)
        vals = vals + (v,)
    return vals


@triton.jit
def plus(a, b, PRESENT: tl.constexpr):
    """``a + b`` when ``b`` is a loaded row, else ``a`` itself (not ``a + 0.0``: that is an
    instruction, since -0 + 0 = +0; the per-family kernels skip the add, and so does this)."""
    r = a
    if PRESENT:
        r = a + b
    return r


@triton.jit
def store_rows(ptrs, vals, idx, mask):
    """``ptrs[k][idx] = vals[k]`` in the pointer's element type; None pointers are skipped."""
    for k in tl.static_range(len(ptrs)):
        if ptrs[k] is not None:
            tl.store(ptrs[k] + idx, vals[k].to(ptrs[k].dtype.element_ty), mask=mask)


@triton.jit
def zero_rows(ptrs, BLOCK: tl.constexpr):
    """One fp32 zero row per entry of ``ptrs``."""
    vals = ()
    for k in tl.static_range(len(ptrs)):
        vals = vals + (tl.zeros([BLOCK], dtype=tl.float32),)
    return vals


@triton.jit
def add_rows(acc, vals):
    """Elementwise sum of two tuples of the same arity."""
    out = ()
    for k in tl.static_range(len(acc)):
        out = out + (acc[k] + vals[k],)
    return out


@triton.jit
def scan_fwd(x_ptr, out_ptrs, state0_ptrs, last_ptrs, param_ptrs, T, M, STEP: tl.constexpr,
             INIT: tl.constexpr, OPT: tl.constexpr, P_OTHER: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    params = load_rows(param_ptrs, offs, mask, P_OTHER, BLOCK)
    state = load_rows(state0_ptrs, offs, mask, None, BLOCK)
    if INIT is not None:  # initial state partly made of parameters (no second load of them)
        state = INIT(state, params)
    for t in range(T):
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        outs, state = STEP(x, state, params, OPT)
        store_rows(out_ptrs, outs, idx, mask)
    store_rows(last_ptrs, state, offs, mask)


@triton.jit
def scan_bwd(lag_ptrs, cur_ptrs, gout_ptrs, glast_ptrs, state0_ptrs, param_ptrs, scal,
             gx_ptr, gstate0_ptrs, gparam_ptrs, T, M,
             VJP: tl.constexpr, OPT: tl.constexpr, P_OTHER: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    params = load_rows(param_ptrs, offs, mask, P_OTHER, BLOCK)
    state0 = load_rows(state0_ptrs, offs, mask, None, BLOCK)
    carry = load_rows(glast_ptrs, offs, mask, None, BLOCK)
    acc = zero_rows(gparam_ptrs, BLOCK)
    lag = load_rows(lag_ptrs, tl.cast(T - 1, tl.int64) * M + offs, mask, None, BLOCK)
    has = ()  # which incoming gradients exist (compile-time bools)
    for k in tl.static_range(len(gout_ptrs)):
        has = has + (gout_ptrs[k] is not None,)
    for i in range(T):
        t = T - 1 - i
        idx = tl.cast(t, tl.int64) * M + offs  # int64: T*M may exceed 2**31
        # row t-1 (clamped to row 0 at t = 0, where VJPs use state0 instead)
        lag_prev = load_rows(lag_ptrs, tl.cast(tl.maximum(t - 1, 0), tl.int64) * M + offs, mask, None, BLOCK)
        cur = load_rows(cur_ptrs, idx, mask, None, BLOCK)
        gouts = load_rows(gout_ptrs, idx, mask, None, BLOCK)
        gx, carry, gp = VJP(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT)
        tl.store(gx_ptr + idx, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        acc = add_rows(acc, gp)
        lag = lag_prev
    store_rows(gstate0_ptrs, carry, offs, mask)
    store_rows(gparam_ptrs, acc, offs, mask)


# --------------------------------------------------------------------------- families

@triton.jit
def lif_scan_step(x, state, params, OPT: tl.constexpr):
    """SpikingJelly IF/LIF (SPEC 15): state (V,), params (tau, v_threshold, v_reset),
    OPT (KIND, HARD, STRICT); outputs (S, H, V)."""
    h, s, v = lif_step(x, state[0], params[0], params[1], params[2], OPT[0], OPT[1], OPT[2])
    return (s, h, v), (v,)


@triton.jit
def lif_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (H,), cur (X,) (decay_input with parameter gradients only), gouts (gS, gH, gV),
    carry (gV,), state0 (V0,), scal (surrogate a0, a1), OPT (KIND, HARD, DETACH, SG, STRICT).
    Returns (gX, (gV[t-1],), (g_tau, g_vth, g_vr))."""
    tau, vth, vr = params[0], params[1], params[2]
    vprev = tl.where(t > 0, lif_reset(lag_prev[0], vth, vr, OPT[1], OPT[4]), state0[0])
    gx, gvp, gtau, gvth, gvr = lif_vjp(gouts[0], plus(carry[0], gouts[2], has[2]), gouts[1], lag[0], vprev,
                                       cur[0], tau, vth, vr, scal[0], scal[1], OPT[0], OPT[1], OPT[2], OPT[3],
                                       OPT[4])
    return gx, (gvp,), (gtau, gvth, gvr)


@triton.jit
def cuba_scan_init(state0, params):
    """(v, i, ref) at t = 0: the leak and the loaded zeros (state0 = (i0, ref0), None pointers)."""
    return (params[0], state0[0], state0[1])


@triton.jit
def cuba_scan_step(x, state, params, OPT: tl.constexpr):
    """hxtorch CUBA LIF (SPEC 13): state (v, i, ref), params (leak, reset, threshold, a_m, c_s,
    R), OPT (REFRAC,); outputs (z, v, i, m)."""
    z, v, i, ref, m = cuba_step(x, state[0], state[1], state[2], params[0], params[1], params[2],
                                params[3], params[4], params[5], OPT[0])
    return (z, v, i, m), (v, i, ref)


@triton.jit
def cuba_scan_vjp(t, lag, lag_prev, cur, gouts, has, carry, state0, params, scal, OPT: tl.constexpr):
    """lag (v, i) traces, cur (m,), gouts (gz, gv, gi), carry (gv, gi), state0 (i0 = 0,),
    params (leak, reset, threshold, a_m, c_s, alpha); v0 is the leak. Returns (gx, carry,
    parameter grads)."""
    v_old = tl.where(t > 0, lag_prev[0], params[0])
    i_old = tl.where(t > 0, lag_prev[1], state0[0])
    gi_tot = plus(carry[1], gouts[2], has[2])
    gv, gi, g_leak, g_reset, g_thr, g_am, g_cs = cuba_vjp(
        gouts[0], plus(carry[0], gouts[1], has[1]), gi_tot, v_old, i_old, cur[0],
        params[0], params[1], params[2], params[3], params[4], params[5])
    return gi_tot, (gv, gi), (g_leak, g_reset, g_thr, g_am, g_cs)


# --------------------------------------------------------------------------- launch and autograd

class _Family:
    """A family's compile-time pieces: step/VJP JIT functions (and the optional ``init(state0,
    params)``), masked-lane parameter values of the forward and backward parameter tuples, and
    whether the backward may contract FMAs (the forward never does: it must be bit-equal to
    torch)."""

    def __init__(self, step, vjp, fwd_other, bwd_other, bwd_fusion, init=None):
        self.step, self.vjp, self.init = step, vjp, init
        self.fwd_other, self.bwd_other, self.bwd_fusion = fwd_other, bwd_other, bwd_fusion

    def fwd(self, x, outs, state0, last, params, opt):
        T, M = x.shape
        block, warps = launch_geometry(M)
        scan_fwd[(triton.cdiv(M, block),)](x, outs, state0, last, params, T, M, STEP=self.step,
                                           INIT=self.init, OPT=opt, P_OTHER=self.fwd_other, BLOCK=block,
                                           num_warps=warps, enable_fp_fusion=False)

    def bwd(self, gx, rows, gouts, glast, state0, params, scal, gstate0, gparams, opt):
        """``rows = (lag, cur)``; None incoming gradients are specialised away."""
        T, M = gx.shape
        gouts = tuple(None if g is None else g.contiguous() for g in gouts)
        glast = tuple(None if g is None else g.contiguous() for g in glast)
        block, warps = launch_geometry(M)
        scan_bwd[(triton.cdiv(M, block),)](rows[0], rows[1], gouts, glast, state0, params, scal, gx,
                                           gstate0, gparams, T, M, VJP=self.vjp, OPT=opt,
                                           P_OTHER=self.bwd_other, BLOCK=block, num_warps=warps,
                                           enable_fp_fusion=self.bwd_fusion)


def _empty(shape, dtype=torch.float32, *, like):
    return torch.empty(shape, dtype=dtype, device=like.device)


def _grads_wanted(need, M, like):
    """A fresh fp32 per-neuron buffer for each wanted gradient, None for the others."""
    return tuple(_empty(M, like=like) if n else None for n in need)


class _LIFRunner:
    """tensors ``(tau, v_threshold, v_reset, v0)``; cfg ``(kind, hard, detach, sg, a0, a1,
    traces, need_grad, strict)``; outputs ``(spikes, v_last, h_seq | None, v_seq | None)``
    (h_seq when stored: for traces or backward)."""
    family = _Family(lif_scan_step, lif_scan_vjp, (1.0, 1.0, 0.0), (1.0, 1.0, 0.0), bwd_fusion=True)

    def forward(self, cfg, x, tensors):
        kind, hard, _, _, _, _, traces, need_grad, strict = cfg
        tau, vth, vr, v0 = tensors
        T, M = x.shape
        spk, vlast = torch.empty_like(x), _empty(M, like=x)
        hseq = _empty((T, M), like=x) if (traces or need_grad) else None
        vseq = _empty((T, M), like=x) if traces else None
        self.family.fwd(x, (spk, hseq, vseq), (v0,), (vlast,), (tau, vth, vr), (kind, hard, strict))
        return [spk, vlast, hseq, vseq]

    def backward(self, cfg, x_dtype, saved, gouts, need):
        kind, hard, detach, sg, a0, a1, _, _, strict = cfg
        hseq, x, tau, vth, vr, v0 = saved
        g_spk, g_vlast, g_hseq, g_vseq = gouts
        T, M = hseq.shape
        gx, gv0 = _empty((T, M), x_dtype, like=hseq), _empty(M, like=hseq)
        gp = _grads_wanted(need[1:4], M, hseq)
        x_row = x if any(need[1:4]) else None  # only the decay_input tau gradient reads X
        self.family.bwd(gx, ((hseq,), (x_row,)), (g_spk, g_hseq, g_vseq), (g_vlast,), (v0,),
                        (tau, vth, vr), (float(a0), float(a1)), (gv0,), gp,
                        (kind, hard, detach, sg, strict))
        return (gx if need[0] else None, *gp, gv0 if need[4] else None)


class _CubaRunner:
    """tensors ``(leak, reset, threshold, a_m, c_s, alpha, R)``; cfg ``(refractory,
    need_grad)``; outputs ``(spikes, membrane, current, refractory mask | None)``."""
    family = _Family(cuba_scan_step, cuba_scan_vjp, (0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
                     (0.0, 0.0, 1.0, 0.0, 0.0, 1.0), bwd_fusion=False, init=cuba_scan_init)

    def forward(self, cfg, x, tensors):
        refractory, need_grad = cfg
        leak, reset, thr, a_m, c_s, alpha, R = tensors
        T, M = x.shape
        spk, mem, cur = torch.empty_like(x), _empty((T, M), like=x), _empty((T, M), like=x)
        msk = _empty((T, M), torch.int8, like=x) if (refractory and need_grad) else None
        self.family.fwd(x, (spk, mem, cur, msk), (None, None), (),
                        (leak, reset, thr, a_m, c_s, R if refractory else None), (bool(refractory),))
        return [spk, mem, cur, msk]

    def backward(self, cfg, x_dtype, saved, gouts, need):
        mem, cur, msk, leak, reset, thr, a_m, c_s, alpha = saved
        T, M = mem.shape
        gx = _empty((T, M), x_dtype, like=mem)
        gp = _grads_wanted(need[1:6], M, mem)
        self.family.bwd(gx, ((mem, cur), (msk,)), gouts, (None, None), (None,),
                        (leak, reset, thr, a_m, c_s, alpha), (0.0,), (), gp, (msk is not None,))
        return (gx if need[0] else None, *gp, None, None)


_LIF, _CUBA = _LIFRunner(), _CubaRunner()


# --------------------------------------------------------------------------- ScanSpecs
# The op encodings, save rules and fake functions are those of the per-family specs
# (lif.LIF_SCAN, cuba.CUBA_SCAN): the same buffers, only the forward/backward scans differ.


def _lif_cfg(f, i):
    kind, hard, detach, sg, traces, _, need, strict = i
    return (kind, bool(hard), bool(detach), sg, f[0], f[1], bool(traces), bool(need), bool(strict))


def _lif_forward(tensors, f, i):
    x, *rest = tensors
    return _LIF.forward(_lif_cfg(f, i), x, rest)


def _lif_backward(saved, grads, f, i, needs):
    return list(_LIF.backward(_lif_cfg(f, i), IO_DTYPES[i[5]], saved, grads, needs))


def _cuba_forward(tensors, f, i):
    x, *rest = tensors
    return _CUBA.forward((bool(i[0]), bool(i[2])), x, rest)


def _cuba_backward(saved, grads, f, i, needs):
    return list(_CUBA.backward((bool(i[0]), bool(i[2])), IO_DTYPES[i[1]], saved, grads[:3], needs))


def _generic(base: ScanFunction, name: str, forward, backward) -> ScanFunction:
    return ScanFunction(dataclasses.replace(base.spec, name=name, forward=forward, backward=backward))


LIF_GENERIC = _generic(_lif.LIF_SCAN, "lif_generic", _lif_forward, _lif_backward)
CUBA_GENERIC = _generic(_cuba.CUBA_SCAN, "cuba_generic", _cuba_forward, _cuba_backward)
CUBA_REFRACTORY_GENERIC = _generic(_cuba.CUBA_REFRACTORY_SCAN, "cuba_refractory_generic", _cuba_forward,
                                   _cuba_backward)


# --------------------------------------------------------------------------- raw-tensor entry points

def lif_generic(x_seq: torch.Tensor, params, state=None, return_traces: bool = False):
    """:func:`.lif.lif_triton` through the generic template: same kernel contract, same results
    ``((spikes,), (v_last,), (h_seq, v_seq) or None)``. Example (CUDA, or TRITON_INTERPRET=1)::

        >>> (s,), (v,), _ = lif_generic(x.cuda(), LIFParams(tau=2.0))      # doctest: +SKIP
    """
    shape, dev = tuple(x_seq.shape[1:]), x_seq.device
    v0 = lif_v0(state)
    hard = params.v_reset is not None
    tau = expand_param(params.tau if params.tau is not None else 1.0, shape, dev)
    vth = expand_param(params.v_threshold, shape, dev)
    vr = expand_param(params.v_reset if hard else 0.0, shape, dev)
    v0f = vr.detach().clone() if v0 is None else expand_param(v0, shape, dev)
    sur = params.surrogate
    a0, a1 = sur.kernel_params
    T = x_seq.shape[0]
    tensors = [x_seq.reshape(T, -1).contiguous(), tau, vth, vr, v0f]
    i = [lif_kind(params), int(hard), int(bool(params.detach_reset)), int(sur.kernel_id), int(bool(return_traces)),
         IO_DTYPES.index(x_seq.dtype), grad_bits(tensors), int(getattr(params, "threshold", ">=") == ">")]
    spk, vlast, hseq, vseq = LIF_GENERIC.apply(tensors, [float(a0), float(a1)], i)
    if not return_traces:
        hseq = None
    return lif_outputs(spk, vlast, hseq, vseq, x_seq.shape, return_traces)


def cuba_generic(x_seq: torch.Tensor, params, state=None, return_traces: bool = False, *, dt: float,
                 refractory_time=None):
    """:func:`.cuba.cuba_triton` through the generic template: same kernel contract, same results
    ``((spikes, membrane, current), final_state, None)``."""
    consts = cuba_consts(params, dt, refractory_time, tuple(x_seq.shape[1:]), x_seq.device, expand_param)
    tensors = [x_seq.reshape(x_seq.shape[0], -1).contiguous(), *consts]
    refractory = refractory_time is not None
    scan = CUBA_REFRACTORY_GENERIC if refractory else CUBA_GENERIC
    out = scan.apply(tensors, [0.0], [int(refractory), IO_DTYPES.index(x_seq.dtype), grad_bits(tensors)])[:3]
    spk, mem, cur = (o.view(x_seq.shape) for o in out)
    return (spk, mem, cur), cuba_final_state(spk, mem, cur, refractory_time, dt), None


#: the ``supports`` rules are the per-family kernels' own (same cases, same reasons)
lif_generic_supports = lif_supports
cuba_generic_supports = cuba_triton_supports


# --------------------------------------------------------------------------- A/B rows

#: the benchmark row name of the generic template
AB_BACKEND = "triton-generic"

#: registry family -> (generic kernel, per-family kernel), each as (fn, supports)
PORTED = {"lif": ((lif_generic, lif_generic_supports), (lif_triton, lif_supports)),
          "cuba": ((cuba_generic, cuba_generic_supports), (cuba_triton, cuba_triton_supports))}


def _kernel_key(family: str) -> str:
    """The kernel registry key of a benchmark family name (``cuba_refractory`` runs ``cuba``)."""
    return family.replace("_refractory", "").replace("-refractory", "")


@contextlib.contextmanager
def generic_as_triton(families=tuple(PORTED)):
    """Within the block, backend ``"triton"`` of the ported ``families`` runs the generic template
    (through the functional entry points, as a user would); the per-family kernels come back on
    exit. For A/B timing; the default stays the per-family kernels."""
    for f in families:
        kernels.register(f, "triton", *PORTED[f][0])
    try:
        yield
    finally:
        for f in families:
            kernels.register(f, "triton", *PORTED[f][1])


def ab_cases(family: str, triton_cases: list) -> list:
    """``benchmarks/neurons.py`` hook: copies of the ``"triton"`` cases of ``family`` (a kernel
    key such as ``"lif"`` / ``"cuba"``, or a benchmark family name such as ``"cuba_refractory"``;
    cases are dataclasses with ``impl`` and ``run(x)``) as ``"triton-generic"`` rows whose
    ``run`` goes through :func:`generic_as_triton`, with the same traffic model (the template
    saves the same buffers). Empty for families the template has no port of."""
    key = _kernel_key(family)
    if key not in PORTED:
        return []

    def wrap(run):
        def ab_run(x):
            with generic_as_triton((key,)):
                return run(x)
        return ab_run

    return [dataclasses.replace(c, impl=AB_BACKEND, run=wrap(c.run)) for c in triton_cases if c.impl == "triton"]
