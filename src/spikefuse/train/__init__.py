"""The training job behind ``spikefuse train``: configuration, data, model, loop, run folder.

A run is described by a :class:`TrainConfig`. :func:`train` builds the data set (via
:func:`spikefuse.data.get_dataset`), a feed-forward spiking classifier
(:class:`SpikingClassifier`: ``layers`` hidden blocks of ``Dense`` + neuron, then a ``Dense``
readout into a non-spiking leaky integrator whose membrane is reduced over time), trains it
with cross entropy and writes a run folder:

- ``config.toml``: the run id (``[run]``) and the resolved configuration (every field,
  defaults filled in);
- ``metrics.jsonl``: one JSON object per epoch (train/val loss and accuracy, lr, firing rates);
- ``metrics.json``: the final result (test accuracy and loss, best validation accuracy, time);
- ``checkpoint.safetensors``: model, optimizer, schedule, RNG states and history after the
  last epoch, a safetensors file with a checksummed JSON manifest (run id, epoch), written
  atomically; :func:`load_checkpoint` verifies it and never unpickles;
- ``curves.png`` (loss/accuracy, learning rate, test result), ``raster.png`` (spikes and
  membranes of one test sample), ``rates.png`` (firing rates per layer).

A finished run is used with :func:`load_run` (model in eval mode + config), ``spikefuse eval``,
``spikefuse export`` and ``spikefuse plot``.

Resuming (``resume=True``) continues from ``checkpoint.safetensors`` after its last finished epoch and
gives the same final numbers as an uninterrupted run: the data order of epoch ``e`` is a
pure function of ``(seed, e)`` (``DistributedSampler`` with ``set_epoch``), and the RNG states
are restored from the checkpoint.

Under ``torchrun`` (``WORLD_SIZE > 1``) the job initialises ``torch.distributed`` (NCCL on
CUDA, Gloo on CPU), wraps the model in ``DistributedDataParallel`` and shards every epoch with
a ``DistributedSampler``; each process takes ``batch_size / world_size`` samples per step,
so one step of ``N`` processes equals one single-process step on the combined batch. Only
rank 0 prints and writes files.

The package is cut along those concerns: :mod:`.config` (``TrainConfig``, defaults, TOML),
:mod:`.distributed` (``torchrun`` process group), :mod:`.model` (``SpikingClassifier``,
optimizer, schedule), :mod:`.data` (splits), :mod:`.checkpoint` (atomic, verified files),
:mod:`.loop` (the job itself) and :mod:`.plots` (PNG figures).

Example::

    >>> from spikefuse.train import TrainConfig, train
    >>> result = train(TrainConfig(epochs=1, max_samples=64, out=None, plots=False),
    ...                progress=False, verbose=False)       # doctest: +SKIP
    >>> 0.0 <= result["test_acc"] <= 1.0                     # doctest: +SKIP
    True
"""
from __future__ import annotations

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from .config import (DATA_DEFAULTS, DEFAULT_GRADIENT, DEFAULT_MODEL, DEVICES, GRADIENT_DATA_DEFAULTS, GRADIENTS,
                     MODEL_DATA_DEFAULTS, MODEL_NEURONS, MODELS, NEURON_GRADIENTS, NEURONS, OPTIMIZERS, READOUTS,
                     SCHEDULES, ConfigError, TrainConfig, _data_names, config_run_id, config_to_toml,
                     default_threads, load_config_file)
from .data import load_data
from .distributed import DistInfo, init_distributed
from .model import SpikingClassifier, build_model, build_optimizer
from .loop import evaluate, train
from .runfolder import RunFolderError
from .use import load_run

__all__ = [
    "TrainConfig",
    "DATA_DEFAULTS",
    "DEFAULT_MODEL",
    "MODEL_DATA_DEFAULTS",
    "MODEL_NEURONS",
    "MODELS",
    "GRADIENT_DATA_DEFAULTS",
    "NEURONS",
    "GRADIENTS",
    "OPTIMIZERS",
    "READOUTS",
    "SCHEDULES",
    "SpikingClassifier",
    "CheckpointError",
    "DistInfo",
    "build_model",
    "build_optimizer",
    "init_distributed",
    "load_config_file",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    "load_run",
    "ConfigError",
    "RunFolderError",
    "CHECKPOINT_NAME",
]
