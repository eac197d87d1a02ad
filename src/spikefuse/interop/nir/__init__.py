"""Export to / import from the Neuromorphic Intermediate Representation (NIR).

:func:`to_nir` writes a spikefuse model as a :class:`nir.NIRGraph`; :func:`from_nir` builds a
spikefuse module that runs a NIR graph on ``(T, B, *features)``, each node as one forward-Euler
step of length ``dt``. docs/nir.md has the equations of every node, the spikefuse <-> NIR
mapping, what each direction keeps and loses, and what NIR cannot express
(:class:`NIRConversionError`).

The package: ``export.py`` (:func:`to_nir`), ``import_.py`` (:func:`from_nir`; one node at a time
in ``_importer.py`` through the table of ``_import_nodes.py``), ``modules.py`` (the ``NIR*``
modules that run NIR nodes), ``graph.py`` (:class:`NIRGraphModule`, graphs that are not a
chain); the neuron dynamics are :mod:`spikefuse.functional.euler` (re-exported here).

>>> import torch
>>> from spikefuse import layers
>>> from spikefuse.interop.nir import to_nir, from_nir
>>> net = torch.nn.Sequential(layers.Dense(3, 4), layers.LeakyIntegrator(tau=2.0))
>>> graph = to_nir(net, dt=1e-3)
>>> sorted(graph.nodes)
['0', '1', 'input', 'output']
>>> back = from_nir(graph, dt=1e-3)
>>> x = torch.rand(5, 2, 3)
>>> torch.equal(back(x), net(x))
True
"""
from ...functional import euler as _euler
from ...functional.euler import (CubaEulerParams, CubaEulerState, EulerParams, EulerState, cuba_euler_multistep,
                                 cuba_euler_step, euler_multistep, euler_step)
from ._common import NIRConversionError
from .export import to_nir
from .graph import NIRGraphModule
from .import_ import from_nir
from . import modules as _modules
from .modules import Delay, NIRCubaLI, NIRCubaLIF, NIRFlatten, NIRIF, NIRIntegrator, NIRLI, NIRLIF, Scale, Threshold

NIRConversionError.__module__ = __name__

__all__ = ["to_nir", "from_nir", "NIRConversionError", *_euler.__all__, *_modules.__all__, "NIRGraphModule"]
