"""``hxtorch.spiking.functional.eventprop`` over :mod:`spikefuse.functional.eventprop` (SPEC 14):

- ``EventPropNeuron.apply(input, params, dt, hw_data=None)`` and ``eventprop_neuron(...)``
  (the parameter-tuple API), ``EventPropNeuronFunction.apply(input, leak, reset, threshold,
  tau_syn, tau_mem, hw_data=None, dt=1e-6)`` (the later API): ``input`` is ``(2, time, batch,
  neurons)`` (current increments, zero placeholder); returns ``(spikes, membrane, current)``,
  each ``(time, batch, neurons)``, or ``hw_data`` itself when given; the backward is hxtorch's
  adjoint (``stack(tau_syn lambda_i, lambda_v - lambda_i)``).
- ``EventPropSynapse.apply(input, weight, _=None)`` / ``EventPropSynapseFunction`` /
  ``eventprop_synapse``: ``stack(input @ weight.T, zeros)``.
"""
from spikefuse.functional import eventprop as _ep

from ._params import resolve_params, to_device

__all__ = ["EventPropNeuron", "EventPropNeuronFunction", "EventPropSynapse", "EventPropSynapseFunction",
           "eventprop_neuron", "eventprop_synapse"]

_FIELDS = ("leak", "reset", "threshold", "tau_syn", "tau_mem")


def _run(fn, input, values: dict, dt, hw_data):
    """EventProp uses no surrogate: method and alpha are fixed for the validation."""
    p = resolve_params(fn, None, {**values, "method": "superspike", "alpha": 50.0}, dt)
    dev = getattr(input, "device", None)
    return _ep.eventprop_neuron(input, p, dt, to_device(hw_data, dev) if dev is not None else hw_data)


def _fields(params):
    missing = [k for k in _FIELDS if not hasattr(params, k)]
    if missing:
        raise TypeError(f"params: expected an object with fields {list(_FIELDS)} (e.g. CUBALIFParams), "
                        f"got {type(params).__name__} without {missing}")
    return {k: getattr(params, k) for k in _FIELDS}


class EventPropNeuron:
    """``EventPropNeuron.apply(input, params, dt, hw_data=None)`` (``params``: any tuple with
    hxtorch's fields, e.g. :class:`~.lif.CUBALIFParams`)."""

    @staticmethod
    def apply(input, params, dt, hw_data=None):
        return _run("EventPropNeuron.apply", input, _fields(params), dt, hw_data)


class EventPropNeuronFunction:
    """``EventPropNeuronFunction.apply(input, leak, reset, threshold, tau_syn, tau_mem,
    hw_data=None, dt=1e-6)``."""

    @staticmethod
    def apply(input, leak, reset, threshold, tau_syn, tau_mem, hw_data=None, dt=1e-6):
        values = dict(leak=leak, reset=reset, threshold=threshold, tau_syn=tau_syn, tau_mem=tau_mem)
        return _run("EventPropNeuronFunction.apply", input, values, dt, hw_data)


def eventprop_neuron(input, params, dt, hw_data=None):
    return EventPropNeuron.apply(input, params, dt, hw_data)


class EventPropSynapse:
    """``EventPropSynapse.apply(input, weight, _=None)``: ``input (time, batch, in)``, ``weight
    (out, in)`` -> ``(2, time, batch, out)``; the bias argument is unused, as upstream."""

    @staticmethod
    def apply(input, weight, _=None):
        return _ep.eventprop_synapse(input, weight)


EventPropSynapseFunction = EventPropSynapse


def eventprop_synapse(input, weight, _=None):
    return EventPropSynapse.apply(input, weight)
