"""Checkpoints: a safetensors file that standard tools open, a checksummed JSON manifest with
the run id, and a loader that never unpickles (crafted pickles are refused, not run)."""
import hashlib
import json
import os
import pickle

import pytest
import torch

from spikefuse.train import CheckpointError, TrainConfig, checkpoint as ckm, train


def _tiny(out, **kw):
    base = dict(epochs=1, max_samples=48, hidden=8, batch_size=16, T=4, out=str(out), plots=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    train(_tiny(out), progress=False, verbose=False)
    return out


def test_weights_open_with_safetensors_alone(run_dir):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = run_dir / "checkpoint.safetensors"
    tensors = load_file(str(path))
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    ck = ckm.load_checkpoint(path)
    assert set(weights) == set(ck["model"])
    for k, v in weights.items():
        assert torch.equal(v, ck["model"][k]), k
    with safe_open(str(path), "pt") as f:  # the manifest is plain JSON in the header
        manifest = json.loads(f.metadata()["spikefuse"])
    assert manifest["run_id"] == ck["run_id"] and manifest["epoch"] == 1
    assert len(manifest["sha256"]) == 64


def test_manifest_tamper_is_detected(run_dir, tmp_path):
    raw = (run_dir / "checkpoint.safetensors").read_bytes()
    bad = raw.replace(b'\\"epoch\\": 1', b'\\"epoch\\": 7', 1)
    assert bad != raw
    (tmp_path / "t.safetensors").write_bytes(bad)
    with pytest.raises(CheckpointError, match="checksum"):
        ckm.load_checkpoint(tmp_path / "t.safetensors")


def test_round_trip_keeps_types(tmp_path):
    obj = {"t": (1, 2.5, "x"), "d": {0: torch.ones(2), 3: None}, "l": [True, {"a": torch.arange(3)}],
           "bf": torch.ones(2, dtype=torch.bfloat16), "s": torch.tensor(4.0)}
    ckm.save_checkpoint(tmp_path / "c", obj)
    back = ckm.load_checkpoint(tmp_path / "c")
    assert back["t"] == (1, 2.5, "x") and back["l"][0] is True and back["d"][3] is None
    assert torch.equal(back["d"][0], torch.ones(2)) and torch.equal(back["l"][1]["a"], torch.arange(3))
    assert back["bf"].dtype == torch.bfloat16 and back["s"].shape == ()
    with pytest.raises(TypeError, match="cannot store set"):
        ckm.save_checkpoint(tmp_path / "c2", {"x": {1, 2}})
    assert not (tmp_path / "c2").exists() and not list(tmp_path.glob(".*.tmp"))


class _Boom:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pickles_are_refused_without_running(tmp_path):
    marker = str(tmp_path / "PWNED")
    payload = pickle.dumps(_Boom(marker))
    files = {"raw.safetensors": payload}
    # the old spikefuse header around a pickle, with a valid length and checksum
    legacy = ckm._LEGACY_MAGIC + len(payload).to_bytes(8, "little") + hashlib.sha256(payload).digest()
    files["legacy.pt"] = legacy + payload
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"x": _Boom(marker)}, tmp_path / "zip.pt")
    for name in (*files, "zip.pt"):
        with pytest.raises(CheckpointError) as e:
            ckm.load_checkpoint(tmp_path / name)
        assert "not a spikefuse checkpoint" in str(e.value) or "pickle" in str(e.value)
    assert not os.path.exists(marker)


def test_resume_of_a_legacy_checkpoint_names_the_reason(tmp_path):
    from spikefuse.cli import main

    out = tmp_path / "old"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(ckm._LEGACY_MAGIC + b"\0" * 40)
    with pytest.raises(CheckpointError, match="old pickle-based format"):
        train(TrainConfig(out=str(out)), resume=True, progress=False, verbose=False)
    assert main(["train", "--resume", str(out)]) == 1
