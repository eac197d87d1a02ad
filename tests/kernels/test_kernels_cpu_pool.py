"""The glue of every non-LIF CPU kernel family takes its large outputs, traces, saved tensors and
gradients from the recycling pool of kernels/cpu/jit.py (``jit.empty``), whose buffers hold
whatever an earlier call left there. A buffer the kernel does not write in full would leak that
garbage into the results: here the pool is first filled with NaN (fp32) and 0x7f (int8) buffers,
then each family runs forward and backward (traces on, learnable parameters where the family
has them; the spikes' gradient broadcast over time, the others dense), and every output and
gradient must equal, bit for bit, the same call with the pool off (``POOL_BYTES = 0``: fresh
``torch.empty`` buffers, the glue as it was before the pool)."""
import pytest
import torch

from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

#: (T, B, N): T * B * N = 2**20 elements, so every (T, M) buffer (fp32 and int8) is pooled
T, B, N = 32, 2, 16384


def _leaves(dct):
    return {k: v.detach().clone().requires_grad_() for k, v in dct.items()}


def _flat(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _flat(o)]
    return []


def _case(name):
    """``(run(leaves) -> outputs, leaves)`` of family ``name`` on the CPU backend."""
    from spikefuse.functional import loihi as L
    from spikefuse.functional import norse as NO
    from spikefuse.functional import resonator as R
    from spikefuse.functional import sigma_delta as SD
    from spikefuse.functional import sinabs as SI
    from spikefuse.functional import snntorch as ST

    g = torch.Generator().manual_seed(11)
    x = torch.randn(T, B, N, generator=g) * 0.8 + 0.6
    beta = torch.rand(N, generator=g) * 0.5 + 0.4
    if name == "snntorch.leaky":
        return (lambda lv: ST.leaky_multistep(lv["x"], ST.LeakyParams(beta=lv["beta"]), backend="cpu",
                                              return_traces=True)), dict(x=x, beta=beta)
    if name == "snntorch.synaptic":
        return (lambda lv: ST.synaptic_multistep(lv["x"], ST.SynapticParams(alpha=0.6, beta=lv["beta"]),
                                                 backend="cpu", return_traces=True)), dict(x=x * 0.5, beta=beta)
    if name in ("norse.lif", "norse.lif_refrac", "norse.lif_adex"):
        f = getattr(NO, "norse_" + name.split(".")[1] + "_multistep")
        return (lambda lv: f(lv["x"] * 4, backend="cpu", return_traces=True)), dict(x=x)
    if name == "sinabs.lif":
        return (lambda lv: SI.sinabs_multistep(lv["x"] * 2, SI.SinabsParams(alpha_mem=0.6, alpha_syn=0.6),
                                               backend="cpu", return_traces=True)), dict(x=x)
    if name in ("loihi.cuba", "loihi.alif"):
        du = torch.rand(N, generator=g) * 3000 + 500          # learnable: the (T, M) decay-term buffers
        dv = torch.tensor(1024.3)
        if name == "loihi.alif":
            mk = (lambda lv: L.AlifParams(1.0, 0.5, lv["du"], lv["dv"], 1024.0, 2048.0))
            f = L.alif_multistep
        else:
            mk, f = (lambda lv: L.CubaParams(1.0, lv["du"], lv["dv"])), L.cuba_multistep
        return (lambda lv: f(lv["x"], mk(lv), backend="cpu", return_traces=True)), dict(x=x, du=du, dv=dv)
    if name.startswith("loihi.") and "rf" in name:
        model = name.split(".")[1]
        if model.startswith("adrf"):
            p = R.AdRFParams(2607.0, 2607.0, 1024.0, 2048.0, threshold=0.5, threshold_step=0.25)
        else:
            p = R.RFParams(2607.0, 2607.0, threshold=0.5)
        f = getattr(R, f"{model}_multistep")
        xi = torch.randn(T, B, N, generator=g) * 0.8
        return (lambda lv: f((lv["x"], lv["xi"]), p, backend="cpu", return_traces=True)), dict(x=x, xi=xi)
    if name == "loihi.sigma_delta":
        th = torch.rand(N, generator=g) * 0.1 + 0.05
        return (lambda lv: SD.sigma_delta_multistep(
            lv["x"] * 0.3, SD.SigmaDeltaParams(threshold=lv["th"], activation=torch.relu), backend="cpu",
            return_traces=True)), dict(x=x, th=th)
    raise KeyError(name)


FAMILIES = ["snntorch.leaky", "snntorch.synaptic", "norse.lif", "norse.lif_refrac", "norse.lif_adex",
            "sinabs.lif", "loihi.cuba", "loihi.alif", "loihi.rf", "loihi.rf_iz", "loihi.adrf", "loihi.adrf_iz",
            "loihi.sigma_delta"]


def _poison():
    """Fills the pool with free garbage buffers of every (T, M) size the glue asks for; returns
    their data pointers."""
    held = []
    for _ in range(12):
        held.append(jit.empty((T, B * N)).fill_(float("nan")))
    for _ in range(3):
        held.append(jit.empty((T, B * N), torch.int8).fill_(0x7F))
    return {h.data_ptr() for h in held}


def _run(name):
    run, leaves = _case(name)
    lv = _leaves(leaves)
    outs = [t for t in _flat(run(lv)) if t.is_floating_point()]
    g = torch.Generator().manual_seed(12)
    # the spikes' gradient broadcast over time (of .sum(): passed as one row, or materialised by
    # jit.np32 into a pooled buffer), the others dense and random
    loss = outs[0].float().sum() * 0.5
    loss = loss + sum((t.float() * torch.randn(t.shape, generator=g)).sum() for t in outs[1:] if t.requires_grad)
    grads = torch.autograd.grad(loss, list(lv.values()), allow_unused=True)
    return [t.detach() for t in outs], list(grads)


@pytest.mark.parametrize("name", FAMILIES)
def test_pooled_buffers_are_written_in_full(name, monkeypatch):
    monkeypatch.setattr(jit, "POOL_BYTES", 256 * 2**20)
    jit.release_pool()
    ptrs = _poison()
    outs, grads = _run(name)
    used = {t.data_ptr() for t in outs + [g for g in grads if g is not None]}
    assert used & ptrs, "no output came from the pool"
    del used
    monkeypatch.setattr(jit, "POOL_BYTES", 0)
    ref_outs, ref_grads = _run(name)
    jit.release_pool()
    assert len(outs) == len(ref_outs)
    for k, (a, b) in enumerate(zip(outs, ref_outs)):
        assert torch.equal(a, b), (name, "output", k)
    for k, (a, b) in enumerate(zip(grads, ref_grads)):
        assert (a is None) == (b is None), (name, "grad", k)
        if a is not None:
            assert torch.equal(a, b), (name, "grad", k, (a - b).abs().max())
