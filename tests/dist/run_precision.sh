#!/usr/bin/env bash
# fp16 and bf16 against fp32 on the same data, through the real launcher on Gloo ranks.
# Usage: run_precision.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
train=$build/tests/dp_train
launch="$build/bin/deepspeed --num_gpus 2"
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
run() { "$@" >"$work/log" 2>&1 || { cat "$work/log"; fail "$*"; }; }
compare() {  # compare NAME A B RTOL
  if out=$("$train" --compare "$2" "$3" --rtol "$4"); then ok "$1: $out"; else fail "$1: $out"; fi
}

# 1. One process, 30 steps of the same data: 16-bit training stays within a stated tolerance of fp32.
#    Tolerances: bf16 2e-2 and fp16 5e-3 max relative parameter difference (bf16 keeps 8 mantissa bits,
#    fp16 11; measured 6.1e-3 and 6.5e-4).
for d in fp32 bf16 fp16; do run "$train" --steps 30 --micro 8 --dtype $d --out "$work/one_$d.pt"; done
compare "bf16 vs fp32 (1 process)" "$work/one_bf16.pt" "$work/one_fp32.pt" 2e-2
compare "fp16 vs fp32 (1 process)" "$work/one_fp16.pt" "$work/one_fp32.pt" 5e-3

# 2. Two ranks with gradient accumulation against one process on the global batch, in each precision.
for d in bf16 fp16; do
  run $launch --master_port $port "$train" --steps 20 --micro 4 --gas 2 --dtype $d --out "$work/dp_$d.pt"
  run "$train" --steps 20 --micro 16 --dtype $d --out "$work/ref_$d.pt"
  port=$((port + 1))
done
compare "bf16, 2 ranks vs 1 process" "$work/dp_bf16.pt" "$work/ref_bf16.pt" 2e-2
compare "fp16, 2 ranks vs 1 process" "$work/dp_fp16.pt" "$work/ref_fp16.pt" 5e-3

# 3. An overflow on rank 1 only: every rank skips that step, halves the scale, and the ranks stay identical.
run $launch --master_port $port "$train" --steps 6 --micro 2 --dtype fp16 --overflow-step 3 --overflow-rank 1 \
  --out "$work/overflow.pt"
cp "$work/log" "$work/overflow.log"
for r in 0 1; do
  if grep -q "rank $r: skipped=1 loss_scale=128.0" "$work/overflow.log"; then ok "rank $r skipped the overflow step";
  else fail "rank $r did not skip exactly one step:"; grep "rank $r:" "$work/overflow.log"; fi
done
grep -q "\[deepspeed\] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 256, reducing to 128" "$work/overflow.log" \
  && ok "DeepSpeed's OVERFLOW message" || fail "no OVERFLOW message"
compare "ranks identical after the skipped step" "$work/overflow.pt" "$work/overflow.pt.rank1" 0

# 4. The tutorial's network on Fashion-MNIST: 16-bit test accuracy within 2 points of fp32 after 1000 steps.
if [ -d /usr/share/datasets/fashion-mnist ]; then
  declare -A acc
  for d in fp32 bf16 fp16; do
    case $d in fp32) extra='' ;; bf16) extra=', "bf16": {"enabled": true}' ;; fp16) extra=', "fp16": {"enabled": true}' ;; esac
    echo "{\"train_batch_size\": 32, \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.002}}$extra}" >"$work/$d.json"
    run "$build/examples/cifar10" --deepspeed_config "$work/$d.json" --max-steps 1000 --log-interval 100000
    acc[$d]=$(grep -o "test images: [0-9.]*" "$work/log" | grep -o "[0-9.]*$")
  done
  for d in bf16 fp16; do
    if awk -v a="${acc[$d]}" -v b="${acc[fp32]}" 'BEGIN { d = a - b; exit !(d < 2 && d > -2) }'; then
      ok "tutorial network: $d ${acc[$d]}% vs fp32 ${acc[fp32]}%"
    else
      fail "tutorial network: $d ${acc[$d]}% vs fp32 ${acc[fp32]}%"
    fi
  done
fi
exit $((failures > 0))
