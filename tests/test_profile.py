"""benchmarks.profile: the per-op-type profile of a step and the oneDNN kernel summary."""

import pytest
from helpers import run_python

from benchmarks.profile import onednn_kernels

VERBOSE = """\
onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx10_1_512_amx,forward_training,src:bf16,,alg:convolution_direct,mb128_ic3oc48,45.25
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx10_1_512_amx,forward_training,src:bf16,,alg:convolution_direct,mb128_ic48oc128,18.75
onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,brg_conv_fwd:avx10_1_512_amx,forward_training,src:bf16,,,mb128,0.5
onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_f32::blocked:ab:f0,,,2664x48:48x48,21.0
some other line, exec, 3.0
"""


def test_onednn_kernels_sums_exec_lines_per_kernel():
    assert onednn_kernels(VERBOSE) == {
        "convolution brg_conv_fwd:avx10_1_512_amx": (64.0, 2),  # creation lines not counted
        "gemm_api": (21.0, 1),
    }


@pytest.mark.slow
def test_profile_of_a_tiny_step_lists_its_ops_and_kernels():
    proc = run_python("-m", "benchmarks.profile", "--preset=tiny", "--batch_size=2",
                      "--precision=float32", "--steps=1", "--onednn")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "train step, batch 2, float32:" in out
    table = out.split("oneDNN kernels")[0]
    # The step's convolutions and their weight gradients are profiled ops (names vary with
    # TF's oneDNN rewrite: Conv2D or _MklNative...Conv2D...).
    assert "Conv2D" in table and "BackpropFilter" in table
    kernels = out.split("oneDNN kernels")[-1]
    assert "oneDNN kernels over 2 steps" in out and "(x" in kernels
    # TF rewrites the convolutions to oneDNN's (its _Mkl ops) only on CPUs it enables oneDNN's
    # optimizations for (AVX512-VNNI, BF16, AMX); an AVX2-only CPU runs Eigen's convolutions
    # and lists oneDNN's matmul kernels alone (gemm_api).
    if "_Mkl" in table:
        assert "convolution " in kernels
    else:
        assert "gemm_api" in kernels
