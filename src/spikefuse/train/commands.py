"""``spikefuse eval``, ``spikefuse export`` and ``spikefuse plot``: commands on a run folder.
Each returns an exit status and reports a problem in one line on stderr (2: bad argument,
1: the run, its files or a package are not usable)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .checkpoint import atomic_write
from .config import ConfigError


def run(args) -> int:
    prog = f"spikefuse {args.command}"
    fn = {"eval": _eval, "export": _export, "plot": _plot}[args.command]
    try:
        return fn(args)
    except (ConfigError, TypeError) as e:
        return _fail(prog, e, 2)
    except (ValueError, OSError, RuntimeError, ImportError, KeyError) as e:
        return _fail(prog, e, 1)


def _fail(prog: str, e: BaseException, code: int) -> int:
    text = str(e).strip()
    print(f"{prog}: error: {text.splitlines()[0] if text else type(e).__name__}",
          file=sys.stderr, flush=True)
    return code


def _eval(args) -> int:
    from . import plots
    from .use import evaluate_run, load_run, split_for

    if args.max_samples is not None and args.max_samples < 1:
        raise ConfigError(f"max_samples: must be >= 1, got {args.max_samples}")
    if args.split not in ("train", "val", "test"):
        raise ConfigError(f"split: expected one of ['train', 'val', 'test'], got {args.split!r}")
    model, cfg = load_run(args.run)
    split, info = split_for(cfg, args.split, args.data, args.data_root, args.max_samples)
    if info.n_inputs != model.n_inputs:
        raise ConfigError(f"data: {info.name!r} has {info.n_inputs} inputs per step, the run's "
                          f"model takes {model.n_inputs}")
    res = evaluate_run(model, cfg, split)
    res.update(data=info.name, split=args.split, run=str(args.run))
    out = Path(args.out) if args.out else _run_folder(args.run)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"eval-{info.name}-{args.split}"
    atomic_write(stem.with_suffix(".json"), (json.dumps(res, indent=2) + "\n").encode())
    plots.plot_confusion(res["confusion"], stem.with_suffix(".png"),
                         title=f"{info.name} {args.split}: {100 * res['accuracy']:.2f} % of {res['n']}")
    rates = ", ".join(f"{r:.4f}" for r in res["spike_rates"])
    print(f"{info.name} {args.split}: accuracy {100 * res['accuracy']:.2f}% ({res['n']} samples, "
          f"loss {res['loss']:.4f}); spike rate per hidden layer (spikes/neuron/step): {rates}")
    print(f"confusion matrix (rows: true, columns: predicted) -> {stem.with_suffix('.png')}")
    for row in res["confusion"]:
        print("  " + " ".join(f"{v:5d}" for v in row))
    return 0


def _export(args) -> int:
    from .use import export_nir, load_run

    if args.dt is not None and not args.dt > 0:
        raise ConfigError(f"dt: must be > 0, got {args.dt}")
    model, cfg = load_run(args.run)
    dt = export_nir(model, cfg, args.nir, dt=args.dt)
    print(f"wrote {args.nir} (NIR graph, dt = {dt:g} s per step; the {cfg.readout!r} readout over "
          "time of the output node is applied outside the graph)")
    return 0


def _run_folder(path) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


def _plot(args) -> int:
    from . import plots
    from .loop import _make_plots, _val_label
    from .use import load_run, split_for

    folder = _run_folder(args.run)
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    history = [json.loads(s) for s in lines if s.strip()]
    result = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else None
    if args.curves_only:
        plots.plot_curves(history, folder / "curves.png", result=result, val_label=_val_label(result))
        print(f"redrew {folder / 'curves.png'}")
        return 0
    model, cfg = load_run(folder)
    test_s, _ = split_for(cfg, "test")
    _make_plots(folder, model, test_s, history, cfg, next(model.parameters()).device, result)
    print(f"redrew curves.png, raster.png and rates.png in {folder}")
    return 0
