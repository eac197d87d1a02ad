"""The NaN/inf check of a scan's input done after the scan (``_validate.check_finite_after``):
a non-finite value at any step of the input must leave the final state non-finite, for every
option and backend of the families that use it, so that the error is still raised; a finite
input whose state overflows raises nothing (as the check before the scan did not)."""
import itertools

import pytest
import torch

from spikefuse import finite_checks
from spikefuse.functional.lif import LIFParams, lif_multistep
from spikefuse.kernels import available

BACKENDS = ["reference"] + (["cpu"] if "cpu" in available("lif") else [])
BAD = [float("nan"), float("inf"), float("-inf")]

LIF_OPTIONS = [
    dict(tau=tau, v_reset=vr, decay_input=di, threshold=th)
    for tau, vr, di, th in itertools.product([None, 2.0], [None, 0.0, -0.5], [True, False], [">=", ">"])
    if not (tau is None and not di)
] + [dict(tau=None, reciprocal_tau=0.25, v_reset=0.0), dict(tau=None, reciprocal_tau=0.5, v_reset=None,
                                                           decay_input=False)]


def _lif_params(o):
    o = dict(o)
    return LIFParams(**o)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt", LIF_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_lif_nonfinite_input_reaches_final_state_and_raises(backend, opt):
    p = _lif_params(opt)
    g = torch.Generator().manual_seed(0)
    T, B, N = 7, 2, 24
    x = torch.rand(T, B, N, generator=g) * 2.0
    spots = [(t, b, n) for t in (0, 3, T - 1) for b, n in ((0, 0), (1, 17))]
    for (t, b, n), bad in itertools.product(spots, BAD):
        xb = x.clone()
        xb[t, b, n] = bad
        with finite_checks(False):
            _, st = lif_multistep(xb, p, backend=backend)
        assert not torch.isfinite(st.v[b, n]), (t, b, n, bad, st.v[b, n])
        with pytest.raises(ValueError, match="x_seq: contains NaN or inf"):
            lif_multistep(xb, p, backend=backend)
    s, st = lif_multistep(x, p, backend=backend)  # a clean input passes
    assert torch.isfinite(st.v).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_overflowing_state_of_a_finite_input_raises_nothing(backend):
    x = torch.full((4, 1, 3), 3e38)
    _, st = lif_multistep(x, LIFParams(tau=None, v_reset=None, v_threshold=1.0), backend=backend)
    assert torch.isinf(st.v).all()  # IF with soft reset: 3e38 + 3e38 overflows; no error


def test_lif_module_still_raises_before_touching_its_state():
    from spikefuse.neuron import LIF

    m = LIF(step_mode="m")
    m(torch.rand(3, 2, 5))
    v = m.v.clone()
    x = torch.rand(3, 2, 5)
    x[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="contains NaN or inf"):
        m(x)
    assert torch.equal(m.v, v)
