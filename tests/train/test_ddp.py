"""Multi-process training on the CPU (Gloo) launched by torchrun.

1. One optimizer step of 2 DDP processes, each with half of a batch, gives the parameters of
   one process stepping on the whole batch (1e-6).
2. The training job with 2 processes: only rank 0 writes the run folder and prints, and the
   result equals a single-process run (the sampler shards every global batch).
3. ``torchrun -m spikefuse train`` runs.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from spikefuse import train as tr

WORKER = textwrap.dedent(
    """
    import sys, torch, torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP
    from spikefuse import train as tr

    info = tr.init_distributed("cpu")
    assert info.world_size == 2 and torch.distributed.get_backend() == "gloo"
    cfg = tr.TrainConfig(hidden=16, layers=2, T=6, batch_size=8, lr=0.05).resolve()
    torch.manual_seed(0)
    model = tr.build_model(cfg, 4, 3)
    net = DDP(model, broadcast_buffers=False)
    opt = tr.build_optimizer(cfg, model.parameters())
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 4, generator=g) * 3
    y = torch.randint(0, 3, (8,), generator=g)
    half = slice(4 * info.rank, 4 * info.rank + 4)
    loss = F.cross_entropy(net(x[half]), y[half])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if info.rank == 0:
        torch.save(model.state_dict(), sys.argv[1])

    # 2. the whole training job in the same process group (only rank 0 writes / prints)
    tr.train(tr.TrainConfig(epochs=2, max_samples=64, hidden=16, batch_size=16, T=5,
                            device="cpu", out=sys.argv[2]), progress=False, verbose=True)
    torch.distributed.destroy_process_group()
    """
)


def _torchrun(args, tmp_path, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Launch the 2-process worker once (torchrun, Gloo) for both tests."""
    d = tmp_path_factory.mktemp("ddp")
    script = d / "worker.py"
    script.write_text(WORKER)
    r = _torchrun([str(script), str(d / "ddp.pt"), str(d / "ddp")], d)
    return d, r


def test_ddp_two_half_batches_equal_one_full_batch(ddp_run):
    d, _ = ddp_run
    ddp_state = torch.load(d / "ddp.pt")

    cfg = tr.TrainConfig(hidden=16, layers=2, T=6, batch_size=8, lr=0.05).resolve()
    torch.manual_seed(0)
    model = tr.build_model(cfg, 4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = tr.build_optimizer(cfg, model.parameters())
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 4, generator=g) * 3
    y = torch.randint(0, 3, (8,), generator=g)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    moved = 0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ddp_state[k], v, rtol=0, atol=1e-6)
        moved += int(not torch.equal(v, before[k]))
    assert moved >= 4  # the step changed the weights of every layer


def test_distributed_train_job_matches_single_process(ddp_run, tmp_path):
    d, r = ddp_run
    # one copy of the messages: only rank 0 prints
    assert r.stdout.count("test accuracy:") == 1
    assert "processes=2" in r.stdout
    lines = (d / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2]
    ddp = json.loads((d / "ddp" / "metrics.json").read_text())
    assert ddp["world_size"] == 2

    single = tr.train(tr.TrainConfig(epochs=2, max_samples=64, hidden=16, batch_size=16, T=5,
                                     device="cpu", out=str(tmp_path / "single")),
                      progress=False, verbose=False)
    assert ddp["test_acc"] == pytest.approx(single["test_acc"], abs=1 / 64 + 1e-9)
    assert ddp["test_loss"] == pytest.approx(single["test_loss"], abs=1e-4)
    a = tr.load_checkpoint(d / "ddp" / "checkpoint.safetensors")["model"]
    b = tr.load_checkpoint(tmp_path / "single" / "checkpoint.safetensors")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-4)


def test_torchrun_module_entry_point(tmp_path):
    """``torchrun -m spikefuse train``: the console entry point under torchrun."""
    _torchrun(["-m", "spikefuse", "train", "--epochs", "1", "--max-samples", "32", "--hidden", "8",
               "--batch-size", "8", "--T", "3", "--device", "cpu", "--no-progress", "--no-plots",
               "--out", "tr"], tmp_path)
    assert json.loads((tmp_path / "tr" / "metrics.json").read_text())["world_size"] == 2
