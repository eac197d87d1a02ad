"""Loihi resonate-and-fire neuron with phase threshold — lava-dl ``slayer.neuron.rf``
(SPEC.md 6), time-first.

The input and the state are complex, given as a pair ``(real, imag)`` of ``(T, B, *features)``
tensors (a complex tensor is accepted too). Per call::

    real, imag = real_norm(real), imag_norm(imag)              # if norm
    re, im = RES(real, imag; S, C, state)                        # SPEC 6.2, no reset
    s = complex.Spike(re, im, θ_q, 0.5·tau_grad·θ_q, 10·scale_grad, graded, im_last=imag_state)
    s = dropout(s)

A spike is emitted when the phase passes 0 counter-clockwise (``im[t-1] < 0 <= im[t]``) while
``re[t] >= θ_q``. The surrogate multipliers 0.5 / 10 are the ones that reproduce the lava-dl
fixture ``tests/fixtures/lava_dl/rf.npz`` (see :mod:`spikefuse.functional.resonator`).

This module also holds :class:`ResonatorNeuron`, the shared implementation of the RF family
(used by :mod:`.rf_iz`, :mod:`.adrf`, :mod:`.adrf_iz`).

Example (SPEC 17 L3)::

    >>> import torch
    >>> from spikefuse.neuron.loihi import rf
    >>> n = rf.Neuron(threshold=0.5, period=4, decay=0.0)
    >>> int(n.cx_sin_decay), int(n.cx_cos_decay), round(float(n.decay), 6)
    (4095, 0, 0.000244)
    >>> xr = torch.tensor([1.0, 0, 0, 0, 0, 0]).reshape(6, 1, 1)
    >>> n((xr, torch.zeros_like(xr))).flatten().tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    >>> rf.neuron_params(rf.Neuron(threshold=0.5, period=8, decay=0.1).device_params)["threshold"]
    0.5
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..._validate import _describe, check_bool, check_choice, check_number
from ...functional import resonator as F
from ...spike import complex_spike
from . import base
from .cuba import _check_scales, _lava_scales

__all__ = ["Neuron", "neuron_params", "ResonatorNeuron", "TAU_RHO_MULT", "SCALE_RHO_MULT", "check_period"]

TAU_RHO_MULT, SCALE_RHO_MULT = F.SURROGATE_MULTIPLIERS["rf"]


def _scalar_or_array(v):
    """float for a 0-d / one-element value, else a NumPy array."""
    a = np.asarray(v, dtype=np.float64)
    if a.size == 1:
        return float(a.reshape(-1)[0])
    return a


def _rf_translate(device_params: dict, scale, p_scale) -> dict:
    _check_scales(device_params, ("vThMant", "sinDecay", "cosDecay"), scale, p_scale)
    s = np.asarray(device_params["sinDecay"], dtype=np.float64) / p_scale
    c = np.asarray(device_params["cosDecay"], dtype=np.float64) / p_scale
    if np.any(np.arctan2(s, c) <= 0):
        raise ValueError(
            "device_params: sinDecay must be positive (a rotation in the first quadrant), "
            f"got sinDecay={device_params['sinDecay']!r}, cosDecay={device_params['cosDecay']!r}"
        )
    decay = 1 - np.sqrt(s ** 2 + c ** 2)
    frequency = np.arctan2(s, c) / 2 / np.pi
    return {
        "threshold": device_params["vThMant"] / scale,
        "period": _scalar_or_array(1 / frequency),
        "decay": _scalar_or_array(decay),
    }


def neuron_params(device_params: dict, scale: int = 1 << 6, p_scale: int = 1 << 12) -> dict:
    """Translate RF device parameters to constructor keyword arguments (SPEC 3.8).

    With ``s = sinDecay/p_scale``, ``c = cosDecay/p_scale``: ``decay = 1 - sqrt(s² + c²)``,
    ``period = 2π / atan2(s, c)``, ``threshold = vThMant / scale``. (lava-dl's version builds
    one-element tuples by a trailing comma and fails; this is the evident formula.)

    >>> p = neuron_params({"vThMant": 32, "sinDecay": 2607, "cosDecay": 2607})
    >>> p["threshold"], round(p["period"], 6), round(p["decay"], 4)
    (0.5, 8.0, 0.0999)
    """
    return _rf_translate(device_params, scale, p_scale)


def check_period(period, shared_param: bool):
    """Validate an oscillation period (steps, ``>= 4``). Returns ``(value, None)`` for a scalar,
    ``(min, max)`` for a pair (only with ``shared_param=False``)."""
    if base._is_scalar(period):
        p = float(period)
        check_number("period", p)
        if p < 4:
            raise ValueError(
                f"period: an oscillation period below 4 steps is not representable (the rotation "
                f"must stay in the first quadrant); expected period >= 4, got {p}"
            )
        return p, None
    if isinstance(period, (str, bytes, bool)) or not hasattr(period, "__len__"):
        raise TypeError(f"period: expected a number >= 4 or a (min, max) pair, got {_describe(period)}")
    if shared_param:
        raise ValueError(f"period: expected a scalar period >= 4 when shared_param=True, got {_describe(period)}")
    if len(period) != 2:
        raise ValueError(f"period: expected a (min, max) pair, got {len(period)} values {period!r}")
    lo, hi = period
    for part, v in (("min", lo), ("max", hi)):
        if not base._is_scalar(v):
            raise TypeError(f"period: {part} of the pair must be a number, got {_describe(v)}")
        check_number(f"period ({part})", float(v))
    lo, hi = float(lo), float(hi)
    if min(lo, hi) < 4:
        raise ValueError(f"period: expected periods >= 4, got the pair ({lo}, {hi})")
    if lo > hi:
        raise ValueError(f"period: expected an ordered pair (min, max) with min <= max, got ({lo}, {hi})")
    return lo, hi


class ResonatorNeuron(base.Neuron):
    """Shared implementation of the RF family (RF, RF-Iz, AdRF, AdRF-Iz).

    Parameters ``sin_decay``, ``cos_decay`` (×4096); buffers ``real_state``, ``imag_state``;
    properties ``decay``, ``lam``, ``frequency``, ``period``, ``cx_sin_decay``,
    ``cx_cos_decay``. Subclasses set ``_model`` (functional model key) and ``_type`` (device
    type string) and implement ``dynamics`` / ``spike``.
    """

    _model = "rf"
    _type = "RF_PHASE"

    def __init__(
        self,
        threshold,
        period,
        decay,
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
            tau_grad=tau_grad,
            scale_grad=scale_grad,
            **_lava_scales(scale),
            norm=norm,
            dropout=dropout,
            persistent_state=persistent_state,
            shared_param=shared_param,
            requires_grad=requires_grad,
            complex=True,
            backend=backend,
        )
        check_bool("graded_spike", graded_spike)
        check_bool("log_init", log_init)
        check_choice("decay_grad", decay_grad, ("exact", "lava"))
        self.graded_spike = graded_spike
        self.log_init = log_init
        self.decay_grad = decay_grad

        p, p_hi = check_period(period, shared_param)
        d, d_hi = base.check_decay("decay", decay, shared_param)
        if shared_param:
            # lava computes these in float64 (NumPy) and stores float32
            sin = self.p_scale * math.sin(2 * math.pi / p) * (1 - d)
            cos = self.p_scale * math.cos(2 * math.pi / p) * (1 - d)
            self._rf_ranges = None
        else:
            p_lo, p_hi = (p * 0.99, p * 1.01) if p_hi is None else (p, p_hi)
            d_lo, d_hi = (d * 0.99, d * 1.01) if d_hi is None else (d, d_hi)
            self._rf_ranges = ((p_lo, p_hi), (d_lo, d_hi))
            sin, cos = 0.0, 0.0
        self.sin_decay = nn.Parameter(torch.tensor([sin], dtype=torch.float32), requires_grad=self.requires_grad)
        self.cos_decay = nn.Parameter(torch.tensor([cos], dtype=torch.float32), requires_grad=self.requires_grad)
        self._register_state("real_state", 0.0)
        self._register_state("imag_state", 0.0)
        self.clamp()

    # ---------------------------------------------------------------- parameters
    def clamp(self) -> None:
        """Keep the rotation inside the unit circle and the first quadrant (SPEC 6.1): rescale
        ``(sin, cos)`` so that the gain is at most ``p_scale - 1``, then ``sin >= 1``,
        ``cos >= 0``. (A zero gain is left unscaled instead of producing NaN.)"""
        with torch.no_grad():
            gain = torch.sqrt(self.sin_decay ** 2 + self.cos_decay ** 2)
            ratio = torch.where(gain > 0, gain.clamp(0, self.p_scale - 1) / gain, torch.ones_like(gain))
            self.sin_decay.data *= ratio
            self.cos_decay.data *= ratio
            self.sin_decay.data.clamp_(min=1)
            self.cos_decay.data.clamp_(min=0)

    def _init_shape(self, x: torch.Tensor) -> None:
        if self.shape is None and self._rf_ranges is not None:
            shape = tuple(x.shape[2:])
            if len(shape) == 0:
                raise ValueError(f"input: expected at least 3 dimensions (T, B, *features), got shape {tuple(x.shape)}")
            channels = shape[0]
            (p_lo, p_hi), (d_lo, d_hi) = self._rf_ranges
            if self.log_init:
                frequency = torch.logspace(-np.log10(p_hi), -np.log10(p_lo), steps=channels)
            else:
                frequency = 1 / p_hi + (1 / p_lo - 1 / p_hi) * torch.rand(channels, dtype=torch.float)
            decay = d_lo + (d_hi - d_lo) * torch.rand(channels, dtype=torch.float)
            sin = torch.sin(2 * np.pi * frequency) * (1 - decay)
            cos = torch.cos(2 * np.pi * frequency) * (1 - decay)
            self.sin_decay.data = (self.p_scale * sin).to(self.sin_decay.device)
            self.cos_decay.data = (self.p_scale * cos).to(self.cos_decay.device)
            self._rf_ranges = None
        super()._init_shape(x)

    def _rounded(self):
        self.clamp()
        s = torch.round(self.sin_decay.detach()).cpu().double().numpy()
        c = torch.round(self.cos_decay.detach()).cpu().double().numpy()
        return s, c

    @property
    def device(self) -> torch.device:
        return self.sin_decay.device

    @property
    def decay(self):
        """Amplitude lost per step, ``1 - sqrt(S² + C²)/4096`` from the rounded decays."""
        s, c = self._rounded()
        return _scalar_or_array(1 - np.sqrt((s / self.p_scale) ** 2 + (c / self.p_scale) ** 2))

    @property
    def lam(self):
        """``-ln(1 - decay)``."""
        return _scalar_or_array(-np.log(1 - np.asarray(self.decay)))

    @property
    def frequency(self):
        """Oscillation frequency (cycles per step), ``atan2(S, C) / 2π``."""
        s, c = self._rounded()
        return _scalar_or_array(np.arctan2(s, c) / 2 / np.pi)

    @property
    def period(self):
        """Oscillation period in steps, ``1 / frequency``."""
        return _scalar_or_array(1 / np.asarray(self.frequency))

    @property
    def cx_sin_decay(self):
        """Loihi ``sinDecay`` (rounded, after :meth:`clamp`)."""
        return self._cx(self.sin_decay)

    @property
    def cx_cos_decay(self):
        """Loihi ``cosDecay`` (rounded, after :meth:`clamp`)."""
        return self._cx(self.cos_decay)

    @property
    def device_params(self) -> dict:
        """Loihi compartment parameters."""
        return {
            "type": self._type,
            "sinDecay": self.cx_sin_decay,
            "cosDecay": self.cx_cos_decay,
            "vThMant": self.v_th_mant,
            "gradedSpike": self.graded_spike,
        }

    def params(self) -> F.RFParams:
        """Functional parameters (decays keep their autograd graph)."""
        return F.RFParams(
            sin_decay=self.sin_decay,
            cos_decay=self.cos_decay,
            threshold=self.threshold,
            tau_grad=self.tau_grad,
            scale_grad=self.scale_grad,
            graded_spike=self.graded_spike,
            s_scale=self.s_scale,
            decay_grad=self.decay_grad,
        )

    # ---------------------------------------------------------------- running
    def _prepare(self, input, finite: bool = True):
        """Validate the complex input, freeze the shape, fetch the states, clamp, norm
        (``finite=False``: no NaN/inf scan of an input that reaches the functional multistep
        unnormalised, which scans it)."""
        finite = finite or self.real_norm is not None or self.imag_norm is not None
        re, im = self._check_complex_input(input, finite=finite)
        self._init_shape(re)
        st = self._states(re)
        if self.requires_grad:
            self.clamp()
        if self.real_norm is not None:
            re = self.real_norm(re)
        if self.imag_norm is not None:
            im = self.imag_norm(im)
        return re, im, st

    def _functional_state(self, st):
        return F._STATES[self._model](*(st[n] for n in self._state_init))

    def forward(self, input) -> torch.Tensor:
        """Spike response ``(T, B, *features)`` to a complex input ``(real, imag)``; the same
        numbers as ``spike(*dynamics(input))``, computed in one fused loop."""
        re, im, st = self._prepare(input, finite=False)
        return self._forward_fused((re, im), st, getattr(F, f"{self._model}_multistep"), F._STATES[self._model])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", graded_spike={self.graded_spike}, decay_grad={self.decay_grad!r}"


class Neuron(ResonatorNeuron):
    """Loihi RF neuron (lava-dl ``rf.Neuron``), time-first; input ``(real, imag)``.

    Parameters
    ----------
    threshold : float
        threshold on the real part, quantised to ``trunc(θ·scale)/scale`` (``θ·scale >= 1``).
    period : float or (min, max)
        oscillation period in steps (``>= 4``). With ``shared_param=False`` a scalar becomes the
        range ``(0.99P, 1.01P)``; per-channel frequencies are log-spaced (``log_init=True``,
        channel 0 gets the longest period) or uniform in frequency.
    decay : float or (min, max)
        fraction of the amplitude lost per step, in [0, 1] (1 % jitter per channel for scalars
        with ``shared_param=False``).
    tau_grad, scale_grad : float
        surrogate width / height (multiplied internally by 0.5 and 10, SPEC 2.1).
    scale : int
        ``w_scale`` (64); ``s_scale = 64·scale``; ``p_scale = 4096``.
    norm : callable or None
        factory; two instances ``real_norm``, ``imag_norm`` act on the real and imaginary inputs.
    dropout, shared_param, persistent_state, requires_grad, graded_spike, log_init :
        as lava-dl (SPEC 3.0, 6).
    decay_grad : {"exact", "lava"}
        sin/cos decay gradient rule (SPEC 6.2, 18 #1).
    backend : str or None, keyword-only
        kernel backend of :meth:`forward` (None: the global default), checked when set.
    """

    _model = "rf"
    _type = "RF_PHASE"

    def dynamics(self, input):
        """Resonator traces ``(real, imag)``, each ``(T, B, *features)``. With
        ``persistent_state`` stores the last real part (the imaginary part is stored by
        :meth:`spike`, which needs the previous call's value)."""
        re, im, st = self._prepare(input)
        real, imag = F.resonator(
            (re, im), self.sin_decay, self.cos_decay, (st["real_state"], st["imag_state"]),
            s_scale=self.s_scale, decay_grad=self.decay_grad,
        )
        self._store_states(real_state=real[-1])
        return real, imag

    def spike(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """Phase-threshold spikes of the traces (previous imaginary part = ``imag_state``),
        then dropout; with ``persistent_state`` stores the last imaginary part."""
        s = complex_spike(
            real, imag, self.threshold,
            TAU_RHO_MULT * self.tau_rho, SCALE_RHO_MULT * self.scale_rho,
            self.graded_spike, self.imag_state.to(device=real.device, dtype=real.dtype),
        )
        self._store_states(imag_state=imag[-1])
        return self._apply_dropout(s)
