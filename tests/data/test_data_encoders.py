import math

import pytest
import torch

from spikefuse.data import encoders as enc


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- rate / poisson
def test_rate_shape_dtype_and_probability():
    x = torch.tensor([[0.0, 0.1, 0.5, 1.0]], dtype=torch.float64)
    T = 20000
    s = enc.rate(x, T, generator=gen())
    assert s.shape == (T, 1, 4) and s.dtype == torch.float64
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert s[:, 0, 0].sum() == 0 and s[:, 0, 3].sum() == T
    for j, p in [(1, 0.1), (2, 0.5)]:
        sigma = math.sqrt(p * (1 - p) / T)
        assert abs(s[:, 0, j].mean().item() - p) < 5 * sigma


def test_rate_gain_and_determinism():
    x = torch.tensor([0.25, 0.5])
    a = enc.rate(x, 50, gain=2.0, generator=gen(3))
    b = enc.rate(x, 50, gain=2.0, generator=gen(3))
    assert torch.equal(a, b)
    assert a[:, 1].sum() == 50  # gain * 0.5 = 1
    assert not torch.equal(a, enc.rate(x, 50, gain=2.0, generator=gen(4)))


def test_poisson_binary_and_counts():
    x = torch.tensor([0.0, 0.2, 1.0])
    T = 20000
    s = enc.poisson(x, T, generator=gen(1))
    assert s.shape == (T, 3) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert s[:, 0].sum() == 0
    for j, lam in [(1, 0.2), (2, 1.0)]:
        p = 1 - math.exp(-lam)
        assert abs(s[:, j].mean().item() - p) < 5 * math.sqrt(p * (1 - p) / T)
    c = enc.poisson(x, T, gain=3.0, counts=True, generator=gen(2))
    assert c.max() > 1
    for j, lam in [(1, 0.6), (2, 3.0)]:
        assert abs(c[:, j].mean().item() - lam) < 5 * math.sqrt(lam / T)


# ---------------------------------------------------------------- latency
def test_latency_linear_hand_vector():
    # T = 11: t = (1 - x) * 10 ; round half to even; x <= 0.01 silent
    x = torch.tensor([1.0, 0.9, 0.5, 0.25, 0.75, 0.01, 0.0])
    t = enc.latency_times(x, 11)
    assert torch.allclose(t[:5], torch.tensor([0.0, 1.0, 5.0, 7.5, 2.5]))
    assert torch.isinf(t[5:]).all()
    s = enc.latency(x, 11)
    assert s.shape == (11, 7)
    expected_step = [0, 1, 5, 8, 2]  # 7.5 -> 8, 2.5 -> 2 (half to even)
    for j, k in enumerate(expected_step):
        col = torch.zeros(11)
        col[k] = 1
        assert torch.equal(s[:, j], col), j
    assert s[:, 5:].sum() == 0


def test_latency_log_hand_vector():
    # tau = 2, threshold = 0.25: t = 2 ln(x / (x - 0.25))
    x = torch.tensor([1.0, 0.5, 0.3, 0.26, 0.2501, 0.25], dtype=torch.float64)
    t = enc.latency_times(x, 11, method="log", threshold=0.25, tau=2.0)
    exp = [2 * math.log(4 / 3), 2 * math.log(2), 2 * math.log(6), 2 * math.log(26), 2 * math.log(2501)]
    assert torch.allclose(t[:5], torch.tensor(exp, dtype=torch.float64))
    assert math.isinf(t[5].item())
    s = enc.latency(x, 11, method="log", threshold=0.25, tau=2.0)
    assert s.argmax(0)[:4].tolist() == [1, 1, 4, 7]
    assert s[:, 4:].sum() == 0  # beyond the window and at threshold: no spike


def test_latency_log_default_tau_puts_twice_threshold_at_last_step():
    t = enc.latency_times(torch.tensor([0.02], dtype=torch.float64), 21, method="log", threshold=0.01)
    assert abs(t.item() - 20.0) < 1e-9


def test_latency_batch_one_spike_per_feature_and_monotone():
    x = torch.rand(4, 16, generator=gen(5)) * 0.98 + 0.02
    s = enc.latency(x, 30)
    assert s.shape == (30, 4, 16)
    assert torch.equal(s.sum(0), torch.ones(4, 16))
    first = s.argmax(0).flatten()
    order = torch.argsort(x.flatten(), descending=True)
    assert (first[order][1:] >= first[order][:-1]).all()


# ---------------------------------------------------------------- delta / crossings / current
def test_delta_hand_vector():
    x = torch.tensor([[0.0, 1.0], [0.4, 1.0], [1.0, 0.4], [1.2, 0.45], [0.1, 0.8], [0.5, 1.0]])
    s = enc.delta(x, threshold=0.5)
    exp = torch.tensor([[0, 0], [0, 0], [1, -1], [0, 0], [-1, 0], [0, 1]], dtype=torch.float32)
    assert torch.equal(s, exp)
    s_on = enc.delta(x, threshold=0.5, off_spikes=False)
    assert torch.equal(s_on, exp.clamp(min=0))


def test_delta_reference():
    x = torch.tensor([0.6, 0.7, 1.2])
    assert enc.delta(x, 0.5, reference=0.0).tolist() == [1.0, 0.0, 1.0]
    assert enc.delta(x, 0.5, reference=torch.tensor(1.0)).tolist() == [0.0, 0.0, 0.0]


def test_threshold_crossing_hand_vector():
    x = torch.tensor([0.0, 0.6, 1.5, 0.2, 0.5])
    s = enc.threshold_crossing(x, [0.5, 1.0])
    assert s.shape == (5, 2)
    exp = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, -1], [1, 0]], dtype=torch.float32)
    assert torch.equal(s, exp)
    s2 = enc.threshold_crossing(torch.zeros(3, 2, 4), torch.tensor([0.5]))
    assert s2.shape == (3, 2, 4, 1)


def test_current():
    x = torch.randn(2, 3, generator=gen(7))
    c = enc.current(x, 4, gain=0.5)
    assert c.shape == (4, 2, 3)
    assert torch.equal(c, (0.5 * x).unsqueeze(0).repeat(4, 1, 1))
    c[0, 0, 0] = 100.0  # contiguous copy, not a view
    assert c[1, 0, 0] != 100.0


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: enc.rate(torch.tensor([0.5]), 0), ValueError, "T"),
        (lambda: enc.rate(torch.tensor([0.5]), 2.0), TypeError, "T"),
        (lambda: enc.rate(torch.tensor([1.5]), 3), ValueError, "x"),
        (lambda: enc.rate(torch.tensor([0.5]), 3, gain=3.0), ValueError, "x"),
        (lambda: enc.rate(torch.tensor([0.5]), 3, gain=-1.0), ValueError, "gain"),
        (lambda: enc.rate(torch.tensor([1]), 3), TypeError, "x"),
        (lambda: enc.rate([0.5], 3), TypeError, "x"),
        (lambda: enc.rate(torch.tensor([float("nan")]), 3), ValueError, "x"),
        (lambda: enc.rate(torch.tensor([0.5]), 3, generator=1), TypeError, "generator"),
        (lambda: enc.poisson(torch.tensor([-0.1]), 3), ValueError, "x"),
        (lambda: enc.poisson(torch.tensor([0.1]), 3, counts=1), TypeError, "counts"),
        (lambda: enc.latency(torch.tensor([0.5]), 3, method="exp"), ValueError, "method"),
        (lambda: enc.latency(torch.tensor([1.5]), 3), ValueError, "x"),
        (lambda: enc.latency(torch.tensor([0.5]), 3, threshold=1.0), ValueError, "threshold"),
        (lambda: enc.latency(torch.tensor([0.5]), 3, method="log", threshold=0.0), ValueError, "threshold"),
        (lambda: enc.latency(torch.tensor([0.5]), 3, tau=2.0), ValueError, "tau"),
        (lambda: enc.latency(torch.tensor([0.5]), 3, method="log", tau=-1.0), ValueError, "tau"),
        (lambda: enc.delta(torch.zeros(3), threshold=0.0), ValueError, "threshold"),
        (lambda: enc.delta(torch.zeros(0), threshold=0.1), ValueError, "x_seq"),
        (lambda: enc.delta(torch.zeros(3, 2), 0.1, reference=torch.zeros(3)), ValueError, "reference"),
        (lambda: enc.delta(torch.zeros(3), 0.1, off_spikes="yes"), TypeError, "off_spikes"),
        (lambda: enc.threshold_crossing(torch.zeros(3), []), ValueError, "levels"),
        (lambda: enc.threshold_crossing(torch.zeros(3), 0.5), TypeError, "levels"),
        (lambda: enc.threshold_crossing(torch.zeros(3), torch.zeros(2, 2)), ValueError, "levels"),
        (lambda: enc.current(torch.zeros(3), -1), ValueError, "T"),
        (lambda: enc.current(torch.zeros(3), 2, gain=float("inf")), ValueError, "gain"),
    ],
)
def test_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
