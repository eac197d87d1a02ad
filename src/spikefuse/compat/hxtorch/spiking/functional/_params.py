"""hxtorch's neuron parameters -> :class:`spikefuse.functional.cuba.CubaParams`, with errors in
hxtorch's terms (the keyword names of its functions)."""
from __future__ import annotations

from typing import NamedTuple

import torch

from spikefuse._validate import _describe, check_number
from spikefuse.functional.cuba import CubaParams, _check_dt, _check_tau_ratios

__all__ = ["CUBALIFParams", "REQUIRED", "resolve_params", "to_device"]


class _Required:
    def __repr__(self):
        return "<required>"


#: default of hxtorch's required keyword-only parameters (leak, reset, ...)
REQUIRED = _Required()


class CUBALIFParams(NamedTuple):
    """hxtorch's parameter tuple for the CUBA LIF (field names and order as upstream)."""

    tau_mem: torch.Tensor
    tau_syn: torch.Tensor
    refractory_time: torch.Tensor = torch.tensor(0.)
    leak: torch.Tensor = torch.tensor(0.)
    threshold: torch.Tensor = torch.tensor(1.)
    reset: torch.Tensor = torch.tensor(0.)
    alpha: float = 50.0
    method: str = "superspike"


def _check(fn: str, values: dict, dt) -> None:
    if values["method"] != "superspike":
        raise ValueError(
            f"{fn}: Threshold function '{values['method']}' is not implemented yet (method: expected 'superspike')"
        )
    for name in ("leak", "reset", "threshold"):
        check_number(name, values[name])
    check_number("alpha", values["alpha"], gt=0)
    if "refractory_time" in values:
        check_number("refractory_time", values["refractory_time"], ge=0)
    _check_tau_ratios((("tau_syn", values["tau_syn"]), ("tau_mem", values["tau_mem"])), _check_dt(dt), "")


def resolve_params(fn: str, params, kwargs: dict, dt, refractory: bool = False) -> CubaParams:
    """The :class:`CubaParams` of either a parameter tuple ``params`` (any object with hxtorch's
    field names) or hxtorch's keyword-only arguments ``kwargs`` (never both)."""
    given = {k: v for k, v in kwargs.items() if v is not REQUIRED}
    if params is not None:
        if given:
            raise TypeError(f"{fn}(): give either params or the keyword parameters {sorted(given)}, not both")
        missing = [k for k in kwargs if not hasattr(params, k)]
        if missing:
            raise TypeError(f"params: expected an object with fields {list(kwargs)} (e.g. CUBALIFParams), "
                            f"got {_describe(params)} without {missing}")
        values = {k: getattr(params, k) for k in kwargs}
    else:
        missing = [k for k in kwargs if kwargs[k] is REQUIRED]
        if missing:
            raise TypeError(f"{fn}() missing required keyword-only argument(s): {', '.join(map(repr, missing))}")
        values = dict(kwargs)
    _check(fn, values, dt)
    if not refractory:
        values.setdefault("refractory_time", 1e-6)
    return CubaParams(**{k: values[k] for k in CubaParams._fields})


def to_device(data, device):
    """hxtorch moves ``hw_data`` to the input's device; ``None`` entries stay."""
    if not data:
        return None
    return tuple(d.to(device) if d is not None else None for d in data)
