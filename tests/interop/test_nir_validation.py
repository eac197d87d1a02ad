"""Bad values at the public boundary of spikefuse.interop.nir are refused where they are given,
naming the argument (the findings of the fuzz harness, tests/fuzz, fixed here)."""
import math

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from spikefuse.interop.nir import NIRConversionError, NIRFlatten, Scale, Threshold, from_nir  # noqa: E402


@pytest.mark.parametrize("field,bad", [("weight", np.inf), ("weight", np.nan), ("bias", -np.inf)])
def test_from_nir_refuses_non_finite_node_arrays_naming_node_and_field(field, bad):
    w, b = np.eye(2, dtype=np.float32), np.zeros(2, np.float32)
    (w if field == "weight" else b)[0, ...] = bad
    g = nir.NIRGraph.from_list(nir.Affine(weight=w, bias=b))
    with pytest.raises(NIRConversionError, match=rf"graph node 'affine' \(Affine\): {field} contains NaN or inf"):
        from_nir(g, dt=1e-3)


def test_non_finite_time_constant_is_refused_before_the_module_is_built():
    g = nir.NIRGraph.from_list(nir.LIF(tau=np.array([math.inf]), r=np.ones(1), v_leak=np.zeros(1),
                                       v_threshold=np.ones(1), v_reset=np.zeros(1)))
    with pytest.raises(NIRConversionError, match="'lif'.*tau contains NaN or inf"):
        from_nir(g, dt=1e-3)


@pytest.mark.parametrize("make,arg", [(lambda v: Scale(v), "scale"), (lambda v: Threshold(v), "threshold")])
def test_numeric_strings_are_not_parameters(make, arg):
    with pytest.raises(TypeError, match=rf"{arg}: expected a number or an array, got str"):
        make("1.0")


@pytest.mark.parametrize("bad", [2.5, "1", math.nan, True])
def test_flatten_dims_are_ints(bad):
    with pytest.raises(TypeError, match="start_dim: expected an int"):
        NIRFlatten(bad, -1)
    with pytest.raises(TypeError, match="end_dim: expected an int"):
        NIRFlatten(0, bad)
    assert NIRFlatten(np.int64(1), -1).start_dim == 1
