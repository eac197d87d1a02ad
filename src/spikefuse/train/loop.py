"""The training loop behind :func:`train`: resolve the run, build it, restore a checkpoint,
run and record every epoch, then test and write the results."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (CheckpointError, _rng_state, _schedule_state, _set_rng_state,
                         load_checkpoint, save_checkpoint)
from .config import TrainConfig, config_to_toml
from .data import _Split, load_data
from .distributed import DistInfo, _pick_device, init_distributed
from .model import _build_schedule, build_model, build_optimizer


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _autocast(cfg: TrainConfig, device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp)


@torch.no_grad()
def evaluate(model: nn.Module, split: _Split, cfg: TrainConfig, device, batch_size: int = 1000):
    """Mean loss, accuracy and per-layer firing rates (first batch) of ``model`` on ``split``."""
    model.eval()
    total_loss, correct, rates = 0.0, 0, None
    for start in range(0, split.n, batch_size):
        idx = list(range(start, min(split.n, start + batch_size)))
        x, y = split.batch(idx)
        x, y = x.to(device), y.to(device)
        with _autocast(cfg, device):
            logits, rec = model(x, record=True)
        logits = logits.float()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        if rates is None:
            rates = [float(s.float().mean()) for s in rec["spikes"]]
    model.train()
    n = max(1, split.n)
    return total_loss / n, correct / n, rates or []


def _run_folder(cfg: TrainConfig) -> Optional[Path]:
    if cfg.out is None:
        return None
    return Path(cfg.out)


def _default_out(cfg: TrainConfig) -> str:
    return os.path.join("runs", f"{cfg.data}-{cfg.neuron}-{time.strftime('%Y%m%d-%H%M%S')}")


def _write_jsonl(path: Path, history: list) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _log(verbose: bool, dist: DistInfo, msg: str) -> None:
    if verbose and dist.is_main:
        print(msg, flush=True)


def train(cfg: TrainConfig, *, resume: bool | str = False, progress: bool = True,
          verbose: bool = True, stop_after_epoch: Optional[int] = None,
          overrides: Optional[dict] = None) -> dict:
    """Run a training job; returns the final metrics (also written to ``metrics.json``).

    - ``resume``: ``False``; ``True`` (continue from ``<cfg.out>/checkpoint.pt``); or a path
      to a run folder or checkpoint file. The checkpoint's config is used, updated with
      ``overrides`` (e.g. the command-line flags that were given explicitly).
    - ``progress``: a tqdm bar per epoch (rank 0 only); ``verbose``: per-epoch summary lines.
    - ``stop_after_epoch``: stop (after writing the checkpoint) once this many epochs are done,
      as if the job had been interrupted; used to test resuming.

    ``neuron="eventprop"`` on the CPU runs with one intra-op thread (restored afterwards): its
    layer is a Python loop over time of small tensor ops, where thread synchronisation costs
    more than it saves (5x slower with 2 threads on a shared 2-core machine).
    """
    threads = torch.get_num_threads()
    try:
        return _train(cfg, resume=resume, progress=progress, verbose=verbose,
                      stop_after_epoch=stop_after_epoch, overrides=overrides)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@dataclass
class _Run:
    """Everything one training job holds between its steps."""

    cfg: TrainConfig
    dist: DistInfo
    device: torch.device
    out: Path
    train_s: _Split
    val_s: _Split
    test_s: _Split
    local_bs: int
    model: nn.Module = None
    net: nn.Module = None
    opt: Any = None
    sampler: Any = None
    sched: Any = None
    steps_per_epoch: int = 0
    history: list = field(default_factory=list)
    start_epoch: int = 0
    train_time: float = 0.0
    verbose: bool = True


def _train(cfg: TrainConfig, *, resume, progress, verbose, stop_after_epoch, overrides) -> dict:
    dist_info = init_distributed(cfg.device if isinstance(cfg.device, str) else "auto")
    cfg, ckpt = _resolve_run(cfg, resume, overrides, dist_info)
    run = _build(cfg, dist_info, verbose)
    if ckpt is not None:
        _restore(run, ckpt)
    if dist_info.is_main:
        _write_jsonl(run.out / "metrics.jsonl", run.history)
    _log(verbose, dist_info,
         f"spikefuse train: data={cfg.data} neuron={cfg.neuron} gradient={cfg.gradient} "
         f"hidden={cfg.hidden}x{cfg.layers} T={cfg.T} epochs={cfg.epochs} device={run.device} "
         f"processes={dist_info.world_size} -> {run.out}")
    for epoch in range(run.start_epoch, cfg.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        t0 = time.time()
        stats = _run_epoch(run, epoch, progress)
        _record_epoch(run, epoch, stats, t0)
    return _finish(run)


def _resolve_run(cfg: TrainConfig, resume, overrides, dist_info: DistInfo):
    """The resolved config (from the checkpoint when resuming), its run folder and device;
    returns ``(cfg, checkpoint or None)`` and sets ``dist_info.device``."""
    ckpt = None
    if resume:
        ckpt_path = _resolve_resume(resume, cfg)
        ckpt = load_checkpoint(ckpt_path)
        saved = TrainConfig.from_dict(ckpt["config"])
        upd = dict(overrides or {})
        upd.setdefault("out", str(ckpt_path.parent))
        cfg = dataclasses.replace(saved, **upd)
    cfg = cfg.resolve()
    if cfg.out is None:
        cfg.out = _default_out(cfg)
        if dist_info.distributed:  # every process uses rank 0's time-stamped folder name
            import torch.distributed as dist

            name = [cfg.out]
            dist.broadcast_object_list(name, src=0)
            cfg.out = name[0]
    device = _pick_device(cfg.device, dist_info.local_rank)
    dist_info.device = device
    if cfg.neuron == "eventprop" and device.type == "cpu":
        torch.set_num_threads(1)
    if cfg.batch_size % dist_info.world_size:
        raise ValueError(f"batch_size: must be divisible by the number of processes "
                         f"({dist_info.world_size}), got {cfg.batch_size}")
    return cfg, ckpt


def _build(cfg: TrainConfig, dist_info: DistInfo, verbose: bool) -> _Run:
    """Data (first: a missing data set fails before anything is written), the run folder's
    config.toml, then model, DDP wrapper, optimizer, sampler and schedule (seeded identically
    on every process)."""
    train_s, val_s, test_s, info = load_data(cfg)
    if info.time_first and cfg.T is None:
        cfg.T = info.n_steps
    out = _run_folder(cfg)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_to_toml(cfg))
    run = _Run(cfg, dist_info, dist_info.device, out, train_s, val_s, test_s,
               cfg.batch_size // dist_info.world_size, verbose=verbose)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    run.model = build_model(cfg, info.n_inputs, info.n_classes, bool(info.time_first),
                            input_shape=info.input_shape).to(run.device)
    run.net = run.model
    if dist_info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        run.net = DDP(run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None,
                      broadcast_buffers=False)
    run.opt = build_optimizer(cfg, run.model.parameters())
    run.sampler = torch.utils.data.DistributedSampler(
        range(train_s.n), num_replicas=dist_info.world_size, rank=dist_info.rank,
        shuffle=True, seed=cfg.seed, drop_last=False)
    run.steps_per_epoch = math.ceil(len(run.sampler) / run.local_bs)
    run.sched = _build_schedule(cfg, run.opt, run.steps_per_epoch)
    return run


def _restore(run: _Run, ckpt: dict) -> None:
    """Model, optimizer, schedule, history, training time and RNG states from a checkpoint."""
    cfg = run.cfg
    run.model.load_state_dict(ckpt["model"])
    run.opt.load_state_dict(ckpt["optimizer"])
    run.history = list(ckpt["history"])
    run.start_epoch = int(ckpt["epoch"])
    saved_epochs = int(ckpt["config"].get("epochs") or cfg.epochs)
    if saved_epochs == cfg.epochs:
        run.sched.load_state_dict(ckpt["schedule"])
    else:
        # the run was extended/shortened: a fresh schedule over the remaining epochs
        for g in run.opt.param_groups:
            g["lr"] = cfg.lr
            g.pop("initial_lr", None)
            g.pop("max_lr", None)
            g.pop("min_lr", None)
        run.sched = _build_schedule(dataclasses.replace(cfg, epochs=max(1, cfg.epochs - run.start_epoch)),
                                    run.opt, run.steps_per_epoch)
        _log(run.verbose, run.dist, f"epochs changed from {saved_epochs} to {cfg.epochs}: "
                                    f"the {cfg.schedule} schedule restarts for the remaining epochs")
    run.train_time = float(ckpt.get("train_time_s", 0.0))
    _set_rng_state(ckpt["rng"])
    _log(run.verbose, run.dist, f"resuming {run.out} after epoch {run.start_epoch}/{cfg.epochs}")


def _progress_bar(run: _Run, epoch: int, progress: bool):
    if not (progress and run.dist.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{run.cfg.epochs}",
                leave=False, dynamic_ncols=True, file=sys.stderr)


def _run_epoch(run: _Run, epoch: int, progress: bool) -> tuple:
    """One pass over the training split; returns ``(sum_loss, sum_correct, seen)`` summed over
    every process."""
    cfg, device = run.cfg, run.device
    run.sampler.set_epoch(epoch)
    order = list(iter(run.sampler))
    run.net.train()
    sum_loss, sum_correct, seen = 0.0, 0, 0
    bar = _progress_bar(run, epoch, progress)
    for b in range(run.steps_per_epoch):
        idx = order[b * run.local_bs:(b + 1) * run.local_bs]
        x, y = run.train_s.batch(idx)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(cfg, device):
            logits = run.net(x)
        loss = F.cross_entropy(logits.float(), y)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.sched.step()
        sum_loss += loss.item() * len(idx)
        sum_correct += int((logits.argmax(1) == y).sum())
        seen += len(idx)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum_loss / seen:.4f}", acc=f"{sum_correct / seen:.4f}")
    if bar is not None:
        bar.close()
    if run.dist.distributed:
        import torch.distributed as dist

        t = torch.tensor([sum_loss, float(sum_correct), float(seen)], dtype=torch.float64,
                         device=device)
        dist.all_reduce(t)
        sum_loss, sum_correct, seen = t[0].item(), int(t[1].item()), int(t[2].item())
    return sum_loss, sum_correct, seen


def _record_epoch(run: _Run, epoch: int, stats: tuple, t0: float) -> None:
    """Validate, append the epoch's record to the history and metrics.jsonl, write the
    checkpoint."""
    cfg = run.cfg
    sum_loss, sum_correct, seen = stats
    val_loss, val_acc, rates = evaluate(run.model, run.val_s, cfg, run.device)
    run.train_time += time.time() - t0
    rec = {"epoch": epoch + 1, "train_loss": sum_loss / max(1, seen),
           "train_acc": sum_correct / max(1, seen), "val_loss": val_loss, "val_acc": val_acc,
           "lr": run.opt.param_groups[0]["lr"], "firing_rates": rates,
           "epoch_time_s": time.time() - t0}
    run.history.append(rec)
    _log(run.verbose, run.dist,
         f"epoch {epoch + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4f} acc "
         f"{rec['train_acc']:.4f} | val loss {val_loss:.4f} acc {val_acc:.4f} "
         f"({rec['epoch_time_s']:.1f}s)")
    if run.dist.is_main:
        with open(run.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        save_checkpoint(run.out / "checkpoint.pt", {
            "format": 1, "epoch": epoch + 1, "config": cfg.to_dict(),
            "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
            "schedule": _schedule_state(run.sched), "history": run.history, "rng": _rng_state(),
            "train_time_s": run.train_time,
        })


def _finish(run: _Run) -> dict:
    """Test, write metrics.json and the plots (rank 0), wait for every process."""
    cfg, history = run.cfg, run.history
    done = len(history)
    test_loss, test_acc, test_rates = evaluate(run.model, run.test_s, cfg, run.device)
    result = {
        "data": cfg.data, "neuron": cfg.neuron, "gradient": cfg.gradient,
        "epochs_completed": done, "epochs": cfg.epochs, "finished": done >= cfg.epochs,
        "test_loss": test_loss, "test_acc": test_acc, "test_firing_rates": test_rates,
        "best_val_acc": max((h["val_acc"] for h in history), default=None),
        "final_val_acc": history[-1]["val_acc"] if history else None,
        "train_time_s": run.train_time, "world_size": run.dist.world_size,
        "n_parameters": sum(p.numel() for p in run.model.parameters()),
    }
    if run.dist.is_main:
        _write_json(run.out / "metrics.json", result)
        if cfg.plots:
            try:
                _make_plots(run.out, run.model, run.test_s, history, cfg, run.device)
            except ImportError as e:  # matplotlib missing: the run's results still stand
                print(f"spikefuse train: no plots: {e}", file=sys.stderr)
        _log(run.verbose, run.dist, f"test accuracy: {100 * test_acc:.2f}% (loss {test_loss:.4f}, "
                                    f"{done}/{cfg.epochs} epochs, {run.train_time:.1f}s) -> {run.out}")
    result["out"] = str(run.out)
    if run.dist.distributed:
        import torch.distributed as dist

        dist.barrier()
    return result


def _resolve_resume(resume, cfg: TrainConfig) -> Path:
    if resume is True:
        if cfg.out is None:
            raise ValueError("resume: needs the run folder (--out) or a path (--resume PATH)")
        p = Path(cfg.out)
    else:
        p = Path(resume)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise CheckpointError(f"checkpoint: file not found: {str(p)!r} (nothing to resume)")
    return p


def _make_plots(out: Path, model, test_s: _Split, history, cfg, device) -> None:
    from . import plots

    x, y = test_s.batch(list(range(min(test_s.n, 256))))
    with torch.no_grad():
        model.eval()
        logits, rec = model(x.to(device), record=True)
        model.train()
    spikes = [s.float().cpu() for s in rec["spikes"]]
    plots.plot_curves(history, out / "curves.png")
    mems = [None if m is None else m[:, 0].float().cpu() for m in rec["membranes"]]
    plots.plot_raster([s[:, 0] for s in spikes], rec["output"][:, 0].float().cpu(),
                      out / "raster.png", label=int(y[0]), prediction=int(logits[0].argmax()),
                      hidden_membranes=mems)
    plots.plot_rates(spikes, out / "rates.png")
