#!/usr/bin/env bash
# ZeRO-Offload (offload_optimizer: cpu) through the real launcher on 2 Gloo ranks: the same training as without
# offload, at one ZeRO stage, in fp32/bf16/fp16, with and without gradient accumulation, with clipping.
# Offloaded masters are stepped by DeepSpeedCPUAdam instead of LibTorch's fused AdamW, so parameters agree to
# the two kernels' fp32 rounding: measured 6.6e-8 relative in fp32 (tolerance 1e-5), and bitwise in bf16/fp16
# (tolerance 2e-2, as run_equivalence.sh, so that another CPU's rounding of a master cannot flip the test).
# Usage: run_offload.sh BUILD_DIR PORT STAGE (it takes 39 ports; at stage 3, 58)
set -uo pipefail
build=$1 port=$2 stage=$3
source "$(dirname "$0")/dp_lib.sh"
offload_launch() { launch 2 "$@" || { cat "$work/log"; return 1; }; }  # a 2-rank job; its log shown on failure

for dtype in fp32 bf16 fp16; do
  rtol=1e-5
  [ "$dtype" = fp32 ] || rtol=2e-2
  for gas in 1 3; do
    common=(--steps 5 --micro 2 --gas "$gas" --clip 0.05 --stage "$stage" --dtype "$dtype")
    offload_launch "${common[@]}" --out "$work/device.pt" || { fail "stage $stage $dtype gas $gas: no-offload run"; continue; }
    offload_launch "${common[@]}" --offload 1 --out "$work/offload.pt" || { fail "stage $stage $dtype gas $gas: offload run"; continue; }
    grep -q "DeepSpeedCPUAdam" "$work/log" || fail "stage $stage $dtype gas $gas: the offload run did not use DeepSpeedCPUAdam"
    compare "stage $stage $dtype gas $gas: offload vs device" "$work/offload.pt" "$work/device.pt" "$rtol"
  done
done

# DeepSpeed's other CPU optimizers: with offload, Adagrad and Lion step the host masters (DeepSpeedCPUAdagrad,
# DeepSpeedCPULion; the same LibTorch ops as on the device, so fp32 agrees to rounding), and
# zero_force_ds_cpu_optimizer accepts them as it does in DeepSpeed.
for optimizer in Adagrad Lion; do
  common=(--steps 4 --micro 2 --gas 3 --clip 0.05 --stage "$stage" --dtype fp32 --optimizer "$optimizer")
  offload_launch "${common[@]}" --out "$work/device.pt" || { fail "stage $stage $optimizer: no-offload run"; continue; }
  offload_launch "${common[@]}" --offload 1 --out "$work/offload.pt" || { fail "stage $stage $optimizer: offload run"; continue; }
  grep -q "DeepSpeedCPU$optimizer" "$work/log" || fail "stage $stage $optimizer: the offload run did not use DeepSpeedCPU$optimizer"
  compare "stage $stage fp32 gas 3 $optimizer: offload vs device" "$work/offload.pt" "$work/device.pt" 1e-5
done

# The pipelined host update (each bucket's upload overlapping the next bucket's update; without clipping, each
# bucket updated during backward as soon as its gradient is final) against the reference (each host shard
# updated whole after backward, DS_REFERENCE_OFFLOAD_STEP=1): the same updates, bit for bit.
for clip in 0 0.05; do
  for ratio in 1 0.5; do
    common=(--steps 5 --micro 2 --gas 3 --clip "$clip" --stage "$stage" --dtype bf16 --offload "$ratio")
    offload_launch "${common[@]}" --out "$work/pipelined.pt" || { fail "pipelined clip $clip ratio $ratio"; continue; }
    DS_REFERENCE_OFFLOAD_STEP=1 offload_launch "${common[@]}" --out "$work/reference.pt" \
      || { fail "reference clip $clip ratio $ratio"; continue; }
    compare "stage $stage clip $clip ratio $ratio: pipelined host step vs reference (exact)" "$work/pipelined.pt" \
      "$work/reference.pt" 0
  done
done

# Where a window's micro-steps accumulate: at GAS > 1 by default in a device buffer, the sum crossing to the
# host once (DS_OFFLOAD_GRAD_ACCUMULATION=device); against each micro-step landing on the host and added there
# (=host): the same sums, bit for bit. Stage 1 accumulates in its full buffer either way.
for dtype in fp32 bf16; do
  common=(--steps 4 --micro 2 --gas 3 --clip 0.05 --stage "$stage" --dtype "$dtype" --offload 1)
  DS_OFFLOAD_GRAD_ACCUMULATION=device offload_launch "${common[@]}" --out "$work/acc_device.pt" \
    || { fail "device accumulation $dtype"; continue; }
  DS_OFFLOAD_GRAD_ACCUMULATION=host offload_launch "${common[@]}" --out "$work/acc_host.pt" \
    || { fail "host accumulation $dtype"; continue; }
  compare "stage $stage $dtype gas 3: accumulated on the device vs on the host (exact)" "$work/acc_device.pt" \
    "$work/acc_host.pt" 0
done

# Partial offload: the leading half of every group's shard on the host, the rest stepped on the device.
offload_launch --steps 5 --micro 2 --gas 2 --clip 0.05 --stage "$stage" --dtype bf16 --out "$work/device.pt" || fail "ratio runs"
for ratio in 0 0.5; do
  offload_launch --steps 5 --micro 2 --gas 2 --clip 0.05 --stage "$stage" --dtype bf16 --offload "$ratio" --out "$work/ratio.pt" \
    || { fail "ratio $ratio run"; continue; }
  compare "stage $stage bf16 ratio $ratio vs device" "$work/ratio.pt" "$work/device.pt" 2e-2
done

# ZeRO-3 parameter offload: the weight shards on the host, copied up before each gather; the CPU optimizer
# writes the 16-bit weights straight into them. Where the shards live changes no arithmetic: exact against the
# same run with the shards on the device, with and without offload_optimizer, updating during backward (clip 0)
# or after it, with host accumulation (GAS 3).
if [ "$stage" = 3 ]; then
  for dtype in bf16 fp32; do
    for run in "0:1:1" "0.05:3:1" "0.05:3:0.5" "0.05:1:"; do
      IFS=: read -r clip gas ratio <<<"$run"
      common=(--steps 4 --micro 2 --gas "$gas" --clip "$clip" --stage 3 --dtype "$dtype" ${ratio:+--offload "$ratio"})
      what="stage 3 $dtype clip $clip gas $gas offload_optimizer ${ratio:-none}"
      offload_launch "${common[@]}" --out "$work/shards_device.pt" || { fail "$what: shards on the device"; continue; }
      offload_launch "${common[@]}" --offload-param --out "$work/shards_host.pt" || { fail "$what: offload_param"; continue; }
      grep -q "offload_param" "$work/log" || fail "$what: the run did not report offload_param"
      compare "$what: offload_param vs shards on the device (exact)" "$work/shards_host.pt" "$work/shards_device.pt" 0
    done
  done
  # A checkpoint saved with offload_param resumes without it (the same layout on disk), exactly.
  common=(--steps 6 --micro 2 --gas 2 --stage 3 --dtype bf16 --offload 1)
  offload_launch "${common[@]}" --offload-param --out "$work/full_param.pt" || fail "uninterrupted offload_param run"
  rm -rf "$work/ck"
  offload_launch "${common[@]}" --offload-param --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "offload_param save"
  offload_launch "${common[@]}" --load-dir "$work/ck" --out "$work/resumed.pt" || fail "resume without offload_param"
  compare "stage 3: offload_param save -> resume without it (exact)" "$work/resumed.pt" "$work/full_param.pt" 0
fi

# fp16 overflow on one rank: every rank skips the step (the loss scale halves once).
offload_launch --steps 5 --micro 2 --stage "$stage" --dtype fp16 --offload 1 --overflow-step 2 --overflow-rank 1 \
  && grep -q "rank 0: skipped=1" "$work/log" && grep -q "rank 1: skipped=1" "$work/log" \
  && ok "stage $stage fp16: overflow on rank 1 skips on both ranks" || fail "stage $stage fp16 overflow"
# Checkpoints do not depend on where the state lived: saved with offload (half on the host), resumed with it
# exactly; resumed without it, and a checkpoint without offload resumed with it, as close as the kernels are.
common=(--steps 6 --micro 2 --gas 2 --stage "$stage" --dtype bf16 --print-losses)
offload_launch "${common[@]}" --offload 0.5 --out "$work/full_off.pt" || fail "uninterrupted offload run"
offload_launch "${common[@]}" --out "$work/full_dev.pt" || fail "uninterrupted run"
rm -rf "$work/ck"
offload_launch "${common[@]}" --offload 0.5 --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "offload save"
offload_launch "${common[@]}" --offload 0.5 --load-dir "$work/ck" --out "$work/resumed.pt" || fail "offload resume"
compare "stage $stage: offload save -> offload resume (exact)" "$work/resumed.pt" "$work/full_off.pt" 0
offload_launch "${common[@]}" --load-dir "$work/ck" --out "$work/resumed.pt" || fail "resume without offload"
compare "stage $stage: offload save -> resume without offload" "$work/resumed.pt" "$work/full_off.pt" 2e-2
rm -rf "$work/ck"
offload_launch "${common[@]}" --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "save without offload"
offload_launch "${common[@]}" --offload 1 --load-dir "$work/ck" --out "$work/resumed.pt" || fail "resume with offload"
compare "stage $stage: save without offload -> offload resume" "$work/resumed.pt" "$work/full_dev.pt" 2e-2
exit $((failures > 0))
