"""Triton Loihi CUBA / ALIF scans (interpreter) against spikefuse.functional.loihi: bit-identical
spikes, traces and final state (int64 dynamics), gradients w.r.t. input and decays for binary /
graded spikes and both decay-gradient modes, plus SPEC 17 L1 / L2 (cases in loihi_cases.py)."""
import itertools

import pytest
import torch

from loihi_cases import B, C, check, check_lava_fixture, spec_l1_cuba_vector, spec_l2_alif_vector
from spikefuse import kernels
from spikefuse.functional import loihi as L

pytest.importorskip("spikefuse.kernels.triton")


def _check(*args, **kw):
    check("triton", *args, **kw)


COMBOS = list(itertools.product([False, True], [False, True], ["exact", "lava"]))


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
@pytest.mark.parametrize("combo", range(4))
def test_matches_reference(alif, combo):
    graded, decay_grad = COMBOS[combo][1], COMBOS[combo][2]
    tensor = combo % 2 == 0
    _check(alif, graded, decay_grad, tensor)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_large_values_beyond_float32_integers(alif):
    """States beyond 2**24 LSB: the float32 round trips of the reference must be mirrored."""
    _check(alif, False, "exact", False, scale=3000.0)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_io(alif, dtype):
    _check(alif, True, "exact", True, dtype=dtype)


def test_initial_state():
    g = torch.Generator().manual_seed(2)
    st = L.AlifState(*(torch.rand(B, C, generator=g) for _ in range(4)))
    _check(True, False, "exact", True, state=st)
    st = L.CubaState(torch.rand(B, C, generator=g), torch.rand(B, C, generator=g))
    _check(False, True, "lava", False, state=st)


def test_spec_l1_cuba_vector():
    spec_l1_cuba_vector("triton")


def test_spec_l2_alif_vector():
    spec_l2_alif_vector("triton")


def test_reasons(monkeypatch):
    x = torch.rand(4, 2, 5)
    p = L.CubaParams(1.0, 2048.0, 1024.0)
    with pytest.raises(ValueError, match="norm"):
        kernels.resolve("loihi_cuba", "triton", x, params=p, has_norm=True)
    with pytest.raises(ValueError, match="float64"):
        kernels.resolve("loihi_cuba", "triton", x.double(), params=p, has_norm=False)
    from spikefuse.kernels.triton import common as tcommon
    monkeypatch.setattr(tcommon, "INTERPRET", False)
    with pytest.raises(ValueError, match="needs CUDA tensors or TRITON_INTERPRET=1"):
        kernels.resolve("loihi_alif", "triton", x, params=p, has_norm=False)
    # auto on CPU tensors: the cpu kernel (test_kernels_cpu_loihi.py); a case it refuses -> reference loop
    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=True) is None


lava_fix = pytest.importorskip("test_fixtures_lava")


@pytest.mark.parametrize("path", lava_fix.FILES, ids=[p.stem for p in lava_fix.FILES])
def test_triton_matches_lava_fixture(path):
    """The Triton kernels on lava-dl's own outputs (tests/fixtures/lava_dl), with lava's decay
    gradient rule: bit-exact traces and spikes, grad_input and decay gradients."""
    check_lava_fixture(path, "triton")
