"""Shared cases of the fused Loihi CUBA / ALIF kernel tests (Triton: test_kernels_loihi.py, CPU:
test_kernels_cpu_loihi.py): the backend-vs-reference check, the SPEC 17 L1 / L2 vectors and the
lava-dl fixtures, each for a given backend."""
import torch

import test_fixtures_lava as lava_fix
from equivalence import check_backend, scaled_tol
from load_fixture import load_fixture
from spikefuse.functional import loihi as L

T, B, C = 9, 3, 37


def _params(alif, graded, decay_grad, tensor, scale=64):
    g = torch.Generator().manual_seed(5)
    if tensor:  # per-channel current decay, shared voltage decay, both learnable
        du = (torch.rand(C, generator=g) * 3000 + 500).requires_grad_()
        dv = torch.tensor(1024.3).requires_grad_()
        dr = torch.rand(C, generator=g) * 4096
    else:
        du, dv, dr = 2048.0, 1024.0, 2048.0
    if alif:
        p = L.AlifParams(1.0, 0.5, du, dv, 1024.0, dr, graded_spike=graded, decay_grad=decay_grad, scale=scale)
    else:
        p = L.CubaParams(1.0, du, dv, graded_spike=graded, decay_grad=decay_grad, scale=scale)
    return p, ([du, dv] if tensor else [])


def check(backend, alif, graded, decay_grad, tensor, dtype=torch.float32, scale=0.8, state=None, shape=None,
          prep=None, scale_param=64, grad_exact=False):
    """tests/equivalence.check_backend of ``backend``: every output, state and trace
    bit-identical, the same outputs differentiable, gradients w.r.t. x and the learnable decays
    close (``grad_exact`` and fp32: equal, a zero tolerance; the CPU kernels' surrogate exps are
    torch.exp's). ``shape`` (default ``(T, B, C)``; C channels); ``prep(x)`` maps the input leaf
    before the call (e.g. to a non-contiguous view); ``scale_param`` the params' ``scale`` (w_scale)."""
    g = torch.Generator().manual_seed(0)
    x = ((torch.randn(shape or (T, B, C), generator=g) * 0.8 + 0.4) * scale).to(dtype)
    p, decays = _params(alif, graded, decay_grad, tensor, scale_param)
    leaves = dict(x=x, **dict(zip(("current_decay", "voltage_decay"), decays)))
    f = L.alif_multistep if alif else L.cuba_multistep

    def run(backend, lv):
        pp = p._replace(**{k: v for k, v in lv.items() if k != "x"})
        xx = lv["x"] if prep is None else prep(lv["x"])
        s, st, tr = f(xx, pp, state=state, backend=backend, return_traces=True)
        return [s] + list(st) + list(tr)

    tol = (0.0 if grad_exact else 1e-5) if dtype == torch.float32 else 2e-2
    outs_r, _ = check_backend(run, leaves, backend, exact="all", differentiable_only=True, seed=1,
                              grad_dtype=torch.float32, grad_tol=scaled_tol(tol))
    assert 0 < (outs_r[0] != 0).sum() < outs_r[0].numel()


def spec_l1_cuba_vector(backend):
    p = L.CubaParams(threshold=1.0, current_decay=2048.0, voltage_decay=1024.0)
    x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(5, 1, 1).requires_grad_()
    s, st, tr = L.cuba_multistep(x, p, backend=backend, return_traces=True)
    assert (tr.current.flatten() * 4096).tolist() == [2048, 3072, 1536, 1792, 896]
    assert (tr.voltage.flatten() * 4096).tolist() == [2048, 4608, 1536, 2944, 3104]
    assert s.flatten().tolist() == [0, 1, 0, 0, 0]
    (gx,) = torch.autograd.grad(s[1].sum(), [x])
    torch.testing.assert_close(gx.flatten()[:2], torch.tensor([6.2421930e-4, 4.9937546e-4]), rtol=1e-5, atol=0)
    assert gx.flatten()[2:].abs().sum() == 0
    pg = p._replace(graded_spike=True)
    assert L.cuba_multistep(x, pg, backend=backend)[0].flatten().tolist() == [0, 1.125, 0, 0, 0]
    # edge: v == theta exactly does not spike (strict via +0.01 LSB)
    pe = L.CubaParams(threshold=1.0, current_decay=4096.0, voltage_decay=4096.0)  # lava "decay 1.0"
    xe = torch.zeros(3, 1, 1)
    xe[0] = 1.0
    s, _, tr = L.cuba_multistep(xe, pe, backend=backend, return_traces=True)
    assert tr.voltage[0].item() * 4096 == 4096 and s.sum() == 0


def spec_l2_alif_vector(backend):
    p = L.AlifParams(1.0, 0.5, 4096.0, 2048.0, 1024.0, 2048.0)  # lava decays 1.0, .5, .25, .5
    x = torch.tensor([1.5, 0.5, 0.5, 1.0, 1.5, 0.0]).reshape(6, 1, 1)
    s, st, tr = L.alif_multistep(x, p, backend=backend, return_traces=True)
    assert (tr.voltage.flatten() * 4096).tolist() == [6144, 5120, 4608, 6400, 9344, 4672]
    assert (tr.threshold.flatten() * 4096).tolist() == [4096, 5632, 5248, 4960, 6280, 5734]
    assert (tr.refractory.flatten() * 4096).tolist() == [0, 4096, 2048, 1024, 5472, 2736]
    assert s.flatten().tolist() == [1, 0, 0, 1, 0, 0]
    assert [round(f.item() * 4096) for f in (st.voltage, st.threshold, st.refractory)] == [4672, 5734, 2736]


def check_lava_fixture(path, backend):
    """``backend``'s kernels on lava-dl's own outputs (tests/fixtures/lava_dl), with lava's decay
    gradient rule: bit-exact traces and spikes, grad_input and decay gradients."""
    from spikefuse.neuron.loihi import alif, cuba

    d = load_fixture(path)
    model = lava_fix._model_of(path)
    kw = lava_fix._common_kwargs(d)
    dec = lambda n: lava_fix._decay_arg(d, n)  # noqa: E731
    if model == "cuba":
        n = cuba.Neuron(current_decay=dec("current_decay"), voltage_decay=dec("voltage_decay"), **kw)
        names, f = ("current_decay", "voltage_decay"), L.cuba_multistep
    else:
        n = alif.Neuron(threshold_step=lava_fix._p(d, "threshold_step"), current_decay=dec("current_decay"),
                        voltage_decay=dec("voltage_decay"), threshold_decay=dec("threshold_decay"),
                        refractory_decay=dec("refractory_decay"), **kw)
        names, f = ("current_decay", "voltage_decay", "threshold_decay", "refractory_decay"), L.alif_multistep
    x = d["input"].clone().requires_grad_(True)
    lava_fix._set_decays(n, d, names, x)
    s, st, tr = f(x, n.params(), backend=backend, return_traces=True)
    assert torch.equal(s, d["spikes"])
    assert torch.equal(tr.voltage, d["v"]) and torch.equal(tr.current, d["i"])
    if model == "alif":
        assert torch.equal(tr.threshold, d["threshold"]) and torch.equal(tr.refractory, d["refractory"])
    loss = (s.double() * d["R"].double()).sum() + (tr.voltage.double() * d["Q"].double()).sum()
    assert abs(loss.item() - d["loss"].item()) <= 1e-5 * abs(d["loss"].item()) + 1e-4
    loss.backward()
    ref = d["grad_input"].double()
    assert (x.grad.double() - ref).abs().max().item() <= 1e-5 * ref.abs().max().item() + 1e-9
    for name in ("current_decay", "voltage_decay"):
        if f"grad_{name}" in d:
            g = getattr(n, name).grad
            assert g is not None, name
            ref = d[f"grad_{name}"].double().reshape(-1)
            assert (g.double().reshape(-1) - ref).abs().max().item() <= 1e-4 * max(ref.abs().max().item(), 1.0)
