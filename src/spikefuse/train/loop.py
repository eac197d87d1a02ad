"""The training loop behind :func:`train`: resolve the run, build it, restore a checkpoint,
run and record every epoch, then test and write the results."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import layers as L
from .checkpoint import (CHECKPOINT_NAME, CheckpointError, _rng_state, _schedule_state,
                         _set_rng_state, atomic_write, check_train_checkpoint, load_checkpoint,
                         save_checkpoint)
from .config import ConfigError, TrainConfig, config_to_toml
from .runfolder import claim
from .data import _Split, load_data
from .distributed import DistInfo, _pick_device, init_distributed
from .model import _build_schedule, build_model, build_optimizer


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _autocast(cfg: TrainConfig, device: torch.device):
    if not cfg.amp:  # nothing to switch: no autocast state to enter and leave every step
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _checked_inputs(split: _Split):
    """Inside it the model skips the NaN/inf scan of each batch, where the split's values were
    scanned once (:meth:`_Split.values_checked`); a no-op for other splits."""
    return L.trusted_inputs() if split.values_checked() else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, split: _Split, cfg: TrainConfig, device, batch_size: int = 1000):
    """Mean loss, accuracy and per-layer firing rates (first batch) of ``model`` on ``split``."""
    model.eval()
    total_loss, correct, rates = 0.0, 0, None
    for start in range(0, split.n, batch_size):
        idx = list(range(start, min(split.n, start + batch_size)))
        x, y = split.batch(idx)
        x, y = x.to(device), y.to(device)
        with _autocast(cfg, device), _checked_inputs(split):
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
    base = os.path.join("runs", f"{cfg.data}-{cfg.neuron}-{time.strftime('%Y%m%d-%H%M%S')}")
    out, i = base, 1
    while os.path.exists(out):  # two runs started in the same second
        i += 1
        out = f"{base}-{i}"
    return out


def _write_jsonl(path: Path, history: list) -> None:
    atomic_write(path, "".join(json.dumps(rec) + "\n" for rec in history).encode())


def _write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


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
    - ``progress``: a live tqdm bar per epoch when stderr is a terminal (rank 0 only; a log
      gets no bar); ``verbose``: one summary line per epoch.
    - ``stop_after_epoch``: stop (after writing the checkpoint) once this many epochs are done,
      as if the job had been interrupted; used to test resuming.

    The run uses ``cfg.threads`` intra-op CPU threads (default
    :func:`~spikefuse.train.config.default_threads`; restored afterwards).

    The run folder has one owner (:mod:`~spikefuse.train.runfolder`): nothing is written to it
    until the configuration, the data, the model (one trial step) and, when resuming, the
    checkpoint are known to be valid; then its lock is taken for the rest of the run.
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
    info: Any = None
    run_id: str = ""
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
    cfg, ckpt, source = _resolve_run(cfg, resume, overrides, dist_info)
    run = _build(cfg, dist_info, verbose)
    run.run_id = ckpt["run_id"] if ckpt is not None else uuid.uuid4().hex
    if ckpt is not None:
        _restore(run, ckpt, source)
    lock = _claim(run, source)
    try:
        _log(verbose, dist_info,
             f"spikefuse train: data={cfg.data} neuron={cfg.neuron} gradient={cfg.gradient} "
             f"hidden={cfg.hidden}x{cfg.layers} T={cfg.T} epochs={cfg.epochs} device={run.device} "
             f"threads={cfg.threads} processes={dist_info.world_size} -> {run.out}")
        for epoch in range(run.start_epoch, cfg.epochs):
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
            t0 = time.time()
            stats = _run_epoch(run, epoch, progress)
            _record_epoch(run, epoch, stats, t0)
        return _finish(run)
    finally:
        if lock is not None:
            lock.release()


def _claim(run: _Run, source: Optional[Path]):
    """Rank 0 takes the run folder (lock, owner check), then writes config.toml and the
    metrics so far; returns the lock (None on other ranks)."""
    if not run.dist.is_main:
        return None
    lock = claim(run.out, run.run_id, resuming=source is not None, source=source)
    try:
        atomic_write(run.out / "config.toml", config_to_toml(run.cfg, run.run_id).encode())
        _write_jsonl(run.out / "metrics.jsonl", run.history)
    except BaseException:
        lock.release()
        raise
    return lock


def _resolve_run(cfg: TrainConfig, resume, overrides, dist_info: DistInfo):
    """The resolved config (from the checkpoint when resuming), its run folder and device;
    returns ``(cfg, checkpoint or None, checkpoint path or None)``, sets ``dist_info.device``
    and this process's thread count."""
    ckpt = ckpt_path = None
    if resume:
        ckpt_path = _resolve_resume(resume, cfg)
        ckpt = load_checkpoint(ckpt_path)
        check_train_checkpoint(ckpt, ckpt_path)
        try:
            saved = TrainConfig.from_dict(ckpt["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {str(ckpt_path)!r}: its config is invalid: {e}") from None
        upd = dict(overrides or {})
        upd.setdefault("out", str(ckpt_path.parent))
        cfg = dataclasses.replace(saved, **upd)
    try:
        cfg = cfg.resolve()
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    if cfg.out is not None and not str(cfg.out).strip():
        raise ConfigError("out: expected a folder path, got an empty string")
    if cfg.out is None:
        cfg.out = _default_out(cfg)
        if dist_info.distributed:  # every process uses rank 0's time-stamped folder name
            import torch.distributed as dist

            name = [cfg.out]
            dist.broadcast_object_list(name, src=0)
            cfg.out = name[0]
    try:
        device = _pick_device(cfg.device, dist_info.local_rank)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    dist_info.device = device
    torch.set_num_threads(cfg.threads)
    if cfg.batch_size % dist_info.world_size:
        raise ConfigError(f"batch_size: must be divisible by the number of processes "
                          f"({dist_info.world_size}), got {cfg.batch_size}")
    return cfg, ckpt, ckpt_path


def _build(cfg: TrainConfig, dist_info: DistInfo, verbose: bool) -> _Run:
    """Data, model (with one trial step), DDP wrapper, optimizer, sampler and schedule, seeded
    identically on every process; nothing is written."""
    train_s, val_s, test_s, info = load_data(cfg)
    if info.time_first and cfg.T is None:
        cfg.T = info.n_steps
    run = _Run(cfg, dist_info, dist_info.device, _run_folder(cfg), train_s, val_s, test_s,
               cfg.batch_size // dist_info.world_size, info=info, verbose=verbose)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    try:
        run.model = build_model(cfg, info.n_inputs, info.n_classes, bool(info.time_first),
                                input_shape=info.input_shape).to(run.device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"model: cannot be built from this configuration: {_first_line(e)}") from None
    _trial_step(run)
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


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _trial_step(run: _Run) -> None:
    """One forward and backward pass on two training samples, so that a configuration the
    model cannot run (e.g. a backend without a kernel for it) fails before anything is
    written. RNG states are restored and the gradients dropped: the run is unchanged."""
    devices = [run.device] if run.device.type == "cuda" else []
    x, y = run.train_s.batch(list(range(min(2, run.train_s.n))))
    try:
        with torch.random.fork_rng(devices=devices):
            with _autocast(run.cfg, run.device):
                logits = run.model(x.to(run.device))
            F.cross_entropy(logits.float(), y.to(run.device)).backward()
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        raise ConfigError(f"model: the first training step fails with this configuration: "
                          f"{_first_line(e)}") from None
    finally:
        run.model.zero_grad(set_to_none=True)


def _restore(run: _Run, ckpt: dict, path: Path) -> None:
    """Model, optimizer, schedule, history, training time and RNG states from a checkpoint
    (in memory only; a checkpoint that does not fit this model raises CheckpointError)."""
    try:
        _restore_states(run, ckpt)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit this run: {_first_line(e)}") from None
    _log(run.verbose, run.dist, f"resuming {run.out} after epoch {run.start_epoch}/{run.cfg.epochs}")


def _restore_states(run: _Run, ckpt: dict) -> None:
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


def _progress_bar(run: _Run, epoch: int, progress: bool):
    """A live bar on a terminal; none in a log (the epoch summary line is the progress)."""
    if not (progress and run.dist.is_main and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{run.cfg.epochs}",
                leave=False, dynamic_ncols=True, file=sys.stderr)


class _Tally:
    """The epoch's summed loss and correct count. On the CPU ``loss.item()`` is a read, not a
    device synchronisation: the sums are Python numbers, as they always were. On a GPU they
    stay on the device (the same float64 arithmetic, so the same numbers) and are read once
    per epoch, or when a progress bar shows them."""

    def __init__(self, device: torch.device, on_device: Optional[bool] = None):
        self.on_device = device.type != "cpu" if on_device is None else on_device
        if self.on_device:
            self.loss = torch.zeros((), dtype=torch.float64, device=device)
            self.correct = torch.zeros((), dtype=torch.int64, device=device)
        else:
            self.loss, self.correct = 0.0, 0
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, n: int) -> None:
        hits = (logits.argmax(1) == y).sum()
        if self.on_device:
            self.loss += loss.detach().double() * n
            self.correct += hits
        else:
            self.loss += loss.item() * n
            self.correct += int(hits)
        self.seen += n

    def totals(self) -> tuple:
        if self.on_device:
            return float(self.loss), int(self.correct), self.seen
        return self.loss, self.correct, self.seen


def _clear_grads(opt: torch.optim.Optimizer) -> None:
    """``opt.zero_grad(set_to_none=True)`` without its ``torch.autograd.profiler.record_function``
    scope: the same assignment ``p.grad = None`` for every parameter the optimizer steps, ~40 us
    less per step on a CPU (the profiler scope is most of ``zero_grad``'s time for a small
    network; issue 15 item 3). The optimizer's own ``step`` keeps its scope and hooks."""
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = None


def _train_step(run: _Run, x, y, tally: _Tally) -> None:
    """One optimisation step on the batch ``(x, y)``."""
    with _autocast(run.cfg, run.device):
        logits = run.net(x)
    loss = F.cross_entropy(logits.float(), y)
    _clear_grads(run.opt)
    loss.backward()
    run.opt.step()
    run.sched.step()
    tally.add(loss, logits, y, len(y))


def _run_epoch(run: _Run, epoch: int, progress: bool) -> tuple:
    """One pass over the training split; returns ``(sum_loss, sum_correct, seen)`` summed over
    every process. Per step only the batch, the model and the optimizer run: the split's values
    were scanned for NaN/inf once (:func:`_checked_inputs`), the sample order is one index
    tensor per epoch, and the metrics are summed without a device synchronisation."""
    device = run.device
    run.sampler.set_epoch(epoch)
    order = torch.as_tensor(list(iter(run.sampler)), dtype=torch.int64)
    run.net.train()
    tally = _Tally(device)
    bar = _progress_bar(run, epoch, progress)
    with _checked_inputs(run.train_s):
        for b in range(run.steps_per_epoch):
            x, y = run.train_s.batch(order[b * run.local_bs:(b + 1) * run.local_bs])
            _train_step(run, x.to(device, non_blocking=True), y.to(device, non_blocking=True), tally)
            if bar is not None:
                sum_loss, sum_correct, seen = tally.totals()
                bar.set_postfix(loss=f"{sum_loss / seen:.4f}", acc=f"{sum_correct / seen:.4f}",
                                refresh=False)  # drawn by update(), at most every mininterval
                bar.update(1)
    if bar is not None:
        bar.close()
    sum_loss, sum_correct, seen = tally.totals()
    if run.dist.distributed:
        import torch.distributed as dist

        t = torch.tensor([sum_loss, float(sum_correct), float(seen)], dtype=torch.float64,
                         device=device)
        dist.all_reduce(t)
        sum_loss, sum_correct, seen = t[0].item(), int(t[1].item()), int(t[2].item())
    return sum_loss, sum_correct, seen


def _record_epoch(run: _Run, epoch: int, stats: tuple, t0: float) -> None:
    """Validate, append the epoch's record to the history, write the checkpoint, then the
    metrics.jsonl line that announces it (a crash in between is repaired on resume, which
    rewrites metrics.jsonl from the checkpoint's history)."""
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
        save_checkpoint(run.out / CHECKPOINT_NAME, {
            "format": 2, "run_id": run.run_id, "epoch": epoch + 1, "config": cfg.to_dict(),
            "model_args": _model_args(run.info), "model": run.model.state_dict(),
            "optimizer": run.opt.state_dict(), "schedule": _schedule_state(run.sched),
            "history": run.history, "rng": _rng_state(), "train_time_s": run.train_time,
        })
        with open(run.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")


def _model_args(info) -> dict:
    """What :func:`build_model` needs besides the config (kept in the checkpoint)."""
    return {"n_inputs": int(info.n_inputs), "n_classes": int(info.n_classes),
            "time_first": bool(info.time_first)}


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
        "val_split": val_split(run.val_s), "threads": cfg.threads, "run_id": run.run_id,
    }
    if run.dist.is_main:
        _write_json(run.out / "metrics.json", result)
        if cfg.plots:
            try:
                _make_plots(run.out, run.model, run.test_s, history, cfg, run.device, result)
            except ImportError as e:  # matplotlib missing: the run's results still stand
                print(f"spikefuse train: no plots: {e}", file=sys.stderr)
        _log(run.verbose, run.dist, f"test accuracy: {100 * test_acc:.2f}% (loss {test_loss:.4f}, "
                                    f"{done}/{cfg.epochs} epochs, {run.train_time:.1f}s) -> {run.out}")
    result["out"] = str(run.out)
    if run.dist.distributed:
        import torch.distributed as dist

        dist.barrier()
    return result


def val_split(split: _Split) -> str:
    """``"test"`` where the data set has no validation split (its "val" is the test split)."""
    return "test" if getattr(split.info, "note", "") else "val"


def _resolve_resume(resume, cfg: TrainConfig) -> Path:
    if resume is True:
        if cfg.out is None:
            raise ValueError("resume: needs the run folder (--out) or a path (--resume PATH)")
        p = Path(cfg.out)
    else:
        p = Path(resume)
    if p.is_dir():
        p = p / CHECKPOINT_NAME if not (p / "checkpoint.pt").is_file() or (p / CHECKPOINT_NAME).is_file() \
            else p / "checkpoint.pt"
    if not p.is_file():
        raise CheckpointError(f"checkpoint: file not found: {str(p)!r} (nothing to resume)")
    return p


def _make_plots(out: Path, model, test_s: _Split, history, cfg, device,
                result: Optional[dict] = None) -> None:
    """curves.png (from the metrics), raster.png and rates.png (from the model on the first
    test samples)."""
    from . import plots

    plots.plot_curves(history, out / "curves.png", result=result,
                      val_label=_val_label(result))
    x, y = test_s.batch(list(range(min(test_s.n, 256))))
    with torch.no_grad():
        model.eval()
        logits, rec = model(x.to(device), record=True)
        model.train()
    spikes = [s.float().cpu() for s in rec["spikes"]]
    pairs = [(c, "before reset") if c is not None else (m, "after reset")
             for c, m in zip(rec.get("charges") or [None] * len(rec["membranes"]), rec["membranes"])]
    mems = [None if m is None else m[:, 0].float().cpu() for m, _ in pairs]
    plots.plot_raster([s[:, 0] for s in spikes], rec["output"][:, 0].float().cpu(),
                      out / "raster.png", label=int(y[0]), prediction=int(logits[0].argmax()),
                      hidden_membranes=mems, membrane_kinds=[k for _, k in pairs])
    plots.plot_rates(spikes, out / "rates.png")


_VAL_LABELS = {"val": "validation", "test": "test split (no validation split)"}


def _val_label(result: Optional[dict]) -> str:
    """What the "val" curve is: the validation split, or the test split where there is none."""
    return _VAL_LABELS.get((result or {}).get("val_split", "val"), "validation")
