"""Mirror of ``hxtorch.spiking.functional`` (BrainScaleS-2 CUBA LIF, SPEC.md 13-14) over
:mod:`spikefuse.functional.cuba` and :mod:`spikefuse.functional.eventprop`.

Layout: time-first ``(time, batch, neurons)``, as hxtorch's code unpacks ``T, bs, ps =
input.shape`` (its docstrings say ``(batch, time, neurons)``; the code wins). Both upstream
calling conventions work:

- keyword-only parameters (hxtorch since 88aef80)::

      z, v, i, madc = F.cuba_lif_integration(x, leak=..., reset=..., threshold=..., tau_syn=...,
                                             tau_mem=..., method="superspike", alpha=50., dt=1e-6)

- a parameter tuple (hxtorch before it): ``F.cuba_lif_integration(x, F.CUBALIFParams(tau_mem,
  tau_syn, ...), hw_data=None, dt=1e-6)``.
"""
from .eventprop import (EventPropNeuron, EventPropNeuronFunction, EventPropSynapse,
                        EventPropSynapseFunction, eventprop_neuron, eventprop_synapse)
from .lif import CUBALIFParams, cuba_lif_integration, cuba_lif_step, cuba_refractory_lif_integration
from .refractory import refractory_update
from .superspike import SuperSpike, superspike_func
from .threshold import threshold
from .unterjubel import Unterjubel

spiking_threshold = threshold

__all__ = [
    "CUBALIFParams", "cuba_lif_step", "cuba_lif_integration", "cuba_refractory_lif_integration",
    "refractory_update", "threshold", "spiking_threshold", "SuperSpike", "superspike_func",
    "Unterjubel", "EventPropNeuron", "EventPropSynapse", "EventPropNeuronFunction",
    "EventPropSynapseFunction", "eventprop_neuron", "eventprop_synapse",
]
