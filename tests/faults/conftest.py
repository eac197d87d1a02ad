"""tests/faults: the run folder under faults. Tests marked ``faults`` (long: many random
kills, many concurrent runs) run only when selected: ``python -m pytest tests/faults -m faults``."""


def pytest_collection_modifyitems(config, items):
    if "faults" in (config.getoption("markexpr") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("faults") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
