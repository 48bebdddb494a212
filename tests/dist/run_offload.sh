#!/usr/bin/env bash
# ZeRO-Offload (offload_optimizer: cpu) through the real launcher on 2 Gloo ranks: the same training as without
# offload, at one ZeRO stage, in fp32/bf16/fp16, with and without gradient accumulation, with clipping.
# Offloaded masters are stepped by DeepSpeedCPUAdam instead of LibTorch's fused AdamW, so parameters agree to
# the two kernels' fp32 rounding (tolerance 1e-5 relative in fp32; 16-bit runs 2e-2, as run_equivalence.sh).
# Usage: run_offload.sh BUILD_DIR PORT STAGE
set -uo pipefail
build=$1 port=$2 stage=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
train=$build/tests/dp_train
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
launch() {  # launch args...: one 2-rank job, its output in $work/log
  port=$((port + 1))
  "$build/bin/deepspeed" --num_gpus 2 --master_port "$port" "$train" "$@" >"$work/log" 2>&1 || { cat "$work/log"; return 1; }
}
compare() {  # compare NAME A B RTOL
  if out=$("$train" --compare "$2" "$3" --rtol "$4"); then ok "$1: $out"; else fail "$1: $out"; fi
}

for dtype in fp32 bf16 fp16; do
  rtol=1e-5
  [ "$dtype" = fp32 ] || rtol=2e-2
  for gas in 1 3; do
    common=(--steps 5 --micro 2 --gas "$gas" --clip 0.05 --stage "$stage" --dtype "$dtype")
    launch "${common[@]}" --out "$work/device.pt" || { fail "stage $stage $dtype gas $gas: no-offload run"; continue; }
    launch "${common[@]}" --offload 1 --out "$work/offload.pt" || { fail "stage $stage $dtype gas $gas: offload run"; continue; }
    grep -q "DeepSpeedCPUAdam" "$work/log" || fail "stage $stage $dtype gas $gas: the offload run did not use DeepSpeedCPUAdam"
    compare "stage $stage $dtype gas $gas: offload vs device" "$work/offload.pt" "$work/device.pt" "$rtol"
  done
done

# Partial offload: the leading half of every group's shard on the host, the rest stepped on the device.
launch --steps 5 --micro 2 --gas 2 --clip 0.05 --stage "$stage" --dtype bf16 --out "$work/device.pt" || fail "ratio runs"
for ratio in 0 0.5; do
  launch --steps 5 --micro 2 --gas 2 --clip 0.05 --stage "$stage" --dtype bf16 --offload "$ratio" --out "$work/ratio.pt" \
    || { fail "ratio $ratio run"; continue; }
  compare "stage $stage bf16 ratio $ratio vs device" "$work/ratio.pt" "$work/device.pt" 2e-2
done

# fp16 overflow on one rank: every rank skips the step (the loss scale halves once).
launch --steps 5 --micro 2 --stage "$stage" --dtype fp16 --offload 1 --overflow-step 2 --overflow-rank 1 \
  && grep -q "rank 0: skipped=1" "$work/log" && grep -q "rank 1: skipped=1" "$work/log" \
  && ok "stage $stage fp16: overflow on rank 1 skips on both ranks" || fail "stage $stage fp16 overflow"
# Checkpoints do not depend on where the state lived: saved with offload (half on the host), resumed with it
# exactly; resumed without it, and a checkpoint without offload resumed with it, as close as the kernels are.
common=(--steps 6 --micro 2 --gas 2 --stage "$stage" --dtype bf16 --print-losses)
launch "${common[@]}" --offload 0.5 --out "$work/full_off.pt" || fail "uninterrupted offload run"
launch "${common[@]}" --out "$work/full_dev.pt" || fail "uninterrupted run"
rm -rf "$work/ck"
launch "${common[@]}" --offload 0.5 --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "offload save"
launch "${common[@]}" --offload 0.5 --load-dir "$work/ck" --out "$work/resumed.pt" || fail "offload resume"
compare "stage $stage: offload save -> offload resume (exact)" "$work/resumed.pt" "$work/full_off.pt" 0
launch "${common[@]}" --load-dir "$work/ck" --out "$work/resumed.pt" || fail "resume without offload"
compare "stage $stage: offload save -> resume without offload" "$work/resumed.pt" "$work/full_off.pt" 2e-2
rm -rf "$work/ck"
launch "${common[@]}" --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "save without offload"
launch "${common[@]}" --offload 1 --load-dir "$work/ck" --out "$work/resumed.pt" || fail "resume with offload"
compare "stage $stage: save without offload -> offload resume" "$work/resumed.pt" "$work/full_dev.pt" 2e-2
exit $((failures > 0))
