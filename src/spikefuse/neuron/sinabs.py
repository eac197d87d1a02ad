"""sinabs' ``LIF`` and ``IAF`` layers as spikefuse modules over :mod:`spikefuse.functional.sinabs`
(same numbers as sinabs, bit for bit).

Argument names are sinabs': ``tau_mem``, ``tau_syn`` (None: no synaptic current),
``spike_threshold``, ``spike_fn`` (``"multi"`` = ``MultiSpike``, the default; ``"single"`` =
``SingleSpike``; ``"max"`` = ``MaxSpike(max_num_spikes_per_bin)``), ``reset_fn``
(``"subtract"`` = ``MembraneSubtract(subtract_value)``, the default; ``"reset"`` =
``MembraneReset(reset_value)``), ``surrogate_grad_fn`` (a spikefuse surrogate of
``v_mem - spike_threshold``, or sinabs' ``PeriodicExponential`` / ``Gaussian`` / ``Heaviside``
as :mod:`spikefuse.functional.sinabs` writes them; None: sinabs' ``SingleExponential()``, see
:func:`spikefuse.functional.sinabs.single_exponential`), ``min_v_mem``, ``train_alphas``,
``norm_input`` (LIF only), and ``backend``. As in sinabs, ``tau_mem`` / ``tau_syn`` are
``nn.Parameter``s (they receive gradients; ``alpha = exp(-1/tau)`` is computed at every forward)
or, with ``train_alphas=True``, ``alpha_mem`` / ``alpha_syn`` are.

Differences of surface, not of numbers: the input is time-first ``(T, B, *features)`` (sinabs:
``(B, T, *features)``; pass ``x.movedim(1, 0)``), and the per-step states are kept in
:attr:`last_traces` (a ``SinabsTraces``, detached), sinabs' ``recordings``. The state after a
call is ``self.v_mem`` / ``self.i_syn`` (attached to the graph, as in sinabs), zero at first
and re-created when the step shape or device changes; :meth:`reset` or
:func:`spikefuse.neuron.base.reset_states` clear it (sinabs' ``reset_states()``).

    >>> import torch
    >>> SinabsIAF()(torch.tensor([2.5, 0.0, 0.7]).reshape(3, 1, 1)).flatten().tolist()
    [2.0, 0.0, 1.0]
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._validate import check_bool, check_choice, check_number, check_sequence
from ..functional import sinabs as F
from ..functional._peers import check_surrogate
from .base import NeuronModule, bool_check, number_check

__all__ = ["SinabsLIF", "SinabsIAF"]

_CHECKS = {
    "spike_fn": lambda m, n, v: check_choice(n, v, F.SPIKE_FNS),
    "reset_fn": lambda m, n, v: check_choice(n, v, F.RESET_FNS),
    "norm_input": bool_check,
    "spike_threshold": number_check(gt=0),
    "min_v_mem": number_check(optional=True),
    "reset_value": number_check(),
    "subtract_value": number_check(optional=True),
    "max_num_spikes_per_bin": lambda m, n, v: F.check_max_spikes(n, v),
    "surrogate_grad_fn": lambda m, n, v: v is None or check_surrogate(n, v),
}


def _tau_parameter(name, tau):
    if tau is None:
        return None
    check_number(name, tau, gt=0)
    return nn.Parameter(torch.as_tensor(tau, dtype=torch.float32).clone())


class SinabsLIF(NeuronModule, nn.Module):
    """sinabs ``LIF`` (``IAF``: :class:`SinabsIAF`): see :mod:`spikefuse.functional.sinabs`.

    >>> import torch
    >>> n = SinabsLIF(tau_mem=10.0, tau_syn=5.0)
    >>> n(torch.ones(4, 2, 3)).shape, n.i_syn.shape
    (torch.Size([4, 2, 3]), torch.Size([2, 3]))
    """

    _PARAM_CHECKS = _CHECKS

    def __init__(self, tau_mem, tau_syn=None, spike_threshold=1.0, spike_fn: str = "multi",
                 reset_fn: str = "subtract", surrogate_grad_fn=None, min_v_mem=None,
                 train_alphas: bool = False, norm_input: bool = True, *,
                 max_num_spikes_per_bin: Optional[int] = None, subtract_value=None, reset_value=0.0,
                 backend: Optional[str] = None):
        super().__init__()
        self.train_alphas = check_bool("train_alphas", train_alphas)
        tm, ts = _tau_parameter("tau_mem", tau_mem), _tau_parameter("tau_syn", tau_syn)
        if train_alphas:
            self.alpha_mem = nn.Parameter(torch.exp(-1.0 / tm.detach()))
            self.alpha_syn = None if ts is None else nn.Parameter(torch.exp(-1.0 / ts.detach()))
        else:
            self.tau_mem, self.tau_syn = tm, ts
        self.spike_threshold = spike_threshold
        self.spike_fn, self.reset_fn = spike_fn, reset_fn
        self.max_num_spikes_per_bin = max_num_spikes_per_bin
        self.subtract_value, self.reset_value, self.min_v_mem = subtract_value, reset_value, min_v_mem
        self.surrogate_grad_fn = surrogate_grad_fn
        self.norm_input = norm_input
        self.backend = backend
        self.v_mem: Optional[Tensor] = None
        self.i_syn: Optional[Tensor] = None

    def _alphas(self):
        if self.train_alphas:
            return self.alpha_mem, self.alpha_syn
        syn = None if self.tau_syn is None else torch.exp(-1.0 / self.tau_syn)
        return torch.exp(-1.0 / self.tau_mem), syn

    def params(self) -> F.SinabsParams:
        """The :class:`~spikefuse.functional.sinabs.SinabsParams` this module runs with (the
        alphas computed from the taus now, attached to their graph)."""
        alpha_mem, alpha_syn = self._alphas()
        return F.SinabsParams(alpha_mem, alpha_syn, self.spike_threshold, self.spike_fn,
                              self.max_num_spikes_per_bin, self.reset_fn, self.subtract_value,
                              self.reset_value, self.min_v_mem, self.norm_input, self.surrogate_grad_fn)

    def reset_state(self) -> None:
        """Forget ``v_mem`` / ``i_syn`` (the next forward starts from zero); :meth:`reset` is the same."""
        super().reset_state()
        self.v_mem = self.i_syn = None

    def forward(self, x: Tensor) -> Tensor:
        check_sequence("x", x, min_ndim=2, finite=False)
        params = self.params()
        shape, v = tuple(x.shape[1:]), self.v_mem
        fits = isinstance(v, Tensor) and tuple(v.shape) == shape and v.device == x.device
        if fits and params.alpha_syn is not None:
            fits = isinstance(self.i_syn, Tensor) and tuple(self.i_syn.shape) == shape
        state = F.SinabsState(v, self.i_syn if params.alpha_syn is not None else None) if fits else None
        spikes, state, traces = F.sinabs_multistep(x, params, state, self.backend, return_traces=True)
        self.v_mem, self.i_syn = state
        self.last_traces = F.SinabsTraces(*(None if t is None else t.detach() for t in traces))
        return spikes


class SinabsIAF(SinabsLIF):
    """sinabs ``IAF``: ``alpha_mem = 1`` (no leak), no input normalisation; optional
    ``tau_syn``. Other arguments as :class:`SinabsLIF` (no ``tau_mem``, ``train_alphas``,
    ``norm_input``).

    >>> import torch
    >>> SinabsIAF(spike_fn="single", reset_fn="reset")(torch.full((3, 1, 1), 0.6)).flatten().tolist()
    [0.0, 1.0, 0.0]
    """

    def __init__(self, spike_threshold=1.0, spike_fn: str = "multi", reset_fn: str = "subtract",
                 surrogate_grad_fn=None, tau_syn=None, min_v_mem=None, *,
                 max_num_spikes_per_bin: Optional[int] = None, subtract_value=None, reset_value=0.0,
                 backend: Optional[str] = None):
        super().__init__(1.0, tau_syn, spike_threshold, spike_fn, reset_fn, surrogate_grad_fn, min_v_mem,
                         False, False, max_num_spikes_per_bin=max_num_spikes_per_bin,
                         subtract_value=subtract_value, reset_value=reset_value, backend=backend)
        self.tau_mem = None

    def _alphas(self):
        syn = None if self.tau_syn is None else torch.exp(-1.0 / self.tau_syn)
        return 1.0, syn   # sinabs: tensor(1.0); the same product, on any device
