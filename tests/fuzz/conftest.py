"""The full fuzz run is marked ``fuzz``: deselected unless asked for with ``-m fuzz``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: the full fuzz run over every public entry point (pytest -m fuzz)")


def pytest_collection_modifyitems(config, items):
    if "fuzz" in (config.getoption("-m") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("fuzz") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("fuzz") is not None])
        items[:] = keep
