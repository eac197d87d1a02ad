"""The family registry (spikefuse.families): every record resolves, is tested, runs, and
docs/adding-a-neuron.md lists exactly the registry's families."""
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from spikefuse import families, kernels

ROOT = Path(__file__).resolve().parents[1]
FAMS = list(families.FAMILIES.values())
IDS = [f.id for f in FAMS]


def _tests_text() -> str:
    return "\n".join(p.read_text() for p in sorted(ROOT.glob("tests/**/*.py")) if p.name != "test_families.py")


def _attr(path: str) -> str:
    return path.partition(":")[2]


@pytest.mark.parametrize("fam", FAMS, ids=IDS)
def test_record_resolves(fam):
    multistep, step = families.load(fam.functional), families.load(fam.step)
    assert callable(multistep) and callable(step)
    for cls in (families.load(fam.params), families.load(fam.state)):
        assert issubclass(cls, tuple) and hasattr(cls, "_fields"), cls  # NamedTuple
    module = families.load(fam.module)
    assert isinstance(module, type) and issubclass(module, torch.nn.Module)
    if fam.kernels:  # a family with kernels dispatches through backend=
        assert "backend" in inspect.signature(multistep).parameters
        assert fam.kernel and not fam.kernel.startswith("_")
    if fam.train:
        assert fam.train.default_gradient in fam.train.gradients
    if fam.nir is None:
        assert fam.nir_note, "a family NIR cannot express says why"


@pytest.mark.parametrize("fam", FAMS, ids=IDS)
def test_tests_mention_the_family(fam):
    text = _tests_text()
    assert re.search(rf"\b{_attr(fam.functional)}\b", text), f"no test calls {fam.functional}"
    mod, _, cls = fam.module.partition(":")
    if cls == "Neuron":  # lava layout: the test imports the model's module
        parent, _, leaf = mod.rpartition(".")
        assert re.search(rf"from {re.escape(parent)} import [\w, ]*\b{leaf}\b", text), f"no test imports {mod}"
    else:
        assert re.search(rf"\b{cls}\(", text), f"no test builds {fam.module}"


@pytest.mark.parametrize("fam", [f for f in FAMS if f.bench], ids=[f.id for f in FAMS if f.bench])
def test_reference_path_and_module_run(fam):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 2, 6, generator=g) * 0.8 + 0.6) * fam.bench.case_scale
    case = families.load(fam.bench.case)("reference", 4)
    out = case.run(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert 0 < case.bytes_fwd < case.bytes_fwdbwd
    module = families.load(fam.bench.module)("reference", 6)
    inner = getattr(module, "inner", module)  # resonators take (real, imag): wrapped
    assert isinstance(inner, families.load(fam.module))
    y = module(torch.rand(5, 2, 6, generator=g) * fam.bench.module_scale)
    y = y[0] if isinstance(y, tuple) else y
    assert y.shape == x.shape and torch.isfinite(y).all()


KERNEL_CASES = [(f, b) for f in FAMS for b in f.kernels]


@pytest.mark.parametrize("fam,backend", KERNEL_CASES, ids=[f"{f.id}-{b}" for f, b in KERNEL_CASES])
def test_listed_kernels_register(fam, backend):
    families.load(fam.kernels[backend])  # the module the registry names imports ...
    assert backend in kernels.available(fam.kernel)  # ... and registers the key
    assert fam.kernels[backend] in families.kernel_modules()


@pytest.mark.parametrize("fam", [f for f in FAMS if "cpu" in f.kernels], ids=[f.id for f in FAMS if "cpu" in f.kernels])
def test_cpu_kernels_agree_with_reference(fam):
    x = (torch.randn(6, 2, 5, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.6) * fam.bench.case_scale
    assert torch.allclose(families.load(fam.bench.case)("cpu", 4).run(x),
                          families.load(fam.bench.case)("reference", 4).run(x), atol=1e-5)


def test_every_registered_kernel_has_a_family():
    kernels._load_backends()
    keys = {f.kernel for f in FAMS}
    stray = {fam for (fam, _) in kernels._REGISTRY if fam not in keys and fam != "fake"}
    assert not stray, f"kernels registered without a families.py record: {stray}"


@pytest.mark.parametrize("fam", [f for f in FAMS if f.train], ids=[f.id for f in FAMS if f.train])
def test_train_factory_builds_a_module(fam):
    cfg = SimpleNamespace(tau=2.0, backend=None, gradient=fam.train.default_gradient)
    make = families.load(fam.train.make)
    m = make(cfg, 3, 4) if fam.train.owns_synapse else make(cfg)
    assert isinstance(m, families.load(fam.module))


def test_lookup_by_id_alias_and_kernel_key():
    assert families.get("loihi-cuba") is families.get("loihi.cuba") is families.get("loihi_cuba")
    assert families.get("cuba_refractory").id == "cuba-refractory"
    assert families.get("cuba").id == "cuba"  # the kernel key shared with cuba-refractory
    with pytest.raises(ValueError, match="name: unknown neuron family 'hh'"):
        families.get("hh")
    with pytest.raises(TypeError, match="name"):
        families.get(3)
    names = families.train_names()
    assert "loihi-cuba" in names and "loihi.cuba" in names and "loihi.alif" not in names


def _doc_rows():
    text = (ROOT / "docs" / "adding-a-neuron.md").read_text()
    block = text.split("<!-- families:")[1].split("<!-- /families -->")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines()
            if line.startswith("| `")]
    return {re.match(r"`([^`]+)`", r[0]).group(1): r for r in rows}


def _doc_module(path: str) -> str:
    mod, _, cls = path.partition(":")
    return f"{mod[len('spikefuse.'):]}.{cls}" if ".loihi." in mod else f"neuron.{cls}"


def test_docs_list_matches_registry():
    rows = _doc_rows()
    assert list(rows) == IDS
    for fam in FAMS:
        ident, module, kern, train, nir = rows[fam.id]
        assert re.findall(r"`([^`]+)`", ident) == [fam.id, *fam.aliases]
        assert module.strip("`") == _doc_module(fam.module)
        assert kern == (", ".join(sorted(fam.kernels)) or "-")
        assert train == ("yes" if fam.train else "-")
        assert (nir == "refused") == (fam.nir is None) and (fam.nir is None or fam.nir in nir)


def test_docs_name_the_files_and_the_one_edit():
    text = (ROOT / "docs" / "adding-a-neuron.md").read_text()
    for path in ("src/spikefuse/functional/foo.py", "src/spikefuse/kernels/triton/foo.py",
                 "src/spikefuse/neuron/foo.py", "src/spikefuse/families.py"):
        assert path in text
        assert (ROOT / path.replace("foo", "lif")).exists() or path.endswith("families.py")


def test_train_choices_defaults_and_factory_come_from_the_registry():
    from spikefuse import train as tr
    from spikefuse.train import model as tm

    trainable = [f for f in FAMS if f.train]
    assert list(tr.NEURONS) == [f.id for f in trainable]
    assert tr.DEFAULT_GRADIENT == {f.id: f.train.default_gradient for f in trainable}
    assert tr.NEURON_GRADIENTS == {f.id: f.train.gradients for f in trainable}
    for name in families.train_names():
        cfg = tr.TrainConfig(neuron=name.upper()).resolve()
        assert cfg.neuron == families.get(name).id and cfg.gradient == families.get(name).train.default_gradient
    assert tr.TrainConfig(neuron="loihi_cuba").resolve().neuron == "loihi.cuba"
    cfg = tr.TrainConfig(neuron="loihi-cuba", hidden=4).resolve()
    model = tm.SpikingClassifier(3, 2, cfg)
    assert isinstance(model.hidden[0].neuron, families.load(families.get("loihi.cuba").module))
    with pytest.raises(ValueError, match="neuron: expected one of"):
        tr.TrainConfig(neuron="loihi.alif").resolve()  # in the registry, but not trainable
