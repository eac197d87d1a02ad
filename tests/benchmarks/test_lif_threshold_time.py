"""benchmarks/lif_threshold_time.py runs (tiny shape): one line per threshold comparison, with
positive finite times; no speed is asserted."""
import importlib.util
import math
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_prints_both_comparisons(capsys):
    spec = importlib.util.spec_from_file_location("lif_threshold_time", ROOT / "benchmarks" / "lif_threshold_time.py")
    mod = importlib.util.module_from_spec(spec)
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(mod)
        mod.main(["3,2,40"])
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [re.search(r"threshold='(>=?)'", ln).group(1) for ln in lines] == [">=", ">"]
    for ln in lines:
        times = [float(v) for v in re.findall(r"([\d.]+) ns/n-step", ln)]
        assert len(times) == 2 and all(t > 0 and math.isfinite(t) for t in times)
