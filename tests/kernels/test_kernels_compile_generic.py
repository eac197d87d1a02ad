"""The generic Triton scan template compiled ahead of time for sm_90 (H100) without a GPU, in a
subprocess without TRITON_INTERPRET, next to the per-family LIF / CUBA kernels with the same
specialisation (bf16 I/O, every output and gradient present): both give cubins, the forwards
have no FMA contraction and (LIF) IEEE division, and each generic kernel's PTX has the very
same instructions as the per-family kernel's, counted per opcode (the step and VJP are
inlined: the same arithmetic, loads and stores; in particular the same floating-point ops that
bit-exactness relies on). ``SPIKEFUSE_LONG=1`` checks all 162 specialisations (every option,
surrogate, present/absent output and gradient, I/O dtype) the same way."""
import itertools
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
    import collections, json, re, sys
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
    lf, cf = G._LIF.family, G._CUBA.family

    def opt(ty, on):
        return ty if on else None

    def lif_fwd(kind, hard, store_h, store_v, io, strict=False):
        old = (lif._lif_fwd, dict(named("tau_ptr vth_ptr vr_ptr v0_ptr vlast_ptr h_ptr vseq_ptr", P),
            x_ptr=io, spk_ptr=io, T=I32, M=I32, KIND=cx(kind), HARD=cx(hard), STORE_H=cx(store_h),
            STORE_V=cx(store_v), STRICT=cx(strict), BLOCK=B), False)
        gen = (G.scan_fwd, dict(x_ptr=io, out_ptrs=(io, opt(P, store_h), opt(P, store_v)), state0_ptrs=(P,),
            last_ptrs=(P,), param_ptrs=(P,) * 3, T=I32, M=I32, STEP=cx(lf.step), INIT=cx(lf.init),
            OPT=cx((kind, hard, strict)), P_OTHER=cx(lf.fwd_other), BLOCK=B), False)
        return old, gen

    def lif_bwd(kind, hard, detach, sg, gs, gv, gh, glast, params, io, strict=False):
        old = (lif._lif_bwd, dict(named("h_ptr gvseq_ptr ghseq_ptr gvlast_ptr tau_ptr vth_ptr vr_ptr "
            "v0_ptr gv0_ptr gtau_ptr gvth_ptr gvr_ptr", P), x_ptr=io, gs_ptr=io, gx_ptr=io, T=I32, M=I32,
            a0="fp32", a1="fp32", KIND=cx(kind), HARD=cx(hard), DETACH=cx(detach), SG=cx(sg), HAS_GS=cx(gs),
            HAS_GVSEQ=cx(gv), HAS_GHSEQ=cx(gh), HAS_GVLAST=cx(glast), NEED_PARAMS=cx(params), STRICT=cx(strict),
            BLOCK=B), True)
        gen = (G.scan_bwd, dict(lag_ptrs=(P,), cur_ptrs=(opt(io, params and kind == 1),),
            gout_ptrs=(opt(io, gs), opt(P, gh), opt(P, gv)), glast_ptrs=(opt(P, glast),), state0_ptrs=(P,),
            param_ptrs=(P,) * 3, scal=("fp32", "fp32"), gx_ptr=io, gstate0_ptrs=(P,),
            gparam_ptrs=(opt(P, params),) * 3, T=I32, M=I32, VJP=cx(lf.vjp), OPT=cx((kind, hard, detach, sg, strict)),
            P_OTHER=cx(lf.bwd_other), BLOCK=B), lf.bwd_fusion)
        return old, gen

    def cuba_fwd(refrac, store_m, io):
        old = (cuba._cuba_fwd, dict(named("v_ptr i_ptr leak_ptr reset_ptr thr_ptr am_ptr cs_ptr R_ptr", P),
            x_ptr=io, z_ptr=io, m_ptr=I8, T=I32, M=I32, REFRAC=cx(refrac), STORE_M=cx(store_m), BLOCK=B), False)
        gen = (G.scan_fwd, dict(x_ptr=io, out_ptrs=(io, P, P, opt(I8, store_m)), state0_ptrs=(None, None),
            last_ptrs=(), param_ptrs=(P,) * 5 + (opt(P, refrac),), T=I32, M=I32, STEP=cx(cf.step),
            INIT=cx(cf.init), OPT=cx((refrac,)), P_OTHER=cx(cf.fwd_other), BLOCK=B), False)
        return old, gen

    def cuba_bwd(refrac, gz, gv, gi, params, io):
        old = (cuba._cuba_bwd, dict(named("v_ptr i_ptr gv_ptr gi_ptr leak_ptr reset_ptr thr_ptr am_ptr "
            "cs_ptr alpha_ptr gleak_ptr greset_ptr gthr_ptr gam_ptr gcs_ptr", P), m_ptr=I8, gz_ptr=io,
            gx_ptr=io, T=I32, M=I32, REFRAC=cx(refrac), HAS_GZ=cx(gz), HAS_GV=cx(gv), HAS_GI=cx(gi),
            NEED_PARAMS=cx(params), BLOCK=B), False)
        gen = (G.scan_bwd, dict(lag_ptrs=(P, P), cur_ptrs=(opt(I8, refrac),),
            gout_ptrs=(opt(io, gz), opt(P, gv), opt(P, gi)), glast_ptrs=(None, None), state0_ptrs=(None,),
            param_ptrs=(P,) * 6, scal=("fp32",), gx_ptr=io, gstate0_ptrs=(), gparam_ptrs=(opt(P, params),) * 5,
            T=I32, M=I32, VJP=cx(cf.vjp), OPT=cx((refrac,)), P_OTHER=cx(cf.bwd_other), BLOCK=B), cf.bwd_fusion)
        return old, gen

    builders = dict(lif_fwd=lif_fwd, lif_bwd=lif_bwd, cuba_fwd=cuba_fwd, cuba_bwd=cuba_bwd)
    out = {}
    for name, args in json.loads(sys.argv[1]):
        old, gen = builders[name.split(":")[0]](*args)
        out[name] = {"old": stats(*old), "generic": stats(*gen)}
    print(json.dumps(out))
''')

FLOAT_TYPES = (".f32", ".f16", ".bf16", ".f64")
LONG = os.environ.get("SPIKEFUSE_LONG", "") not in ("", "0")


def _ptxas_available() -> bool:
    nv = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    return nv.exists() or shutil.which("ptxas") is not None


def _float_ops(ops: dict) -> dict:
    return {op: n for op, n in ops.items() if any(t in op for t in FLOAT_TYPES)}


#: (name, builder arguments): the four kernels with every output, gradient and option present (the
#: LIF ones also with the strict threshold=">" comparison)
DEFAULT = [("lif_fwd", (1, True, True, True, "*bf16")),
           ("lif_fwd:strict", (1, True, True, True, "*bf16", True)),
           ("lif_bwd", (1, False, False, 1, True, True, True, True, True, "*bf16")),
           ("lif_bwd:strict", (1, True, False, 1, True, True, True, True, True, "*bf16", True)),
           ("cuba_fwd", (True, True, "*bf16")),
           ("cuba_bwd", (True, True, True, True, True, "*bf16"))]


def _long_configs():
    """Every option and presence flag of the per-family kernels, each I/O dtype somewhere (the
    strict comparison alternating, so that each kind and reset meets both)."""
    ios = ("*fp32", "*fp16", "*bf16")
    out = [(f"lif_fwd:{k}{h}{sh}{sv}", (k, h, sh, sv, ios[k], sh != sv)) for k, h, (sh, sv) in
           itertools.product((0, 1, 2), (True, False), ((True, True), (True, False), (False, False)))]
    out += [(f"lif_bwd:{k}{h}{d}{sg}{p}", (k, h, d, sg, sg != 1, sg != 2, sg != 3, sg != 4, p, ios[sg % 3], p != d))
            for k, h, d, sg, p in itertools.product((0, 1, 2), (True, False), (False, True), range(5), (True, False))]
    out += [(f"cuba_fwd:{r}{m}{io}", (r, m and r, io)) for r, m, io in itertools.product((True, False), (True, False), ios)]
    out += [(f"cuba_bwd:{r}{i}{p}", (r, i != 0, i != 1, i != 2, p, ios[i]))
            for r, i, p in itertools.product((True, False), range(3), (True, False))]
    return out


def _compile_report(configs) -> dict:
    """SCRIPT's JSON for ``configs``, run against this checkout's src/ without the interpreter."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_DEFAULT_FP_FUSION="1", PYTHONPATH=os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(configs)], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_same_code(res: dict):
    for name, pair in res.items():
        old, gen = pair["old"], pair["generic"]
        assert gen["cubin"] > 0 and old["cubin"] > 0, name
        assert _float_ops(gen["ops"]), name
        assert _float_ops(gen["ops"]) == _float_ops(old["ops"]), name  # the arithmetic first: clearer failure
        assert gen["ops"] == old["ops"], name
        if name.split(":")[0].endswith("_fwd"):  # no contraction: bit-equal to torch's elementwise ops
            assert gen["fma"] == 0 and gen["div_full"] == 0, name


@pytest.mark.skipif(not _ptxas_available(), reason="Triton's bundled ptxas not found")
def test_generic_kernels_compile_for_sm90_like_the_per_family_ones():
    res = _compile_report(DEFAULT)
    assert set(res) == {name for name, _ in DEFAULT}
    _check_same_code(res)
    assert res["lif_fwd"]["generic"]["div_rn"] > 0  # decay_input: IEEE division


@pytest.mark.skipif(not (LONG and _ptxas_available()), reason="long sweep: set SPIKEFUSE_LONG=1 (needs ptxas)")
def test_every_specialisation_compiles_like_the_per_family_kernels_long():
    configs = _long_configs()
    assert len({name for name, _ in configs}) == len(configs)
    res = _compile_report(configs)
    _check_same_code(res)
    assert len(res) == len(configs)
