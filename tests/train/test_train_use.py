"""Using a trained run: load_run, spikefuse eval / export / plot."""
import json

import pytest
import torch

import spikefuse
from spikefuse.cli import main
from spikefuse.train import CheckpointError, TrainConfig, train
from spikefuse.train.data import load_data
from spikefuse.train.loop import evaluate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("use") / "run"
    res = train(TrainConfig(epochs=2, max_samples=96, hidden=16, batch_size=16, T=6, out=str(out),
                            plots=True), progress=False, verbose=False)
    return out, res


def test_load_run_reproduces_the_runs_test_accuracy(run):
    out, res = run
    for path in (out, out / "checkpoint.safetensors"):
        model, cfg = spikefuse.load_run(path)
        assert not model.training and cfg.hidden == 16 and cfg.epochs == 2
        _, _, test_s, _ = load_data(cfg)
        loss, acc, _ = evaluate(model, test_s, cfg, torch.device("cpu"))
        assert acc == res["test_acc"] and loss == pytest.approx(res["test_loss"], rel=1e-6)
    with pytest.raises(CheckpointError, match="file not found"):
        spikefuse.load_run(out / "nope")
    with pytest.raises(TypeError, match="path: expected"):
        spikefuse.load_run(3)


def test_eval_command_prints_accuracy_confusion_and_rates(run, capsys, tmp_path):
    out, res = run
    assert main(["eval", str(out), "--max-samples", "96", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert f"accuracy {100 * res['test_acc']:.2f}%" in printed and "spike rate per hidden layer" in printed
    rep = json.loads((tmp_path / "eval-yinyang-test.json").read_text())
    conf = torch.tensor(rep["confusion"])
    assert conf.shape == (3, 3) and int(conf.sum()) == 96
    assert int(conf.diag().sum()) / 96 == pytest.approx(res["test_acc"])
    assert len(rep["spike_rates"]) == 1 and 0 <= rep["spike_rates"][0] <= 1
    assert (tmp_path / "eval-yinyang-test.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_errors_are_one_line(run, capsys, tmp_path):
    out, _ = run
    assert main(["eval", str(tmp_path / "none")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["eval", str(out), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "64 inputs" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", str(out), "--split", "dev"]) == 2
    assert main(["eval", str(out), "--max-samples", "0"]) == 2


def test_export_nir_reads_back(run, tmp_path, capsys):
    nir = pytest.importorskip("nir")
    out, _ = run
    f = tmp_path / "m.nir"
    assert main(["export", str(out), "--nir", str(f)]) == 0
    g = nir.read(str(f))
    kinds = {type(n).__name__ for n in g.nodes.values()}
    assert {"Affine", "LI"} <= kinds and ("LIF" in kinds or "CubaLIF" in kinds)
    assert "wrote" in capsys.readouterr().out
    assert main(["export", str(out), "--nir", str(f), "--dt", "-1"]) == 2


def test_plot_command_redraws_from_metrics(run):
    out, _ = run
    for name in ("curves.png", "raster.png", "rates.png"):
        (out / name).unlink()
    assert main(["plot", str(out), "--curves-only"]) == 0
    assert (out / "curves.png").is_file() and not (out / "raster.png").exists()
    assert main(["plot", str(out)]) == 0
    assert all((out / n).read_bytes()[:4] == b"\x89PNG" for n in ("curves.png", "raster.png", "rates.png"))
