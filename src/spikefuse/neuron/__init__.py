"""nn.Module neurons over :mod:`spikefuse.functional`.

Names resolve lazily from their modules:

========================  ====================================================
``IF``, ``LIF``,          SpikingJelly semantics (:mod:`spikefuse.neuron.lif`)
``ParametricLIF``
``CubaLIF``,              BrainScaleS-2 / hxtorch semantics (:mod:`spikefuse.neuron.cuba`)
``CubaRefractoryLIF``
``EventPropLIF``          exact gradients (:mod:`spikefuse.neuron.eventprop`)
``NorseLIF``, ...         norse semantics: ``NorseLIF``, ``NorseLIFRecurrent``,
                          ``NorseLIFRefrac``, ``NorseLIFAdEx`` (:mod:`spikefuse.neuron.norse`)
``Leaky``, ``Synaptic``   snnTorch semantics (:mod:`spikefuse.neuron.snntorch`)
``SinabsLIF``,            sinabs semantics (:mod:`spikefuse.neuron.sinabs`)
``SinabsIAF``
``NeuronModule``,         the surface every family shares: ``params()``, ``reset()`` /
``reset_states``,         ``reset_state()``, ``backend=``, ``last_traces``
``reset_net``             (:mod:`spikefuse.neuron.base`)
``loihi``                 Loihi fixed-point family, lava-dl layout of modules:
                          ``loihi.cuba.Neuron``, ``loihi.alif.Neuron``, ... and the
                          aliases ``loihi.CUBA``, ``loihi.ALIF``, ``loihi.RF``, ...
========================  ====================================================
"""
import importlib

_NAMES = {
    "IF": "lif",
    "LIF": "lif",
    "ParametricLIF": "lif",
    "reset_net": "lif",
    "CubaLIF": "cuba",
    "CubaRefractoryLIF": "cuba",
    "EventPropLIF": "eventprop",
    "NorseLIF": "norse",
    "NorseLIFRecurrent": "norse",
    "NorseLIFRefrac": "norse",
    "NorseLIFAdEx": "norse",
    "Leaky": "snntorch",
    "Synaptic": "snntorch",
    "SinabsLIF": "sinabs",
    "SinabsIAF": "sinabs",
    "NeuronBase": "base",
    "NeuronModule": "base",
    "reset_states": "base",
}
_SUBMODULES = ("base", "lif", "cuba", "eventprop", "norse", "loihi", "snntorch", "sinabs")


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikefuse.neuron' has no attribute {name!r}")


__all__ = list(_NAMES) + ["base", "loihi"]
