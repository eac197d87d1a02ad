import pytest
import torch

import spikefuse
from spikefuse._validate import check_number, check_sequence, check_tensor


def test_check_tensor_messages():
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        check_tensor("x", [1.0])
    with pytest.raises(TypeError, match="x: expected a floating tensor"):
        check_tensor("x", torch.ones(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="x: expected 3 dimensions"):
        check_tensor("x", torch.ones(2), ndim=3)
    with pytest.raises(ValueError, match="x: contains NaN or inf"):
        check_tensor("x", torch.tensor([1.0, float("inf")]))
    with pytest.raises(ValueError, match="at least one time step"):
        check_sequence("x_seq", torch.ones(0, 2))


def test_finite_checks_switch():
    bad = torch.tensor([[float("nan")]])
    with spikefuse.finite_checks(False):
        check_tensor("x", bad)  # scan disabled: no error
        with pytest.raises(TypeError, match="x: expected a floating"):
            check_tensor("x", torch.ones(1, dtype=torch.int32))  # other checks stay on
    with pytest.raises(ValueError, match="NaN"):
        check_tensor("x", bad)
    with pytest.raises(TypeError, match="enabled"):
        spikefuse.set_finite_checks("no")


def test_check_number_ranges():
    assert check_number("tau", 2.0, gt=1) == 2.0
    with pytest.raises(ValueError, match=r"tau: must be > 1, got 1.0"):
        check_number("tau", 1.0, gt=1)
    with pytest.raises(ValueError, match="tau: must be <= 1"):
        check_number("tau", torch.tensor([0.5, 2.0]), le=1)
    with pytest.raises(TypeError, match="tau: expected a number"):
        check_number("tau", True)
    with pytest.raises(ValueError, match="finite"):
        check_number("tau", float("nan"))
