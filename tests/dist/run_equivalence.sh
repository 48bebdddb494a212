#!/usr/bin/env bash
# N data-parallel steps through the real launcher on Gloo ranks give the same parameters as one process on
# the global batch. Usage: run_equivalence.sh BUILD_DIR RANKS GAS CLIP OPTIMIZER PORT
# Gloo CPU ranks by default; DS_ACCELERATOR=cuda runs the same check on GPUs over NCCL.
set -euo pipefail
build=$1 ranks=$2 gas=$3 clip=$4 optimizer=$5 port=$6
if [ "${DS_ACCELERATOR:-cpu}" = cuda ] && [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -lt "$ranks" ]; then
  echo "skipped: needs $ranks GPUs"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
micro=2
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1
"$build/tests/dp_train" --steps 5 --micro $((micro * gas * ranks)) --gas 1 --clip "$clip" --optimizer "$optimizer" \
  --out "$work/reference.pt" >"$work/reference.log" 2>&1 || { cat "$work/reference.log"; exit 1; }
"$build/bin/deepspeed" --num_gpus "$ranks" --master_port "$port" "$build/tests/dp_train" --steps 5 --micro $micro \
  --gas "$gas" --clip "$clip" --optimizer "$optimizer" --out "$work/dp.pt" >"$work/dp.log" 2>&1 \
  || { cat "$work/dp.log"; exit 1; }
"$build/tests/dp_train" --compare "$work/dp.pt" "$work/reference.pt" --rtol 1e-5
