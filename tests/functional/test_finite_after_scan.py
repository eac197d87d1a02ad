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


# --------------------------------------------------------------------------- peer families
def _peer_cases():
    from spikefuse.functional import norse as N
    from spikefuse.functional import sinabs as S
    from spikefuse.functional import snntorch as SN

    cases = []
    for mech, delay in itertools.product(SN.RESET_MECHANISMS, [True, False]):
        cases.append((f"leaky-{mech}-{delay}", SN.leaky_multistep,
                      SN.LeakyParams(beta=0.9, reset_mechanism=mech, reset_delay=delay), "snntorch_leaky"))
        cases.append((f"synaptic-{mech}-{delay}", SN.synaptic_multistep,
                      SN.SynapticParams(alpha=0.8, beta=0.9, reset_mechanism=mech, reset_delay=delay),
                      "snntorch_synaptic"))
    cases.append(("leaky-beta0", SN.leaky_multistep, SN.LeakyParams(beta=0.0), "snntorch_leaky"))
    for name in ("lif", "lif_adjoint", "lif_refrac", "lif_adex"):
        f = getattr(N, f"norse_{name}_multistep")
        cases.append((f"norse-{name}", lambda x, backend, f=f: f(x, backend=backend), None, "norse_" + name))
    for fn, reset, syn, norm in itertools.product(S.SPIKE_FNS, S.RESET_FNS, [None, 0.6], [True, False]):
        p = S.SinabsParams(alpha_mem=0.9, alpha_syn=syn, spike_fn=fn, reset_fn=reset, norm_input=norm,
                           max_num_spikes_per_bin=2 if fn == "max" else None)
        cases.append((f"sinabs-{fn}-{reset}-{syn}-{norm}", S.sinabs_multistep, p, "sinabs"))
    cases.append(("sinabs-iaf", S.sinabs_multistep, S.SinabsParams(alpha_mem=1.0), "sinabs"))
    return cases


PEER_CASES = _peer_cases()


def _backends(kernel):
    from spikefuse.kernels import available as av

    out = ["reference"]
    try:
        if kernel and "cpu" in av(kernel.split("_")[0] if kernel.startswith("norse") else kernel):
            out.append("cpu")
    except Exception:
        pass
    return out


@pytest.mark.parametrize("case", PEER_CASES, ids=[c[0] for c in PEER_CASES])
def test_peer_nonfinite_input_reaches_final_state_and_raises(case):
    name, f, p, kernel = case
    run = (lambda x, be: f(x, backend=be)) if p is None else (lambda x, be: f(x, p, backend=be))
    g = torch.Generator().manual_seed(1)
    T, B, N = 6, 2, 20
    x = torch.rand(T, B, N, generator=g) * 2.0
    for backend in ("reference", "auto"):
        for (t, b, n), bad in itertools.product([(0, 0, 0), (2, 1, 7), (T - 1, 1, 19)], BAD):
            xb = x.clone()
            xb[t, b, n] = bad
            with finite_checks(False):
                st = run(xb, backend)[1]
            fields = [v for v in st for v in (v if isinstance(v, tuple) else (v,)) if isinstance(v, torch.Tensor)
                      and v.is_floating_point()]
            assert any(not torch.isfinite(v[b, n]) for v in fields), (backend, t, b, n, bad, st)
            with pytest.raises(ValueError, match="x_seq: contains NaN or inf"):
                run(xb, backend)
        run(x, backend)  # a clean input passes


def test_sinabs_clamp_keeps_the_scan_before():
    """With min_v_mem the clamp can turn -inf into a finite state: the input is scanned first."""
    from spikefuse.functional import sinabs as S

    x = torch.rand(5, 1, 4)
    x[2, 0, 1] = float("-inf")
    p = S.SinabsParams(alpha_mem=0.9, min_v_mem=-1.0)
    with finite_checks(False):
        assert torch.isfinite(S.sinabs_multistep(x, p)[1].v_mem).all()
    with pytest.raises(ValueError, match="x_seq: contains NaN or inf"):
        S.sinabs_multistep(x, p)


# --------------------------------------------------------------------------- hxtorch CUBA
@pytest.mark.parametrize("refractory", [False, True])
@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("entry", ["integration", "multistep"])
def test_cuba_nonfinite_input_reaches_the_current_and_raises(refractory, backend, entry):
    from spikefuse.functional import cuba as C

    p = C.CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6, refractory_time=2e-6)
    T = 6
    x = torch.rand(T, 2, 9, generator=torch.Generator().manual_seed(2))
    name = "x_seq" if entry == "multistep" else "x"

    def run(xx):
        if entry == "multistep":
            return C.cuba_lif_multistep(xx, p, dt=1e-6, backend=backend, refractory=refractory)[1]
        f = C.cuba_refractory_lif_integration if refractory else C.cuba_lif_integration
        return f(xx, p, dt=1e-6, backend=backend)

    for (t, b, n), bad in itertools.product([(0, 0, 0), (3, 1, 4), (T - 1, 1, 8)], BAD):
        xb = x.clone()
        xb[t, b, n] = bad
        if entry == "multistep":
            with finite_checks(False):
                st = run(xb)
            assert not torch.isfinite(st.i[b, n]), (t, bad, st.i[b, n])
        with pytest.raises(ValueError, match=f"{name}: contains NaN or inf"):
            run(xb)
    run(x)
