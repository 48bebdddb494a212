#!/usr/bin/env bash
# The GPT-2 example through the launcher on 2 Gloo ranks: a tiny model on the byte-level Debian text for 50
# steps. The loss must fall by a clear margin, and the run with activation checkpointing must log the same
# losses as the plain one (dropout on, so the replayed masks matter).
# Usage: run_gpt2.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
train() {  # train OUT PORT [flags...]
  local out=$1 p=$2
  shift 2
  "$build/bin/deepspeed" --num_gpus 2 --master_port "$p" "$build/examples/gpt2" \
    --deepspeed_config "$src/examples/gpt2/ds_config_tiny_cpu.json" --model tiny --max-steps 50 --log-interval 1 \
    --dropout 0.1 "$@" >"$out" 2>&1 || { cat "$out"; echo "FAIL: training exited with an error"; exit 1; }
}
train "$work/plain.log" "$port"
train "$work/ckpt.log" $((port + 1)) --activation-checkpointing
losses() { sed -n 's/^step \([0-9]*\)\/50 | loss \([0-9.]*\) .*/\1 \2/p' "$1"; }
losses "$work/plain.log" >"$work/plain.loss"
losses "$work/ckpt.log" >"$work/ckpt.loss"
if [ "$(wc -l <"$work/plain.loss")" -ne 50 ]; then
  cat "$work/plain.log"; echo "FAIL: expected 50 loss lines"; exit 1
fi
first=$(head -1 "$work/plain.loss" | cut -d' ' -f2)
last=$(tail -1 "$work/plain.loss" | cut -d' ' -f2)
echo "loss: step 1 $first, step 50 $last"
if ! awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }'; then
  cat "$work/plain.log"; echo "FAIL: the loss did not fall by 1.0"; exit 1
fi
if ! diff "$work/plain.loss" "$work/ckpt.loss" >"$work/diff"; then
  cat "$work/diff"; echo "FAIL: activation checkpointing changed the losses"; exit 1
fi
echo "ok: activation checkpointing gives the same 50 losses"

# --profile-steps: rank 0 prints where the time goes (host ops on the CPU) and writes a Chrome trace.
"$build/bin/deepspeed" --num_gpus 1 --master_port $((port + 2)) "$build/examples/gpt2" \
  --deepspeed_config "$src/examples/gpt2/ds_config_tiny_cpu.json" --model tiny --max-steps 4 --warmup-steps 1 \
  --profile-steps 2 --profile-trace "$work/trace.json" >"$work/profile.log" 2>&1 || { cat "$work/profile.log"; echo "FAIL: profiled run"; exit 1; }
grep -q "^profile: | GEMM |" "$work/profile.log" && grep -q '"traceEvents"' "$work/trace.json" ||
  { cat "$work/profile.log"; echo "FAIL: no profile table or trace"; exit 1; }
echo "ok: --profile-steps prints the table and writes the trace"
