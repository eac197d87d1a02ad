"""``spikefuse.plots`` is :mod:`spikefuse.train.plots` (moved there: only training draws plots);
this name stays importable and is the same module object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("spikefuse.train.plots")
