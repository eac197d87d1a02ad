import pytest
import torch

from spikefuse.fixed_point import quantize_8bit, quantize_threshold, round_ste, rstz, trunc_int


def test_rstz_rounds_toward_zero():
    a = torch.tensor([8191, -8191, 4096, -4096, 4095, -4095, 0], dtype=torch.int64)
    assert rstz(a, 12).tolist() == [1, -1, 1, -1, 0, 0, 0]
    # arithmetic >> would give -2 for -8191: rstz must not
    assert (torch.tensor([-8191]) >> 12).item() == -2


def test_trunc_int():
    assert trunc_int(torch.tensor([1.9, -1.9, 0.5, -0.5])).tolist() == [1, -1, 0, 0]
    assert trunc_int(torch.tensor([2048.0 * 4096])).dtype == torch.int64


def test_quantize_threshold_truncates():
    assert quantize_threshold(0.999) == 63 / 64
    assert quantize_threshold(0.1) == 6 / 64 == 0.09375
    assert quantize_threshold(1.25) == 1.25


def test_round_ste_half_to_even_and_straight_through():
    x = torch.tensor([2049.5, 2050.5, 0.5], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [2050.0, 2050.0, 0.0]
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0]


def test_quantize_8bit_values_range_and_grad():
    w = torch.tensor([0.01, 0.02, 5.0, -5.0, 0.5], requires_grad=True)
    q = quantize_8bit(w)
    assert q.tolist() == pytest.approx([0.0, 0.03125, 254 / 64, -4.0, 0.5])
    d = quantize_8bit(w, descale=True)
    assert d.tolist() == pytest.approx([0.0, 2.0, 254.0, -256.0, 32.0])
    assert all(int(v) % 2 == 0 for v in d.tolist())
    q.sum().backward()
    # straight-through inside the range, clamp blocks outside
    assert w.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_quantize_8bit_validation():
    with pytest.raises(TypeError, match="weight"):
        quantize_8bit([0.1])
    with pytest.raises(ValueError, match="w_scale"):
        quantize_8bit(torch.ones(2), w_scale=0)


def test_public_helpers_refuse_nan_and_wrong_types():
    """NaN/inf have no integer: trunc_int / round_ste refuse them instead of returning garbage."""
    for fn in (trunc_int, round_ste):
        with pytest.raises(ValueError, match="x: contains NaN"):
            fn(torch.tensor([1.0, float("nan")]))
        with pytest.raises(ValueError, match="x: contains NaN"):
            fn(torch.tensor([float("inf")]))
        with pytest.raises(TypeError, match="x"):
            fn([1.0, 2.0])
    with pytest.raises(TypeError, match="a: expected an integer tensor"):
        rstz(torch.tensor([1.5]))
    with pytest.raises(TypeError, match="n"):
        rstz(torch.tensor([4096]), 2.5)
    with pytest.raises(ValueError, match="theta"):
        quantize_threshold(float("nan"))
    with pytest.raises(TypeError, match="w_scale"):
        quantize_threshold(1.0, 2.5)


def test_library_loops_do_not_recheck(monkeypatch):
    """Inside the library (the Loihi loops call trunc_int / round_ste per step) the checks are
    skipped: the callers validated their inputs once."""
    import spikefuse._validate as V
    from spikefuse.functional import loihi

    calls = []
    real = V.all_finite
    monkeypatch.setattr(V, "all_finite", lambda x: calls.append(x.shape) or real(x))
    x = torch.rand(6, 2, 3)
    loihi.cuba_multistep(x, loihi.CubaParams(threshold=0.5, current_decay=1024.0, voltage_decay=512.0),
                         backend="reference")
    assert calls and all(c == x.shape for c in calls)  # the whole input; nothing per step
