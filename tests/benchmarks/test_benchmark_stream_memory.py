"""benchmarks/stream_memory.py: a row per (mode, size); the streamed epoch's traced peak stays
near one batch while the materialised one grows with the split (tracemalloc counts bytes, so
this does not depend on the machine's load)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sm():
    spec = importlib.util.spec_from_file_location("bench_stream_memory", ROOT / "benchmarks" / "stream_memory.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rows_and_bounded_streaming(sm, tmp_path, capsys):
    out = tmp_path / "mem.json"
    assert sm.main(["--sizes", "8", "96", "--T", "10", "--batch-size", "8", "--spikes", "50",
                    "--in-process", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["mode"], r["n_samples"]) for r in rows] == [
        ("streamed", 8), ("materialised", 8), ("streamed", 96), ("materialised", 96)]
    by = {(r["mode"], r["n_samples"]): r for r in rows}
    # both paths see the same frames
    assert by["streamed", 96]["checksum"] == by["materialised", 96]["checksum"] > 0
    dense96 = 96 * 10 * 700 * 4 / 2 ** 20
    assert by["materialised", 96]["dense_split_mib"] == pytest.approx(dense96)
    # materialised holds at least the dense split; streamed stays far below it, near the batch
    assert by["materialised", 96]["tracemalloc_peak_mib"] >= dense96
    assert by["streamed", 96]["tracemalloc_peak_mib"] < dense96 / 3
    assert by["streamed", 96]["tracemalloc_peak_mib"] < 2 * by["streamed", 8]["tracemalloc_peak_mib"] + 0.5
    text = capsys.readouterr().out
    assert "streamed" in text and "materialised" in text and len(text.strip().splitlines()) == 2 + 1 + 4


def test_bad_arguments(sm):
    with pytest.raises(SystemExit):
        sm.main(["--sizes", "0"])
