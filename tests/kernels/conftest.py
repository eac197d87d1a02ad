"""Fixtures shared by the CPU kernel tests (tests/kernels/test_kernels_*_cpu.py)."""
import pytest
import torch

from spikefuse.kernels.cpu import jit


@pytest.fixture
def no_numba(monkeypatch):
    """The numba kernels unavailable (``SPIKEFUSE_NO_NUMBA=1``), the loaded modules forgotten
    before and after (so the fallback notice is raised again)."""
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    yield
    monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
    jit.reset_for_tests()


@pytest.fixture
def two_threads():
    """``torch.set_num_threads(2)`` for the test (:func:`jit.run` then splits the neurons in two
    ranges)."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)
