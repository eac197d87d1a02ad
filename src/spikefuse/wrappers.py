"""Layout safety at the model boundary: batch-first inputs and a NeuroBench-ready model.

spikefuse models are time-first: they read ``(T, B, ...)``. Tools that batch first (NeuroBench
feeds ``(B, T, ...)``, so do many tonic pipelines) would otherwise be read with the batch as
time - no error, accuracy at chance. Two wrappers state the layout explicitly:

- :class:`BatchFirst` - ``BatchFirst(model)(x)`` with ``x`` of shape ``(B, T, ...)`` runs
  ``model(x.transpose(0, 1))``; with ``sequence_output=True`` the time-first outputs
  ``(T, B, ...)`` come back as ``(B, T, ...)``.
- :func:`neurobench_model` - a ``neurobench.models.TorchModel`` over a spikefuse network (batch
  first by default) whose spiking neurons are NeuroBench activation modules (every class of
  :func:`neuron_types`) and whose hooks expose the membrane where NeuroBench's metrics read it:
  per time step, ``pre_fire_mem_potential[t]`` is the membrane before step ``t`` and
  ``post_fire_mem_potential[t]`` after it (the post-reset membrane), as NeuroBench records them
  for snnTorch neurons stepped one step per call. Membrane traces come from the neurons that
  keep one: IF/LIF/ParametricLIF (``store_v_seq``, switched on by the hooks), CubaLIF,
  CubaRefractoryLIF and EventPropLIF (``last_traces``); the Loihi neurons and
  :class:`~spikefuse.layers.RecurrentLIF` report spikes only (membrane metrics count 0 for them).
  Every batch starts from reset neuron states (:func:`spikefuse.layers.reset_states`).

NeuroBench example (``pip install neurobench``; ``loader`` yields batch-first
``(B, T, ...)`` inputs and labels)::

    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, MembraneUpdates
    from spikefuse.wrappers import neurobench_model

    model = neurobench_model(net)                       # net: a trained spikefuse classifier
    argmax = lambda logits: logits.argmax(-1)           # logits (B, classes) -> labels
    bench = Benchmark(model, loader, [], [argmax],
                      [[Footprint, ParameterCount], [ClassificationAccuracy, ActivationSparsity, MembraneUpdates]])
    print(bench.run())
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._validate import check_bool, check_tensor

__all__ = ["BatchFirst", "neuron_types", "membrane_trace", "neurobench_model"]


def _swap(y):
    if isinstance(y, torch.Tensor):
        return y.transpose(0, 1) if y.dim() >= 2 else y
    if isinstance(y, tuple):
        return type(y)(*(_swap(v) for v in y)) if hasattr(y, "_fields") else tuple(_swap(v) for v in y)
    return y


class BatchFirst(nn.Module):
    """Feed a time-first ``model`` with batch-first inputs ``(B, T, ...)`` (module docstring).

    >>> from spikefuse import layers as L
    >>> from spikefuse.neuron import LIF
    >>> net = nn.Sequential(L.Dense(3, 4), LIF(), L.MaxOverTime())
    >>> BatchFirst(net)(torch.rand(2, 5, 3)).shape          # (B=2, T=5, 3) -> (B, 4)
    torch.Size([2, 4])
    >>> BatchFirst(nn.Sequential(L.Dense(3, 4), LIF()), sequence_output=True)(torch.rand(2, 5, 3)).shape
    torch.Size([2, 5, 4])
    """

    def __init__(self, model: nn.Module, *, sequence_output: bool = False) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.sequence_output = check_bool("sequence_output", sequence_output)

    def forward(self, x: torch.Tensor, *args, **kwargs):
        check_tensor("x", x, min_ndim=2, floating=False, finite=False)
        if x.device.type == "meta":
            raise ValueError("x: expected a tensor with data (cpu or cuda), got a tensor on device 'meta'")
        if x.shape[1] < 1:
            raise ValueError(f"x: expected batch-first (B, T, ...) with T >= 1, got shape {tuple(x.shape)}")
        y = self.model(x.transpose(0, 1), *args, **kwargs)
        return _swap(y) if self.sequence_output else y


def neuron_types() -> tuple:
    """The spiking neuron module classes of spikefuse (NeuroBench's activation modules)."""
    from . import layers as L
    from .neuron import cuba, eventprop, lif
    from .neuron.loihi import base

    return (lif._SpikingJellyNode, cuba.CubaLIF, eventprop.EventPropLIF, base.Neuron, L.RecurrentLIF)


def membrane_trace(neuron: nn.Module) -> Optional[torch.Tensor]:
    """The membrane ``(T, B, ...)`` of ``neuron``'s last forward, or None where it keeps none."""
    if not isinstance(neuron, nn.Module):
        raise TypeError(f"neuron: expected a torch.nn.Module, got {type(neuron).__name__}")
    v = getattr(neuron, "v_seq", None)
    if isinstance(v, torch.Tensor):
        return v
    traces = getattr(neuron, "last_traces", None)
    v = getattr(traces, "membrane", None)
    return v if isinstance(v, torch.Tensor) else None


def _hook_class():
    from neurobench.hooks.neuron import NeuronHook

    class MembraneHook(NeuronHook):
        """NeuronHook for a multi-step spikefuse neuron: spikes and per-step membranes."""

        def __init__(self, layer, name=None):
            super().__init__(layer, name)
            self.spiking = True
            if isinstance(getattr(layer, "store_v_seq", None), bool):
                layer.__dict__.setdefault("_store_v_seq_before_hooks", layer.store_v_seq)  # first hook's
                layer.store_v_seq = True

        def pre_hook_fn(self, layer, input):
            self.activation_inputs.append(input)

        def hook_fn(self, layer, input, output):
            spikes = output[0] if isinstance(output, tuple) else output
            self.activation_outputs.append(spikes)
            v = membrane_trace(layer)
            if v is None or v.shape[:2] != spikes.shape[:2]:
                return
            v = v.detach()
            self.post_fire_mem_potential.extend(v.unbind(0))
            self.pre_fire_mem_potential.extend([torch.zeros_like(v[0])] + list(v[:-1].unbind(0)))

        def close(self):
            super().close()
            if "_store_v_seq_before_hooks" in self.layer.__dict__:
                self.layer.store_v_seq = self.layer.__dict__.pop("_store_v_seq_before_hooks")

    return MembraneHook


def neurobench_model(net: nn.Module, *, batch_first: bool = True, sequence_output: bool = False):
    """A ``neurobench.models.TorchModel`` over ``net`` (module docstring); needs neurobench."""
    try:
        from neurobench.hooks.layer import LayerHook
        from neurobench.models import TorchModel
    except ImportError as e:
        raise ImportError("neurobench_model needs NeuroBench: pip install neurobench") from e
    check_bool("batch_first", batch_first)
    if not isinstance(net, nn.Module):
        raise TypeError(f"net: expected a torch.nn.Module, got {type(net).__name__}")
    hook_cls = _hook_class()

    class SpikefuseModel(TorchModel):
        def __init__(self):
            super().__init__(BatchFirst(net, sequence_output=sequence_output) if batch_first else net)
            for cls in neuron_types():
                self.add_activation_module(cls)

        def __call__(self, batch):
            from .layers import reset_states

            reset_states(self.net)
            with torch.no_grad():
                return self.net(batch)

        def register_hooks(self):
            for entry in self.activation_layers():
                self.activation_hooks.append(hook_cls(entry["layer"], entry["layer_name"]))
            for layer in self.connection_layers():
                self.connection_hooks.append(LayerHook(layer))

    return SpikefuseModel()
