"""PNG plots of a training run (matplotlib, Agg; no display needed).

- :func:`plot_curves` — loss and accuracy per epoch (train and validation, the final test
  result marked) and the learning rate.
- :func:`plot_raster` — spike raster of every hidden layer (with the membrane of its most
  active neurons where the neuron exposes it) and the output membrane over time, for one sample.
- :func:`plot_rates` — firing rate per neuron (histogram) and mean rate per layer.
- :func:`plot_confusion` — confusion matrix of an evaluation.

The functions build a :class:`matplotlib.figure.Figure` directly (no pyplot state), so they are
safe in scripts, tests and worker processes.

Example::

    >>> import os, tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> plot_curves([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5,
    ...               "val_acc": 0.4}], os.path.join(d, "curves.png"))
    >>> os.path.exists(os.path.join(d, "curves.png"))
    True
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

__all__ = ["plot_curves", "plot_raster", "plot_rates", "plot_confusion"]


def _figure(rows: int, cols: int, size):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - matplotlib is an optional dependency
        raise ImportError('plots need matplotlib: pip install -e ".[plots]" from the spikefuse '
                          "checkout (or run with --no-plots)") from e
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _save(fig, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_curves(history: Sequence[dict], path, result: Optional[dict] = None,
                val_label: str = "validation") -> None:
    """Loss (left) and accuracy (middle) per epoch from ``metrics.jsonl`` records, with the
    final test loss/accuracy of ``result`` (``metrics.json``) marked, and the learning rate at
    the end of each epoch (right). ``val_label`` names what the "val" records are (e.g.
    ``"test split (no validation split)"`` for digits)."""
    fig, ax = _figure(1, 3, (14, 4))
    epochs = [h["epoch"] for h in history]
    for key, style, label in (("train", "-o", "train"), ("val", "-s", val_label)):
        ax[0, 0].plot(epochs, [h.get(f"{key}_loss") for h in history], style, label=label, ms=3)
        ax[0, 1].plot(epochs, [100 * h.get(f"{key}_acc", 0.0) for h in history], style, label=label, ms=3)
    if result and result.get("test_acc") is not None:
        done = result.get("epochs_completed", epochs[-1] if epochs else 0)
        for a, v, fmt in ((ax[0, 0], result.get("test_loss"), "{:.3f}"),
                          (ax[0, 1], 100 * result["test_acc"], "{:.2f} %")):
            if v is not None:
                a.axhline(v, color="C3", ls="--", lw=1)
                a.plot([done], [v], "*", color="C3", ms=12, label="test (final): " + fmt.format(v))
    ax[0, 0].set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax[0, 1].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax[0, 2].plot(epochs, [h.get("lr") for h in history], "-", color="C2")
    ax[0, 2].set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
    for a in ax[0]:
        a.grid(alpha=0.3)
    for a in ax[0, :2]:
        a.legend(fontsize=8)
    _save(fig, path)


def plot_raster(spikes: Sequence[torch.Tensor], membrane: torch.Tensor, path,
                label: Optional[int] = None, prediction: Optional[int] = None,
                hidden_membranes: Optional[Sequence[Optional[torch.Tensor]]] = None,
                n_traces: int = 4, membrane_kinds: Optional[Sequence[str]] = None) -> None:
    """Raster of each hidden layer (``(T, N)`` spike tensors of one sample), the membrane of
    its ``n_traces`` most active (not saturated) neurons where ``hidden_membranes`` gives one (``(T, N)`` or
    None per layer), and the output membrane ``(T, C)`` of the same sample. ``membrane_kinds``
    says per layer what the trace is (default ``"after reset"``; ``"before reset"`` for the
    charge, which moves even for neurons that fire on every step)."""
    n = len(spikes)
    mems = list(hidden_membranes or [None] * n)
    kinds = list(membrane_kinds or ["after reset"] * n)
    rows = n + sum(m is not None for m in mems) + 1
    fig, ax = _figure(rows, 1, (8, 2.2 * rows))
    r = 0
    for i, s in enumerate(spikes):
        s = s.detach().float().cpu().reshape(s.shape[0], -1)
        t, k = torch.nonzero(s > 0, as_tuple=True)
        ax[r, 0].scatter(t.numpy(), k.numpy(), s=30, marker="|", color="k", linewidths=1.5)
        ax[r, 0].set(ylabel="neuron", xlim=(-0.5, s.shape[0] - 0.5), ylim=(-0.5, s.shape[1] - 0.5),
                     title=f"hidden layer {i + 1}: {int(s.sum())} spikes")
        r += 1
        if mems[i] is not None:
            v = mems[i].detach().float().cpu().reshape(mems[i].shape[0], -1)
            counts = s.sum(0)
            # the most active neurons that do not fire on every step (those sit at the reset)
            score = torch.where((counts > 0) & (counts < s.shape[0]), counts, counts - 2 * s.shape[0])
            top = torch.argsort(score, descending=True)[:n_traces]
            for j in top.tolist():
                ax[r, 0].plot(range(v.shape[0]), v[:, j].numpy(), lw=1.2, label=f"neuron {j}")
            ax[r, 0].set(ylabel="membrane", title=f"hidden layer {i + 1}: membrane ({kinds[i]}) "
                                                  f"of {len(top)} active neurons")
            ax[r, 0].legend(fontsize=7, ncol=min(4, len(top)))
            r += 1
    m = membrane.detach().float().cpu().reshape(membrane.shape[0], -1)
    for c in range(m.shape[1]):
        ax[r, 0].plot(range(m.shape[0]), m[:, c].numpy(), label=f"class {c}",
                      lw=2.5 if c == label else 1.0)
    title = "output membrane"
    if label is not None:
        title += f" (label {label}" + (f", predicted {prediction})" if prediction is not None else ")")
    ax[r, 0].set(xlabel="time step", ylabel="membrane", title=title)
    if m.shape[1] <= 10:
        ax[r, 0].legend(fontsize=7, ncol=min(5, m.shape[1]))
    _save(fig, path)


def plot_rates(spikes: Sequence[torch.Tensor], path) -> None:
    """Per-neuron firing rates (spikes per step, over time and batch) of each layer
    (histogram, left) and the mean rate per layer (bars, right). ``spikes``: ``(T, B, ...)``."""
    fig, ax = _figure(1, 2, (10, 4))
    means = []
    for i, s in enumerate(spikes):
        s = s.detach().float().cpu()
        per_neuron = s.reshape(s.shape[0] * s.shape[1], -1).mean(0)
        ax[0, 0].hist(per_neuron.numpy(), bins=30, range=(0, 1), alpha=0.6, label=f"layer {i + 1}")
        means.append(float(per_neuron.mean()) if per_neuron.numel() else 0.0)
    ax[0, 0].set(xlabel="firing rate (spikes / step)", ylabel="neurons", title="rate per neuron")
    if spikes:
        ax[0, 0].legend()
    ax[0, 1].bar([f"layer {i + 1}" for i in range(len(means))], means)
    ax[0, 1].set(ylabel="mean rate (spikes / step)", title="mean firing rate per layer")
    _save(fig, path)


def plot_confusion(matrix, path, labels: Optional[Sequence[str]] = None, title: str = "") -> None:
    """A confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    m = torch.as_tensor(matrix).float()
    k = m.shape[0]
    fig, ax = _figure(1, 1, (1.5 + 0.55 * k, 1.2 + 0.5 * k))
    a = ax[0, 0]
    a.imshow(m.numpy(), cmap="Blues")
    for i in range(k):
        for j in range(k):
            a.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                   color="white" if m[i, j] > 0.6 * m.max() else "black")
    ticks = list(labels) if labels is not None else [str(i) for i in range(k)]
    a.set_xticks(range(k), ticks)
    a.set_yticks(range(k), ticks)
    a.set(xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
    _save(fig, path)
