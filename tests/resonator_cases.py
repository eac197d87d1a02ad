"""The resonator family's kernel-vs-reference cases, shared by the Triton (interpreter) and the
CPU kernel tests (tests/kernels/test_kernels_resonator.py, test_kernels_cpu_resonator.py):
parameters, initial states, the check_backend harness over every output, state, trace and
gradient, the edge cases and the lava-dl fixture run through one backend."""
import math

import pytest
import torch

from equivalence import check_backend, scaled_tol
from spikefuse.functional import resonator as R

T, B, C = 9, 3, 37
MODELS = ("rf", "rf_iz", "adrf", "adrf_iz")
FN = {m: getattr(R, f"{m}_multistep") for m in MODELS}
# spikes need an input scale that reaches the threshold and a phase that crosses zero
THETA = {"rf": 0.5, "rf_iz": 0.5, "adrf": 0.4, "adrf_iz": 0.5}


def decays(tensor, n=C, g=None):
    """sin/cos decays (4096 gain (sin, cos)(2 pi / period)); per channel (learnable) or numbers."""
    g = g or torch.Generator().manual_seed(5)
    if tensor:
        period = torch.rand(n, generator=g) * 12 + 4
        gain = 4096 * (0.8 + 0.15 * torch.rand(n, generator=g))
        S = (gain * torch.sin(2 * math.pi / period)).requires_grad_()
        Cd = (gain * torch.cos(2 * math.pi / period)).requires_grad_()
        return S, Cd, [S, Cd]
    return 2607.0, 2607.0, []


def params(model, graded, decay_grad, tensor, n=C, s_scale=4096, theta=None):
    g = torch.Generator().manual_seed(5)
    S, Cd, leaves = decays(tensor, n, g)
    th = THETA[model] if theta is None else theta
    if model.startswith("adrf"):
        dth = torch.rand(n, generator=g) * 4096 if tensor else 1024.0
        dr = 2048.3 if tensor else 2048.0
        p = R.AdRFParams(S, Cd, dth, dr, threshold=th, threshold_step=0.25 * th / 0.5, tau_grad=0.7,
                         scale_grad=1.3, graded_spike=graded, s_scale=s_scale, decay_grad=decay_grad)
    else:
        p = R.RFParams(S, Cd, threshold=th, tau_grad=0.7, scale_grad=1.3, graded_spike=graded,
                       s_scale=s_scale, decay_grad=decay_grad)
    return p, leaves


def state(model, shape, grad):
    g = torch.Generator().manual_seed(2)
    n = 4 if model.startswith("adrf") else 2
    vals = [torch.randn(shape, generator=g) * 0.3 for _ in range(n)]
    if n == 4:
        vals[2] = vals[2].abs() + 0.3  # threshold
        vals[3] = vals[3].abs()  # refractory
    vals = [v.requires_grad_(grad and i < 2) for i, v in enumerate(vals)]
    return R._STATES[model](*vals)


def check(backend, model, graded, decay_grad, tensor, dtype=torch.float32, scale=1.0, state_grad=None,
          shape=(T, B, C), s_scale=4096, theta=None, spikes=True, grad_exact=False):
    """tests/equivalence.check_backend: every output, state and trace bit-identical, the same
    outputs differentiable, gradients w.r.t. both inputs, the decays and the initial state close
    (``grad_exact`` and fp32: equal, a zero tolerance, the CPU kernels)."""
    g = torch.Generator().manual_seed(0)
    x = [((torch.randn(shape, generator=g) * 0.5 + 0.1) * scale).to(dtype) for _ in range(2)]
    st = None if state_grad is None else state(model, shape[1:], state_grad)
    p, dec = params(model, graded, decay_grad, tensor, n=shape[2], s_scale=s_scale, theta=theta)
    leaves = dict(xr=x[0], xi=x[1], **dict(zip(("sin_decay", "cos_decay"), dec)))
    if state_grad:
        leaves.update(real0=st[0], imag0=st[1])

    def run(backend, lv):
        pp = p._replace(**{k: lv[k] for k in ("sin_decay", "cos_decay") if k in lv})
        s0 = st if not state_grad else type(st)(lv["real0"], lv["imag0"], *st[2:])
        out = FN[model]((lv["xr"], lv["xi"]), pp, state=s0, backend=backend, return_traces=True)
        return [out[0]] + list(out[1]) + list(out[2])

    tol = (0.0 if grad_exact else 2e-5) if dtype == torch.float32 else 2e-2
    outs_r, _ = check_backend(run, leaves, backend, exact="all", differentiable_only=True, seed=1,
                              grad_dtype=torch.float64, grad_tol=scaled_tol(tol), allow_none_grads=True)
    if spikes:
        assert 0 < (outs_r[0] != 0).sum() < outs_r[0].numel()


P4 = dict(sin_decay=4095.0, cos_decay=0.0, threshold=0.5)  # period 4, decay 0
PA = dict(P4, threshold_decay=2048.0, refractory_decay=2048.0, threshold_step=0.25)


def q(t):
    return (t.flatten() * 4096).tolist()


def same(backend, model, x, p, state=None):
    outs = []
    for be in (backend, "reference"):
        s, st, tr = FN[model](x, p, state=state, backend=be, return_traces=True)
        outs.append([s] + list(st) + list(tr))
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    return outs[0]


def check_edges(backend):
    """RF-Iz resets when im equals θ exactly; the adaptive update of AdRF uses the integer
    previous imaginary part (a float state of -1e-5 truncates to 0: spike output, no θ step)."""
    xi = torch.tensor([0.5, 0, 0, 0]).reshape(4, 1, 1)
    s, re, im, re_tr, im_tr = same(backend, "rf_iz", (torch.zeros_like(xi), xi), R.RFParams(**P4))
    assert s.flatten().tolist() == [1, 0, 0, 0]
    assert (re_tr.flatten()[1] * 4096).item() == -2046  # restarted from im = 2047, not 2048
    x = torch.tensor([0.9, 0.0]).reshape(2, 1, 1)
    st = R.AdRFState(torch.zeros(1, 1), torch.full((1, 1), -1e-5), torch.full((1, 1), 0.5), torch.zeros(1, 1))
    out = same(backend, "adrf", (x, torch.zeros_like(x)), R.AdRFParams(**PA), state=st)
    assert out[0].flatten().tolist() == [1, 0]
    assert q(out[7]) == [2048, 2048]  # θ trace: no threshold step after the float-only spike


def _lava_rf():
    return pytest.importorskip("test_fixtures_lava_rf")


def lava_cases():
    """The lava-dl RF-family fixtures: (path, model) pairs."""
    try:
        import test_fixtures_lava_rf as m
    except ImportError:
        return []
    return [(p, md) for p, md in m.CASES if md != "sigma_delta"]


def check_lava_fixture(backend, path, model):
    """lava-dl's own outputs (tests/fixtures/lava_dl) through ``backend`` with lava's decay
    gradient rule: bit-exact spikes and traces, input and decay gradients."""
    from load_fixture import load_fixture

    d = load_fixture(path)
    n = _lava_rf()._build(model, d)
    x = d["input"].clone().requires_grad_()
    xi = d["input_imag"].clone().requires_grad_()
    _lava_rf()._load_stored_params(n, d, x)
    s, st, tr = FN[model]((x, xi), n.params(), backend=backend, return_traces=True)
    assert torch.equal(s, d["spikes"])
    assert torch.equal(tr.real, d["v_real"]) and torch.equal(tr.imag, d["v_imag"])
    loss = (s * d["R"]).sum() + (tr.real * d["Q"]).sum() + (tr.imag * d["Q2"]).sum()
    assert loss.item() == pytest.approx(float(d["loss"]), rel=1e-5, abs=1e-5)
    loss.backward()
    _lava_rf()._rel_close("grad_input", x.grad, d["grad_input"])
    _lava_rf()._rel_close("grad_input_imag", xi.grad, d["grad_input_imag"])
    for name in ("sin_decay", "cos_decay"):
        key = f"grad_{name}"
        if key in d:
            cand = [v for k, v in n.named_parameters() if k.endswith(name) or k.endswith(name + "_param")]
            assert cand, name
            _lava_rf()._rel_close(key, cand[0].grad, d[key])
