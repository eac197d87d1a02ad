"""`.ci/run` runs the README's test command verbatim, and the peers it installs are pinned
test-only dependencies that cannot replace torch (requirements-peers.txt, --no-deps)."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    quick = ROOT.joinpath("README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.rstrip().endswith("-m pytest")]
    assert len(lines) == 1, lines
    return lines[0].strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = _readme_test_command()
    ci = [ln.strip() for ln in ROOT.joinpath(".ci/run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert command in ci


def test_the_test_command_installs_the_peers_without_their_dependencies():
    command = _readme_test_command()
    assert "pip install --no-deps -r requirements-peers.txt" in command
    # the peers come after the dev extra, so the pinned torch is installed first
    assert command.index('-e ".[dev]"') < command.index("requirements-peers.txt")


def test_every_peer_is_pinned_and_none_is_torch():
    reqs = [ln.split("#", 1)[0].strip() for ln in ROOT.joinpath("requirements-peers.txt").read_text().splitlines()]
    reqs = [r for r in reqs if r]
    assert {r.split("==")[0] for r in reqs} >= {"norse", "sinabs", "spikingjelly"}
    for r in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r), r
        assert not r.lower().startswith(("torch", "nir")), r  # those come from the dev extra
