#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps) as a session's first call for issue #14 when the card that comes is not
# known in advance (a call that names no kind may get an H100 or an H200). Whatever the card: build, the GPU tests
# of the linear layers and the MLP (those the timed-GEMM default of 2026-12-05 touches) and gemm_bench at 1.5B
# (its rows of ops::gelu_mlp's epilogue GEMMs beside the plain ones). Then
# - on an H200 (the issue's card): the 1.5B rows of the suite, ours against both torch.compile recipes, the faster
#   recipe (bf16-master) first, no run started after CALL_BUDGET_S (default 420) seconds into the call;
# - on any other card: the 1.5B model with and without DS_MLP_EPILOGUE=1 and the profile of the epilogue run
#   (whether the DGELU + BGRADB form of 2026-12-05 made the epilogue MLP pay, and where its step goes).
# Logs in $OUT (all.tgz, summary.txt, gemm.md).
#
#   bash scripts/device/kernels_first_call.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
tests="lt_matmul_gpu_test linear_gpu_test linear_chunks_gpu_test gelu_mlp_gpu_test activation_checkpointing_gpu_test"
out=${OUT:-$PWD/device-logs}
mkdir -p "$out"
if nvidia-smi -L | grep -q H200; then
  bash scripts/device/build.sh gemm_bench bias_gelu_gpu_test || exit 1
  build-dev/tests/bias_gelu_gpu_test >"$out/bias_gelu_gpu_test.log" 2>&1
  echo "bias_gelu_gpu_test: exit $?"
  timeout 90 build-dev/bench/gemm_bench --models 1.5B --algos 8 >/tmp/gemm.md 2>&1
  spent=$(( $(date +%s) - start ))
  TESTS="$tests" PT_PRECISION="bf16-master amp" MODELS="1.5B" IMPLS="ours compile" PROFILE_MODELS=none \
    CALL_BUDGET_S=$(( ${CALL_BUDGET_S:-420} - spent )) RUN_TIMEOUT=200 bash scripts/device/kernels_suite.sh
  cp /tmp/gemm.md "$out/gemm.md"
  head -40 "$out/summary.txt"
else
  BUILD_TARGETS="gpt2 deepspeed_launcher gemm_bench bias_gelu_gpu_test $tests" TESTS="$tests" MODELS="1.5B" \
    ATTN=auto SDPA=0 OPS=0 STEPS=20 WARM=10 VARIANTS="default mlp_epilogue" PROFILE_MODELS=1.5B \
    PROFILE_VARIANTS="mlp_epilogue" bash scripts/device/kernels_bench.sh
  (cd "$out" && tar xzf all.tgz ./gemm.md)
fi
echo "call: $(( $(date +%s) - start )) s"
cat "$out/gemm.md"
