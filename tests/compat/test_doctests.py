"""The examples in the compat modules' docstrings run and print what they say."""
import doctest
import importlib
import pkgutil

import pytest

import spikefuse.compat as compat

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(compat.__path__, prefix="spikefuse.compat.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_every_subpackage_found():
    assert {"spikefuse.compat.lava_dl.slayer.neuron.cuba", "spikefuse.compat.hxtorch.spiking.functional.lif",
            "spikefuse.compat.spikingjelly.cext.neuron"} <= set(MODULES)
