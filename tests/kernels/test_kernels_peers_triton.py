"""Triton fused scans of the peer families (kernels/triton/peers.py, through the generic
template) in the interpreter against the reference loops: the cases of peers_cases.py."""
import pytest

pytest.importorskip("spikefuse.kernels.triton.peers", reason="needs triton>=3.4")

from peers_cases import *  # noqa: E402,F401,F403  (the shared tests)


@pytest.fixture
def backend():
    return "triton"
