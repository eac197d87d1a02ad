"""LIF.reset_state's direct instance-dict path (neuron/lif.py) forgets the same state as the
ordinary assignments, and steps aside when a state name is a buffer."""
import torch

from spikefuse.neuron import IF, LIF


def test_reset_state_forgets_the_membrane_and_restarts_from_v_reset():
    x = torch.rand(3, 2, 5) * 2
    for m in (LIF(tau=2.0, step_mode="m", store_v_seq=True), IF(step_mode="m")):
        first = m(x)
        assert m.v is not None
        m.reset_state()
        assert m.v is None and m.v_seq is None and m._stored_v is None and m.last_traces is None
        assert "v" not in m._buffers and "v" in m.__dict__
        assert torch.equal(m(x), first)         # same start as a fresh module


def test_reset_state_with_a_state_buffer_takes_the_module_path():
    m = LIF(tau=2.0)
    del m.v
    m.register_buffer("v", torch.ones(2, 5))
    m.reset_state()
    assert "v" in m._buffers and m._buffers["v"] is None and "v" not in m.__dict__
    out = m(torch.zeros(2, 5))
    assert out.shape == (2, 5)
