"""``spikefuse train`` / ``spikefuse bench`` command line: artifacts, overrides, errors."""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spikefuse import bench
from spikefuse.cli import build_parser, main

TINY = ["--epochs", "1", "--max-samples", "48", "--hidden", "8", "--batch-size", "16", "--T", "4",
        "--no-plots", "--no-progress"]


def _cfg(out):
    return tomllib.loads((Path(out) / "config.toml").read_text())["train"]


def test_cli_train_writes_run_and_prints_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--seed", "3", "--optimizer", "adamw"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed and "epoch 1/1" in printed
    cfg = _cfg(out)
    assert (cfg["seed"], cfg["optimizer"], cfg["epochs"], cfg["plots"]) == (3, "adamw", 1, False)
    final = json.loads((out / "metrics.json").read_text())
    assert final["finished"] and 0 <= final["test_acc"] <= 1
    assert (out / "checkpoint.safetensors").is_file() and (out / "metrics.jsonl").is_file()


def test_cli_flags_override_config_file(tmp_path, capsys):
    conf = tmp_path / "c.toml"
    conf.write_text('[train]\nhidden = 8\nepochs = 2\nlr = 0.001\nno-plots = true\nmax-samples = 32\n'
                    'batch-size = 16\nT = 3\n')
    out = tmp_path / "r"
    assert main(["train", "--config", str(conf), "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    cfg = _cfg(out)
    assert cfg["epochs"] == 1          # flag wins
    assert cfg["hidden"] == 8 and cfg["lr"] == 0.001 and cfg["plots"] is False  # from the file
    assert "test accuracy" in capsys.readouterr().out


def test_cli_resume_continues(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--epochs", "2", "--max-samples", "48", "--hidden", "8", "--batch-size", "16",
            "--T", "4", "--no-plots", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--no-progress"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3]
    assert "resuming" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["train", "--data", "cifar"], "data: expected one of"),
    (["train", "--epochs", "-1"], "epochs: must be >= 1, got -1"),
    (["train", "--epochs", "0"], "epochs: must be >= 1"),
    (["train", "--hidden", "0"], "hidden: must be >= 1"),
    (["train", "--batch-size", "-8"], "batch_size: must be >= 1"),
    (["train", "--lr", "-0.1"], "lr: must be > 0"),
    (["train", "--lr", "nan"], "lr: expected a finite number"),
    (["train", "--neuron", "hodgkin"], "neuron: expected one of"),
    (["train", "--gradient", "relu"], "gradient: expected one of"),
    (["train", "--neuron", "cuba", "--gradient", "atan"], "neuron 'cuba' supports"),
    (["train", "--optimizer", "rmsprop"], "optimizer: expected one of"),
    (["train", "--device", "gpu"], "device: expected one of"),
    (["train", "--backend", "fast"], "backend: expected one of"),
    (["train", "--T", "0"], "T: must be >= 1"),
])
def test_cli_invalid_arguments_exit_2_with_message(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikefuse train: error:") and msg in err


@pytest.mark.parametrize("argv", [["train", "--epochs", "three"], ["train", "--bogus"], ["nope"], []])
def test_cli_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_config_file_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    unk = tmp_path / "unk.toml"
    unk.write_text("epoch = 3\n")
    assert main(["train", "--config", str(unk)]) == 2
    assert "unknown key 'epoch'" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    neg = tmp_path / "neg.toml"
    neg.write_text("epochs = -3\n")
    assert main(["train", "--config", str(neg)]) == 2
    assert "epochs: must be >= 1, got -3" in capsys.readouterr().err


def test_cli_resume_errors_exit_1(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    out = tmp_path / "r"
    out.mkdir()
    (out / "checkpoint.safetensors").write_bytes(b"garbage")
    assert main(["train", "--resume", str(out)]) == 1
    assert "not a spikefuse checkpoint" in capsys.readouterr().err
    assert main(["train", "--resume"]) == 1
    assert "resume: needs the run folder" in capsys.readouterr().err


def test_cli_missing_event_dataset_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIKEFUSE_DATA", str(tmp_path))
    assert main(["train", "--data", "shd", "--epochs", "1", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("spikefuse train: error:") and len(err.strip().splitlines()) == 1
    assert str(tmp_path) in err
    assert not (tmp_path / "r").exists()  # nothing written for a run that could not start
    other = tmp_path / "elsewhere"
    assert main(["train", "--data", "ssc", "--data-root", str(other), "--out", str(tmp_path / "r")]) == 1
    assert str(other) in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "spikefuse", "train", "--epochs", "-2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "epochs: must be >= 1" in r.stderr
    r = subprocess.run([sys.executable, "-m", "spikefuse", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "train" in r.stdout and "bench" in r.stdout


def test_parser_lists_every_brief_flag():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--config", "--data", "--neuron", "--gradient", "--hidden", "--layers", "--T",
                 "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--device", "--amp",
                 "--out", "--resume", "--backend", "--no-plots"):
        assert flag in text, flag


# ------------------------------------------------------------------ bench
def test_bench_rows_and_table(capsys, tmp_path):
    js = tmp_path / "b.json"
    assert main(["bench", "--T", "4", "--batch", "2", "--features", "8", "--repeat", "1",
                 "--families", "lif,cuba", "--device", "cpu", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "lif" in out and "cuba" in out and "fwd+bwd ms" in out
    rows = json.loads(js.read_text())
    fams = {(r["family"], r["backend"]) for r in rows}
    assert ("lif", "reference") in fams and ("cuba", "reference") in fams
    from spikefuse import kernels

    for b in kernels.available("lif"):
        assert ("lif", b) in fams
    ref = [r for r in rows if r["backend"] == "reference"]
    assert all(r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 for r in ref)


def test_bench_errors(capsys):
    assert main(["bench", "--families", "hh"]) == 2
    assert "families: unknown ['hh']" in capsys.readouterr().err
    assert main(["bench", "--T", "0"]) == 2
    assert "T: expected a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="device"):
        bench.run(device="tpu", printer=None)


@pytest.mark.parametrize("kw,msg", [(dict(features=0), "features"), (dict(batch=-1), "batch"),
                                    (dict(repeat=0), "repeat"), (dict(families=["xyz"]), "families")])
def test_bench_argument_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        bench.run(printer=None, **kw)
