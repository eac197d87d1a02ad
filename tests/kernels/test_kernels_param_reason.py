"""param_reason's broadcast rule (kernels/_common.py): the cached pure-Python check gives what
torch.broadcast_shapes gives, for every pair of small shapes."""
import itertools

import torch

from spikefuse.kernels._common import broadcasts_to, param_reason


def _torch_says(shape, target) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == torch.Size(target)
    except RuntimeError:
        return False


def _shapes(max_ndim=3, sizes=(0, 1, 2, 3)):
    for n in range(max_ndim + 1):
        yield from itertools.product(sizes, repeat=n)


def test_broadcasts_to_equals_torch_broadcast_shapes():
    pairs = 0
    for shape in _shapes():
        for target in _shapes():
            assert broadcasts_to(shape, target) == _torch_says(shape, target), (shape, target)
            pairs += 1
    assert pairs == 85 * 85


def test_param_reason_uses_the_rule_for_tensors():
    cpu = torch.device("cpu")
    assert param_reason("tau", torch.ones(1, 3), (2, 3), cpu) is None
    assert param_reason("tau", torch.ones(()), (2, 3), cpu) is None
    why = param_reason("tau", torch.ones(2, 1), (3,), cpu)
    assert why == "tau of shape (2, 1) does not broadcast to the state shape (3,)"
    assert "does not broadcast" in param_reason("tau", torch.ones(0), (2, 3), cpu)
