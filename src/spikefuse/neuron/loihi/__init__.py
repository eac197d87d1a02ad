"""Loihi fixed-point neurons with lava-dl's layout of modules (SPEC.md 3-12), time-first.

Modules (imported on first use)::

    from spikefuse.neuron.loihi import cuba, alif
    n = cuba.Neuron(threshold=1.0, current_decay=0.25, voltage_decay=0.03)
    kwargs = cuba.neuron_params(n.device_params)        # device -> constructor arguments

========================  ============================================================
module                    content
========================  ============================================================
``base``                  abstract :class:`~spikefuse.neuron.loihi.base.Neuron`
``cuba``, ``alif``        CUBA LIF, adaptive LIF
``rf``, ``rf_iz``         resonate-and-fire (phase threshold / Izhikevich reset)
``adrf``, ``adrf_iz``     adaptive resonate-and-fire variants
``sigma_delta``           sigma-delta neuron
``dropout``, ``norm``     neuron dropout, MeanOnlyBatchNorm / WgtScaleBatchNorm
========================  ============================================================

Aliases (also lazy): ``CUBA``, ``ALIF``, ``RF``, ``RFIz``, ``AdRF``, ``AdRFIz``,
``SigmaDelta`` (each model's ``Neuron``), ``Dropout``, ``MeanOnlyBatchNorm``,
``WgtScaleBatchNorm``. A module that does not exist yet raises ``AttributeError`` only when the
name is used, so importing this package never fails because of it.
"""
import importlib

_SUBMODULES = ("base", "cuba", "alif", "rf", "rf_iz", "adrf", "adrf_iz", "sigma_delta", "dropout", "norm")

_ALIASES = {
    "Neuron": ("base", "Neuron"),
    "CUBA": ("cuba", "Neuron"),
    "ALIF": ("alif", "Neuron"),
    "RF": ("rf", "Neuron"),
    "RFIz": ("rf_iz", "Neuron"),
    "AdRF": ("adrf", "Neuron"),
    "AdRFIz": ("adrf_iz", "Neuron"),
    "SigmaDelta": ("sigma_delta", "Neuron"),
    "Dropout": ("dropout", "Dropout"),
    "MeanOnlyBatchNorm": ("norm", "MeanOnlyBatchNorm"),
    "WgtScaleBatchNorm": ("norm", "WgtScaleBatchNorm"),
}

__all__ = list(_SUBMODULES) + list(_ALIASES)


def __getattr__(name):
    if name in _SUBMODULES:
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                raise AttributeError(
                    f"module {__name__!r} has no attribute {name!r} (spikefuse.neuron.loihi.{name} is not available)"
                ) from None
            raise
    if name in _ALIASES:
        mod, attr = _ALIASES[name]
        try:
            m = importlib.import_module(f".{mod}", __name__)
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{mod}":
                raise AttributeError(
                    f"module {__name__!r} has no attribute {name!r} (spikefuse.neuron.loihi.{mod} is not available)"
                ) from None
            raise
        return getattr(m, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
