"""Abstract Loihi fixed-point neuron (SPEC.md 3.0-3.8), time-first.

:class:`Neuron` holds what every lava-dl-style neuron shares:

- scales: ``p_scale`` (decay parameter scale), ``w_scale`` (weight / threshold mantissa scale),
  ``s_scale`` (state scale); the quantised threshold ``θ_q = trunc(θ * w_scale) / w_scale``;
- surrogate base values ``tau_rho = tau_grad * θ_q`` and ``scale_rho = scale_grad`` (each
  model multiplies them again, SPEC 2.1);
- ``norm`` (a factory called with no argument; complex neurons get ``real_norm`` and
  ``imag_norm``), ``dropout`` (applied to the output), ``persistent_state``, ``shared_param``,
  ``requires_grad``, ``complex``;
- ``quantize_8bit(weight, descale=False)``: usable as a synapse weight pre-hook;
- ``v_th_mant``, ``weight_exponent``, ``scale``, ``device``, ``clamp()``;
- helpers for subclasses: decay parameters with lazy per-channel sampling
  (:meth:`_register_decay`, :meth:`_init_shape`), persistent state buffers re-created when the
  batch size changes (:meth:`_register_state`, :meth:`_states`, :meth:`_store_states`), device
  translations (:meth:`_cx`), input validation (:meth:`_check_real_input`,
  :meth:`_check_complex_input`), the start and the fused run of a real model's ``forward``
  (:meth:`_prepare`, :meth:`_forward_fused`);
- mixins for what several models share: ``_CurrentVoltageMixin`` (CUBA, ALIF: current and
  voltage decays and states) and ``_AdaptiveThresholdMixin`` (ALIF, AdRF, AdRF-Iz: threshold
  step, threshold and refractory decays and states).

Layout: inputs are time-first ``(T, B, *features)``; the neuron ``shape`` is ``features``
(the lava ``input.shape[1:-1]``); "channel" is the first feature dim.

Example (a concrete subclass)::

    >>> import torch
    >>> from spikefuse.neuron.loihi import cuba
    >>> n = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25)
    >>> n.threshold, n.v_th_mant, n.weight_exponent
    (1.0, 64, 0)
    >>> n.quantize_8bit(torch.tensor([0.01, 5.0]))
    tensor([0.0000, 3.9688])
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import nn

from ..._validate import _describe, check_bool, check_number, check_scalar, check_tensor
from ...fixed_point import quantize_8bit as _quantize_8bit
from ...fixed_point import quantize_threshold
from ..base import NeuronModule, time_last_hint

__all__ = ["Neuron", "check_decay", "is_power_of_two"]


def is_power_of_two(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 and (int(v) & (int(v) - 1)) == 0


def _is_scalar(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, Real):
        return True
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return True
    if isinstance(v, np.ndarray) and v.size == 1:
        return True
    return False


def check_decay(name: str, value, shared_param: bool):
    """Validate a decay fraction.

    Returns ``(value, None)`` for a scalar and ``(min, max)`` for a pair. A pair is only allowed
    with ``shared_param=False``; every value must lie in ``[0, 1]`` and ``min <= max``.
    """
    if _is_scalar(value):
        v = float(value)
        check_number(name, v, ge=0, le=1)
        return v, None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name}: expected a number in [0, 1] or a (min, max) pair, got {_describe(value)}")
    if shared_param:
        raise ValueError(
            f"{name}: expected a scalar decay in [0, 1] when shared_param=True, got {_describe(value)}"
        )
    if len(value) != 2:
        raise ValueError(f"{name}: expected a (min, max) pair, got {len(value)} values {value!r}")
    lo, hi = value
    for part, v in (("min", lo), ("max", hi)):
        if not _is_scalar(v):
            raise TypeError(f"{name}: {part} of the pair must be a number, got {_describe(v)}")
        check_number(f"{name} ({part})", float(v), ge=0, le=1)
    lo, hi = float(lo), float(hi)
    if lo > hi:
        raise ValueError(f"{name}: expected an ordered pair (min, max) with min <= max, got ({lo}, {hi})")
    return lo, hi


class Neuron(NeuronModule, nn.Module):
    """Abstract Loihi neuron (lava-dl ``slayer.neuron.base.Neuron``), time-first.

    The positional order is lava-dl's (``threshold, tau_grad, scale_grad, p_scale, w_scale,
    s_scale, norm, dropout, persistent_state, shared_param, requires_grad, complex``);
    ``num_neurons`` and ``backend`` are keyword-only. Common surface
    (:mod:`spikefuse.neuron.base`): ``params()`` (each model's functional Params),
    ``reset()`` with lava's alias ``reset_state()``, ``backend``.

    Parameters
    ----------
    threshold : float
        firing threshold (resting threshold for adaptive models); quantised by truncation to a
        multiple of ``1/w_scale``. ``threshold * w_scale >= 1`` is required.
    tau_grad, scale_grad : float
        width (relative to the threshold) and height of the surrogate gradient, ``> 0``.
    p_scale : int
        decay parameter scale, a power of two (subclasses use 4096).
    w_scale : int
        weight / threshold mantissa scale (the subclasses' ``scale``), positive.
    s_scale : int
        state scale, ``>= w_scale``.
    norm : callable or None
        factory called as ``norm()`` that returns a module; a ``pre_hook_fx`` attribute of the
        result is set to :meth:`quantize_8bit`. Complex neurons build ``real_norm`` and
        ``imag_norm``.
    dropout : module/callable or None
        applied to the output spikes.
    persistent_state, shared_param, requires_grad, complex : bool
    num_neurons : int or None, keyword-only
        informational (lava compatibility); set at the first forward.
    backend : str or None, keyword-only
        kernel backend of the fused ``forward`` (None: the global default).

    Subclasses register decays with :meth:`_register_decay` and states with
    :meth:`_register_state`, and call :meth:`_check_real_input` (or
    :meth:`_check_complex_input`), :meth:`_init_shape`, :meth:`_states` and
    :meth:`_store_states` in their ``forward``.

    >>> n = Neuron(threshold=0.999, w_scale=64, s_scale=4096, p_scale=4096)
    >>> n.threshold, n.v_th_mant, n.tau_rho
    (0.984375, 63, 0.984375)
    """

    #: lava compatibility: there is no constructor access to the debug flag
    debug = False

    def __init__(
        self,
        threshold,
        tau_grad=1.0,
        scale_grad=1.0,
        p_scale=1,
        w_scale=1,
        s_scale=1,
        norm=None,
        dropout=None,
        persistent_state=False,
        shared_param=True,
        requires_grad=True,
        complex=False,
        *,
        num_neurons=None,
        backend=None,
    ):
        super().__init__()
        check_bool("persistent_state", persistent_state)
        check_bool("shared_param", shared_param)
        check_bool("requires_grad", requires_grad)
        check_bool("complex", complex)
        for name, v in (("w_scale", w_scale), ("s_scale", s_scale), ("p_scale", p_scale)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name}: expected a positive int, got {_describe(v)}")
            if v <= 0:
                raise ValueError(f"{name}: expected a positive int, got {v}")
        if not is_power_of_two(p_scale):
            raise ValueError(f"p_scale: expected a power of two, got {p_scale}")
        if s_scale < w_scale:
            raise ValueError(
                f"s_scale: state scale must be >= weight scale (w_scale={w_scale}), got {s_scale}"
            )
        if not _is_scalar(threshold):
            raise TypeError(f"threshold: expected a number, got {_describe(threshold)}")
        check_number("threshold", float(threshold))
        if float(threshold) * int(w_scale) < 1:
            raise ValueError(
                f"threshold: threshold * scale must be >= 1 (smaller thresholds truncate to 0 and "
                f"make the surrogate width 0), got threshold={float(threshold)} with scale={int(w_scale)}"
            )
        check_scalar("tau_grad", tau_grad, gt=0)
        check_scalar("scale_grad", scale_grad, gt=0)
        if norm is not None and not callable(norm):
            raise TypeError(f"norm: expected a callable returning a module (e.g. a class) or None, got {_describe(norm)}")
        if dropout is not None and not callable(dropout):
            raise TypeError(f"dropout: expected a module/callable or None, got {_describe(dropout)}")

        self.backend = backend
        self.num_neurons = num_neurons
        self.shape = None
        self.p_scale = int(p_scale)
        self.w_scale = int(w_scale)
        self.s_scale = int(s_scale)
        self._threshold = quantize_threshold(float(threshold), self.w_scale)
        self.tau_grad = float(tau_grad)
        self.scale_grad = float(scale_grad)
        self.tau_rho = float(tau_grad) * self._threshold
        self.scale_rho = float(scale_grad)
        self.shared_param = shared_param
        self.persistent_state = persistent_state
        self.requires_grad = requires_grad
        self.complex = complex
        # lazily sampled per-channel decays: name -> (min, max)
        self._lazy_ranges: dict[str, tuple[float, float]] = {}
        # state buffers: name -> initial value (float)
        self._state_init: dict[str, float] = {}

        if norm is not None:
            if not complex:
                self.norm = norm()
                self._install_hook(self.norm)
            else:
                self.real_norm = norm()
                self.imag_norm = norm()
                self._install_hook(self.real_norm)
                self._install_hook(self.imag_norm)
        else:
            self.norm = None
            if complex:
                self.real_norm = None
                self.imag_norm = None
        self.drop = dropout

    # ------------------------------------------------------------------ basics
    def _install_hook(self, module) -> None:
        if hasattr(module, "pre_hook_fx"):
            module.pre_hook_fx = self.quantize_8bit

    @property
    def threshold(self) -> float:
        """Quantised (base) threshold ``trunc(θ * w_scale) / w_scale``."""
        return self._threshold

    @property
    def scale(self) -> int:
        """Scale between the float representation and the hardware mantissa (= ``w_scale``)."""
        return self.w_scale

    def quantize_8bit(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """8-bit weight quantisation (straight-through), intended as a synapse pre-hook:
        ``synapse.pre_hook_fx = neuron.quantize_8bit``. See
        :func:`spikefuse.fixed_point.quantize_8bit`."""
        return _quantize_8bit(weight, self.w_scale, descale=descale)

    @property
    def weight_exponent(self) -> int:
        """``int(log2(s_scale // w_scale) - 6)`` (0 for every shipped neuron)."""
        return int(np.log2(self.s_scale // self.w_scale) - 6)

    @property
    def v_th_mant(self) -> int:
        """Voltage threshold mantissa ``int(θ_q * w_scale)``."""
        return int(self.threshold * self.w_scale)

    @property
    def device(self) -> torch.device:
        """The device the neuron's parameters (or buffers) live on."""
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def clamp(self) -> None:
        """Clamp learnable parameters to their valid range (no-op in the base class)."""

    # ------------------------------------------------------------------ decays
    def _register_decay(self, name: str, value, jitter: bool = True) -> None:
        """Register decay ``name`` as a parameter ``p_scale * value``.

        ``shared_param=True``: a scalar in [0, 1], one element. ``shared_param=False``: a scalar
        ``a`` becomes the range ``(0.99a, 1.01a)`` when ``jitter`` else ``(a, a)``; a pair is
        ``(min, max)``; per-channel values are sampled at the first forward (``torch.rand``,
        global RNG, in registration order). Until then the parameter holds ``p_scale * min``.
        """
        v, hi = check_decay(name, value, self.shared_param)
        if self.shared_param:
            init = v
        else:
            if hi is None:
                lo, hi = (v * 0.99, v * 1.01) if jitter else (v, v)
            else:
                lo = v
            self._lazy_ranges[name] = (lo, hi)
            init = lo
        self.register_parameter(
            name,
            nn.Parameter(torch.tensor([self.p_scale * init], dtype=torch.float32), requires_grad=self.requires_grad),
        )

    def _init_shape(self, x: torch.Tensor) -> None:
        """Freeze the neuron shape from the first input (time-first) and sample lazy decays."""
        shape = tuple(x.shape[2:])
        if self.shape is None:
            if len(shape) == 0:
                raise ValueError(
                    f"input: expected at least 3 dimensions (T, B, *features), got shape {tuple(x.shape)}"
                )
            self.shape = torch.Size(shape)
            self.num_neurons = int(math.prod(shape))  # (not np.prod: torch.compile traces math.prod)
            if not self.shared_param:
                channels = shape[0]
                for name, (lo, hi) in self._lazy_ranges.items():
                    vals = lo + (hi - lo) * torch.rand(channels, dtype=torch.float32)
                    p = getattr(self, name)
                    p.data = (self.p_scale * vals).to(p.device)
                self._lazy_ranges = {}
        elif torch.Size(shape) != self.shape:
            raise ValueError(
                f"input: feature shape {shape} does not match the neuron shape {tuple(self.shape)} "
                f"fixed at the first call (input shape {tuple(x.shape)}){time_last_hint(x, self.shape)}"
            )

    def _cx(self, param: torch.Tensor):
        """Hardware value of a decay parameter: ``int(round(p))`` (half to even), NumPy int
        scalar for one element, else a NumPy int array."""
        self.clamp()
        val = torch.round(param.detach()).cpu().numpy().astype(int)
        if val.size == 1:
            return val.reshape(-1)[0]
        return val

    # ------------------------------------------------------------------ states
    def _register_state(self, name: str, init: float) -> None:
        self._state_init[name] = float(init)
        self.register_buffer(name, torch.full((1,), float(init), dtype=torch.float32), persistent=False)

    def _states(self, x: torch.Tensor) -> dict:
        """State buffers ready for an input ``x`` of shape ``(T, B, *shape)``.

        Re-creates every state at its initial value when the stored batch size or shape
        differs from the input's (train/test batch change, first call). Returns a dict of
        detached fp32 tensors of shape ``(B, *shape)``.
        """
        full = (x.shape[1],) + tuple(self.shape)
        out = {}
        recreate = any(tuple(getattr(self, n).shape) != full for n in self._state_init)
        for name, init in self._state_init.items():
            buf = getattr(self, name)
            if recreate or buf.device != x.device:
                buf = torch.full(full, init, dtype=torch.float32, device=x.device)
                setattr(self, name, buf)
            out[name] = buf
        return out

    def _store_states(self, **values) -> None:
        """Store last-step states (detached clones); only with ``persistent_state=True``."""
        if not self.persistent_state:
            return
        with torch.no_grad():
            for name, v in values.items():
                setattr(self, name, v.detach().to(torch.float32).clone())

    def reset_state(self) -> None:
        """Set every state buffer back to its initial value (lava's name; :meth:`reset` and
        :func:`spikefuse.neuron.base.reset_states` do the same)."""
        super().reset_state()
        for name, init in self._state_init.items():
            buf = getattr(self, name)
            setattr(self, name, torch.full_like(buf, init))

    # ------------------------------------------------------------------ inputs
    def _check_device(self, name: str, x: torch.Tensor) -> None:
        dev = self.device
        if x.device.type != dev.type or (dev.index is not None and x.device.index is not None and x.device.index != dev.index):
            raise ValueError(f"{name}: expected a tensor on the neuron's device {dev}, got one on {x.device}")

    def _check_real_input(self, x, name: str = "input", finite: bool = True) -> torch.Tensor:
        """Validate a real time-first input ``(T, B, *features)`` (``finite=False``: without the
        NaN/inf scan, for a caller whose functional multistep scans the same tensor)."""
        if isinstance(x, (tuple, list)):
            raise TypeError(
                f"{name}: {type(self).__module__.rsplit('.', 1)[-1]} neurons are real-valued and take one "
                f"tensor (T, B, *features), got a {type(x).__name__} of {len(x)} items "
                f"(a (real, imag) pair is for the complex RF family)"
            )
        if isinstance(x, torch.Tensor) and x.is_complex():
            raise TypeError(
                f"{name}: expected a real floating tensor, got complex dtype {x.dtype} "
                f"(complex inputs are for the RF family)"
            )
        check_tensor(name, x, min_ndim=3, finite=finite)
        if x.shape[0] < 1:
            raise ValueError(f"{name}: expected at least one time step, got shape {tuple(x.shape)}")
        self._check_device(name, x)
        return x

    def _check_complex_input(self, x, name: str = "input", finite: bool = True):
        """Validate a complex input: a ``(real, imag)`` pair of equal-shape real tensors or a
        complex tensor, time-first. Returns ``(real, imag)``; ``finite``: as
        :meth:`_check_real_input`."""
        if isinstance(x, torch.Tensor) and x.is_complex():
            re, im = x.real, x.imag
        elif isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(f"{name}: expected a (real, imag) pair, got {len(x)} items")
            re, im = x
        else:
            raise TypeError(
                f"{name}: complex neurons take a (real, imag) pair of tensors or a complex tensor, "
                f"got {_describe(x)}"
            )
        check_tensor(f"{name} (real)", re, min_ndim=3, finite=finite)
        check_tensor(f"{name} (imag)", im, min_ndim=3, finite=finite)
        if re.shape != im.shape:
            raise ValueError(
                f"{name}: real and imaginary parts must have the same shape, got {tuple(re.shape)} and {tuple(im.shape)}"
            )
        self._check_device(f"{name} (real)", re)
        self._check_device(f"{name} (imag)", im)
        return re, im

    def _prepare(self, x, finite: bool = True) -> dict:
        """Validate a real input, freeze the shape, fetch the states (:meth:`_states`) and clamp
        learnable parameters; the start of every real model's ``forward`` and ``dynamics``
        (``forward``: ``finite=False``, its functional multistep scans the input for NaN/inf)."""
        self._check_real_input(x, finite=finite)
        self._init_shape(x)
        st = self._states(x)
        if self.requires_grad:
            self.clamp()
        return st

    def _apply_dropout(self, s: torch.Tensor) -> torch.Tensor:
        return self.drop(s) if self.drop is not None else s

    def _forward_fused(self, x, st: dict, multistep, state_cls, **kwargs) -> torch.Tensor:
        """The fused ``forward`` of a model: run the functional ``multistep`` on ``x`` from the
        states ``st`` (``state_cls`` fields in state registration order), store the final state
        (with ``persistent_state``) and apply dropout."""
        state = state_cls(*(st[n] for n in self._state_init))
        s, final = multistep(x, self.params(), state, backend=self.backend, **kwargs)
        self._store_states(**dict(zip(self._state_init, final)))
        return self._apply_dropout(s)

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold}, shape={None if self.shape is None else tuple(self.shape)}, "
            f"w_scale={self.w_scale}, s_scale={self.s_scale}, p_scale={self.p_scale}, "
            f"shared_param={self.shared_param}, persistent_state={self.persistent_state}, "
            f"requires_grad={self.requires_grad}"
        )


def _threshold_step_param(device_params: dict, scale, faithful: bool) -> float:
    """``threshold_step`` of an adaptive model's device parameters (SPEC 3.8, 18 #4):
    ``vThStep / scale`` when the key is present and not ``faithful``, else lava-dl's
    ``vThMant / scale``.

    >>> _threshold_step_param({"vThMant": 64, "vThStep": 32}, 64, False)
    0.5
    """
    if not faithful and "vThStep" in device_params:
        return device_params["vThStep"] / scale
    return device_params["vThMant"] / scale


class _CurrentVoltageMixin:
    """Shared part of the CUBA and ALIF neurons (mixed into a :class:`Neuron` subclass): the
    12-bit ``current_decay`` / ``voltage_decay`` parameters (1 % jitter for scalars with
    ``shared_param=False``, clamped to ``[0, p_scale]``), the ``current_state`` /
    ``voltage_state`` buffers and their device translations."""

    def _register_current_voltage(self, current_decay, voltage_decay) -> None:
        """Register the current and voltage decays, then the two state buffers (initially 0)."""
        self._register_decay("current_decay", current_decay, jitter=True)
        self._register_decay("voltage_decay", voltage_decay, jitter=True)
        self._register_state("current_state", 0.0)
        self._register_state("voltage_state", 0.0)

    def clamp(self) -> None:
        """Clamp the current and voltage decays to ``[0, p_scale]`` in place (other decays, such
        as ALIF's threshold and refractory decays, are not clamped, as upstream)."""
        with torch.no_grad():
            self.current_decay.data.clamp_(0, self.p_scale)
            self.voltage_decay.data.clamp_(0, self.p_scale)

    @property
    def device(self) -> torch.device:
        return self.current_decay.device

    @property
    def cx_current_decay(self):
        """Loihi ``iDecay``: ``round(current_decay)`` (half to even) after clamping."""
        return self._cx(self.current_decay)

    @property
    def cx_voltage_decay(self):
        """Loihi ``vDecay``."""
        return self._cx(self.voltage_decay)

    @property
    def ref_delay(self) -> int:
        """Refractory delay (always 1)."""
        return 1


class _AdaptiveThresholdMixin:
    """Shared part of the adaptive models ALIF, AdRF and AdRF-Iz (mixed into a :class:`Neuron`
    subclass, SPEC 3.4): the quantised ``threshold_step``, the ``threshold_decay`` /
    ``refractory_decay`` parameters (no jitter, never clamped), the ``threshold_state``
    (initially θ0_q) / ``refractory_state`` buffers, their device translations and the update
    of the stored θ and r by the last step's spike."""

    def _quantized_threshold_step(self, threshold_step) -> float:
        """Validate ``threshold_step`` (a number ``>= 0``) and quantise it like the threshold."""
        if isinstance(threshold_step, bool) or not _is_scalar(threshold_step):
            raise TypeError(f"threshold_step: expected a number, got {_describe(threshold_step)}")
        check_number("threshold_step", float(threshold_step), ge=0)
        return quantize_threshold(float(threshold_step), self.w_scale)

    def _register_adaptive(self, threshold_decay, refractory_decay) -> None:
        """Register the threshold and refractory decays, then the two state buffers."""
        self._register_decay("threshold_decay", threshold_decay, jitter=False)
        self._register_decay("refractory_decay", refractory_decay, jitter=False)
        self._register_state("threshold_state", self.threshold)
        self._register_state("refractory_state", 0.0)

    def _adapted_states(self, s: torch.Tensor) -> dict:
        """Stored θ and r after the last step's spike ``s[-1]``: ``r += 2·θ·s``,
        ``θ += θ_step·s`` (a dict for :meth:`_store_states`)."""
        fired = (s[-1] > 0).to(torch.float32)
        th = self.threshold_state
        return dict(
            refractory_state=self.refractory_state + 2 * fired * th,
            threshold_state=th + fired * self.threshold_step,
        )

    @property
    def cx_threshold_decay(self):
        """Loihi ``thDecay``."""
        return self._cx(self.threshold_decay)

    @property
    def cx_refractory_decay(self):
        """Loihi ``refDecay``."""
        return self._cx(self.refractory_decay)

    @property
    def v_th_step(self) -> int:
        """Threshold step mantissa ``int(θ_step_q · w_scale)``."""
        return int(self.threshold_step * self.w_scale)
