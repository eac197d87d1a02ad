"""Triton fused scans of norse's refractory LIF and AdEx LIF (kernels/triton/norse.py, through
the generic template) in the interpreter against the reference loops: the cases of norse_cases.py."""
import pytest

pytest.importorskip("spikefuse.kernels.triton.norse", reason="needs triton>=3.4")

from norse_cases import *  # noqa: E402,F401,F403  (the shared tests)


@pytest.fixture
def backend():
    return "triton"
