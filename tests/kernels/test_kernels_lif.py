"""Fused LIF backends (Triton in the interpreter, fused CPU) against the reference loop of
spikefuse.functional.lif: spikes, final state, traces and every gradient (input, initial state,
tau, v_threshold, v_reset) for every option combination and surrogate kind."""
import itertools

import pytest
import torch

from spikefuse import kernels, surrogate as sg
from spikefuse.functional.lif import LIFParams, LIFState, lif_multistep
from equivalence import check_backend

triton_mod = pytest.importorskip("spikefuse.kernels.triton")
from spikefuse.kernels.triton import common as tcommon  # noqa: E402

SURROGATES = [sg.ATan(2.0), sg.Sigmoid(4.0), sg.SuperSpike(5.0), sg.SLAYERExp(0.5, 2.0), sg.Triangle(0.8, 1.2)]
BACKENDS = ["triton", "cpu"]
T, B, N = 6, 3, 37  # M = 111: four interpreter blocks of 32, the last one partial


def _make(kind, hard, detach, surrogate, tensor_params=True, dtype=torch.float32):
    g = torch.Generator().manual_seed(1234)
    x = (torch.randn(T, B, N, generator=g) * 1.2 + 0.45).to(dtype)
    if tensor_params:
        tau = (torch.rand(N, generator=g) * 1.5 + 1.5) if kind != "if" else None
        vth = torch.rand(N, generator=g) * 0.5 + 0.75
        vr = torch.tensor(-0.1) if hard else None
    else:
        tau = 2.5 if kind != "if" else None
        vth, vr = 1.0, (0.0 if hard else None)
    v0 = torch.randn(B, N, generator=g) * 0.3
    return x, tau, vth, vr, v0


def _case(x, tau, vth, vr, v0, kind, detach, surrogate, traces, grad_params=True, threshold=">="):
    """(run, leaves) for tests/equivalence.check_backend: x, the tensor parameters (when
    ``grad_params``) and v0 are leaves; outputs are spikes, final v and the traces."""
    leaves = {"x": x}
    consts = {}
    for name, p in (("tau", tau), ("v_threshold", vth), ("v_reset", vr)):
        if isinstance(p, torch.Tensor) and grad_params:
            leaves[name] = p
        else:
            consts[name] = p
    leaves["v0"] = v0

    def run(backend, lv):
        ps = {n: lv[n] if n in lv else consts[n] for n in ("tau", "v_threshold", "v_reset")}
        params = LIFParams(tau=ps["tau"], v_threshold=ps["v_threshold"], v_reset=ps["v_reset"],
                           decay_input=(kind != "lif_nodecay"), detach_reset=detach, surrogate=surrogate,
                           threshold=threshold)
        out = lif_multistep(lv["x"], params, LIFState(lv["v0"]), backend=backend, return_traces=traces)
        return [out[0], out[1].v] + ([out[2].h, out[2].v] if traces else [])

    return run, leaves


def _check(backend, kind, hard, detach, surrogate, traces, tensor_params=True, dtype=torch.float32,
           grad_params=True):
    x, tau, vth, vr, v0 = _make(kind, hard, detach, surrogate, tensor_params, dtype)
    run, leaves = _case(x, tau, vth, vr, v0, kind, detach, surrogate, traces, grad_params)
    outs_r, _ = check_backend(run, leaves, backend, dtype=dtype)  # spikes exact, the rest close
    assert outs_r[0].dtype == dtype
    assert outs_r[0].sum() > 0 and outs_r[0].sum() < outs_r[0].numel()


COMBOS = list(itertools.product(["if", "lif", "lif_nodecay"], [True, False], [False, True]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_all_options_fp32_with_traces(backend, combo):
    kind, hard, detach = COMBOS[combo]
    _check(backend, kind, hard, detach, SURROGATES[combo % len(SURROGATES)], traces=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
def test_every_surrogate_without_traces(backend, surrogate):
    _check(backend, "lif", True, False, surrogate, traces=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["if", "lif", "lif_nodecay"])
def test_scalar_params(backend, kind):
    _check(backend, kind, kind != "lif", False, sg.ATan(), traces=kind == "lif", tensor_params=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_io(backend, dtype):
    _check(backend, "lif", dtype == torch.float16, False, sg.Sigmoid(4.0), traces=True, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensor_params_without_grad(backend):
    _check(backend, "lif", True, True, sg.ATan(), traces=False, grad_params=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_plif_tau_through_sigmoid_and_conv_shape(backend):
    """ParametricLIF: tau = 1/sigmoid(w) (a scalar leaf upstream), per-channel v_threshold
    (C, 1, 1) on a conv-shaped state; gradient reaches w through the kernel's tau gradient."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 2, 3, 2, 4, generator=g) + 0.6
    vth_c = torch.tensor([0.8, 1.0, 1.2]).view(3, 1, 1)
    res = {}
    for be in (backend, "reference"):
        w = torch.tensor(0.3, requires_grad=True)
        vth = vth_c.clone().requires_grad_()
        xx = x.clone().requires_grad_()
        p = LIFParams(tau=1.0 / torch.sigmoid(w), v_threshold=vth, v_reset=None, surrogate=sg.ATan())
        s, st = lif_multistep(xx, p, backend=be)
        loss = (s * torch.linspace(-1, 1, s.numel()).view(s.shape)).sum() + (st.v ** 2).sum()
        res[be] = (s, st.v) + torch.autograd.grad(loss, [xx, w, vth])
    for a, b in zip(res[backend], res["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spec_s1_vector(backend):
    """SPEC 17 S1: tau=2, V_th=1, hard reset, x=[1.5,1.5,0.5,3,0], gS=[0,1,0,1,0] -> gX."""
    x = torch.tensor([1.5, 1.5, 0.5, 3.0, 0.0]).view(5, 1, 1).requires_grad_()
    expect = {False: [0.109656, 0.40906, 0.049525, 0.10298, 0.0], True: [0.216598, 0.433196, 0.05149, 0.10298, 0.0]}
    for detach in (False, True):
        p = LIFParams(tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=detach, surrogate=sg.ATan(2.0))
        s, st, tr = lif_multistep(x, p, backend=backend, return_traces=True)
        assert s.flatten().tolist() == [0, 1, 0, 1, 0]
        torch.testing.assert_close(tr.h.flatten(), torch.tensor([0.75, 1.125, 0.25, 1.625, 0.0]))
        torch.testing.assert_close(tr.v.flatten(), torch.tensor([0.75, 0.0, 0.25, 0.0, 0.0]))
        (gx,) = torch.autograd.grad((s.flatten() * torch.tensor([0.0, 1, 0, 1, 0])).sum(), [x])
        torch.testing.assert_close(gx.flatten(), torch.tensor(expect[detach]), rtol=0, atol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_grad_inference(backend):
    x = torch.randn(T, B, N) + 0.5
    p = LIFParams(tau=3.0)
    with torch.no_grad():
        s, st = lif_multistep(x, p, backend=backend)
        s_r, st_r = lif_multistep(x, p, backend="reference")
    assert torch.equal(s, s_r)
    torch.testing.assert_close(st.v, st_r.v, rtol=1e-6, atol=1e-6)


def test_auto_picks_cpu_and_falls_back_for_custom_surrogate(monkeypatch):
    x = torch.randn(4, 2, 5)
    p = LIFParams(tau=2.0)
    from spikefuse.kernels.cpu import lif as cpu_lif
    assert kernels.resolve("lif", "auto", x, params=p, v0=None) is cpu_lif.lif_cpu
    custom = LIFParams(tau=2.0, surrogate=sg.Custom(lambda z: torch.ones_like(z)))
    assert kernels.resolve("lif", "auto", x, params=custom, v0=None) is cpu_lif.lif_cpu
    with pytest.raises(ValueError, match="no in-kernel formula"):
        kernels.resolve("lif", "triton", x, params=custom, v0=None)
    # the CPU path evaluates any surrogate in torch, Custom included
    xx = x.clone().requires_grad_()
    s, st = lif_multistep(xx, custom, backend="cpu")
    s_r, st_r = lif_multistep(x, custom, backend="reference")
    assert torch.equal(s, s_r)


def test_unsupported_cases_give_reasons(monkeypatch):
    x = torch.randn(4, 2, 5)
    p = LIFParams(tau=2.0)
    for be in BACKENDS:
        with pytest.raises(ValueError, match="float64"):
            kernels.resolve("lif", be, x.double(), params=p, v0=None)
    with pytest.raises(ValueError, match="broadcast"):
        kernels.resolve("lif", "cpu", x, params=LIFParams(tau=torch.full((3,), 2.0)), v0=None)
    # fp64 under "auto" runs the reference loop
    assert kernels.resolve("lif", "auto", x.double(), params=p, v0=None) is None
    # outside the interpreter, the Triton kernels need CUDA tensors
    monkeypatch.setattr(tcommon, "INTERPRET", False)
    from spikefuse.kernels.triton import lif as tlif
    assert tlif.lif_supports(x, params=p) == "needs CUDA tensors or TRITON_INTERPRET=1"
    with pytest.raises(ValueError, match="needs CUDA tensors or TRITON_INTERPRET=1"):
        kernels.resolve("lif", "triton", x, params=p, v0=None)


def test_saved_bytes_reported():
    from spikefuse.kernels import cpu as cpu_mod
    assert triton_mod.SAVED_BYTES["lif"] == 4
    assert cpu_mod.SAVED_BYTES["lif"] == 4


def test_param_helpers():
    from spikefuse.kernels.cpu.common import expand_param, param_reason, sum_to

    shape = (2, 3)
    assert expand_param(2.0, shape, torch.device("cpu")).tolist() == [2.0] * 6
    assert expand_param(torch.tensor([1.0, 2.0, 3.0]), shape, torch.device("cpu")).tolist() == [1, 2, 3] * 2
    assert expand_param(torch.tensor([[1.0], [2.0]]), shape, torch.device("cpu")).tolist() == [1, 1, 1, 2, 2, 2]
    cpu = torch.device("cpu")
    assert param_reason("tau", 2.0, shape, cpu) is None
    assert param_reason("tau", torch.ones(3), shape, cpu) is None
    assert "does not broadcast" in param_reason("tau", torch.ones(4), shape, cpu)
    assert "does not broadcast" in param_reason("tau", torch.ones(2, 2, 3), shape, cpu)
    assert "must be a number or a tensor" in param_reason("tau", "2", shape, cpu)
    assert "must be a number or a tensor" in param_reason("tau", True, shape, cpu)
    assert "floating" in param_reason("tau", torch.ones(3, dtype=torch.bool), shape, cpu)
    assert sum_to(torch.ones(2, 3), torch.ones(3)).tolist() == [2.0, 2.0, 2.0]
    assert sum_to(None, torch.ones(3)) is None


def test_lif_supports_direct():
    from spikefuse.kernels.cpu import lif as clif
    from spikefuse.kernels.triton import lif as tlif

    x = torch.rand(4, 2, 5)
    for sup in (clif.lif_supports, tlif.lif_supports):
        assert sup(x, params=LIFParams()) is None
        assert "no LIFParams" in sup(x, params=None)
        assert "v0" in sup(x, params=LIFParams(), v0=torch.ones(3))
        assert "v_threshold" in sup(x, params=LIFParams(v_threshold=torch.ones(4)))
        assert "v_reset" in sup(x, params=LIFParams(v_reset=torch.ones(4)))
    # the CPU path needs CPU tensors (checked with a meta tensor: no device needed)
    assert "needs CPU tensors" in clif.lif_supports(torch.empty(4, 2, 5, device="meta"), params=LIFParams())


SJ_FILES = sorted((__import__("pathlib").Path(__file__).parents[1] / "fixtures" / "spikingjelly").glob("*.npz"))


def _sj_value(v):
    if isinstance(v, str):
        return None if v.lower() == "none" else v
    return v.item() if v.numel() == 1 else v


@pytest.mark.parametrize("path", SJ_FILES, ids=[p.stem for p in SJ_FILES])
def test_triton_matches_spikingjelly_fixture(path):
    """The Triton kernel on SpikingJelly's own outputs (fixtures; the fused CPU path is run on
    them by tests/peers/test_fixtures_spikingjelly.py through backend="auto")."""
    from load_fixture import load_fixture

    d = load_fixture(path)
    cfg = {k[6:]: _sj_value(v) for k, v in d.items() if k.startswith("param_")}
    x = d["input"].clone().requires_grad_()
    w = None
    if "w" in cfg:
        w = torch.tensor(float(cfg["w"]), requires_grad=True)
        tau = 1.0 / torch.sigmoid(w)
    else:
        tau = cfg.get("tau")
    sur = sg.get(cfg.get("surrogate", "atan"), alpha=float(cfg.get("surrogate_alpha", 2.0)))
    p = LIFParams(tau=tau, v_threshold=float(cfg.get("v_threshold", 1.0)), v_reset=cfg.get("v_reset", 0.0),
                  decay_input=bool(cfg.get("decay_input", True)), detach_reset=bool(cfg.get("detach_reset", False)),
                  surrogate=sur)
    v0 = torch.zeros(x.shape[1:]) + float(d["v_init"])
    s, st, tr = lif_multistep(x, p, LIFState(v0), backend="triton", return_traces=True)
    tol = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s, d["spikes"], **tol)
    torch.testing.assert_close(tr.h, d["h"], **tol)
    torch.testing.assert_close(tr.v, d["v"], **tol)
    loss = (s * d["R"]).sum() + (tr.v * d["Q"]).sum()
    torch.testing.assert_close(loss.detach(), d["loss"], **tol)
    grads = torch.autograd.grad(loss, [x] + ([w] if w is not None else []))
    torch.testing.assert_close(grads[0], d["grad_input"], **tol)
    if w is not None:
        torch.testing.assert_close(grads[1], d["grad_w"].to(torch.float32), **tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward_is_refused(backend):
    """The hand-written backward is first-order only: a second derivative raises instead of
    silently returning zeros."""
    x = (torch.randn(4, 2, 5) + 0.5).requires_grad_()
    s, st = lif_multistep(x, LIFParams(tau=2.0), backend=backend)
    (gx,) = torch.autograd.grad((s.sum() + (st.v ** 2).sum()), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        gx.sum().backward()


# --------------------------------------------------------------------------- threshold=">"
#: the backends with a fused strict comparison (all of them)
STRICT_BACKENDS = BACKENDS


def _dyadic_case(kind, hard, seed):
    """Inputs, parameters and v0 on a grid of quarters (tau 2 or 4, v_threshold 0.5 / 1 / 1.25,
    v_reset 0 / -0.5): every charge is exact in fp32, so many land exactly on the threshold."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 9, (T, B, N), generator=g).float() / 4
    tau = torch.tensor([2.0, 4.0])[torch.randint(0, 2, (N,), generator=g)] if kind != "if" else None
    vth = torch.tensor([0.5, 1.0, 1.25])[torch.randint(0, 3, (N,), generator=g)]
    vr = torch.tensor([0.0, -0.5])[torch.randint(0, 2, (N,), generator=g)] if hard else None
    v0 = torch.randint(-2, 4, (B, N), generator=g).float() / 4
    return x, tau, vth, vr, v0


@pytest.mark.parametrize("backend", STRICT_BACKENDS)
@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_strict_threshold_at_ties_matches_reference(backend, combo):
    """threshold=">" on charges that hit the threshold exactly: spikes, final state and traces
    bit for bit, every gradient (x, tau, v_threshold, v_reset, v0) as the reference's; the
    ties are there (and ">=" fires on them)."""
    kind, hard, detach = COMBOS[combo]
    x, tau, vth, vr, v0 = _dyadic_case(kind, hard, combo)
    surrogate = SURROGATES[combo % len(SURROGATES)]
    run, leaves = _case(x, tau, vth, vr, v0, kind, detach, surrogate, True, threshold=">")
    outs_r, _ = check_backend(run, leaves, backend, exact="all")
    s, _, h, _ = outs_r
    vth_b = vth.expand_as(h)
    ties = h == vth_b
    assert ties.sum() >= 3
    assert not s[ties].any() and torch.equal(s.bool(), h > vth_b)
    run_ge, leaves_ge = _case(x, tau, vth, vr, v0, kind, detach, surrogate, True, threshold=">=")
    with torch.no_grad():
        s_ge = run_ge(backend, leaves_ge)[0]
    assert not torch.equal(s_ge, s)


@pytest.mark.parametrize("backend", STRICT_BACKENDS)
@pytest.mark.parametrize("combo", [0, 5, 10])
def test_strict_threshold_random_inputs(backend, combo):
    """threshold=">" on the random cases of the ">=" tests (spikes exact, the rest close)."""
    kind, hard, detach = COMBOS[combo]
    x, tau, vth, vr, v0 = _make(kind, hard, detach, SURROGATES[combo % 5])
    run, leaves = _case(x, tau, vth, vr, v0, kind, detach, SURROGATES[combo % 5], True, threshold=">")
    outs_r, _ = check_backend(run, leaves, backend)
    assert 0 < outs_r[0].sum() < outs_r[0].numel()


@pytest.mark.parametrize("backend", STRICT_BACKENDS)
@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
def test_strict_threshold_by_hand(backend, hard):
    """tau = 2, V_th = 1, from rest: x = 2 gives H = 1.0 exactly (no spike with ">", V = 1),
    x = 1 gives H = 1 + (1 - 1)/2 = 1.0 again, x = 3 gives H = 2.0 (spike; V = 0 hard, 1 soft)."""
    x = torch.tensor([2.0, 1.0, 3.0]).view(3, 1, 1)
    p = LIFParams(tau=2.0, v_reset=0.0 if hard else None, threshold=">")
    s, st, tr = lif_multistep(x, p, backend=backend, return_traces=True)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0]
    assert tr.h.flatten().tolist() == [1.0, 1.0, 2.0]
    assert tr.v.flatten().tolist() == [1.0, 1.0, 0.0 if hard else 1.0] and st.v.item() == tr.v[-1].item()
    s_ge, _ = lif_multistep(x, p._replace(threshold=">="), backend=backend)
    assert s_ge.flatten().tolist() == [1.0, 0.0, 1.0]   # ">=": H = 1.0, 0.5, 1.75
