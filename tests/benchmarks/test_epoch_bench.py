"""benchmarks/epoch.py: a tiny run gives a row per implementation, the breakdown and the profile,
and its spikefuse network is the one the train code builds."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from spikefuse.train import build_model
from spikefuse.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "8", "--T", "3", "--batch-size", "16", "--max-samples", "48"]


@pytest.fixture(scope="module")
def eb():
    with pytest.MonkeyPatch.context() as mp:  # benchmarks/ is a folder of scripts, not a package
        mp.syspath_prepend(str(ROOT / "benchmarks"))
        yield importlib.import_module("epoch")
    sys.modules.pop("epoch", None)


def _installed(name):
    return importlib.util.find_spec(name) is not None


def test_tiny_run_structure(eb, tmp_path):
    out = tmp_path / "e.json"
    peers = [p for p in eb.PEERS if _installed(p)]
    recs = eb.main(TINY + ["--threads", "1", "--epochs", "2", "--warmup", "0", "--profile", "--repeat", "2",
                           "--json", str(out), "--peers", *(peers or ["none"])])
    assert [r["threads"] for r in recs] == [1]
    rec = recs[0]
    assert rec["steps_per_epoch"] == 3  # 48 samples / batch 16
    assert list(rec["rows"]) == ["spikefuse", *peers]
    for r in rec["rows"].values():
        assert len(r["epochs_ms"]) == 2 and r["median_ms"] > 0 and r["cpu_median_ms"] > 0
    assert rec["rows"]["spikefuse"]["vs_spikefuse"] == 1.0
    parts = rec["breakdown_ms"]
    assert set(parts) == {"neuron_fwd_ms", "neuron_bwd_ms", "synapse_ms", "readout_ms", "loss_ms",
                          "optimizer_ms", "data_ms", "metrics_ms", "python_and_rest_ms"}
    assert all(v >= 0 for k, v in parts.items() if k != "python_and_rest_ms")
    assert sum(parts.values()) == pytest.approx(rec["rows"]["spikefuse"]["cpu_median_ms"])
    assert "Self CPU" in rec["profile"] and "aten::" in rec["profile"]
    saved = json.loads(out.read_text())
    assert saved["meta"]["config"]["hidden"] == 8 and len(saved["records"]) == 1


def test_spikefuse_network_is_the_train_codes_model(eb, tmp_path):
    cfg = TrainConfig(hidden=8, T=3, batch_size=16, max_samples=48, threads=1)
    run = eb.spikefuse_run(cfg, str(tmp_path / "run"))
    torch.manual_seed(run.cfg.seed)
    ref = build_model(run.cfg, run.info.n_inputs, run.info.n_classes)
    x, _ = run.train_s.batch(list(range(16)))
    assert torch.equal(run.model(x), ref(x))
    assert run.cfg.optimizer == "adam" and run.cfg.schedule == "onecycle" and run.cfg.gradient == "atan"
    assert not (tmp_path / "run").exists()  # building the run writes nothing


@pytest.mark.parametrize("peer", ["snntorch", "spikingjelly"])
def test_peer_network_shapes(eb, peer):
    if not _installed(peer):
        pytest.skip(f"{peer} is not installed")
    cfg = TrainConfig(hidden=8, T=3).resolve()
    net = eb.PEER_NETS[peer](cfg, 4, 3)
    out = net(torch.rand(5, 4))
    assert out.shape == (5, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_peer_name_is_refused(eb):
    with pytest.raises(SystemExit, match="--peers: expected some of"):
        eb.main(TINY + ["--peers", "norse", "--epochs", "1"])
