"""Command line: ``spikefuse train``, ``eval``, ``export``, ``plot`` and ``bench`` (also
``python -m spikefuse``, ``torchrun -m spikefuse train``).

``spikefuse train`` options (every one may also come from ``--config run.toml``, top level or
a ``[train]`` table, with the same names, dashes or underscores; flags given on the command
line override the file):

--data        yinyang (default), digits, randman, shd, ssc, nmnist, dvsgesture, cifar10dvs,
              eventdigits (event-camera digits generated in code)
--data-root   folder holding the event-data files (default $SPIKEFUSE_DATA, else ./data)
--model       dense, recurrent (LIF with recurrent weights), conv (VGG-style); default per data set:
              recurrent for shd/ssc, conv for the event cameras and eventdigits, else dense
--neuron      lif (default), if, plif, cuba, loihi-cuba, eventprop
--gradient    atan, sigmoid, superspike, fast_sigmoid, triangle, slayer_exp, eventprop
              (default: the neuron's own: atan for lif/if/plif, superspike for cuba,
              slayer_exp for loihi-cuba, eventprop for eventprop)
--hidden, --layers, --T, --epochs, --batch-size, --lr   network and schedule (defaults per data set)
--optimizer   adam (default), adamw, sgd;  --weight-decay;  --schedule onecycle|cosine|none
--tau         membrane time constant in steps (default 2; 4 with --gradient adjoint);  --readout max|mean|last|count
--input-gain  static features enter as a constant current input_gain * x
--seed, --device auto|cpu|cuda, --amp (bf16 autocast), --backend auto|reference|cpu|triton
--threads N   intra-op CPU threads (default: chosen from the machine, written to config.toml)
--out         run folder (default runs/<data>-<neuron>-<time>); a folder that holds a run is
              never overwritten: use --resume to continue it. A run's own config.toml given
              as --config starts a new folder unless --resume.
--resume [PATH]   continue from <out>/checkpoint.safetensors (or PATH: a run folder or checkpoint)
--no-plots, --max-samples N (use the first N samples of every split), --no-progress, --quiet

Progress: a live bar on a terminal; in a log (stderr not a terminal) one line per epoch.

``spikefuse eval RUN`` (accuracy, confusion matrix, per-layer spike rates; ``--data``,
``--split``), ``spikefuse export RUN --nir FILE`` (or ``--lava FILE.net`` for a ``loihi.cuba``
run: lava-dl's netx HDF5, see :mod:`spikefuse.train.lava`) and ``spikefuse plot RUN`` (redraw the
figures from the run's metrics and checkpoint) work on a finished run folder.

Exit status: 0 on success, 2 for invalid arguments or configuration (nothing is written), 1 for
a failed run (missing data files or packages, corrupt or foreign checkpoint, ...), each with a
one-line message on stderr.

Example::

    $ spikefuse train --epochs 5 --out runs/yy
    $ spikefuse train --out runs/yy --resume
    $ spikefuse eval runs/yy
    $ spikefuse export runs/yy --nir yy.nir
    $ torchrun --nproc_per_node 2 -m spikefuse train --device cpu --out runs/ddp
    $ spikefuse bench --T 32 --batch 16 --features 256
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]

_TRAIN_KEYS = (
    "data", "model", "neuron", "gradient", "hidden", "layers", "T", "epochs", "batch_size", "lr",
    "optimizer", "weight_decay", "schedule", "tau", "input_gain", "readout", "seed", "device", "amp", "out",
    "backend", "plots", "max_samples", "data_root", "threads",
)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``prog: error: message``, exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_train(sub) -> argparse.ArgumentParser:
    from . import train as tr

    p = sub.add_parser("train", help="train a spiking network and write a run folder",
                       description="Train a spiking classifier; writes config.toml, metrics.jsonl, "
                                   "metrics.json, checkpoint.safetensors and PNG plots to --out.",
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE.toml", help="TOML file with any of the options below")
    p.add_argument("--data", help="data set: " + ", ".join(tr._data_names()) + " (default yinyang)")
    p.add_argument("--data-root", dest="data_root", metavar="DIR",
                   help="folder of the event data files (default $SPIKEFUSE_DATA, else ./data)")
    p.add_argument("--model", help="network: " + ", ".join(tr.MODELS) + " (default per data set)")
    p.add_argument("--neuron", help="neuron family: " + ", ".join(tr.NEURONS) + " (default lif)")
    p.add_argument("--gradient", help="surrogate, eventprop or (norse) adjoint: " + ", ".join(tr.GRADIENTS))
    p.add_argument("--hidden", type=int, help="neurons per hidden layer")
    p.add_argument("--layers", type=int, help="number of hidden layers")
    p.add_argument("--T", "-T", dest="T", type=int, help="time steps per sample (static data)")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="(peak) learning rate")
    p.add_argument("--optimizer", help="adam, adamw or sgd")
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--schedule", help="learning-rate schedule: onecycle, cosine, none")
    p.add_argument("--tau", type=float, help="membrane time constant in steps")
    p.add_argument("--input-gain", dest="input_gain", type=float,
                   help="static features enter as input_gain * x for T steps")
    p.add_argument("--readout", help="max, mean, last (membrane) or count (spikes)")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="intra-op CPU threads (default: from the machine)")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--amp", action="store_const", const=True, help="bf16 autocast")
    p.add_argument("--out", help="run folder (default runs/<data>-<neuron>-<time>)")
    p.add_argument("--resume", nargs="?", const=True, metavar="PATH",
                   help="continue from <out>/checkpoint.safetensors, or from PATH (run folder or file)")
    p.add_argument("--backend", help="neuron backend: auto, reference, cpu, triton")
    p.add_argument("--no-plots", dest="plots", action="store_const", const=False, help="skip PNG plots")
    p.add_argument("--max-samples", dest="max_samples", type=int,
                   help="use only the first N samples of every split (quick runs)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bars")
    p.add_argument("--quiet", action="store_const", const=True, help="print only the final result")
    return p


def _add_use(sub) -> None:
    """``eval``, ``export`` and ``plot``: commands on a finished run folder."""
    p = sub.add_parser("eval", help="accuracy, confusion matrix and spike rates of a trained run")
    p.add_argument("run", metavar="RUN", help="run folder (or its checkpoint.safetensors)")
    p.add_argument("--data", default=None, help="data set (default: the run's own)")
    p.add_argument("--data-root", dest="data_root", default=None, metavar="DIR")
    p.add_argument("--split", default="test", help="train, val or test (default test)")
    p.add_argument("--max-samples", dest="max_samples", type=int, default=None)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where eval-<data>-<split>.json/.png go (default: the run folder)")
    p = sub.add_parser("export", help="write a trained run as a NIR graph or a lava-dl netx file")
    p.add_argument("run", metavar="RUN", help="run folder (or its checkpoint.safetensors)")
    fmt = p.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--nir", metavar="FILE", help="NIR (HDF5) file to write")
    fmt.add_argument("--lava", metavar="FILE.net",
                     help="lava-dl netx HDF5 file to write (loihi.cuba runs only): the hidden "
                          "layers (and a count readout) as netx dense layers; a non-spiking "
                          "readout's weights go to the group 'readout', outside what netx loads")
    p.add_argument("--dt", type=float, default=None,
                   help="seconds per time step (default 1e-3; 1e-6 for the cuba neuron)")
    p = sub.add_parser("plot", help="redraw a run's figures from its metrics (and checkpoint)")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--curves-only", dest="curves_only", action="store_true",
                   help="only curves.png (no model or data needed)")


def _add_bench(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="forward/backward time per neuron family and backend",
                       description="Time forward and forward+backward of every neuron family on "
                                   "every available backend on the current device.")
    p.add_argument("--T", "-T", dest="T", type=int, default=None, help="time steps")
    p.add_argument("--batch", type=int, default=None, help="batch size")
    p.add_argument("--features", type=int, default=None, help="neurons")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--families", default=None, help="comma-separated subset of families")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``spikefuse`` argument parser (sub-commands train, eval, export, plot, bench)."""
    parser = _Parser(prog="spikefuse", description="spikefuse: spiking neural network training")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,export,plot,bench}",
                                parser_class=_Parser)
    sub.required = True
    _add_train(sub)
    _add_use(sub)
    _add_bench(sub)
    return parser


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _fail(prog: str, msg: str, code: int) -> int:
    print(f"{prog}: error: {msg}", file=sys.stderr, flush=True)
    return code


def _cmd_train(args: argparse.Namespace) -> int:
    from . import train as tr

    prog = "spikefuse train"
    given = vars(args)
    explicit = {k: given[k] for k in _TRAIN_KEYS if k in given}
    resume = given.get("resume", False)
    quiet = bool(given.get("quiet", False))
    progress = given.get("progress", True) and not quiet
    try:
        file_cfg = tr.load_config_file(given["config"]) if "config" in given else {}
        file_resume = file_cfg.pop("resume", False)
        resume = resume or file_resume
        if not resume and "config" in given and tr.config_run_id(given["config"]) is not None:
            if "out" not in explicit and file_cfg.pop("out", None) is not None:
                print(f"{prog}: note: {given['config']} is a run's own config: this starts a new "
                      "run folder (use --resume to continue that run)", file=sys.stderr, flush=True)
        if resume:
            base = tr.TrainConfig.from_dict({**file_cfg, **explicit})
            base.out = explicit.get("out", file_cfg.get("out"))
            cfg = base
            overrides = {**{k.replace("-", "_"): v for k, v in file_cfg.items()}, **explicit}
            overrides.pop("no_plots", None)
            tr.TrainConfig.from_dict(overrides)  # reject unknown keys early
        else:
            cfg = tr.TrainConfig.from_dict({**file_cfg, **explicit}).resolve()
            overrides = None
    except (ValueError, TypeError, ImportError) as e:
        return _fail(prog, _line(e), 2)
    try:
        result = tr.train(cfg, resume=resume, progress=progress, verbose=not quiet, overrides=overrides)
    except tr.ConfigError as e:
        return _fail(prog, _line(e), 2)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as e:
        return _fail(prog, _line(e), 1)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted (the last finished epoch is in the checkpoint: --resume)", 130)
    if quiet:
        print(f"test accuracy: {100 * result['test_acc']:.2f}% -> {result['out']}", flush=True)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    try:
        bench.run(T=args.T, batch=args.batch, features=args.features, repeat=args.repeat,
                  device=args.device, families=args.families, json_path=args.json)
    except (ValueError, TypeError) as e:
        return _fail("spikefuse bench", str(e), 2)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``spikefuse`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return _cmd_train(args)
    if args.command in ("eval", "export", "plot"):
        from .train import commands

        return commands.run(args)
    return _cmd_bench(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
