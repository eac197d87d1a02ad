"""Loihi adaptive resonate-and-fire neuron with phase threshold — lava-dl
``slayer.neuron.adrf`` (SPEC.md 8), time-first.

Per call with a complex input ``(real, imag)`` of ``(T, B, *features)`` tensors::

    real, imag = real_norm(real), imag_norm(imag)             # if norm
    re, im = RES(real, imag; S, C, state)                       # SPEC 6.2, no reset
    θ, r = adaptive dynamics (SPEC 3.4): spike where re >= θ + r and im[t-1] < 0 <= im[t];
           then r += 2θ, θ += θ_step
    s = complex.Spike(re, im, θ + r, 100·tau_grad·θ0_q, 0.1·scale_grad, graded, imag_state)
    s = dropout(s)

Note the surrogate multipliers (100 / 0.1) differ from RF's (0.5 / 10), as in lava-dl.

Example (SPEC 17 L5)::

    >>> import torch
    >>> from spikefuse.neuron.loihi import adrf
    >>> n = adrf.Neuron(threshold=0.5, threshold_step=0.25, period=4, decay=0.0,
    ...                 threshold_decay=0.5, refractory_decay=0.5)
    >>> xr = torch.zeros(9, 1, 1); xr[0] = 1.0
    >>> re, im, th, r = n.dynamics((xr, torch.zeros_like(xr)))
    >>> (th.flatten() * 4096).tolist()
    [2048.0, 2048.0, 2048.0, 2048.0, 2048.0, 2560.0, 2304.0, 2176.0, 2112.0]
    >>> n.spike(re, im, th, r).flatten().nonzero().flatten().tolist()
    [4, 8]
    >>> n.device_params["vThStep"]
    16
"""
from __future__ import annotations

import torch

from ..._validate import check_bool
from ...functional import resonator as F
from ...spike import complex_spike
from . import base
from .rf import ResonatorNeuron, _rf_translate
from .cuba import _check_scales

__all__ = ["Neuron", "neuron_params", "AdaptiveResonatorNeuron", "TAU_RHO_MULT", "SCALE_RHO_MULT"]

TAU_RHO_MULT, SCALE_RHO_MULT = F.SURROGATE_MULTIPLIERS["adrf"]


def _adaptive_translate(device_params: dict, scale, p_scale, faithful: bool) -> dict:
    check_bool("faithful", faithful)
    _check_scales(device_params, ("vThMant", "sinDecay", "cosDecay", "thDecay", "refDecay"), scale, p_scale)
    out = _rf_translate(device_params, scale, p_scale)
    out["threshold_step"] = base._threshold_step_param(device_params, scale, faithful)
    out["threshold_decay"] = device_params["thDecay"] / p_scale
    out["refractory_decay"] = device_params["refDecay"] / p_scale
    return out


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12, faithful: bool = False) -> dict:
    """Translate AdRF device parameters to constructor keyword arguments (SPEC 3.8).

    RF's keys plus ``threshold_step``, ``threshold_decay = thDecay/p_scale``,
    ``refractory_decay = refDecay/p_scale``. lava-dl's version crashes (trailing commas make
    tuples, SPEC 18 #5); this implements the evident formula. lava-dl also sets
    ``threshold_step = vThMant/scale`` (18 #4): ``faithful=True`` reproduces that, the default
    uses ``vThStep/scale`` when the key is present.

    >>> d = {"vThMant": 32, "vThStep": 16, "sinDecay": 4095, "cosDecay": 0, "thDecay": 2048, "refDecay": 2048}
    >>> p = neuron_params(d)
    >>> p["threshold"], p["threshold_step"], p["threshold_decay"], neuron_params(d, faithful=True)["threshold_step"]
    (0.5, 0.25, 0.5, 0.5)
    """
    return _adaptive_translate(device_params, scale, p_scale, faithful)


class AdaptiveResonatorNeuron(base._AdaptiveThresholdMixin, ResonatorNeuron):
    """Shared implementation of AdRF and AdRF-Iz: RF's parameters plus ``threshold_step``,
    ``threshold_decay``, ``refractory_decay`` (×4096, never clamped, no gradient) and the
    ``threshold_state`` (initial θ0_q) and ``refractory_state`` buffers."""

    _model = "adrf"
    _type = "ADRF_PHASE"

    def __init__(
        self,
        threshold,
        threshold_step,
        period,
        decay,
        threshold_decay,
        refractory_decay,
        tau_grad=1.0,
        scale_grad=1.0,
        scale=1 << 6,
        norm=None,
        dropout=None,
        shared_param=True,
        persistent_state=False,
        requires_grad=False,
        graded_spike=False,
        log_init=True,
        decay_grad="exact",
        *,
        backend=None,
    ):
        super().__init__(
            threshold=threshold,
            period=period,
            decay=decay,
            tau_grad=tau_grad,
            scale_grad=scale_grad,
            scale=scale,
            norm=norm,
            dropout=dropout,
            shared_param=shared_param,
            persistent_state=persistent_state,
            requires_grad=requires_grad,
            graded_spike=graded_spike,
            log_init=log_init,
            decay_grad=decay_grad,
            backend=backend,
        )
        self.threshold_step = self._quantized_threshold_step(threshold_step)
        # lava order of per-channel sampling: frequency, decay, threshold decay, refractory decay
        self._register_adaptive(threshold_decay, refractory_decay)

    # cx_threshold_decay, cx_refractory_decay, v_th_step: base._AdaptiveThresholdMixin
    @property
    def device_params(self) -> dict:
        """Loihi compartment parameters."""
        return {
            "type": self._type,
            "sinDecay": self.cx_sin_decay,
            "cosDecay": self.cx_cos_decay,
            "thDecay": self.cx_threshold_decay,
            "refDecay": self.cx_refractory_decay,
            "vThMant": self.v_th_mant,
            "vThStep": self.v_th_step,
            "gradedSpike": self.graded_spike,
        }

    def params(self) -> F.AdRFParams:
        """Functional parameters (decays keep their autograd graph)."""
        return F.AdRFParams(
            sin_decay=self.sin_decay,
            cos_decay=self.cos_decay,
            threshold_decay=self.threshold_decay,
            refractory_decay=self.refractory_decay,
            threshold=self.threshold,
            threshold_step=self.threshold_step,
            tau_grad=self.tau_grad,
            scale_grad=self.scale_grad,
            graded_spike=self.graded_spike,
            s_scale=self.s_scale,
            decay_grad=self.decay_grad,
        )

    def dynamics(self, input):
        """Traces ``(real, imag, threshold, refractory)``, each ``(T, B, *features)`` (θ and r
        before the spike update of their step). With ``persistent_state`` stores the last
        real part, θ and r; :meth:`spike` applies the last spike to them and stores the last
        imaginary part."""
        re, im, st = self._prepare(input)
        multistep = getattr(F, f"{self._model}_multistep")
        _, _, tr = multistep((re, im), self.params(), self._functional_state(st), backend=self.backend,
                             return_traces=True)
        store = dict(real_state=tr.real[-1], threshold_state=tr.threshold[-1], refractory_state=tr.refractory[-1])
        if self._model == "adrf_iz":
            store["imag_state"] = tr.imag[-1]
        self._store_states(**store)
        return tr.real, tr.imag, tr.threshold, tr.refractory

    def _spike_fn(self, real, imag, threshold):  # pragma: no cover - abstract
        raise NotImplementedError

    def spike(self, real, imag, threshold, refractory) -> torch.Tensor:
        """Spikes of the traces with the adaptive threshold ``threshold + refractory``, then
        dropout. With ``persistent_state``: ``refractory_state += 2·θ_state·s``,
        ``threshold_state += θ_step·s`` (s = last-step spike)."""
        s = self._spike_fn(real, imag, threshold + refractory)
        if self.persistent_state:
            with torch.no_grad():
                store = self._adapted_states(s)
                if self._model == "adrf":
                    store["imag_state"] = imag[-1]
                self._store_states(**store)
        return self._apply_dropout(s)


class Neuron(AdaptiveResonatorNeuron):
    """Loihi AdRF neuron (lava-dl ``adrf.Neuron``), time-first; input ``(real, imag)``.

    Parameters
    ----------
    threshold : float
        resting threshold θ0 (quantised to ``trunc(θ·scale)/scale``).
    threshold_step : float
        threshold increase per spike (``>= 0``, quantised the same way).
    period, decay : float or (min, max)
        as :class:`spikefuse.neuron.loihi.rf.Neuron`.
    threshold_decay, refractory_decay : float or (min, max)
        decays of θ toward θ0 and of r toward 0, in [0, 1] (no jitter for scalars).
    tau_grad, scale_grad, scale, norm, dropout, shared_param, persistent_state, requires_grad,
    graded_spike, log_init, decay_grad : as RF (surrogate multipliers 100 / 0.1).
    """

    _model = "adrf"
    _type = "ADRF_PHASE"

    def _spike_fn(self, real, imag, threshold):
        return complex_spike(
            real, imag, threshold, TAU_RHO_MULT * self.tau_rho, SCALE_RHO_MULT * self.scale_rho,
            self.graded_spike, self.imag_state.to(device=real.device, dtype=real.dtype),
        )
