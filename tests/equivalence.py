"""One backend-vs-reference harness for the kernel tests (ARCHITECTURE.md 6.5).

``check_backend(run, leaves, backend)`` clones ``leaves`` (name -> tensor) as fresh leaves that
require grad, calls ``run(backend, leaves)`` and ``run(reference, leaves)`` (each returns its
outputs as a list), draws the same random cotangent for every output (a fixed generator, output
by output) and compares: the first ``exact`` outputs with ``torch.equal``, the others and every
gradient with the per-dtype tolerance tables (accelerated-scan's atol/rtol dicts). Shapes and
dtypes must match, and every leaf must receive a gradient. Returns the reference's
``(outputs, grads)`` for the caller's own extra assertions.

The options cover every family's harness: ``exact="all"`` (integer families: every output,
state and trace bit for bit), ``differentiable_only`` (the loss projects only the outputs that
require grad, and which ones do must agree with the reference), ``loss_dtype``,
``grad_dtype`` / :func:`scaled_tol` (gradients compared in fp64 with a tolerance scaled by
their magnitude), ``allow_none_grads``. Per-family options (models, parameter leaves, initial
state, traces) live in ``run``.
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


def scaled_tol(tol: float):
    """``grad_tol`` of the bit-exact integer families: ``rtol = tol``, ``atol = tol`` times the
    reference gradient's largest magnitude (at least 1)."""
    return lambda name, ref: dict(rtol=tol, atol=tol * max(1.0, ref.abs().max().item()))


def _run_and_grad(run: Callable, backend: str, leaves: dict, seed: int, differentiable_only: bool,
                  loss_dtype: torch.dtype):
    """Outputs, gradients by leaf name, and which outputs require grad."""
    lv = {k: v.detach().clone().requires_grad_() for k, v in leaves.items()}
    outs = [o for o in run(backend, lv)]
    g = torch.Generator().manual_seed(seed)
    used = [o for o in outs if o.requires_grad] if differentiable_only else outs
    loss = sum((o.to(loss_dtype) * torch.randn(o.shape, generator=g, dtype=loss_dtype)).sum() for o in used)
    names = list(lv)
    grads = torch.autograd.grad(loss, [lv[k] for k in names], allow_unused=True)
    return [o.detach() for o in outs], dict(zip(names, grads)), [o.requires_grad for o in outs]


def outputs_and_grads(run: Callable, backend: str, leaves: dict, seed: int = 99):
    """``run(backend, fresh_leaves)`` -> outputs; gradients of a random projection of them."""
    outs, grads, _ = _run_and_grad(run, backend, leaves, seed, False, torch.float32)
    return outs, grads


def _check_outputs(outs_k, outs_r, exact):
    assert len(outs_k) == len(outs_r)
    for n, (a, b) in enumerate(zip(outs_k, outs_r)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"output {n}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        if exact == "all" or n < exact:
            assert torch.equal(a, b), f"output {n} differs"
        else:
            yield n, a, b


def check_backend(run: Callable, leaves: dict, backend: str, *, reference: str = "reference",
                  exact=1, dtype: Optional[torch.dtype] = None, grad_tol=None,
                  output_tol: Optional[dict] = None, upcast_low_precision: tuple = ("x",), seed: int = 99,
                  differentiable_only: bool = False, loss_dtype: torch.dtype = torch.float32,
                  grad_dtype: Optional[torch.dtype] = None, allow_none_grads: bool = False):
    """Compare ``backend`` with ``reference`` (see the module docstring). ``exact``: how many
    leading outputs must be bit-identical (``"all"``: every output, the integer families).
    ``dtype`` picks the gradient tolerance (default: the dtype of the first leaf); ``grad_tol``
    replaces it (a dict, or ``f(name, reference_grad) -> dict``, e.g. :func:`scaled_tol`);
    gradients of the leaves named in ``upcast_low_precision`` are compared in fp32 when ``dtype``
    is fp16/bf16, every gradient in ``grad_dtype`` when given. ``differentiable_only``: the loss
    projects only the outputs that require grad, and which ones do must agree;
    ``loss_dtype``: the dtype of the projection; ``allow_none_grads``: a leaf may get no
    gradient, if it gets none from both."""
    dtype = dtype or next(iter(leaves.values())).dtype
    outs_k, grads_k, req_k = _run_and_grad(run, backend, leaves, seed, differentiable_only, loss_dtype)
    outs_r, grads_r, req_r = _run_and_grad(run, reference, leaves, seed, differentiable_only, loss_dtype)
    if differentiable_only:
        assert req_k == req_r, f"differentiable outputs differ: {req_k} vs {req_r}"
    for n, a, b in _check_outputs(outs_k, outs_r, exact):
        torch.testing.assert_close(a, b, **(output_tol or OUTPUT_TOL))
    assert grads_k.keys() == grads_r.keys()
    low = dtype in (torch.float16, torch.bfloat16)
    for k in grads_r:
        gk, gr = grads_k[k], grads_r[k]
        if allow_none_grads and gr is None and gk is None:
            continue
        assert gr is not None, k
        assert gk is not None and gk.shape == gr.shape and gk.dtype == gr.dtype, k
        if grad_dtype is not None:
            gk, gr = gk.to(grad_dtype), gr.to(grad_dtype)
        elif low and k in upcast_low_precision:
            gk, gr = gk.float(), gr.float()
        tol = grad_tol(k, gr) if callable(grad_tol) else (grad_tol or GRAD_TOL[dtype])
        torch.testing.assert_close(gk, gr, **tol, msg=lambda m: f"grad {k}: {m}")
    return outs_r, grads_r


def check_compile_variant(monkeypatch, module, factory: str, patched: Callable, outs: Callable) -> list:
    """A kernel factory's default variant against another compile-time variant and the reference:
    ``outs(backend)`` (a list of tensors) on ``"cpu"`` with ``module.<factory>`` as it is, again
    with ``patched(original)`` in its place (e.g. a lambda passing a flag off), and on
    ``"reference"``; all three bit for bit equal (a spike output first, neither all 0 nor all 1).
    Returns the default outputs."""
    default = outs("cpu")
    monkeypatch.setattr(module, factory, patched(getattr(module, factory)))
    other = outs("cpu")
    monkeypatch.undo()
    ref = outs("reference")
    assert 0 < default[0].sum() < default[0].numel()
    for k, (a, b, r) in enumerate(zip(default, other, ref)):
        assert torch.equal(a, b), k
        assert torch.equal(a, r), k
    return default

