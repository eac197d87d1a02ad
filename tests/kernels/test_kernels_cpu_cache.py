"""kernels/cpu/_nb_kernel.stable_uuid: numba's on-disk cache finds every CPU kernel again in
a new process. numba keys a cached kernel on its bytecode and its pickled closure values, and
a numba Dispatcher or intrinsic pickles with a uuid drawn at random per process unless it has
one; a kernel whose closure reached such an object (the Loihi / resonator forwards' tile
functions, the norse kernels' parameter functions) compiled again in every process and added
another cache entry each time."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

from spikefuse.kernels.cpu import _nb_kernel, _nb_loihi, _nb_norse  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _keys_of_a_new_process() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "kernels" / "cache_keys.py")], env=env,
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_every_kernel_has_the_same_cache_key_in_two_processes():
    """Every family's CPU kernels, forward and backward, in two fresh processes: the digest of
    what numba's cache hashes is the same for every kernel."""
    a, b = _keys_of_a_new_process(), _keys_of_a_new_process()
    assert len(a) > 50, sorted(a)    # the families' kernels ran (not an empty probe)
    for name in ("_nb_loihi.make_fwd.<locals>.loihi_fwd", "_nb_resonator.make_fwd.<locals>.res_fwd",
                 "_nb_norse.make_fwd.<locals>.norse_fwd", "_nb_norse.make_bwd.<locals>.norse_bwd"):
        assert any(k.startswith(f"spikefuse.kernels.cpu.{name}_v") for k in a), name  # those that used to miss
    differ = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert not differ and a.keys() == b.keys(), differ


def test_names_are_deterministic_and_distinct():
    """Module-level objects by module and name; a factory's functions by their closure values
    too (two variants: two names); what already has a uuid keeps it."""
    assert _nb_kernel.prefer_wide_vectors._uuid == "spikefuse:spikefuse.kernels.cpu._nb_kernel.prefer_wide_vectors"
    assert _nb_norse.params_refrac._uuid == "spikefuse:spikefuse.kernels.cpu._nb_norse.params_refrac"
    f1, f2 = _nb_loihi.make_fwd(0, 0, 1, 1, 0), _nb_loihi.make_fwd(1, 0, 1, 1, 0)
    assert f1._uuid.startswith("spikefuse:spikefuse.kernels.cpu._nb_loihi.make_fwd.<locals>.loihi_fwd_v")
    assert f1._uuid != f2._uuid
    t1 = f1.py_func.__closure__[f1.py_func.__code__.co_freevars.index("tile_f64")].cell_contents
    assert t1._uuid in f1._uuid          # the tile function named first, by its own closure values
    before = f1._uuid
    _nb_kernel.stable_uuid(f1)
    assert f1._uuid == before


def test_objects_without_a_numba_uuid_are_left_alone():
    for obj in (None, 3, "x", len, object()):
        _nb_kernel.stable_uuid(obj)      # no error, nothing set
    assert _nb_kernel._uuid_slot(len) is None


def _variants_in_a_new_process(cache_dir, *names) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "SPIKEFUSE_COMPILE_NOTICE_S": "-1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "kernels" / "cache_variants.py"), *names], env=env,
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]     # a heap corruption aborts the process
    return json.loads(out.stdout)


def test_variants_compiled_in_two_processes_run_their_own_code_in_a_third(tmp_path):
    """Two variants of one kernel factory (the Loihi forward: CUBA with per-neuron decays, ALIF
    with decays as numbers), each compiled in its own fresh process into one disk cache, then
    both loaded from it into a third: each gives the reference's bits. Before
    ``_nb_kernel.name_variant`` the two tile functions' machine-code symbols coincided (the same
    qualname, the same compile counter in the two processes), and the second kernel loaded ran
    the first one's tile: wrong outputs or a heap corruption."""
    assert _variants_in_a_new_process(tmp_path, "cuba") == {"cuba": True}
    assert _variants_in_a_new_process(tmp_path, "alif") == {"alif": True}
    assert _variants_in_a_new_process(tmp_path, "cuba", "alif") == {"cuba": True, "alif": True}
    assert _variants_in_a_new_process(tmp_path, "alif", "cuba") == {"alif": True, "cuba": True}


def test_factory_functions_are_named_per_variant():
    """A factory's kernels carry their closure values' digest in their qualname (so in numba's
    symbol names); the same variant gets the same name in every process (stable_uuid's test)."""
    f1, f2 = _nb_loihi.make_fwd(0, 0, 1, 1, 0), _nb_loihi.make_fwd(1, 0, 1, 1, 0)
    q1, q2 = f1.py_func.__qualname__, f2.py_func.__qualname__
    assert q1.startswith("make_fwd.<locals>.loihi_fwd_v") and q2.startswith("make_fwd.<locals>.loihi_fwd_v")
    assert q1 != q2
    t1 = f1.py_func.__closure__[f1.py_func.__code__.co_freevars.index("tile_f64")].cell_contents
    t2 = f2.py_func.__closure__[f2.py_func.__code__.co_freevars.index("tile_f64")].cell_contents
    assert t1.py_func.__qualname__ != t2.py_func.__qualname__
