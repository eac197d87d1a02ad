"""``spikefuse export RUN --lava FILE.net``: a ``loihi.cuba`` run as lava-dl's network-exchange
(netx) HDF5 file, the file that ``lava.lib.dl.netx.hdf5.Network(net_config=FILE)`` reads.

What is written (the layout lava-dl's ``slayer.block`` ``export_hdf5`` writes for dense blocks):

- ``layer/0`` ... ``layer/{L-1}``: one ``dense`` layer per hidden block, each with ``type``
  (``b'dense'``), ``shape`` (``[out]``), ``inFeatures``, ``outFeatures``, ``weight`` (``(out, in)``,
  the integer mantissas ``neuron.quantize_8bit(w, descale=True)``: even integers in
  [-256, 254]), ``bias`` (``round(b * w_scale)``, in the weights' mantissa unit) and a
  ``neuron`` group holding the neuron's :attr:`device_params` (``type`` ``b'CUBA'``,
  ``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``, ``gradedSpike``).
- With ``readout="count"`` the output layer spikes (a Loihi CUBA neuron): it is
  ``layer/{L}``, a dense layer like the hidden ones.
- Otherwise the output is a non-spiking leaky integrator, which has no lava block and which
  netx cannot load (a netx dense layer needs a spiking ``neuron``): its synapse is written
  outside ``layer``, in a top-level group ``readout`` (``type`` ``b'dense'``, ``inFeatures``,
  ``outFeatures``, ``weight``, ``bias`` as above, and ``tau`` in steps), which netx ignores.
  The network netx builds then ends at the last hidden layer's spikes; apply the readout
  (``weight @ spikes / w_scale + bias / w_scale`` into the integrator, reduced over time by
  ``cfg.readout``) outside lava.

No ``input`` layer is written: the run's input is a current (``input_gain * x`` every step),
not spikes from an input neuron, so netx's first process is the first dense layer.
Note the bias: spikefuse adds it to the synaptic current, netx's LIF adds ``bias`` to the
voltage (``bias_exp`` 6); they agree only for zero bias.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import ConfigError

_FAMILY = "loihi.cuba"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('export --lava needs h5py: pip install -e ".[data]" '
                          "(from the spikefuse checkout)") from None
    return h5py


def check_lava_run(cfg) -> None:
    """Raise :class:`ConfigError` unless the run was trained with the ``loihi.cuba`` neuron."""
    from .. import families

    fam = families.get(cfg.neuron).id if cfg.neuron else None
    if fam != _FAMILY:
        raise ConfigError(f"--lava: needs a run trained with --neuron {_FAMILY} (alias loihi-cuba), "
                          f"this run's neuron is {cfg.neuron!r}")
    model = getattr(cfg, "model", None) or "dense"
    if model != "dense":
        raise ConfigError(f"--lava: exports the dense model only, this run's model is {model!r}")


def _mantissas(dense, neuron) -> tuple:
    """``(weight, bias)`` of a :class:`~spikefuse.layers.Dense` as integer mantissas."""
    with torch.no_grad():
        w = neuron.quantize_8bit(dense.weight.detach(), descale=True)
        w = np.rint(w.cpu().numpy()).astype(np.int64)
        b = None
        if dense.bias is not None:
            b = np.rint(dense.bias.detach().cpu().numpy() * neuron.scale).astype(np.int64)
    return w, b


def _write_synapse(group, dense, neuron) -> None:
    w, b = _mantissas(dense, neuron)
    group.create_dataset("type", (1,), "S10", [b"dense"])
    group.create_dataset("inFeatures", data=int(dense.in_features))
    group.create_dataset("outFeatures", data=int(dense.out_features))
    group.create_dataset("weight", data=w)
    if b is not None:
        group.create_dataset("bias", data=b)


def _write_layer(group, dense, neuron) -> None:
    _write_synapse(group, dense, neuron)
    group.create_dataset("shape", data=np.array([int(dense.out_features)]))
    for key, value in neuron.device_params.items():
        if isinstance(value, str):
            value = value.encode("ascii")
        group.create_dataset(f"neuron/{key}", data=value)


def export_lava(model, cfg, path) -> dict:
    """Write ``model`` (a ``loihi.cuba`` run) as a netx HDF5 file at ``path`` (layout: module
    docstring); returns ``{"layers": n, "readout": "layer" or "outside"}``."""
    check_lava_run(cfg)
    h5py = _h5py()
    neurons = [blk.neuron for blk in model.hidden]
    count = cfg.readout == "count"
    if not neurons and not count:
        raise ConfigError("--lava: the run has no spiking layer to export (layers = 0)")
    with h5py.File(str(path), "w") as f:
        top = f.create_group("layer")
        for i, blk in enumerate(model.hidden):
            _write_layer(top.create_group(str(i)), blk.synapse, blk.neuron)
        if count:
            _write_layer(top.create_group(str(len(neurons))), model.output, model.integrator)
        else:
            g = f.create_group("readout")
            _write_synapse(g, model.output, neurons[-1])
            g.create_dataset("tau", data=float(cfg.tau))
    return {"layers": len(neurons) + int(count), "readout": "layer" if count else "outside"}
