"""Fused hxtorch CUBA LIF backends (Triton in the interpreter, fused CPU) against the reference
loop of spikefuse.functional.cuba: spikes, membrane, current and all gradients (input, leak,
reset, threshold, tau_syn, tau_mem), plain and refractory, scalar and per-neuron parameters,
fp32 and fp16/bf16 I/O."""
import pytest
import torch

from spikefuse import kernels
from spikefuse.functional.cuba import (
    CubaParams, cuba_lif_integration, cuba_lif_multistep, cuba_refractory_lif_integration)
from equivalence import check_backend

pytest.importorskip("spikefuse.kernels.triton")

BACKENDS = ["triton", "cpu"]
T, B, N = 7, 3, 37


def _params(tensor: bool, grad: bool):
    g = torch.Generator().manual_seed(11)
    if not tensor:
        return dict(leak=0.02, reset=-0.03, threshold=0.3, tau_syn=4e-6, tau_mem=3e-6,
                    refractory_time=2e-6, alpha=50.0)
    d = dict(leak=torch.randn(N, generator=g) * 0.05, reset=torch.tensor(-0.05),
             threshold=torch.rand(N, generator=g) * 0.2 + 0.2,
             tau_syn=torch.rand(N, generator=g) * 3e-6 + 3e-6, tau_mem=torch.tensor(4e-6),
             refractory_time=torch.full((N,), 2.5e-6), alpha=torch.rand(N, generator=g) * 40 + 10)
    if grad:
        for k in ("leak", "reset", "threshold", "tau_syn", "tau_mem"):
            d[k] = d[k].requires_grad_()
    return d


def _case(x, d, refractory):
    """(run, leaves) for tests/equivalence.check_backend: x and the parameters that require
    grad are leaves; the outputs are spikes, membrane and current (madc must be None)."""
    leaves = {"x": x}
    leaves.update({k: v for k, v in d.items() if isinstance(v, torch.Tensor) and v.requires_grad})
    consts = {k: v for k, v in d.items() if k not in leaves}

    def run(backend, lv):
        f = cuba_refractory_lif_integration if refractory else cuba_lif_integration
        p = CubaParams(**{k: lv[k] if k in lv else consts[k] for k in d})
        z, v, i, madc = f(lv["x"], p, dt=1e-6, backend=backend)
        assert madc is None
        return [z, v, i]

    return run, leaves


def _grad_tol(dtype):
    def tol(k, gr):
        if dtype != torch.float32 and k == "x":
            return dict(rtol=2e-2, atol=2e-2)
        # time constants: sums of large terms of both signs, compared relative to their scale
        return dict(rtol=1e-5, atol=1e-5 * max(1.0, gr.abs().max().item()))
    return tol


def _check(backend, refractory, tensor, grad=True, dtype=torch.float32):
    g = torch.Generator().manual_seed(21)
    x = (torch.randn(T, B, N, generator=g) * 0.6 + 0.3).to(dtype)
    d = _params(tensor, grad)
    run, leaves = _case(x, d, refractory)
    # spikes, membrane and current bit-exact; every gradient compared in fp32
    outs_r, _ = check_backend(run, leaves, backend, exact=3, dtype=dtype, grad_tol=_grad_tol(dtype),
                              upcast_low_precision=tuple(leaves), seed=3)
    assert outs_r[0].dtype == dtype
    assert 0 < outs_r[0].sum() < outs_r[0].numel()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("tensor", [False, True], ids=["scalar", "per_neuron_grad"])
def test_matches_reference_fp32(backend, refractory, tensor):
    _check(backend, refractory, tensor)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_io(backend, dtype):
    _check(backend, dtype == torch.bfloat16, True, grad=False, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spec_h1_h2_vectors(backend):
    """SPEC 17 H1 (plain) and H2 (refractory 2 us)."""
    x = torch.zeros(6, 1, 1)
    x[0], x[3] = 1.0, 0.8
    x.requires_grad_()
    p = CubaParams(leak=0.0, reset=0.0, threshold=0.3, tau_syn=2e-6, tau_mem=2e-6, alpha=50.0)
    z, v, i, _ = cuba_lif_integration(x, p, dt=1e-6, backend=backend)
    assert z.flatten().tolist() == [0, 1, 0, 0, 1, 0]
    torch.testing.assert_close(v.flatten(), torch.tensor([0, 0, 0.25, 0.25, 0, 0.23125]))
    torch.testing.assert_close(i.flatten(), torch.tensor([1, 0.5, 0.25, 0.925, 0.4625, 0.23125]))
    (gx,) = torch.autograd.grad(z[1].sum(), [x])
    torch.testing.assert_close(gx[0].item(), 0.5 / (50 * 0.2 + 1) ** 2, rtol=1e-6, atol=0)
    assert gx[1:].abs().sum() == 0
    p2 = p._replace(refractory_time=2e-6)
    z, v, i, _ = cuba_refractory_lif_integration(x.detach(), p2, dt=1e-6, backend=backend)
    assert z.flatten().tolist() == [0, 1, 0, 0, 1, 0]
    assert v.flatten().tolist() == [0.0] * 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_multistep_final_state_and_no_grad(backend):
    x = torch.rand(T, B, N) * 0.5
    p = CubaParams(threshold=0.3, tau_syn=3e-6, tau_mem=3e-6, refractory_time=3e-6)
    with torch.no_grad():
        s, st, tr = cuba_lif_multistep(x, p, backend=backend, return_traces=True, refractory=True)
        s_r, st_r, tr_r = cuba_lif_multistep(x, p, backend="reference", return_traces=True, refractory=True)
    assert torch.equal(s, s_r)
    for a, b in zip(st, st_r):
        assert torch.equal(a, b)
    assert torch.equal(tr.membrane, tr_r.membrane) and torch.equal(tr.current, tr_r.current)


def test_reasons_and_fallback(monkeypatch):
    x = torch.rand(4, 2, 5)
    p = CubaParams()
    for be in BACKENDS:
        with pytest.raises(ValueError, match="float64"):
            kernels.resolve("cuba", be, x.double(), params=p, refractory=False, dt=1e-6)
    assert kernels.resolve("cuba", "auto", x.double(), params=p, refractory=False, dt=1e-6) is None
    from spikefuse.kernels.cpu import cuba as ccuba
    assert kernels.resolve("cuba", "auto", x, params=p, refractory=False, dt=1e-6) is ccuba.cuba_cpu
    from spikefuse.kernels.triton import common as tcommon
    monkeypatch.setattr(tcommon, "INTERPRET", False)
    with pytest.raises(ValueError, match="needs CUDA tensors or TRITON_INTERPRET=1"):
        kernels.resolve("cuba", "triton", x, params=p, refractory=False, dt=1e-6)


def test_supports_reasons_direct():
    """The reasons the fused backends give for cases they refuse (the functional layer
    validates first, so these are reached only through kernels.resolve / supports)."""
    from spikefuse.kernels.cpu import cuba as ccuba
    from spikefuse.kernels.triton import cuba as tcuba

    x = torch.rand(4, 2, 5)
    p = CubaParams()
    assert ccuba.cuba_cpu_supports(x, params=p) is None
    assert tcuba.cuba_triton_supports(x, params=p) is None
    assert "no CubaParams" in ccuba.cuba_cpu_supports(x, params=None)
    assert "method" in ccuba.cuba_cpu_supports(x, params=p._replace(method="other"))
    assert "does not broadcast" in ccuba.cuba_cpu_supports(x, params=p._replace(threshold=torch.ones(3)))
    assert "refractory_time" in ccuba.cuba_cpu_supports(
        x, params=p._replace(refractory_time=torch.ones(3)), refractory=True)
    assert ccuba.cuba_cpu_supports(x, params=p._replace(refractory_time=torch.ones(3)), refractory=False) is None
    assert "torch.int8 is not supported" in ccuba.cuba_cpu_supports(x.to(torch.int8), params=p)
    assert "expected float16/bfloat16/float32" in ccuba.cuba_cpu_supports(x.double(), params=p)
    assert "must be (T, B, *features)" in ccuba.cuba_cpu_supports(torch.rand(4), params=p)
    assert "empty" in ccuba.cuba_cpu_supports(torch.rand(0, 2, 5), params=p)
