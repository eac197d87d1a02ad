"""GPU-readiness without a GPU: compile every Triton scan kernel ahead of time for sm_90 (H100)
with Triton's bundled ptxas, in a subprocess without TRITON_INTERPRET, and check the PTX of the
forward kernels for the properties bit-exactness relies on (IEEE division, no FMA contraction)."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

SCRIPT = textwrap.dedent(r'''
    import json, sys
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from spikefuse.kernels.triton import lif, cuba, loihi, resonator, sigma_delta

    target = GPUTarget("cuda", 90, 32)
    P, I64 = "*fp32", "*i64"
    out = {}

    def comp(name, fn, types, consts, fusion=False):
        sig = {n: types.get(n, "constexpr") for n in fn.arg_names}
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=target,
                           options={"num_warps": 4, "enable_fp_fusion": fusion})
        ptx = k.asm["ptx"]
        out[name] = {"fma": ptx.count("fma.rn.f32"), "div_full": ptx.count("div.full.f32"),
                     "div_rn": ptx.count("div.rn.f32"), "cubin": len(k.asm.get("cubin", b""))}

    io = "*bf16"
    comp("lif_fwd", lif._lif_fwd, dict(x_ptr=io, spk_ptr=io, tau_ptr=P, vth_ptr=P, vr_ptr=P, v0_ptr=P,
         vlast_ptr=P, h_ptr=P, vseq_ptr=P, T="i32", M="i32"),
         dict(KIND=1, HARD=True, STORE_H=True, STORE_V=True, BLOCK=512))
    comp("lif_bwd", lif._lif_bwd, dict(h_ptr=P, x_ptr=io, gs_ptr=io, gvseq_ptr=P, ghseq_ptr=P,
         gvlast_ptr=P, tau_ptr=P, vth_ptr=P, vr_ptr=P, v0_ptr=P, gx_ptr=io, gv0_ptr=P, gtau_ptr=P,
         gvth_ptr=P, gvr_ptr=P, T="i32", M="i32", a0="fp32", a1="fp32"),
         dict(KIND=1, HARD=False, DETACH=False, SG=1, HAS_GS=True, HAS_GVSEQ=True, HAS_GHSEQ=True,
              HAS_GVLAST=True, NEED_PARAMS=True, BLOCK=512), fusion=True)
    comp("cuba_fwd", cuba._cuba_fwd, dict(x_ptr=io, z_ptr=io, v_ptr=P, i_ptr=P, m_ptr="*i8",
         leak_ptr=P, reset_ptr=P, thr_ptr=P, am_ptr=P, cs_ptr=P, R_ptr=P, T="i32", M="i32"),
         dict(REFRAC=True, STORE_M=True, BLOCK=512))
    comp("cuba_bwd", cuba._cuba_bwd, dict(v_ptr=P, i_ptr=P, m_ptr="*i8", gz_ptr=io, gv_ptr=P,
         gi_ptr=P, leak_ptr=P, reset_ptr=P, thr_ptr=P, am_ptr=P, cs_ptr=P, alpha_ptr=P, gx_ptr=io,
         gleak_ptr=P, greset_ptr=P, gthr_ptr=P, gam_ptr=P, gcs_ptr=P, T="i32", M="i32"),
         dict(REFRAC=True, HAS_GZ=True, HAS_GV=True, HAS_GI=True, NEED_PARAMS=True, BLOCK=512))
    comp("loihi_fwd", loihi._loihi_fwd, dict(x_ptr=io, s_ptr=io, u_ptr=P, v_ptr=P, lim_ptr=P,
         th_ptr=P, r_ptr=P, decu_ptr=I64, decv_ptr=I64, decth_ptr=I64, decr_ptr=I64, u0_ptr=I64,
         v0_ptr=I64, th0s_ptr=I64, r0_ptr=I64, thf_ptr=P, rf_ptr=P, T="i32", M="i32", s_f="fp32",
         s_d="fp32", thr_f="fp32", thr_s_f="fp32", theta0="i32", step="i32"),
         dict(ALIF=True, GRADED=True, STORE_LIM=True, STORE_TR=True, OUT_BF16=True, BLOCK=512))
    comp("loihi_bwd", loihi._loihi_bwd, dict(v_ptr=P, u_ptr=P, lim_ptr=P, gs_ptr=io, gv_ptr=P,
         gu_ptr=P, au_ptr=P, av_ptr=P, gx_ptr=io, gdu_ptr=P, gdv_ptr=P, T="i32", M="i32",
         thr_f="fp32", tau_rho="fp32", scale_rho="fp32", dscale="fp32"),
         dict(ALIF=True, GRADED=False, HAS_GS=True, HAS_GV=True, HAS_GU=True, NEED_DU=True,
              NEED_DV=True, BLOCK=512), fusion=True)
    for model in (1, 2):  # RF-Iz (reset mask) and AdRF (adaptive threshold)
        comp(f"res_fwd_{model}", resonator._res_fwd, dict(xr_ptr=io, xi_ptr=io, spk_ptr=io, re_ptr=P,
             im_ptr=P, lim_ptr=P, th_ptr=P, r_ptr=P, rst_ptr="*i8", S_ptr=I64, C_ptr=I64, kth_ptr=I64,
             kr_ptr=I64, re0_ptr=I64, im0_ptr=I64, th0s_ptr=I64, r0_ptr=I64, im0f_ptr=P, rel_ptr=P,
             iml_ptr=P, thl_ptr=P, rl_ptr=P, T="i32", M="i32", s_f="fp32", theta_f="fp32",
             thr_s_f="fp32", reset_im="i32", theta0="i32", step="i32"),
             dict(MODEL=model, GRADED=True, STORE_RI=True, STORE_LIM=True, STORE_TR=True,
                  STORE_RST=model == 1, OUT_BF16=True, BLOCK=512))
        comp(f"res_bwd_{model}", resonator._res_bwd, dict(re_ptr=P, im_ptr=P, lim_ptr=P, rst_ptr="*i8",
             gs_ptr=io, gre_ptr=P, gim_ptr=P, grel_ptr=P, giml_ptr=P, Sf_ptr=P, Cf_ptr=P, re0f_ptr=P,
             im0f_ptr=P, gxr_ptr=io, gxi_ptr=io, gre0_ptr=P, gim0_ptr=P, gS_ptr=P, gC_ptr=P, T="i32",
             M="i32", theta_f="fp32", rho="fp32", kappa="fp32", reset_im_f="fp32", dscale="fp32"),
             dict(MODEL=model, GRADED=model == 2, HAS_GS=True, HAS_GRE=True, HAS_GIM=True, HAS_GREL=True,
                  HAS_GIML=True, NEED_DEC=True, LAVA=False, BLOCK=512), fusion=True)
    F64 = "*fp64"
    comp("sd_fwd", sigma_delta._sd_fwd, dict(x_ptr=io, y_ptr=io, sig_ptr=P, a_ptr=P, d_ptr=P,
         keep_ptr="*i8", th_ptr=P, bias_ptr=P, acc0_ptr=F64, pre0_ptr=P, res0_ptr=P, err0_ptr=P,
         accl_ptr=F64, prel_ptr=P, resl_ptr=P, errl_ptr=P, T="i32", M="i32", step_f="fp32"),
         dict(ACT=1, HAS_BIAS=True, CUM=True, STORE_SIG=True, STORE_A=True, STORE_D=True,
              STORE_KEEP=True, OUT_BF16=True, BLOCK=512))
    comp("sd_bwd", sigma_delta._sd_bwd, dict(gy_ptr=io, gsig_ptr=P, ga_ptr=P, gaccl_ptr=F64,
         gprel_ptr=P, keep_ptr="*i8", d_ptr=P, th_ptr=P, gx_ptr=io, gth_ptr=P, gb_ptr=P,
         gacc0_ptr=F64, gpre0_ptr=P, T="i32", M="i32", tau_grad="fp32", scale_grad="fp32"),
         dict(ACT=1, HAS_GY=True, HAS_GSIG=True, HAS_GA=True, HAS_GACCL=True, HAS_GPREL=True,
              NEED_TH=True, GX_BF16=True, BLOCK=512), fusion=True)
    print(json.dumps(out))
''')


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
    assert set(res) == {"lif_fwd", "lif_bwd", "cuba_fwd", "cuba_bwd", "loihi_fwd", "loihi_bwd",
                        "res_fwd_1", "res_bwd_1", "res_fwd_2", "res_bwd_2", "sd_fwd", "sd_bwd"}
    for name, info in res.items():
        assert info["cubin"] > 0, name
    # forward kernels: no contraction, IEEE division (bit-equal to torch's elementwise ops)
    for name in ("lif_fwd", "cuba_fwd", "loihi_fwd", "res_fwd_1", "res_fwd_2", "sd_fwd"):
        assert res[name]["fma"] == 0 and res[name]["div_full"] == 0, (name, res[name])
    for name in ("lif_fwd", "res_fwd_1", "res_fwd_2", "sd_fwd"):
        assert res[name]["div_rn"] > 0, name
