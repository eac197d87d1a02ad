"""Random-manifold spike-timing datasets (Zenke & Vogels 2021, "randman").

A *random manifold* is a smooth random map from the unit cube ``[0, 1]^M`` (the intrinsic
manifold coordinates) into ``E`` embedding dimensions. Embedding dimension ``e`` is the
product over the manifold dimensions ``d`` of a random Fourier series

    f_ed(u) = sum_{i=0}^{F-1} a_edi * s_i * sin(2 pi (i * u * b_edi + c_edi)),
    s_i = 1 / ((i + 1)^alpha + 1),

with ``a, b, c ~ U[0, 1)`` and ``F = min(ceil(prec^(-1/alpha)), max_f_cutoff)`` terms; a larger
``alpha`` gives a smoother manifold. Without ``use_bias`` the constant term's amplitude
``a_ed0`` is zero.

The spiking dataset (``make_randman``) follows the published construction: each class is one
random manifold (or ``n_spikes`` of them, one per spike of every unit) in ``E = n_units``
dimensions; a sample draws ``x ~ U[0,1)^M`` and maps it through the manifold; every embedding
coordinate is min-max standardised over the class's samples, ``(y - min) / (max - min + 1e-7)``,
and becomes the spike time ``t = y * n_steps * step_frac`` (in steps) of one unit. Every unit
fires exactly ``n_spikes`` times per sample, so only spike *timing* carries the class.

Randomness comes from a private ``torch.Generator`` seeded by ``seed`` (the global RNG is never
touched; ``seed=None`` draws a seed from the global torch RNG). The class manifolds depend only
on ``seed`` and the manifold shape, not on ``n_samples``. The numbers are not bit-identical to the
reference numpy/torch implementation (which seeds global RNGs), the construction is the same.

Example::

    >>> from spikefuse.data.randman import RandMan
    >>> ds = RandMan("train", n_classes=3, n_units=20, n_steps=50, n_samples=100, seed=1)
    >>> x, y = ds[0]
    >>> x.shape, x.sum().item()          # (T, n_units); each unit fires once
    (torch.Size([50, 20]), 20.0)
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch.utils.data import Dataset

from .._validate import check_choice, check_number
from ._checks import check_int as _check_int
from ._checks import check_scalar

__all__ = ["RandomManifold", "RandmanData", "make_randman", "randman_raster", "RandMan"]


def _resolve_seed(seed) -> int:
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    seed = _check_int("seed", seed, ge=0)
    if seed >= 2**63:
        raise ValueError(f"seed: must be < 2**63, got {seed}")
    return seed


class RandomManifold:
    """A smooth random manifold ``[0,1]^manifold_dim -> R^embedding_dim`` (see module doc).

    Args:
        embedding_dim: number of output dimensions ``E``.
        manifold_dim: intrinsic dimension ``M``.
        alpha: power-spectrum fall-off exponent (smoothness), > 0.
        prec: precision that sets the number of Fourier terms ``ceil(prec^(-1/alpha))``.
        max_f_cutoff: upper bound on the number of Fourier terms.
        use_bias: keep the random constant term of every series.
        seed: seed of the private generator drawing the parameters.

    Calling it on ``x`` of shape ``(N, M)`` returns ``(N, E)`` (float64).

    Example::

        >>> rm = RandomManifold(5, 2, seed=0)
        >>> rm(torch.rand(7, 2, dtype=torch.float64)).shape
        torch.Size([7, 5])
    """

    def __init__(
        self,
        embedding_dim: int,
        manifold_dim: int,
        *,
        alpha: float = 2.0,
        prec: float = 1e-3,
        max_f_cutoff: int = 1000,
        use_bias: bool = False,
        seed: Optional[int] = None,
    ) -> None:
        self.embedding_dim = _check_int("embedding_dim", embedding_dim, ge=1)
        self.manifold_dim = _check_int("manifold_dim", manifold_dim, ge=1)
        check_scalar("alpha", alpha, gt=0)
        check_number("prec", prec, gt=0, lt=1)
        max_f_cutoff = _check_int("max_f_cutoff", max_f_cutoff, ge=1)
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected bool, got {type(use_bias).__name__}")
        self.alpha = float(alpha)
        self.use_bias = use_bias
        self.seed = _resolve_seed(seed)
        self.f_cutoff = int(min(math.ceil(float(prec) ** (-1.0 / self.alpha)), max_f_cutoff))
        g = torch.Generator().manual_seed(self.seed)
        # params[e, d, 0|1|2, i] = amplitude a, frequency factor b, phase c
        self.params = torch.rand(
            self.embedding_dim, self.manifold_dim, 3, self.f_cutoff, generator=g, dtype=torch.float64
        )
        if not use_bias:
            self.params[:, :, 0, 0] = 0.0
        k = torch.arange(self.f_cutoff, dtype=torch.float64)
        self.spect = 1.0 / ((k + 1.0) ** self.alpha + 1.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.manifold_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected a tensor of shape (N, {self.manifold_dim}), got {shape}")
        x = x.to(torch.float64)
        i = torch.arange(self.f_cutoff, dtype=torch.float64)
        out = torch.ones(x.shape[0], self.embedding_dim, dtype=torch.float64)
        for d in range(self.manifold_dim):
            a = self.params[:, d, 0, :] * self.spect  # (E, F)
            b = self.params[:, d, 1, :]
            c = self.params[:, d, 2, :]
            phase = 2.0 * math.pi * (i * x[:, d, None, None] * b + c)  # (N, E, F)
            out *= (a * torch.sin(phase)).sum(-1)
        return out


class RandmanData(NamedTuple):
    """Spike-time form of a randman dataset.

    ``times``: (N, n_units * n_spikes) float64 spike times in steps, in ``[0, n_steps * step_frac)``;
    ``units``: (n_units * n_spikes,) int64 unit index of each column of ``times``;
    ``labels``: (N,) int64 class; ``coords``: (N, manifold_dim) intrinsic coordinates (regression
    targets); ``n_units``, ``n_steps``.
    """

    times: torch.Tensor
    units: torch.Tensor
    labels: torch.Tensor
    coords: torch.Tensor
    n_units: int
    n_steps: int


def make_randman(
    n_classes: int = 10,
    n_units: int = 100,
    n_steps: int = 100,
    *,
    step_frac: float = 1.0,
    dim_manifold: int = 2,
    n_spikes: int = 1,
    n_samples: int = 1000,
    alpha: float = 2.0,
    shuffle: bool = True,
    seed: Optional[int] = None,
) -> RandmanData:
    """Generate a randman spike-timing classification set (``n_samples`` per class).

    See the module docstring for the construction. Returns :class:`RandmanData`; turn it into
    a time-first raster with :func:`randman_raster`.

    Example::

        >>> d = make_randman(n_classes=2, n_units=10, n_steps=20, n_samples=5, seed=0)
        >>> d.times.shape, d.labels.bincount().tolist()
        (torch.Size([10, 10]), [5, 5])
    """
    n_classes = _check_int("n_classes", n_classes, ge=1)
    n_units = _check_int("n_units", n_units, ge=1)
    n_steps = _check_int("n_steps", n_steps, ge=1)
    check_number("step_frac", step_frac, gt=0, le=1)
    dim_manifold = _check_int("dim_manifold", dim_manifold, ge=1)
    n_spikes = _check_int("n_spikes", n_spikes, ge=1)
    n_samples = _check_int("n_samples", n_samples, ge=1)
    check_scalar("alpha", alpha, gt=0)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle: expected bool, got {type(shuffle).__name__}")
    seed = _resolve_seed(seed)

    g = torch.Generator().manual_seed(seed)
    man_seeds = torch.randint(0, 2**62, (n_classes, n_spikes), generator=g)
    times, labels, coords = [], [], []
    for k in range(n_classes):
        x = torch.rand(n_samples, dim_manifold, generator=g, dtype=torch.float64)
        cols = []
        for j in range(n_spikes):
            rm = RandomManifold(n_units, dim_manifold, alpha=alpha, seed=int(man_seeds[k, j]))
            y = rm(x)
            lo = y.min(0).values
            hi = y.max(0).values
            cols.append((y - lo) / (hi - lo + 1e-7))
        times.append(torch.cat(cols, dim=1))
        labels.append(torch.full((n_samples,), k, dtype=torch.int64))
        coords.append(x)
    times_t = torch.cat(times) * (n_steps * float(step_frac))
    labels_t = torch.cat(labels)
    coords_t = torch.cat(coords)
    if shuffle:
        perm = torch.randperm(times_t.shape[0], generator=g)
        times_t, labels_t, coords_t = times_t[perm], labels_t[perm], coords_t[perm]
    units = torch.arange(n_units, dtype=torch.int64).repeat(n_spikes)
    return RandmanData(times_t, units, labels_t, coords_t, n_units, n_steps)


def randman_raster(
    times: torch.Tensor, units: torch.Tensor, n_steps: int, n_units: int, *, dtype=torch.float32
) -> torch.Tensor:
    """Bin spike times into a time-first raster ``(n_steps, *batch, n_units)``.

    ``times`` is ``(*batch, K)`` (in steps), ``units`` is ``(K,)``; a spike at time ``t`` lands
    in step ``floor(t)``; spikes outside ``[0, n_steps)`` are dropped; two spikes of one unit
    in the same step give 1 (the raster is binary).

    Example::

        >>> randman_raster(torch.tensor([[0.5, 2.7]]), torch.tensor([1, 0]), 3, 2)[:, 0]
        tensor([[0., 1.],
                [0., 0.],
                [1., 0.]])
    """
    if not isinstance(times, torch.Tensor) or times.dim() < 1:
        raise TypeError(f"times: expected a tensor (*batch, K), got {type(times).__name__}")
    if not isinstance(units, torch.Tensor) or units.dim() != 1 or units.shape[0] != times.shape[-1]:
        raise ValueError(
            f"units: expected a 1-D tensor of length {times.shape[-1]} (last dim of times), got "
            f"{tuple(units.shape) if isinstance(units, torch.Tensor) else type(units).__name__}"
        )
    n_steps = _check_int("n_steps", n_steps, ge=1)
    n_units = _check_int("n_units", n_units, ge=1)
    if units.numel() and (units.min() < 0 or units.max() >= n_units):
        raise ValueError(f"units: indices must lie in [0, {n_units}), got [{units.min()}, {units.max()}]")
    batch = times.shape[:-1]
    flat = times.reshape(-1, times.shape[-1])
    step = torch.floor(flat)
    ok = torch.isfinite(step) & (step >= 0) & (step < n_steps)
    out = torch.zeros(flat.shape[0], n_steps, n_units, dtype=dtype)
    b = torch.arange(flat.shape[0]).unsqueeze(1).expand_as(flat)
    u = units.unsqueeze(0).expand_as(flat)
    out[b[ok], step[ok].long(), u[ok]] = 1
    return out.reshape(*batch, n_steps, n_units).movedim(-2, 0).contiguous()


_SPLITS = ("train", "val", "test", "all")


@functools.lru_cache(maxsize=4)
def _cached_randman(n_classes, n_units, n_steps, step_frac, dim_manifold, n_spikes, n_samples, alpha, seed):
    # the splits of one configuration share one generated set (generation takes seconds)
    return make_randman(
        n_classes, n_units, n_steps, step_frac=step_frac, dim_manifold=dim_manifold,
        n_spikes=n_spikes, n_samples=n_samples, alpha=alpha, shuffle=True, seed=seed,
    )


class RandMan(Dataset):
    """Randman spike-timing classification as a torch ``Dataset`` of ``((T, n_units), label)``.

    The full set (``n_samples`` per class, shuffled) is generated from ``seed``; ``split``
    selects a contiguous slice of it by ``fractions`` (train, val, test; default 0.8/0.1/0.1)
    — the same ``seed`` must be used for all splits so that they do not overlap. Samples are
    rasters built on access (``floor`` of the spike time); ``data`` keeps the spike times
    (:class:`RandmanData`) for event-based models. Batches collate to ``(T, B, n_units)`` with
    ``spikefuse.data.collate_time_first``.

    Example::

        >>> tr = RandMan("train", n_classes=2, n_units=8, n_steps=10, n_samples=50, seed=3)
        >>> te = RandMan("test", n_classes=2, n_units=8, n_steps=10, n_samples=50, seed=3)
        >>> len(tr), len(te), tr.n_inputs, tr.n_classes
        (80, 10, 8, 2)
    """

    def __init__(
        self,
        split: str = "train",
        *,
        n_classes: int = 10,
        n_units: int = 100,
        n_steps: int = 100,
        step_frac: float = 1.0,
        dim_manifold: int = 2,
        n_spikes: int = 1,
        n_samples: int = 1000,
        alpha: float = 2.0,
        seed: int = 0,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        transform=None,
    ) -> None:
        super().__init__()
        check_choice("split", split, _SPLITS)
        if (
            not isinstance(fractions, (tuple, list))
            or len(fractions) != 3
            or any(isinstance(f, bool) or not isinstance(f, (int, float)) or f < 0 for f in fractions)
            or abs(sum(fractions) - 1.0) > 1e-9
        ):
            raise ValueError(f"fractions: expected three non-negative numbers summing to 1, got {fractions!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
        if seed is None:
            raise ValueError("seed: RandMan needs an explicit int seed so that its splits are disjoint")
        for name, v in (("n_classes", n_classes), ("n_units", n_units), ("n_steps", n_steps),
                        ("dim_manifold", dim_manifold), ("n_spikes", n_spikes), ("n_samples", n_samples)):
            _check_int(name, v, ge=1)
        check_number("step_frac", step_frac, gt=0, le=1)
        check_scalar("alpha", alpha, gt=0)
        seed = _resolve_seed(seed)
        full = _cached_randman(
            int(n_classes), int(n_units), int(n_steps), float(step_frac), int(dim_manifold),
            int(n_spikes), int(n_samples), float(alpha), seed,
        )
        n = full.times.shape[0]
        n_tr = int(round(fractions[0] * n))
        n_va = int(round(fractions[1] * n))
        bounds = {"train": (0, n_tr), "val": (n_tr, n_tr + n_va), "test": (n_tr + n_va, n), "all": (0, n)}
        lo, hi = bounds[split]
        self.data = RandmanData(
            full.times[lo:hi], full.units, full.labels[lo:hi], full.coords[lo:hi], n_units, n_steps
        )
        self.split = split
        self.transform = transform
        self.n_inputs = n_units
        self.n_classes = n_classes
        self.n_steps = n_steps

    @property
    def labels(self) -> torch.Tensor:
        return self.data.labels

    def __len__(self) -> int:
        return int(self.data.labels.shape[0])

    def __getitem__(self, index: int):
        x = randman_raster(self.data.times[index], self.data.units, self.n_steps, self.n_inputs)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.data.labels[index])
