"""The shared machinery of the compiled CPU kernels (kernels/cpu/jit.py): the output buffer pool
(a buffer is reused only when nothing holds it any more, so a held output is never overwritten),
the minimum work per thread (small calls run on the calling thread; results do not depend on the
split) and the rows of gradients broadcast over time."""
import numpy as np
import pytest
import torch

from spikefuse.functional.cuba import CubaParams, cuba_lif_integration
from spikefuse.functional.lif import LIFParams, lif_multistep
from spikefuse.kernels.cpu import jit

BIG = (64, 8192)   # 2 MiB of fp32: above POOL_MIN_BYTES


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(jit, "POOL_BYTES", 64 * 2**20)
    jit.release_pool()
    yield
    jit.release_pool()


def test_pool_reuses_only_free_buffers(pool):
    a = jit.empty(BIG)
    pa = a.data_ptr()
    b = jit.empty(BIG)
    assert b.data_ptr() != pa
    del a
    c = jit.empty(BIG)
    assert c.data_ptr() == pa                          # a's buffer: nobody holds it
    del c
    for hold in (lambda t: t[3], lambda t: t.numpy(), lambda t: t.untyped_storage(), lambda t: t.view(-1)):
        c = jit.empty(BIG)
        pc = c.data_ptr()
        h = hold(c)                                     # a view, a numpy array, the storage, a reshape
        del c
        d = jit.empty(BIG)
        assert d.data_ptr() not in (pc, b.data_ptr())   # held: not handed out again
        del d, h
    b2 = jit.empty(BIG)
    assert b2.data_ptr() != b.data_ptr()


def test_pool_dtype_size_cap_and_release(pool, monkeypatch):
    a = jit.empty(BIG)
    pa = a.data_ptr()
    del a
    m = jit.empty(BIG, torch.bool)                      # another dtype: its own buffer
    assert m.dtype == torch.bool and m.shape == BIG and m.data_ptr() != pa
    small = jit.empty((4, 4))                           # below POOL_MIN_BYTES: plain torch.empty
    assert small.shape == (4, 4)
    s = jit.empty((BIG[0] // 4, BIG[1]))                # a quarter of the size: not the big buffer
    assert s.data_ptr() != pa
    monkeypatch.setattr(jit, "POOL_BYTES", 0)
    t = jit.empty(BIG)                                  # pool off: a fresh tensor
    assert t.is_contiguous() and t.shape == BIG
    del m, s
    assert jit.release_pool() >= BIG[0] * BIG[1] * 4


def test_held_outputs_keep_their_values(pool):
    """Outputs of an earlier call that the caller still holds (spikes, the saved H inside the
    graph, a gradient) are not overwritten by later calls; dropped ones are recycled."""
    p = LIFParams(tau=2.0, v_threshold=1.0, v_reset=0.0)
    g = torch.Generator().manual_seed(1)
    xs = [(torch.randn(20, 4, 8192, generator=g) * 0.8 + 0.6).requires_grad_() for _ in range(3)]
    first = lif_multistep(xs[0], p, backend="cpu")[0]
    keep = first.clone()
    loss = first.sum()                                  # graph of call 1 alive: its H is held
    for x in xs[1:]:
        lif_multistep(x, p, backend="cpu")[0].sum().backward()
    assert torch.equal(first, keep)
    loss.backward()
    ref = xs[0].detach().clone().requires_grad_()
    lif_multistep(ref, p, backend="reference")[0].sum().backward()
    assert torch.equal(xs[0].grad, ref.grad)
    assert torch.equal(first, lif_multistep(ref.detach(), p, backend="reference")[0])


@pytest.mark.parametrize("M,T,threads,expect", [(4096, 10, 2, 1), (4096, 100, 2, 2), (1100, 20, 2, 1),
                                                 (32768, 100, 8, 8), (32768, 3, 8, 1)])
def test_minimum_work_per_thread(monkeypatch, M, T, threads, expect):
    monkeypatch.setattr(jit, "MIN_WORK", 1 << 16)
    assert len(jit.ranges(M, 512, threads, work=M * T)) == min(expect, -(-M // 512))
    assert len(jit.ranges(M, 512, threads)) == min(threads, -(-M // 512))   # no work: as before


def test_run_below_minimum_work_stays_on_the_calling_thread(monkeypatch):
    import threading

    seen = []

    def kern(*args):
        seen.append((threading.get_ident(), *args[-2:]))

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(jit, "MIN_WORK", 1 << 16)
        jit.run(kern, 2048, 512, np.zeros((10, 2048), np.float32))          # 20k neuron-steps
        assert seen == [(threading.get_ident(), 0, 2048)]
        seen.clear()
        jit.run(kern, 2048, 512, np.zeros((1, 1), np.float32), steps=1000)  # 2M: split
        assert sorted(s[1:] for s in seen) == [(0, 1024), (1024, 2048)]
        seen.clear()
        # a gradient row broadcast over time (1, M) first, then the (T, M) arrays: T steps of work
        jit.run(kern, 2048, 512, np.zeros((1, 2048), np.float32), np.zeros((500, 2048), np.float32),
                np.zeros((3, 2048), np.float32))
        assert sorted(s[1:] for s in seen) == [(0, 1024), (1024, 2048)]
        assert jit._steps(2048, (np.zeros((1, 2048)), np.zeros(2048), np.zeros((500, 2048)))) == 500
    finally:
        torch.set_num_threads(old)


def test_split_does_not_change_numbers(monkeypatch):
    """The same LIF / CUBA outputs and gradients with one range and with two thread ranges
    (threads split neurons; every sum over time is within a neuron)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 3, 700, generator=g) * 0.8 + 0.6
    tau = (torch.rand(700, generator=g) + 1.5).requires_grad_()
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    res = []
    try:
        for mw in (1 << 40, 0):
            monkeypatch.setattr(jit, "MIN_WORK", mw)
            xg = x.clone().requires_grad_()
            s = lif_multistep(xg, LIFParams(tau=tau, v_reset=0.0), backend="cpu")[0]
            z, v, i, _ = cuba_lif_integration(xg * 0.5, CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6),
                                              dt=1e-6, backend="cpu")
            res.append([s, z, v, i, *torch.autograd.grad((s.sum() + (z * v).sum()), [xg, tau])])
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*res):
        assert torch.equal(a, b)


def test_broadcast_gradient_rows_match_dense():
    """A gradient broadcast over time (the backward of ``sum``) is passed as one row (no (T, M)
    copy); the results equal those of the same gradient made dense."""
    g = torch.ones(()).expand(5, 7)
    arr, step = jit.grad_rows(g)
    assert arr.shape == (1, 7) and step == 0
    arr, step = jit.grad_rows(g.contiguous())
    assert arr.shape == (5, 7) and step == 1
    x = torch.randn(9, 2, 600, generator=torch.Generator().manual_seed(3)) * 0.8 + 0.6
    p = LIFParams(tau=2.0, v_reset=0.0)
    out = []
    for dense in (False, True):
        for be in ("cpu", "reference"):
            xg = x.clone().requires_grad_()
            s = lif_multistep(xg, p, backend=be)[0]
            z, v, i, _ = cuba_lif_integration(xg, CubaParams(threshold=0.3, tau_syn=5e-6, tau_mem=5e-6),
                                              dt=1e-6, backend=be)
            w = torch.ones_like(s)
            loss = (s * w).sum() + (z * w).sum() + v.sum() if dense else s.sum() + z.sum() + v.sum()
            out.append(torch.autograd.grad(loss, xg)[0])
    assert all(torch.equal(out[0], o) for o in out[1:])


def test_const_row_cached_and_signed_zero():
    a = jit.const_row(0.0, 5)
    assert jit.const_row(0.0, 5) is a and a.dtype == np.float32 and (a == 0).all()
    b = jit.const_row(-0.0, 5)
    assert b is not a and np.signbit(b).all()
    assert jit.const_row(0.1, 3)[0] == np.float32(0.1)


def test_pool_never_reuses_shared_memory(pool):
    # a pooled output moved to shared memory (torch.multiprocessing does this when it sends a
    # tensor) may still be read by another process after this one drops it
    a = jit.empty(BIG)
    a.fill_(7.0)
    a.share_memory_()
    pa = a.data_ptr()
    del a
    b = jit.empty(BIG)
    assert b.data_ptr() != pa


@pytest.mark.parametrize("throttle", [True, False])
def test_new_pool_gives_one_worker_an_omp_team(monkeypatch, throttle):
    """A pool made by ``jit._pool`` runs :func:`jit._omp_team` once, on a worker thread (not the
    caller), when ``THROTTLE_OMP`` is on, and never when it is off; the real ``_omp_team`` (a
    2-thread torch op) runs there without error and the pool still runs kernel ranges."""
    import threading

    calls = []
    real = jit._omp_team

    def spy():
        calls.append(threading.get_ident())
        real()

    saved = {k: jit._STATE.pop(k) for k in ("pool", "pool_pid") if k in jit._STATE}
    monkeypatch.setattr(jit, "_omp_team", spy)
    monkeypatch.setattr(jit, "THROTTLE_OMP", throttle)
    try:
        pool = jit._pool(1)
        assert jit._pool(1) is pool                      # made once: no second team
        assert len(calls) == (1 if throttle else 0)
        if throttle:
            assert calls[0] != threading.get_ident()
        assert pool.submit(lambda: 7).result() == 7
    finally:
        new = jit._STATE.pop("pool", None)
        if new is not None:
            new.shutdown(wait=True)
        jit._STATE.pop("pool_pid", None)
        jit._STATE.update(saved)


def _slow_kernel(delay, calls):
    """A stand-in for a numba Dispatcher without machine code yet: empty ``overloads`` until its
    first call returns (as numba fills it after compiling or loading)."""
    import time

    class K:
        overloads = {}

        def __call__(self, out, j0, j1):
            time.sleep(delay)
            out[j0:j1] += 1
            calls.append((j0, j1))
            K.overloads = {"sig": "code"}

    return K()


def test_compile_notice_once_when_a_first_call_is_slow(monkeypatch, capsys):
    monkeypatch.setattr(jit, "COMPILE_NOTICE_S", 0.05)
    monkeypatch.setitem(jit._STATE, "noticed", False)
    calls = []
    out = np.zeros(8, np.float32)
    jit.run(_slow_kernel(0.3, calls), 8, 8, out)
    err = capsys.readouterr().err
    assert err.count("spikefuse: compiling the fused CPU kernels") == 1 and calls == [(0, 8)]
    assert np.all(out == 1)         # the call itself is unchanged
    jit.run(_slow_kernel(0.3, calls), 8, 8, out)    # another first call: the notice was given
    assert capsys.readouterr().err == "" and np.all(out == 2)


def test_no_compile_notice_for_fast_or_compiled_kernels(monkeypatch, capsys):
    monkeypatch.setattr(jit, "COMPILE_NOTICE_S", 0.5)
    monkeypatch.setitem(jit._STATE, "noticed", False)
    out = np.zeros(8, np.float32)
    jit.run(_slow_kernel(0.0, []), 8, 8, out)       # a first call from the disk cache: fast
    k = _slow_kernel(1.0, [])
    k.overloads = {"sig": "code"}                     # already compiled in this process: no timer
    monkeypatch.setattr(jit, "COMPILE_NOTICE_S", 0.05)
    jit.run(k, 8, 8, out)
    assert capsys.readouterr().err == "" and not jit._STATE["noticed"]
    monkeypatch.setattr(jit, "COMPILE_NOTICE_S", -1.0)   # off
    jit.run(_slow_kernel(0.3, []), 8, 8, out)
    assert capsys.readouterr().err == "" and np.all(out == 3)


def test_compile_notice_for_a_real_numba_compile(monkeypatch, capsys):
    numba = pytest.importorskip("numba")
    monkeypatch.setattr(jit, "COMPILE_NOTICE_S", 0.0)
    monkeypatch.setitem(jit._STATE, "noticed", False)

    @numba.njit(nogil=True)     # no disk cache: this process compiles it
    def add_one(out, j0, j1):
        for j in range(j0, j1):
            out[j] += 1.0

    assert not add_one.overloads
    out = np.zeros(4, np.float32)
    jit.run(add_one, 4, 4, out)
    assert "compiling the fused CPU kernels" in capsys.readouterr().err and np.all(out == 1)


def _nested_inline_kernel(numba, k: float):
    """A fresh (uncompiled, uncached) kernel whose inlined callee inlines another, as the
    kernel modules nest them: each compile of it about doubles numba's block-label counter."""

    @numba.njit(inline="always")
    def inner(x):
        if x > 0.0:
            return x + 1.0
        return x - 1.0

    @numba.njit(inline="always")
    def middle(x):
        return inner(x) + inner(2.0 * x)

    @numba.njit(nogil=True)
    def kernel(out, j0, j1):
        for j in range(j0, j1):
            out[j] = middle(out[j]) + middle(out[j] + k)

    return kernel


@pytest.mark.parametrize("start", [10**1100, 10**30], ids=["past-llvm-name-limit", "above-reset-bound"])
def test_block_label_counter_is_bounded(start):
    """A process that has compiled enough nested-inline kernels has a label counter whose labels
    LLVM rejects (names past 1024 characters; seen at stop 34 after a few hundred variants). The
    guard that :func:`jit.kernels` installs resets it at the next top-level compile, so that
    compile still works; without the guard the first start fails with 'name is too long'."""
    numba = pytest.importorskip("numba")
    from numba.core import ir_utils

    assert jit.kernels("lif") is not None      # imports numba and installs the guard
    kernel = _nested_inline_kernel(numba, 3.0)
    ir_utils._the_max_label._value = start
    out = np.array([1.0, -2.0, 0.5], np.float32)
    expect = np.array([(lambda m: m(x) + m(x + 3.0))(lambda y: (y + 1 if y > 0 else y - 1)
                                                     + (2 * y + 1 if 2 * y > 0 else 2 * y - 1))
                       for x in out.tolist()], np.float32)
    jit.run(kernel, 3, 3, out)
    np.testing.assert_array_equal(out, expect)
    assert ir_utils._the_max_label._value < jit.LABEL_RESET_ABOVE


def test_block_label_counter_left_alone_below_the_bound():
    numba = pytest.importorskip("numba")
    from numba.core import ir_utils

    assert jit.kernels("lif") is not None
    kernel = _nested_inline_kernel(numba, 1.0)
    start = ir_utils._the_max_label._value + 10**6
    ir_utils._the_max_label._value = start
    out = np.zeros(2, np.float32)
    jit.run(kernel, 2, 2, out)
    assert ir_utils._the_max_label._value >= start    # numbering went on from where it was
