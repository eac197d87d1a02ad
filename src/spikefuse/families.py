"""The family registry: one record per neuron family, the single list that the rest of the
library reads.

``spikefuse train --neuron`` (its choices, default gradient and neuron factory),
``spikefuse bench``, ``benchmarks/neurons.py`` and the kernel loading of
:mod:`spikefuse.kernels` all enumerate :data:`FAMILIES`; ``tests/test_families.py`` walks it
and checks that every family has a reference multistep, a module, tests, kernels that resolve
for the backends it lists, a train factory that builds a module, and a line in
``docs/adding-a-neuron.md``.

Everything in a record is a *dotted path* (``"package.module:attribute"``), resolved on use
with :func:`load`, so importing this module imports nothing of the library (kernels import
it to learn their backend modules; it must not import them back).

    >>> from spikefuse import families
    >>> families.get("loihi-cuba").id                  # aliases and kernel keys are accepted
    'loihi.cuba'
    >>> families.get("lif").kernel, sorted(families.get("lif").kernels)
    ('lif', ['cpu', 'triton'])
    >>> families.load(families.get("lif").module).__name__
    'LIF'

Adding a family is one new record here (plus its files); ``docs/adding-a-neuron.md`` lists the
steps.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

__all__ = ["BenchCase", "BenchSpec", "FAMILIES", "Family", "TrainSpec", "get", "ids",
           "kernel_modules", "load", "train_names"]

_F = "spikefuse.families"  # where the small factories below live
_CPU_TRITON = {"cpu": "spikefuse.kernels.cpu", "triton": "spikefuse.kernels.triton"}
_TRITON = {"triton": "spikefuse.kernels.triton"}
_SURROGATES = ("atan", "sigmoid", "superspike", "fast_sigmoid", "triangle", "slayer_exp")
_NORSE_DT = 1e-3  # norse's default time step (s), used by the norse train factories


@dataclass(frozen=True)
class TrainSpec:
    """How ``spikefuse train --neuron <id>`` builds the family.

    ``make`` is the dotted path of ``make(cfg) -> nn.Module`` (a ``(T, B, N)`` neuron), or,
    for a family that owns its synapse (``owns_synapse``), ``make(cfg, n_in, n_out)`` (a
    whole hidden layer). ``weight_hook`` is the ``Dense`` weight hook its layers use.
    """

    default_gradient: str
    gradients: tuple
    make: str
    owns_synapse: bool = False
    weight_hook: Optional[str] = None


@dataclass(frozen=True)
class BenchCase:
    """One runnable scan for ``benchmarks/neurons.py``: ``run(x)`` returns a tensor to reduce
    into a loss; ``bytes_fwd`` / ``bytes_fwdbwd``: bytes per neuron-step the fused kernel must
    move (the traffic model of the roofline bound)."""

    run: Callable[[Any], Any]
    bytes_fwd: float
    bytes_fwdbwd: float


@dataclass(frozen=True)
class BenchSpec:
    """``module(backend, features) -> nn.Module`` for ``spikefuse bench`` (input
    ``rand(T, B, features) * module_scale``); ``case(backend, io_bytes) -> BenchCase`` for
    ``benchmarks/neurons.py`` (input ``(randn * 0.8 + 0.6) * case_scale``)."""

    module: str
    case: str
    module_scale: float = 1.0
    case_scale: float = 1.0


@dataclass(frozen=True)
class Family:
    """One neuron family. ``functional``: the multi-step entry (takes ``backend=``);
    ``step``: the one-step reference it loops; ``params`` / ``state``: its NamedTuples;
    ``module``: the ``nn.Module``; ``kernel``: the key under which backends register with
    :func:`spikefuse.kernels.register`; ``kernels``: backend -> module that registers it;
    ``nir``: the NIR node it exports to (None: refused, ``nir_note`` says why)."""

    id: str
    functional: str
    step: str
    params: str
    state: str
    module: str
    kernel: Optional[str] = None
    kernels: dict = field(default_factory=dict)
    aliases: tuple = ()
    train: Optional[TrainSpec] = None
    bench: Optional[BenchSpec] = None
    nir: Optional[str] = None
    nir_note: str = ""
    description: str = ""


def load(path: str) -> Any:
    """The object named by ``"package.module:attr"`` (or a module for ``"package.module"``)."""
    if not isinstance(path, str) or not path:
        raise TypeError(f"path: expected a dotted path 'module:attr', got {path!r}")
    mod, _, attr = path.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------- train factories


def _surrogate(cfg):
    from . import surrogate

    return surrogate.get(cfg.gradient)


def _train_lif(cfg):
    from .neuron import LIF

    return LIF(tau=cfg.tau, surrogate=_surrogate(cfg), backend=cfg.backend)


def _train_if(cfg):
    from .neuron import IF

    return IF(surrogate=_surrogate(cfg), backend=cfg.backend)


def _train_plif(cfg):
    from .neuron import ParametricLIF

    return ParametricLIF(init_tau=cfg.tau, surrogate=_surrogate(cfg), backend=cfg.backend)


def _train_cuba(cfg):
    from .neuron import CubaLIF

    # normalised units: dt = 1, tau_syn = tau_mem = tau steps
    return CubaLIF(threshold=1.0, tau_syn=cfg.tau * 1e-6, tau_mem=cfg.tau * 1e-6, dt=1e-6,
                   backend=cfg.backend)


def _train_loihi_cuba(cfg):
    from .neuron.loihi import cuba

    decay = 1.0 / cfg.tau
    n = cuba.Neuron(threshold=1.0, current_decay=decay, voltage_decay=decay, requires_grad=False)
    n.backend = cfg.backend
    return n


def _train_snntorch_leaky(cfg):
    from .neuron.snntorch import Leaky

    # tau steps: beta = 1 - 1/tau (snnTorch's decay per step); snnTorch's subtract reset
    return Leaky(beta=1.0 - 1.0 / cfg.tau, spike_grad=_surrogate(cfg), backend=cfg.backend)


def _train_sinabs_lif(cfg):
    from .neuron.sinabs import SinabsLIF

    # tau_mem = tau steps (sinabs' alpha = exp(-1/tau), a learnable parameter), normalised input,
    # multi-spike counts, subtractive reset; the chosen surrogate of v - threshold
    return SinabsLIF(tau_mem=cfg.tau, surrogate_grad_fn=_surrogate(cfg), backend=cfg.backend)


def _train_snntorch_synaptic(cfg):
    from .neuron.snntorch import Synaptic

    # tau steps for both decays (as _train_cuba: tau_syn = tau_mem = tau): alpha = beta = 1 - 1/tau;
    # snnTorch's subtract reset
    decay = 1.0 - 1.0 / cfg.tau
    return Synaptic(alpha=decay, beta=decay, spike_grad=_surrogate(cfg), backend=cfg.backend)


def _norse_train_params(cfg):
    """norse's LIF parameters for a run with ``cfg.tau`` in steps: ``dt = 1e-3`` s (norse's),
    ``tau_mem = tau`` steps and ``tau_syn = tau / 2`` (norse's default ratio, 10 ms / 5 ms),
    norse's SuperSpike threshold with the surrogate's ``alpha`` (100, norse's default)."""
    from .functional.norse import NorseLIFParams

    tau_mem_inv = 1.0 / (cfg.tau * _NORSE_DT)
    # the adjoint has no surrogate (the forward's method only decides the spikes): norse's
    # default SuperSpike alpha
    alpha = 100.0 if cfg.gradient == "adjoint" else _surrogate(cfg).alpha
    return NorseLIFParams(tau_syn_inv=2.0 * tau_mem_inv, tau_mem_inv=tau_mem_inv, method="super", alpha=alpha)


def _norse_gradient(cfg) -> dict:
    """``gradient`` of a norse module: norse's adjoint (raising where its formula gives inf,
    rather than training on it) or backpropagation with the SuperSpike surrogate."""
    if cfg.gradient == "adjoint":
        if cfg.tau == 2.0:  # a_s = dt tau_syn_inv = 2 / tau = 1: i' = (1 - a_s) (i + x) = 0 every step
            raise ValueError(
                "tau: gradient 'adjoint' with tau = 2 steps gives norse's current a decay of dt * tau_syn_inv = 1 "
                "per step (tau_syn = tau / 2 = 1 step), which empties it every step: every spike after a reset "
                "then starts from rest (v = v_leak, i = 0), where norse's adjoint divides by dv_- = 0 and its "
                "gradients are inf; expected tau != 2 (e.g. 10), or gradient 'superspike', got tau = 2.0")
        return dict(gradient="adjoint", check_finite=True)
    return dict(gradient="bptt")


def _train_norse_lif(cfg):
    from .neuron.norse import NorseLIF

    return NorseLIF(_norse_train_params(cfg), _NORSE_DT, return_state=False, backend=cfg.backend,
                    **_norse_gradient(cfg))


def _train_norse_lif_refrac(cfg):
    from .functional.norse import NorseLIFRefracParams
    from .neuron.norse import NorseLIFRefrac

    # norse's default refractory period (rho_reset = 5 steps) on the LIF parameters above
    return NorseLIFRefrac(NorseLIFRefracParams(_norse_train_params(cfg)), _NORSE_DT, return_state=False,
                          backend=cfg.backend, **_norse_gradient(cfg))


def _train_norse_lif_recurrent(cfg, n_in, n_out):
    from .neuron.norse import NorseLIFRecurrent

    # owns its synapse: input and recurrent weights (norse's initialisation), no Dense before it
    return NorseLIFRecurrent(n_in, n_out, _norse_train_params(cfg), dt=_NORSE_DT, return_state=False,
                             backend=cfg.backend, **_norse_gradient(cfg))


def _train_eventprop(cfg, n_in, n_out):
    from .neuron import EventPropLIF

    grad = "eventprop" if cfg.gradient == "eventprop" else "surrogate"
    # time in steps: dt = 1, tau_mem = 2 tau_syn = tau. The layer reads the gradient arriving
    # at its spikes (the readout's dL/dz[t], per step) as -dL/dt_k in the unit of dt; with
    # dt = 1e-6 every hidden-weight gradient came out 1e6 too small (the size of Adam's eps).
    # The forward only depends on dt/tau, so it is unchanged.
    return EventPropLIF(n_in, n_out, threshold=1.0, tau_syn=cfg.tau * 0.5, tau_mem=cfg.tau,
                        dt=1.0, gradient=grad, weight_scale=4.0)


# --------------------------------------------------------------------------- bench modules


def _with_backend(m, backend):
    m.backend = backend
    return m


def _pair_input(inner):
    """Wraps a module that takes ``(real, imag)`` so that it takes one tensor (passed as both)."""
    import torch

    class PairInput(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def reset(self):
            fn = getattr(self.inner, "reset", None)
            if callable(fn):
                fn()

        def forward(self, x):
            return self.inner((x, x))

    return PairInput(inner)


def _bench_lif(backend, n):
    from .neuron import LIF

    return LIF(tau=2.0, backend=backend)


def _bench_if(backend, n):
    from .neuron import IF

    return IF(backend=backend)


def _bench_plif(backend, n):
    from .neuron import ParametricLIF

    return ParametricLIF(init_tau=2.0, backend=backend)


def _bench_cuba(backend, n):
    from .neuron import CubaLIF

    return CubaLIF(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6, backend=backend)  # as _case_cuba


def _bench_cuba_refractory(backend, n):
    from .neuron import CubaRefractoryLIF

    return CubaRefractoryLIF(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6, refractory_time=2e-6, backend=backend)


def _bench_loihi_cuba(backend, n):
    from .neuron.loihi import cuba

    # the parameters of _case_loihi_cuba (decays 2048/4096 and 1024/4096)
    return _with_backend(cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.25), backend)


def _bench_loihi_alif(backend, n):
    from .neuron.loihi import alif

    return _with_backend(alif.Neuron(threshold=1.0, threshold_step=0.5, current_decay=0.5,
                                     voltage_decay=0.25, threshold_decay=0.25, refractory_decay=0.5),
                         backend)  # the parameters of _case_loihi_alif


def _bench_resonator(model):
    def make(backend, n):
        mod = importlib.import_module(f"spikefuse.neuron.loihi.{model}")
        kw = dict(threshold=0.5, period=8, decay=0.1)
        if model.startswith("adrf"):
            kw.update(threshold_step=0.25, threshold_decay=0.25, refractory_decay=0.5)
        return _pair_input(_with_backend(mod.Neuron(**kw), backend))

    return make


_bench_loihi_rf = _bench_resonator("rf")
_bench_loihi_rf_iz = _bench_resonator("rf_iz")
_bench_loihi_adrf = _bench_resonator("adrf")
_bench_loihi_adrf_iz = _bench_resonator("adrf_iz")


def _bench_loihi_sigma_delta(backend, n):
    import torch

    from .neuron.loihi import sigma_delta

    return _with_backend(sigma_delta.Neuron(threshold=0.09375, activation=torch.relu), backend)


def _bench_eventprop(backend, n):
    from .neuron import EventPropLIF

    # the neuron parameters of _case_eventprop; the module owns its synapse (an n x n weight)
    return EventPropLIF(n, n, threshold=0.3, tau_syn=5e-6, tau_mem=10e-6)


def _bench_snntorch_leaky(backend, n):
    from .neuron.snntorch import Leaky

    return Leaky(beta=0.5, backend=backend)  # as _case_snntorch_leaky


def _bench_snntorch_synaptic(backend, n):
    from .neuron.snntorch import Synaptic

    return Synaptic(alpha=0.5, beta=0.5, backend=backend)  # as _case_snntorch_synaptic


def _bench_sinabs_lif(backend, n):
    from .neuron.sinabs import SinabsLIF

    return SinabsLIF(tau_mem=2.0, tau_syn=2.0, backend=backend)  # as _case_sinabs_lif


def _bench_sinabs_iaf(backend, n):
    from .neuron.sinabs import SinabsIAF

    return SinabsIAF(backend=backend)


# --------------------------------------------------------------------------- bench cases
# Traffic model per neuron-step (io = bytes of the I/O dtype); benchmarks/README.md has the table.


def _case_lif(backend, io):
    from .functional.lif import LIFParams, lif_multistep

    p = LIFParams(tau=2.0, v_threshold=1.0, v_reset=0.0)
    # fwd: x, S; train: + H (4 B) written and read; bwd: gS in, gX out
    return BenchCase(lambda x: lif_multistep(x, p, backend=backend)[0], 2 * io, 4 * io + 8)


def _case_if(backend, io):
    from .functional.lif import if_multistep

    return BenchCase(lambda x: if_multistep(x, backend=backend)[0], 2 * io, 4 * io + 8)


def _case_plif(backend, io):
    import torch

    from .functional.lif import LIFParams, lif_multistep

    tau = torch.tensor(2.0, requires_grad=True)  # learnable tau: its gradient is reduced too
    return BenchCase(lambda x: lif_multistep(x, LIFParams(tau=tau), backend=backend)[0], 2 * io, 4 * io + 8)


def _with_membrane_grad(z, v, w: float):
    """``z`` itself (no new tensor), whose backward also sends ``w`` times the incoming gradient
    to ``v``: the gradients of a loss on ``z + w * v``, without the two ``(T, B, N)`` tensors that
    computing ``z + w * v`` and its membrane gradient would make (fresh memory each call: their
    first-touch page faults were charged to the CUBA benchmark rows, not to the kernel's own
    work). A gradient broadcast over time (of ``.sum()``) stays broadcast (one row scaled)."""
    import torch

    class _WithMembraneGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, v):
            return z.view_as(z)

        @staticmethod
        def backward(ctx, g):
            if g.dim() > 0 and g.shape[0] > 1 and g.stride(0) == 0:
                return g, (g[:1] * w).expand_as(g)
            return g, g * w

    return _WithMembraneGrad.apply(z, v)


def _cuba_case(backend, io, refractory):
    from .functional.cuba import CubaParams, cuba_lif_integration, cuba_refractory_lif_integration

    p = CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6, refractory_time=2e-6)
    f = cuba_refractory_lif_integration if refractory else cuba_lif_integration

    def run(x):
        z, v, i, _ = f(x, p, dt=1e-6, backend=backend)
        return _with_membrane_grad(z, v, 0.01)

    # fwd: x, z, membrane + current (fp32); train: + mask (refractory);
    # bwd: reads membrane, current, gz, g_membrane; writes gx
    fwd = 2 * io + 8
    return BenchCase(run, fwd, fwd + 2 * int(refractory) + 8 + io + 4 + io)


def _case_cuba(backend, io):
    return _cuba_case(backend, io, False)


def _case_cuba_refractory(backend, io):
    return _cuba_case(backend, io, True)


def _loihi_case(backend, io, alif):
    from .functional import loihi as L

    if alif:
        p, f = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0), L.alif_multistep
    else:
        p, f = L.CubaParams(1.0, 2048.0, 1024.0), L.cuba_multistep
    # fwd: x, s, current + voltage traces (fp32); ALIF trains with theta+r (4 B) saved;
    # bwd: reads voltage (+ theta+r), gs; writes gx
    fwd = 2 * io + 8
    return BenchCase(lambda x: f(x, p, backend=backend)[0], fwd, fwd + 2 * (4 if alif else 0) + 4 + 2 * io)


def _case_loihi_cuba(backend, io):
    return _loihi_case(backend, io, False)


def _case_loihi_alif(backend, io):
    return _loihi_case(backend, io, True)


def _resonator_case(model):
    def case(backend, io):
        from .functional import resonator as R

        if model.startswith("adrf"):  # period 8, decay 0.1; threshold/refractory decays 0.25/0.5
            p = R.AdRFParams(2607.0, 2607.0, 1024.0, 2048.0, threshold=0.5, threshold_step=0.25)
        else:
            p = R.RFParams(2607.0, 2607.0, threshold=0.5)
        f = getattr(R, f"{model}_multistep")
        # fwd: xr, xi, s; train: + re/im (8 B) and, adaptive, theta+r (4 B) written and read;
        # bwd: reads gs, writes gxr, gxi. The same tensor is passed as real and imaginary input.
        saved = 12 if model.startswith("adrf") else 8
        return BenchCase(lambda x: f((x, x), p, backend=backend)[0], 3 * io, 6 * io + 2 * saved)

    return case


_case_loihi_rf = _resonator_case("rf")
_case_loihi_rf_iz = _resonator_case("rf_iz")
_case_loihi_adrf = _resonator_case("adrf")
_case_loihi_adrf_iz = _resonator_case("adrf_iz")


def _case_loihi_sigma_delta(backend, io):
    import torch

    from .functional.sigma_delta import SigmaDeltaParams, sigma_delta_multistep

    p = SigmaDeltaParams(threshold=0.09375, activation=torch.relu)
    # fwd: x, y; train: + the 1-byte ReLU mask written and read; bwd: reads gy, writes gx
    return BenchCase(lambda x: sigma_delta_multistep(x, p, backend=backend)[0], 2 * io, 4 * io + 2)


def _case_eventprop(backend, io):
    from .functional.cuba import CubaParams
    from .functional.eventprop import eventprop_lif

    p = CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=10e-6)
    # no fused kernel: the traffic model is that of a CUBA scan (x, z, membrane, current;
    # backward: the adjoint reads z, current and gz, writes gx)
    return BenchCase(lambda x: eventprop_lif(x, p, dt=1e-6)[0], 2 * io + 8, 4 * io + 16)


def _norse_weights(n):
    """Fixed ``(n, n)`` input and recurrent weights for the norse recurrent bench case."""
    import torch

    g = torch.Generator().manual_seed(0)
    w_rec = torch.randn(n, n, generator=g) * (2.0 / n) ** 0.5
    return torch.randn(n, n, generator=g) * (2.0 / n) ** 0.5, w_rec.fill_diagonal_(0.0)


def _case_norse(model):
    def case(backend, io):
        from .functional import norse as N

        f = getattr(N, f"norse_{model}_multistep")
        if model == "lif_recurrent":
            run = (lambda x: f(x, *_norse_weights(x.shape[-1]), backend=backend)[0])
        else:
            run = (lambda x: f(x, backend=backend)[0])
        # the fused scans' traffic (kernels/*/peers.py, kernels/*/norse.py; the recurrent LIF has
        # none: that of a same-step CUBA scan): fwd x in, z out; train: + the state traces (fp32:
        # v, i and, refractory / AdEx, rho / a) written and read; bwd: gz in, gx out
        return BenchCase(run, 2 * io, 4 * io + (24 if model in ("lif_refrac", "lif_adex") else 16))

    return case


def _bench_norse(cls):
    def make(backend, n):
        from .neuron import norse

        if cls == "NorseLIFRecurrent":
            w_in, w_rec = _norse_weights(n)
            return norse.NorseLIFRecurrent(n, n, input_weights=w_in, recurrent_weights=w_rec, backend=backend)
        return getattr(norse, cls)(backend=backend)

    return make


_case_norse_lif, _bench_norse_lif = _case_norse("lif"), _bench_norse("NorseLIF")
_case_norse_lif_recurrent = _case_norse("lif_recurrent")
_bench_norse_lif_recurrent = _bench_norse("NorseLIFRecurrent")
_case_norse_lif_refrac, _bench_norse_lif_refrac = _case_norse("lif_refrac"), _bench_norse("NorseLIFRefrac")
_case_norse_lif_adex, _bench_norse_lif_adex = _case_norse("lif_adex"), _bench_norse("NorseLIFAdEx")
def _case_snntorch_leaky(backend, io):
    from .functional.snntorch import LeakyParams, leaky_multistep

    p = LeakyParams(beta=0.5)
    # the fused scans' traffic (kernels/*/peers.py; fwd: x, S; train: + mem (4 B) written and
    # read; bwd: gS in, gX out)
    return BenchCase(lambda x: leaky_multistep(x, p, backend=backend)[0], 2 * io, 4 * io + 8)


def _case_snntorch_synaptic(backend, io):
    from .functional.snntorch import SynapticParams, synaptic_multistep

    p = SynapticParams(alpha=0.5, beta=0.5)
    # the fused scans' traffic (kernels/*/peers.py; fwd: x, S; train: + syn and mem (8 B) written
    # and read; bwd: gS in, gX out)
    return BenchCase(lambda x: synaptic_multistep(x, p, backend=backend)[0], 2 * io, 4 * io + 16)


def _sinabs_case(backend, io, iaf):
    import math

    from .functional.sinabs import SinabsParams, sinabs_multistep

    if iaf:
        p = SinabsParams(alpha_mem=1.0, norm_input=False)
    else:
        p = SinabsParams(alpha_mem=math.exp(-0.5), alpha_syn=math.exp(-0.5))
    # the fused scans (kernels/triton/sinabs.py, kernels/cpu/sinabs.py): fwd x, spike counts;
    # train: + v_mem (and i_syn) saved, 4 B each; bwd: gS in, gX out
    saved = 4 if iaf else 8
    return BenchCase(lambda x: sinabs_multistep(x, p, backend=backend)[0], 2 * io, 4 * io + 2 * saved)


def _case_sinabs_lif(backend, io):
    return _sinabs_case(backend, io, False)


def _case_sinabs_iaf(backend, io):
    return _sinabs_case(backend, io, True)


def _bench(name, module_scale=1.0, case_scale=1.0):
    return BenchSpec(f"{_F}:_bench_{name}", f"{_F}:_case_{name}", module_scale, case_scale)


# --------------------------------------------------------------------------- the records

_FL, _FC, _FE = "spikefuse.functional.lif", "spikefuse.functional.cuba", "spikefuse.functional.eventprop"
_FLO, _FR = "spikefuse.functional.loihi", "spikefuse.functional.resonator"
_FSD, _NLO = "spikefuse.functional.sigma_delta", "spikefuse.neuron.loihi"
_LOIHI_NIR = "fixed-point states, integer decays and the Loihi step order have no NIR node"
_FST, _FSI = "spikefuse.functional.snntorch", "spikefuse.functional.sinabs"
_SNNTORCH_NIR = ("reset_mechanism='zero' exports exactly (Leaky: LIF; Synaptic with reset_delay=False: "
                 "CubaLIF); a subtractive reset, and Synaptic's delayed reset, have no NIR node (lossy=True only)")
_SINABS_NIR = "NIR neurons emit one spike per step; sinabs' multi-spike counts have no NIR node"


_FN, _NN = "spikefuse.functional.norse", "spikefuse.neuron.norse"
_NORSE_NIR = "the NIR exporter has no converter for it yet"


def _norse(model, params, state, cls, description, nir_note=_NORSE_NIR, nir=None, kernels=None, train=None):
    return Family(
        id=f"norse.{model}", functional=f"{_FN}:norse_{model}_multistep", step=f"{_FN}:norse_{model}_step",
        params=f"{_FN}:{params}", state=f"{_FN}:{state}", module=f"{_NN}:{cls}",
        kernel=f"norse_{model}" if kernels else None, kernels=dict(kernels or {}),
        aliases=(f"norse-{model.replace('_', '-')}",), bench=_bench(f"norse_{model}"), nir=nir, nir_note=nir_note,
        description=description, train=train)


#: norse's threshold is its SuperSpike surrogate (``method="super"``), or norse's adjoint
#: (``gradient="adjoint"`` on the modules; its output term ``dz / dv_-`` is inf for a spike at a
#: step that started from rest: at the first step, as a constant-current input gives, the inf
#: lands on the initial state and the weight gradients are finite; at a later step the modules'
#: ``check_finite`` stops the run with the cause instead of training on inf)
_NORSE_TRAIN = ("superspike", "adjoint")


def _resonator(model, params, state, description):
    return Family(
        id=f"loihi.{model}", functional=f"{_FR}:{model}_multistep", step=f"{_FR}:{model}_step",
        params=f"{_FR}:{params}", state=f"{_FR}:{state}", module=f"{_NLO}.{model}:Neuron",
        kernel=f"loihi_{model}", kernels=dict(_CPU_TRITON), aliases=(f"loihi-{model.replace('_', '-')}",),
        bench=_bench(f"loihi_{model}"), nir_note=_LOIHI_NIR, description=description)


FAMILIES: dict[str, Family] = {f.id: f for f in (
    Family("lif", f"{_FL}:lif_multistep", f"{_FL}:lif_step", f"{_FL}:LIFParams", f"{_FL}:LIFState",
           "spikefuse.neuron.lif:LIF", "lif", dict(_CPU_TRITON),
           train=TrainSpec("atan", _SURROGATES, f"{_F}:_train_lif"), bench=_bench("lif", 1.5),
           nir="LIF", description="SpikingJelly LIF: hard/soft reset, decay_input, detach_reset"),
    Family("if", f"{_FL}:if_multistep", f"{_FL}:if_step", f"{_FL}:LIFParams", f"{_FL}:LIFState",
           "spikefuse.neuron.lif:IF", "lif", dict(_CPU_TRITON),
           train=TrainSpec("atan", _SURROGATES, f"{_F}:_train_if"), bench=_bench("if", 1.5),
           nir="IF", description="SpikingJelly IF (LIF kernels with tau=None)"),
    Family("plif", f"{_FL}:lif_multistep", f"{_FL}:lif_step", f"{_FL}:LIFParams", f"{_FL}:LIFState",
           "spikefuse.neuron.lif:ParametricLIF", "lif", dict(_CPU_TRITON),
           train=TrainSpec("atan", _SURROGATES, f"{_F}:_train_plif"), bench=_bench("plif", 1.5),
           nir="LIF", description="SpikingJelly ParametricLIF (learnable tau, LIF kernels)"),
    Family("cuba", f"{_FC}:cuba_lif_integration", f"{_FC}:cuba_lif_step", f"{_FC}:CubaParams",
           f"{_FC}:CubaState", "spikefuse.neuron.cuba:CubaLIF", "cuba", dict(_CPU_TRITON),
           train=TrainSpec("superspike", ("superspike",), f"{_F}:_train_cuba"),
           bench=_bench("cuba", 0.5, 0.5), nir="CubaLIF",
           description="hxtorch / BrainScaleS-2 current-based LIF"),
    Family("cuba-refractory", f"{_FC}:cuba_refractory_lif_integration", f"{_FC}:cuba_refractory_lif_step",
           f"{_FC}:CubaParams", f"{_FC}:CubaRefractoryState", "spikefuse.neuron.cuba:CubaRefractoryLIF",
           "cuba", dict(_CPU_TRITON), aliases=("cuba_refractory",),
           bench=_bench("cuba_refractory", 0.5, 0.5),
           nir_note="NIR neurons have no refractory period",
           description="hxtorch CUBA LIF with a refractory period"),
    Family("loihi.cuba", f"{_FLO}:cuba_multistep", f"{_FLO}:cuba_step", f"{_FLO}:CubaParams",
           f"{_FLO}:CubaState", f"{_NLO}.cuba:Neuron", "loihi_cuba", dict(_CPU_TRITON), aliases=("loihi-cuba",),
           train=TrainSpec("slayer_exp", ("slayer_exp",), f"{_F}:_train_loihi_cuba", weight_hook="8bit"),
           bench=_bench("loihi_cuba"), nir="CubaLIF",
           nir_note="float CubaLIF only with lossy=True (fixed point, same-step current)",
           description="Loihi CUBA LIF (lava-dl cuba.Neuron), fixed point"),
    Family("loihi.alif", f"{_FLO}:alif_multistep", f"{_FLO}:alif_step", f"{_FLO}:AlifParams",
           f"{_FLO}:AlifState", f"{_NLO}.alif:Neuron", "loihi_alif", dict(_CPU_TRITON), aliases=("loihi-alif",),
           bench=_bench("loihi_alif"), nir_note=_LOIHI_NIR, description="Loihi adaptive LIF (lava-dl alif)"),
    _resonator("rf", "RFParams", "RFState", "Loihi resonate-and-fire, phase threshold"),
    _resonator("rf_iz", "RFParams", "RFIzState", "Loihi resonate-and-fire, Izhikevich reset"),
    _resonator("adrf", "AdRFParams", "AdRFState", "Loihi adaptive resonate-and-fire"),
    _resonator("adrf_iz", "AdRFParams", "AdRFIzState", "Loihi adaptive resonate-and-fire, Izhikevich reset"),
    Family("loihi.sigma_delta", f"{_FSD}:sigma_delta_multistep", f"{_FSD}:sigma_delta_step",
           f"{_FSD}:SigmaDeltaParams", f"{_FSD}:SigmaDeltaState", f"{_NLO}.sigma_delta:Neuron",
           "loihi_sigma_delta", dict(_CPU_TRITON), aliases=("loihi-sigma-delta",),
           bench=_bench("loihi_sigma_delta"), nir_note=_LOIHI_NIR, description="Loihi sigma-delta neuron"),
    Family("eventprop", f"{_FE}:eventprop_lif", f"{_FE}:eventprop_lif_step", f"{_FC}:CubaParams",
           f"{_FC}:CubaState", "spikefuse.neuron.eventprop:EventPropLIF",
           train=TrainSpec("eventprop", ("eventprop", "superspike"), f"{_F}:_train_eventprop",
                           owns_synapse=True),
           bench=_bench("eventprop"), nir="CubaLIF",
           description="CUBA LIF with exact EventProp gradients (owns its synapse)"),
    _norse("lif", "NorseLIFParams", "NorseLIFState", "NorseLIF",
           "norse feed-forward LIF: same-step current, strict >, reset not detached", nir="CubaLIF",
           kernels=_CPU_TRITON, train=TrainSpec("superspike", _NORSE_TRAIN, f"{_F}:_train_norse_lif")),
    _norse("lif_recurrent", "NorseLIFParams", "NorseLIFRecurrentState", "NorseLIFRecurrent",
           "norse recurrent LIF (lif_step: input and recurrent weights, detached reset)",
           nir="CubaLIF", nir_note="a CubaLIF in a cycle with its recurrent Linear (input Linear -> CubaLIF <-> "
           "recurrent Linear)",
           train=TrainSpec("superspike", _NORSE_TRAIN, f"{_F}:_train_norse_lif_recurrent", owns_synapse=True)),
    _norse("lif_refrac", "NorseLIFRefracParams", "NorseLIFRefracState", "NorseLIFRefrac",
           "norse LIF with an absolute refractory counter",
           nir_note="NIR neurons have no refractory period", kernels=_CPU_TRITON,
           train=TrainSpec("superspike", _NORSE_TRAIN, f"{_F}:_train_norse_lif_refrac")),
    _norse("lif_adex", "NorseLIFAdExParams", "NorseLIFAdExState", "NorseLIFAdEx",
           "norse adaptive exponential LIF", nir_note="NIR has no adaptive exponential neuron", kernels=_CPU_TRITON),
    Family("snntorch.leaky", f"{_FST}:leaky_multistep", f"{_FST}:leaky_step", f"{_FST}:LeakyParams",
           f"{_FST}:LeakyState", "spikefuse.neuron.snntorch:Leaky", "snntorch_leaky", dict(_CPU_TRITON),
           aliases=("snntorch-leaky",),
           train=TrainSpec("atan", _SURROGATES, f"{_F}:_train_snntorch_leaky"),
           bench=_bench("snntorch_leaky", 1.5), nir="LIF", nir_note=_SNNTORCH_NIR,
           description="snnTorch Leaky: subtract/zero/none reset, strict > threshold, reset_delay"),
    Family("snntorch.synaptic", f"{_FST}:synaptic_multistep", f"{_FST}:synaptic_step",
           f"{_FST}:SynapticParams", f"{_FST}:SynapticState", "spikefuse.neuron.snntorch:Synaptic",
           "snntorch_synaptic", dict(_CPU_TRITON), aliases=("snntorch-synaptic",),
           train=TrainSpec("atan", _SURROGATES, f"{_F}:_train_snntorch_synaptic"),
           bench=_bench("snntorch_synaptic", 1.0, 0.5),
           nir="CubaLIF", nir_note=_SNNTORCH_NIR, description="snnTorch Synaptic (second-order LIF)"),
    Family("sinabs.lif", f"{_FSI}:sinabs_multistep", f"{_FSI}:sinabs_step", f"{_FSI}:SinabsParams",
           f"{_FSI}:SinabsState", "spikefuse.neuron.sinabs:SinabsLIF", "sinabs_lif", dict(_CPU_TRITON),
           aliases=("sinabs-lif",),
           train=TrainSpec("slayer_exp", _SURROGATES, f"{_F}:_train_sinabs_lif"),
           bench=_bench("sinabs_lif", 2.0, 2.0), nir_note=_SINABS_NIR,
           description="sinabs LIF: multi-spike counts, subtract/membrane reset, tau_syn, norm_input"),
    Family("sinabs.iaf", f"{_FSI}:sinabs_multistep", f"{_FSI}:sinabs_step", f"{_FSI}:SinabsParams",
           f"{_FSI}:SinabsState", "spikefuse.neuron.sinabs:SinabsIAF", "sinabs_lif", dict(_CPU_TRITON),
           aliases=("sinabs-iaf",),
           bench=_bench("sinabs_iaf"), nir_note=_SINABS_NIR,
           description="sinabs IAF (sinabs LIF with alpha_mem = 1, no input normalisation)"),
)}


def _index() -> dict:
    out = {}
    for f in FAMILIES.values():
        for name in (f.id, *f.aliases, f.kernel):
            if name:
                out.setdefault(name, f)
    return out


def get(name: str) -> Family:
    """The family called ``name``: its id, an alias (``"loihi-cuba"``) or, when unambiguous,
    its kernel key (``"loihi_cuba"``)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a family id (str), got {type(name).__name__}")
    f = _index().get(name)
    if f is None:
        raise ValueError(f"name: unknown neuron family {name!r}; expected one of {ids()}")
    return f


def ids(*, with_bench: bool = False, with_train: bool = False) -> list:
    """Family ids in registry order (optionally only those with a bench/train spec)."""
    return [f.id for f in FAMILIES.values()
            if (not with_bench or f.bench) and (not with_train or f.train)]


def train_names() -> list:
    """The names ``spikefuse train --neuron`` accepts: ids and aliases of trainable families."""
    return [n for f in FAMILIES.values() if f.train for n in (f.id, *f.aliases)]


def kernel_modules() -> list:
    """Backend modules to import (they register their kernels), in first-listed order."""
    mods: list = []
    for f in FAMILIES.values():
        for mod in f.kernels.values():
            if mod not in mods:
                mods.append(mod)
    return mods
