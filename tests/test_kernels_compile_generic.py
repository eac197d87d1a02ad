"""The generic Triton scan template compiled ahead of time for sm_90 (H100) without a GPU, in a
subprocess without TRITON_INTERPRET, next to the per-family LIF / CUBA kernels with the same
specialisation (bf16 I/O, every output and gradient present): both give cubins, the forwards
have no FMA contraction and (LIF) IEEE division, and each generic kernel's PTX has the very
same instructions as the per-family kernel's, counted per opcode (the step and VJP are
inlined: the same arithmetic, loads and stores; in particular the same floating-point ops that
bit-exactness relies on)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
pytest.importorskip("spikefuse.kernels.triton.generic", reason="needs triton>=3.4")

SCRIPT = textwrap.dedent(r'''
    import collections, json, re
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from spikefuse.kernels.triton import cuba, generic as G, lif

    P, IO, I8, I32 = "*fp32", "*bf16", "*i8", "i32"

    def cx(v):
        return ("constexpr", v)

    def signature(fn, args):
        """args: name -> type, tuple of types (None: a None pointer, specialised away) or cx(v);
        names not given are constexprs from ``consts`` of the per-family kernels."""
        sig, consts = {}, {}
        for i, name in enumerate(fn.arg_names):
            a = args.get(name, cx(None))
            if isinstance(a, tuple) and a[:1] == ("constexpr",):
                sig[name] = "constexpr"
                consts[(i,)] = a[1]
            elif isinstance(a, tuple):
                sig[name] = tuple("constexpr" if e is None else e for e in a)
                consts.update({(i, j): None for j, e in enumerate(a) if e is None})
            else:
                sig[name] = a
        return sig, consts

    def stats(fn, args, fusion):
        sig, consts = signature(fn, args)
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts),
                           target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "enable_fp_fusion": fusion})
        ptx = k.asm["ptx"]
        ops = collections.Counter(re.findall(r"^\s+(?:@!?%p\d+\s+)?([a-z][a-z0-9_.]*)", ptx, re.M))
        return {"cubin": len(k.asm.get("cubin", b"")), "fma": ptx.count("fma.rn.f32"),
                "div_full": ptx.count("div.full.f32"), "div_rn": ptx.count("div.rn.f32"), "ops": ops}

    def named(names, ty):
        return {n: ty for n in names.split()}

    B = cx(512)
    old = {
        "lif_fwd": (lif._lif_fwd, dict(named("tau_ptr vth_ptr vr_ptr v0_ptr vlast_ptr h_ptr vseq_ptr", P),
            x_ptr=IO, spk_ptr=IO, T=I32, M=I32, KIND=cx(1), HARD=cx(True), STORE_H=cx(True),
            STORE_V=cx(True), BLOCK=B), False),
        "lif_bwd": (lif._lif_bwd, dict(named("h_ptr gvseq_ptr ghseq_ptr gvlast_ptr tau_ptr vth_ptr vr_ptr "
            "v0_ptr gv0_ptr gtau_ptr gvth_ptr gvr_ptr", P), x_ptr=IO, gs_ptr=IO, gx_ptr=IO, T=I32, M=I32,
            a0="fp32", a1="fp32", KIND=cx(1), HARD=cx(False), DETACH=cx(False), SG=cx(1), HAS_GS=cx(True),
            HAS_GVSEQ=cx(True), HAS_GHSEQ=cx(True), HAS_GVLAST=cx(True), NEED_PARAMS=cx(True), BLOCK=B), True),
        "cuba_fwd": (cuba._cuba_fwd, dict(named("v_ptr i_ptr leak_ptr reset_ptr thr_ptr am_ptr cs_ptr R_ptr", P),
            x_ptr=IO, z_ptr=IO, m_ptr=I8, T=I32, M=I32, REFRAC=cx(True), STORE_M=cx(True), BLOCK=B), False),
        "cuba_bwd": (cuba._cuba_bwd, dict(named("v_ptr i_ptr gv_ptr gi_ptr leak_ptr reset_ptr thr_ptr am_ptr "
            "cs_ptr alpha_ptr gleak_ptr greset_ptr gthr_ptr gam_ptr gcs_ptr", P), m_ptr=I8, gz_ptr=IO,
            gx_ptr=IO, T=I32, M=I32, REFRAC=cx(True), HAS_GZ=cx(True), HAS_GV=cx(True), HAS_GI=cx(True),
            NEED_PARAMS=cx(True), BLOCK=B), False),
    }
    lf, cf = G._LIF.family, G._CUBA.family
    gen = {
        "lif_fwd": (G.scan_fwd, dict(x_ptr=IO, out_ptrs=(IO, P, P), state0_ptrs=(P,), last_ptrs=(P,),
            param_ptrs=(P,) * 3, T=I32, M=I32, STEP=cx(lf.step), INIT=cx(None), OPT=cx((1, True)),
            P_OTHER=cx(lf.fwd_other), BLOCK=B), False),
        "lif_bwd": (G.scan_bwd, dict(lag_ptrs=(P,), cur_ptrs=(IO,), gout_ptrs=(IO, P, P), glast_ptrs=(P,),
            state0_ptrs=(P,), param_ptrs=(P,) * 3, scal=("fp32", "fp32"), gx_ptr=IO, gstate0_ptrs=(P,),
            gparam_ptrs=(P,) * 3, T=I32, M=I32, VJP=cx(lf.vjp), OPT=cx((1, False, False, 1)),
            P_OTHER=cx(lf.bwd_other), BLOCK=B), lf.bwd_fusion),
        "cuba_fwd": (G.scan_fwd, dict(x_ptr=IO, out_ptrs=(IO, P, P, I8), state0_ptrs=(None, None),
            last_ptrs=(), param_ptrs=(P,) * 6, T=I32, M=I32, STEP=cx(cf.step), INIT=cx(cf.init),
            OPT=cx((True,)), P_OTHER=cx(cf.fwd_other), BLOCK=B), False),
        "cuba_bwd": (G.scan_bwd, dict(lag_ptrs=(P, P), cur_ptrs=(I8,), gout_ptrs=(IO, P, P),
            glast_ptrs=(None, None), state0_ptrs=(None,), param_ptrs=(P,) * 6, scal=("fp32",), gx_ptr=IO,
            gstate0_ptrs=(), gparam_ptrs=(P,) * 5, T=I32, M=I32, VJP=cx(cf.vjp), OPT=cx((True,)),
            P_OTHER=cx(cf.bwd_other), BLOCK=B), cf.bwd_fusion),
    }
    print(json.dumps({k: {"old": stats(*old[k]), "generic": stats(*gen[k])} for k in old}))
''')

FLOAT_TYPES = (".f32", ".f16", ".bf16", ".f64")


def _ptxas_available() -> bool:
    nv = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    return nv.exists() or shutil.which("ptxas") is not None


def _float_ops(ops: dict) -> dict:
    return {op: n for op, n in ops.items() if any(t in op for t in FLOAT_TYPES)}


def _compile_report() -> dict:
    """SCRIPT's JSON, run against this checkout's src/ without the interpreter."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_DEFAULT_FP_FUSION="1", PYTHONPATH=os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _ptxas_available(), reason="Triton's bundled ptxas not found")
def test_generic_kernels_compile_for_sm90_like_the_per_family_ones():
    res = _compile_report()
    assert set(res) == {"lif_fwd", "lif_bwd", "cuba_fwd", "cuba_bwd"}
    for name, pair in res.items():
        old, gen = pair["old"], pair["generic"]
        assert gen["cubin"] > 0 and old["cubin"] > 0, name
        assert _float_ops(gen["ops"]), name
        assert _float_ops(gen["ops"]) == _float_ops(old["ops"]), name  # the arithmetic first: clearer failure
        assert gen["ops"] == old["ops"], name
    # forwards: no contraction, IEEE division (bit-equal to torch's elementwise ops)
    for name in ("lif_fwd", "cuba_fwd"):
        assert res[name]["generic"]["fma"] == 0 and res[name]["generic"]["div_full"] == 0, name
    assert res["lif_fwd"]["generic"]["div_rn"] > 0
