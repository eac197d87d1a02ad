"""Reproduce lava-dl reference fixtures (tests/fixtures/lava_dl/*.npz) — generic runner.

Each fixture holds a time-first ``input`` (T, B, N), lava's outputs (``spikes``, ``v``, ``i``,
and for adaptive models ``threshold``, ``refractory``), the loss weights ``R`` (on spikes)
and ``Q`` (on v), the loss, ``grad_input`` and ``grad_<decay>`` (.grad of lava's stored
``4096·decay`` parameters), and ``param_*`` constructor values. The model is read from the
``doc`` string (``slayer.neuron.<model>.Neuron``); parameters are read from the file, so other
fixtures of the same models with other parameters run unchanged. lava-dl computes decay
gradients with its own rule, reproduced by ``decay_grad="lava"`` (checked below; the
``"exact"`` rule is ``-1/4096`` times it).

Other engineers add runners for their models to ``RUNNERS``.
"""
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from load_fixture import load_fixture

FIX = Path(__file__).parents[1] / "fixtures" / "lava_dl"


def _model_of(path):
    with np.load(path, allow_pickle=False) as z:
        doc = str(z["doc"]) if "doc" in z.files else ""
    m = re.search(r"slayer\.neuron\.(\w+)\.Neuron", doc)
    return m.group(1) if m else path.stem.split("_")[0]


def _p(d, name, default=None, cast=float):
    key = f"param_{name}"
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, torch.Tensor):
        if v.numel() == 1:
            v = v.item()
        else:
            return v
    if isinstance(v, str):
        return None if v == "None" else v
    return cast(v) if cast is not None else v


def _common_kwargs(d):
    th = _p(d, "threshold")
    scale = _p(d, "scale", 64, int)
    th_q = int(th * scale) / scale
    tau_grad = _p(d, "tau_grad")
    if tau_grad is None:
        tau_rho = _p(d, "tau_rho")
        tau_grad = 1.0 if tau_rho is None else tau_rho / (100.0 * th_q)
    scale_grad = _p(d, "scale_grad")
    if scale_grad is None:
        scale_rho = _p(d, "scale_rho")
        scale_grad = 1.0 if scale_rho is None else scale_rho / 0.1
    return dict(
        threshold=th,
        tau_grad=tau_grad,
        scale_grad=scale_grad,
        scale=scale,
        shared_param=_p(d, "shared_param", True, bool),
        requires_grad=_p(d, "requires_grad", True, bool),
        graded_spike=_p(d, "graded_spike", False, bool),
        persistent_state=_p(d, "persistent_state", False, bool),
        decay_grad="lava",
    )


def _decay_arg(d, name):
    v = _p(d, name)
    if isinstance(v, torch.Tensor):  # a stored (min, max) pair
        v = tuple(float(a) for a in v.flatten())
    return v


def _set_decays(n, d, names, x):
    """Freeze the shape, then overwrite decays with the fixture's stored values (the float
    parameter if present, else the hardware integer: both give identical forward/backward)."""
    n._init_shape(x)
    for name in names:
        cands = [
            torch.as_tensor(d[k], dtype=torch.float32).reshape(-1)
            for k in (f"param_{name}_param", f"param_cx_{name}") if k in d
        ]
        if cands:  # the per-channel values win over a value recorded before lazy sampling
            val = max(cands, key=lambda v: v.numel())
            getattr(n, name).data = val.clone()


def _run(d, n, decay_names, traces):
    x = d["input"].clone().requires_grad_(True)
    _set_decays(n, d, decay_names, x)
    out = n.dynamics(x)
    s = n.spike(*out[1:])
    got = dict(zip(traces, out))
    got["spikes"] = s
    loss = torch.zeros((), dtype=torch.float64)
    for wkey, okey in (("R", "spikes"), ("Q", "v")):
        if wkey in d:
            loss = loss + (got[okey].double() * d[wkey].double()).sum()
    for k in ["spikes"] + list(traces):
        if k in d:
            ref = d[k]
            assert got[k].shape == ref.shape, k
            mism = (got[k] != ref).sum().item()
            assert mism == 0, f"{k}: {mism} of {ref.numel()} values differ (bit-exact expected)"
    if "loss" in d:
        assert math.isclose(loss.item(), d["loss"].item(), rel_tol=1e-5, abs_tol=1e-4), "loss formula"
    loss.backward()
    if "grad_input" in d:
        ref = d["grad_input"].double()
        err = (x.grad.double() - ref).abs().max().item()
        assert err <= 1e-5 * max(ref.abs().max().item(), 1e-12) + 1e-9, f"grad_input max err {err}"
    for name in decay_names:
        key = f"grad_{name}"
        if key in d:
            ref = d[key].double().reshape(-1)
            g = getattr(n, name).grad
            g = torch.zeros_like(ref) if g is None else g.double().reshape(-1)
            tol = 1e-4 * max(ref.abs().max().item(), 1.0)
            assert (g - ref).abs().max().item() <= tol, f"{key}: {g.tolist()} vs {ref.tolist()}"


def run_cuba(d):
    from spikefuse.neuron.loihi import cuba

    n = cuba.Neuron(
        current_decay=_decay_arg(d, "current_decay"), voltage_decay=_decay_arg(d, "voltage_decay"), **_common_kwargs(d)
    )
    _run(d, n, ("current_decay", "voltage_decay"), ("i", "v"))


def run_alif(d):
    from spikefuse.neuron.loihi import alif

    n = alif.Neuron(
        threshold_step=_p(d, "threshold_step"),
        current_decay=_decay_arg(d, "current_decay"),
        voltage_decay=_decay_arg(d, "voltage_decay"),
        threshold_decay=_decay_arg(d, "threshold_decay"),
        refractory_decay=_decay_arg(d, "refractory_decay"),
        **_common_kwargs(d),
    )
    _run(
        d, n, ("current_decay", "voltage_decay", "threshold_decay", "refractory_decay"),
        ("i", "v", "threshold", "refractory"),
    )


RUNNERS = {"cuba": run_cuba, "alif": run_alif}

FILES = [p for p in sorted(FIX.glob("*.npz")) if _model_of(p) in RUNNERS]


def test_fixtures_found():
    models = {_model_of(p) for p in FILES}
    assert {"cuba", "alif"} <= models


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_lava_fixture(path):
    d = load_fixture(path)
    RUNNERS[_model_of(path)](d)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_lava_fixture_decay_grad_modes(path):
    """The fixtures' decay gradients are lava's rule; the exact rule is -1/4096 times it."""
    d = load_fixture(path)
    if "grad_current_decay" not in d:
        pytest.skip("fixture has no decay gradients")
    from spikefuse.neuron.loihi import alif, cuba

    grads = {}
    for mode in ("lava", "exact"):
        kw = _common_kwargs(d)
        kw["decay_grad"] = mode
        kw["requires_grad"] = True
        if _model_of(path) == "cuba":
            n = cuba.Neuron(current_decay=_decay_arg(d, "current_decay"), voltage_decay=_decay_arg(d, "voltage_decay"), **kw)
            names = ("current_decay", "voltage_decay")
        else:
            n = alif.Neuron(
                threshold_step=_p(d, "threshold_step"), current_decay=_decay_arg(d, "current_decay"),
                voltage_decay=_decay_arg(d, "voltage_decay"), threshold_decay=_decay_arg(d, "threshold_decay"),
                refractory_decay=_decay_arg(d, "refractory_decay"), **kw,
            )
            names = ("current_decay", "voltage_decay", "threshold_decay", "refractory_decay")
        x = d["input"].clone()
        _set_decays(n, d, names, x)
        names = ("current_decay", "voltage_decay")
        out = n.dynamics(x)
        s = n.spike(*out[1:])
        ((s * d["R"]).sum() + (out[1] * d["Q"]).sum()).backward()
        grads[mode] = torch.cat([getattr(n, k).grad.reshape(-1) for k in names]).double()
    ref = torch.cat([d[f"grad_{k}"].reshape(-1) for k in ("current_decay", "voltage_decay")]).double()
    assert torch.allclose(grads["lava"], ref, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(grads["exact"], ref, rtol=1e-2)
    assert torch.allclose(grads["exact"], -grads["lava"] / 4096, rtol=1e-5, atol=1e-9)
