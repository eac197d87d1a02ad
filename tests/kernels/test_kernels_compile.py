"""GPU-readiness without a GPU: compile every Triton scan kernel ahead of time for sm_90 (H100)
with Triton's bundled ptxas, in a subprocess without TRITON_INTERPRET, and check the PTX of the
forward kernels for the properties bit-exactness relies on (IEEE division, no FMA contraction).

The kernel list is generated: every registered Triton ScanSpec (``kernels.scan.SPECS``, names
ending in ``_triton``) and the AOT cases its module records beside it
(``kernels.triton.common.aot``), so a new spec is covered, and one without cases fails."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

SCRIPT = textwrap.dedent(r'''
    import json
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import spikefuse.kernels.triton  # registers every Triton ScanSpec and its AOT cases
    from spikefuse.kernels import scan
    from spikefuse.kernels.triton.common import AOT, aot_signature

    target = GPUTarget("cuda", 90, 32)
    out = {"specs": sorted(n for n in scan.SPECS if n.endswith("_triton")), "kernels": {}}
    done = {}
    for spec in out["specs"]:
        for label, fn, consts, fusion, types in AOT.get(spec, []):
            key = (fn.__name__, tuple(sorted(consts.items())), fusion)
            if key not in done:
                sig = aot_signature(fn, consts, types)
                k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=target,
                                   options={"num_warps": 4, "enable_fp_fusion": fusion})
                ptx = k.asm["ptx"]
                done[key] = {"fma": ptx.count("fma.rn.f32"), "div_full": ptx.count("div.full.f32"),
                             "div_rn": ptx.count("div.rn.f32"), "cubin": len(k.asm.get("cubin", b"")),
                             "fusion": fusion}
            out["kernels"][f"{spec}:{label}"] = done[key]
    print(json.dumps(out))
''')

#: kernels whose forward divides (IEEE division, div.rn, is what makes them bit-equal to torch)
DIVIDES = {"lif_fwd", "res_fwd", "sd_fwd"}


def _ptxas_available() -> bool:
    nv = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    return nv.exists() or shutil.which("ptxas") is not None


@pytest.mark.skipif(not _ptxas_available(), reason="Triton's bundled ptxas not found")
def test_all_kernels_compile_for_sm90():
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["specs"], "no Triton ScanSpec registered"
    kernels = res["kernels"]
    for spec in res["specs"]:  # every registered spec brings a forward and a backward case
        labels = {k.split(":")[1] for k in kernels if k.split(":")[0] == spec}
        assert any(lb.endswith("_fwd") for lb in labels) and any(lb.endswith("_bwd") for lb in labels), spec
    for name, info in kernels.items():
        assert info["cubin"] > 0, name
        if name.endswith("_fwd"):  # forward kernels: no contraction, IEEE division
            assert info["fma"] == 0 and info["div_full"] == 0, (name, info)
        if name.split(":")[1] in DIVIDES:
            assert info["div_rn"] > 0, name
    assert DIVIDES <= {k.split(":")[1] for k in kernels}
