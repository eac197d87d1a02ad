"""Loihi adaptive LIF neuron — lava-dl ``slayer.neuron.alif`` (SPEC.md 5), time-first.

Per call with input ``x`` of shape ``(T, B, *features)``::

    x = norm(x)                                    # if norm
    u = LI(x; Du, current_state);  v = LI(u; Dv, voltage_state)     # the voltage never resets
    θ, r = adaptive dynamics(v)                    # SPEC 3.4: spike where v >= θ + r,
                                                   # then r += 2θ, θ += θ_step
    s = Spike(v, θ + r, 100·tau_grad·θ0_q, 0.1·scale_grad, graded)
    s = dropout(s)

Example::

    >>> import torch
    >>> from spikefuse.neuron.loihi import alif
    >>> n = alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=1.0, voltage_decay=0.5,
    ...                 threshold_decay=0.25, refractory_decay=0.5)
    >>> x = torch.tensor([1.5, 0.5, 0.5, 1.0, 1.5, 0.0]).reshape(6, 1, 1)
    >>> n(x).flatten().tolist()
    [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    >>> n.device_params["vThStep"]
    32
"""
from __future__ import annotations

import torch

from ..._validate import check_bool, check_choice
from ...functional import loihi as F
from . import base
from .cuba import _check_scales, _lava_scales

__all__ = ["Neuron", "neuron_params", "TAU_RHO_MULT", "SCALE_RHO_MULT"]

TAU_RHO_MULT = F.TAU_RHO_MULT
SCALE_RHO_MULT = F.SCALE_RHO_MULT


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12, faithful: bool = False) -> dict:
    """Translate ALIF device parameters to constructor keyword arguments (SPEC 3.8).

    lava-dl sets ``threshold_step = vThMant / scale`` (SPEC 18 #4). ``faithful=False``
    (default) uses ``vThStep / scale`` when the key is present; ``faithful=True`` reproduces
    lava-dl.

    >>> d = {"vThMant": 64, "vThStep": 32, "iDecay": 4096, "vDecay": 2048, "thDecay": 1024, "refDecay": 2048}
    >>> neuron_params(d)["threshold_step"], neuron_params(d, faithful=True)["threshold_step"]
    (0.5, 1.0)
    """
    _check_scales(device_params, ("vThMant", "iDecay", "vDecay", "thDecay", "refDecay"), scale, p_scale)
    check_bool("faithful", faithful)
    return {
        "threshold": device_params["vThMant"] / scale,
        "threshold_step": base._threshold_step_param(device_params, scale, faithful),
        "current_decay": device_params["iDecay"] / p_scale,
        "voltage_decay": device_params["vDecay"] / p_scale,
        "threshold_decay": device_params["thDecay"] / p_scale,
        "refractory_decay": device_params["refDecay"] / p_scale,
    }


class Neuron(base._AdaptiveThresholdMixin, base._CurrentVoltageMixin, base.Neuron):
    """Loihi adaptive LIF (lava-dl ``alif.Neuron``), time-first ``(T, B, *features)``.

    Parameters
    ----------
    threshold : float
        resting threshold θ0 (quantised by truncation to a multiple of ``1/scale``).
    threshold_step : float
        threshold increase per spike (``>= 0``, quantised the same way).
    current_decay, voltage_decay : float or (min, max)
        as CUBA (1 % jitter for scalars when ``shared_param=False``); clamped to [0, 1].
    threshold_decay, refractory_decay : float or (min, max)
        decays of θ toward θ0 and of r toward 0 (no jitter for scalars; never clamped).
    tau_grad, scale_grad, scale, norm, dropout, shared_param, persistent_state,
    requires_grad, graded_spike, decay_grad : as :class:`spikefuse.neuron.loihi.cuba.Neuron`.

    Buffers: ``current_state``, ``voltage_state``, ``threshold_state`` (initial θ0_q),
    ``refractory_state``.

    >>> import torch
    >>> n = Neuron(1.0, 0.5, current_decay=1.0, voltage_decay=0.5, threshold_decay=0.25,
    ...            refractory_decay=0.5, persistent_state=True)
    >>> n(torch.tensor([1.5, 0.5]).reshape(2, 1, 1)).flatten().tolist()
    [1.0, 0.0]
    >>> n.threshold_state.item(), n.refractory_state.item()   # θ[1], r[1] (no spike at t=1)
    (1.375, 1.0)
    """

    def __init__(
        self,
        threshold,
        threshold_step,
        current_decay,
        voltage_decay,
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
        decay_grad="exact",
        *,
        backend=None,
    ):
        super().__init__(
            threshold=threshold,
            tau_grad=tau_grad,
            scale_grad=scale_grad,
            **_lava_scales(scale),
            norm=norm,
            dropout=dropout,
            persistent_state=persistent_state,
            shared_param=shared_param,
            requires_grad=requires_grad,
            backend=backend,
        )
        self.threshold_step = self._quantized_threshold_step(threshold_step)
        check_bool("graded_spike", graded_spike)
        check_choice("decay_grad", decay_grad, F.DECAY_GRADS)
        self.graded_spike = graded_spike
        self.decay_grad = decay_grad
        # registration order (per-channel sampling, state order): current, voltage, threshold,
        # refractory
        self._register_current_voltage(current_decay, voltage_decay)
        self._register_adaptive(threshold_decay, refractory_decay)
        self.clamp()

    # ---------------------------------------------------------------- parameters
    # clamp, device, cx_current_decay, cx_voltage_decay, ref_delay: base._CurrentVoltageMixin;
    # cx_threshold_decay, cx_refractory_decay, v_th_step: base._AdaptiveThresholdMixin
    @property
    def device_params(self) -> dict:
        """Loihi compartment parameters."""
        return {
            "type": "ALIF",
            "iDecay": self.cx_current_decay,
            "vDecay": self.cx_voltage_decay,
            "thDecay": self.cx_threshold_decay,
            "refDecay": self.cx_refractory_decay,
            "vThMant": self.v_th_mant,
            "vThStep": self.v_th_step,
            "refDelay": self.ref_delay,
            "gradedSpike": self.graded_spike,
        }

    def params(self) -> F.AlifParams:
        """The functional parameters (decays keep their autograd graph)."""
        return F.AlifParams(
            threshold=self.threshold,
            threshold_step=self.threshold_step,
            current_decay=self.current_decay,
            voltage_decay=self.voltage_decay,
            threshold_decay=self.threshold_decay,
            refractory_decay=self.refractory_decay,
            tau_grad=self.tau_grad,
            scale_grad=self.scale_grad,
            scale=self.w_scale,
            graded_spike=self.graded_spike,
            decay_grad=self.decay_grad,
        )

    # ---------------------------------------------------------------- dynamics
    def dynamics(self, input: torch.Tensor):
        """``(current, voltage, threshold, refractory)`` traces ``(T, B, *features)``.

        With ``persistent_state`` stores the last values (θ and r without the last spike's
        update, which :meth:`spike` applies)."""
        st = self._prepare(input)
        if self.norm is not None:
            input = self.norm(input)
        s_scale = self.s_scale
        du = F.round_ste(F.decay_view("current_decay", self.current_decay, input))
        dv = F.round_ste(F.decay_view("voltage_decay", self.voltage_decay, input))
        current = F._li(input, du, st["current_state"], None, s_scale, self.decay_grad)
        voltage = F._li(current, dv, st["voltage_state"], None, s_scale, self.decay_grad)
        ad = F.adaptive_threshold_dynamics(
            voltage, self.threshold, self.threshold_step, self.threshold_decay, self.refractory_decay,
            st["threshold_state"], st["refractory_state"], s_scale, "ge",
        )
        self._store_states(
            current_state=current[-1], voltage_state=voltage[-1],
            threshold_state=ad.threshold[-1], refractory_state=ad.refractory[-1],
        )
        return current, voltage, ad.threshold, ad.refractory

    def spike(self, voltage: torch.Tensor, threshold: torch.Tensor, refractory: torch.Tensor) -> torch.Tensor:
        """Spikes where ``voltage >= threshold + refractory``; applies the last spike to the
        stored θ and r states when persistent, then dropout."""
        s = F.real_spike(
            voltage,
            threshold + refractory,
            TAU_RHO_MULT * self.tau_rho,
            SCALE_RHO_MULT * self.scale_rho,
            self.graded_spike,
        )
        if self.persistent_state:
            with torch.no_grad():
                self._store_states(**self._adapted_states(s))
        return self._apply_dropout(s)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Spike response ``(T, B, *features)`` (same numbers as ``spike(*dynamics(x)[1:])``)."""
        return self._forward_fused(input, self._prepare(input, finite=False), F.alif_multistep, F.AlifState, norm=self.norm)
