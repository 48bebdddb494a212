#!/usr/bin/env bash
# ZeRO-3 on the GPT-2 example: 6 blocks (one unit each), every block released after its forward
# (stage3_max_reuse_distance 0) and prefetched 3–4 blocks ahead (stage3_prefetch_bucket_size), on 2 ranks. The
# 10 logged losses must equal stage 0's (to 1e-4: the reductions differ in order). Gloo CPU ranks by default;
# DS_ACCELERATOR=cuda runs it on 2 GPUs over NCCL, where several all-gathers are in flight at once.
# Usage: run_gpt2_zero3.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
block=$((12 * 64 * 64 + 13 * 64))
for stage in 0 3; do
  if [ "$stage" = 3 ]; then
    zero="\"zero_optimization\": {\"stage\": 3, \"stage3_param_persistence_threshold\": 0, \"stage3_max_reuse_distance\": 0, \"stage3_prefetch_bucket_size\": $((7 * block / 2))},"
  else
    zero=""
  fi
  sed "s/\"steps_per_print\": 1000,/\"steps_per_print\": 1000, $zero/" "$src/examples/gpt2/ds_config_tiny_cpu.json" >"$work/ds$stage.json"
  "$build/bin/deepspeed" --num_gpus 2 --master_port $((port + stage)) "$build/examples/gpt2" \
    --deepspeed_config "$work/ds$stage.json" --model tiny --n_layer 6 --max-steps 10 --log-interval 1 \
    >"$work/z$stage.log" 2>&1 || { cat "$work/z$stage.log"; echo "FAIL: stage $stage run"; exit 1; }
  sed -n 's/^step \([0-9]*\)\/10 | loss \([0-9.]*\) .*/\1 \2/p' "$work/z$stage.log" >"$work/z$stage.loss"
done
[ "$(wc -l <"$work/z3.loss")" -eq 10 ] || { cat "$work/z3.log"; echo "FAIL: expected 10 stage-3 loss lines"; exit 1; }
grep -q '"stage": 3' "$work/ds3.json" || { echo "FAIL: stage-3 config not derived"; exit 1; }
if ! paste "$work/z0.loss" "$work/z3.loss" | awk '{ d = $2 - $4; if (d < 0) d = -d; if ($1 != $3 || d > 1e-4) { print; bad = 1 } } END { exit bad }'; then
  echo "FAIL: ZeRO-3 with a multi-unit prefetch window changed the losses"; exit 1
fi
echo "ok: ZeRO-3 (6 units, prefetch window) gives stage 0's 10 losses ($DS_ACCELERATOR)"
