"""Peer libraries for benchmarks/neurons.py, each written the way its own documentation and
tutorials write it (the source is named above each builder). Optional: every builder imports its
library inside, and a missing or failing peer becomes an explicit ``not run: <reason>`` row.

Two tables use them:

- the neuron alone (``LIF_PEERS``): ``build(device) -> run(x)`` with ``x`` a ``(T, B, N)``
  input current, returning the ``(T, B, N)`` spikes. Parameters are the peers' closest match to
  spikefuse's ``LIF(tau=2)`` (decay_input, V_th = 1, hard reset to 0); surrogates and the
  threshold comparison differ, so compare times, not spikes.
- the Open Neuromorphic setup (``ON_PEERS``): ``build(n, device, mode) -> (run(x), module)``
  for ``Linear(n, n)`` + LIF, ``mode`` either ``"published"`` (as the Open Neuromorphic
  benchmark script wrote each library, including its per-library neuron parameters) or
  ``"per-step"`` (one Linear call and one neuron call per time step for every library).
"""
from __future__ import annotations

import os

import torch

# --------------------------------------------------------------------------- the neuron alone


def spikingjelly(device):
    # SpikingJelly 2.0 (spikingjelly/activation_based/neuron/lif.py, LIFNode docstring, and the
    # "basic concept / step mode" tutorial): a multi-step node, step_mode="m", reset with
    # functional.reset_net. 2.0 has no backend= argument: the device picks the implementation
    # (CPU: its registered CPU op; CUDA: SJ_LIF_CUDA_IMPLEMENTATION=auto|cuda|triton|torch).
    from spikingjelly.activation_based import functional, neuron, surrogate

    node = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m").to(device)

    def run(x):
        functional.reset_net(node)
        return node(x)

    return run


def spikingjelly_label(device) -> str:
    if torch.device(device).type != "cuda":
        return "spikingjelly"
    return f"spikingjelly ({os.environ.get('SJ_LIF_CUDA_IMPLEMENTATION', 'auto')})"


def snntorch(device):
    # snnTorch 1.0 tutorials 3 and 5 (https://snntorch.readthedocs.io/en/latest/tutorials/):
    # mem = lif.init_leaky(), then a Python loop over the time steps, spk, mem = lif(cur, mem),
    # spikes recorded and stacked. The loop iterates the tensor (``for x_t in x``); indexing
    # ``x[t]`` instead makes autograd's backward O(T^2) (one zero-filled (T, B, N) gradient per
    # step). beta = 0.5 with the input scaled by 1 - beta = spikefuse's tau = 2, decay_input.
    import snntorch as snn

    beta = 0.5
    lif = snn.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero").to(device)

    def run(x):
        mem = lif.init_leaky()
        spk_rec = []
        for x_t in x * (1 - beta):
            spk, mem = lif(x_t, mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    return run


def _t(v, device):
    return torch.tensor(v, device=device)


def norse_lifbox(device):
    # Norse 1.1 (norse/torch/module/lif_box.py, LIFBoxCell; the cell loop of Norse's
    # "introduction to spiking systems" tutorial): a cell called once per step with its state.
    # LIFBox is the current-free LIF: dt * tau_mem_inv = 0.5 is tau = 2 with decay_input.
    from norse.torch import LIFBoxCell, LIFBoxParameters

    p = LIFBoxParameters(tau_mem_inv=_t(500.0, device), v_leak=_t(0.0, device), v_th=_t(1.0, device),
                         v_reset=_t(0.0, device), alpha=_t(100.0, device))
    cell = LIFBoxCell(p, dt=1e-3).to(device)

    def run(x):
        state, out = None, []
        for x_t in x:
            z, state = cell(x_t, state)
            out.append(z)
        return torch.stack(out)

    return run


def _norse_lif_module(device):
    # Norse 1.1 norse.torch.LIF (module/lif.py): the documented multi-step module, (T, B, N) in,
    # (spikes, state) out. It is Norse's current-based LIF (a synaptic current state besides
    # the membrane), i.e. one more state than spikefuse's LIF: same sizes, not the same model.
    from norse.torch import LIF, LIFParameters

    return LIF(p=LIFParameters(tau_syn_inv=_t(200.0, device), tau_mem_inv=_t(500.0, device),
                               v_leak=_t(0.0, device), v_th=_t(1.0, device), v_reset=_t(0.0, device),
                               alpha=_t(100.0, device))).to(device)


def norse_lif(device):
    mod = _norse_lif_module(device)
    return lambda x: mod(x)[0]


def norse_lif_compiled(device):
    mod = _norse_lif_module(device)
    return torch.compile(lambda x: mod(x)[0])


#: name -> builder; every one gives a row (timed, or "not run: <reason>")
LIF_PEERS = {
    "spikingjelly": spikingjelly,
    "snntorch": snntorch,
    "norse-lifbox": norse_lifbox,
    "norse-lif": norse_lif,
    "norse-lif+compile": norse_lif_compiled,
}

# --------------------------------------------------------------------------- the peer families
# Each spikefuse peer family (functional/snntorch.py, functional/norse.py, functional/sinabs.py)
# against its own library, with the parameters of the family's benchmark case
# (spikefuse.families ``_case_*``): the same model, so the times compare like for like.


def snntorch_leaky(device):
    # snnTorch 1.0 tutorial 3: mem = lif.init_leaky(); for each step spk, mem = lif(x_t, mem).
    import snntorch as snn

    lif = snn.Leaky(beta=0.5).to(device)

    def run(x):
        mem, out = lif.init_leaky(), []
        for x_t in x:
            spk, mem = lif(x_t, mem)
            out.append(spk)
        return torch.stack(out)

    return run


def snntorch_synaptic(device):
    # snnTorch 1.0 tutorial 5 / Synaptic docstring: syn, mem = lif.init_synaptic(); per step
    # spk, syn, mem = lif(x_t, syn, mem).
    import snntorch as snn

    lif = snn.Synaptic(alpha=0.5, beta=0.5).to(device)

    def run(x):
        syn, mem = lif.init_synaptic()
        out = []
        for x_t in x:
            spk, syn, mem = lif(x_t, syn, mem)
            out.append(spk)
        return torch.stack(out)

    return run


def norse_lif_default(device):
    # Norse 1.1 norse.torch.LIF with its default LIFParameters and dt (spikefuse's NorseLIFParams()).
    from norse.torch import LIF

    mod = LIF().to(device)
    return lambda x: mod(x)[0]


def sinabs_lif(device):
    # sinabs 3 sinabs.layers.LIF (batch-first (B, T, N) input): tau_mem = tau_syn = 2 steps,
    # MultiSpike and norm_input (spikefuse's sinabs.lif case: alpha = exp(-1/2), spike_fn "multi").
    import sinabs.layers as sl
    from sinabs.activation import MultiSpike

    lif = sl.LIF(tau_mem=2.0, tau_syn=2.0, spike_fn=MultiSpike).to(device)

    def run(x):
        lif.reset_states()
        return lif(x.transpose(0, 1)).transpose(0, 1)

    return run


#: family id -> {row label: builder} for the non-LIF families (LIF uses LIF_PEERS)
FAMILY_PEERS = {
    "snntorch.leaky": {"snntorch Leaky": snntorch_leaky},
    "snntorch.synaptic": {"snntorch Synaptic": snntorch_synaptic},
    "norse.lif": {"norse LIF": norse_lif_default},
    "sinabs.lif": {"sinabs LIF": sinabs_lif},
}

# --------------------------------------------------------------------------- Open Neuromorphic
# Published setup: open-neuromorphic/open-neuromorphic.github.io, the SNN library benchmark
# script of the blog post "Spiking Neural Network (SNN) Library Benchmarks" (2023-08-02):
# Linear(n, n) + LIF, input randn(T=500, B=16, n), loss = output.sum(), forward + backward.


def on_snntorch(n, device, mode):
    # published: Leaky(beta=0.95), mem = init_leaky(), per step cur = fc(x_t); spk, mem = lif(cur, mem).
    # That is already one call per time step, so both modes are the same code.
    import snntorch as snn

    fc = torch.nn.Linear(n, n).to(device)
    lif = snn.Leaky(beta=0.95).to(device)

    def run(x):
        mem, out = lif.init_leaky(), []
        for x_t in x:
            spk, mem = lif(fc(x_t), mem)
            out.append(spk)
        return torch.stack(out)

    return run, fc


def on_norse(n, device, mode):
    # published: SequentialState(nn.Linear(n, n), LIF()) on the whole (T, B, n) sequence (the
    # Linear folds time into the batch). per-step: nn.Linear + LIFCell() called once per step.
    import norse.torch as nt

    fc = torch.nn.Linear(n, n).to(device)
    if mode == "published":
        model = nt.SequentialState(fc, nt.LIF()).to(device)
        return (lambda x: model(x)[0]), fc
    cell = nt.LIFCell().to(device)

    def run(x):
        state, out = None, []
        for x_t in x:
            z, state = cell(fc(x_t), state)
            out.append(z)
        return torch.stack(out)

    return run, fc


def on_spikingjelly(n, device, mode):
    # published: nn.Sequential(layer.Linear(n, n), LIFNode(tau=5.0, surrogate=ATan(),
    # step_mode="m")), functional.reset_net before each call, the whole sequence at once.
    # per-step: the same layers with step_mode="s", called once per time step.
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    step_mode = "m" if mode == "published" else "s"
    fc = layer.Linear(n, n)  # the published script's default step_mode="s": one call on (T, B, n)
    model = torch.nn.Sequential(fc, neuron.LIFNode(tau=5.0, surrogate_function=surrogate.ATan(),
                                                   step_mode=step_mode)).to(device)

    def run(x):
        functional.reset_net(model)
        if mode == "published":
            return model(x)
        return torch.stack([model(x_t) for x_t in x])

    return run, fc


ON_PEERS = {"snntorch": on_snntorch, "norse": on_norse, "spikingjelly": on_spikingjelly}
