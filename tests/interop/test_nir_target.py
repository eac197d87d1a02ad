"""to_nir(target=...): a warning when the export dt is not the dt that the target peer's NIR
importer assumes (snnTorch: fixed 1e-4; SpikingJelly: import_from_nir(graph, dt=1e-4); norse:
from_nir(graph, dt=1e-3)), and a NIRConversionError naming the node the peer cannot run."""
import warnings

import pytest
import torch
from torch import nn

pytest.importorskip("nir")

from spikefuse import layers  # noqa: E402
from spikefuse.interop.nir import from_nir, to_nir  # noqa: E402
from spikefuse.interop.nir.export import PEER_IMPORT_DT  # noqa: E402
from spikefuse.neuron.lif import LIF  # noqa: E402


def _net():
    return nn.Sequential(layers.Dense(3, 4), LIF(tau=2.0))


@pytest.mark.parametrize("target", ["snntorch", "spikingjelly"])
def test_warns_when_dt_is_not_the_peer_default(target):
    assert PEER_IMPORT_DT[target] == 1e-4
    with pytest.warns(UserWarning, match=rf"dt=0.001 s.*{target}.*dt=0.0001.*dt=0.001\).*10x") as rec:
        g = to_nir(_net(), dt=1e-3, target=target)
    assert len(rec) == 1 and rec[0].filename == __file__
    # the graph itself is the one written without a target
    plain = to_nir(_net(), dt=1e-3)
    assert set(g.nodes) == set(plain.nodes) and set(g.edges) == set(plain.edges)


def test_no_warning_at_the_peer_dt_or_without_target():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_nir(_net(), dt=1e-4, target="snntorch")
        to_nir(_net(), dt=1e-3)
        to_nir(_net(), dt=1e-3, target=None)


def test_the_warning_is_about_a_real_difference():
    """The same graph imported at the peer's default dt runs other neurons: the decay per step
    differs by the dt ratio, so the outputs differ."""
    net = _net()
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].bias.zero_()
    g = to_nir(net, dt=1e-3)
    x = torch.rand(20, 2, 3) * 2
    y = net(x)
    assert y.sum() > 0
    assert torch.equal(from_nir(g, dt=1e-3)(x), y)
    assert not torch.equal(from_nir(g, dt=1e-4, use_metadata=False)(x), from_nir(g, dt=1e-3, use_metadata=False)(x))


def test_bad_target():
    with pytest.raises(ValueError, match=r"target: expected None or one of \['norse', 'sinabs', 'snntorch', "
                                         r"'spikingjelly'\]"):
        to_nir(_net(), dt=1e-3, target="lava")
    with pytest.raises(TypeError, match="target"):
        to_nir(_net(), dt=1e-3, target=1)
