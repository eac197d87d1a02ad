"""The export table of :mod:`spikefuse.interop.nir`: module type -> converter.

Every exportable module type has one converter in :data:`EXPORTERS` (``type -> fn(ex, name,
module, shape) -> (entry node, exit node, output shape)``), registered with :func:`exporter`; a
module is looked up along its class's MRO, so subclasses use their base's converter. Types that
NIR cannot express map to a :class:`Refused` entry that carries the message, identities (dropout
at inference) to :func:`identity`. The neuron families' types come from the family registry
(:mod:`spikefuse.families`) and are registered on first use (``_export_neurons``), so that this
module imports no neuron module. Also the small array helpers every converter uses.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ...surrogate import Surrogate
from ._common import NIRConversionError

__all__ = ["EXPORTERS", "exporter", "Refused", "converter_for", "identity", "IN_SHAPE"]

Shape = Optional[Tuple[int, ...]]
Converter = Callable[..., Tuple[Optional[str], Optional[str], Shape]]
#: module type -> converter (or a :class:`Refused` entry); filled by :func:`exporter`
EXPORTERS: Dict[type, Converter] = {}
#: leaf type -> its input feature shape, for to_nir without input_shape
IN_SHAPE: Dict[type, Callable[[nn.Module], tuple]] = {}
#: registrations run on the first lookup (the neuron families, imported lazily)
_LAZY: List[Callable[[], None]] = []


def exporter(*types: type):
    """Register the decorated function as the converter of ``types`` in :data:`EXPORTERS`."""
    def register(fn):
        for t in types:
            EXPORTERS[t] = fn
        return fn
    return register


@dataclasses.dataclass(frozen=True)
class Refused:
    """An :data:`EXPORTERS` entry for a type NIR cannot express: converting raises
    :class:`NIRConversionError` with ``message`` (``{cls}``: the class name, ``{path}``: module.class)."""

    message: str

    def __call__(self, ex, name, m, shape):
        cls = type(m)
        raise NIRConversionError(f"model[{name!r}]: " + self.message.format(
            cls=cls.__name__, path=f"{cls.__module__}.{cls.__name__}"))


def identity(ex, name, m, shape):
    """Identity at inference (dropout): no NIR node, NIR graphs describe inference."""
    return None, None, shape


def converter_for(cls: type) -> Optional[Converter]:
    """The :data:`EXPORTERS` entry of ``cls`` or of its nearest registered base class."""
    while _LAZY:
        _LAZY.pop(0)()
    for c in cls.__mro__:
        if c in EXPORTERS:
            return EXPORTERS[c]
    return None


def np_array(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def full(value, shape, name) -> np.ndarray:
    """A float32 array of ``shape`` from a number or a broadcastable tensor."""
    t = value.detach().double().cpu() if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)
    try:
        t = torch.broadcast_to(t, tuple(shape))
    except RuntimeError:
        raise NIRConversionError(f"{name}: parameter of shape {tuple(t.shape)} does not broadcast to the "
                                 f"layer shape {tuple(shape)}") from None
    return t.to(torch.float32).numpy().copy()


def exact(**values) -> dict:
    """Exact parameter values of the exporting module (floats, or float64 arrays of the
    tensor's own shape) for metadata; NIR arrays are float32 and full-shape."""
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, Tensor):
            v = v.detach().cpu()
            out[k] = float(v) if v.numel() == 1 and v.dim() == 0 else v.double().numpy().copy()
        else:
            out[k] = float(v)
    return out


def surrogate_meta(s) -> dict:
    if isinstance(s, Surrogate) and dataclasses.is_dataclass(s):
        d = {"name": s.name}
        for f in dataclasses.fields(s):
            d[f.name] = float(getattr(s, f.name))
        return d
    return {"name": getattr(s, "name", "custom")}
