"""kernels/cpu/_nb_vml.py: ``vexp`` in a numba kernel is torch.exp bit for bit (MKL VML's vmsExp
in an MKL build of torch), on random and edge values, at several lengths and offsets; without
VML (``SPIKEFUSE_NO_VML=1``) it says why and computes libm's expf."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from spikefuse.kernels.cpu import _nb_vml  # noqa: E402

EDGE = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, -104.0, -103.97, -103.9, -87.33, -88.7, -100.0,
                 88.7, 88.72, 88.7228, 88.73, 89.0, 1e-45, -1e-45, 1e-38, -1.2e-38, 3e-39, -3e-39, 1.0, -1.0, 0.5,
                 -0.5, 1e-8, -1e-8, 20.0, -20.0, np.finfo(np.float32).max, -np.finfo(np.float32).max], np.float32)


@njit(cache=False)
def _row(n, src, dst):
    _nb_vml.vexp(n, src, dst)


@njit(cache=False)
def _rows(x, out, off, n):
    """vexp of ``x[off + k*n : off + (k+1)*n]`` rows (slices: the kernels' tile views)."""
    for k in range((x.shape[0] - off) // n):
        _nb_vml.vexp(n, x[off + k * n:off + (k + 1) * n], out[off + k * n:off + (k + 1) * n])


def _bits(a):
    return torch.from_numpy(np.ascontiguousarray(a)).view(torch.int32)


def _values(n, seed):
    g = torch.Generator().manual_seed(seed)
    wide = torch.rand(n, generator=g) * 200 - 110           # denormal, 0 and inf results too
    near = -torch.rand(n, generator=g) * 30                  # the surrogates' arguments: -|d| / w
    return torch.cat([wide, near, torch.from_numpy(EDGE)]).numpy()


@pytest.mark.skipif(not _nb_vml.AVAILABLE, reason=f"no VML: {_nb_vml.REASON}")
def test_vexp_is_torch_exp_bit_for_bit():
    x = _values(1 << 17, 0)
    out = np.full_like(x, 7.0)
    _row(x.size, x, out)
    assert torch.equal(_bits(out), _bits(torch.exp(torch.from_numpy(x)).numpy()))
    assert np.isnan(out[-EDGE.size + 4]) and out[-EDGE.size + 2] == np.inf and out[-EDGE.size + 3] == 0
    with np.errstate(over="ignore"):
        libm = np.exp(x)
    assert (libm.view(np.int32) != out.view(np.int32)).sum() > 100, "libm agrees: a weak check"


@pytest.mark.skipif(not _nb_vml.AVAILABLE, reason=f"no VML: {_nb_vml.REASON}")
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 2047, 2048, 2049])
def test_vexp_lengths_and_offsets(n):
    x = _values(4 * n + 8, n)[: 4 * n + 8]
    ref = torch.exp(torch.from_numpy(x)).numpy()
    for off in (0, 1, 3, 5):
        out = np.full_like(x, 7.0)
        _rows(x, out, off, n)
        k = (x.size - off) // n
        assert torch.equal(_bits(out[off:off + k * n]), _bits(ref[off:off + k * n])), off
        assert (out[:off] == 7.0).all() and (out[off + k * n:] == 7.0).all(), "wrote outside the rows"
        inplace = x.copy()                 # src == dst, as the sinabs backward calls it
        _rows(inplace, inplace, off, n)
        assert torch.equal(_bits(inplace[off:off + k * n]), _bits(ref[off:off + k * n])), off


@pytest.mark.skipif(not _nb_vml.AVAILABLE, reason=f"no VML: {_nb_vml.REASON}")
def test_vexp_matches_torch_exp_of_non_contiguous_and_multithreaded_tensors():
    """The reference's exp sees contiguous step tensors; torch.exp of a strided tensor (buffered)
    or split over threads gives the same bits, so vexp's one call per row reproduces them all."""
    x = _values(1 << 15, 1)[: 1 << 16]
    out = np.empty_like(x)
    _row(x.size, x, out)
    t = torch.from_numpy(x).reshape(256, 256).t()
    assert torch.equal(_bits(torch.exp(t).t().contiguous().reshape(-1).numpy()), _bits(out))
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.equal(_bits(torch.exp(torch.from_numpy(x)).numpy()), _bits(out))
    finally:
        torch.set_num_threads(old)


def test_without_vml_it_says_why_and_computes_libm_expf():
    code = ("import numpy as np; from numba import njit; from spikefuse.kernels.cpu import _nb_vml as v\n"
            "f = njit(lambda n, a, b: v.vexp(n, a, b))\n"
            "x = (np.arange(-2000, 2000, dtype=np.float32) * np.float32(0.0517)); o = np.empty_like(x); f(x.size, x, o)\n"
            "ref = njit(lambda a: np.exp(a))(x)\n"
            "print(v.AVAILABLE, v.REASON, (o.view(np.int32) == ref.view(np.int32)).all())\n")
    env = {**os.environ, "SPIKEFUSE_NO_VML": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "SPIKEFUSE_NO_VML", "is", "set", "True"]
