"""Fused CPU backend: ScanSpecs whose forward runs the time loop without an autograd graph and
whose backward is a hand-written reverse scan; compiled with numba when it is installed
(:mod:`.jit`), else torch-op loops (the peer families of :mod:`.peers`: else their reference
loops).

Importing this package registers the implementations with :mod:`spikefuse.kernels` under backend
``"cpu"`` (``"auto"`` picks it for CPU tensors).
"""
from __future__ import annotations

from .. import register
from . import lif as _lif

SAVED_BYTES: dict[str, int] = {}
SAVED_BYTES.update(_lif.SAVED_BYTES)

register("lif", "cpu", _lif.lif_cpu, _lif.lif_supports)

from . import cuba as _cuba  # noqa: E402

SAVED_BYTES.update(_cuba.SAVED_BYTES)
register("cuba", "cpu", _cuba.cuba_cpu, _cuba.cuba_cpu_supports)

from . import sigma_delta as _sigma_delta  # noqa: E402

SAVED_BYTES.update(_sigma_delta.SAVED_BYTES)
register("loihi_sigma_delta", "cpu", _sigma_delta.loihi_sigma_delta_cpu, _sigma_delta.sigma_delta_cpu_supports)

from . import resonator as _resonator  # noqa: E402

SAVED_BYTES.update(_resonator.SAVED_BYTES)
register("loihi_rf", "cpu", _resonator.loihi_rf_cpu, _resonator.res_cpu_supports)
register("loihi_rf_iz", "cpu", _resonator.loihi_rf_iz_cpu, _resonator.res_cpu_supports)
register("loihi_adrf", "cpu", _resonator.loihi_adrf_cpu, _resonator.res_cpu_supports)
register("loihi_adrf_iz", "cpu", _resonator.loihi_adrf_iz_cpu, _resonator.res_cpu_supports)

from . import loihi as _loihi  # noqa: E402

SAVED_BYTES.update(_loihi.SAVED_BYTES)
register("loihi_cuba", "cpu", _loihi.loihi_cuba_cpu, _loihi.loihi_cpu_supports)
register("loihi_alif", "cpu", _loihi.loihi_alif_cpu, _loihi.loihi_cpu_supports)

from . import peers as _peers  # noqa: E402

SAVED_BYTES.update(_peers.SAVED_BYTES)
register("snntorch_leaky", "cpu", _peers.snntorch_leaky_cpu, _peers.snntorch_leaky_supports)
register("snntorch_synaptic", "cpu", _peers.snntorch_synaptic_cpu, _peers.snntorch_synaptic_supports)
register("norse_lif", "cpu", _peers.norse_lif_cpu, _peers.norse_lif_supports)

from . import sinabs as _sinabs  # noqa: E402

SAVED_BYTES.update(_sinabs.SAVED_BYTES)
register("sinabs_lif", "cpu", _sinabs.sinabs_lif_cpu, _sinabs.sinabs_lif_supports)

from . import norse as _norse  # noqa: E402

SAVED_BYTES.update(_norse.SAVED_BYTES)
register("norse_lif_refrac", "cpu", _norse.norse_lif_refrac_cpu, _norse.norse_lif_refrac_supports)
register("norse_lif_adex", "cpu", _norse.norse_lif_adex_cpu, _norse.norse_lif_adex_supports)
