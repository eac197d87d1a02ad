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
