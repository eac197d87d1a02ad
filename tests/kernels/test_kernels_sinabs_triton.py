"""Triton fused scan of sinabs LIF / IAF (kernels/triton/sinabs.py, through the generic template)
in the interpreter against the reference loop: the cases of sinabs_cases.py."""
import pytest

pytest.importorskip("spikefuse.kernels.triton.sinabs", reason="needs triton>=3.4")

from sinabs_cases import *  # noqa: E402,F401,F403  (the shared tests)


@pytest.fixture
def backend():
    return "triton"
