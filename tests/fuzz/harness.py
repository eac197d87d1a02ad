"""A fuzzer over the public entry points (every name in a module's ``__all__``).

For each callable (function or class) it builds a valid call from parameter-name heuristics and
defaults, checks that the valid call runs, then replaces one argument at a time by a bad value:
truthy strings and ints for flags, NaN/inf and strings for numbers, fractional/negative sizes,
tensors holding NaN, of the wrong rank, integer or 'meta' tensors. Outcomes:

- ``clear``: TypeError/ValueError (or a subclass) whose message names the argument;
- ``unnamed``: TypeError/ValueError without the argument's name;
- ``unclear``: any other exception (a raw torch RuntimeError, AttributeError, ...);
- ``silent``: the bad value was accepted although it can only be a mistake (a string for a
  flag or a number, NaN/inf, a fractional size, an arbitrary object);
- ``dtype``: a float16/bfloat16/float64 tensor refused with an unclear error (the README
  promises these dtypes for the synapse layers);
- ``timeout``: the call ran past the per-call limit.

Calls that need arguments the heuristics cannot build are listed as ``uncovered``.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import signal
import tempfile
from dataclasses import dataclass, field

import torch

SKIP_NAMES = {"main", "build_parser", "train", "run", "set_finite_checks", "finite_checks", "trusted_inputs",
              "plot_curves", "plot_raster", "plot_rates", "save_checkpoint", "load_checkpoint"}
TENSOR_NAMES = {"x", "input", "inputs", "spikes", "v", "i", "current", "voltage", "z", "target", "targets",
                "logits", "mem", "membrane", "u", "s", "h", "data", "y", "features", "times", "x_seq", "a_seq",
                "real", "imag", "sigma", "pre", "residual", "error", "activation", "delta"}
INT_NAMES = {"in_features", "out_features", "n", "features", "T", "n_steps", "size", "channels",
             "in_channels", "out_channels", "kernel_size", "batch", "hidden", "n_units", "n_classes",
             "n_time_bins", "n_channels", "num_neurons", "batch_size", "n_samples", "index", "dim"}
FLOAT_NAMES = {"threshold", "tau", "dt", "alpha", "beta", "scale", "gain", "duration", "tau_mem",
               "tau_syn", "current_decay", "voltage_decay", "decay", "v_threshold", "leak", "max_time"}


def _base_value(name: str, tmp: str):
    if name in TENSOR_NAMES:
        return torch.rand(4, 2, 3)
    if name in INT_NAMES:
        return 3
    if name in FLOAT_NAMES or name.startswith("tau") or name.endswith("_decay") or name == "step":
        return 2.0 if name.startswith("tau") else 1.0
    if name in ("state",):
        return None
    if name == "shape":
        return (2, 3)
    if name in ("split",):
        return "train"
    if name in ("root", "path", "folder"):
        return tmp
    if name in ("model", "net", "module"):
        from spikefuse import layers as L

        return torch.nn.Sequential(L.Dense(3, 3))
    if name == "sensor_size":
        return (4, 4, 2)
    if name == "events":
        from spikefuse.data.frames import make_events

        return make_events([0, 1], [0, 1], [0, 10], [0, 1])
    raise LookupError(name)


def _overrides():
    """Valid keyword arguments for entries the name heuristics cannot build."""
    from spikefuse.data.frames import make_events
    from spikefuse.data.stream import EventStream
    from spikefuse.neuron import LIF

    ev = make_events([0, 1], [0, 1], [0, 10], [0, 1])
    stream = EventStream([ev], labels=[0], sensor_size=(4, 4, 2), n_time_bins=2)
    return {**_core_overrides(), **_data_overrides(ev, stream, LIF)}


def _core_overrides():
    """Valid calls of the neuron, layer and helper entries that need a family's params or a
    paired input (so that their other arguments are fuzzed too)."""
    from spikefuse.functional import cuba as fc, euler as fe, lif as fl, loihi as fo, resonator as fr
    from spikefuse.functional import sigma_delta as fs
    from spikefuse.neuron import LIF

    t = lambda *shape: torch.rand(*shape)  # noqa: E731
    pair = (t(4, 2, 3), t(4, 2, 3))
    step_pair = (t(2, 3), t(2, 3))
    cuba_p = fo.CubaParams(threshold=0.5, current_decay=1024.0, voltage_decay=512.0)
    alif_p = fo.AlifParams(threshold=0.5, threshold_step=0.25, current_decay=1024.0, voltage_decay=512.0,
                           threshold_decay=256.0, refractory_decay=256.0)
    rf_p = fr.RFParams(sin_decay=1000.0, cos_decay=3000.0, threshold=0.5)
    adrf_p = fr.AdRFParams(1000.0, 3000.0, 256.0, 256.0, threshold=0.5, threshold_step=0.25)
    eul = dict(dt=1.0, tau=torch.tensor(2.0), r=torch.tensor(1.0), v_leak=torch.tensor(0.0),
               v_threshold=torch.tensor(1.0), v_reset=torch.tensor(0.0))
    ceul = dict(dt=1.0, tau_syn=torch.tensor(2.0), tau_mem=torch.tensor(2.0), r=torch.tensor(1.0),
                v_leak=torch.tensor(0.0), w_in=torch.tensor(1.0), v_threshold=torch.tensor(1.0),
                v_reset=torch.tensor(0.0))
    four = dict(current=t(2, 3), voltage=t(2, 3), threshold=t(2, 3), refractory=t(2, 3))
    F, FO, FR = "spikefuse.functional.", "spikefuse.functional.loihi.", "spikefuse.functional.resonator."
    return {
        F + "lif.initial_state": dict(shape=(2, 3), params=fl.LIFParams()),
        F + "cuba.CubaRefractoryState": dict(z=t(2, 3), v=t(2, 3), i=t(2, 3), ref=t(2, 3)),
        F + "cuba.inject": dict(a=t(2, 3), b=t(2, 3)),
        F + "cuba.refractory_update": dict(z=t(2, 3), v=t(2, 3), ref=t(2, 3)),
        FO + "li_step": dict(x=t(2, 3), y_prev=t(2, 3), decay=torch.tensor(1024.0)),
        FO + "cuba_step": dict(x=t(2, 3), state=None, params=cuba_p),
        FO + "cuba_multistep": dict(x_seq=t(4, 2, 3), params=cuba_p),
        FO + "alif_step": dict(x=t(2, 3), state=None, params=alif_p),
        FO + "alif_multistep": dict(x_seq=t(4, 2, 3), params=alif_p),
        FO + "AlifState": four, FO + "AlifTraces": four,
        FO + "adaptive_threshold_dynamics": dict(drive=t(4, 2, 3), threshold=0.5, threshold_step=0.25,
                                                 threshold_decay=256.0, refractory_decay=256.0),
        FO + "decay_view": dict(name="decay", d=1024.0, like=t(4, 2, 3)),
        FR + "RFState": dict(real=t(2, 3), imag=t(2, 3)), FR + "RFIzState": dict(real=t(2, 3), imag=t(2, 3)),
        FR + "RFTraces": dict(real=t(4, 2, 3), imag=t(4, 2, 3)),
        FR + "AdRFState": dict(real=t(2, 3), imag=t(2, 3), threshold=t(2, 3), refractory=t(2, 3)),
        FR + "rf_step": dict(x=step_pair, state=None, params=rf_p),
        FR + "rf_multistep": dict(x_seq=pair, params=rf_p),
        FR + "rf_iz_multistep": dict(x_seq=pair, params=rf_p),
        FR + "adrf_multistep": dict(x_seq=pair, params=adrf_p),
        FR + "adrf_iz_multistep": dict(x_seq=pair, params=adrf_p),
        F + "sigma_delta.sigma_delta_step": dict(x=t(2, 3), state=None, params=fs.SigmaDeltaParams()),
        F + "sigma_delta.sigma_delta_multistep": dict(x_seq=t(4, 2, 3), params=fs.SigmaDeltaParams()),
        F + "sigma_delta.delta": dict(a_seq=t(4, 2, 3), threshold=0.1),
        F + "euler.EulerParams": eul, F + "euler.CubaEulerParams": ceul,
        F + "euler.euler_multistep": dict(x_seq=t(4, 2, 3), params=fe.EulerParams(**eul)),
        F + "euler.cuba_euler_multistep": dict(x_seq=t(4, 2, 3), params=fe.CubaEulerParams(**ceul)),
        F + "euler.euler_step": dict(x=t(2, 3), state=fe.EulerState(t(2, 3)), params=fe.EulerParams(**eul)),
        F + "euler.cuba_euler_step": dict(x=t(2, 3), state=fe.CubaEulerState(t(2, 3), t(2, 3)),
                                          params=fe.CubaEulerParams(**ceul)),
        F + "eventprop.eventprop_lif_step": dict(x_prev=t(2, 3), state=fc.CubaState(t(2, 3), t(2, 3), t(2, 3)),
                                                 params=fc.CubaParams(tau_mem=2e-6)),
        F + "eventprop.eventprop_linear_lif": dict(x=t(4, 2, 3), weight=t(5, 3)),
        F + "eventprop.eventprop_synapse": dict(input=t(4, 2, 3), weight=t(5, 3)),
        **_peer_overrides(t),
        "spikefuse.layers.Conv1d": dict(in_channels=2, out_channels=3, kernel_size=3),
        "spikefuse.layers.Conv2d": dict(in_channels=2, out_channels=3, kernel_size=3),
        "spikefuse.layers.DenseBlock": dict(in_features=3, out_features=4, neuron=LIF()),
        "spikefuse.layers.Conv2dBlock": dict(in_channels=2, out_channels=3, kernel_size=3, neuron=LIF()),
        "spikefuse.surrogate.get": dict(spec="atan"),
        "spikefuse.spike.complex_spike": dict(real=t(4, 2, 3), imag=t(4, 2, 3) - 0.5, threshold=0.5),
        "spikefuse.fixed_point.rstz": dict(a=torch.tensor([8191, -8191])),
        "spikefuse.fixed_point.quantize_threshold": dict(theta=0.999),
        "spikefuse.fixed_point.quantize_8bit": dict(weight=t(3, 2)),
        "spikefuse.neuron.loihi.ALIF": dict(threshold=0.5, threshold_step=0.25, current_decay=0.5,
                                            voltage_decay=0.25, threshold_decay=0.25, refractory_decay=0.25),
        "spikefuse.neuron.loihi.RF": dict(threshold=0.5, period=4, decay=0.0),
        "spikefuse.neuron.loihi.RFIz": dict(threshold=0.5, period=4, decay=0.0),
        "spikefuse.losses.spike_time_cross_entropy": dict(times=t(2, 3), target=torch.tensor([0, 2])),
        "spikefuse.losses.max_membrane_cross_entropy": dict(membrane=t(4, 2, 3), target=torch.tensor([0, 2])),
    }


def _peer_overrides(t):
    """The peer-semantics families (snnTorch Leaky/Synaptic, sinabs LIF/IAF)."""
    from spikefuse.functional import sinabs as fb, snntorch as fn

    F = "spikefuse.functional."
    return {
        F + "snntorch.SynapticState": dict(syn=t(2, 3), mem=t(2, 3)),
        F + "snntorch.SynapticTraces": dict(syn=t(4, 2, 3), mem=t(4, 2, 3)),
        F + "snntorch.leaky_step": dict(x=t(2, 3), state=None, params=fn.LeakyParams(beta=0.9)),
        F + "snntorch.leaky_multistep": dict(x_seq=t(4, 2, 3), params=fn.LeakyParams(beta=0.9)),
        F + "snntorch.synaptic_step": dict(x=t(2, 3), state=None, params=fn.SynapticParams(alpha=0.8, beta=0.9)),
        F + "snntorch.synaptic_multistep": dict(x_seq=t(4, 2, 3), params=fn.SynapticParams(alpha=0.8, beta=0.9)),
        F + "sinabs.SinabsParams": dict(alpha_mem=0.9),
        F + "sinabs.SinabsState": dict(v_mem=t(2, 3)),
        F + "sinabs.SinabsTraces": dict(v_mem=t(4, 2, 3)),
        F + "sinabs.sinabs_step": dict(x=t(2, 3), state=None, params=fb.SinabsParams(alpha_mem=0.9)),
        F + "sinabs.sinabs_multistep": dict(x_seq=t(4, 2, 3), params=fb.SinabsParams(alpha_mem=0.9)),
    }


def _data_overrides(ev, stream, LIF):  # noqa: N803 - the class
    return {
        "spikefuse.data.get_dataset": dict(name="yinyang", split="test"),
        "spikefuse.data.collate_time_first": dict(batch=[(torch.zeros(3, 2), 1)]),
        "spikefuse.data.frames.make_events": dict(x=[0, 1], y=[0, 1], t=[0, 5], p=[1, 0]),
        "spikefuse.data.stream.EventStream": dict(source=[ev], labels=[0], sensor_size=(4, 4, 2), n_time_bins=2),
        "spikefuse.data.stream.stream_loader": dict(dataset=stream, batch_size=1),
        "spikefuse.data.event_digits.simulate_event_camera": dict(frames=torch.rand(3, 2, 2).numpy(),
                                                                  times_us=[0.0, 1.0, 2.0], threshold=0.2),
        "spikefuse.data.events.bin_events": dict(times=[0.0, 1.0], channels=[0, 1], n_channels=2, T=2),
        "spikefuse.data.encoders.delta": dict(x_seq=torch.rand(4, 2, 3), threshold=0.1),
        "spikefuse.data.encoders.threshold_crossing": dict(x_seq=torch.rand(4, 2, 3), levels=torch.tensor([0.5])),
        "spikefuse.wrappers.membrane_trace": dict(neuron=LIF()),
        "spikefuse.data.randman.make_randman": dict(n_classes=2, n_units=4, n_steps=5, n_samples=4),
        "spikefuse.data.randman.RandMan": dict(split="train", n_classes=2, n_units=4, n_steps=5, n_samples=4),
    }


def warm_up() -> None:
    """Imports and first-use work done before any time limit (an alarm inside an import can
    leave a half-initialised module behind)."""
    import spikefuse.data.digits as digits

    digits.load_digits_tensors()
    m = torch.empty(4, 2, 3, device="meta")
    (m * 2).sum()
    torch.rand(3).isfinite().all()


def _bad_values(name: str, base):
    t = torch.rand(4, 2, 3)
    if isinstance(base, bool):
        return [("truthy str", "no", True), ("int for bool", 1, True)]
    if isinstance(base, int):
        return [("fractional", 2.5, True), ("str", "3", True), ("negative", -1, False), ("nan", math.nan, True),
                ("bool", True, False)]
    if isinstance(base, float):
        return [("nan", math.nan, True), ("inf", math.inf, False), ("str", "1.0", True), ("negative", -1.0, False),
                ("vector", torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), False)]
    if isinstance(base, torch.Tensor):
        fl = base if base.is_floating_point() else base.float()  # an integer tensor cannot hold NaN
        return [("nan tensor", torch.full_like(fl, math.nan), True), ("inf tensor", torch.full_like(fl, math.inf), True),
                ("rank 1", torch.rand(3), False), ("int tensor", (base * 3).long(), False),
                ("meta", torch.empty(base.shape, device="meta"), False), ("list", base.tolist(), False)]
    if isinstance(base, str):
        return [("int for str", 5, True), ("unknown str", "bogus-value", False)]
    return [("object", object(), True)]


DTYPES = (torch.float16, torch.bfloat16, torch.float64)


@dataclass
class Finding:
    entry: str
    param: str
    kind: str
    value: str
    detail: str


@dataclass
class Report:
    findings: list = field(default_factory=list)
    clear: int = 0
    calls: int = 0
    uncovered: list = field(default_factory=list)

    def kinds(self, prefix: str = "") -> dict:
        out: dict = {}
        for f in self.findings:
            if f.entry.startswith(prefix):
                out[f.kind] = out.get(f.kind, 0) + 1
        return out


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _limit(seconds: float):
    def handler(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _call(fn, kwargs, seconds):
    with _limit(seconds):
        return fn(**kwargs)


def entries(module_names):
    """``(qualified name, callable)`` for every public callable of the modules."""
    seen = set()
    for mod_name in module_names:
        mod = importlib.import_module(mod_name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            if not callable(obj) or name in SKIP_NAMES or id(obj) in seen:
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            seen.add(id(obj))
            yield f"{mod_name}.{name}", obj


def _signature(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def baseline(fn, tmp):
    """Keyword arguments of a valid call (required ones from heuristics, flags at defaults)."""
    sig = _signature(fn)
    if sig is None:
        raise LookupError("no signature")
    kw = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        if p.default is inspect.Parameter.empty:
            kw[p.name] = _base_value(p.name, tmp)
        elif isinstance(p.default, (bool, int, float, str)) and not isinstance(p.default, type(None)):
            kw[p.name] = p.default
    return kw


def baseline_or_empty(fn, tmp, qual):
    """The heuristic baseline, or ``{}`` where an override supplies the arguments."""
    if qual in OVERRIDES():
        sig = _signature(fn)
        return {p.name: p.default for p in (sig.parameters.values() if sig else [])
                if isinstance(p.default, (bool, int, float, str)) and p.name not in OVERRIDES()[qual]}
    return baseline(fn, tmp)


_OVERRIDES = {}


def OVERRIDES():  # noqa: N802 - built once, lazily (needs spikefuse imported)
    if not _OVERRIDES:
        _OVERRIDES.update(_overrides())
    return _OVERRIDES


def _classify(err: BaseException, param: str) -> str:
    if isinstance(err, _Timeout):
        return "timeout"
    if isinstance(err, (TypeError, ValueError)):
        return "clear" if param in str(err) else "unnamed"
    return "unclear"


def fuzz_entry(qual, fn, report: Report, *, seconds: float = 2.0, values=None):
    """Fuzz one entry point into ``report``."""
    tmp = tempfile.mkdtemp()
    try:
        kw = {**baseline_or_empty(fn, tmp, qual), **OVERRIDES().get(qual, {})}
        _call(fn, dict(kw), seconds)
    except BaseException as e:  # noqa: BLE001 - any failure of the valid call: not covered
        report.uncovered.append(f"{qual}: {type(e).__name__}: {str(e)[:80]}")
        return
    for param, base in kw.items():
        bad = _bad_values(param, base)
        if values is not None:
            bad = bad[:values]
        for label, value, must_refuse in bad:
            report.calls += 1
            try:
                _call(fn, {**kw, param: value}, seconds)
            except BaseException as e:  # noqa: BLE001
                kind = _classify(e, param)
                if kind == "clear":
                    report.clear += 1
                else:
                    report.findings.append(Finding(qual, param, kind, label, f"{type(e).__name__}: {str(e)[:120]}"))
                continue
            if must_refuse:
                report.findings.append(Finding(qual, param, "silent", label, "accepted"))
        if isinstance(base, torch.Tensor):
            for dt in DTYPES:
                report.calls += 1
                try:
                    _call(fn, {**kw, param: base.to(dt)}, seconds)
                except BaseException as e:  # noqa: BLE001
                    if _classify(e, param) != "clear":
                        report.findings.append(Finding(qual, param, "dtype", str(dt), f"{type(e).__name__}: {str(e)[:120]}"))


def fuzz_module_forward(qual, cls, report: Report, seconds: float = 2.0):
    """Build module ``cls`` from its baseline and fuzz its ``forward(x)`` (layers, neurons)."""
    tmp = tempfile.mkdtemp()
    try:
        mod = _call(cls, baseline(cls, tmp), seconds)
        if not isinstance(mod, torch.nn.Module):
            return
        x = torch.rand(4, 2, 3)
        _call(mod, {"x": x} if "x" in inspect.signature(mod.forward).parameters else {}, seconds)
    except BaseException:  # noqa: BLE001
        return
    fuzz_entry(f"{qual}.forward", lambda x: mod(x), report, seconds=seconds)


def _spread(items, k):
    """``k`` items spread evenly over ``items`` (all of them when there are no more than ``k``)."""
    if k is None or len(items) <= k:
        return items
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def run(module_names, *, seconds: float = 2.0, values=None, forward: bool = True, per_module=None) -> Report:
    """Fuzz every public callable of the modules (``per_module``: only that many of each
    module's entries, spread over its ``__all__``: the fast sample)."""
    warm_up()
    report = Report()
    picked, seen = [], set()
    for mod in module_names:  # an object re-exported by a later module is fuzzed once
        fresh = [(q, f) for q, f in entries([mod]) if id(f) not in seen]
        seen.update(id(f) for _, f in fresh)
        picked += _spread(fresh, per_module)
    for qual, fn in picked:
        fuzz_entry(qual, fn, report, seconds=seconds, values=values)
        if forward and inspect.isclass(fn) and issubclass(fn, torch.nn.Module):
            fuzz_module_forward(qual, fn, report, seconds=seconds)
    return report
