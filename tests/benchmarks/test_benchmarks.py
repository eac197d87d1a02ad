"""benchmarks/neurons.py and spikefuse bench: every registry family and every peer gives a row
(timed, or an explicit "not run: <reason>"), the 'default' rows run with the finite checks on."""
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from spikefuse import bench, families

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def nb():
    spec = importlib.util.spec_from_file_location("bench_neurons", ROOT / "benchmarks" / "neurons.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_neurons"] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("bench_neurons", None)


def _ran_or_says_why(row):
    if row.note.startswith("not run:"):
        return row.fwd_ms is None and row.fwdbwd_ms is None
    return row.fwd_ms > 0 and row.fwdbwd_ms > 0 and math.isfinite(row.fwdbwd_ms)


def test_peer_table_has_a_row_for_every_peer(nb):
    cases = nb.peer_cases("lif", CPU)
    rows = [nb.bench_case(c, (3, 2, 4), CPU, torch.float32, 1e12, 1) for c in cases]
    assert [r.impl for r in rows] == list(nb.peers.LIF_PEERS)
    assert all(_ran_or_says_why(r) for r in rows), [(r.impl, r.note) for r in rows]
    compiled = rows[list(nb.peers.LIF_PEERS).index("norse-lif+compile")]
    assert compiled.note == "not run: torch.compile peers need --peer-compile"
    assert nb.peer_cases("cuba", CPU) == []


def test_missing_or_broken_peer_is_a_not_run_row(nb, monkeypatch):
    def missing(device):
        raise ModuleNotFoundError("No module named 'snntorch'", name="snntorch")

    def broken(device):
        raise TypeError("LIFNode() got an unexpected keyword argument 'backend'")

    monkeypatch.setitem(nb.peers.LIF_PEERS, "snntorch", missing)
    monkeypatch.setitem(nb.peers.LIF_PEERS, "spikingjelly", broken)
    rows = {r.impl: r for r in (nb.bench_case(c, (3, 2, 4), CPU, torch.float32, 1e12, 1)
                                for c in nb.peer_cases("lif", CPU))}
    assert rows["snntorch"].note == "not run: snntorch is not installed"
    assert rows["spikingjelly"].note.startswith("not run: TypeError: LIFNode() got an unexpected keyword")


def test_every_registry_family_has_default_and_reference_rows(nb):
    assert nb.FAMILIES == tuple(families.ids(with_bench=True))
    for fam in nb.FAMILIES:
        cases = nb.spikefuse_cases(fam, ["reference", "cpu", "triton"], 4)
        impls = [c.impl for c in cases]
        assert impls[:2] == ["default", "reference"], (fam, impls)
        assert ("cpu" in impls) == ("cpu" in families.get(fam).kernels)
        for c in cases[:2]:
            row = nb.bench_case(c, (3, 2, 4), CPU, torch.float32, 1e12, 1)
            assert row.fwdbwd_ms and not row.note, (fam, c.impl, row.note)
        assert cases[0].checks is True and cases[1].checks is None


def test_default_rows_run_with_finite_checks_on(nb):
    case = nb.spikefuse_cases("lif", ["reference"], 4)[0]
    x = torch.ones(3, 2, 4)
    x[1, 0, 2] = float("nan")
    with nb._checks(case), pytest.raises(ValueError, match="NaN or inf"):
        case.run(x)
    row = nb.bench_case(case, (3, 2, 4), CPU, torch.float32, 1e12, 1)
    assert row.extra["finite_checks"] is True


def test_saved_bytes_read_from_the_registry_modules(nb):
    assert nb._saved_bytes("cpu", families.get("lif")) == 4
    assert nb._saved_bytes("cpu", families.get("cuba-refractory")) == 1
    assert nb._saved_bytes("triton", families.get("loihi.alif")) == 8


def test_open_neuromorphic_rows_for_both_modes(nb, capsys):
    rows = nb.open_neuromorphic([8], CPU, torch.float32, ["reference", "cpu"], 1, T=3, B=2)
    by_mode = {}
    for r in rows:
        by_mode.setdefault(r.family, []).append(r.impl)
        assert _ran_or_says_why(r), (r.family, r.impl, r.note)
    peers = list(nb.peers.ON_PEERS)
    assert by_mode["on-published"] == ["default", "spikefuse-reference", "spikefuse-cpu"] + peers
    assert by_mode["on-per-step"] == ["default", "spikefuse"] + peers


def test_t_scaling_summary(nb, capsys):
    rows = [nb.Row("lif", "reference", (t, 8, 512), "float32", fwdbwd_ms=t * t / 100) for t in (50, 100)]
    nb.t_scaling_summary(rows)
    out = capsys.readouterr().out
    assert "T=50: 0.500  T=100: 1.000  last/first 2.00" in out


def test_spikefuse_bench_default_row_and_aliases():
    rows = bench.run(T=3, batch=2, features=4, repeat=1, device="cpu", families="loihi-cuba,cuba_refractory",
                     printer=None)
    assert {r["family"] for r in rows} == {"loihi.cuba", "cuba-refractory"}
    for fam in ("loihi.cuba", "cuba-refractory"):
        mine = [r for r in rows if r["family"] == fam]
        assert mine[0]["backend"] == "default" and mine[0]["finite_checks"] is True
        assert mine[1]["backend"] == "reference" and mine[1]["finite_checks"] is False
        assert all(r["fwd_bwd_ms"] > 0 for r in mine[:2])
    assert list(bench.FAMILIES) == families.ids(with_bench=True)


def test_thread_counts_parse_and_refuse(nb):
    import os

    allc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert nb.thread_counts(["1", "all"]) == ([1] if allc == 1 else [1, allc])
    assert nb.thread_counts(["2", "2", "1"]) == [2, 1]
    assert nb.thread_counts(None) == [torch.get_num_threads()]
    for bad in (["0"], ["-1"], ["two"], ["1.5"]):
        with pytest.raises(SystemExit, match="--threads"):
            nb.thread_counts(bad)


def test_thread_summary_side_by_side(nb, capsys):
    rows = []
    for th, ms in ((1, 4.0), (2, 2.5)):
        r = nb.Row("lif", "cpu", (10, 2, 8), "float32", fwdbwd_ms=ms, ratio_fwdbwd=ms / 2)
        r.extra["threads"] = th
        rows.append(r)
    nb.thread_summary(rows[:1])
    assert capsys.readouterr().out == ""        # one thread count: no summary
    nb.thread_summary(rows)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "| family | impl | 10,2,8, 1 thr | 10,2,8, 2 thr |"
    assert out[3] == "| lif | cpu | 4.0 ms (2.0x) | 2.5 ms (1.2x) |"


def test_main_runs_each_thread_count(nb, tmp_path, capsys):
    import json

    before = torch.get_num_threads()
    try:
        rows = nb.main(["--device", "cpu", "--families", "lif", "--backends", "cpu", "--no-default",
                        "--shapes", "4,2,8", "--repeat", "1", "--threads", "1", "2",
                        "--bandwidth", "1e10", "--json", str(tmp_path / "o.json")])
    finally:
        torch.set_num_threads(before)
    assert [r.extra["threads"] for r in rows] == [1, 2]
    assert all(_ran_or_says_why(r) for r in rows)
    meta = json.loads((tmp_path / "o.json").read_text())["meta"]
    assert meta["thread_counts"] == [1, 2] and meta["bandwidth_by_threads"] == {"1": 1e10, "2": 1e10}
    assert "| lif | cpu |" in capsys.readouterr().out


def test_saved_bytes_count_frees_its_graph(nb):
    """The saved-bytes forward (``_count_saved``) leaves nothing alive: every pooled CPU buffer is
    free after the rows (a pack hook that kept the tensor made a cycle through C++ that leaked
    each case's graph and outputs, and with them the pool's buffers)."""
    pytest.importorskip("numba")
    from spikefuse.kernels.cpu import jit

    rows = nb.main(["--device", "cpu", "--families", "lif", "norse.lif_refrac", "--backends", "cpu",
                    "--no-default", "--shapes", "16,2,8192", "--repeat", "1", "--bandwidth", "1e10"])
    assert all(r.saved_mb and r.saved_mb > 0 for r in rows)
    pool = jit._pool_list()
    assert pool and all(jit._storage_free(b) for b in pool), [b.numel() for b in pool if not jit._storage_free(b)]
