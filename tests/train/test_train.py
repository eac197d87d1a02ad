"""The training job: run folder artifacts, resume == uninterrupted, checkpoint integrity,
configuration validation, model construction for every neuron family."""
import json
import tomllib
from pathlib import Path

import pytest
import torch

from spikefuse import train as tr
from spikefuse.train import CheckpointError, TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tiny(out, **kw):
    base = dict(epochs=2, max_samples=96, hidden=16, batch_size=16, T=6, out=str(out), plots=False)
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg, **kw):
    return tr.train(cfg, progress=False, verbose=False, **kw)


# ------------------------------------------------------------------ end to end
def test_train_end_to_end_writes_every_artifact(tmp_path):
    out = tmp_path / "run"
    res = _run(_tiny(out, plots=True))
    for name in ("config.toml", "metrics.jsonl", "metrics.json", "checkpoint.safetensors",
                 "curves.png", "raster.png", "rates.png"):
        assert (out / name).is_file(), name
    for png in ("curves.png", "raster.png", "rates.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert not list(out.glob("*.tmp"))

    cfg = tomllib.loads((out / "config.toml").read_text())["train"]
    assert cfg["data"] == "yinyang" and cfg["epochs"] == 2 and cfg["hidden"] == 16
    assert cfg["gradient"] == "atan"  # resolved default is written
    assert TrainConfig.from_dict(cfg).resolve() == TrainConfig.from_dict(cfg)

    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    recs = [json.loads(s) for s in lines]
    assert [r["epoch"] for r in recs] == [1, 2]
    for r in recs:
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "firing_rates"} <= set(r)
        assert len(r["firing_rates"]) == 1 and 0.0 <= r["firing_rates"][0] <= 1.0

    final = json.loads((out / "metrics.json").read_text())
    assert final["epochs_completed"] == 2 and final["finished"]
    assert final["test_acc"] == res["test_acc"] and 0.0 <= final["test_acc"] <= 1.0

    ck = tr.load_checkpoint(out / "checkpoint.safetensors")
    assert ck["epoch"] == 2 and len(ck["history"]) == 2
    model = tr.build_model(TrainConfig.from_dict(ck["config"]).resolve(), 4, 3)
    model.load_state_dict(ck["model"])


def test_training_learns_yinyang_quickly(tmp_path):
    # the full training split, a few epochs: far above chance (1/3)
    res = _run(TrainConfig(epochs=3, hidden=64, out=str(tmp_path / "r"), plots=False))
    assert res["test_acc"] > 0.7
    hist = [json.loads(s) for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_resume_equals_uninterrupted(tmp_path):
    full = _run(_tiny(tmp_path / "full", epochs=3))
    part = _run(_tiny(tmp_path / "part", epochs=3), stop_after_epoch=1)
    assert part["epochs_completed"] == 1 and not part["finished"]
    # a different process state in between must not matter (RNG restored from the checkpoint)
    torch.manual_seed(1234)
    torch.rand(100)
    resumed = _run(TrainConfig(out=str(tmp_path / "part")), resume=True)
    assert resumed["finished"] and resumed["epochs_completed"] == 3
    for k in ("test_acc", "test_loss", "best_val_acc", "final_val_acc"):
        assert resumed[k] == full[k], k
    a = tr.load_checkpoint(tmp_path / "full" / "checkpoint.safetensors")
    b = tr.load_checkpoint(tmp_path / "part" / "checkpoint.safetensors")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda h: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3]


def test_resume_from_checkpoint_path_and_finished_run(tmp_path):
    _run(_tiny(tmp_path / "r", epochs=1))
    res = _run(TrainConfig(), resume=str(tmp_path / "r" / "checkpoint.safetensors"))
    assert res["epochs_completed"] == 1 and res["out"] == str(tmp_path / "r")


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_roundtrip_and_atomic_write(tmp_path):
    p = tmp_path / "c.pt"
    tr.save_checkpoint(p, {"a": torch.arange(3), "cfg": {"x": 1}})
    tr.save_checkpoint(p, {"a": torch.arange(4), "cfg": {"x": 2}})  # replaces
    d = tr.load_checkpoint(p)
    assert torch.equal(d["a"], torch.arange(4)) and d["cfg"] == {"x": 2}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.pt"]


def test_corrupt_truncated_foreign_checkpoints_raise_clear_errors(tmp_path):
    p = tmp_path / "c.pt"
    tr.save_checkpoint(p, {"w": torch.randn(100)})
    data = p.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        tr.load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "head.pt").write_bytes(data[:10])
    with pytest.raises(CheckpointError, match="truncated"):
        tr.load_checkpoint(tmp_path / "head.pt")
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        tr.load_checkpoint(tmp_path / "flip.pt")
    torch.save({"w": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a spikefuse checkpoint"):
        tr.load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="file not found"):
        tr.load_checkpoint(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, ValueError)


def test_resume_with_corrupt_checkpoint_fails_before_training(tmp_path):
    out = tmp_path / "r"
    _run(_tiny(out, epochs=1))
    data = (out / "checkpoint.safetensors").read_bytes()
    (out / "checkpoint.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        _run(TrainConfig(out=str(out)), resume=True)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _run(TrainConfig(out=str(tmp_path / "empty")), resume=True)
    with pytest.raises(ValueError, match="resume: needs the run folder"):
        _run(TrainConfig(), resume=True)


# ------------------------------------------------------------------ configuration
def test_config_defaults_per_dataset_and_neuron():
    c = TrainConfig().resolve()
    assert (c.data, c.neuron, c.gradient, c.optimizer) == ("yinyang", "lif", "atan", "adam")
    assert c.epochs == tr.DATA_DEFAULTS["yinyang"]["epochs"]
    assert TrainConfig(neuron="cuba").resolve().gradient == "superspike"
    assert TrainConfig(neuron="eventprop").resolve().gradient == "eventprop"
    assert TrainConfig(data="Yin-Yang").resolve().data == "yinyang"
    assert TrainConfig(data="digits").resolve().hidden == tr.DATA_DEFAULTS["digits"]["hidden"]


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(data="mnist"), ValueError, "data: expected one of"),
    (dict(data=3), TypeError, "data: expected a string"),
    (dict(neuron="hh"), ValueError, "neuron: expected one of"),
    (dict(gradient="relu"), ValueError, "gradient: expected one of"),
    (dict(neuron="cuba", gradient="atan"), ValueError, "neuron 'cuba' supports"),
    (dict(neuron="lif", gradient="eventprop"), ValueError, "neuron 'lif' supports"),
    (dict(epochs=-1), ValueError, "epochs: must be >= 1"),
    (dict(epochs=0), ValueError, "epochs: must be >= 1"),
    (dict(epochs=2.5), TypeError, "epochs: expected an integer"),
    (dict(hidden=0), ValueError, "hidden: must be >= 1"),
    (dict(layers=True), TypeError, "layers: expected an integer"),
    (dict(T=0), ValueError, "T: must be >= 1"),
    (dict(batch_size=-4), ValueError, "batch_size: must be >= 1"),
    (dict(seed=-1), ValueError, "seed: must be >= 0"),
    (dict(max_samples=0), ValueError, "max_samples: must be >= 1"),
    (dict(lr=0.0), ValueError, "lr: must be > 0"),
    (dict(lr=float("nan")), TypeError, "lr: expected a finite number"),
    (dict(lr="fast"), TypeError, "lr: expected a finite number"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay: must be >= 0"),
    (dict(tau=0.5), ValueError, "tau: must be >= 1"),
    (dict(input_gain=0.0), ValueError, "input_gain: must be > 0"),
    (dict(optimizer="lbfgs"), ValueError, "optimizer: expected one of"),
    (dict(schedule="step"), ValueError, "schedule: expected one of"),
    (dict(readout="argmax"), ValueError, "readout: expected one of"),
    (dict(device="tpu"), ValueError, "device: expected one of"),
    (dict(backend="cuda"), ValueError, "backend: expected one of"),
    (dict(amp="yes"), TypeError, "amp: expected true/false"),
    (dict(plots=1), TypeError, "plots: expected true/false"),
    (dict(out=5), TypeError, "out: expected a folder path"),
])
def test_config_validation_errors(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        TrainConfig(**kw).resolve()


def test_config_file_and_from_dict(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('data = "digits"\n[train]\nbatch-size = 8\nepochs = 3\nno-plots = true\n')
    d = tr.load_config_file(p)
    c = TrainConfig.from_dict(d).resolve()
    assert (c.data, c.batch_size, c.epochs, c.plots) == ("digits", 8, 3, False)
    with pytest.raises(ValueError, match="unknown key 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(TypeError, match="config: expected a table"):
        TrainConfig.from_dict([1])
    (tmp_path / "bad.toml").write_text("epochs = = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        tr.load_config_file(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="file not found"):
        tr.load_config_file(tmp_path / "nope.toml")
    # the TOML we write reads back to the same config
    c2 = TrainConfig(out="runs/x").resolve()
    (tmp_path / "w.toml").write_text(tr.config_to_toml(c2))
    assert TrainConfig.from_dict(tr.load_config_file(tmp_path / "w.toml")) == c2


def test_cuda_requested_without_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA device"):
        _run(_tiny(tmp_path / "r", device="cuda"))


def test_batch_size_must_split_over_processes(monkeypatch, tmp_path):
    # simulate the check only (no process group): world size read from the environment
    monkeypatch.setattr(tr.loop, "init_distributed", lambda device="auto": tr.DistInfo(0, 3, 0))
    with pytest.raises(ValueError, match="batch_size: must be divisible"):
        _run(_tiny(tmp_path / "r", batch_size=16))


# ------------------------------------------------------------------ models of every family
@pytest.mark.parametrize("neuron", ["lif", "if", "plif", "cuba", "loihi-cuba", "eventprop"])
def test_model_of_every_neuron_family_trains_one_step(neuron):
    cfg = TrainConfig(neuron=neuron, hidden=12, layers=2, T=8).resolve()
    torch.manual_seed(0)
    model = tr.build_model(cfg, 4, 3)
    x = torch.rand(5, 4) * 4
    logits, rec = model(x, record=True)
    assert logits.shape == (5, 3)
    assert len(rec["spikes"]) == 2 and rec["spikes"][0].shape == (8, 5, 12)
    assert rec["output"].shape == (8, 5, 3)
    if neuron in ("lif", "if", "plif", "cuba", "eventprop"):  # these expose a membrane trace
        assert rec["membranes"][0].shape == (8, 5, 12)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1])).backward()
    first = list(model.hidden[0].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in first), "no gradient reached layer 1"
    assert model.output.weight.grad is not None
    # a second forward starts from a fresh state: same input, same output
    torch.testing.assert_close(model(x), model(x))



def test_eventprop_model_hidden_gradient_has_the_scale_of_the_surrogate_gradient():
    """The EventProp layer reads the readout's per-step gradient dL/dz[t] as -dL/dt_k in the
    unit of its dt; with dt = 1e-6 the hidden-weight gradient came out ~1e6 times smaller
    than the surrogate gradient of the same network (ratio ~1e-4, per element near Adam's eps;
    some seeds stalled near 65 % on Yin-Yang). Same init, same forward: with time in steps the
    EventProp gradient is ~1e2 times the surrogate one here (its 1/a_m factor is large for
    neurons just above threshold), so the ratio must lie well inside (1e-2, 1e4)."""
    grads, logits = {}, {}
    x = torch.rand(64, 4) * 3
    y = torch.arange(64) % 3
    for gradient in ("eventprop", "superspike"):
        cfg = TrainConfig(neuron="eventprop", gradient=gradient, hidden=32, T=10).resolve()
        torch.manual_seed(0)
        model = tr.build_model(cfg, 4, 3)
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        logits[gradient] = out.detach()
        grads[gradient] = model.hidden[0].weight.grad.norm().item()
    torch.testing.assert_close(logits["eventprop"], logits["superspike"])  # same forward
    assert grads["superspike"] > 0
    ratio = grads["eventprop"] / grads["superspike"]
    assert 1e-2 < ratio < 1e4, f"EventProp / surrogate hidden-gradient norm ratio {ratio:.3g}"



def test_eventprop_training_uses_one_thread_and_restores_the_setting(tmp_path, monkeypatch):
    seen = []
    real = tr.build_model

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(tr.loop, "build_model", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _run(_tiny(tmp_path / "ep", neuron="eventprop", epochs=1, device="cpu"))
        assert seen == [1] and torch.get_num_threads() == 2
        _run(_tiny(tmp_path / "lif", epochs=1, device="cpu", threads=2))
        assert seen == [1, 2] and torch.get_num_threads() == 2  # other neurons: cfg.threads
    finally:
        torch.set_num_threads(before)

def test_eventprop_yinyang_learning_rate_default_only_for_eventprop():
    assert TrainConfig(neuron="eventprop").resolve().lr == 1e-2
    # the surrogate run of the same network keeps the data set's default
    assert TrainConfig(neuron="eventprop", gradient="superspike").resolve().lr == tr.DATA_DEFAULTS["yinyang"]["lr"]
    assert TrainConfig(neuron="eventprop", lr=3e-2).resolve().lr == 3e-2  # explicit value wins
    assert TrainConfig().resolve().lr == tr.DATA_DEFAULTS["yinyang"]["lr"]  # LIF unchanged
    assert TrainConfig(neuron="eventprop", data="digits").resolve().lr == tr.DATA_DEFAULTS["digits"]["lr"]

def test_model_sequence_input_and_count_readout():
    cfg = TrainConfig(hidden=10, readout="count", T=None).resolve()
    model = tr.build_model(cfg, 6, 2, time_first=True)
    x = torch.rand(7, 3, 2, 3)  # (T, B, 2, 3) -> flattened to 6 features
    logits = model(x)
    assert logits.shape == (3, 2)
    assert torch.equal(logits, logits.round())  # spike counts


def test_amp_path_runs_on_cpu(tmp_path):
    res = _run(_tiny(tmp_path / "r", epochs=1, amp=True))
    assert 0.0 <= res["test_acc"] <= 1.0


def test_digits_data_path(tmp_path):
    res = _run(_tiny(tmp_path / "d", data="digits", epochs=1, max_samples=64))
    assert res["data"] == "digits" and 0.0 <= res["test_acc"] <= 1.0


def test_model_input_validation():
    model = tr.build_model(TrainConfig(hidden=4, T=3).resolve(), 4, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        model(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="expected 4 input features"):
        model(torch.rand(2, 5))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        model(torch.rand(4))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        model([[0.0] * 4])


def test_time_first_data_path(tmp_path):
    # randman samples are (T, n_units) spike rasters: the time-first path of data and model
    res = _run(_tiny(tmp_path / "rm", data="randman", epochs=1, max_samples=32, T=None))
    assert res["data"] == "randman" and 0.0 <= res["test_acc"] <= 1.0
    from spikefuse.data import get_dataset

    _, info = get_dataset("randman", "test")
    ck = tr.load_checkpoint(tmp_path / "rm" / "checkpoint.safetensors")
    assert ck["config"]["T"] == info.n_steps
    assert ck["model"]["hidden.0.synapse.weight"].shape == (16, info.n_inputs)


def test_checkpoint_with_valid_checksum_but_garbage_payload(tmp_path):
    # a manifest whose checksum is right but whose tensor reference points nowhere
    import json

    from spikefuse.train import checkpoint as ckm
    from safetensors.torch import save

    tensors = {"w": torch.ones(2)}
    header, data = ckm._split_file(save(tensors))
    header.pop("__metadata__", None)
    manifest = {"format": ckm._FORMAT, "version": ckm._VERSION, "run_id": "x", "epoch": 1,
                "tree": {"w": {"__tensor__": "nowhere"}}}
    manifest["sha256"] = ckm._digest(manifest, header, data)
    p = tmp_path / "g.safetensors"
    p.write_bytes(save(tensors, metadata={"spikefuse": json.dumps(manifest)}))
    with pytest.raises(CheckpointError, match="could not be decoded"):
        tr.load_checkpoint(p)


def test_data_root_validation():
    with pytest.raises(TypeError, match="data_root: expected a folder path"):
        TrainConfig(data_root=3).resolve()
    assert TrainConfig(data_root=Path("x")).resolve().data_root == "x"


def test_missing_matplotlib_skips_plots_but_keeps_results(tmp_path, monkeypatch, capsys):
    import spikefuse.plots as plots

    def no_mpl(*a, **k):
        raise ImportError("plots need matplotlib: pip install 'spikefuse[plots]'")

    monkeypatch.setattr(plots, "plot_curves", no_mpl)
    out = tmp_path / "r"
    res = _run(_tiny(out, plots=True))
    assert (out / "metrics.json").is_file() and (out / "checkpoint.safetensors").is_file()
    assert not (out / "curves.png").exists()
    assert 0.0 <= res["test_acc"] <= 1.0
    assert "no plots" in capsys.readouterr().err
