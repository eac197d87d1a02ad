"""Loihi sigma-delta neuron — lava-dl ``slayer.neuron.sigma_delta`` with its ``dendrite.Sigma``
and ``axon.Delta`` units (SPEC.md 10), time-first.

Per call with input ``x`` of shape ``(T, B, *features)``::

    σ = Sigma(x)                        # running sum over time (+ previous sum if persistent)
    σ = norm(σ)                         # if norm
    a = activation(σ + bias)            # bias only after set_bias()
    y = Delta(a)                        # SPEC 10.2, signed, then floor to multiples of 1/s_scale
    y = dropout(y)

Always graded. The Delta threshold is a learnable parameter (``requires_grad``) initialised to
θ_q and clamped to ``>= 1/s_scale`` before every forward; ``threshold`` returns it. State
carried with ``persistent_state=True``: the sigma sum, the Delta ``pre`` and ``residual``, and
the Delta error only when ``cum_error`` is set too (SPEC 18 #7: upstream leaks the error across
calls even without persistence).

Example (SPEC 17 L7)::

    >>> import torch
    >>> from spikefuse.neuron.loihi import sigma_delta
    >>> n = sigma_delta.Neuron(threshold=0.1, activation=torch.nn.functional.relu)
    >>> float(n.threshold), n.device_params
    (0.09375, {'type': 'SDNN', 'activation': 'relu', 'vThMant': 6})
    >>> x = torch.tensor([0.5, 0, 0, 0.02, 0.1, -0.3, 0]).reshape(7, 1, 1)
    >>> (n(x).flatten() * 4096).tolist()
    [2048.0, 0.0, 0.0, 0.0, 491.0, -1229.0, 0.0]
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ..._core import check_not_transformed
from ..._validate import _describe, check_bool, check_number, check_scalar, check_tensor
from ...functional import sigma_delta as F
from . import base
from ..base import time_last_hint
from .cuba import _check_scales, _lava_scales

__all__ = ["Neuron", "neuron_params", "Sigma", "Delta"]


def neuron_params(device_params: dict, scale: int = 1 << 6) -> dict:
    """Translate sigma-delta device parameters to constructor keyword arguments (SPEC 3.8):
    ``threshold = vThMant / scale`` (the activation is not a number and is not translated).

    >>> neuron_params({"type": "SDNN", "activation": "relu", "vThMant": 6})
    {'threshold': 0.09375}
    """
    _check_scales(device_params, ("vThMant",), scale)
    return {"threshold": device_params["vThMant"] / scale}


def _check_shape(module, x: torch.Tensor) -> None:
    shape = torch.Size(x.shape[2:])
    if module.shape is None:
        if len(shape) == 0:
            raise ValueError(f"input: expected at least 3 dimensions (T, B, *features), got shape {tuple(x.shape)}")
        module.shape = shape
    elif shape != module.shape:
        raise ValueError(
            f"input: feature shape {tuple(shape)} does not match the shape {tuple(module.shape)} "
            f"fixed at the first call (input shape {tuple(x.shape)}){time_last_hint(x, module.shape)}"
        )


class Sigma(nn.Module):
    """Sigma decoder (lava-dl ``dendrite.Sigma``): running sum over time (dim 0).

    With ``persistent_state`` the previous call's last sum is added and the new one stored
    (buffer ``pre_state``, float32 as in lava-dl: this call's sum plus the stored value, added in
    float32; re-created on a batch-size change).

    >>> s = Sigma(persistent_state=True)
    >>> x = torch.ones(3, 1, 2)
    >>> s(x)[:, 0, 0].tolist(), s(x)[:, 0, 0].tolist()
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    """

    def __init__(self, persistent_state: bool = False):
        super().__init__()
        check_bool("persistent_state", persistent_state)
        self.persistent_state = persistent_state
        self.shape = None
        self.register_buffer("pre_state", torch.zeros(1, dtype=torch.float32), persistent=False)

    def _state(self, x: torch.Tensor) -> torch.Tensor:
        full = tuple(x.shape[1:])
        if tuple(self.pre_state.shape) != full or self.pre_state.device != x.device:
            self.pre_state = torch.zeros(full, dtype=torch.float32, device=x.device)
        return self.pre_state

    def reset_state(self) -> None:
        """Zero the stored running sum (``persistent_state``); :meth:`reset` is the same."""
        self.pre_state = torch.zeros_like(self.pre_state)

    reset = reset_state

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        check_tensor("input", input, min_ndim=3)
        _check_shape(self, input)
        state = self._state(input) if self.persistent_state else None
        out, last = F.sigma(input, state)
        if self.persistent_state:
            self.pre_state = last.detach().clone()
        return out


class Delta(nn.Module):
    """Delta encoder (lava-dl ``axon.Delta``): signed send-on-delta with a learnable threshold,
    output floored to multiples of ``1/scale`` (SPEC 10.2, 10.3).

    ``threshold`` is a parameter of shape ``(1,)`` (``shared_param``) or, from the first call,
    ``(C, 1, ..., 1)`` (per channel, all initialised to the same value). It is clamped to
    ``>= 1/scale`` before every forward. Buffers ``pre_state``, ``residual_state``,
    ``error_state``.

    >>> d = Delta(threshold=0.1, scale=4096, requires_grad=True)
    >>> y = d(torch.tensor([0.5, 0.55, 0.55, 0.7]).reshape(4, 1, 1))
    >>> (y.flatten() * 4096).tolist()
    [2048.0, 0.0, 0.0, 819.0]
    """

    def __init__(
        self,
        threshold,
        scale=1 << 6,
        tau_grad=1.0,
        scale_grad=1.0,
        cum_error=False,
        shared_param=True,
        persistent_state=False,
        requires_grad=False,
    ):
        super().__init__()
        check_number("threshold", threshold, gt=0)
        check_number("scale", scale, gt=0)
        check_scalar("tau_grad", tau_grad, gt=0)
        check_scalar("scale_grad", scale_grad, gt=0)
        for n, v in (("cum_error", cum_error), ("shared_param", shared_param),
                     ("persistent_state", persistent_state), ("requires_grad", requires_grad)):
            check_bool(n, v)
        self.scale = scale
        self.tau_grad = float(tau_grad)
        self.scale_grad = float(scale_grad)
        self.cum_error = cum_error
        self.shared_param = shared_param
        self.persistent_state = persistent_state
        self.requires_grad = requires_grad
        self.shape = None
        self.threshold = nn.Parameter(torch.tensor([float(threshold)], dtype=torch.float32), requires_grad=requires_grad)
        for n in ("pre_state", "residual_state", "error_state"):
            self.register_buffer(n, torch.zeros(1, dtype=torch.float32), persistent=False)

    def clamp(self) -> None:
        """Clamp the threshold to ``[1/scale, inf)`` in place."""
        with torch.no_grad():
            self.threshold.data.clamp_(min=1 / self.scale)

    @property
    def device(self) -> torch.device:
        return self.threshold.device

    def _init(self, x: torch.Tensor) -> None:
        first = self.shape is None
        _check_shape(self, x)
        if first and not self.shared_param:
            c = self.shape[0]
            self.threshold.data = (self.threshold.data * torch.ones(c, device=self.device)).reshape(
                (c,) + (1,) * (len(self.shape) - 1)
            )

    def _states(self, x: torch.Tensor):
        full = tuple(x.shape[1:])
        if tuple(self.pre_state.shape) != full or self.pre_state.device != x.device:
            for n in ("pre_state", "residual_state", "error_state"):
                setattr(self, n, torch.zeros(full, dtype=torch.float32, device=x.device))
        z = torch.zeros(full, dtype=torch.float32, device=x.device)
        pre = self.pre_state if self.persistent_state else z
        res = self.residual_state if self.persistent_state else z
        err = self.error_state if (self.persistent_state and self.cum_error) else z
        return pre, res, err

    def reset_state(self) -> None:
        """Zero the stored ``pre``, ``residual`` and ``error`` states; :meth:`reset` is the same."""
        for n in ("pre_state", "residual_state", "error_state"):
            setattr(self, n, torch.zeros_like(getattr(self, n)))

    reset = reset_state

    def _store(self, pre, res, err) -> None:
        if not self.persistent_state:
            return
        with torch.no_grad():
            self.pre_state = pre.detach().to(torch.float32).clone()
            self.residual_state = res.detach().to(torch.float32).clone()
            if self.cum_error:
                self.error_state = err.detach().to(torch.float32).clone()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        check_tensor("input", input, min_ndim=3)
        self._init(input)
        self.clamp()
        state = self._states(input)
        y, (pre, res, err) = F.delta(
            input, self.threshold, state, cum_error=self.cum_error, tau_grad=self.tau_grad,
            scale_grad=self.scale_grad, s_scale=self.scale,
        )
        self._store(pre, res, err)
        return y


class Neuron(base.Neuron):
    """Loihi sigma-delta neuron (lava-dl ``sigma_delta.Neuron``), time-first ``(T, B, *features)``.

    Parameters
    ----------
    threshold : float
        Delta threshold, quantised to ``trunc(θ·scale)/scale`` at construction
        (``θ·scale >= 1``); afterwards a learnable parameter (not re-quantised).
    activation : callable
        activation wrapped by the sigma-delta unit, e.g. ``torch.nn.functional.relu``.
    tau_grad, scale_grad : float
        threshold-gradient relaxation (SPEC 10.3, used as given).
    scale : int
        ``w_scale`` (64); ``s_scale = 64·scale`` is the output quantisation step ``1/s_scale``.
    cum_error : bool
        accumulate the error before thresholding (SPEC 10.2).
    norm : callable or None
        factory; the module normalises the sigma output (before bias and activation).
    dropout : module or None
        applied to the output.
    shared_param : bool
        one threshold for the group, else one per channel (first feature dim).
    persistent_state, requires_grad : bool

    Attributes: ``sigma`` (:class:`Sigma`), ``delta`` (:class:`Delta`), parameter ``bias``
    (used only after :meth:`set_bias`), ``backend`` (None = global default).
    """

    def __init__(
        self,
        threshold,
        activation,
        tau_grad=1.0,
        scale_grad=1.0,
        scale=1 << 6,
        cum_error=False,
        norm=None,
        dropout=None,
        shared_param=True,
        persistent_state=False,
        requires_grad=False,
        *,
        backend=None,
    ):
        super().__init__(
            threshold=threshold,
            tau_grad=tau_grad,
            scale_grad=scale_grad,
            **_lava_scales(scale, decays=False),
            norm=norm,
            dropout=dropout,
            persistent_state=persistent_state,
            shared_param=shared_param,
            requires_grad=requires_grad,
            backend=backend,
        )
        if not callable(activation):
            raise TypeError(f"activation: expected a callable (e.g. torch.nn.functional.relu), got {_describe(activation)}")
        check_bool("cum_error", cum_error)
        self.graded_spike = True
        self.activation = activation
        self.cum_error = cum_error
        self.sigma = Sigma(persistent_state=persistent_state)
        self.delta = Delta(
            threshold=self._threshold,
            scale=self.s_scale,
            tau_grad=tau_grad,
            scale_grad=scale_grad,
            cum_error=cum_error,
            shared_param=shared_param,
            persistent_state=persistent_state,
            requires_grad=requires_grad,
        )
        self.bias_is_set = False
        self.bias = nn.Parameter(torch.zeros(1, dtype=torch.float32), requires_grad=requires_grad)

    # ---------------------------------------------------------------- parameters
    @property
    def threshold(self) -> torch.Tensor:
        """The Delta unit's (learnable) threshold tensor."""
        return self.delta.threshold

    @property
    def device(self) -> torch.device:
        return self.delta.threshold.device

    @property
    def v_th_mant(self):
        """``int(θd · w_scale)`` of the current Delta threshold (NumPy int array per channel)."""
        val = (self.delta.threshold.detach().cpu().double() * self.w_scale).numpy().astype(np.int64)
        if val.size == 1:
            return int(val.reshape(-1)[0])
        return val.reshape(-1)

    def clamp(self) -> None:
        """Clamp the Delta threshold to ``>= 1/s_scale``."""
        self.delta.clamp()

    @property
    def device_params(self) -> dict:
        """Loihi parameters: ``type='SDNN'``, ``activation`` name, ``vThMant``."""
        act = self.activation
        name = getattr(act, "__name__", type(act).__name__)
        return {"type": "SDNN", "activation": name, "vThMant": self.v_th_mant}

    def params(self) -> F.SigmaDeltaParams:
        """The functional parameters (the Delta threshold and the bias keep their graph)."""
        if self.shape is not None:
            bias = self._bias()
        else:
            bias = self.bias if self.bias_is_set else None
        return F.SigmaDeltaParams(
            threshold=self.delta.threshold, activation=self.activation, bias=bias,
            tau_grad=self.delta.tau_grad, scale_grad=self.delta.scale_grad,
            cum_error=self.cum_error, s_scale=self.s_scale,
        )

    def reset_state(self) -> None:
        """Zero the sigma sum and the Delta states (lava's name; :meth:`reset` is the same)."""
        super().reset_state()
        self.sigma.reset_state()
        self.delta.reset_state()

    def set_bias(self, bias: torch.Tensor) -> None:
        """Set the bias added to the sigma output before the activation (one value per neuron,
        reshaped to the neuron shape; broadcast over batch and time).

        >>> n = Neuron(threshold=0.1, activation=torch.relu)
        >>> n.set_bias(torch.tensor([0.5]))
        >>> n(torch.zeros(2, 1, 1)).flatten().tolist()
        [0.5, 0.0]
        """
        check_tensor("bias", bias)
        b = bias.detach().to(device=self.bias.device, dtype=torch.float32)
        if self.shape is not None:
            if b.numel() != int(np.prod(tuple(self.shape))):
                raise ValueError(
                    f"bias: expected {int(np.prod(tuple(self.shape)))} values (neuron shape {tuple(self.shape)}), "
                    f"got shape {tuple(bias.shape)}"
                )
            b = b.reshape(self.shape)
        self.bias.data = b
        self.bias_is_set = True

    def _bias(self) -> Optional[torch.Tensor]:
        if not self.bias_is_set:
            return None
        b = self.bias
        if tuple(b.shape) != tuple(self.shape):
            if b.numel() == int(np.prod(tuple(self.shape))):
                b = b.reshape(self.shape)
            else:
                try:
                    torch.broadcast_shapes(tuple(b.shape), tuple(self.shape))
                except RuntimeError:
                    raise ValueError(
                        f"bias: shape {tuple(b.shape)} does not fit the neuron shape {tuple(self.shape)}"
                    ) from None
        return b

    # ---------------------------------------------------------------- running
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Graded (signed) output ``(T, B, *features)``, floored to multiples of ``1/s_scale``."""
        check_not_transformed("sigma_delta.Neuron")  # before the in-place threshold clamp
        # without a norm the input goes to sigma_delta_multistep as it is, which scans it for NaN/inf
        x = self._check_real_input(input, finite=self.norm is not None)
        _check_shape(self, x)
        if self.norm is None:
            # one fused call (same numbers as Sigma -> activation -> Delta)
            self.sigma.shape = self.shape if self.sigma.shape is None else self.sigma.shape
            _check_shape(self.sigma, x)
            self.delta._init(x)
            self.delta.clamp()
            sig0 = self.sigma._state(x) if self.persistent_state else None
            pre, res, err = self.delta._states(x)
            full = tuple(x.shape[1:])
            state = F.SigmaDeltaState(
                sig0 if sig0 is not None else torch.zeros(full, dtype=torch.float64, device=x.device),
                pre, res, err,
            )
            y, final = F.sigma_delta_multistep(x, self.params(), state, backend=self.backend)
            if self.persistent_state:
                self.sigma.pre_state = final.sigma.detach().clone()
            self.delta._store(final.pre, final.residual, final.error)
        else:
            bias = self._bias()
            dend = self.sigma(x)
            dend = self.norm(dend)
            a = self.activation(dend + bias) if bias is not None else self.activation(dend)
            y = self.delta(a)
        return self._apply_dropout(y)
