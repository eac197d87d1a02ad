"""The compiled (numba) CPU LIF kernels against the reference loop, bit for bit: spikes, final
state, traces, and the input / initial-state gradients for the surrogates whose formula uses no
transcendental function (ATan, SuperSpike, Triangle: the same fp32 operations in the same order;
Sigmoid and SLAYER's exp differ from torch's vectorised exp by an ulp and are covered with
tolerances in test_kernels_lif.py). Shapes: odd neuron counts, several tiles and thread ranges,
non-contiguous inputs. Also: the fallback to the torch-op loop when numba is unavailable."""
import warnings

import pytest
import torch

from lif_cpu_cases import lif_grads
from spikefuse import surrogate as sg
from spikefuse.functional.lif import LIFParams
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

EXACT_SURROGATES = [sg.ATan(2.0), sg.SuperSpike(5.0), sg.Triangle(0.8, 1.2)]


def _assert_same(params, x, v0, traces):
    a = lif_grads("cpu", x, v0, params, traces)
    b = lif_grads("reference", x, v0, params, traces)
    for n, (u, w) in enumerate(zip(a, b)):
        assert u.dtype == w.dtype and u.shape == w.shape, n
        assert torch.equal(u, w), f"output {n}: max diff {(u.float() - w.float()).abs().max().item()}"
    assert 0 < a[0].sum() < a[0].numel()


CASES = [  # (kind, hard, detach, traces, surrogate index)
    ("lif", True, False, False, 0), ("lif", False, True, True, 1), ("if", True, True, False, 2),
    ("nodecay", False, False, True, 0), ("lif", True, False, True, 2), ("if", False, False, False, 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_bit_exact_against_reference(case):
    kind, hard, detach, traces, si = case
    g = torch.Generator().manual_seed(11)
    T, B, N = 7, 3, 401          # M = 1203: three tiles of 512, the last partial
    x = torch.randn(T, B, N, generator=g) * 1.2 + 0.45
    tau = None if kind == "if" else torch.rand(N, generator=g) * 1.5 + 1.5
    vth = torch.rand(N, generator=g) * 0.5 + 0.75
    params = LIFParams(tau=tau, v_threshold=vth, v_reset=torch.tensor(-0.1) if hard else None,
                       decay_input=kind != "nodecay", detach_reset=detach, surrogate=EXACT_SURROGATES[si])
    _assert_same(params, x, torch.randn(B, N, generator=g) * 0.3, traces)


def test_bit_exact_two_threads_and_non_contiguous_input():
    """Two thread ranges (the pool path) and a transposed, non-contiguous input."""
    g = torch.Generator().manual_seed(12)
    x = (torch.randn(5, 300, 9, generator=g) * 1.2 + 0.5).transpose(1, 2)   # (5, 9, 300), strided
    assert not x.is_contiguous()
    params = LIFParams(tau=2.5, v_threshold=1.0, v_reset=0.0, surrogate=sg.ATan(2.0))
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert len(jit.ranges(x[0].numel(), 512)) == 2
        _assert_same(params, x, torch.zeros(9, 300), traces=True)
    finally:
        torch.set_num_threads(old)


def test_reciprocal_tau_bit_exact():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(6, 2, 33, generator=g) + 0.6
    params = LIFParams(tau=None, reciprocal_tau=torch.rand(33, generator=g) * 0.4 + 0.3, v_reset=0.0,
                       surrogate=sg.ATan(2.0))
    _assert_same(params, x, torch.zeros(2, 33), traces=False)


@pytest.mark.parametrize("M,threads", [(1, 2), (511, 2), (513, 2), (5000, 3), (2048, 1)])
def test_ranges_cover_contiguous_tile_aligned(M, threads):
    rs = jit.ranges(M, 512, threads)
    assert rs[0][0] == 0 and rs[-1][1] == M
    assert all(a[1] == b[0] for a, b in zip(rs, rs[1:]))
    assert all(j0 % 512 == 0 and j1 > j0 for j0, j1 in rs)
    assert len(rs) == min(threads, -(-M // 512))


def test_fallback_without_numba_warns_once_and_gives_the_same_results(monkeypatch):
    g = torch.Generator().manual_seed(14)
    x = torch.randn(6, 2, 40, generator=g) + 0.6
    params = LIFParams(tau=2.0, v_reset=0.0, surrogate=sg.ATan(2.0))
    compiled = lif_grads("cpu", x, torch.zeros(2, 40), params, True)

    def no_numba():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(jit, "_import_numba", no_numba)
    jit.reset_for_tests()
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert jit.kernels("lif") is None
            fallback = lif_grads("cpu", x, torch.zeros(2, 40), params, True)
            lif_grads("cpu", x, torch.zeros(2, 40), params, False)
        msgs = [str(m.message) for m in w if issubclass(m.category, RuntimeWarning)]
        assert len(msgs) == 1 and "numba is unavailable" in msgs[0] and "torch-op loops" in msgs[0]
    finally:
        monkeypatch.undo()
        jit.reset_for_tests()
    for a, b in zip(compiled, fallback):
        assert torch.equal(a, b)
    assert jit.kernels("lif") is not None


def test_env_switch_forces_the_fallback(monkeypatch):
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
            assert jit.kernels("lif") is None
    finally:
        monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
        jit.reset_for_tests()
