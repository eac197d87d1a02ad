"""The training loop's per-step work: batches of a split scanned once skip the model's NaN/inf
scan (a split with a NaN keeps the per-batch check and its error), the metrics tally gives the
same sums on the device as in Python, and batches may be index tensors."""
import pytest
import torch
import torch.nn.functional as F

from spikefuse import layers as L
from spikefuse import train as tr
from spikefuse.train import TrainConfig, loop
from spikefuse.train.distributed import init_distributed


def _run(tmp_path, **kw):
    cfg = TrainConfig(epochs=2, max_samples=48, hidden=8, batch_size=16, T=3, threads=1,
                      out=str(tmp_path / "run"), plots=False, **kw)
    dist = init_distributed("cpu")
    cfg, _, _ = loop._resolve_run(cfg, False, None, dist)
    return loop._build(cfg, dist, False)


def test_clean_split_is_scanned_once_and_its_batches_skip_the_model_scan(tmp_path, monkeypatch):
    run = _run(tmp_path)
    assert run.train_s.values_checked() and run.train_s._finite is True
    from spikefuse.train import model as model_mod

    finite = []
    real = model_mod.check_tensor

    def spy(name, x, **kw):
        finite.append(kw.get("finite", True))
        return real(name, x, **kw)

    monkeypatch.setattr(model_mod, "check_tensor", spy)
    stats = loop._run_epoch(run, 0, False)
    assert finite == [False] * 3  # 3 batches, none scanned again
    assert stats[2] == 48


def test_split_with_nan_keeps_the_per_batch_check(tmp_path):
    run = _run(tmp_path)
    run.train_s._finite = None
    run.train_s.x[20, 1] = float("nan")  # in the order's second or third batch
    assert not run.train_s.values_checked()
    with pytest.raises(ValueError, match="x: contains NaN or inf values"):
        loop._run_epoch(run, 0, False)


def test_model_skips_its_nan_scan_only_inside_trusted_inputs():
    model = tr.build_model(TrainConfig(hidden=4, T=3).resolve(), 4, 3)
    x = torch.full((2, 4), float("nan"))
    with pytest.raises(ValueError, match="^x: contains NaN or inf"):
        model(x)
    with L.trusted_inputs():
        assert L.inputs_trusted()
        try:
            model(x)
        except ValueError as e:  # a neuron may still refuse the NaN it is given, by its own name
            assert not str(e).startswith("x: ")
        with pytest.raises(ValueError, match="expected 4 input features"):
            model(torch.rand(2, 5))  # the shape checks stay
    assert not L.inputs_trusted()


def test_tally_on_device_equals_the_python_sums():
    torch.manual_seed(0)
    host, dev = loop._Tally(torch.device("cpu")), loop._Tally(torch.device("cpu"), on_device=True)
    for n in (16, 16, 7):
        logits, y = torch.randn(n, 3), torch.randint(0, 3, (n,))
        loss = F.cross_entropy(logits, y)
        host.add(loss, logits, y, n)
        dev.add(loss, logits, y, n)
    assert isinstance(dev.loss, torch.Tensor) and not isinstance(host.loss, torch.Tensor)
    assert dev.totals() == host.totals()  # float64 on the device: the same sums, bit for bit


def test_split_batch_takes_a_list_or_an_index_tensor(tmp_path):
    run = _run(tmp_path)
    xa, ya = run.train_s.batch([3, 1, 4])
    xb, yb = run.train_s.batch(torch.tensor([3, 1, 4]))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
