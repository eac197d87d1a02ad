"""The NaN/inf scan of the fixed-point CPU kernels (Loihi CUBA / ALIF, RF / RF-Iz / AdRF / AdRF-Iz):
their float64 pass flags every neuron tile that meets a NaN/inf, so the functional layer skips its
full read of the input (``checks_finite`` kernels, functional/_dispatch.call) and only flagged
tiles are read again. A NaN/inf input still raises the reference path's error, wherever it sits;
finite inputs whose states leave the float64 bounds (the int64 rerun) raise nothing; with the
finite checks off nothing is read."""
from __future__ import annotations

import pytest
import torch

from spikefuse import _validate
from spikefuse.functional import loihi as L
from spikefuse.functional import resonator as R

pytest.importorskip("numba")

from spikefuse.kernels.cpu import _nb_loihi  # noqa: E402

TILE = _nb_loihi.TILE
T, B, N = 6, 2, TILE + 37          # M = 2 N: several tiles, the last partial


def _loihi(model):
    if model == "cuba":
        p = L.CubaParams(threshold=1.0, current_decay=2048.0, voltage_decay=1024.0)
        return lambda x, backend: L.cuba_multistep(x, p, backend=backend)
    p = L.AlifParams(1.0, 0.5, 4096.0, 2048.0, 1024.0, 2048.0)
    return lambda x, backend: L.alif_multistep(x, p, backend=backend)


def _res(model):
    fn = {"rf": R.rf_multistep, "rf_iz": R.rf_iz_multistep, "adrf": R.adrf_multistep,
          "adrf_iz": R.adrf_iz_multistep}[model]
    p = (R.AdRFParams if model.startswith("adrf") else R.RFParams)(
        sin_decay=1200.0, cos_decay=3800.0, threshold=0.5,
        **(dict(threshold_decay=2048.0, refractory_decay=2048.0, threshold_step=0.25) if model.startswith("adrf") else {}))
    return lambda x, backend: fn((x, x * 0.5), p, backend=backend)


MODELS = [("cuba", _loihi), ("alif", _loihi), ("rf", _res), ("rf_iz", _res), ("adrf", _res), ("adrf_iz", _res)]


def _x(seed=0):
    return torch.rand(T, B, N, generator=torch.Generator().manual_seed(seed)) * 0.6


@pytest.mark.parametrize("model,make", MODELS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [(0, 0, 0), (T - 1, B - 1, N - 1), (3, 1, TILE + 5)])
def test_nonfinite_input_raises_the_reference_error(model, make, bad, where):
    run = make(model)
    x = _x()
    x[where] = bad
    with pytest.raises(ValueError) as ref:
        run(x, "reference")
    with pytest.raises(ValueError) as got:
        run(x, "cpu")
    assert str(got.value) == str(ref.value) and "NaN or inf" in str(got.value)
    assert type(got.value) is ValueError    # the functional caller's error, not the kernel's signal


@pytest.mark.parametrize("model,make", MODELS)
def test_finite_input_is_not_read_again(monkeypatch, model, make):
    run = make(model)
    x = _x(1)
    want = run(x, "reference")
    seen = []
    real = _validate.all_finite
    monkeypatch.setattr(_validate, "all_finite", lambda t: seen.append(tuple(t.shape)) or real(t))
    got = run(x, "cpu")
    assert all(s[0] != T for s in seen), seen        # no (T, ...) input scan, only states
    for a, b in zip(want, got):
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert torch.equal(u, v)


@pytest.mark.parametrize("model,make", MODELS[:2])
def test_states_beyond_the_float64_bounds_run_in_int64_and_raise_nothing(model, make):
    from spikefuse.kernels.cpu import loihi as KL

    run = make(model)
    x = _x(2)
    x[:, 0, :3] = 3e11              # u, v beyond 2**40 s: those tiles rerun in int64
    want = run(x, "reference")
    got = run(x, "cpu")
    assert KL.LAST["int64_chunks"] >= 1
    assert torch.equal(want[0], got[0])


@pytest.mark.parametrize("model,make", MODELS)
def test_finite_checks_off_read_nothing(model, make):
    run = make(model)
    x = _x(3)
    x[2, 0, 4] = float("nan")
    with _validate.finite_checks(False):
        run(x, "cpu")               # no error: the checks are off (as on the reference path)
        run(x, "reference")


# ---------------------------------------------------------------- sigma-delta (kernels/cpu/sigma_delta.py)
# its CPU kernel scans the input through the final float64 running sums (a NaN/inf of any step
# stays in the sum), the Triton kernel and the reference loop keep the functional layer's scan

from spikefuse.functional import sigma_delta as SD  # noqa: E402
from spikefuse.kernels.cpu import _nb_sigma_delta  # noqa: E402

SD_N = _nb_sigma_delta.TILE + 37      # M = 2 SD_N: more than one tile, the last one partial


def _sd(x, backend, **kw):
    p = SD.SigmaDeltaParams(threshold=0.09375, **kw)
    return SD.sigma_delta_multistep(x, p, backend=backend)


def _sd_x(seed=0, dtype=torch.float32):
    return (torch.rand(T, B, SD_N, generator=torch.Generator().manual_seed(seed)) - 0.3).to(dtype)


def test_sigma_delta_cpu_kernel_checks_finite_itself():
    from spikefuse.functional import _dispatch
    from spikefuse.kernels.cpu import sigma_delta as KSD

    assert _dispatch.checks_finite(KSD.loihi_sigma_delta_cpu)
    assert not _dispatch.checks_finite(None)        # the reference loop: the upfront scan


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [(0, 0, 0), (T - 1, B - 1, SD_N - 1), (3, 1, _nb_sigma_delta.TILE + 5), (T - 1, 0, 0)])
def test_sigma_delta_nonfinite_input_raises_the_reference_error(threads, bad, where):
    x = _sd_x()
    x[where] = bad
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with pytest.raises(ValueError) as ref:
            _sd(x, "reference")
        with pytest.raises(ValueError) as got:
            _sd(x, "cpu")
    finally:
        torch.set_num_threads(old)
    assert str(got.value) == str(ref.value) == "x_seq: contains NaN or inf values"
    assert type(got.value) is ValueError    # the functional caller's error, not the kernel's signal


@pytest.mark.parametrize("kw", [dict(), dict(activation=None, cum_error=True)])
def test_sigma_delta_opposite_infs_and_half_input_raise(kw):
    """+inf then -inf in one neuron (the running sum becomes NaN), inf in a float16 input, and a
    NaN in a neuron's only step of a one-step call: the reference's error, with either activation
    and with ``cum_error``."""
    x = _sd_x(1)
    x[1, 0, 3], x[4, 0, 3] = float("inf"), -float("inf")
    xh = _sd_x(2, torch.float16)
    xh[2, 1, SD_N - 2] = float("inf")
    x1 = _sd_x(3)[:1].clone()
    x1[0, 1, SD_N // 2] = float("nan")
    for xx in (x, xh, x1):
        with pytest.raises(ValueError) as ref:
            _sd(xx, "reference", **kw)
        with pytest.raises(ValueError) as got:
            _sd(xx, "cpu", **kw)
        assert str(got.value) == str(ref.value) and type(got.value) is ValueError


def test_sigma_delta_finite_input_is_not_read_again(monkeypatch):
    x = _sd_x(4)
    want = _sd(x, "reference")
    seen = []
    real = _validate.all_finite
    monkeypatch.setattr(_validate, "all_finite", lambda t: seen.append(tuple(t.shape)) or real(t))
    got = _sd(x, "cpu")
    assert all(s[0] != T for s in seen), seen        # no (T, ...) input scan, only states
    assert torch.equal(want[0], got[0])
    for u, v in zip(want[1], got[1]):
        assert torch.equal(u, v)
    seen.clear()
    _sd(x, "reference")
    assert any(s[0] == T for s in seen)              # the reference path keeps its upfront scan


def test_sigma_delta_large_finite_input_raises_nothing():
    """Finite inputs near float32's largest values: the float64 sums stay finite (no false
    alarm), and the outputs are the reference's."""
    x = _sd_x(5) * 5e37             # the float32 sums stay below 3.4e38 too (T = 6)
    want = _sd(x, "reference")
    got = _sd(x, "cpu")
    assert torch.equal(want[0], got[0]) and torch.equal(want[1].sigma, got[1].sigma)


def test_sigma_delta_state_at_float64_limit_raises_nothing():
    """A finite input on a sigma state at float64's largest value (its float32 sum is inf, the
    outputs inf / NaN): no error on either path (the input holds no NaN/inf), the same outputs and
    final state."""
    x = _sd_x(7).abs() + 1.0
    st = SD.initial_state((B, SD_N))
    st = st._replace(sigma=torch.full((B, SD_N), 1.7976931348623157e308, dtype=torch.float64))
    p = SD.SigmaDeltaParams(threshold=0.09375)
    want = SD.sigma_delta_multistep(x, p, st, backend="reference")
    got = SD.sigma_delta_multistep(x, p, st, backend="cpu")
    assert not torch.isfinite(got[0]).all()
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0, equal_nan=True)
    for u, v in zip(want[1], got[1]):
        torch.testing.assert_close(v, u, rtol=0, atol=0, equal_nan=True)


def test_sigma_delta_finite_checks_off_read_nothing():
    x = _sd_x(6)
    x[2, 0, 4] = float("nan")
    with _validate.finite_checks(False):
        _sd(x, "cpu")               # no error: the checks are off (as on the reference path)
        _sd(x, "reference")
