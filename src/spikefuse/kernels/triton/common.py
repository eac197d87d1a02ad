"""Shared pieces of the Triton kernels: in-kernel surrogate derivatives, launch geometry,
the ``supports`` device rule.

Surrogate ids follow :data:`spikefuse.surrogate.KERNEL_IDS` (keep in sync)::

    0 ATan(alpha)              (alpha/2) / (1 + (pi/2 alpha x)^2)
    1 Sigmoid(alpha)           alpha s (1 - s),  s = sigmoid(alpha x)
    2 SuperSpike(alpha)        1 / (alpha |x| + 1)^2
    3 SLAYERExp(tau, scale)    scale / (2 tau) exp(-|x| / tau)
    4 Triangle(width, height)  height max(0, 1 - |x| / width)

Kernels are written for a GPU (a block of neurons per program, coalesced loads along the
neuron axis, state in registers, the loop over T inside the kernel) and also run in Triton's
interpreter on CPU tensors when ``TRITON_INTERPRET=1`` was set before :mod:`triton` decorated them.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import triton
import triton.language as tl

from .._common import input_grad_bits as grad_bits, io_reason  # noqa: F401  (grad_bits: re-exported for the kernels)

#: Triton reads TRITON_INTERPRET when it decorates a kernel, i.e. when this package is imported.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

SURROGATE_IDS = (0, 1, 2, 3, 4)


@triton.jit
def surrogate_grad(x, SG: tl.constexpr, a0, a1):
    """dS/dx of surrogate family ``SG`` at ``x`` (fp32), parameters ``a0, a1``."""
    if SG == 0:
        z = 1.5707963267948966 * a0 * x
        g = (0.5 * a0) / (1.0 + z * z)
    elif SG == 1:
        s = tl.sigmoid(a0 * x)
        g = a0 * s * (1.0 - s)
    elif SG == 2:
        d = a0 * tl.abs(x) + 1.0
        g = 1.0 / (d * d)
    elif SG == 3:
        g = a1 / (2.0 * a0) * tl.exp(-tl.abs(x) / a0)
    else:
        g = a1 * tl.maximum(1.0 - tl.abs(x) / a0, 0.0)
    return g


@triton.jit
def slayer_grad(x, tau_rho, scale_rho, GRADED: tl.constexpr):
    """SPEC 2.1 SLAYER pseudo-derivative at ``x = v - θ``: binary spikes
    ``scale_rho / (2 tau_rho) exp(-|x| / tau_rho)`` (the SLAYERExp formula of
    :func:`surrogate_grad`), graded spikes ``scale_rho exp(min(x, 0) / tau_rho)``."""
    if GRADED:
        d = scale_rho * tl.exp(tl.minimum(x, 0.0) / tau_rho)
    else:
        d = surrogate_grad(x, 3, tau_rho, scale_rho)
    return d


@triton.jit
def rstz12(a):
    """sign(a) * (|a| >> 12) on int64 (Loihi's shift toward zero)."""
    return tl.where(a < 0, -((-a) >> 12), a >> 12)


@triton.jit
def adapt_threshold(theta, ref, theta0, keep_th, keep_r):
    """Loihi adaptive-threshold decay (SPEC 3.4), int64: the threshold decays toward ``theta0``,
    the refractory term toward 0 (``keep = 4096 - D``)."""
    ref = rstz12(ref * keep_r)
    theta = rstz12((theta - theta0) * keep_th) + theta0
    return theta, ref


@triton.jit
def rne_bf16(x):
    """fp32 ``x`` rounded to the nearest bfloat16 (ties to even), still as fp32, so that the
    following ``.to(tl.bfloat16)`` is exact everywhere (Triton's interpreter truncates)."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


def device_reason(x: torch.Tensor) -> Optional[str]:
    """None if the Triton kernels can run on ``x``'s device in this process."""
    if x.is_cuda:
        return None
    if x.device.type == "cpu" and INTERPRET:
        return None
    return "needs CUDA tensors or TRITON_INTERPRET=1"


def common_reason(x: torch.Tensor, surrogate=None) -> Optional[str]:
    why = device_reason(x) or io_reason(x)
    if why is None and surrogate is not None:
        kid = getattr(surrogate, "kernel_id", -1)
        if kid not in SURROGATE_IDS:
            why = f"surrogate {surrogate!r} has no in-kernel formula (kernel_id {kid})"
    return why


def launch_geometry(m: int) -> tuple[int, int]:
    """(BLOCK, num_warps) for ``m`` neurons. The scan is a long sequential loop per program, so
    latency is hidden by many resident warps: aim for >= 4 programs per SM of an H100 (132 SMs),
    one neuron per thread up to 256-wide blocks, at most 4 per thread beyond. Small blocks in the
    interpreter so that tests exercise partial blocks."""
    if INTERPRET:
        return 32, 1
    block = 1024
    while block > 32 and triton.cdiv(m, block) < 4 * 132:
        block //= 2
    return block, max(1, min(8, block // 32))


def torch_to_tl(dtype: torch.dtype):
    return {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype]


# --------------------------------------------------------------------------- launch / op glue
# One copy of what every Triton family needs to sit behind a ScanSpec (kernels/scan.py): the
# launch, placeholders for absent pointers, the op encoding of "which inputs need a gradient",
# float32 rounding of Python numbers, and the ahead-of-time signatures the sm_90 compile test reads.


def launch(kernel, M: int, *args, fusion: Optional[bool] = None, **meta) -> None:
    """``kernel[grid](*args, **meta)`` over ``M`` neurons with :func:`launch_geometry`;
    ``fusion=False`` compiles without FMA contraction (forward scans: bit-equal to torch),
    ``None`` leaves Triton's default."""
    block, warps = launch_geometry(M)
    if fusion is not None:
        meta["enable_fp_fusion"] = fusion
    kernel[(triton.cdiv(M, block),)](*args, BLOCK=block, num_warps=warps, **meta)


def ptr(t: Optional[torch.Tensor], placeholder: torch.Tensor) -> torch.Tensor:
    """``t``, or ``placeholder`` for an absent tensor (the kernel never reads it: a constexpr
    flag says it is absent)."""
    return placeholder if t is None else t


def contig(t: Optional[torch.Tensor], placeholder: torch.Tensor) -> torch.Tensor:
    """``t.contiguous()``, or ``placeholder`` when absent (incoming gradients may be strided)."""
    return placeholder if t is None else t.contiguous()


def f32_empty(*shape, device) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.float32, device=device)


def bit(bits: int, k: int) -> bool:
    return bool((bits >> k) & 1)


@torch.compiler.assume_constant_result
def to_f32(v: float) -> float:
    """``v`` rounded to float32, as a Python float (a constant under torch.compile, no
    ``.item()`` graph break)."""
    return float(torch.tensor(v, dtype=torch.float32).item())


#: spec name -> [(label, jit kernel, constexprs, fusion, type overrides)] for the AOT compile test
AOT: dict = {}


def aot(spec_name: str, label: str, fn, consts: dict, fusion: bool = False, **types) -> None:
    """Record an ahead-of-time compile case of ``fn`` for the spec ``spec_name`` (see
    :func:`aot_signature`; ``types`` overrides the default argument types)."""
    AOT.setdefault(spec_name, []).append((label, fn, dict(consts), fusion, types))


def aot_signature(fn, consts: dict, types: dict) -> dict:
    """Triton signature of ``fn``: constexprs from ``consts``; pointers ``*fp32``, ``T``/``M``
    ``i32``, other scalars ``fp32`` unless ``types`` says otherwise (``"io"``: ``*bf16``)."""
    sig = {}
    for n in fn.arg_names:
        if n in consts:
            sig[n] = "constexpr"
        elif n in types:
            sig[n] = "*bf16" if types[n] == "io" else types[n]
        elif n.endswith("_ptr"):
            sig[n] = "*fp32"
        else:
            sig[n] = "i32" if n in ("T", "M") else "fp32"
    return sig
