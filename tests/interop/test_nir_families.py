"""The family registry (spikefuse.families) and the NIR exporter agree: a family whose record
names a NIR node exports to that node (Loihi CUBA only with lossy=True), and a family recorded
as refused maps to a Refused entry of EXPORTERS whose message carries the record's nir_note."""
import warnings

import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikefuse import families, layers  # noqa: E402
from spikefuse.interop.nir import NIRConversionError, to_nir  # noqa: E402
from spikefuse.interop.nir import _export_neurons, export as nir_export  # noqa: E402

N = 4


def _neuron_node(graph):
    """The exported node of the family's neuron (the one that is not the Dense in front, nor the
    one-step Delay that carries hxtorch's synaptic delay)."""
    kinds = {k: v for k, v in graph.nodes.items() if not isinstance(v, (nir.Input, nir.Output, nir.Delay))}
    neurons = [v for k, v in kinds.items() if k not in ("0",) and not k.endswith(".synapse")
               and not isinstance(v, (nir.Linear, nir.Affine))]  # e.g. the norse recurrent LIF's input/recurrent
    assert len(neurons) == 1, sorted(kinds)
    return neurons[0]


def _export(f, m):
    if isinstance(m, nn.Linear) or hasattr(m, "in_features"):  # EventPropLIF carries its synapse
        net = nn.Sequential(m)
    else:
        net = nn.Sequential(layers.Dense(N, N), m)
    dt = float(getattr(m, "dt", 1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the lossy Loihi export warns; checked in test_nir.py
        return to_nir(net, dt=dt, input_shape=(N,), lossy=True)


@pytest.mark.parametrize("fid", families.ids())
def test_family_record_matches_the_exporter(fid):
    f = families.get(fid)
    entry = nir_export.converter_for(families.load(f.module))
    assert entry is not None
    if f.nir is None:
        assert isinstance(entry, nir_export.Refused)
        assert f.nir_note and f.nir_note in entry.message
        if f.bench is not None:
            with pytest.raises(NIRConversionError, match="cannot be expressed"):
                _export(f, families.load(f.bench.module)("reference", N))
        return
    assert not isinstance(entry, nir_export.Refused)
    if f.bench is not None:
        node = _neuron_node(_export(f, families.load(f.bench.module)("reference", N)))
        assert type(node).__name__ == f.nir
