"""The compiled (numba) CPU hxtorch CUBA kernels against the reference loop, bit for bit:
spikes, membrane, current and the input gradient (the reverse scan repeats the reference's
autograd order), plain and refractory, number, one-element and per-neuron constants (numbers and
one-element tensors run the kernels' scalar-constant variant), an odd neuron count over
several tiles, two thread ranges; the parameter gradients too (leak, reset, threshold, tau_syn,
tau_mem: per-step terms reduced to each parameter's shape and added in autograd's order), for
parameters broadcast over neurons and for one value per neuron."""
import pytest
import torch

from spikefuse.functional.cuba import (CubaParams, cuba_lif_integration, cuba_lif_multistep,
                                       cuba_refractory_lif_integration)

pytest.importorskip("numba")

from spikefuse.kernels.cpu._nb_cuba import TILE  # noqa: E402

T, B, N = 9, 3, (2 * TILE + 17 + 2) // 3   # M = 3 N: three tiles of TILE, the last partial


def _params(tensor):
    g = torch.Generator().manual_seed(21)
    if tensor == "per-neuron":      # one value per neuron (B, N): summed over time in the kernel
        return dict(leak=torch.randn(B, N, generator=g) * 0.05, reset=torch.randn(B, N, generator=g) * 0.05,
                    threshold=torch.rand(B, N, generator=g) * 0.2 + 0.2,
                    tau_syn=torch.rand(B, N, generator=g) * 3e-6 + 3e-6, tau_mem=torch.rand(B, N, generator=g) * 3e-6 + 3e-6,
                    refractory_time=2e-6, alpha=50.0)
    if tensor == "one-element":     # learnable scalars: the kernels' scalar-constant variant (uni)
        return dict(leak=torch.tensor(0.02), reset=torch.tensor(-0.03), threshold=torch.tensor(0.3),
                    tau_syn=torch.tensor(4e-6), tau_mem=torch.tensor(3e-6), refractory_time=torch.tensor(2e-6),
                    alpha=torch.tensor(50.0))
    if not tensor:
        return dict(leak=0.02, reset=-0.03, threshold=0.3, tau_syn=4e-6, tau_mem=3e-6, refractory_time=2e-6,
                    alpha=50.0)
    return dict(leak=torch.randn(N, generator=g) * 0.05, reset=torch.tensor(-0.05),
                threshold=torch.rand(N, generator=g) * 0.2 + 0.2, tau_syn=torch.rand(N, generator=g) * 3e-6 + 3e-6,
                tau_mem=torch.tensor(4e-6), refractory_time=torch.full((N,), 2.5e-6),
                alpha=torch.rand(N, generator=g) * 40 + 10)


def _run(backend, x, d, refractory):
    x = x.detach().clone().requires_grad_()
    d = {k: (v.detach().clone().requires_grad_() if isinstance(v, torch.Tensor) and k != "refractory_time"
             and k != "alpha" else v) for k, v in d.items()}
    f = cuba_refractory_lif_integration if refractory else cuba_lif_integration
    z, v, i, _ = f(x, CubaParams(**d), dt=1e-6, backend=backend)
    g = torch.Generator().manual_seed(2)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in (z, v, i))
    leaves = [x] + [d[k] for k in ("leak", "reset", "threshold", "tau_syn", "tau_mem") if isinstance(d[k], torch.Tensor)]
    return [z, v, i], torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("tensor", [False, True, "per-neuron", "one-element"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bit_exact_against_reference(refractory, tensor, threads):
    x = torch.rand(T, B, N, generator=torch.Generator().manual_seed(5)) * 0.6
    d = _params(tensor)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        outs_c, grads_c = _run("cpu", x, d, refractory)
    finally:
        torch.set_num_threads(old)
    outs_r, grads_r = _run("reference", x, d, refractory)
    for a, b in zip(outs_c, outs_r):
        assert torch.equal(a, b)
    assert len(grads_c) == len(grads_r) == (6 if tensor else 1)
    for n, (a, b) in enumerate(zip(grads_c, grads_r)):
        assert a.shape == b.shape and torch.equal(a, b), f"gradient {n}: max diff {(a - b).abs().max().item()}"
    assert 0 < outs_r[0].sum() < outs_r[0].numel()


def test_refractory_variant_has_its_own_spec():
    from spikefuse.kernels import scan
    from spikefuse.kernels.cpu import cuba as C

    plain, refr = scan.find("cpu", "cuba"), scan.find("cpu", "cuba_refractory")
    assert plain is C.CUBA_SCAN.spec and refr is C.CUBA_REFRACTORY_SCAN.spec
    assert (plain.saved_bytes, plain.moved_bytes, refr.saved_bytes, refr.moved_bytes) == (0, 16, 1, 17)
    assert "refractory_mask" in refr.saved and "refractory_mask" not in plain.saved


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rtime", [2e-6, 2.5e-6, "per-neuron"])
def test_refractory_final_state_equals_reference(threads, rtime):
    """The final state (z, v, i, ref) of the refractory kernel: the refractory counter from each
    neuron's last spike (found by ``_nb_cuba.last_spike`` from the last step back), equal to the
    reference's, for neurons that never spike, spike at the last step, or long before it."""
    g = torch.Generator().manual_seed(9)
    x = torch.rand(T, B, N, generator=g) * 0.6
    x[:, 0, :5] = 0.0           # silent neurons: ref stays 0
    x[-1, 1, :5] = 5.0          # a spike at the last step
    rt = torch.rand(B, N, generator=g) * 4e-6 if rtime == "per-neuron" else rtime
    p = CubaParams(leak=0.02, reset=-0.03, threshold=0.3, tau_syn=4e-6, tau_mem=3e-6, refractory_time=rt, alpha=50.0)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _, st_c = cuba_lif_multistep(x, p, backend="cpu", dt=1e-6, refractory=True)
    finally:
        torch.set_num_threads(old)
    _, st_r = cuba_lif_multistep(x, p, backend="reference", dt=1e-6, refractory=True)
    assert len(st_c) == len(st_r) == 4
    for a, b in zip(st_c, st_r):
        assert torch.equal(a, b)
    assert (st_r[3] > 0).any() and (st_r[3] == 0).any()


def test_last_spike_kernel_against_the_formula():
    from spikefuse.kernels.cpu import cuba as C

    g = torch.Generator().manual_seed(4)
    for T_, M in ((1, 7), (6, 1000), (40, 3 * 513)):
        z = (torch.rand(T_, M, generator=g) < 0.05).float()
        z[:, :3] = 0.0
        idx = torch.arange(T_, dtype=torch.float32).view(T_, 1)
        want = (z * (idx + 1)).amax(0) - 1
        assert torch.equal(C._last_spike(z, (M,)), want)
