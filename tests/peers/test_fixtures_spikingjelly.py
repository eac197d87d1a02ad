"""spikefuse IF/LIF/ParametricLIF against SpikingJelly reference fixtures.

Every ``tests/fixtures/spikingjelly/*.npz`` is run (the loader is generic: the parameters are
read from the ``param_*`` entries, falling back to the JSON ``params={...}`` in ``doc``):
our multi-step from ``v_init`` must give the same spikes, pre-reset charge ``h``, post-reset
membrane ``v``, loss ``L = sum(spikes*R) + sum(v*Q)``, ``dL/dx`` and, for parametric-LIF files
(``param_init_tau`` / ``param_w``, ``tau = 1/sigmoid(w)``), ``dL/dw``, at 1e-5 in float32.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from load_fixture import load_fixture

from spikefuse import surrogate as sg
from spikefuse.functional.lif import LIFParams, LIFState, lif_multistep
from spikefuse.neuron.lif import IF, LIF, ParametricLIF

FIXTURE_DIR = Path(__file__).parents[1] / "fixtures" / "spikingjelly"
FILES = sorted(FIXTURE_DIR.glob("*.npz"))
ATOL = RTOL = 1e-5


def _doc_params(doc: str) -> dict:
    m = re.search(r"params=(\{.*?\})", doc)
    if not m:
        return {}
    try:
        return json.loads(m.group(1))
    except json.JSONDecodeError:
        return {}


def _value(v):
    """A param entry as a Python value: 'None' -> None, 'true'/'false' -> bool, 0-d -> scalar,
    larger tensors stay tensors (per-feature parameters)."""
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("none", "null"):
            return None
        if low in ("true", "false"):
            return low == "true"
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, torch.Tensor):
        if v.dtype == torch.bool:
            return bool(v) if v.numel() == 1 else v
        if v.numel() == 1 and v.dim() == 0:
            return v.item()
        return v.to(torch.float32)
    return v


def parse_fixture(path):
    """-> (kind, config dict, data dict). kind is 'if', 'lif' or 'plif'."""
    d = load_fixture(path)
    cfg = {k: v for k, v in _doc_params(d.get("doc", "")).items()}
    for k, v in d.items():
        if k.startswith("param_"):
            cfg[k[len("param_"):]] = _value(v)
    if "w" in cfg or "init_tau" in cfg:
        kind = "plif"
    elif cfg.get("tau") is not None:
        kind = "lif"
    else:
        kind = "if"
    return kind, cfg, d


def _surrogate(cfg):
    name = cfg.get("surrogate", "atan")
    alpha = cfg.get("surrogate_alpha")
    return sg.get(name) if alpha is None else sg.get(name, alpha=float(alpha))


def _w(cfg):
    w = cfg.get("w")
    if w is None:
        w = -torch.log(torch.tensor(float(cfg["init_tau"])) - 1.0)
    return torch.as_tensor(w, dtype=torch.float32).clone()


def _params(kind, cfg, tau=None):
    if kind == "if":
        tau = None
    elif kind == "lif":
        tau = cfg["tau"]
    return LIFParams(
        tau=tau,
        v_threshold=cfg.get("v_threshold", 1.0),
        v_reset=cfg.get("v_reset", 0.0),
        decay_input=bool(cfg.get("decay_input", True)),
        detach_reset=bool(cfg.get("detach_reset", False)),
        surrogate=_surrogate(cfg),
    )


def _v0(d):
    x = d["input"]
    return (torch.zeros(x.shape[1:], dtype=torch.float32) + d["v_init"].to(torch.float32)).clone()


def _check(d, spikes, h, v, x, w=None):
    torch.testing.assert_close(spikes, d["spikes"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(h, d["h"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(v, d["v"], atol=ATOL, rtol=RTOL)
    loss = (spikes * d["R"]).sum() + (v * d["Q"]).sum()
    torch.testing.assert_close(loss.detach(), d["loss"], atol=ATOL, rtol=RTOL)
    inputs = [x] if w is None else [x, w]
    grads = torch.autograd.grad(loss, inputs)
    torch.testing.assert_close(grads[0], d["grad_input"], atol=ATOL, rtol=RTOL)
    if w is not None:
        torch.testing.assert_close(grads[1], d["grad_w"].to(grads[1].dtype), atol=ATOL, rtol=RTOL)


def test_fixtures_present():
    assert len(FILES) >= 17, FILES


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_functional_matches_spikingjelly(path, backend):
    kind, cfg, d = parse_fixture(path)
    x = d["input"].clone().requires_grad_(True)
    w = _w(cfg).requires_grad_(True) if kind == "plif" else None
    params = _params(kind, cfg, tau=None if w is None else 1.0 / torch.sigmoid(w))
    assert x.dtype == torch.float32
    spikes, state, tr = lif_multistep(x, params, LIFState(_v0(d)), backend=backend, return_traces=True)
    assert spikes.shape == x.shape and spikes.dtype == torch.float32
    torch.testing.assert_close(state.v, tr.v[-1])
    _check(d, spikes, tr.h, tr.v, x, w)
    if kind == "plif":
        assert "grad_w" in d


@pytest.mark.parametrize("backend", ["reference", None])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_module_matches_spikingjelly(path, backend):
    kind, cfg, d = parse_fixture(path)
    common = dict(
        v_threshold=cfg.get("v_threshold", 1.0),
        v_reset=cfg.get("v_reset", 0.0),
        surrogate=_surrogate(cfg),
        detach_reset=bool(cfg.get("detach_reset", False)),
        step_mode="m",
        store_v_seq=True,
        backend=backend,
    )
    decay_input = bool(cfg.get("decay_input", True))
    if kind == "if":
        m = IF(**common)
    elif kind == "lif":
        m = LIF(tau=cfg["tau"], decay_input=decay_input, **common)
    else:
        m = ParametricLIF(init_tau=float(cfg.get("init_tau", 2.0)), decay_input=decay_input, **common)
        with torch.no_grad():
            m.w.copy_(_w(cfg).reshape(m.w.shape))
    x = d["input"].clone().requires_grad_(True)
    m.v = _v0(d)
    spikes = m(x)
    torch.testing.assert_close(spikes, d["spikes"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(m.v_seq, d["v"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(m.v, d["v"][-1], atol=ATOL, rtol=RTOL)
    loss = (spikes * d["R"]).sum() + (m.v_seq * d["Q"]).sum()
    inputs = [x] if kind != "plif" else [x, m.w]
    grads = torch.autograd.grad(loss, inputs)
    torch.testing.assert_close(grads[0], d["grad_input"], atol=ATOL, rtol=RTOL)
    if kind == "plif":
        torch.testing.assert_close(grads[1], d["grad_w"], atol=ATOL, rtol=RTOL)
