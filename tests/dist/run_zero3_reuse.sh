#!/usr/bin/env bash
# stage3_max_reuse_distance: units whose backward comes soon stay gathered after their forward, so a step
# needs fewer all-gathers than with the distance at 0. Usage: run_zero3_reuse.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1
count() {
  DP_TRAIN_REUSE_DISTANCE=$1 "$build/bin/deepspeed" --num_gpus 2 --master_port "$2" "$build/tests/dp_train" \
    --steps 10 --micro 2 --stage 3 --zero3-checks 2>&1 | sed -n 's/^rank 0: zero3 checks ok, \([0-9]*\) all-gathers$/\1/p'
}
kept=$(count 1000000000 "$port")
released=$(count 0 $((port + 1)))
echo "all-gathers over 10 steps: $kept with reuse, $released without"
[ -n "$kept" ] && [ -n "$released" ] && [ "$kept" -lt "$released" ]
