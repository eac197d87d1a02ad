"""The converter tables of spikefuse.interop.nir: EXPORTERS (module type -> converter) and
IMPORTERS (NIR node type -> converter). Modules are identified by type along the MRO, refused
types carry their message in the table, and the table is the list of what is supported."""
import re

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikefuse import layers  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, from_nir, to_nir  # noqa: E402
from spikefuse.interop.nir import export as nir_export  # noqa: E402
from spikefuse.interop.nir import import_ as nir_import  # noqa: E402

DT = 1e-3


def test_refused_types_carry_their_message():
    from spikefuse.neuron.cuba import CubaRefractoryLIF
    nir_export.converter_for(nn.Module)  # registers the neuron families
    entry = nir_export.EXPORTERS[CubaRefractoryLIF]
    assert isinstance(entry, nir_export.Refused) and "refractory" in entry.message
    for t in (layers.SpikeCount, layers.MaxOverTime, layers.MeanOverTime, layers.MaxMembrane):
        assert "over time" in nir_export.EXPORTERS[t].message
        with pytest.raises(NIRConversionError, match=rf"model\['1'\]: {t.__name__} reduces over time"):
            to_nir(nn.Sequential(layers.Dense(2, 2), t()), dt=DT)


def test_subclasses_use_their_base_converter():
    """Identification by type: a subclass exports as its base (a class-name test would refuse it)."""
    from spikefuse.neuron.loihi import cuba

    class MyDense(layers.Dense):
        pass

    class MyLoihiCuba(cuba.Neuron):
        pass

    d = MyDense(2, 3)
    g = to_nir(nn.Sequential(d), dt=DT)
    assert type(g.nodes["0"]) is nir.Affine
    np.testing.assert_array_equal(g.nodes["0"].weight, d.weight.detach().numpy())
    base, sub = cuba.Neuron(1.0, 0.5, 0.25), MyLoihiCuba(1.0, 0.5, 0.25)
    with pytest.warns(UserWarning, match="fixed-point"):
        gb = to_nir(nn.Sequential(layers.Dense(2, 3), base), dt=DT, lossy=True)
    with pytest.warns(UserWarning, match="fixed-point"):
        gs = to_nir(nn.Sequential(layers.Dense(2, 3), sub), dt=DT, lossy=True)
    for k in ("tau_syn", "tau_mem", "r", "w_in", "v_threshold"):
        np.testing.assert_array_equal(getattr(gs.nodes["1"], k), getattr(gb.nodes["1"], k))


def test_a_registered_exporter_extends_to_nir():
    class Doubler(nn.Module):
        def forward(self, x):
            return 2 * x

    with pytest.raises(NIRConversionError, match=r"model\['1'\].*Doubler cannot be expressed"):
        to_nir(nn.Sequential(layers.Dense(2, 2), Doubler()), dt=DT)

    @nir_export.exporter(Doubler)
    def _doubler(ex, name, m, shape):
        return ex.add_one(name, nir.Scale(scale=np.full(shape, 2.0, np.float32)), shape)

    try:
        g = to_nir(nn.Sequential(layers.Dense(2, 2), Doubler()), dt=DT)
        np.testing.assert_array_equal(g.nodes["1"].scale, [2.0, 2.0])
        x = torch.rand(3, 1, 2)
        net = nn.Sequential(layers.Dense(2, 2), Doubler())
        assert torch.equal(from_nir(to_nir(net, dt=DT), dt=DT)(x), net(x))
    finally:
        del nir_export.EXPORTERS[Doubler]


def test_identities_export_to_nothing():
    from spikefuse.neuron.loihi.dropout import Dropout as LoihiDropout
    net = nn.Sequential(layers.Dense(2, 3), nn.Dropout(0.5), nn.Identity(), LoihiDropout(0.5), layers.Dense(3, 1))
    g = to_nir(net, dt=DT)
    assert sorted(g.nodes) == ["0", "4", "input", "output"]
    assert set(g.edges) == {("input", "0"), ("0", "4"), ("4", "output")}


def test_importers_are_keyed_by_nir_node_type_and_listed_in_the_error():
    nir_import.importer_for(nir.Affine)  # fills the table
    keys = set(nir_import.IMPORTERS)
    assert all(isinstance(k, type) and issubclass(k, nir.NIRNode) for k in keys)
    assert {nir.Affine, nir.Linear, nir.LIF, nir.IF, nir.LI, nir.I, nir.CubaLIF, nir.CubaLI, nir.Delay} <= keys
    class Unknown:
        pass

    with pytest.raises(NIRConversionError, match="'n': nir.Unknown has no spikefuse equivalent") as e:
        nir_import._Importer(DT, None, True).build("n", Unknown())
    listed = set(re.search(r"supported: (.*)\)", str(e.value)).group(1).replace("nested NIRGraph", "").split(", "))
    listed.discard("")
    named = {k.__name__ for k in keys if k.__name__ != "Identity"}
    assert listed == named
