"""Loihi CUBA (current-based LIF) neuron — lava-dl ``slayer.neuron.cuba`` (SPEC.md 4), time-first.

Per call with input ``x`` of shape ``(T, B, *features)``::

    u = LI(x; Du, current_state)                   # integer leaky integrator, SPEC 3.3
    u = norm(u)                                    # if norm (whole sequence)
    v = LI(u; Dv, voltage_state, reset at θ_q + 0.01/s_scale)   # recorded pre-reset
    s = Spike(v, θ_q + 0.01/s_scale, 100·tau_grad·θ_q, 0.1·scale_grad, graded)   # v > θ_q
    s = dropout(s)

Example::

    >>> import torch
    >>> from spikefuse.neuron.loihi import cuba
    >>> n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25)
    >>> x = torch.tensor([0.5, 0.5, 0.0, 0.25, 0.0]).reshape(5, 1, 1)
    >>> n(x).flatten().tolist()
    [0.0, 1.0, 0.0, 0.0, 0.0]
    >>> int(n.device_params["iDecay"]), n.device_params["vThMant"]
    (2048, 64)
    >>> cuba.neuron_params({"vThMant": 80, "iDecay": 1024, "vDecay": 128})
    {'threshold': 1.25, 'current_decay': 0.25, 'voltage_decay': 0.03125}
"""
from __future__ import annotations

import torch

from ..._validate import _describe, check_bool, check_choice
from ...functional import loihi as F
from . import base

__all__ = ["Neuron", "neuron_params", "TAU_RHO_MULT", "SCALE_RHO_MULT"]

TAU_RHO_MULT = F.TAU_RHO_MULT
SCALE_RHO_MULT = F.SCALE_RHO_MULT


def _check_scales(device_params, keys, scale, p_scale=None):
    """Check the arguments of a ``neuron_params``: a dict holding ``keys``, a positive
    ``scale`` and (unless None, for models without decays) a positive ``p_scale``."""
    if not isinstance(device_params, dict):
        raise TypeError(f"device_params: expected a dict, got {_describe(device_params)}")
    missing = [k for k in keys if k not in device_params]
    if missing:
        raise ValueError(f"device_params: missing keys {missing} (got {sorted(device_params)})")
    scales = (("scale", scale),) if p_scale is None else (("scale", scale), ("p_scale", p_scale))
    for name, v in scales:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValueError(f"{name}: expected a positive number, got {v!r}")


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Translate CUBA device parameters to constructor keyword arguments (SPEC 3.8).

    >>> neuron_params({"vThMant": 80, "iDecay": 1024, "vDecay": 128})
    {'threshold': 1.25, 'current_decay': 0.25, 'voltage_decay': 0.03125}
    """
    _check_scales(device_params, ("vThMant", "iDecay", "vDecay"), scale, p_scale)
    return {
        "threshold": device_params["vThMant"] / scale,
        "current_decay": device_params["iDecay"] / p_scale,
        "voltage_decay": device_params["vDecay"] / p_scale,
    }


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, int) or scale <= 0:
        raise ValueError(f"scale: expected a positive int, got {scale!r}")


def _lava_scales(scale, decays: bool = True) -> dict:
    """The scales every lava-dl neuron subclass fixes from its ``scale`` argument (SPEC 3.1):
    ``w_scale = scale``, ``s_scale = 64 * scale`` and, for models with decays,
    ``p_scale = 4096``. Validates ``scale``."""
    _check_scale(scale)
    out = dict(w_scale=scale, s_scale=scale * (1 << 6))
    if decays:
        out["p_scale"] = 1 << 12
    return out


class Neuron(base._CurrentVoltageMixin, base.Neuron):
    """Loihi CUBA neuron (lava-dl ``cuba.Neuron``), time-first ``(T, B, *features)``.

    Parameters
    ----------
    threshold : float
        threshold, quantised to ``trunc(θ·scale)/scale``; spikes when ``v > θ_q``.
    current_decay, voltage_decay : float or (min, max)
        fraction of the state lost per step, in [0, 1]; a pair (or a scalar, with 1 % jitter)
        gives per-channel values sampled at the first forward when ``shared_param=False``.
    tau_grad, scale_grad : float
        surrogate width / height (multiplied internally by 100 and 0.1).
    scale : int
        ``w_scale`` (default 64); ``s_scale = 64·scale``, ``p_scale = 4096``.
    norm, dropout, shared_param, persistent_state, requires_grad, graded_spike :
        as lava-dl (SPEC 3.0); ``requires_grad`` makes the decays learnable.
    decay_grad : {"exact", "lava"}
        decay gradient rule (SPEC 3.3 / 18 #1).
    backend : str or None, keyword-only
        kernel backend of :meth:`forward` (None: the global default), checked when set.

    Attributes: parameters ``current_decay``, ``voltage_decay`` (×4096); buffers
    ``current_state``, ``voltage_state``; ``threshold_eps = 0.01 / s_scale``; ``backend``
    (None = global default) used by :meth:`forward`.

    >>> import torch
    >>> n = Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25, graded_spike=True)
    >>> n(torch.tensor([0.5, 0.5, 0.0]).reshape(3, 1, 1)).flatten().tolist()
    [0.0, 1.125, 0.0]
    """

    def __init__(
        self,
        threshold,
        current_decay,
        voltage_decay,
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
        check_bool("graded_spike", graded_spike)
        check_choice("decay_grad", decay_grad, F.DECAY_GRADS)
        self.graded_spike = graded_spike
        self.decay_grad = decay_grad
        self.threshold_eps = 0.01 / self.s_scale
        self._register_current_voltage(current_decay, voltage_decay)
        self.clamp()

    # ---------------------------------------------------------------- parameters
    # clamp, device, cx_current_decay, cx_voltage_decay, ref_delay: base._CurrentVoltageMixin
    @property
    def device_params(self) -> dict:
        """Loihi compartment parameters."""
        return {
            "type": "CUBA",
            "iDecay": self.cx_current_decay,
            "vDecay": self.cx_voltage_decay,
            "vThMant": self.v_th_mant,
            "refDelay": self.ref_delay,
            "gradedSpike": self.graded_spike,
        }

    def params(self) -> F.CubaParams:
        """The functional parameters (decays keep their autograd graph)."""
        return F.CubaParams(
            threshold=self.threshold,
            current_decay=self.current_decay,
            voltage_decay=self.voltage_decay,
            tau_grad=self.tau_grad,
            scale_grad=self.scale_grad,
            scale=self.w_scale,
            graded_spike=self.graded_spike,
            decay_grad=self.decay_grad,
        )

    # ---------------------------------------------------------------- dynamics
    def dynamics(self, input: torch.Tensor):
        """Current and (pre-reset) voltage traces ``(T, B, *features)`` of the input.

        With ``persistent_state`` stores the last current and the last pre-reset voltage (the
        reset of a last-step spike is applied by :meth:`spike`)."""
        st = self._prepare(input)
        p = self.params()
        s_scale = self.s_scale
        du = F.round_ste(F.decay_view("current_decay", self.current_decay, input))
        dv = F.round_ste(F.decay_view("voltage_decay", self.voltage_decay, input))
        current = F._li(input, du, st["current_state"], None, s_scale, p.decay_grad)
        if self.norm is not None:
            current = self.norm(current)
        voltage = F._li(current, dv, st["voltage_state"], self.threshold + self.threshold_eps, s_scale, p.decay_grad)
        self._store_states(current_state=current[-1], voltage_state=voltage[-1])
        return current, voltage

    def spike(self, voltage: torch.Tensor) -> torch.Tensor:
        """Spikes of a voltage trace (``v > θ_q``); applies the last-step reset to the stored
        voltage state when persistent, then dropout."""
        s = F.real_spike(
            voltage,
            self.threshold + self.threshold_eps,
            TAU_RHO_MULT * self.tau_rho,
            SCALE_RHO_MULT * self.scale_rho,
            self.graded_spike,
        )
        if self.persistent_state:
            with torch.no_grad():
                self.voltage_state = (self.voltage_state * (1 - (s[-1] > 0).to(self.voltage_state.dtype))).clone()
        return self._apply_dropout(s)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Spike response ``(T, B, *features)`` (same numbers as ``spike(dynamics(x)[1])``)."""
        return self._forward_fused(input, self._prepare(input, finite=False), F.cuba_multistep, F.CubaState, norm=self.norm)
