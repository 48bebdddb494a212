#!/usr/bin/env bash
# N data-parallel steps through the real launcher give the same parameters as one process on the global batch.
# Usage: run_equivalence.sh BUILD_DIR RANKS GAS CLIP OPTIMIZER PORT [STAGE] [DTYPE] [extra dp_train flags...]
# Gloo CPU ranks by default; DS_ACCELERATOR=cuda runs the same check on GPUs over NCCL.
# Tolerance: fp32 1e-5 relative (only summation order differs); bf16 2e-2 (reductions round to 8 mantissa
# bits in a different order than the single process does).
set -euo pipefail
build=$1 ranks=$2 gas=$3 clip=$4 optimizer=$5 port=$6 stage=${7:-0} dtype=${8:-fp32}
shift $(( $# < 8 ? $# : 8 ))
extra=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
micro=2
rtol=1e-5
[ "$dtype" = fp32 ] || rtol=2e-2
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1
common=(--steps 5 --clip "$clip" --optimizer "$optimizer" --dtype "$dtype")
"$build/tests/dp_train" "${common[@]}" --micro $((micro * gas * ranks)) --gas 1 --out "$work/reference.pt" \
  >"$work/reference.log" 2>&1 || { cat "$work/reference.log"; exit 1; }
"$build/bin/deepspeed" --num_gpus "$ranks" --master_port "$port" "$build/tests/dp_train" "${common[@]}" \
  --micro $micro --gas "$gas" --stage "$stage" "${extra[@]}" --out "$work/dp.pt" >"$work/dp.log" 2>&1 || { cat "$work/dp.log"; exit 1; }
"$build/tests/dp_train" --compare "$work/dp.pt" "$work/reference.pt" --rtol "$rtol"
