"""Fault injection into the run folder: concurrent runs on one --out, kill -9 during a
checkpoint then --resume, stale locks, corrupt and foreign checkpoints, crafted epochs and
missing keys. Each refusal leaves every file of the folder as it was.

The fast sample runs in the default suite; the long runs are marked ``faults``:
``python -m pytest tests/faults -m faults``."""
import json
import random
import subprocess
import sys

import pytest
import torch

from faultlib import ARGS, env, folder_is_consistent, kill_at, kill_in_checkpoint
from spikefuse.train import (CheckpointError, RunFolderError, TrainConfig, load_checkpoint,
                             save_checkpoint, train)
from spikefuse.train.runfolder import RunLock


def _train(out, **kw):
    return train(TrainConfig(out=str(out), **{**ARGS, **kw}), progress=False, verbose=False)


def _resume(out, **kw):
    return train(TrainConfig(out=str(out)), resume=True, progress=False, verbose=False, **kw)


def _snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: what every interrupted-and-resumed run must equal."""
    out = tmp_path_factory.mktemp("ref") / "run"
    res = _train(out)
    return res, load_checkpoint(out / "checkpoint.safetensors")


def _same_as_reference(out, res, reference):
    ref_res, ref_ck = reference
    for k in ("test_acc", "test_loss", "best_val_acc", "final_val_acc"):
        assert res[k] == ref_res[k], k
    ck = load_checkpoint(out / "checkpoint.safetensors")
    for k, v in ref_ck["model"].items():
        assert torch.equal(ck["model"][k], v), k
    folder_is_consistent(out)


def test_kill_9_during_checkpoint_then_resume_equals_uninterrupted(tmp_path, reference, capsys):
    out = tmp_path / "run"
    kill_in_checkpoint(out, nth=2)
    assert list(out.glob(".*.tmp")) and (out / ".lock").exists()  # the debris of the kill
    assert load_checkpoint(out / "checkpoint.safetensors")["epoch"] == 1  # last complete one
    res = _resume(out)
    assert "stale lock" in capsys.readouterr().err
    _same_as_reference(out, res, reference)


def test_a_held_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    other = RunLock(out).acquire("someone-else")  # another process holds the folder
    try:
        with pytest.raises(RunFolderError, match="in use by process"):
            _train(out)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    finally:
        other.release()
    assert list(out.iterdir()) == []


@pytest.mark.faults
def test_concurrent_runs_on_one_out_one_wins(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spikefuse", "train", "--out", str(out), "--epochs", "2",
           "--max-samples", "64", "--hidden", "8", "--T", "4", "--no-plots", "--no-progress",
           "--quiet", "--threads", "1"]
    procs = [subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    loser = [e for c, e in results if c == 2][0]
    assert ("in use by process" in loser or "already holds run" in loser) and len(loser.strip().splitlines()) == 1
    folder_is_consistent(out)


def test_lock_is_exclusive_and_released(tmp_path):
    a = RunLock(tmp_path).acquire("a")
    with pytest.raises(RunFolderError, match="in use by process"):
        RunLock(tmp_path).acquire("b")
    a.release()
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).acquire("c").release()


def test_lock_released_when_the_run_fails(tmp_path, monkeypatch):
    from spikefuse.train import loop

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "_record_epoch", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _train(out)
    assert not (out / ".lock").exists()


def test_failed_checkpoint_write_leaves_no_temp_and_no_metrics_line(tmp_path, monkeypatch):
    from spikefuse.train import checkpoint as ck

    real, calls = ck.os.replace, [0]

    def full_disk(src, dst):
        if str(dst).endswith(ck.CHECKPOINT_NAME):
            calls[0] += 1
            if calls[0] == 2:  # the second checkpoint: its temporary file is already written
                raise OSError(28, "No space left on device")
        return real(src, dst)

    out = tmp_path / "run"
    monkeypatch.setattr(ck.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        _train(out)
    monkeypatch.undo()
    assert not list(out.glob(".*.tmp"))
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert load_checkpoint(out / "checkpoint.safetensors")["epoch"] == len(lines) == 1


def _crafted(tmp_path, reference, **change):
    """A checksum-valid checkpoint of the reference run with fields changed or removed."""
    ck = dict(reference[1])
    for k, v in change.items():
        if v is KeyError:
            ck.pop(k)
        else:
            ck[k] = v
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    save_checkpoint(src / "checkpoint.safetensors", ck)
    return src / "checkpoint.safetensors"


@pytest.mark.parametrize("change, msg", [
    (dict(epoch=-1), "epoch must be an integer in 1..3"),
    (dict(epoch=99), "epoch must be an integer in 1..3"),
    (dict(epoch=True), "epoch must be an integer"),
    (dict(model=KeyError), "missing \\['model'\\]"),
    (dict(config=KeyError), "missing \\['config'\\]"),
    (dict(run_id=KeyError), "missing \\['run_id'\\]"),
    (dict(history=[]), "history records"),
    (dict(model={"hidden.0.synapse.weight": torch.zeros(2, 2)}), "does not fit this run"),
    (dict(config={"epochs": 3, "neuron": "nope"}), "config is invalid|neuron: expected"),
])
def test_crafted_checkpoints_are_refused_before_anything_is_written(tmp_path, reference, change, msg):
    out = tmp_path / "run"
    _train(out, epochs=1)
    before = _snapshot(out)
    path = _crafted(tmp_path, reference, **change)
    with pytest.raises((CheckpointError, ValueError), match=msg):
        train(TrainConfig(out=str(out)), resume=str(path), progress=False, verbose=False)
    assert _snapshot(out) == before


def test_foreign_checkpoint_is_refused(tmp_path, reference):
    mine = tmp_path / "mine"
    _train(mine, epochs=1)
    before = _snapshot(mine)
    foreign = _crafted(tmp_path, reference)  # another run's (valid) checkpoint
    with pytest.raises(RunFolderError, match="belongs to run"):
        train(TrainConfig(), resume=str(foreign), progress=False, verbose=False,
              overrides={"out": str(mine)})
    assert _snapshot(mine) == before
    # copied into the folder, it is refused too (config.toml names the folder's run)
    (mine / "checkpoint.safetensors").write_bytes(foreign.read_bytes())
    with pytest.raises(RunFolderError, match="belongs to run"):
        _resume(mine)


def test_corrupt_checkpoint_in_the_folder_is_refused_unchanged(tmp_path):
    out = tmp_path / "run"
    _train(out, epochs=1)
    raw = bytearray((out / "checkpoint.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0x55
    (out / "checkpoint.safetensors").write_bytes(bytes(raw))
    before = _snapshot(out)
    with pytest.raises(CheckpointError, match="checksum|corrupt"):
        _resume(out)
    assert _snapshot(out) == before


# ------------------------------------------------------------------ long runs (-m faults)
@pytest.mark.faults
@pytest.mark.parametrize("trial", range(12))
def test_kill_9_at_random_moments_then_resume_equals_uninterrupted(tmp_path, reference, trial):
    out = tmp_path / "run"
    rng = random.Random(trial)
    for _ in range(3):
        if kill_at(out, rng.uniform(1.0, 8.0)) == 0:
            break
        if (out / "checkpoint.safetensors").exists():
            break
    if not (out / "checkpoint.safetensors").exists():
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        res = _train(out)
    else:
        res = _resume(out)
    _same_as_reference(out, res, reference)


@pytest.mark.faults
@pytest.mark.parametrize("nth", [1, 2, 3])
def test_kill_9_in_every_checkpoint_then_resume(tmp_path, reference, nth):
    out = tmp_path / "run"
    kill_in_checkpoint(out, nth=nth)
    if (out / "checkpoint.safetensors").exists():
        res = _resume(out)
    else:  # killed in the first checkpoint: nothing to resume, the folder holds only the config
        with pytest.raises(CheckpointError, match="nothing to resume"):
            _resume(out)
        return
    _same_as_reference(out, res, reference)


@pytest.mark.faults
@pytest.mark.parametrize("trial", range(5))
def test_many_concurrent_runs_on_one_out(tmp_path, trial):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spikefuse", "train", "--out", str(out), "--epochs", "2",
           "--max-samples", "64", "--hidden", "8", "--T", "4", "--no-plots", "--no-progress",
           "--quiet", "--threads", "1"]
    procs = [subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(4)]
    codes = sorted(p.wait(timeout=600) for p in procs)
    assert codes == [0, 2, 2, 2]
    folder_is_consistent(out)
    assert json.loads((out / "metrics.json").read_text())["finished"]
