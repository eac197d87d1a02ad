"""PNG plots of a training run (matplotlib, Agg; no display needed).

- :func:`plot_curves` — loss and accuracy per epoch (train and validation).
- :func:`plot_raster` — spike raster of every hidden layer (with the membrane of its most
  active neurons where the neuron exposes it) and the output membrane over time, for one sample.
- :func:`plot_rates` — firing rate per neuron (histogram) and mean rate per layer.

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

__all__ = ["plot_curves", "plot_raster", "plot_rates"]


def _figure(rows: int, cols: int, size):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - matplotlib is an optional dependency
        raise ImportError("plots need matplotlib: pip install 'spikefuse[plots]' "
                          "(or run with --no-plots)") from e
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _save(fig, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_curves(history: Sequence[dict], path) -> None:
    """Loss (left) and accuracy (right) per epoch from ``metrics.jsonl`` records."""
    fig, ax = _figure(1, 2, (10, 4))
    epochs = [h["epoch"] for h in history]
    for key, style in (("train", "-o"), ("val", "-s")):
        ax[0, 0].plot(epochs, [h.get(f"{key}_loss") for h in history], style, label=key, ms=3)
        ax[0, 1].plot(epochs, [100 * h.get(f"{key}_acc", 0.0) for h in history], style, label=key, ms=3)
    ax[0, 0].set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax[0, 1].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for a in ax[0]:
        a.grid(alpha=0.3)
        a.legend()
    _save(fig, path)


def plot_raster(spikes: Sequence[torch.Tensor], membrane: torch.Tensor, path,
                label: Optional[int] = None, prediction: Optional[int] = None,
                hidden_membranes: Optional[Sequence[Optional[torch.Tensor]]] = None,
                n_traces: int = 4) -> None:
    """Raster of each hidden layer (``(T, N)`` spike tensors of one sample), the membrane of
    its ``n_traces`` most active (not saturated) neurons where ``hidden_membranes`` gives one (``(T, N)`` or
    None per layer), and the output membrane ``(T, C)`` of the same sample."""
    n = len(spikes)
    mems = list(hidden_membranes or [None] * n)
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
            ax[r, 0].set(ylabel="membrane", title=f"hidden layer {i + 1}: membrane (after reset) "
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
