#!/usr/bin/env bash
# Run ON a one-GPU machine (carry .devdeps and .whl): ZeRO-Offload (issue #12) on a 3.8B GPT-style model
# (bench presets "3.8B": 32 layers × 3072, seq 1024, micro-batch 8, bf16, AdamW, activation checkpointing)
# through bench/run_gpt2_suite.sh, with results appended to $OUT/results.jsonl and the table in $OUT/table.md.
#
#   bash scripts/device/offload_bench.sh check       the offload GPU tests (ctest -R offload)
#   bash scripts/device/offload_bench.sh ours        ours: no offload (stage 0), offload stage 2 (ratio 1), GAS 1 and 4
#   bash scripts/device/offload_bench.sh deepspeed   DeepSpeed 0.19.8 stage 2 + offload_optimizer cpu (pinned), and
#                                                    ours again (the same call), GAS 1 and 4
#   bash scripts/device/offload_bench.sh big         the largest model that trains (BIG_MODEL, default 10B): stage 3,
#                                                    offload ratio BIG_RATIO (default 0.5), a few steps
# Knobs: STEPS (3) and WARMUP (2) timed / warm-up steps; RATIO (1) for "ours"; GASES ("1 4").
set -uo pipefail
source "$(dirname "$0")/env.sh"
what=${1:-ours}
STEPS=${STEPS:-3} WARMUP=${WARMUP:-2} RATIO=${RATIO:-1} GASES=${GASES:-1 4}
bash scripts/device/build.sh gpt2 deepspeed_launcher deepspeed_estimate dp_train >/tmp/build.log 2>&1 \
  || { cat /tmp/build.log; exit 1; }
stamp "built"
free -g | head -2
offload="{\"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true, \"ratio\": $RATIO}}"
suite() {  # suite NAME ENV...: one suite run into /tmp/NAME, its rows appended to $out/results.jsonl
  local name=$1; shift
  env OUT=/tmp/$name MODELS=${MODEL:-3.8B} GPUS=1 STEPS=$STEPS WARMUP=$WARMUP AC_3_8B=1 AC_10B=1 RUN_TIMEOUT=300 \
    BUDGET_S=${BUDGET_S:-900} "$@" bash bench/run_gpt2_suite.sh 2>&1 | grep -E "^\[" | tail -6
  cat /tmp/$name/results.jsonl >>"$out/results.jsonl"
  cat /tmp/$name/runs.log >>"$out/runs.log"
}
case $what in
  check)
    (cd build-dev && ctest -R "offload|stages" -L gpu --output-on-failure >"$out/ctest_offload.log" 2>&1)
    grep -E "ok: |FAIL|tests passed|Failed|Skipped" "$out/ctest_offload.log" | head -20
    ;;
  ours)
    for gas in $GASES; do
      suite ours0_$gas IMPLS=ours GAS=$gas STAGES_1GPU=0
      suite ours2_$gas IMPLS=ours GAS=$gas STAGES_1GPU=2 ZERO_EXTRA="$offload"
    done
    ;;
  deepspeed)
    for gas in $GASES; do
      suite ds_$gas IMPLS="ours deepspeed" DS_1GPU=1 GAS=$gas STAGES_1GPU=2 ZERO_EXTRA="$offload"
    done
    ;;
  big)
    model=${BIG_MODEL:-10B}
    build-dev/bin/deepspeed_estimate --deepspeed_config examples/gpt2/ds_config_124M.json --params "${BIG_PARAMS:-10.27e9}" \
      | tee "$out/estimate_big.txt" | tail -4
    MODEL=$model suite big IMPLS=ours GAS=1 STAGES_1GPU=3 MICRO_10B=${BIG_MICRO:-4} \
      ZERO_EXTRA="{\"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true, \"ratio\": ${BIG_RATIO:-0.5}}}"
    grep -E "Model states per rank|^step|VmHWM|rror" /tmp/big/runs.log | tail -12
    ;;
esac
[ -s "$out/results.jsonl" ] && python3 bench/gpt2_suite_tools.py table "$out/results.jsonl" | tee "$out/table.md" | tail -12
stamp "done"
