"""Issue 10 item 6: three small faithfulness defects found by comparing with the peers."""
import torch

from spikefuse import surrogate as sg
from spikefuse.functional.lif import LIFParams, lif_multistep
from spikefuse.neuron.lif import ParametricLIF


def _sj_plif(x, w, decay_input=True):
    """SpikingJelly's ParametricLIF charge (torch reference): ``* w.sigmoid()``, hard reset 0."""
    v, out = torch.zeros_like(x[0]), []
    k = w.sigmoid()
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - 0.0)) * k if decay_input else v - (v - 0.0) * k + x[t]
        s = sg.ATan(2.0)(h - 1.0)
        v = s * 0.0 + (1.0 - s) * h
        out.append(s)
    return torch.stack(out), v


def test_parametric_lif_multiplies_by_sigmoid_w_bit_identically():
    """(b) ``1 / (1/sigmoid(w))`` is not ``sigmoid(w)``: dividing gave 1-ulp differences."""
    torch.manual_seed(0)
    x = torch.rand(40, 8, 64) * 1.2
    for init_tau in (3.0, 1.7, 7.5):
        m = ParametricLIF(init_tau=init_tau, store_v_seq=True)
        s = m(x)
        s_ref, v_ref = _sj_plif(x, m.w.detach())
        assert torch.equal(s, s_ref) and torch.equal(m.v, v_ref), init_tau
    # the divide form differs from the peer on this input (so the check above can fail)
    w = torch.tensor(-torch.log(torch.tensor(2.0)).item())
    _, st = lif_multistep(x, LIFParams(tau=1.0 / torch.sigmoid(w)), backend="reference")
    _, v_ref = _sj_plif(x, w)
    assert not torch.equal(st.v, v_ref)
