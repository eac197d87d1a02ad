"""Loihi resonate-and-fire neuron with Izhikevich spike and reset — lava-dl
``slayer.neuron.rf_iz`` (SPEC.md 7), time-first.

Per call with a complex input ``(real, imag)`` of ``(T, B, *features)`` tensors::

    real, imag = real_norm(real), imag_norm(imag)               # if norm
    re, im = RES(real, imag; S, C, state, reset at θ_q)           # SPEC 6.2: when im >= θ_q the
                                                                 # next step starts from re = 0,
                                                                 # im = θ_q - 1/s_scale
    s = Spike(im, θ_q, 100·tau_grad·θ_q, 0.1·scale_grad, graded)  # real spike on im, im >= θ_q
    s = dropout(s)

Recorded traces are pre-reset; the reset carries no gradient. Graded spikes carry ``im[t]``.

Example (SPEC 17 L4)::

    >>> import torch
    >>> from spikefuse.neuron.loihi import rf_iz
    >>> n = rf_iz.Neuron(threshold=0.5, period=4, decay=0.0)
    >>> xr = torch.tensor([0, 0.6, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> xi = torch.tensor([0.6, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> re, im = n.dynamics((xr, xi))
    >>> (re.flatten() * 4096).tolist()
    [0.0, 411.0, 0.0, -409.0, 0.0, 407.0]
    >>> n.spike(re, im).flatten().tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
"""
from __future__ import annotations

import torch

from ...functional import resonator as F
from ...spike import real_spike
from .rf import ResonatorNeuron, _rf_translate

__all__ = ["Neuron", "neuron_params", "TAU_RHO_MULT", "SCALE_RHO_MULT"]

TAU_RHO_MULT, SCALE_RHO_MULT = F.SURROGATE_MULTIPLIERS["rf_iz"]


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Translate RF-Iz device parameters to constructor keyword arguments (as RF, SPEC 3.8).

    >>> p = neuron_params({"vThMant": 32, "sinDecay": 4095, "cosDecay": 0})
    >>> p["threshold"], round(p["period"], 6)
    (0.5, 4.0)
    """
    return _rf_translate(device_params, scale, p_scale)


class Neuron(ResonatorNeuron):
    """Loihi RF-Iz neuron (lava-dl ``rf_iz.Neuron``), time-first; input ``(real, imag)``.

    Same constructor as :class:`spikefuse.neuron.loihi.rf.Neuron` (``threshold``, ``period``,
    ``decay``, ``tau_grad``, ``scale_grad``, ``scale``, ``norm``, ``dropout``,
    ``shared_param``, ``persistent_state``, ``requires_grad``, ``graded_spike``, ``log_init``,
    ``decay_grad``); the surrogate multipliers are 100 / 0.1. Spikes where ``im >= θ_q``.
    """

    _model = "rf_iz"
    _type = "RF_IZHIKEVICH"

    def dynamics(self, input):
        """Pre-reset resonator traces ``(real, imag)`` with the Izhikevich reset applied to the
        next step's start. The states are stored by :meth:`spike` (they depend on the last
        spike)."""
        re, im, st = self._prepare(input)
        return F.resonator(
            (re, im), self.sin_decay, self.cos_decay, (st["real_state"], st["imag_state"]),
            threshold=self.threshold, s_scale=self.s_scale, decay_grad=self.decay_grad,
        )

    def spike(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """Real spike on the imaginary part (``imag >= θ_q``), then dropout. With
        ``persistent_state`` stores ``real_state = re[T-1]·(1 - s)``, ``imag_state =
        s·(θ_q - 1/s_scale) + (1 - s)·im[T-1]`` (s = last-step spike)."""
        s = real_spike(
            imag, self.threshold, TAU_RHO_MULT * self.tau_rho, SCALE_RHO_MULT * self.scale_rho,
            self.graded_spike,
        )
        if self.persistent_state:
            with torch.no_grad():
                fired = (s[-1] > 0).to(real.dtype)
                reset_im = float(int(self.threshold * self.s_scale - 1)) / self.s_scale
                self._store_states(
                    real_state=real[-1] * (1 - fired),
                    imag_state=fired * reset_im + (1 - fired) * imag[-1],
                )
        return self._apply_dropout(s)
