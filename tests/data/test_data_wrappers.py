"""BatchFirst and the NeuroBench wrapper on tiny models (NeuroBench tests run when it is installed)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikefuse import layers as L
from spikefuse.neuron import LIF, CubaLIF
from spikefuse.wrappers import BatchFirst, membrane_trace, neurobench_model, neuron_types


def _net(neuron):
    torch.manual_seed(0)
    return nn.Sequential(L.Dense(6, 8), neuron, L.Dense(8, 3), L.LeakyIntegrator(2.0), L.MaxOverTime())


def _data(B=10, T=7):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(B, T, 6, generator=g) < 0.4).float() * 2.0, torch.randint(0, 3, (B,), generator=g)


def test_batch_first_equals_time_first():
    net = _net(LIF(tau=2.0))
    x, _ = _data()
    L.reset_states(net)
    ref = net(x.transpose(0, 1))
    L.reset_states(net)
    assert torch.equal(BatchFirst(net)(x), ref)
    seq = nn.Sequential(L.Dense(6, 8), LIF(tau=2.0))
    L.reset_states(seq)
    s_ref = seq(x.transpose(0, 1))
    L.reset_states(seq)
    out = BatchFirst(seq, sequence_output=True)(x)
    assert out.shape == (10, 7, 8) and torch.equal(out, s_ref.transpose(0, 1))


def test_batch_first_errors():
    with pytest.raises(TypeError, match="model"):
        BatchFirst(lambda x: x)
    with pytest.raises(TypeError, match="sequence_output"):
        BatchFirst(nn.Identity(), sequence_output="no")
    with pytest.raises(ValueError, match="x"):
        BatchFirst(nn.Identity())(torch.zeros(3))
    with pytest.raises(TypeError, match="x"):
        BatchFirst(nn.Identity())([1, 2])


def test_membrane_trace_per_family():
    x = torch.rand(5, 2, 4)
    lif = LIF(store_v_seq=True)
    lif(x)
    assert membrane_trace(lif).shape == (5, 2, 4)
    cuba = CubaLIF()
    cuba(x)
    assert membrane_trace(cuba).shape == (5, 2, 4)
    assert membrane_trace(nn.ReLU()) is None
    assert all(isinstance(c, type) and issubclass(c, nn.Module) for c in neuron_types())


@pytest.mark.parametrize("neuron", [lambda: LIF(tau=2.0), lambda: CubaLIF(threshold=0.5, tau_syn=2e-6, tau_mem=2e-6)])
def test_neurobench_benchmark_matches_direct_accuracy(neuron):
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, MembraneUpdates

    net = _net(neuron())
    x, y = _data()
    L.reset_states(net)
    with torch.no_grad():
        direct = (net(x.transpose(0, 1)).argmax(-1) == y).float().mean().item()
        L.reset_states(net)
        old = getattr(net[1], "store_v_seq", None)
        if old is not None:
            net[1].store_v_seq = True
        spikes = net[1](net[0](x.transpose(0, 1)))
        v = membrane_trace(net[1])
    if old is not None:
        net[1].store_v_seq = old
    loader = DataLoader(TensorDataset(x, y), batch_size=10)  # NeuroBench batches (B, T, F)
    model = neurobench_model(net)
    assert [d["layer"] for d in model.activation_layers()] == [net[1]]
    bench = Benchmark(model, loader, [], [lambda logits: logits.argmax(-1)],
                      [[ParameterCount], [ClassificationAccuracy, ActivationSparsity, MembraneUpdates]])
    res = bench.run(quiet=True)
    assert res["ClassificationAccuracy"] == pytest.approx(direct)
    assert res["ParameterCount"] == sum(p.numel() for p in net.parameters())
    assert res["ActivationSparsity"] == pytest.approx(1 - spikes.mean().item())
    # snnTorch-style count: every neuron at the first step, then the membranes that changed
    updates = v[0].numel() + sum(int(torch.count_nonzero(v[t] - v[t - 1])) for t in range(1, v.shape[0]))
    assert res["MembraneUpdates"] == pytest.approx(updates / 10) and updates > v[0].numel()
    model.cleanup_hooks()
    assert getattr(net[1], "store_v_seq", None) == old  # restored
