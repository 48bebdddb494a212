#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps) after the ZeRO strategies redesign (issue #11): build, `ctest -L gpu`
# (multi-GPU tests skip themselves on a one-GPU machine), and the GPT-2 124M row on one GPU (micro-batch 32,
# seq 1024, bf16) with the hand-written LibTorch loop and PyTorch eager as baselines in the same call, then
# ours once more (run-to-run spread). Logs and tables go to $OUT.
#
#   bash scripts/device/strategies_check.sh [tests|bench|all]      (default all; bench builds too if needed)
set -uo pipefail
source "$(dirname "$0")/env.sh"
describe_machine
what=${1:-all}
bash scripts/device/build.sh >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }
stamp "built"
if [ "$what" != bench ]; then
  (cd build-dev && ctest -L gpu --output-on-failure --timeout 300 >"$out/ctest_gpu.log" 2>&1)
  grep -E "tests passed|\*\*\*|Failed|Not Run|Skipped|ok: " "$out/ctest_gpu.log" | head -50
  stamp "ctest -L gpu"
fi
if [ "$what" != tests ]; then
  OUT=$out MODELS=124M GPUS=1 IMPLS="ours loop eager" PT_PRECISION=bf16-master BUDGET_S=${BUDGET_S:-300} \
    bash bench/run_gpt2_suite.sh 2>&1 | grep -E "^\[|^\|" | tail -20
  OUT=/tmp/repeat MODELS=124M GPUS=1 IMPLS=ours bash bench/run_gpt2_suite.sh 2>&1 | grep -E "^\[.*ours" | tail -3
  cp /tmp/repeat/results.jsonl "$out/results_repeat.jsonl"
  stamp "bench"
fi
