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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_finite_scan_rejects_every_position(dtype):
    """The one-pass scan (aminmax) finds a NaN/+inf/-inf wherever it sits: in the vectorised
    body and in the tail of a reduction, in a strided view, and next to huge finite values
    (which must not overflow into a false alarm)."""
    n = 67
    big = torch.finfo(dtype).max
    assert check_tensor("x", torch.full((n,), big, dtype=dtype)) is not None
    assert check_tensor("x", torch.tensor([big, -big], dtype=dtype)) is not None
    for bad in (float("nan"), float("inf"), -float("inf")):
        for pos in range(n):
            x = torch.zeros(n, dtype=dtype)
            x[pos] = bad
            with pytest.raises(ValueError, match="contains NaN or inf"):
                check_tensor("x", x)
        y = torch.zeros(8, 9, dtype=dtype)
        y[5, 3] = bad
        with pytest.raises(ValueError, match="contains NaN or inf"):
            check_tensor("x", y.t())  # non-contiguous


def test_finite_scan_once_per_lif_module_call(monkeypatch):
    """The LIF module's call scans its input once (the functional layer does it), not twice."""
    import spikefuse._validate as V
    from spikefuse.neuron import LIF

    calls = []
    real = V.all_finite

    def spy(x):
        calls.append((tuple(x.shape), x.data_ptr()))
        return real(x)

    monkeypatch.setattr(V, "all_finite", spy)
    x = torch.rand(5, 2, 3)
    LIF(backend="reference")(x)
    assert calls.count(((5, 2, 3), x.data_ptr())) == 1
    calls.clear()
    LIF(step_mode="s", backend="reference")(x[0])
    assert calls.count(((2, 3), x.data_ptr())) == 1  # the input (the state is scanned on its own)
