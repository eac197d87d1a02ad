"""Triton backend: fused forward/backward time scans, one file per family.

Importing this package registers the kernels with :mod:`spikefuse.kernels` under backend
``"triton"``. Each kernel's ``supports`` returns a reason (and ``"auto"`` falls back) for CPU
tensors unless ``TRITON_INTERPRET=1`` was set before import, for surrogates without an in-kernel
formula (``Custom``), and for parameters that do not broadcast to the state shape.

Families: ``lif``, ``cuba`` (hxtorch), ``loihi_cuba``, ``loihi_alif``, the Loihi resonators
``loihi_rf``, ``loihi_rf_iz``, ``loihi_adrf``, ``loihi_adrf_iz`` and ``loihi_sigma_delta``
(identity or ReLU activation; other activations fall back to the reference); the peer families
``snntorch_leaky``, ``snntorch_synaptic`` and ``norse_lif`` (:mod:`.peers`), ``sinabs_lif`` (:mod:`.sinabs`),
``norse_lif_refrac`` and ``norse_lif_adex`` (:mod:`.norse`), all through the generic template.
"""
from __future__ import annotations

from .. import register
from . import lif as _lif

SAVED_BYTES: dict[str, int] = {}
SAVED_BYTES.update(_lif.SAVED_BYTES)

register("lif", "triton", _lif.lif_triton, _lif.lif_supports)

from . import cuba as _cuba  # noqa: E402

SAVED_BYTES.update(_cuba.SAVED_BYTES)
register("cuba", "triton", _cuba.cuba_triton, _cuba.cuba_triton_supports)

from . import loihi as _loihi  # noqa: E402

SAVED_BYTES.update(_loihi.SAVED_BYTES)
register("loihi_cuba", "triton", _loihi.loihi_cuba_triton, _loihi._supports)
register("loihi_alif", "triton", _loihi.loihi_alif_triton, _loihi._supports)

from . import resonator as _resonator  # noqa: E402

SAVED_BYTES.update(_resonator.SAVED_BYTES)
register("loihi_rf", "triton", _resonator.loihi_rf_triton, _resonator.res_supports)
register("loihi_rf_iz", "triton", _resonator.loihi_rf_iz_triton, _resonator.res_supports)
register("loihi_adrf", "triton", _resonator.loihi_adrf_triton, _resonator.res_supports)
register("loihi_adrf_iz", "triton", _resonator.loihi_adrf_iz_triton, _resonator.res_supports)

from . import sigma_delta as _sigma_delta  # noqa: E402

SAVED_BYTES.update(_sigma_delta.SAVED_BYTES)
register("loihi_sigma_delta", "triton", _sigma_delta.loihi_sigma_delta_triton, _sigma_delta.sigma_delta_supports)

try:  # the peer kernels run on the generic template, which needs triton >= 3.4
    from . import peers as _peers  # noqa: E402
except ImportError:  # older triton: the peer families run their reference loops
    _peers = None
if _peers is not None:
    SAVED_BYTES.update(_peers.SAVED_BYTES)
    register("snntorch_leaky", "triton", _peers.snntorch_leaky_triton, _peers.snntorch_leaky_supports)
    register("snntorch_synaptic", "triton", _peers.snntorch_synaptic_triton, _peers.snntorch_synaptic_supports)
    register("norse_lif", "triton", _peers.norse_lif_triton, _peers.norse_lif_supports)
    from . import sinabs as _sinabs  # noqa: E402  (the generic template too)

    SAVED_BYTES.update(_sinabs.SAVED_BYTES)
    register("sinabs_lif", "triton", _sinabs.sinabs_lif_triton, _sinabs.sinabs_lif_supports)
    from . import norse as _norse  # noqa: E402  (norse's refractory and AdEx LIF, the generic template too)

    SAVED_BYTES.update(_norse.SAVED_BYTES)
    register("norse_lif_refrac", "triton", _norse.norse_lif_refrac_triton, _norse.norse_lif_refrac_supports)
    register("norse_lif_adex", "triton", _norse.norse_lif_adex_triton, _norse.norse_lif_adex_supports)
