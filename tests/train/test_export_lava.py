"""``spikefuse export RUN --lava FILE.net``: lava-dl netx HDF5 of a loihi.cuba run."""
import sys

import numpy as np
import pytest

import spikefuse
from spikefuse.cli import main
from spikefuse.fixed_point import quantize_8bit
from spikefuse.train import TrainConfig, train

h5py = pytest.importorskip("h5py")


def _run(root, name, **kw):
    out = root / name
    train(TrainConfig(epochs=1, max_samples=48, hidden=8, batch_size=16, T=4, out=str(out),
                      plots=False, **kw), progress=False, verbose=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lava")
    return {"loihi": _run(root, "loihi", neuron="loihi-cuba", layers=2),
            "count": _run(root, "count", neuron="loihi.cuba", readout="count"),
            "lif": _run(root, "lif", neuron="lif")}


def _check_layer(g, dense, neuron):
    assert g["type"][()].tolist() == [b"dense"]
    assert g["shape"][()].tolist() == [dense.out_features]
    assert int(g["inFeatures"][()]) == dense.in_features
    assert int(g["outFeatures"][()]) == dense.out_features
    w = g["weight"][()]
    # the integer mantissas: the model's (8-bit quantised) weight times w_scale
    expect = (dense.effective_weight().detach() * neuron.scale).numpy()
    assert w.dtype.kind == "i" and w.shape == tuple(dense.weight.shape)
    np.testing.assert_array_equal(w, np.rint(expect))
    assert np.all(w % 2 == 0) and w.min() >= -256 and w.max() <= 254
    ref = quantize_8bit(dense.weight.detach(), neuron.scale, descale=True).numpy()
    np.testing.assert_array_equal(w, ref)
    np.testing.assert_array_equal(g["bias"][()], np.rint(dense.bias.detach().numpy() * neuron.scale))
    params = neuron.device_params
    assert set(g["neuron"].keys()) == set(params)
    assert g["neuron/type"][()] == b"CUBA"
    for key in ("iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"):
        np.testing.assert_array_equal(g["neuron"][key][()], params[key])


def test_hidden_layers_and_readout_outside(runs, tmp_path, capsys):
    f = tmp_path / "m.net"
    assert main(["export", str(runs["loihi"]), "--lava", str(f)]) == 0
    assert "wrote" in capsys.readouterr().out
    model, cfg = spikefuse.load_run(runs["loihi"])
    with h5py.File(f, "r") as h:
        assert sorted(h.keys()) == ["layer", "readout"]
        assert sorted(h["layer"].keys()) == ["0", "1"]
        for i, blk in enumerate(model.hidden):
            _check_layer(h["layer"][str(i)], blk.synapse, blk.neuron)
        r = h["readout"]
        w = r["weight"][()]
        assert w.shape == (3, 8) and "neuron" not in r and float(r["tau"][()]) == cfg.tau
        scale = model.hidden[-1].neuron.scale
        np.testing.assert_array_equal(w, np.rint(model.output.effective_weight().detach().numpy() * scale))
    # the exported decays are the configured ones (1/tau of 4096), not just self-consistent
    assert model.hidden[0].neuron.device_params["iDecay"] == round(4096 / cfg.tau)


def test_count_readout_is_the_last_layer(runs, tmp_path):
    f = tmp_path / "c.net"
    assert main(["export", str(runs["count"]), "--lava", str(f)]) == 0
    model, _ = spikefuse.load_run(runs["count"])
    with h5py.File(f, "r") as h:
        assert list(h.keys()) == ["layer"] and sorted(h["layer"].keys()) == ["0", "1"]
        _check_layer(h["layer"]["1"], model.output, model.integrator)


def test_refusals_are_one_line(runs, tmp_path, capsys, monkeypatch):
    f = tmp_path / "x.net"
    assert main(["export", str(runs["lif"]), "--lava", str(f)]) == 2
    err = capsys.readouterr().err
    assert "loihi.cuba" in err and "'lif'" in err and len(err.strip().splitlines()) == 1
    assert not f.exists()
    assert main(["export", str(runs["loihi"]), "--lava", str(f), "--dt", "1e-3"]) == 2
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert main(["export", str(runs["loihi"]), "--lava", str(f)]) == 1
    assert 'pip install -e ".[data]"' in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --nir and --lava exclude each other
        main(["export", str(runs["loihi"]), "--lava", str(f), "--nir", str(f)])
    capsys.readouterr()
