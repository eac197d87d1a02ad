"""Helpers of the fault-injection tests: tiny runs in subprocesses, killed on cue."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARGS = dict(epochs=3, max_samples=64, hidden=8, batch_size=16, T=4, plots=False, threads=1)

#: a training job that pauses inside its N-th checkpoint write (a half temporary file on disk)
#: and announces it by creating the READY file, so that the parent can kill it right there
WORKER = r'''
import sys, time
from pathlib import Path
from spikefuse.train import TrainConfig, train, checkpoint as ck
out, nth, ready, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], eval(sys.argv[4])
real, seen = ck.atomic_write, [0]
def paused(path, data):
    if Path(path).name == ck.CHECKPOINT_NAME:
        seen[0] += 1
        if seen[0] == nth:
            tmp = ck.temp_name(Path(path))
            tmp.write_bytes(data[: len(data) // 2])
            Path(ready).write_text("in checkpoint")
            time.sleep(300)
    return real(path, data)
ck.atomic_write = paused
train(TrainConfig(out=out, **args), progress=False, verbose=False)
'''


def env():
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(ROOT / "src"), *sys.path]))


def kill_in_checkpoint(out: Path, nth: int, args=ARGS, timeout=240.0) -> None:
    """Run a job into ``out`` and ``kill -9`` it while it writes its ``nth`` checkpoint."""
    ready = out.parent / f".{out.name}.ready"
    p = subprocess.Popen([sys.executable, "-c", WORKER, str(out), str(nth), str(ready), repr(args)],
                         env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ready.exists():
        if p.poll() is not None:
            raise AssertionError(f"worker ended early: {p.stderr.read().decode()[-2000:]}")
        if time.time() - t0 > timeout:
            p.kill()
            raise AssertionError("worker never reached the checkpoint")
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    ready.unlink()


def kill_at(out: Path, delay: float, args=ARGS) -> int:
    """Start a CLI run into ``out`` and ``kill -9`` it after ``delay`` seconds (or let it end)."""
    cmd = [sys.executable, "-m", "spikefuse", "train", "--out", str(out), "--no-progress", "--quiet"]
    for k, v in args.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            cmd += [] if v else [f"--no-{k}"]
        else:
            cmd += [flag, str(v)]
    p = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return -9


def folder_is_consistent(out: Path) -> None:
    """config.toml, the checkpoint and metrics.jsonl all belong to one run and agree."""
    import tomllib

    from spikefuse.train import load_checkpoint

    run_id = tomllib.loads((out / "config.toml").read_text())["run"]["id"]
    ck = load_checkpoint(out / "checkpoint.safetensors")
    assert ck["run_id"] == run_id
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, ck["epoch"] + 1))
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
