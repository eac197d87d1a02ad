"""``slayer.neuron.base.Neuron``: the abstract Loihi neuron with lava-dl's signature
(:class:`spikefuse.neuron.loihi.base.Neuron` without its extra ``num_neurons`` argument, so
that positional calls mean what they mean in lava-dl).

>>> from spikefuse.compat.lava_dl import slayer
>>> n = slayer.neuron.base.Neuron(0.999, 1, 1, 4096, 64, 4096)
>>> n.threshold, n.v_th_mant, n.p_scale, n.w_scale, n.s_scale
(0.984375, 63, 4096, 64, 4096)
"""
from spikefuse.neuron.loihi import base as _native
from ._layout import lava_kwargs

__all__ = ["Neuron"]


class Neuron(_native.Neuron):
    """lava-dl ``base.Neuron(threshold, tau_grad=1, scale_grad=1, p_scale=1, w_scale=1,
    s_scale=1, norm=None, dropout=None, persistent_state=False, shared_param=True,
    requires_grad=True, complex=False)``. Subclasses written for lava-dl see the same
    attributes (``threshold``, ``tau_rho``, ``scale_rho``, ``quantize_8bit``, ``v_th_mant``,
    ``weight_exponent``, ``norm`` / ``real_norm`` / ``imag_norm``, ``drop``)."""

    def __init__(self, threshold, tau_grad=1, scale_grad=1, p_scale=1, w_scale=1, s_scale=1,
                 norm=None, dropout=None, persistent_state=False, shared_param=True,
                 requires_grad=True, complex=False):
        super().__init__(**lava_kwargs(locals()))
