"""The public peer fixtures (tests/fixtures, copies of ../shared/fixtures) run through the compat
entry points, written as the peer's user writes them, agree with the peer's recorded outputs.

lava-dl fixtures store time-first (T, B, N) arrays (transposed from lava's (B, N, T)); they are
transposed back and fed to ``slayer.neuron.<model>.Neuron`` exactly as the fixture's ``doc``
says (``dynamics`` then ``spike``), with lava's default decay gradients. SpikingJelly fixtures
run through the cext nodes step by step (``LIFNode``/``IFNode``/``ParametricLIFNode``).
"""
import json
import re
from pathlib import Path

import pytest
import torch
from load_fixture import load_fixture

from spikefuse.compat.lava_dl import slayer
from spikefuse.compat.spikingjelly.cext import neuron as cext

FIX = Path(__file__).parent.parent / "fixtures"
TL = lambda x: x.movedim(0, -1)  # noqa: E731


def _f(d, k):
    return float(d[f"param_{k}"])


def _lava_cuba(d):
    return slayer.neuron.cuba.Neuron(threshold=_f(d, "threshold"), current_decay=_f(d, "current_decay"),
                                     voltage_decay=_f(d, "voltage_decay"), shared_param=True, requires_grad=True,
                                     graded_spike=False), ("i", "v"), ("current_decay", "voltage_decay")


def _lava_alif(d):
    n = slayer.neuron.alif.Neuron(threshold=_f(d, "threshold"), threshold_step=_f(d, "threshold_step"),
                                  current_decay=_f(d, "current_decay"), voltage_decay=_f(d, "voltage_decay"),
                                  threshold_decay=_f(d, "threshold_decay"),
                                  refractory_decay=_f(d, "refractory_decay"), shared_param=True, requires_grad=True)
    return n, ("i", "v", "threshold", "refractory"), ("current_decay", "voltage_decay", "threshold_decay",
                                                      "refractory_decay")


def _lava_rf(d):
    n = slayer.neuron.rf.Neuron(threshold=_f(d, "threshold"), period=_f(d, "period"), decay=_f(d, "decay"),
                                shared_param=True, requires_grad=True)
    with torch.no_grad():   # lava's stored float parameters (equal to ours up to float rounding)
        n.sin_decay.fill_(_f(d, "sin_decay_param"))
        n.cos_decay.fill_(_f(d, "cos_decay_param"))
    return n, ("v_real", "v_imag"), ("sin_decay", "cos_decay")


def _close(name, got, want, rel=1e-5):
    got = torch.zeros_like(want) if got is None else got   # no gradient path (ALIF θ, r decays)
    got, want = got.detach().double().reshape(want.shape), want.double()
    err = (got - want).abs().max().item()
    assert err <= rel * max(want.abs().max().item(), 1e-3) + 1e-7, f"{name}: max error {err:.3g}"


@pytest.mark.parametrize("model,build", [("cuba", _lava_cuba), ("alif", _lava_alif), ("rf", _lava_rf)])
def test_lava_fixture_through_compat(model, build):
    d = load_fixture(FIX / "lava_dl" / f"{model}.npz")
    n, trace_names, decays = build(d)
    x = TL(d["input"]).clone().requires_grad_()            # lava layout (B, N, T)
    leaves = [x]
    if model == "rf":
        xi = TL(d["input_imag"]).clone().requires_grad_()
        leaves.append(xi)
        traces = n.dynamics((x, xi))
        spikes = n.spike(*traces)
    else:
        traces = n.dynamics(x)
        spikes = n.spike(*traces[1:])
    assert spikes.shape == x.shape
    got = dict(zip(trace_names, traces), spikes=spikes)
    for k, v in got.items():
        assert torch.equal(v.detach().movedim(-1, 0), d[k]), k
    weights = {"spikes": "R", trace_names[1 if model != "rf" else 0]: "Q"}
    if model == "rf":
        weights["v_imag"] = "Q2"
    loss = sum((got[k].movedim(-1, 0) * d[w]).sum() for k, w in weights.items())
    assert loss.item() == pytest.approx(float(d["loss"]), rel=1e-5, abs=1e-5)
    loss.backward()
    _close("grad_input", leaves[0].grad.movedim(-1, 0), d["grad_input"])
    if model == "rf":
        _close("grad_input_imag", leaves[1].grad.movedim(-1, 0), d["grad_input_imag"])
    for name in decays:        # lava's decay-gradient rule is the compat default
        _close(f"grad_{name}", getattr(n, name).grad, d[f"grad_{name}"], rel=1e-4)


SJ_FILES = sorted((FIX / "spikingjelly").glob("*.npz"))


def _sj_cfg(d):
    m = re.search(r"params=(\{.*?\})", d.get("doc", ""))
    cfg = json.loads(m.group(1)) if m else {}
    for k, v in d.items():
        if k.startswith("param_"):
            cfg[k[6:]] = None if isinstance(v, str) and v.lower() in ("none", "null") else v
    return cfg


def _num(v, default=None):
    if v is None:
        return default
    if isinstance(v, str):
        return {"true": True, "false": False}.get(v.lower(), v)
    return v.item() if isinstance(v, torch.Tensor) else v


def _sj_node(path, cfg):
    vr = _num(cfg["v_reset"]) if "v_reset" in cfg else 0.0   # None: soft reset
    common = dict(v_threshold=float(_num(cfg.get("v_threshold"), 1.0)), v_reset=None if vr is None else float(vr),
                  surrogate_function="ATan", alpha=float(_num(cfg.get("surrogate_alpha"), 2.0)),
                  detach_reset=bool(_num(cfg.get("detach_reset"), False)))
    detach_input = not bool(_num(cfg.get("decay_input"), True))
    if path.stem.startswith("plif"):
        node = cext.ParametricLIFNode(init_tau=float(_num(cfg.get("init_tau"), 2.0)), detach_input=detach_input,
                                      **common)
        if cfg.get("w") is not None:
            with torch.no_grad():
                node.w.copy_(torch.as_tensor(_num(cfg["w"]), dtype=torch.float32).reshape(1))
        return node
    if path.stem.startswith("lif"):
        return cext.LIFNode(tau=float(_num(cfg["tau"])), detach_input=detach_input, **common)
    return cext.IFNode(**common)


@pytest.mark.parametrize("path", SJ_FILES, ids=[p.stem for p in SJ_FILES])
def test_spikingjelly_fixture_through_cext_nodes(path):
    d = load_fixture(path)
    cfg = _sj_cfg(d)
    assert cfg.get("surrogate", "atan").lower() == "atan"
    node = _sj_node(path, cfg)
    x = d["input"].clone().requires_grad_()
    node.v = (torch.zeros(x.shape[1:]) + d["v_init"].float()).clone()
    spikes, vs = [], []
    for t in range(x.shape[0]):        # a cext user's single-step loop
        spikes.append(node(x[t]))
        vs.append(node.v)
    spikes, vs = torch.stack(spikes), torch.stack(vs)
    torch.testing.assert_close(spikes, d["spikes"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vs, d["v"], rtol=1e-5, atol=1e-5)
    loss = (spikes * d["R"]).sum() + (vs * d["Q"]).sum()
    leaves = [x] + ([node.w] if path.stem.startswith("plif") else [])
    grads = torch.autograd.grad(loss, leaves)
    torch.testing.assert_close(grads[0], d["grad_input"], rtol=1e-5, atol=1e-5)
    if len(grads) > 1:
        torch.testing.assert_close(grads[1].reshape(()), d["grad_w"].reshape(()).float(), rtol=1e-5, atol=1e-5)
