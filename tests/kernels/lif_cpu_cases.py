"""Shared helpers of the CPU LIF kernel tests (test_kernels_cpu_lif.py: numba vs reference;
test_kernels_cpu_identity.py: numba, fallback and reference): a loss that uses every output and
the gradients it gives, and a bitwise comparison."""
import torch

from spikefuse.functional.lif import LIFState, lif_multistep


def lif_grads(backend, x, v0, params, traces, leaves=()):
    """Spikes, final state, gX, gV0, the gradients of ``leaves`` (tensors the parameters are made
    from) and, with ``traces``, H and V, for a random-weighted loss over the spikes, the final
    state and (traces) both traces. ``params`` is a LIFParams or a callable giving
    ``(params, leaves)`` (parameters computed from leaves, e.g. ``sigmoid(w)``, need a fresh
    graph per run)."""
    if callable(params):
        params, leaves = params()
    x = x.detach().clone().requires_grad_()
    v0 = v0.detach().clone().requires_grad_()
    out = lif_multistep(x, params, LIFState(v0), backend=backend, return_traces=traces)
    g = torch.Generator().manual_seed(3)
    loss = (out[0] * torch.randn(out[0].shape, generator=g)).sum()
    loss = loss + (out[1].v * torch.randn(out[1].v.shape, generator=g)).sum()
    if traces:
        loss = loss + (out[2].h * torch.randn(x.shape, generator=g)).sum()
        loss = loss + (out[2].v * torch.randn(x.shape, generator=g)).sum()
    gx, gv0, *gp = torch.autograd.grad(loss, [x, v0, *leaves])
    return [out[0], out[1].v, gx, gv0, *gp] + ([out[2].h, out[2].v] if traces else [])


def assert_bits(a, b):
    """Same dtype, shape and bits (NaNs match NaNs; 0.0 matches -0.0, as in torch.equal)."""
    assert len(a) == len(b)
    for n, (u, w) in enumerate(zip(a, b)):
        assert u.dtype == w.dtype and u.shape == w.shape, n
        same = (u.view(torch.int32) == w.view(torch.int32)) | (u.isnan() & w.isnan()) | ((u == 0) & (w == 0))
        assert bool(same.all()), f"output {n}: {(~same).sum().item()} elements differ, max diff " \
                                 f"{(u.float() - w.float()).abs().max().item()}"
