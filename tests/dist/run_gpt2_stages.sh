#!/usr/bin/env bash
# Every ZeRO layout on the GPT-2 example gives stage 0's losses: stages 1, 2 and 3 (every block its own unit,
# released after use) against stage 0, 10 logged steps, to 1e-4. With one rank the collectives are local, so on
# a one-GPU machine this is what runs the layouts' CUDA paths. Gloo CPU ranks by default; DS_ACCELERATOR=cuda
# runs it on GPUs. With OFFLOAD (a ratio), stages 1-3 run with offload_optimizer on the CPU (pinned), still
# against stage 0 without it; CLIP replaces the config's gradient_clipping (0: offloaded updates run during
# backward). Usage: run_gpt2_stages.sh BUILD_DIR PORT RANKS [OFFLOAD [CLIP]]
set -uo pipefail
build=$1 port=$2 ranks=$3 offload=${4:-} clip=${5:-1.0}
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
for stage in 0 1 2 3; do
  extra=""
  # With a ratio below 1, small buckets, so that it splits every group between the host and the device; with
  # the whole state offloaded, the default size (each of the example's two param groups one bucket).
  buckets=""
  [ "$offload" != 1 ] && buckets=" \"reduce_bucket_size\": 50000,"
  [ -n "$offload" ] && [ "$stage" != 0 ] && extra=",$buckets \"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true, \"ratio\": $offload}"
  zero="\"zero_optimization\": {\"stage\": $stage, \"stage3_param_persistence_threshold\": 0, \"stage3_max_reuse_distance\": 0$extra},"
  sed -e "s/\"steps_per_print\": 1000,/\"steps_per_print\": 1000, $zero/" \
    -e "s/\"gradient_clipping\": 1.0/\"gradient_clipping\": $clip/" "$src/examples/gpt2/ds_config_tiny_cpu.json" >"$work/ds$stage.json"
  "$build/bin/deepspeed" --num_gpus "$ranks" --master_port $((port + stage)) "$build/examples/gpt2" \
    --deepspeed_config "$work/ds$stage.json" --model tiny --n_layer 4 --max-steps 10 --log-interval 1 \
    >"$work/z$stage.log" 2>&1 || { cat "$work/z$stage.log"; echo "FAIL: stage $stage run"; exit 1; }
  sed -n 's/^step \([0-9]*\)\/10 | loss \([0-9.]*\) .*/\1 \2/p' "$work/z$stage.log" >"$work/z$stage.loss"
  [ "$(wc -l <"$work/z$stage.loss")" -eq 10 ] || { cat "$work/z$stage.log"; echo "FAIL: expected 10 loss lines"; exit 1; }
  [ "$stage" = 0 ] && continue
  if ! paste "$work/z0.loss" "$work/z$stage.loss" | awk '{ d = $2 - $4; if (d < 0) d = -d; if ($1 != $3 || d > 1e-4) { print; bad = 1 } } END { exit bad }'; then
    echo "FAIL: stage $stage changed the losses"; exit 1
  fi
  [ -n "$offload" ] && { grep -q "DeepSpeedCPUAdam" "$work/z$stage.log" || { echo "FAIL: stage $stage did not offload"; exit 1; }; }
  echo "ok: stage $stage${offload:+ (offload ratio $offload, clipping $clip)} gives stage 0's 10 losses on $ranks rank(s) ($DS_ACCELERATOR), last $(tail -1 "$work/z$stage.loss")"
done
