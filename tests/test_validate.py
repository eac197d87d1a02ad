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
    """The LIF module's multi-step call reads its clean input for NaN/inf zero times (the final
    state is checked instead: check_finite_after), a non-finite one once; a single step scans
    its input once (the functional layer does it), not twice."""
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
    assert calls.count(((5, 2, 3), x.data_ptr())) == 0
    assert [c for c in calls if c[0] == (2, 3)]  # the final state instead
    calls.clear()
    x[2, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="x_seq: contains NaN or inf"):
        LIF(backend="reference")(x)
    assert calls.count(((5, 2, 3), x.data_ptr())) == 1
    x[2, 1, 1] = 0.5
    calls.clear()
    LIF(step_mode="s", backend="reference")(x[0])
    assert calls.count(((2, 3), x.data_ptr())) == 1  # the input (the state is scanned on its own)


# ------------------------------------------------------------------ shared helpers added for the fuzz findings
def test_check_size_and_scalar():
    from spikefuse._validate import check_scalar, check_size, check_sizes

    assert check_size("n", 3) == 3
    with pytest.raises(TypeError, match="n: expected an int, got float 2.5"):
        check_size("n", 2.5)
    with pytest.raises(TypeError, match="n: expected an int"):
        check_size("n", True)
    with pytest.raises(ValueError, match="n: must be > 0, got 0"):
        check_size("n", 0)
    assert check_sizes("k", (2, 3)) == (2, 3)
    with pytest.raises(ValueError, match="k: expected an int or 2 ints"):
        check_sizes("k", (2, 3, 4))
    assert check_scalar("tau", torch.tensor([2.0]), gt=1) == 2.0
    with pytest.raises(ValueError, match="tau: expected a number or a one-element tensor"):
        check_scalar("tau", torch.ones(3))


def test_meta_tensors_are_refused_before_values_are_read():
    meta = torch.empty(2, 3, device="meta")
    with pytest.raises(ValueError, match="x: .*'meta' tensor"):
        check_tensor("x", meta)
    with pytest.raises(ValueError, match="tau: .*'meta' tensor"):
        check_number("tau", torch.empty(1, device="meta"))
    with spikefuse.finite_checks(False):  # no values read: shape-only tensors pass
        assert check_tensor("x", meta) is meta


def test_records_check_their_fields_when_built_outside_the_library():
    """Params/State/Traces records refuse NaN, strings and truthy flags where they are built,
    naming the field as the step functions do; ``_make`` (the library's and pytree's way)
    builds without checks, and a valid record is an ordinary NamedTuple."""
    from spikefuse.functional import loihi, sigma_delta
    from spikefuse.functional.lif import LIFParams, LIFState

    with pytest.raises(ValueError, match=r"params\.tau: must be finite"):
        LIFParams(tau=float("nan"))
    with pytest.raises(TypeError, match=r"params\.decay_input"):
        LIFParams(decay_input="no")
    with pytest.raises(ValueError, match=r"state\.v: contains NaN"):
        LIFState(torch.full((2,), float("nan")))
    with pytest.raises(TypeError, match=r"params\.graded_spike"):
        loihi.CubaParams(1.0, 1024.0, 512.0, graded_spike="no")
    with pytest.raises(TypeError, match=r"params\.scale"):
        loihi.CubaParams(1.0, 1024.0, 512.0, scale=2.5)
    with pytest.raises(TypeError, match=r"params\.s_scale"):
        sigma_delta.SigmaDeltaParams(s_scale=4096.5)
    bad = LIFState._make((torch.full((2,), float("nan")),))  # unchecked: the step refuses it
    from spikefuse.functional.lif import lif_step

    with pytest.raises(ValueError, match=r"state\.v"):
        lif_step(torch.ones(2), bad)
    p = LIFParams(tau=3.0)
    assert isinstance(p, tuple) and tuple(p) == tuple(LIFParams()._replace(tau=3.0))
    with spikefuse.finite_checks(False):  # tensor values are read only under the finite checks
        LIFState(torch.full((2,), float("nan")))


def test_caller_is_outside():
    from spikefuse._validate import caller_is_outside

    def public():
        return caller_is_outside()

    assert public() is True  # called from this test module
    g = {"__name__": "spikefuse.functional.fake", "public": public}
    assert eval("public()", g) is False  # noqa: S307 - a frame whose module is inside the library


def test_loihi_li_step_and_eventprop_step_validate():
    """The two step functions that validated nothing (issue 12): dt=-1 gave a membrane of
    -1.9e10, s_scale=0 NaN."""
    from spikefuse.functional.cuba import CubaParams, CubaState
    from spikefuse.functional.eventprop import eventprop_lif_step
    from spikefuse.functional.loihi import li_step

    x, y = torch.tensor([0.25]), torch.tensor([0.5])
    with pytest.raises(ValueError, match="s_scale"):
        li_step(x, y, torch.tensor(1024.0), s_scale=0)
    with pytest.raises(TypeError, match="s_scale"):
        li_step(x, y, torch.tensor(1024.0), s_scale=4096.5)
    with pytest.raises(ValueError, match="decay"):
        li_step(x, y, torch.tensor(5000.0))
    with pytest.raises(ValueError, match="y_prev"):
        li_step(x, torch.tensor([float("nan")]), torch.tensor(1024.0))
    with pytest.raises(ValueError, match="decay_grad"):
        li_step(x, y, torch.tensor(1024.0), decay_grad="bogus")
    assert li_step(x, y, torch.tensor(1024.0)).item() * 4096 == 2560.0
    s = CubaState(torch.zeros(1), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="dt"):
        eventprop_lif_step(torch.tensor([1.0]), s, CubaParams(tau_mem=2e-6), dt=-1.0)
    with pytest.raises(ValueError, match="x_prev"):
        eventprop_lif_step(torch.tensor([float("nan")]), s, CubaParams(tau_mem=2e-6))
    with pytest.raises(TypeError, match="state"):
        eventprop_lif_step(torch.tensor([1.0]), (torch.zeros(1),), CubaParams(tau_mem=2e-6))
    assert eventprop_lif_step(torch.tensor([1.0]), s, CubaParams(tau_mem=2e-6))[1].v.item() == 0.5


def test_loihi_huge_threshold_is_refused_not_overflowed():
    from spikefuse.functional import loihi

    p = loihi.CubaParams(threshold=1e30, current_decay=1024.0, voltage_decay=512.0)
    with pytest.raises(ValueError, match=r"params\.threshold"):
        loihi.cuba_multistep(torch.rand(3, 1, 2), p, backend="reference")
    with pytest.raises(ValueError, match="threshold"):
        loihi.leaky_integrator(torch.rand(3, 1), 1024.0, threshold=1e30)


def test_euler_params_structure_is_checked():
    """A spiking NIR Euler node without v_reset used to fail inside the step with
    "unsupported operand type(s) for -: 'Tensor' and 'NoneType'"."""
    from spikefuse.functional import euler

    p = euler.CubaEulerParams(dt=1.0, tau_syn=torch.tensor(2.0), tau_mem=torch.tensor(2.0), r=torch.tensor(1.0),
                              v_leak=torch.tensor(0.0), w_in=torch.tensor(1.0), v_threshold=torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"params\.v_reset"):
        euler.cuba_euler_multistep(torch.rand(3, 1, 2), p)
    q = euler.EulerParams(dt=1.0, tau=torch.tensor(2.0), r=torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"params\.v_leak"):
        euler.euler_multistep(torch.rand(3, 1, 2), q)
    with pytest.raises(ValueError, match=r"params\.dt"):
        euler.euler_step(torch.rand(1, 2), euler.EulerState(torch.zeros(1, 2)), q._replace(dt=-1.0))
    with pytest.raises(ValueError, match="state.v"):
        euler.euler_step(torch.rand(1, 2), euler.EulerState(torch.zeros(1, 3)), q._replace(v_leak=torch.tensor(0.0)))
