"""The compiled (numba) CPU LIF kernels against the reference loop, bit for bit: spikes, final
state, traces, and the input / initial-state gradients for the surrogates whose formula uses no
transcendental function (ATan, SuperSpike, Triangle: the same fp32 operations in the same order)
and for Sigmoid (the kernel computes SLEEF's expf where torch's sigmoid kernel uses a vector
lane, libm's in its scalar remainder) and SLAYER's exp (the kernel calls torch.exp's MKL VML
routine, :mod:`spikefuse.kernels.cpu._nb_vml`; without MKL within a few ulps). Shapes: odd
neuron counts, several tiles and thread ranges, non-contiguous inputs. Also: the fallback to the torch-op loop when numba is unavailable."""
import warnings

import pytest
import torch

from lif_cpu_cases import lif_grads
from spikefuse import surrogate as sg
from spikefuse.functional.lif import LIFParams
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

EXACT_SURROGATES = [sg.ATan(2.0), sg.SuperSpike(5.0), sg.Triangle(0.8, 1.2)]


def _at_threads(n: int, fn, *args):
    """``fn(*args)`` with ``torch.set_num_threads(n)``, the previous count restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(old)


def _assert_same(params, x, v0, traces):
    a = lif_grads("cpu", x, v0, params, traces)
    b = lif_grads("reference", x, v0, params, traces)
    for n, (u, w) in enumerate(zip(a, b)):
        assert u.dtype == w.dtype and u.shape == w.shape, n
        assert torch.equal(u, w), f"output {n}: max diff {(u.float() - w.float()).abs().max().item()}"
    assert 0 < a[0].sum() < a[0].numel()


CASES = [  # (kind, hard, detach, traces, surrogate index)
    ("lif", True, False, False, 0), ("lif", False, True, True, 1), ("if", True, True, False, 2),
    ("nodecay", False, False, True, 0), ("lif", True, False, True, 2), ("if", False, False, False, 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_bit_exact_against_reference(case):
    kind, hard, detach, traces, si = case
    g = torch.Generator().manual_seed(11)
    T, B, N = 7, 3, 401          # M = 1203: one partial tile (test_several_tiles: more)
    x = torch.randn(T, B, N, generator=g) * 1.2 + 0.45
    tau = None if kind == "if" else torch.rand(N, generator=g) * 1.5 + 1.5
    vth = torch.rand(N, generator=g) * 0.5 + 0.75
    params = LIFParams(tau=tau, v_threshold=vth, v_reset=torch.tensor(-0.1) if hard else None,
                       decay_input=kind != "nodecay", detach_reset=detach, surrogate=EXACT_SURROGATES[si])
    _assert_same(params, x, torch.randn(B, N, generator=g) * 0.3, traces)


@pytest.mark.parametrize("threads", [1, 2])
def test_several_tiles_and_thread_ranges(threads):
    """M = 2 TILE + 1000 neurons: whole and partial tiles; on two threads the ranges are
    SPLIT-aligned, not tile-aligned, so a range ends inside a tile. Spikes, states, traces and
    the input / initial-state gradients bit for bit."""
    from spikefuse.kernels.cpu import _nb_lif as K

    g = torch.Generator().manual_seed(16)
    M = 2 * K.TILE + 1000
    x = torch.randn(3, 2, M // 2, generator=g) * 1.2 + 0.45
    params = LIFParams(tau=torch.rand(M // 2, generator=g) * 1.5 + 1.5, v_threshold=1.0, v_reset=0.0,
                       surrogate=sg.ATan(2.0))
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rs = jit.ranges(M, K.SPLIT)
        assert len(rs) == threads and (threads == 1 or rs[0][1] % K.TILE != 0)
        _assert_same(params, x, torch.randn(2, M // 2, generator=g) * 0.3, traces=True)
    finally:
        torch.set_num_threads(old)


def test_bit_exact_two_threads_and_non_contiguous_input():
    """Two thread ranges (the pool path) and a transposed, non-contiguous input."""
    g = torch.Generator().manual_seed(12)
    x = (torch.randn(5, 300, 9, generator=g) * 1.2 + 0.5).transpose(1, 2)   # (5, 9, 300), strided
    assert not x.is_contiguous()
    params = LIFParams(tau=2.5, v_threshold=1.0, v_reset=0.0, surrogate=sg.ATan(2.0))
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        from spikefuse.kernels.cpu import _nb_lif as K

        assert len(jit.ranges(x[0].numel(), K.SPLIT)) == 2
        _assert_same(params, x, torch.zeros(9, 300), traces=True)
    finally:
        torch.set_num_threads(old)


def test_reciprocal_tau_bit_exact():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(6, 2, 33, generator=g) + 0.6
    params = LIFParams(tau=None, reciprocal_tau=torch.rand(33, generator=g) * 0.4 + 0.3, v_reset=0.0,
                       surrogate=sg.ATan(2.0))
    _assert_same(params, x, torch.zeros(2, 33), traces=False)


@pytest.mark.parametrize("M,threads", [(1, 2), (511, 2), (513, 2), (5000, 3), (2048, 1)])
def test_ranges_cover_contiguous_tile_aligned(M, threads):
    rs = jit.ranges(M, 512, threads)
    assert rs[0][0] == 0 and rs[-1][1] == M
    assert all(a[1] == b[0] for a, b in zip(rs, rs[1:]))
    assert all(j0 % 512 == 0 and j1 > j0 for j0, j1 in rs)
    assert len(rs) == min(threads, -(-M // 512))


def test_fallback_without_numba_warns_once_and_gives_the_same_results(monkeypatch):
    g = torch.Generator().manual_seed(14)
    x = torch.randn(6, 2, 40, generator=g) + 0.6
    params = LIFParams(tau=2.0, v_reset=0.0, surrogate=sg.ATan(2.0))
    compiled = lif_grads("cpu", x, torch.zeros(2, 40), params, True)

    def no_numba():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(jit, "_import_numba", no_numba)
    jit.reset_for_tests()
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert jit.kernels("lif") is None
            fallback = lif_grads("cpu", x, torch.zeros(2, 40), params, True)
            lif_grads("cpu", x, torch.zeros(2, 40), params, False)
        msgs = [str(m.message) for m in w if issubclass(m.category, RuntimeWarning)]
        assert len(msgs) == 1 and "numba is unavailable" in msgs[0] and "torch-op loops" in msgs[0]
    finally:
        monkeypatch.undo()
        jit.reset_for_tests()
    for a, b in zip(compiled, fallback):
        assert torch.equal(a, b)
    assert jit.kernels("lif") is not None


def test_env_switch_forces_the_fallback(monkeypatch):
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
            assert jit.kernels("lif") is None
    finally:
        monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
        jit.reset_for_tests()


def test_sleef_expf_is_torchs_vector_sigmoid_exp():
    """The kernel's expf, in the vector-lane form, gives torch.sigmoid's bits on 2^20 values
    (a multiple of 16 elements: every one in a vector lane) and the special cases."""
    from spikefuse.kernels.cpu.lif import _VEC_STEP

    if torch.backends.cpu.get_cpu_capability() not in _VEC_STEP:
        pytest.skip(f"the vector-lane exp is reproduced for {sorted(_VEC_STEP)} only")
    import numba
    import numpy as np
    from spikefuse.kernels.cpu import _nb_lif as K

    @numba.njit
    def sig(x):
        out = np.empty_like(x)
        for j in range(x.size):  # surrogate' with c0 = 1: s (1 - s), s = 1 / (1 + exp(-x))
            out[j] = K.sg_times_at(np.float32(1.0), x[j], 1, np.float32(1.0), np.float32(0.0), True)
        return out

    x = torch.randn(1 << 20, generator=torch.Generator().manual_seed(30)) * 6.0
    x[:9] = torch.tensor([float("nan"), 120.0, -120.0, 100.0, -104.0, 88.7, -87.3, 0.0, -0.0])
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = torch.sigmoid(x)
        ref = s * (1 - s)
    finally:
        torch.set_num_threads(old)
    got = torch.from_numpy(sig(x.numpy()))
    assert torch.equal(got[1:], ref[1:]) and bool(got[0].isnan())


@pytest.mark.parametrize("B,N,threads", [(3, 37, 1), (2, 16400, 2)], ids=["remainder", "two-chunks"])
def test_sigmoid_bit_exact(B, N, threads):
    """Sigmoid: M = 111 (96 elements in vector lanes, a remainder of 15) on one thread, and
    M = 32800 on two threads (torch splits each step's op into two chunks, each with its own
    remainder)."""
    g = torch.Generator().manual_seed(31)
    x = torch.randn(4, B, N, generator=g) * 1.2 + 0.45
    params = LIFParams(tau=torch.rand(N, generator=g) * 1.5 + 1.5, v_threshold=1.0, v_reset=0.0,
                       surrogate=sg.Sigmoid(4.0))
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _assert_same(params, x, torch.randn(B, N, generator=g) * 0.3, traces=False)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("hard,traces", [(True, False), (False, True)])
def test_slayer_exp_bit_exact_with_vml(hard, traces):
    """SLAYER's exp: the kernel calls torch.exp's own routine (MKL VML, :mod:`._nb_vml`) on each
    step's row of exp arguments, so the input / initial-state gradients are the reference's bits
    (several tiles, two thread ranges). Without VML (a torch without MKL) it is libm's expf,
    which differs from torch.exp by an ulp in ~1 % of values: then within 4 ulps of the largest
    gradient (the reverse scan's sums can cancel near zero)."""
    from spikefuse.kernels.cpu import _nb_lif as K

    g = torch.Generator().manual_seed(32)
    N = K.TILE + 111
    x = torch.randn(6, 2, N, generator=g) * 1.2 + 0.45
    params = LIFParams(tau=2.0, v_threshold=1.0, v_reset=0.0 if hard else None, surrogate=sg.SLAYERExp(0.5, 2.0))
    v0 = torch.zeros(2, N)
    a = _at_threads(2, lif_grads, "cpu", x, v0, params, traces)
    b = lif_grads("reference", x, v0, params, traces)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    if K.VML:
        for n, (u, w) in enumerate(zip(a, b)):
            assert torch.equal(u, w), n
        return
    eps = torch.finfo(torch.float32).eps
    for u, w in zip(a[2:4], b[2:4]):
        assert float((u - w).abs().max()) <= 4 * eps * float(w.abs().max())


def test_strict_threshold_runs_in_the_same_compiled_kernels():
    """threshold=">" is a run-time argument (the float32 ``tie`` of ``_nb_lif.spike``): after a
    ">=" run, a ">" run of the same case adds no factory variant and no numba signature, and
    gives the reference's bits (a charge exactly at the threshold: tau = 2, x = 2 from rest)."""
    from spikefuse.kernels.cpu import _nb_lif as K

    g = torch.Generator().manual_seed(15)
    x = torch.randint(-2, 9, (5, 2, 40), generator=g).float() / 4
    x[0] = 2.0
    p = LIFParams(tau=2.0, v_reset=0.0, surrogate=sg.ATan(2.0))
    lif_grads("cpu", x, torch.zeros(2, 40), p, False)
    kernels = (K.make_fwd(1, 1, 0), K.make_bwd(1, 1, 0, 1, 0, 0, 0, 0))
    before = ([len(k.signatures) for k in kernels], K.make_fwd.cache_info().currsize,
              K.make_bwd.cache_info().currsize)
    _assert_same(p._replace(threshold=">"), x, torch.zeros(2, 40), traces=False)
    assert ([len(k.signatures) for k in kernels], K.make_fwd.cache_info().currsize,
            K.make_bwd.cache_info().currsize) == before


@pytest.mark.parametrize("traces", [False, True])
def test_forward_without_gradients_skips_h_unless_traces(traces, monkeypatch):
    """Without gradients the forward kernel does not write H (its ``store_h`` off: 8 bytes per
    neuron-step, not 12) unless the traces are asked for; spikes, state and traces keep the
    reference's bits."""
    from spikefuse.functional.lif import LIFState, lif_multistep
    from spikefuse.kernels.cpu import lif as L

    g = torch.Generator().manual_seed(17)
    x = torch.randn(5, 3, 70, generator=g) * 1.2 + 0.45
    params = LIFParams(tau=2.0, v_threshold=1.0, v_reset=-0.1, surrogate=sg.ATan(2.0))
    v0 = torch.randn(3, 70, generator=g) * 0.3
    seen = []
    real = L._nb_forward
    monkeypatch.setattr(L, "_nb_forward", lambda *a: seen.append(a[-1]) or real(*a))
    with torch.no_grad():
        out = lif_multistep(x, params, LIFState(v0), backend="cpu", return_traces=traces)
        ref = lif_multistep(x, params, LIFState(v0), backend="reference", return_traces=traces)
    assert seen == [traces]
    got, want = [out[0], out[1].v], [ref[0], ref[1].v]
    if traces:
        got, want = got + [out[2].h, out[2].v], want + [ref[2].h, ref[2].v]
    for u, w in zip(got, want):
        assert torch.equal(u, w)
    lif_multistep(x.requires_grad_(), params, LIFState(v0), backend="cpu")
    assert seen == [traces, True]


def _reference_step_sum(terms, shape, like):
    """The per-step reduction of autograd of the reference: each step's terms reduced with
    ``sum_to_size``, added step ``T-1`` first (the loop of :func:`.common.step_sum`)."""
    acc = None
    for t in range(terms[0].shape[0] - 1, -1, -1):
        for a in terms:
            g = a[t].view(shape).sum_to_size(like.shape)
            acc = g.clone() if acc is None else acc.add_(g)
    return acc


@pytest.mark.parametrize("threads", [1, 2])
def test_scalar_step_sum_is_the_per_step_reduction(threads):
    """A one-value parameter's gradient from its per-step terms (PLIF's tau): the batched row
    reduction + numpy fp32 adds of :func:`.common.step_sum` give the bits of the T
    ``sum_to_size`` / ``add_`` calls, on neuron counts around the vector / ILP / cascade sizes of
    torch's sum, across ``GRAIN_SIZE`` (on two threads a larger row takes the per-step loop), with
    one and two terms per step and parameter shapes ``()``, ``(1,)``, ``(1, 1)``."""
    from spikefuse.kernels.cpu import common

    g = torch.Generator().manual_seed(41)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for T in (1, 2, 7, 60):
            for M in (2, 15, 16, 17, 63, 65, 127, 257, 1203, 4097, 32767, 32768, 32770, 70001):
                if T * M > 2_000_000:
                    continue
                shape = (M,) if M % 2 else (2, M // 2)
                for pshape in ((), (1,), (1, 1))[:len(shape) + 1]:
                    for k in (1, 2):
                        terms = [torch.randn(T, M, generator=g) * 3 for _ in range(k)]
                        like = torch.zeros(pshape)
                        got = common.step_sum(terms, shape, like)
                        want = _reference_step_sum(terms, shape, like)
                        assert got.shape == want.shape and got.dtype == want.dtype
                        assert torch.equal(got, want), (T, M, pshape, k)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2])
def test_plif_scalar_tau_gradient_bit_exact_large_rows(threads):
    """ParametricLIF-like: one learnable tau (0-d) and a scalar learnable v_threshold over
    M = 33000 neurons (above GRAIN_SIZE: on two threads the reference's row sums are split in
    per-thread chunks, and step_sum keeps the per-step loop), soft and hard reset."""
    g = torch.Generator().manual_seed(42)
    x = torch.randn(4, 2, 16500, generator=g) * 1.2 + 0.45
    v0 = torch.randn(2, 16500, generator=g) * 0.3
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for hard in (False, True):
            def make():
                tau = torch.tensor(2.0, requires_grad=True)
                vth = torch.tensor(1.0, requires_grad=True)
                vr = torch.tensor(-0.1, requires_grad=True) if hard else None
                p = LIFParams(tau=tau, v_threshold=vth, v_reset=vr, surrogate=sg.ATan(2.0))
                return p, [q for q in (tau, vth, vr) if q is not None]
            a = lif_grads("cpu", x, v0, make, False)
            b = lif_grads("reference", x, v0, make, False)
            for n, (u, w) in enumerate(zip(a, b)):
                assert torch.equal(u, w), (hard, n)
    finally:
        torch.set_num_threads(old)


def test_rowsum_fold_is_torchs_row_sum():
    """The kernels' in-order fold of a row (``_nb_lif.rowsum_fold`` / ``rowsum_final``, tile by
    tile) gives ``torch.sum``'s bits on one thread, for sizes around the vector, group (4
    vectors), cascade-level and tile sizes; the probed vector width is 8 or 16."""
    from spikefuse.kernels.cpu import lif as L

    nb = jit.kernels("lif")
    lanes = L._sum_lanes(nb)
    if lanes is None:
        pytest.skip("torch's CPU sum order is not the modelled one on this build")
    assert lanes in (8, 16)
    g = torch.Generator().manual_seed(43)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sizes = list(range(lanes, 4 * lanes * 3 + 3)) + [511, 512, 513, 4095, 4096, 4097, 8191, 8193,
                                                         16 * 32 * 16 + 1, 256 * 32 * 4 + 7, 32768, 70001, 1 << 20]
        for M in sizes:
            row = torch.randn(M, generator=g) * 3
            assert float(L._fold_sum(nb, row.numpy(), lanes)) == float(row.sum()), M
    finally:
        torch.set_num_threads(old)


def test_rowsum_fold_in_ranges_is_torchs_row_sum():
    """The fold of a row in neuron ranges that start at multiples of ``_fold_align`` (one
    cascade state each, as the kernels' threads fold them; levels 2 and 3 summed at the end)
    gives ``torch.sum``'s bits, for ranges of one and two alignment units, rows that end in a
    partial unit, a unit's leftover vectors alone, and rows past level 3's first step."""
    from spikefuse.kernels.cpu import lif as L

    nb = jit.kernels("lif")
    lanes = L._sum_lanes(nb)
    if lanes is None:
        pytest.skip("torch's CPU sum order is not the modelled one on this build")
    g = torch.Generator().manual_seed(45)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        unit = L._fold_align(L._geo(32768, lanes))
        assert unit == 4 * lanes * 256
        sizes = [unit, unit + 5, 2 * unit, 2 * unit + 4 * lanes + 3, 3 * unit + 777, 17 * unit + 1, 1 << 20]
        for M in sizes:
            row = torch.randn(M, generator=g) * 3
            unit = L._fold_align(L._geo(M, lanes))
            for align in (unit, 2 * unit):
                assert float(L._fold_sum(nb, row.numpy(), lanes, align)) == float(row.sum()), (M, align)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("kind,hard,recip", [("lif", True, False), ("nodecay", False, False), ("lif", False, True)])
def test_plif_tau_sum_folded_in_the_kernel(kind, hard, recip, monkeypatch):
    """A one-value learnable tau (PLIF; 1/tau for ``recip``): the kernel folds each step's tau
    terms into torch's row-sum order (no (T, M) array; asserted by a spy on ``_fold_geo``), and
    every output and gradient, tau's included, is torch.equal to the reference's."""
    from spikefuse.kernels.cpu import lif as L

    seen = []
    real = L._fold_geo
    monkeypatch.setattr(L, "_fold_geo", lambda *a: seen.append(real(*a)) or seen[-1])
    g = torch.Generator().manual_seed(44)
    x = torch.randn(7, 3, 401, generator=g) * 1.2 + 0.45
    v0 = torch.randn(3, 401, generator=g) * 0.3

    def make():
        w = torch.tensor(0.4 if recip else 2.5, requires_grad=True)
        p = LIFParams(tau=None if recip else w, reciprocal_tau=w if recip else None, v_threshold=1.0,
                      v_reset=-0.1 if hard else None, decay_input=kind != "nodecay", surrogate=sg.ATan(2.0))
        return p, [w]

    a = _at_threads(1, lif_grads, "cpu", x, v0, make, True)
    b = lif_grads("reference", x, v0, make, True)
    assert seen and (seen[-1] is not None or L._sum_lanes(jit.kernels("lif")) is None)
    for n, (u, w) in enumerate(zip(a, b)):
        assert torch.equal(u, w), n
    assert bool(a[4].ne(0).any())


@pytest.mark.parametrize("kind,hard,recip", [("lif", True, False), ("nodecay", False, False), ("lif", False, True)])
def test_plif_tau_sum_folded_on_two_threads(kind, hard, recip, monkeypatch):
    """On two threads (a row of at most GRAIN_SIZE: torch sums it serially) the kernel's two
    neuron ranges fold their parts of each step's tau terms apart (ranges split at
    ``_fold_align``): every output and gradient, tau's included, is torch.equal to the
    reference's, and the kernel did fold in two ranges."""
    from spikefuse.kernels.cpu import lif as L

    seen, splits = [], []
    real, run = L._fold_geo, jit.run
    monkeypatch.setattr(L, "_fold_geo", lambda *a: seen.append(real(*a)) or seen[-1])
    monkeypatch.setattr(jit, "run", lambda k, M, tile, *a, **kw: splits.append((M, tile, kw.get("steps")))
                        or run(k, M, tile, *a, **kw))
    g = torch.Generator().manual_seed(46)
    N = 3 * 8192 + 77                   # two ranges for 8 and 16 lanes (units of 8192 / 16384 neurons)
    x = torch.randn(5, 1, N, generator=g) * 1.2 + 0.45
    v0 = torch.randn(1, N, generator=g) * 0.3

    def make():
        w = torch.tensor(0.4 if recip else 2.5, requires_grad=True)
        p = LIFParams(tau=None if recip else w, reciprocal_tau=w if recip else None, v_threshold=1.0,
                      v_reset=-0.1 if hard else None, decay_input=kind != "nodecay", surrogate=sg.ATan(2.0))
        return p, [w]

    a = _at_threads(2, lif_grads, "cpu", x, v0, make, True)
    b = _at_threads(2, lif_grads, "reference", x, v0, make, True)
    if L._sum_lanes(jit.kernels("lif")) is None:
        pytest.skip("torch's CPU sum order is not the modelled one on this build")
    assert seen and seen[-1] is not None
    M, tile, steps = splits[-1]     # the backward's call
    assert tile == L._fold_align(seen[-1]) and len(jit.ranges(M, tile, 2, work=M * steps)) == 2
    for n, (u, w) in enumerate(zip(a, b)):
        assert torch.equal(u, w), n
    assert bool(a[4].ne(0).any())


@pytest.mark.parametrize("hard", [True, False])
def test_one_value_parameters_take_the_scalar_forward(monkeypatch, hard):
    """Parameters of one value each (numbers, one-element tensors such as PLIF's tau) run the
    forward's ``uni`` variant (scalars in the lane loop); one per-neuron tensor among them runs
    the row variant. Both equal the reference bit for bit, and each other."""
    from spikefuse.kernels.cpu import _nb_lif as nb
    seen = []
    orig = nb.make_fwd
    monkeypatch.setattr(nb, "make_fwd", lambda *a: seen.append(a[3]) or orig(*a))
    g = torch.Generator().manual_seed(3)
    T, N = 9, 4103                  # a partial tile and several thread ranges
    x = torch.randn(T, 2, N, generator=g) * 0.8 + 0.6
    v0 = torch.rand(2, N, generator=g) * 0.5
    vr = 0.0 if hard else None
    outs = []
    for tau, vth in ((2.5, 1.0), (torch.tensor(2.5), torch.tensor([1.0])), (torch.full((N,), 2.5), 1.0)):
        params = LIFParams(tau=tau, v_threshold=vth, v_reset=vr)
        seen.clear()
        _assert_same(params, x, v0, True)
        assert seen and set(seen) == {0 if isinstance(tau, torch.Tensor) and tau.numel() > 1 else 1}
        outs.append(lif_grads("cpu", x, v0, params, True))
    for a, b in zip(outs[0], outs[2]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind,hard,detach,learn,si", [
    ("lif", True, False, "tau", 0), ("nodecay", False, False, "tau", 1), ("lif", False, True, "vth", 2),
    ("lif", True, False, "all", 0), ("if", True, False, "all", 1), ("if", False, False, "vth", 0),
    ("nodecay", True, True, "all", 2), ("lif", False, False, "none", 1)])
def test_one_value_parameters_take_the_scalar_backward(monkeypatch, kind, hard, detach, learn, si):
    """The backward's ``uni`` variant (scalars in every loop) runs when tau, v_threshold and
    v_reset have one value each, learnable (one-element leaves: the tau-only, per-step and fold
    paths of the parameter gradients) or not; its outputs and gradients, the parameters'
    included, equal the reference's bit for bit, on one thread and two. A per-neuron v_threshold
    runs the row variant."""
    from spikefuse.kernels.cpu import _nb_lif as nb
    seen = []
    orig = nb.make_bwd
    monkeypatch.setattr(nb, "make_bwd", lambda *a: seen.append(a[9]) or orig(*a))
    g = torch.Generator().manual_seed(5)
    T, N = 8, 2071
    x = torch.randn(T, 2, N, generator=g) * 1.1 + 0.5
    v0 = torch.randn(2, N, generator=g) * 0.3

    def make(row=False):
        def build():
            lv = {"tau": learn in ("tau", "all"), "vth": learn in ("vth", "all"), "vr": learn == "all" and hard}
            tau = None if kind == "if" else torch.tensor(2.5, requires_grad=lv["tau"])
            vth = torch.full((N,), 0.9) if row else torch.tensor([0.9], requires_grad=lv["vth"])
            vr = torch.tensor(-0.1, requires_grad=lv["vr"]) if hard else None
            leaves = [p for p in (tau, vth, vr) if isinstance(p, torch.Tensor) and p.requires_grad]
            return LIFParams(tau=tau, v_threshold=vth, v_reset=vr, decay_input=kind != "nodecay",
                             detach_reset=detach, surrogate=EXACT_SURROGATES[si]), leaves
        return build

    for threads in (1, 2):
        seen.clear()
        a = _at_threads(threads, lif_grads, "cpu", x, v0, make(), True)
        b = lif_grads("reference", x, v0, make(), True)
        assert seen and set(seen) == {1}
        for n, (u, w) in enumerate(zip(a, b)):
            assert torch.equal(u, w), (threads, n, (u - w).abs().max().item())
        assert 0 < a[0].sum() < a[0].numel()
        assert len(a) == 6 + len(make()()[1])
    seen.clear()
    c = lif_grads("cpu", x, v0, make(row=True), True)
    d = lif_grads("reference", x, v0, make(row=True), True)
    assert seen and set(seen) == {0}
    for u, w in zip(c, d):
        assert torch.equal(u, w)
