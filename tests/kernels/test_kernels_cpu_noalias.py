"""kernels/cpu/_nb_kernel.py: the top-level CPU kernels compile with numba's ``noalias`` flag
(array arguments marked ``noalias`` in the LLVM IR, so that LLVM vectorises lane loops over many
rows), and without it (``SPIKEFUSE_NO_NOALIAS=1``, or a numba whose internals differ) they
compile and give the same bits."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from spikefuse.kernels.cpu import _nb_kernel  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def _axpy(a, x, y, out):
    for k in range(x.shape[0]):
        out[k] = a * x[k] + y[k]


def _arg_attrs(fn):
    f = njit(**{**_nb_kernel._OPTIONS, "cache": False})(fn)
    x = np.arange(8, dtype=np.float32)
    out = np.empty_like(x)
    f(np.float32(2), x, x, out)
    assert np.array_equal(out, 3 * x)
    ir = f.inspect_llvm(f.signatures[0])
    return [line for line in ir.splitlines() if line.startswith("define") and "_axpy" in line]


def test_noalias_reaches_llvm():
    assert _nb_kernel.NOALIAS, _nb_kernel.REASON
    defs = _arg_attrs(_axpy)
    assert defs and any("noalias" in d.split("(", 1)[1].split("excinfo", 1)[-1] for d in defs), defs


SCRIPT = r"""
import torch
from spikefuse.kernels.cpu import _nb_kernel
from spikefuse.functional.norse import NorseLIFRefracParams, norse_lif_refrac_multistep
x = (torch.randn(12, 3, 300, generator=torch.Generator().manual_seed(1)) * 4 + 3).requires_grad_()
z = norse_lif_refrac_multistep(x, NorseLIFRefracParams(), backend="cpu")[0]
(g,) = torch.autograd.grad((z * torch.linspace(-1, 1, z.numel()).reshape(z.shape)).sum(), [x])
torch.save({"noalias": _nb_kernel.NOALIAS, "reason": _nb_kernel.REASON, "z": z.detach(), "g": g}, OUT)
"""


@pytest.mark.parametrize("off", ["1", "0"])
def test_with_and_without_noalias_same_bits(tmp_path, off):
    """A fresh numba cache each (so the kernels really compile each way); the refractory LIF's
    spikes and input gradient equal the reference's either way."""
    import torch

    from spikefuse.functional.norse import NorseLIFRefracParams, norse_lif_refrac_multistep

    out = tmp_path / "o.pt"
    env = dict(os.environ, SPIKEFUSE_NO_NOALIAS=off, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", f"OUT = {str(out)!r}\n" + SCRIPT], env=env, check=True, timeout=600)
    got = torch.load(out)
    assert got["noalias"] is (off == "0"), got["reason"]
    if off == "1":
        assert got["reason"] == "SPIKEFUSE_NO_NOALIAS is set"
    x = (torch.randn(12, 3, 300, generator=torch.Generator().manual_seed(1)) * 4 + 3).requires_grad_()
    z = norse_lif_refrac_multistep(x, NorseLIFRefracParams(), backend="reference")[0]
    (g,) = torch.autograd.grad((z * torch.linspace(-1, 1, z.numel()).reshape(z.shape)).sum(), [x])
    assert 0 < z.sum() < z.numel()
    assert torch.equal(got["z"], z) and torch.equal(got["g"], g)
