"""End-to-end training epoch of the default ``spikefuse train`` network against the same network
in snnTorch and SpikingJelly, side by side in one run. See benchmarks/README.md.

    python benchmarks/epoch.py                          # 1 thread and all threads, peers, 5 epochs
    python benchmarks/epoch.py --threads 1 --epochs 7 --profile
    python benchmarks/epoch.py --peers none --profile --json epoch.json

The spikefuse rows run the library's own training code: the run is resolved and built by
:mod:`spikefuse.train.loop` (data split, model factory, one trial step, optimizer, one-cycle
schedule, sampler) and each epoch is ``loop._run_epoch``, the function ``spikefuse train`` calls
(training pass only; the validation pass after it is not timed). The peers train the same network
(Yin-Yang, 4 -> 128 LIF (tau 2, hard reset to 0, ATan surrogate) -> 3 non-spiking leaky
integrator, T = 10 constant-current steps of ``input_gain * x``, max-over-time membrane readout,
cross-entropy, Adam with the same one-cycle schedule, batch 32) written the way their docs write
it; every implementation gets the same mini-batches (tensor indexing of the in-memory split in
the order of the same seeded sampler), so the rows differ only by the library.

Every epoch is timed with ``time.perf_counter``; the implementations take turns epoch by epoch
(after ``--warmup`` untimed epochs each), so load changes on a shared machine hit all of them
alike; the table shows the median (and min) wall time of ``--epochs`` epochs, and the median
CPU time of the process (``time.process_time``: all threads; on a loaded machine it moves less
than the wall time), and each median over spikefuse's.

``--profile``: a ``torch.profiler`` table (top ops by self CPU time) of one spikefuse epoch, and
a breakdown of the epoch's CPU time into its parts, each timed alone at the run's shapes on copies
of the run's own modules (median process CPU time per call x steps per epoch): data batching, synapse matmuls
(forward + backward), neuron scan forward and backward, readout (leaky integrator + max),
loss, optimizer (zero_grad + Adam step + schedule step), metrics (``loss.item()``, accuracy
count); "Python overhead and the rest" is the epoch's median CPU time minus their sum.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

try:  # run from a checkout without installing
    import spikefuse  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spikefuse import layers as L  # noqa: E402
from spikefuse.train import loop  # noqa: E402
from spikefuse.train.config import TrainConfig  # noqa: E402
from spikefuse.train.distributed import init_distributed  # noqa: E402

PEERS = ("snntorch", "spikingjelly")


# --------------------------------------------------------------------------- spikefuse


def spikefuse_run(cfg: TrainConfig, out: str):
    """The run ``spikefuse train`` builds for ``cfg`` (nothing written to ``out``)."""
    cfg = TrainConfig(**{**cfg.to_dict(), "out": out, "plots": False})
    dist = init_distributed("cpu")
    cfg, _, _ = loop._resolve_run(cfg, False, None, dist)
    return loop._build(cfg, dist, False)


@dataclass
class Impl:
    """One implementation: ``epoch(e)`` trains one epoch and returns ``(loss, accuracy)``."""

    name: str
    epoch: Callable[[int], tuple]
    times: list = field(default_factory=list)
    cpu_times: list = field(default_factory=list)


def spikefuse_impl(run) -> Impl:
    def epoch(e):
        s_loss, s_correct, seen = loop._run_epoch(run, e, False)
        return s_loss / seen, s_correct / seen

    return Impl("spikefuse", epoch)


# --------------------------------------------------------------------------- peers


def snntorch_net(cfg: TrainConfig, n_in: int, n_out: int):
    # snnTorch 1.0, tutorial 5 ("training spiking neural networks with snntorch"): nn.Linear +
    # snn.Leaky layers, mem = init_leaky(), a Python loop over the steps calling fc1 on the static
    # input, the output membrane recorded and stacked. beta = 1 - 1/tau with the input scaled by
    # 1 - beta is spikefuse's LIF(tau) with decay_input; the output Leaky with reset "none" is
    # the leaky integrator; surrogate.atan(alpha=2) is the ATan(2) of spikefuse's default.
    import snntorch as snn
    from snntorch import surrogate

    beta = 1.0 - 1.0 / cfg.tau

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, cfg.hidden)
            self.lif1 = snn.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero",
                                  spike_grad=surrogate.atan(alpha=2.0))
            self.fc2 = torch.nn.Linear(cfg.hidden, n_out)
            self.lif2 = snn.Leaky(beta=beta, reset_mechanism="none")

        def forward(self, x):
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            cur_in = x * cfg.input_gain
            mem2_rec = []
            for _ in range(cfg.T):
                cur1 = self.fc1(cur_in)
                spk1, mem1 = self.lif1(cur1 * (1 - beta), mem1)
                cur2 = self.fc2(spk1)
                _, mem2 = self.lif2(cur2 * (1 - beta), mem2)
                mem2_rec.append(mem2)
            return torch.stack(mem2_rec).amax(0)

    return Net()


def spikingjelly_net(cfg: TrainConfig, n_in: int, n_out: int):
    # SpikingJelly 2.0 ("basic concepts": containers and step modes): nn.Sequential of
    # layer.Linear, neuron.LIFNode(tau, surrogate ATan) and neuron.NonSpikingLIFNode(tau,
    # decode="max-mem") readout, functional.set_step_mode(net, "m"), the static input repeated
    # T times, functional.reset_net(net) after each batch.
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    net = torch.nn.Sequential(
        layer.Linear(n_in, cfg.hidden),
        neuron.LIFNode(tau=cfg.tau, v_reset=0.0, surrogate_function=surrogate.ATan()),
        layer.Linear(cfg.hidden, n_out),
        neuron.NonSpikingLIFNode(tau=cfg.tau, decode="max-mem"),
    )
    functional.set_step_mode(net, "m")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            x_seq = (x * cfg.input_gain).unsqueeze(0).repeat(cfg.T, 1, 1)
            out = self.net(x_seq)
            functional.reset_net(self.net)
            return out

    return Net()


PEER_NETS = {"snntorch": snntorch_net, "spikingjelly": spikingjelly_net}


def peer_impl(name: str, run) -> Impl:
    """The peer's network trained on the run's split with the run's batches, optimizer and
    schedule settings, loss and metrics."""
    cfg, split = run.cfg, run.train_s
    torch.manual_seed(cfg.seed)
    net = PEER_NETS[name](cfg, run.info.n_inputs, run.info.n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr,
                                                total_steps=max(1, cfg.epochs * run.steps_per_epoch))
    sampler = copy.deepcopy(run.sampler)
    bs = run.local_bs

    def epoch(e):
        sampler.set_epoch(e)
        order = list(iter(sampler))
        net.train()
        s_loss, s_correct, seen = 0.0, 0, 0
        for b in range(run.steps_per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            x, y = split.batch(idx)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched.last_epoch < sched.total_steps - 1:
                sched.step()
            s_loss += loss.item() * len(idx)
            s_correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        return s_loss / seen, s_correct / seen

    return Impl(name, epoch)


# --------------------------------------------------------------------------- timing


def time_epochs(impls: list, epochs: int, warmup: int) -> None:
    """Warm-up, then ``epochs`` timed epochs per implementation, taking turns."""
    for e in range(warmup):
        for im in impls:
            im.epoch(e)
    for e in range(warmup, warmup + epochs):
        for im in impls:
            t0, c0 = time.perf_counter(), time.process_time()
            im.epoch(e)
            im.times.append(time.perf_counter() - t0)
            im.cpu_times.append(time.process_time() - c0)


def _median_call(fn: Callable, repeat: int) -> float:
    """Median process CPU seconds of ``fn()`` (CPU time: waiting for a core on a shared
    machine does not count)."""
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return statistics.median(ts)


def _fwd_bwd(f, x):
    """Callables timing ``f(x)`` forward alone and forward + backward of its sum."""
    def fwd():
        with torch.no_grad():
            f(x)

    def both():
        f(x).sum().backward()

    return fwd, both


def breakdown(run, repeat: int = 30) -> dict:
    """Per-epoch milliseconds of each part of a training step, each timed alone (module
    docstring); "python_and_rest_ms" is left for the caller (epoch median minus the sum)."""
    L.reset_states(run.model)  # the last forward's membrane holds a graph: no deepcopy
    model = copy.deepcopy(run.model)
    steps, bs = run.steps_per_epoch, run.local_bs
    idx = list(range(bs))
    x, y = run.train_s.batch(idx)
    h0 = model.encode(x).detach()
    blk = model.hidden[0]
    with torch.no_grad(), L.trusted_inputs():
        cur = blk.synapse(h0)
        spk = blk.neuron(cur.clone())
        mem = model.integrator(model.output(spk))
        L.reset_states(model)
    cur = cur.clone().requires_grad_(True)
    spk = spk.clone().requires_grad_(True)
    out_in = model.output(spk).detach().requires_grad_(True)
    logits = mem.amax(0).detach().requires_grad_(True)
    parts = {}

    def neuron(v):
        L.reset_states(model)
        return blk.neuron(v)

    fwd, both = _fwd_bwd(neuron, cur)
    parts["neuron_fwd_ms"] = _median_call(fwd, repeat)
    parts["neuron_bwd_ms"] = max(0.0, _median_call(both, repeat) - parts["neuron_fwd_ms"])
    syn = lambda: (blk.synapse(h0).sum() + model.output(spk).sum()).backward()  # noqa: E731
    with L.trusted_inputs():
        parts["synapse_ms"] = _median_call(syn, repeat)
        parts["readout_ms"] = _median_call(lambda: model.integrator(out_in).amax(0).sum().backward(),
                                           repeat)
    parts["loss_ms"] = _median_call(lambda: F.cross_entropy(logits, y).backward(), repeat)
    opt = torch.optim.Adam(model.parameters(), lr=run.cfg.lr)  # the copy's parameters, the run's state
    opt.load_state_dict(run.opt.state_dict())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=run.cfg.lr, total_steps=10 ** 6)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)

    def optim():
        opt.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)  # stands for the gradients backward writes
        opt.step()
        sched.step()

    parts["optimizer_ms"] = _median_call(optim, repeat)
    order = list(range(run.train_s.n))
    parts["data_ms"] = _median_call(lambda: run.train_s.batch(order[:bs]), repeat)
    parts["metrics_ms"] = _median_call(lambda: (logits.sum().item(), int((logits.argmax(1) == y).sum())),
                                       repeat)
    return {k: 1e3 * v * steps for k, v in parts.items()}


def profile_table(run, epoch: int, rows: int = 25) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loop._run_epoch(run, epoch, False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", nargs="+", default=["1", "all"],
                    help="thread counts to run (integers or 'all'; default: 1 all)")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per implementation")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    ap.add_argument("--peers", nargs="+", default=list(PEERS), metavar="PEER",
                    help=f"peers to run: {' '.join(PEERS)} or 'none' (default: all)")
    ap.add_argument("--profile", action="store_true",
                    help="torch.profiler table and step breakdown of one spikefuse epoch")
    ap.add_argument("--repeat", type=int, default=30, help="calls per part of the breakdown")
    ap.add_argument("--data", default="yinyang")
    ap.add_argument("--max-samples", type=int, default=None, help="smaller split (quick runs)")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--T", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    return ap


def _threads(values) -> list:
    out = []
    for v in values:
        if v == "all":
            out.append(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
        else:
            out.append(int(v))
    return list(dict.fromkeys(out))


def _peers(values) -> list:
    if values == ["none"]:
        return []
    bad = [p for p in values if p not in PEERS]
    if bad:
        raise SystemExit(f"--peers: expected some of {list(PEERS)} or 'none', got {bad}")
    return values


def _config(args) -> TrainConfig:
    kw = {k: getattr(args, k) for k in ("hidden", "T", "batch_size", "max_samples")
          if getattr(args, k) is not None}
    return TrainConfig(data=args.data, **kw)


def _build_impls(cfg, threads, peers, out):
    run = spikefuse_run(TrainConfig(**{**cfg.to_dict(), "threads": threads}), out)
    impls = [spikefuse_impl(run)]
    for name in peers:
        try:
            impls.append(peer_impl(name, run))
        except ImportError as e:
            print(f"{name}: not run: {e}", file=sys.stderr)
    return run, impls


def run_threads(cfg, threads: int, args, out: str) -> dict:
    """Every implementation at ``threads`` intra-op threads; returns the result record."""
    old = torch.get_num_threads()
    try:
        run, impls = _build_impls(cfg, threads, _peers(args.peers), out)
        torch.set_num_threads(threads)
        time_epochs(impls, args.epochs, args.warmup)
        rows = {im.name: {"median_ms": 1e3 * statistics.median(im.times), "min_ms": 1e3 * min(im.times),
                          "cpu_median_ms": 1e3 * statistics.median(im.cpu_times),
                          "epochs_ms": [1e3 * t for t in im.times]} for im in impls}
        base = rows["spikefuse"]["median_ms"]
        for r in rows.values():
            r["vs_spikefuse"] = r["median_ms"] / base
        rec = {"threads": threads, "steps_per_epoch": run.steps_per_epoch, "rows": rows}
        if args.profile:
            parts = breakdown(run, args.repeat)
            parts["python_and_rest_ms"] = rows["spikefuse"]["cpu_median_ms"] - sum(parts.values())
            rec["breakdown_ms"] = parts
            rec["profile"] = profile_table(run, args.warmup + args.epochs)
        return rec
    finally:
        torch.set_num_threads(old)


def _print(rec: dict, cfg) -> None:
    print(f"\n## threads={rec['threads']}  ({rec['steps_per_epoch']} steps/epoch)")
    print(f"{'impl':<14}{'median ms':>11}{'min ms':>9}{'cpu ms':>9}{'x spikefuse':>13}")
    for name, r in rec["rows"].items():
        print(f"{name:<14}{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}{r['cpu_median_ms']:>9.1f}"
              f"{r['vs_spikefuse']:>13.2f}")
    if "breakdown_ms" in rec:
        print("\nspikefuse epoch breakdown (CPU ms per epoch; parts timed alone, see the docstring)")
        for k, v in rec["breakdown_ms"].items():
            print(f"  {k[:-3]:<20}{v:>9.1f}")
        print(f"\ntorch.profiler, one spikefuse epoch, top ops by self CPU time\n{rec['profile']}")


def main(argv=None) -> list:
    args = _parser().parse_args(argv)
    cfg = _config(args)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "loadavg_start": load,
            "numba": os.environ.get("SPIKEFUSE_NO_NUMBA") is None, "epochs": args.epochs,
            "warmup": args.warmup, "config": cfg.resolve().to_dict()}
    print(f"# epoch benchmark: {cfg.data}, load average {load}, torch {torch.__version__}")
    records = []
    with tempfile.TemporaryDirectory() as out:
        for n in _threads(args.threads):
            rec = run_threads(cfg, n, args, os.path.join(out, f"run{n}"))
            _print(rec, cfg)
            records.append(rec)
    meta["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "records": records}, indent=2) + "\n")
    return records


if __name__ == "__main__":
    main()
