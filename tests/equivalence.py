"""One backend-vs-reference harness for the kernel tests (ARCHITECTURE.md 6.5).

``check_backend(run, leaves, backend)`` clones ``leaves`` (name -> tensor) as fresh leaves that
require grad, calls ``run(backend, leaves)`` and ``run(reference, leaves)`` (each returns its
outputs as a list), draws the same random cotangent for every output (a fixed generator, output
by output) and compares: the first ``exact`` outputs with ``torch.equal``, the others and every
gradient with the per-dtype tolerance tables (accelerated-scan's atol/rtol dicts). Shapes and
dtypes must match, and every leaf must receive a gradient. Returns the reference's
``(outputs, grads)`` for the caller's own extra assertions.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

#: gradient tolerance per dtype of the inputs
GRAD_TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=2e-2, atol=2e-2),
    torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
}

#: tolerance of the non-exact forward outputs (states, traces: fp32 in every case)
OUTPUT_TOL = dict(rtol=1e-6, atol=1e-6)


def outputs_and_grads(run: Callable, backend: str, leaves: dict, seed: int = 99):
    """``run(backend, fresh_leaves)`` -> outputs; gradients of a random projection of them."""
    lv = {k: v.detach().clone().requires_grad_() for k, v in leaves.items()}
    outs = [o for o in run(backend, lv)]
    g = torch.Generator().manual_seed(seed)
    loss = sum((o.float() * torch.randn(o.shape, generator=g)).sum() for o in outs)
    names = list(lv)
    grads = torch.autograd.grad(loss, [lv[k] for k in names], allow_unused=True)
    return [o.detach() for o in outs], dict(zip(names, grads))


def check_backend(run: Callable, leaves: dict, backend: str, *, reference: str = "reference",
                  exact: int = 1, dtype: Optional[torch.dtype] = None, grad_tol=None,
                  output_tol: Optional[dict] = None, upcast_low_precision: tuple = ("x",), seed: int = 99):
    """Compare ``backend`` with ``reference`` (see the module docstring). ``dtype`` picks the
    gradient tolerance (default: the dtype of the first leaf); ``grad_tol`` replaces it (a dict,
    or ``f(name, reference_grad) -> dict``); gradients of the leaves named in
    ``upcast_low_precision`` are compared in fp32 when ``dtype`` is fp16/bf16."""
    dtype = dtype or next(iter(leaves.values())).dtype
    outs_k, grads_k = outputs_and_grads(run, backend, leaves, seed)
    outs_r, grads_r = outputs_and_grads(run, reference, leaves, seed)
    assert len(outs_k) == len(outs_r)
    for n, (a, b) in enumerate(zip(outs_k, outs_r)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"output {n}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        if n < exact:
            assert torch.equal(a, b), f"output {n} differs"
        else:
            torch.testing.assert_close(a, b, **(output_tol or OUTPUT_TOL))
    assert grads_k.keys() == grads_r.keys()
    low = dtype in (torch.float16, torch.bfloat16)
    for k in grads_r:
        gk, gr = grads_k[k], grads_r[k]
        assert gr is not None, k
        assert gk is not None and gk.shape == gr.shape and gk.dtype == gr.dtype, k
        if low and k in upcast_low_precision:
            gk, gr = gk.float(), gr.float()
        tol = grad_tol(k, gr) if callable(grad_tol) else (grad_tol or GRAD_TOL[dtype])
        torch.testing.assert_close(gk, gr, **tol, msg=lambda m: f"grad {k}: {m}")
    return outs_r, grads_r
