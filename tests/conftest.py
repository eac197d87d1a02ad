import os; os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run in the interpreter on CPU tensors
# the CPU kernels' thread split at the tests' small sizes too (jit.MIN_WORK: 0 = no minimum work per thread)
os.environ.setdefault("SPIKEFUSE_CPU_MIN_WORK", "0")
import sys
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
# peer-fixture helpers (tests/peers/test_fixtures_*.py) are imported by the kernel tests too
sys.path.insert(0, str(Path(__file__).parent / "peers"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
