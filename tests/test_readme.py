"""The README's Python examples run as written (in order, in one namespace)."""
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    ns = {}
    from spikefuse import kernels

    backend = kernels.get_backend()  # the README sets the global backend: restore it
    try:
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"README block {i}", "exec"), ns)
            except Exception as e:  # pragma: no cover - message for the failing block
                raise AssertionError(f"README python block {i} failed: {e!r}\n{code}") from e
    finally:
        kernels.set_backend(backend)
    assert isinstance(ns["spikes"], torch.Tensor)
