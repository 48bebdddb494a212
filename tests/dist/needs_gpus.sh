#!/usr/bin/env bash
# Runs a multi-GPU test only where this machine has enough GPUs; otherwise says why and exits 77, which CTest
# reports as skipped (SKIP_RETURN_CODE). Usage: needs_gpus.sh N COMMAND [ARGS...]
set -u
need=$1
shift
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
  have=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c .)
else
  have=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
fi
if [ "$have" -lt "$need" ]; then
  echo "skipped: needs $need GPU(s), this machine has $have"
  exit 77
fi
exec "$@"
