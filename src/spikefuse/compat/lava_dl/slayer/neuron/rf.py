"""``slayer.neuron.rf``: resonate-and-fire (phase threshold) in lava-dl's time-last layout,
over :mod:`spikefuse.neuron.loihi.rf` (SPEC 6). Input: a ``(real, imag)`` pair (or a complex
tensor) of ``(N, C, ..., T)`` tensors.

>>> from spikefuse.compat.lava_dl import slayer
>>> n = slayer.neuron.rf.Neuron(0.5, 8, 0.1)
>>> n.decay.dtype, n.decay.shape, int(n.cx_sin_decay)
(dtype('float32'), (1,), 2607)
"""
from spikefuse.neuron.loihi import rf as _native
from ._layout import ResonatorProperties, TimeLastNeuron

__all__ = ["Neuron", "neuron_params"]

neuron_params = _native.neuron_params


class Neuron(ResonatorProperties, TimeLastNeuron, _native.Neuron):
    """lava-dl ``rf.Neuron(threshold, period, decay, tau_grad=1, scale_grad=1, scale=64,
    norm=None, dropout=None, shared_param=True, persistent_state=False, requires_grad=False,
    graded_spike=False, log_init=True)``; ``decay``, ``lam``, ``frequency``, ``period`` are
    float32 NumPy arrays as in lava-dl; ``decay_grad="exact"`` opt-in."""

    _native = _native.Neuron
    _lava_complex_input = True

    def __init__(self, threshold, period, decay, tau_grad=1, scale_grad=1, scale=1 << 6, norm=None,
                 dropout=None, shared_param=True, persistent_state=False, requires_grad=False,
                 graded_spike=False, log_init=True, *, decay_grad="lava"):
        self._lava_init(locals())
