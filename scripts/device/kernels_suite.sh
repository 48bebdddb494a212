#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps) for issue #14: build, the GPU tests of the kernels this issue touches
# (ops, device Adam and its factor on the device, gradient hand-over, the norm of a parameter list, the
# throughput timer's events), then the GPT-2 suite on one GPU with ours, ours with the kernel experiments
# that are off by default (ours_exp: bench/run_gpt2_suite.sh's EXP_ENV / EXP_ARGS), torch.compile (bf16-master
# recipe; PT_PRECISION="amp bf16-master" for both, as issue #14's verdict asks) and ours' profile (PROFILE_EXP=1: of the experiments' run), all in one call so the rows compare.
# Everything comes back in $OUT/all.tgz; the tests' verdicts and the suite's table in $OUT/summary.txt.
#
#   MODELS="1.5B 350M 124M" IMPLS="ours ours_exp compile" PROFILE_MODELS=none BUDGET_S=400 \
#     bash scripts/device/kernels_suite.sh
# CALL_BUDGET_S=460: the suite's BUDGET_S counted from the start of the call instead of the suite's.
# TESTS="gelu_mlp_gpu_test": only these test binaries (built and run) instead of the whole list; TESTS=none: no tests.
# IMPLS with loop or loop_graph builds bench/gpt2_libtorch_loop too: loop_graph is the loop with each micro-batch
# replayed as a CUDA graph, so "loop" against "loop_graph" is what the kernel launches cost.
set -uo pipefail
source "$(dirname "$0")/env.sh"
describe_machine >"$out/summary.txt"
tests=${TESTS:-"add_layer_norm_gpu_test bias_gelu_gpu_test cross_entropy_gpu_test linear_gpu_test linear_chunks_gpu_test adam_device_gpu_test grad_convert_gpu_test squared_sum_gpu_test throughput_timer_gpu_test engine_gpu_test core_test"}
[ "$tests" = none ] && tests=""
loop_target=""  # the hand-written loop, where IMPLS asks for it (loop, loop_graph)
[[ " ${IMPLS:-} " == *" loop"* ]] && loop_target=gpt2_libtorch_loop
bash scripts/device/build.sh gpt2 deepspeed_launcher $loop_target $tests >"$out/build.txt" 2>&1 \
  || { tail -40 "$out/build.txt"; exit 1; }
stamp "built" | tee -a "$out/summary.txt"
for t in $tests; do
  filter=""
  [ "$t" = core_test ] && filter="--gtest_filter=AdamUpcast*:OptimizerTest*:ClipTest*"
  build-dev/tests/$t $filter >"$out/$t.log" 2>&1
  echo "$t: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/$t.log" | tr '\n' ' ')" | tee -a "$out/summary.txt"
done
grep -sh '^\[device_adam\]' "$out/adam_device_gpu_test.log" | sort -t: -k2 | tail -4 >>"$out/summary.txt"
stamp "tests" | tee -a "$out/summary.txt"
if [ -n "${CALL_BUDGET_S:-}" ]; then BUDGET_S=$(( CALL_BUDGET_S - ($(date +%s) - t0) )); fi
MODELS=${MODELS:-1.5B 124M 350M} PROFILE_MODELS=${PROFILE_MODELS:-1.5B 124M} GPUS=1 IMPLS=${IMPLS:-ours ours_exp compile profile} PT_PRECISION=${PT_PRECISION:-bf16-master} STEPS=${STEPS:-20} \
  WARMUP=${WARMUP:-10} BUDGET_S=${BUDGET_S:-330} RUN_TIMEOUT=${RUN_TIMEOUT:-150} PROFILE_TOP=40 \
  OUT="$out/suite" bash bench/run_gpt2_suite.sh >"$out/suite.txt" 2>&1
grep -E "^\[[0-9]+ s\]" "$out/suite.txt" >>"$out/summary.txt"
[ -f "$out/suite/table.md" ] && cat "$out/suite/table.md" >>"$out/summary.txt"
stamp "suite" | tee -a "$out/summary.txt"
cd "$out" && tar czf /tmp/all.tgz --exclude=summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/all.tgz all.tgz
