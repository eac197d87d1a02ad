"""Loihi adaptive resonate-and-fire neuron with Izhikevich spike — lava-dl
``slayer.neuron.adrf_iz`` (SPEC.md 9), time-first.

One fused integer loop per call (SPEC 9): decay r and θ, update the resonator (SPEC 6.2),
spike where ``im >= θ + r``, then ``θ += θ_step``, ``r += 2θ``. **Neither re nor im is reset.**
The spike function is ``Spike(im, θ + r, 100·tau_grad·θ0_q, 0.1·scale_grad, graded)``.
Upstream's ``forward`` calls ``spike`` with three of its four arguments and fails (SPEC 18 #6);
here ``forward(x)`` equals ``spike(*dynamics(x))``.

Example (SPEC 17 L6)::

    >>> import torch
    >>> from spikefuse.neuron.loihi import adrf_iz
    >>> n = adrf_iz.Neuron(threshold=0.5, threshold_step=0.25, period=4, decay=0.0,
    ...                    threshold_decay=0.5, refractory_decay=0.5)
    >>> xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> n((xr, xi)).flatten().tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    >>> (n.dynamics((xr, xi))[3].flatten() * 4096).tolist()
    [0.0, 2048.0, 1024.0, 512.0, 256.0, 128.0]
"""
from __future__ import annotations

from ...functional import resonator as F
from ...spike import real_spike
from .adrf import AdaptiveResonatorNeuron, _adaptive_translate

__all__ = ["Neuron", "neuron_params", "TAU_RHO_MULT", "SCALE_RHO_MULT"]

TAU_RHO_MULT, SCALE_RHO_MULT = F.SURROGATE_MULTIPLIERS["adrf_iz"]


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12, faithful: bool = False) -> dict:
    """Translate AdRF-Iz device parameters to constructor keyword arguments (as AdRF; upstream
    crashes, SPEC 18 #5; ``faithful`` as in :func:`spikefuse.neuron.loihi.adrf.neuron_params`).

    >>> d = {"vThMant": 32, "vThStep": 16, "sinDecay": 4095, "cosDecay": 0, "thDecay": 2048, "refDecay": 1024}
    >>> neuron_params(d)["refractory_decay"]
    0.25
    """
    return _adaptive_translate(device_params, scale, p_scale, faithful)


class Neuron(AdaptiveResonatorNeuron):
    """Loihi AdRF-Iz neuron (lava-dl ``adrf_iz.Neuron``), time-first; input ``(real, imag)``.

    Same constructor as :class:`spikefuse.neuron.loihi.adrf.Neuron`. Spikes where
    ``im >= θ[t] + r[t]``; graded spikes carry ``im[t]``.
    """

    _model = "adrf_iz"
    _type = "ADRF_IZHIKEVICH"

    def _spike_fn(self, real, imag, threshold):
        _ = real
        return real_spike(
            imag, threshold, TAU_RHO_MULT * self.tau_rho, SCALE_RHO_MULT * self.scale_rho, self.graded_spike
        )
