"""The command line as a new user meets it: threads, progress in a log, no silent overwrite,
one-line errors with exit status 2 and nothing written, the install claims of pyproject.toml."""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from spikefuse.cli import main
from spikefuse.train import TrainConfig, default_threads

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--epochs", "2", "--max-samples", "48", "--hidden", "8", "--batch-size", "16", "--T", "4",
        "--no-plots"]


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), *sys.path]))


def _cli(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "spikefuse", *args], capture_output=True, text=True,
                          cwd=cwd, env=_env(), timeout=300, **kw)


def test_threads_default_is_chosen_and_written(tmp_path):
    assert TrainConfig().resolve().threads == default_threads("lif") >= 1
    assert TrainConfig(neuron="eventprop").resolve().threads == 1
    assert TrainConfig(threads=3).resolve().threads == 3
    with pytest.raises(ValueError, match="threads: must be >= 1"):
        TrainConfig(threads=0).resolve()
    out = tmp_path / "r"
    assert main(["train", *TINY, "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    assert tomllib.loads((out / "config.toml").read_text())["train"]["threads"] == 1


def test_log_progress_is_one_line_per_epoch(tmp_path, capsys):
    assert not sys.stderr.isatty()  # captured, as in a log
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 0  # progress on: no bar here
    cap = capsys.readouterr()
    assert cap.err == ""
    lines = cap.out.strip().splitlines()
    assert len(lines) == 1 + 2 + 1  # header, one line per epoch, result
    assert [s.split(":")[0] for s in lines[1:3]] == ["epoch 1/2", "epoch 2/2"]


def test_run_folder_is_never_overwritten(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main(["train", *TINY, "--no-progress", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["train", *TINY, "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds run" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # the run's own config.toml as --config: a new folder, the old one untouched
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(out / "config.toml"), "--no-progress"]) == 0
    assert "starts a new run folder" in capsys.readouterr().err
    new = [p for p in (tmp_path / "runs").iterdir()]
    assert len(new) == 1 and (new[0] / "checkpoint.safetensors").is_file()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # ... and with --resume it continues that run in its folder
    assert main(["train", "--config", str(out / "config.toml"), "--resume", "--epochs", "3",
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 3


@pytest.mark.parametrize("argv, msg", [
    (["--epochs", "x"], "invalid int value"),
    (["--bogus"], "unrecognized arguments"),
    (["--threads", "0"], "threads: must be >= 1"),
    (["--out", ""], "out: expected a folder path"),
    (["--backend", "cpu", "--neuron", "norse-lif-recurrent"], "has no fused kernel"),
])
def test_bad_values_one_line_exit_2_nothing_written(argv, msg, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["train", "--epochs", "1", "--max-samples", "32", "--hidden", "4", "--no-plots",
                     "--no-progress", *argv])
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and msg in err, err
    assert list(tmp_path.iterdir()) == []  # no run folder, no runs/


def test_missing_optional_package_is_one_line(tmp_path, monkeypatch, capsys):
    import spikefuse.data as D

    def no_sklearn(name, split="train", **kw):  # what digits raises without scikit-learn
        raise ImportError("spikefuse.data.digits needs scikit-learn", name="sklearn")

    monkeypatch.setattr(D, "get_dataset", no_sklearn)
    assert main(["train", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert 'pip install -e ".[data]"' in err and "scikit-learn" in err and "spikefuse[" not in err
    assert not (tmp_path / "d").exists()


def test_config_reading_falls_back_to_tomli_without_tomllib(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: the reader must use the tomli backport."""
    import types

    import tomllib as real

    from spikefuse.train import config as C

    fake = types.ModuleType("tomli")
    fake.load, fake.loads, fake.TOMLDecodeError = real.load, real.loads, real.TOMLDecodeError
    fake.used = 0
    orig_load = real.load

    def counting_load(f):
        fake.used += 1
        return orig_load(f)

    fake.load = counting_load
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib -> ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "tomli", fake)
    p = tmp_path / "c.toml"
    p.write_text("epochs = 3\n[run]\nid = 'abc'\n")
    assert C.load_config_file(p) == {"epochs": 3} and C.config_run_id(p) == "abc"
    assert fake.used == 2
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(ImportError, match="needs tomli"):
        C.load_config_file(p)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d for d in deps)


def test_default_command_needs_only_core_dependencies(tmp_path):
    """The quick start's ``spikefuse train`` (here shortened) with every optional package
    made unimportable: the core dependencies of pyproject.toml are enough."""
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {d.split(">")[0].split(";")[0].strip() for d in core} >= {"torch", "numpy", "tqdm", "matplotlib",
                                                                     "safetensors"}
    blocker = (
        "import sys, importlib.machinery as m\n"
        "class Missing:\n"
        "    def create_module(self, spec):\n"
        "        raise ModuleNotFoundError(f'No module named {spec.name!r}', name=spec.name)\n"
        "    def exec_module(self, module):\n"
        "        pass\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('nir', 'nirtorch', 'h5py', 'sklearn', 'triton', 'tonic'):\n"
        "            return m.ModuleSpec(name, Missing())\n"
        "sys.meta_path.insert(0, Block())\n"
        "from spikefuse.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", blocker, "train", *TINY, "--out", "r"], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "r" / "checkpoint.safetensors").is_file()


def test_every_module_imports():
    import importlib
    import pkgutil

    import spikefuse

    failed = {}
    for m in pkgutil.walk_packages(spikefuse.__path__, "spikefuse."):
        try:
            importlib.import_module(m.name)
        except ImportError as e:  # only optional extras may be missing, and they are installed here
            failed[m.name] = repr(e)
    assert not failed


def test_no_install_hint_names_a_package_index_entry():
    """spikefuse is installed from its checkout: hints say ``pip install -e ".[extra]"``."""
    import re

    bad = []
    for p in [*(ROOT / "src").rglob("*.py"), *(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]:
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"pip install [\"']?spikefuse\[", line):
                bad.append(f"{p.relative_to(ROOT)}:{i}")
    assert not bad


def test_config_toml_keeps_any_string_valid(tmp_path):
    from spikefuse.train import config_to_toml, load_config_file

    cfg = TrainConfig(data_root="data/\U0001F600 caf\u00e9\x7f\"q\"\\x", out="runs/\u00e9").resolve()
    p = tmp_path / "c.toml"
    p.write_text(config_to_toml(cfg, run_id="r1"), encoding="utf-8")
    back = TrainConfig.from_dict(load_config_file(p))
    assert back == cfg
