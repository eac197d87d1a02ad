"""Run the docstring examples of the data package so that they stay true."""
import doctest
import importlib

import pytest

MODULES = [
    "spikefuse.data",
    "spikefuse.data.yinyang",
    "spikefuse.data.encoders",
    "spikefuse.data.randman",
    "spikefuse.data.digits",
    "spikefuse.data.events",
    "spikefuse.data.frames",
    "spikefuse.data.stream",
    "spikefuse.data.event_digits",
    "spikefuse.wrappers",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} doctest example(s) failed in {name}"
    if name != "spikefuse.data.events":  # events examples need real dataset files (not run)
        assert res.attempted > 0
