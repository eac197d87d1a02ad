"""Using a trained run: :func:`load_run` (model in eval mode + config), evaluation with a
confusion matrix and per-layer spike rates, NIR export. Behind ``spikefuse eval``,
``spikefuse export`` and ``spikefuse plot``."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .config import TrainConfig
from .model import SpikingClassifier, build_model


def _checkpoint_path(path) -> Path:
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path: expected a run folder or checkpoint file, got {type(path).__name__}")
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"checkpoint: file not found: {str(p)!r} (expected a run folder "
                              f"holding {CHECKPOINT_NAME}, or that file)")
    return p


def load_run(path, device="cpu"):
    """The trained model of a run and its resolved config: ``(model, cfg)``.

    ``path``: a run folder (written by ``spikefuse train``) or its ``checkpoint.safetensors``.
    The checkpoint is verified (checksum) and read without unpickling; the model is a
    :class:`~spikefuse.train.SpikingClassifier` in eval mode on ``device``.

    >>> model, cfg = load_run("runs/yy")                     # doctest: +SKIP
    >>> logits = model(torch.rand(8, 4))                     # doctest: +SKIP
    """
    p = _checkpoint_path(path)
    ck = load_checkpoint(p)
    for key in ("config", "model", "model_args"):
        if key not in ck:
            raise CheckpointError(f"checkpoint {str(p)!r} is not a training checkpoint: missing {key!r}")
    try:
        cfg = TrainConfig.from_dict(ck["config"]).resolve()
        args = ck["model_args"]
        model = build_model(cfg, int(args["n_inputs"]), int(args["n_classes"]), bool(args["time_first"]))
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {str(p)!r} does not describe a model: {e}") from None
    return model.to(device).eval(), cfg


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(n_classes, n_classes)`` counts, row = true class, column = predicted class.

    >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2).tolist()
    [[1, 1], [0, 1]]
    """
    idx = target.long() * n_classes + pred.long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@torch.no_grad()
def evaluate_run(model: SpikingClassifier, cfg: TrainConfig, split, batch_size: int = 1000) -> dict:
    """Accuracy, mean loss, confusion matrix and mean spike rate per hidden layer (spikes per
    neuron and step, over the whole split) of ``model`` on a :class:`~spikefuse.train.data._Split`."""
    import torch.nn.functional as F

    model.eval()
    device = next(model.parameters()).device
    preds, targets, rate_sums, loss = [], [], None, 0.0
    for start in range(0, split.n, batch_size):
        x, y = split.batch(list(range(start, min(split.n, start + batch_size))))
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            logits, rec = model(x.to(device), record=True)
        logits = logits.float()
        loss += F.cross_entropy(logits, y.to(device), reduction="sum").item()
        preds.append(logits.argmax(1).cpu())
        targets.append(y.cpu())
        sums = [float(s.float().mean()) * len(y) for s in rec["spikes"]]
        rate_sums = sums if rate_sums is None else [a + b for a, b in zip(rate_sums, sums)]
    n = max(1, split.n)
    pred, target = torch.cat(preds), torch.cat(targets)
    n_classes = int(model.output.weight.shape[0])
    return {"n": split.n, "accuracy": float((pred == target).float().mean()), "loss": loss / n,
            "confusion": confusion_matrix(pred, target, n_classes).tolist(),
            "spike_rates": [r / n for r in (rate_sums or [])]}


def as_sequential(model: SpikingClassifier) -> nn.Sequential:
    """The layers of ``model`` as one ``nn.Sequential`` (hidden blocks, readout synapse,
    output integrator) for :func:`spikefuse.interop.nir.to_nir`; the readout reduction over
    time (``cfg.readout``) is not part of the graph."""
    return nn.Sequential(*model.hidden, model.output, model.integrator)


def export_nir(model: SpikingClassifier, cfg: TrainConfig, path, dt: Optional[float] = None) -> float:
    """Write ``model`` as a NIR graph file; returns the ``dt`` used (default: 1e-6 s for the
    ``cuba`` neuron, whose modules are built with that step, else 1e-3 s)."""
    from ..interop.nir import to_nir

    try:
        import nir
    except ImportError:
        raise ImportError('export needs the nir package: pip install -e ".[nir]" '
                          "(from the spikefuse checkout)") from None
    if dt is None:
        dt = 1e-6 if cfg.neuron == "cuba" else 1e-3
    graph = to_nir(as_sequential(model), dt=dt, input_shape=(model.n_inputs,))
    nir.write(str(path), graph)
    return dt


def split_for(cfg: TrainConfig, split: str, data: Optional[str] = None, data_root=None,
              max_samples: Optional[int] = None):
    """``(split, info)``: one split of the run's data set, or of ``data`` (which must have the
    run's input size; checked by the model)."""
    from .data import load_split

    c = dataclasses.replace(cfg, data=data or cfg.data, data_root=data_root or cfg.data_root)
    return load_split(c.resolve() if data else c, split, max_samples)
