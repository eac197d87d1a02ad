"""benchmarks/vml_exp.py runs (a small sample) and calls each MKL kernel correctly: its exps are
within one float32 ulp of float64's; no speed is asserted."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("vml_exp", ROOT / "benchmarks" / "vml_exp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def mod():
    threads = torch.get_num_threads()
    yield _load()
    torch.set_num_threads(threads)


def test_reports_every_runnable_kernel(mod, capsys):
    bad = mod.main(["--samples", str(1 << 16)])
    out = capsys.readouterr().out
    if not bad:
        assert "no MKL VML exp kernels" in out
        return
    for k, n in bad.items():
        assert 0 <= n <= 1 << 16
        assert re.search(rf"{k}: \d+", out) and re.search(rf"sExp_{k}: [\d.]+ ns/elem", out)


def test_each_kernel_computes_exp(mod):
    ks = [k for k in mod._kernels() if mod._supported(k)] if torch.backends.mkl.is_available() else []
    if not ks:
        pytest.skip("no MKL VML exp kernels in this torch build")
    x = np.linspace(-100, 88, 4099, dtype=np.float32)
    want = np.exp(x.astype(np.float64)).astype(np.float32)
    for k in ks:
        got = mod.kernel_exp(k, x)
        ulps = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
        assert ulps.max() <= 1, (k, int(ulps.max()))
