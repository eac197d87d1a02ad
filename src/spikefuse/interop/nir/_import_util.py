"""Array and metadata helpers of :func:`~.import_.from_nir` (moved out of ``import_.py``)."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ... import surrogate as _surrogate
from ._common import NIRConversionError
from .modules import _resolve_surrogate


def _surrogate_from_meta(d, default=None):
    try:
        name = str(d["name"])
        params = {k: float(v) for k, v in d.items() if k != "name"}
        if name == "custom":
            raise KeyError(name)
        return _surrogate.get(name, **params)
    except (KeyError, TypeError, ValueError):
        warnings.warn(f"from_nir: surrogate {dict(d)!r} cannot be rebuilt; using {default or 'ATan(2.0)'}",
                      stacklevel=3)
        return _resolve_surrogate(default)


def _regroup(w: np.ndarray, groups: int):
    """Inverse of :func:`_ungroup`, or None when ``w`` is not block-diagonal for ``groups``."""
    c_out, c_in = w.shape[0], w.shape[1]
    if groups <= 1 or c_out % groups or c_in % groups:
        return None
    o_g, i_g = c_out // groups, c_in // groups
    blocks, mask = [], np.ones(w.shape[:2], dtype=bool)
    for g in range(groups):
        blocks.append(w[g * o_g:(g + 1) * o_g, g * i_g:(g + 1) * i_g])
        mask[g * o_g:(g + 1) * o_g, g * i_g:(g + 1) * i_g] = False
    if np.any(w[mask] != 0):
        return None
    return np.concatenate(blocks, axis=0)


def _arr(node, key, meta=None) -> np.ndarray:
    """Field ``key`` of ``node`` as float64; 0-d when spikefuse's exporter broadcast a shared
    (0-d) parameter to one value per neuron (metadata ``shared``) and the values are still equal,
    so that a round trip rebuilds the module it wrote."""
    a = np.asarray(getattr(node, key), dtype=np.float64)
    if meta and meta.get("shared") is True and a.size and np.all(a == a.reshape(-1)[0]):
        return a.reshape(-1)[0].copy()
    return a


def _uniform(a: np.ndarray):
    """A Python float if every element is equal, else None."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return None
    v = a.reshape(-1)[0]
    return float(v) if np.all(a == v) else None


def _close(a, b, rtol=1e-5, atol=1e-7) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol))


def _meta(node) -> dict:
    md = getattr(node, "metadata", None)
    if isinstance(md, dict) and isinstance(md.get("spikefuse"), dict):
        return md["spikefuse"]
    return {}


def _as_bool(v) -> bool:
    if isinstance(v, (bytes, str)):
        return str(v if isinstance(v, str) else v.decode()).lower() in ("true", "1")
    return bool(v)


def _scalar_or_tensor(a: np.ndarray):
    u = _uniform(a)
    return u if u is not None else torch.as_tensor(np.asarray(a, dtype=np.float32))


def _value(meta: dict, key: str, nir_value: np.ndarray, scale: float = 1.0):
    """The parameter to rebuild a spikefuse module with: the exact value recorded in the
    metadata when it agrees with the NIR array (``exact * scale ~ nir_value``), else the NIR
    value / scale (a float when uniform, else a float32 tensor)."""
    ex = meta.get("exact", {}) if isinstance(meta.get("exact"), dict) else {}
    nir_value = np.asarray(nir_value, dtype=np.float64)
    if key in ex:
        e = np.asarray(ex[key], dtype=np.float64)
        try:
            ok = _close(np.broadcast_to(e * scale, nir_value.shape), nir_value, rtol=1e-6, atol=1e-9)
        except ValueError:
            ok = False
        if ok:
            return float(e) if e.ndim == 0 else torch.as_tensor(e.astype(np.float32))
    return _scalar_or_tensor(nir_value / scale)


def _check_finite(name, node) -> None:
    """Every numeric array of ``node`` is finite: a NaN/inf weight or time constant is refused
    here, naming the node and the field, not later as a NaN output blamed on the input."""
    for field, value in vars(node).items():
        if field in ("metadata", "input_type", "output_type") or isinstance(value, (str, bytes, dict)):
            continue
        try:
            a = np.asarray(value)
        except Exception:  # noqa: BLE001 - not array-like: not a parameter
            continue
        if a.dtype.kind in "fc" and a.size and not np.all(np.isfinite(a)):
            raise NIRConversionError(f"graph node {name!r} ({type(node).__name__}): {field} contains NaN or inf "
                                     f"values ({int(np.sum(~np.isfinite(a)))} of {a.size})")
