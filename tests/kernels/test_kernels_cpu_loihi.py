"""Fused CPU Loihi CUBA / ALIF scans (numba, kernels/cpu/loihi.py) against
spikefuse.functional.loihi: bit-identical spikes, traces and final state (int64 dynamics),
gradients w.r.t. the input and the decays (binary / graded spikes, both decay-gradient modes),
several shapes and layouts, several threads, the SPEC 17 L1 / L2 vectors, lava-dl's fixtures, and
the fallback to the reference loop without numba (cases shared with the Triton tests:
loihi_cases.py)."""
import itertools
import warnings

import pytest
import torch

import test_fixtures_lava as lava_fix
from loihi_cases import B, C, check, check_lava_fixture, spec_l1_cuba_vector, spec_l2_alif_vector
from spikefuse import kernels
from spikefuse.functional import loihi as L
from spikefuse.kernels import scan
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

COMBOS = list(itertools.product([False, True], ["exact", "lava"]))


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
@pytest.mark.parametrize("combo", range(4))
def test_matches_reference(alif, combo):
    """Every output, state and trace bit for bit; gradients of x and of per-channel / shared
    learnable decays (even combos) close, for binary / graded spikes and both decay rules."""
    graded, decay_grad = COMBOS[combo]
    check("cpu", alif, graded, decay_grad, combo % 2 == 0)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_large_values_beyond_float32_integers(alif):
    """States beyond 2**24 LSB: the float32 round trips of the reference must be mirrored."""
    check("cpu", alif, False, "exact", False, scale=3000.0)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_exact_kernel_variant_beyond_int32(alif):
    """Inputs whose integer states pass 2**30: the kernel variant with int64 conversions (the
    fast one converts through int32) runs, and is still bit-exact; with a non-power-of-two scale
    (a division instead of a multiplication)."""
    from spikefuse.kernels.cpu import loihi as cl

    x = torch.full((3, 1, 2), 3e5)
    ints = [torch.full((2,), k, dtype=torch.int64) for k in (2048, 3072, 3072, 2048)] + \
        [torch.zeros(2, dtype=torch.int64)] * 4
    assert not cl._bounded(x, ints, 4096, 0, 0, alif) and cl._bounded(x / 1e4, ints, 4096, 0, 0, alif)
    check("cpu", alif, False, "exact", False, scale=4e5)
    check("cpu", alif, True, "lava", True, scale=2e3, scale_param=48)


def test_exp_rounds_float64_exp():
    """The vectorisable exp of the backward (SLAYER's pseudo-derivative) against float64 exp
    rounded to float32, over the arguments it gets (<= 0): the same value (it computes in
    float64 and rounds once), 0 below -104."""
    import numpy as np
    from numba import njit
    from spikefuse.kernels.cpu import _nb_loihi as nb

    @njit
    def vexp(d):
        out = np.empty_like(d)
        for k in range(d.size):
            out[k] = nb.exp_f32(d[k])
        return out

    g = torch.Generator().manual_seed(4)
    d = torch.cat([-torch.rand(200000, generator=g) * 104, -torch.rand(20000, generator=g) * 1e-3]).numpy()
    assert (vexp(d) == np.exp(d.astype(np.float64)).astype(np.float32)).all()
    assert vexp(np.array([0.0, -105.0, -np.inf], np.float32)).tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_io(dtype):
    check("cpu", True, True, "exact", True, dtype=dtype)
    check("cpu", False, False, "lava", True, dtype=dtype)


def test_initial_state():
    g = torch.Generator().manual_seed(2)
    st = L.AlifState(*(torch.rand(B, C, generator=g) for _ in range(4)))
    check("cpu", True, False, "exact", True, state=st)
    st = L.CubaState(torch.rand(B, C, generator=g), torch.rand(B, C, generator=g))
    check("cpu", False, True, "lava", False, state=st)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_shapes_and_layouts(alif):
    """T = 1 and an odd neuron count, a 4-D input (per-channel decay on dim 2), and a
    non-contiguous (transposed) input."""
    check("cpu", alif, True, "exact", False, shape=(1, 3, C))
    check("cpu", alif, False, "exact", True, shape=(4, 2, C, 3))
    check("cpu", alif, False, "lava", True, shape=(6, C, 2), prep=lambda x: x.transpose(1, 2))


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_threads(alif):
    """Several neuron ranges (2 threads over 3 tiles of 512) give the same bits as one."""
    torch.manual_seed(3)
    x = torch.randn(7, 2, 700) * 0.8 + 0.4
    p = (L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0) if alif else L.CubaParams(1.0, 2048.0, 1024.0))
    f = L.alif_multistep if alif else L.cuba_multistep
    n = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xx = x.clone().requires_grad_()
            s, st, tr = f(xx, p, backend="cpu", return_traces=True)
            (s * torch.linspace(-1, 1, 700)).sum().backward()
            outs.append([s, tr.voltage, *st, *tr, xx.grad])
    finally:
        torch.set_num_threads(n)
    assert len(jit.ranges(1400, 512, 2)) == 2
    assert all(torch.equal(a, b) for a, b in zip(*outs))
    ref = f(x, p, backend="reference", return_traces=True)
    assert torch.equal(ref[0], outs[0][0]) and torch.equal(ref[2].voltage, outs[0][1])


def test_spec_vectors():
    spec_l1_cuba_vector("cpu")
    spec_l2_alif_vector("cpu")


@pytest.mark.parametrize("path", lava_fix.FILES, ids=[p.stem for p in lava_fix.FILES])
def test_cpu_matches_lava_fixture(path):
    """lava-dl's own outputs (tests/fixtures/lava_dl): bit-exact spikes and traces, grad_input
    and lava's decay gradients; and the peers' fixture runner (neuron modules) on backend cpu."""
    check_lava_fixture(path, "cpu")
    with kernels.use_backend("cpu"):
        lava_fix.RUNNERS[lava_fix._model_of(path)](lava_fix.load_fixture(path))


def test_registered_specs_and_auto():
    x = torch.rand(4, 2, 5)
    p = L.CubaParams(1.0, 2048.0, 1024.0)
    from spikefuse.kernels.cpu import loihi as cl

    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=False) is cl.loihi_cuba_cpu
    ap = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0)
    assert kernels.resolve("loihi_alif", "auto", x, params=ap, has_norm=False) is cl.loihi_alif_cpu
    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=True) is None
    with pytest.raises(ValueError, match="norm"):
        kernels.resolve("loihi_cuba", "cpu", x, params=p, has_norm=True)
    with pytest.raises(ValueError, match="float64"):
        kernels.resolve("loihi_cuba", "cpu", x.double(), params=p, has_norm=False)
    with pytest.raises(ValueError, match="too large"):
        kernels.resolve("loihi_cuba", "cpu", x, params=p._replace(scale=2 ** 18), has_norm=False)
    for name, saved, moved in (("loihi_cuba", 4, 16), ("loihi_alif", 8, 20)):
        s = scan.find("cpu", name)
        assert s is not None and s.name == f"{name}_cpu"
        assert (s.saved_bytes, s.moved_bytes) == (saved, moved)


def test_fallback_without_numba(monkeypatch):
    """SPIKEFUSE_NO_NUMBA=1: auto runs the reference loop (one RuntimeWarning), backend cpu says
    why it cannot run; with numba back, the kernel again."""
    x = torch.rand(5, 2, 3) * 2
    p = L.CubaParams(1.0, 2048.0, 1024.0)
    ref = L.cuba_multistep(x, p, backend="reference", return_traces=True)
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
            assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=False) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per process
            got = L.cuba_multistep(x, p, backend="auto", return_traces=True)
            with pytest.raises(ValueError, match="numba is unavailable"):
                L.alif_multistep(x, L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0), backend="cpu")
        assert torch.equal(got[0], ref[0]) and torch.equal(got[2].voltage, ref[2].voltage)
    finally:
        monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
        jit.reset_for_tests()
    from spikefuse.kernels.cpu import loihi as cl
    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=False) is cl.loihi_cuba_cpu
