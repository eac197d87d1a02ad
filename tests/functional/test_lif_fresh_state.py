"""The resting state of functional/lif.py (issue 15 item 3): ``initial_state`` fills
``0 + v_reset`` in one op with the numbers of the former ``zeros + v_reset``, and a state it made
that nobody changed skips the NaN/inf scan in ``lif_multistep`` (it cannot fail); an in-place
change (the tensor's version counter) or any other tensor keeps the scan."""
from __future__ import annotations

import pytest
import torch

from spikefuse import _validate
from spikefuse.functional.lif import LIFParams, initial_state, lif_multistep


@pytest.mark.parametrize("v_reset", [0.0, -0.0, -0.5, 1.0 / 3.0, 0, None, 1e-40, 3.4e38])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_initial_state_equals_zeros_plus_v_reset(v_reset, dtype):
    v = initial_state((2, 3), LIFParams(v_reset=v_reset), dtype=dtype).v
    ref = torch.zeros((2, 3), dtype=dtype)
    if v_reset is not None:
        ref = ref + v_reset
    assert v.dtype == dtype and torch.equal(v, ref)
    assert torch.equal(torch.signbit(v), torch.signbit(ref))  # -0.0 -> +0.0 as the sum gives


def test_tensor_v_reset_keeps_the_sum():
    vr = torch.tensor([-0.0, 0.25, -1.5])
    v = initial_state((2, 3), LIFParams(v_reset=vr)).v
    assert torch.equal(v, torch.zeros(2, 3) + vr) and not torch.signbit(v[0, 0])


def _scans(monkeypatch):
    calls = []
    real = _validate.all_finite
    monkeypatch.setattr(_validate, "all_finite", lambda t: calls.append(tuple(t.shape)) or real(t))
    return calls


def test_a_fresh_state_skips_its_scan_and_others_keep_it(monkeypatch):
    x = torch.rand(4, 2, 3)
    p = LIFParams()
    st = initial_state((2, 3), p)
    other = type(st)(st.v.clone())  # (a record built here scans its fields once, now)
    calls = _scans(monkeypatch)
    lif_multistep(x, p, st, backend="reference")
    assert calls == [(2, 3)]  # x_seq through the final state only (check_finite_after)
    calls.clear()
    lif_multistep(x, p, other, backend="reference")
    assert calls == [(2, 3), (2, 3)]  # the given state, then the final state


def test_a_fresh_state_changed_in_place_is_scanned_and_refused():
    p = LIFParams()
    st = initial_state((2, 3), p)
    st.v[0, 0] = float("nan")
    with pytest.raises(ValueError, match="state.v: contains NaN or inf"):
        lif_multistep(torch.rand(4, 2, 3), p, st)
