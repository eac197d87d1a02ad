"""Fused CPU Loihi CUBA / ALIF scans (numba, kernels/cpu/loihi.py) against
spikefuse.functional.loihi: bit-identical spikes, traces and final state (int64 dynamics),
gradients w.r.t. the input and the decays (binary / graded spikes, both decay-gradient modes),
several shapes and layouts, several threads, the SPEC 17 L1 / L2 vectors, lava-dl's fixtures, and
the fallback to the reference loop without numba (cases shared with the Triton tests:
loihi_cases.py)."""
import itertools
import warnings

import pytest
import torch

import test_fixtures_lava as lava_fix
from equivalence import check_compile_variant
from loihi_cases import B, C, check, check_lava_fixture, spec_l1_cuba_vector, spec_l2_alif_vector
from spikefuse import finite_checks, kernels
from spikefuse.functional import loihi as L
from spikefuse.kernels import scan
from spikefuse.kernels.cpu import jit

pytest.importorskip("numba")

COMBOS = list(itertools.product([False, True], ["exact", "lava"]))


def _check(*args, **kw):
    """loihi_cases.check on the CPU kernels, fp32 gradients equal to the reference's (the
    surrogate's exps are torch.exp's, through _nb_vml)."""
    check("cpu", *args, grad_exact=True, **kw)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
@pytest.mark.parametrize("combo", range(4))
def test_matches_reference(alif, combo):
    """Every output, state and trace bit for bit; gradients of x and of per-channel / shared
    learnable decays (even combos) equal, for binary / graded spikes and both decay rules."""
    graded, decay_grad = COMBOS[combo]
    _check(alif, graded, decay_grad, combo % 2 == 0)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_large_values_beyond_float32_integers(alif):
    """States beyond 2**24 LSB: the float32 round trips of the reference must be mirrored."""
    _check(alif, False, "exact", False, scale=3000.0)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_exact_kernel_variant_beyond_int32(alif):
    """Inputs whose integer states pass the float64 path's bound (2**40): those tiles run again in
    int64, and are still bit-exact; with a non-power-of-two scale (a division instead of a
    multiplication)."""
    from spikefuse.kernels.cpu import loihi as cl

    p = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0) if alif else L.CubaParams(1.0, 2048.0, 1024.0)
    f = L.alif_multistep if alif else L.cuba_multistep
    x = torch.full((3, 1, 2), 3e5)
    f(x * 2 ** 20, p, backend="cpu")
    assert cl.LAST["int64_chunks"] == 1
    f(x / 1e4, p, backend="cpu")
    assert cl.LAST["int64_chunks"] == 0
    _check(alif, False, "exact", False, scale=4e5)
    _check(alif, True, "lava", True, scale=2e3, scale_param=48)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_io(dtype):
    _check(True, True, "exact", True, dtype=dtype)
    _check(False, False, "lava", True, dtype=dtype)


def test_initial_state():
    g = torch.Generator().manual_seed(2)
    st = L.AlifState(*(torch.rand(B, C, generator=g) for _ in range(4)))
    _check(True, False, "exact", True, state=st)
    st = L.CubaState(torch.rand(B, C, generator=g), torch.rand(B, C, generator=g))
    _check(False, True, "lava", False, state=st)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_shapes_and_layouts(alif):
    """T = 1 and an odd neuron count, a 4-D input (per-channel decay on dim 2), and a
    non-contiguous (transposed) input."""
    _check(alif, True, "exact", False, shape=(1, 3, C))
    _check(alif, False, "exact", True, shape=(4, 2, C, 3))
    _check(alif, False, "lava", True, shape=(6, C, 2), prep=lambda x: x.transpose(1, 2))


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_threads(alif):
    """Several neuron ranges (2 threads over 3 tiles of 512) give the same bits as one, and as the
    reference (input gradient included)."""
    torch.manual_seed(3)
    x = torch.randn(7, 2, 700) * 0.8 + 0.4
    p = (L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0) if alif else L.CubaParams(1.0, 2048.0, 1024.0))
    f = L.alif_multistep if alif else L.cuba_multistep
    n = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xx = x.clone().requires_grad_()
            s, st, tr = f(xx, p, backend="cpu", return_traces=True)
            (s * torch.linspace(-1, 1, 700)).sum().backward()
            outs.append([s, tr.voltage, *st, *tr, xx.grad])
    finally:
        torch.set_num_threads(n)
    assert len(jit.ranges(1400, 512, 2)) == 2
    assert all(torch.equal(a, b) for a, b in zip(*outs))
    xr = x.clone().requires_grad_()
    ref = f(xr, p, backend="reference", return_traces=True)
    (ref[0] * torch.linspace(-1, 1, 700)).sum().backward()
    assert torch.equal(ref[0], outs[0][0]) and torch.equal(ref[2].voltage, outs[0][1])
    assert torch.equal(xr.grad, outs[0][-1])


def test_spec_vectors():
    spec_l1_cuba_vector("cpu")
    spec_l2_alif_vector("cpu")


@pytest.mark.parametrize("path", lava_fix.FILES, ids=[p.stem for p in lava_fix.FILES])
def test_cpu_matches_lava_fixture(path):
    """lava-dl's own outputs (tests/fixtures/lava_dl): bit-exact spikes and traces, grad_input
    and lava's decay gradients; and the peers' fixture runner (neuron modules) on backend cpu."""
    check_lava_fixture(path, "cpu")
    with kernels.use_backend("cpu"):
        lava_fix.RUNNERS[lava_fix._model_of(path)](lava_fix.load_fixture(path))


def test_registered_specs_and_auto():
    x = torch.rand(4, 2, 5)
    p = L.CubaParams(1.0, 2048.0, 1024.0)
    from spikefuse.kernels.cpu import loihi as cl

    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=False) is cl.loihi_cuba_cpu
    ap = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0)
    assert kernels.resolve("loihi_alif", "auto", x, params=ap, has_norm=False) is cl.loihi_alif_cpu
    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=True) is None
    with pytest.raises(ValueError, match="norm"):
        kernels.resolve("loihi_cuba", "cpu", x, params=p, has_norm=True)
    with pytest.raises(ValueError, match="float64"):
        kernels.resolve("loihi_cuba", "cpu", x.double(), params=p, has_norm=False)
    with pytest.raises(ValueError, match="too large"):
        kernels.resolve("loihi_cuba", "cpu", x, params=p._replace(scale=2 ** 18), has_norm=False)
    for name, saved, moved in (("loihi_cuba", 4, 16), ("loihi_alif", 8, 20)):
        s = scan.find("cpu", name)
        assert s is not None and s.name == f"{name}_cpu"
        assert (s.saved_bytes, s.moved_bytes) == (saved, moved)


def test_fallback_without_numba(monkeypatch):
    """SPIKEFUSE_NO_NUMBA=1: auto runs the reference loop (one RuntimeWarning), backend cpu says
    why it cannot run; with numba back, the kernel again."""
    x = torch.rand(5, 2, 3) * 2
    p = L.CubaParams(1.0, 2048.0, 1024.0)
    ref = L.cuba_multistep(x, p, backend="reference", return_traces=True)
    monkeypatch.setenv("SPIKEFUSE_NO_NUMBA", "1")
    jit.reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="SPIKEFUSE_NO_NUMBA"):
            assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=False) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per process
            got = L.cuba_multistep(x, p, backend="auto", return_traces=True)
            with pytest.raises(ValueError, match="numba is unavailable"):
                L.alif_multistep(x, L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0), backend="cpu")
        assert torch.equal(got[0], ref[0]) and torch.equal(got[2].voltage, ref[2].voltage)
    finally:
        monkeypatch.delenv("SPIKEFUSE_NO_NUMBA")
        jit.reset_for_tests()
    from spikefuse.kernels.cpu import loihi as cl
    assert kernels.resolve("loihi_cuba", "auto", x, params=p, has_norm=False) is cl.loihi_cuba_cpu


def int64_chunks(M, bad_cols):
    """How many ``SPLIT``-neuron chunks the forward flags for an int64 rerun when the columns
    ``bad_cols`` leave the float64 bounds: every chunk of each tile (``TILE`` neurons, from the
    start of a thread's range of :func:`jit.ranges`) that holds one of them."""
    from spikefuse.kernels.cpu import _nb_loihi as nb

    flagged = set()
    for j0, j1 in jit.ranges(M, nb.SPLIT):
        for a in range(j0, j1, nb.TILE):
            b = min(j1, a + nb.TILE)
            if any(a <= c < b for c in bad_cols):
                flagged |= set(range(a // nb.SPLIT, -(-b // nb.SPLIT)))
    return len(flagged)


def _same_as_reference(alif, x, p, state=None):
    """Every output, final state and trace of the CPU kernel equal to the reference's, bit for bit
    (sign of zero included); returns how many SPLIT-neuron chunks ran in int64."""
    from spikefuse.kernels.cpu import loihi as cl

    f = L.alif_multistep if alif else L.cuba_multistep
    outs = []
    for be in ("cpu", "reference"):
        s, st, tr = f(x, p, state=state, backend=be, return_traces=True)
        outs.append([s] + list(st) + list(tr))
        if be == "cpu":
            n = cl.LAST["int64_chunks"]
    for a, b in zip(*outs):
        assert a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))
    return n


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_float64_path_at_its_bounds(alif):
    """The float64 path at the extremes it is proven for: decays 0 and 4096 (keep 4096 / 0),
    negative and positive inputs that drive the states to just below 2**40 (float64 path), one
    tile per neuron block just above it (int64 rerun), and int64 wrap-around far beyond: the same
    bits as the reference, and the chunks of the tiles that left the bound counted."""
    T, M = 6, 1100  # 3 chunks of 512 (on 2 threads two ranges, the second leaves the bounds)
    s = 4096  # 64 * scale
    big = 2.0 ** 40 / s / 8  # |u| <= 2 |x| s (keep 2048), |v| <= 4 max |u| (keep 3072)
    x = torch.zeros(T, 1, M)
    x[:, :, :512] = torch.linspace(-1, 1, 512) * big * 0.9   # in bounds: float64
    x[:, :, 512:1024] = big * 16                              # x s = 2**41: int64
    x[:, :, 1024:] = -3e14                                    # int64 products wrap around
    kw = dict(threshold=1e7)  # theta0 = 4e10 within ALIF's 2**39
    p = (L.AlifParams(threshold_step=0.5, current_decay=2048.0, voltage_decay=1024.0, threshold_decay=1024.0,
                      refractory_decay=2048.0, **kw) if alif else L.CubaParams(current_decay=2048.0,
                                                                               voltage_decay=1024.0, **kw))
    assert _same_as_reference(alif, x, p) == int64_chunks(M, range(512, M))
    xs = x[:, :, :512].contiguous()
    assert _same_as_reference(alif, xs, p) == 0
    for du, dv in ((0.0, 0.0), (4096.0, 4096.0), (0.0, 4096.0)):  # keep 4096 (no decay) and keep 0
        q = p._replace(current_decay=du, voltage_decay=dv, threshold=0.1)
        assert _same_as_reference(alif, (torch.randn(T, 2, 600) * 3).round(decimals=3), q) == 0


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_float64_path_negative_zero_and_non_finite(alif):
    """Small negative states truncate to -0.0 in float64 (the integers have no -0): the recorded
    floats still carry +0.0; inf / NaN inputs leave the float64 path and run the reference's int64
    arithmetic, bit for bit."""
    p = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0) if alif else L.CubaParams(1.0, 2048.0, 1024.0)
    x = torch.tensor([-1e-4, -3e-4, 0.0, -2e-4, 0.0, 0.0]).reshape(6, 1, 1).expand(6, 2, 3).contiguous()
    assert _same_as_reference(alif, x, p) == 0
    xn = x.clone()
    xn[2, 0, 1], xn[3, 1, 2] = float("inf"), float("-inf")
    with finite_checks(False):
        assert _same_as_reference(alif, xn, p) == 1


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
@pytest.mark.parametrize("decay_grad", ["exact", "lava"])
def test_decay_gradients_bit_identical(alif, decay_grad):
    """The decay gradients are the reference's own ``(acc[1:] * y[:-1]).sum(0)`` (the kernel
    writes the per-step products, torch sums them): with per-channel and shared learnable decays,
    T = 40 (torch's cascade sum over 39 rows has two levels), binary spikes, a random projection
    of spikes and traces, they equal the reference's bit for bit, as does the input gradient."""
    from equivalence import outputs_and_grads
    from loihi_cases import _params

    p, (du, dv) = _params(alif, False, decay_grad, True)
    f = L.alif_multistep if alif else L.cuba_multistep
    g = torch.Generator().manual_seed(7)
    x = torch.randn(40, B, C, generator=g) * 0.8 + 0.4

    def run(backend, lv):
        s, st, tr = f(lv["x"], p._replace(current_decay=lv["du"], voltage_decay=lv["dv"]), backend=backend,
                      return_traces=True)
        return [s, tr.current, tr.voltage]

    leaves = dict(x=x, du=du.detach(), dv=dv.detach())
    (outs_k, grads_k), (outs_r, grads_r) = (outputs_and_grads(run, be, leaves) for be in ("cpu", "reference"))
    assert 0 < (outs_r[0] != 0).sum() < outs_r[0].numel()
    for k in ("x", "du", "dv"):
        assert grads_r[k].abs().sum() > 0, k
        assert torch.equal(grads_k[k], grads_r[k]), (k, (grads_k[k] - grads_r[k]).abs().max())


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_gradient_broadcast_over_time(alif):
    """A spike gradient that autograd broadcasts over time (``s.sum()``, stride 0) is passed as
    one row, not materialised: the same input and decay gradients as the materialised one and as
    the reference's, bit for bit."""
    p, (du, dv) = loihi_cases_params(alif)
    f = L.alif_multistep if alif else L.cuba_multistep
    g = torch.Generator().manual_seed(8)
    x = torch.randn(12, B, C, generator=g) * 0.8 + 0.4
    grads = []
    for be, dense in (("cpu", False), ("cpu", True), ("reference", False)):
        xx, a, b = (t.detach().clone().requires_grad_() for t in (x, du, dv))
        s = f(xx, p._replace(current_decay=a, voltage_decay=b), backend=be)[0]
        loss = (s * torch.ones_like(s)).sum() if dense else s.sum()
        grads.append(torch.autograd.grad(loss, [xx, a, b]))
    for k in range(3):
        assert torch.equal(grads[0][k], grads[1][k]), k
        assert torch.equal(grads[0][k], grads[2][k]), k
    assert grads[0][0].abs().sum() > 0


def loihi_cases_params(alif):
    from loihi_cases import _params

    p, (du, dv) = _params(alif, False, "exact", True)
    return p, (du.detach(), dv.detach())


def test_int64_rerun_compiles_on_first_need():
    """The int64 forward of a variant is compiled only when a tile leaves the float64 path's
    bounds (the float64 kernel does not call it); the rerun tile is bit-exact, also where a
    product wraps to exactly -2**63 (the reference's ``sign(a) * (abs(a) >> 12)`` gives +2**51
    there: x s = 2**52 times the keep 2048)."""
    from spikefuse.kernels.cpu import _nb_loihi as nb
    from spikefuse.kernels.cpu import loihi as cl

    p = L.CubaParams(1.0, 2048.0, 1024.0, graded_spike=True)
    nb.make_fwd_i64.cache_clear()
    L.cuba_multistep(torch.rand(3, 1, 600), p, backend="cpu")
    assert cl.LAST["int64_chunks"] == 0 and nb.make_fwd_i64.cache_info().currsize == 0
    x = torch.rand(3, 1, 1100)
    x[:, :, 600] = 2.0 ** 40   # the second of three chunks leaves the bounds
    s, st, tr = L.cuba_multistep(x, p, backend="cpu", return_traces=True)
    assert cl.LAST["int64_chunks"] == int64_chunks(1100, [600]) and nb.make_fwd_i64.cache_info().currsize == 1
    ref = L.cuba_multistep(x, p, backend="reference", return_traces=True)
    assert torch.equal(s, ref[0]) and torch.equal(tr.voltage, ref[2].voltage) and torch.equal(st[1], ref[1][1])


@pytest.mark.parametrize("threads", [1, 2])
def test_int64_rerun_of_a_tile_of_several_chunks(threads):
    """A tile spans several SPLIT chunks (TILE > SPLIT) and a thread's range may start inside what
    would be a tile on one thread: a tile that leaves the bounds flags each of its chunks, those
    (and only those, a tile that stays within the bounds keeps its float64 results) run again in
    int64, bit for bit the reference's, on one and two threads; M above TILE, so one range holds
    several tiles, the last one partial."""
    from spikefuse.kernels.cpu import _nb_loihi as nb
    from spikefuse.kernels.cpu import loihi as cl

    assert nb.TILE % nb.SPLIT == 0 and nb.TILE > nb.SPLIT
    M = nb.TILE + 3 * nb.SPLIT + 100
    p = L.AlifParams(1.0, 0.5, 2048.0, 1024.0, 1024.0, 2048.0)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for bad in ([nb.TILE + nb.SPLIT + 7], [5], [M - 1], [0, M - 1]):
            x = torch.rand(4, 1, M, generator=torch.Generator().manual_seed(bad[0]))
            for c in bad:
                x[1:, 0, c] = 2.0 ** 40        # this neuron's states leave the bounds from step 1 on
            want = int64_chunks(M, bad)
            assert 0 < want < -(-M // nb.SPLIT) or len(bad) > 1
            assert _same_as_reference(True, x, p) == want
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_prefetch_hints_change_no_bits(alif, monkeypatch):
    """The backward's cache hints for the next step's rows (``make_bwd(pf=1)``, the default) are
    hints only: the input and decay gradients equal those of the kernel compiled without them
    (``pf=0``) and the reference's, bit for bit, over several tiles (32 x C neurons: three of
    512) with gradients of the spikes and of both traces."""
    from loihi_cases import _params

    nb = jit.kernels("loihi")
    p, (du, dv) = _params(alif, False, "exact", True)
    du, dv = du.detach(), dv.detach()
    f = L.alif_multistep if alif else L.cuba_multistep
    g = torch.Generator().manual_seed(9)
    x = torch.randn(30, 32, C, generator=g) * 0.8 + 0.4
    w = [torch.randn(30, 32, C, generator=g) for _ in range(3)]

    def grads(backend):
        xx, a, b = (t.clone().requires_grad_() for t in (x, du, dv))
        s, _, tr = f(xx, p._replace(current_decay=a, voltage_decay=b), backend=backend, return_traces=True)
        loss = (s * w[0]).sum() + (tr.current.float() * w[1]).sum() + (tr.voltage.float() * w[2]).sum()
        return torch.autograd.grad(loss, [xx, a, b])

    with_hints = grads("cpu")
    orig = nb.make_bwd
    monkeypatch.setattr(nb, "make_bwd", lambda *a: orig(*a, nb.BWD_TILE, 0))
    assert 32 * C > 2 * nb.BWD_TILE
    without = grads("cpu")
    monkeypatch.undo()
    ref = grads("reference")
    for k in range(3):
        assert with_hints[k].abs().sum() > 0, k
        assert torch.equal(with_hints[k], without[k]), k
        assert torch.equal(with_hints[k], ref[k]), k


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_wide_vectors_change_no_bits(alif, monkeypatch):
    """The float64 forward compiled for 512-bit vectors (``make_fwd(wide=1)``, the default:
    ``_nb_kernel.prefer_wide_vectors``) gives the spikes, traces and final state of the kernel
    compiled without the hint (``wide=0``) and of the reference, bit for bit."""
    from loihi_cases import _params

    nb = jit.kernels("loihi")
    p, _ = _params(alif, False, "exact", True)
    f = L.alif_multistep if alif else L.cuba_multistep
    g = torch.Generator().manual_seed(10)
    x = torch.randn(30, 32, C, generator=g) * 0.8 + 0.4

    def outs(backend):
        s, st, tr = f(x, p, backend=backend, return_traces=True)
        return [s, *st, *tr]

    check_compile_variant(monkeypatch, nb, "make_fwd", lambda orig: lambda *a, **k: orig(*a, nb.TILE, nb.SPLIT, 0, **k),
                          outs)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
@pytest.mark.parametrize("decays", ["numbers", "one-value-rows", "per-neuron-u", "per-neuron-threshold"])
def test_one_value_decays_take_the_scalar_forward(alif, decays, monkeypatch):
    """Decay keeps with one value over all neurons (numbers, or per-neuron tensors that happen
    to hold one value) run the forward's ``uni`` variant (the keeps read as scalars), any other
    the per-neuron one; both give the reference's spikes, traces and final state bit for bit,
    in float64 and again in the int64 rerun of tiles that leave the bounds."""
    nb = jit.kernels("loihi")
    seen = []
    orig_f, orig_i = nb.make_fwd, nb.make_fwd_i64
    monkeypatch.setattr(nb, "make_fwd", lambda *a, **k: seen.append(("f64", k["uni"])) or orig_f(*a, **k))
    monkeypatch.setattr(nb, "make_fwd_i64", lambda *a, **k: seen.append(("i64", k["uni"])) or orig_i(*a, **k))
    g = torch.Generator().manual_seed(3)
    du, dv, dth, dr = 2048.0, 1024.0, 1024.0, 2048.0
    if decays == "one-value-rows":
        du, dv, dth, dr = (torch.full((C,), v) for v in (du, dv, dth, dr))
    elif decays == "per-neuron-u":
        du = torch.rand(C, generator=g) * 3000 + 500
    elif decays == "per-neuron-threshold":
        dth = torch.rand(C, generator=g) * 4096
    if alif:
        p = L.AlifParams(1.0, 0.5, du, dv, dth, dr, scale=64)
    else:
        p = L.CubaParams(1.0, du, dv, scale=64)
    f = L.alif_multistep if alif else L.cuba_multistep
    want = int(decays in ("numbers", "one-value-rows") or (decays == "per-neuron-threshold" and not alif))
    for big in (False, True):    # big: states past 2**40 in one batch element, rerun in int64
        x = torch.randn(20, 4, C, generator=g) * 0.8 + 0.4
        if big:
            x[:, 1] *= 2.0 ** 28
        seen.clear()
        got = f(x, p, backend="cpu", return_traces=True)
        ref = f(x, p, backend="reference", return_traces=True)
        assert seen[0] == ("f64", want)
        assert (("i64", want) in seen) == big
        for a, b in zip(_flat(got), _flat(ref)):
            assert torch.equal(a, b)
        assert 0 < got[0].sum() < got[0].numel()


def _flat(out):
    """The tensors of ``(spikes, state, traces)`` in order."""
    s, st, tr = out
    return [s, *st, *tr]


def _forward_ab(monkeypatch, alif, x, p, state=None):
    """The CPU forward with the int32 tiles (``make_fwd(i32=1)``, the default) and without them
    (``i32=0``: float64 first): every output, final state and trace equal to each other and to
    the reference's, bit for bit (sign of zero included)."""
    nb = jit.kernels("loihi")
    orig = nb.make_fwd
    f = L.alif_multistep if alif else L.cuba_multistep
    runs = []
    for i32 in (1, 0):
        monkeypatch.setattr(nb, "make_fwd", lambda *a, **k: orig(*a, **{**k, "i32": k.get("i32", 1) and i32}))
        runs.append(_flat(f(x, p, state=state, backend="cpu", return_traces=True)))
    monkeypatch.setattr(nb, "make_fwd", orig)
    runs.append(_flat(f(x, p, state=state, backend="reference", return_traces=True)))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert a.dtype == b.dtype and torch.equal(a.view(torch.int32), b.view(torch.int32))
    return runs[0]


def _p(alif, threshold=1.0, scale=64):
    if alif:
        return L.AlifParams(threshold, 0.5, 2048.0, 1024.0, 1024.0, 2048.0, scale=scale)
    return L.CubaParams(threshold, 2048.0, 1024.0, scale=scale)


@pytest.mark.parametrize("alif", [False, True], ids=["cuba", "alif"])
def test_int32_path_at_and_past_its_bounds(alif, monkeypatch):
    """The int32 forward tiles against the float64 ones and the reference: ordinary inputs;
    states that cross the int32 bound (2**19 LSB, ``u`` tends to 2 x) after some steps, in one
    tile of several; inputs whose ``x s`` is past 2**20 at the first step; -0.0 and tiny
    negative inputs; inf / NaN; a threshold (ALIF's theta0) past the int32 path's 2**18; a
    non-power-of-two scale (no int32 path) and a large power of two."""
    g = torch.Generator().manual_seed(34)
    T, M = 40, 3 * 8192 + 100    # several forward tiles (TILE 8192)
    x = torch.randn(T, 1, M, generator=g) * 0.8 + 0.4
    _forward_ab(monkeypatch, alif, x, _p(alif))
    xc = x.clone()
    xc[:, :, 9000:9010] = 70.0       # x s = 286720 < 2**20; u -> 140 crosses 128 = 2**19 / 4096
    xc[5:, :, 20000] = 127.99        # past the bound late in the run
    out = _forward_ab(monkeypatch, alif, xc, _p(alif))
    assert out[5 if alif else 3].abs().max() * 4096 > 2 ** 19    # the current trace left the int32 bound
    xb = x.clone()
    xb[0, :, 100] = 256.0            # x s = 2**20 at t = 0
    xb[3, :, 17000] = -300.0
    _forward_ab(monkeypatch, alif, xb, _p(alif))
    small = torch.tensor([-1e-4, -3e-4, 0.0, -2e-4, -0.0, 0.0]).reshape(6, 1, 1).expand(6, 2, 3).contiguous()
    _forward_ab(monkeypatch, alif, small, _p(alif))
    xn = x[:8].clone()
    xn[2, 0, 1], xn[3, 0, 9000], xn[1, 0, 17000] = float("inf"), float("-inf"), float("nan")
    with finite_checks(False):
        _forward_ab(monkeypatch, alif, xn, _p(alif))
    _forward_ab(monkeypatch, alif, x[:10] * 40, _p(alif, threshold=70.0))    # theta0 = 286720 > 2**18
    _forward_ab(monkeypatch, alif, x[:10], _p(alif, scale=48))               # s = 3072: float64 only
    _forward_ab(monkeypatch, alif, x[:10] / 2 ** 10, _p(alif, threshold=1e-3, scale=2 ** 16))


def test_int32_tile_runs_and_fails_where_bounded():
    """The int32 CUBA tile kernel itself (``_make_tile(2, ...)``): True with the float64 tile's
    bits for an ordinary input, False as soon as a state passes 2**19 LSB or an input ``x s``
    passes 2**20 (the caller then runs the tile in float64 from its initial state)."""
    nb = jit.kernels("loihi")
    import numpy as np

    T, M = 12, 64
    g = torch.Generator().manual_seed(5)
    s = 4096.0

    def run(flt, x):
        S, U, V = (np.zeros((T, M), np.float32) for _ in range(3))
        keeps = [np.full(M, k, np.int64) for k in (2048, 3072)]
        z, d = np.zeros(M, np.int64), np.zeros(1, np.int64)
        d2, d1 = np.zeros((1, 1), np.float32), np.zeros(1, np.float32)
        tile = nb._make_tile(flt, 0, 0, 0, 0, 1, 1, 1)
        ok = tile(x, S, U, V, d2, d2, d2, *keeps, d, d, z, z, d, d, d1, d1, np.float32(s), np.float64(s),
                  np.float64(1 / s), np.float32(1.0), np.float32(s), np.int64(0), np.int64(0), 0, M)
        return ok, (S, U, V)

    x = (torch.randn(T, M, generator=g) * 0.8 + 0.4).numpy()
    ok32, o32 = run(2, x)
    ok64, o64 = run(1, x)
    assert ok32 and ok64
    assert all(np.array_equal(a.view(np.int32), b.view(np.int32)) for a, b in zip(o32, o64))
    for col, val in ((7, 70.0), (3, 256.0), (9, float("nan"))):
        xb = x.copy()
        xb[:, col] = val
        assert run(1, xb)[0] == (val == 70.0 or val == 256.0)   # float64 holds them; NaN fails both
        assert not run(2, xb)[0]
