#!/usr/bin/env bash
# The engine at world size 1 against the hand-written LibTorch loop of the GPT-2 suite
# (bench/gpt2_libtorch_loop.cpp): same tiny model, bf16 weights with fp32 masters, same data order, AdamW,
# WarmupCosineLR, clipping, two micro-batches per step. Both must log the same losses: this keeps the loop an
# honest baseline (it trains the same model the same way) and checks the engine's stage-0 bf16 path against a
# program with no engine in it.
# Usage: run_gpt2_loop.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=2 DS_KILL_GRACE_SECONDS=2
sed -e 's/"steps_per_print": 1000,/"steps_per_print": 1000, "bf16": {"enabled": true},/' -e 's/"lr": 3e-3/"lr": 1e-3/' \
  "$src/examples/gpt2/ds_config_tiny_cpu.json" >"$work/ds.json"
grep -q '"bf16"' "$work/ds.json" || { echo "FAIL: could not derive the bf16 config"; exit 1; }
common=(--deepspeed_config "$work/ds.json" --model tiny --max-steps 30 --log-interval 1)
"$build/bin/deepspeed" --num_gpus 1 --master_port "$port" "$build/examples/gpt2" "${common[@]}" >"$work/engine.log" 2>&1 ||
  { cat "$work/engine.log"; echo "FAIL: the example exited with an error"; exit 1; }
data=$(sed -n 's/^gpt2: data \([^ ]*\) .*/\1/p' "$work/engine.log")
"$build/bench/gpt2_libtorch_loop" "${common[@]}" --data "$data" --device cpu >"$work/loop.log" 2>&1 ||
  { cat "$work/loop.log"; echo "FAIL: the loop exited with an error"; exit 1; }
losses() { sed -n 's/^step \([0-9]*\)\/30 | loss \([0-9.]*\) | lr \([^ ]*\) .*/\1 \2 \3/p' "$1"; }
losses "$work/engine.log" >"$work/engine.loss"
losses "$work/loop.log" >"$work/loop.loss"
[ "$(wc -l <"$work/engine.loss")" -eq 30 ] || { cat "$work/engine.log"; echo "FAIL: expected 30 engine loss lines"; exit 1; }
[ "$(wc -l <"$work/loop.loss")" -eq 30 ] || { cat "$work/loop.log"; echo "FAIL: expected 30 loop loss lines"; exit 1; }
grep -q '^{.*"impl":"libtorch-loop"' "$work/loop.log" ||
  { cat "$work/loop.log"; echo "FAIL: the loop printed no JSON summary"; exit 1; }
paste "$work/engine.loss" "$work/loop.loss" >"$work/both"
# bf16 forward/backward are the same kernels in the same order; the sums of squares for the clip norm are
# added in another order, so the losses may part in the last printed digit late in the run.
if ! awk '{ d = $2 - $5; if (d < 0) d = -d; if ($1 != $4 || $3 != $6 || d > 1e-3) { print "step " $1 ": engine " $2 " lr " $3 ", loop " $5 " lr " $6; bad = 1 } }
          END { exit bad }' "$work/both"; then
  echo "FAIL: the loop and the engine disagree"; exit 1
fi
echo "ok: 30 steps, engine and hand-written loop agree (step 1 $(head -1 "$work/engine.loss" | cut -d' ' -f2), step 30 $(tail -1 "$work/engine.loss" | cut -d' ' -f2))"
