#!/usr/bin/env bash
# save_checkpoint / load_checkpoint through the real launcher on Gloo ranks: exact resume, resharding to other
# world sizes, and crash safety. Usage: run_checkpoint.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
source "$(dirname "$0")/dp_lib.sh"

# 1. Save at step 3, stop, resume: the remaining losses and the final weights are bit-identical to an
#    uninterrupted run (stage 0 fp32, stage 1 fp16, stage 2 bf16, stage 3 bf16).
for cfg in "0 fp32" "1 fp16" "2 bf16" "3 bf16"; do
  set -- $cfg
  common=(--steps 6 --micro 2 --gas 2 --stage "$1" --dtype "$2" --print-losses)
  launch 2 "${common[@]}" --out "$work/full.pt" || { cat "$work/log"; fail "uninterrupted run"; }
  grep "^step [456] loss" "$work/log" >"$work/full.losses"
  rm -rf "$work/ck"
  launch 2 "${common[@]}" --save-dir "$work/ck" --save-at 3 --exit-after-save || { cat "$work/log"; fail "save"; }
  launch 2 "${common[@]}" --load-dir "$work/ck" --out "$work/resumed.pt" || { cat "$work/log"; fail "resume"; }
  grep -q "resumed from .*global_step3 at step 3, client epoch=7 note=hello" "$work/log" && ok "stage $1 $2: client_state restored" \
    || fail "stage $1 $2: client_state"
  if diff <(grep "^step [456] loss" "$work/log") "$work/full.losses" >/dev/null; then ok "stage $1 $2: same losses after resume";
  else fail "stage $1 $2: losses differ after resume"; fi
  compare "stage $1 $2: weights after resume" "$work/resumed.pt" "$work/full.pt" 0
done

# 2. A checkpoint from 2 ranks resumed on 3, 4 and 1 ranks (shards re-cut), against one process.
"$train" --steps 6 --micro 12 --out "$work/reference.pt" >/dev/null 2>&1
rm -rf "$work/ck"
launch 2 --steps 6 --micro 3 --gas 2 --stage 2 --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "save for reshard"
available=999
[ "$DS_ACCELERATOR" = cuda ] && available=$(nvidia-smi -L | wc -l)
for cfg in "3 2 2 2" "4 3 1 1" "1 12 1 2"; do
  set -- $cfg
  if [ "$1" -gt "$available" ]; then echo "skip resume on $1 ranks: $available GPUs"; continue; fi
  launch "$1" --steps 6 --micro "$2" --gas "$3" --stage "$4" --load-dir "$work/ck" --out "$work/reshard.pt" \
    || { cat "$work/log"; fail "resume on $1 ranks"; }
  compare "2 ranks (stage 2) -> $1 ranks (stage $4)" "$work/reshard.pt" "$work/reference.pt" 1e-5
done

# ZeRO-3 shards re-cut the same way: saved on 2 ranks, resumed on 3.
rm -rf "$work/ck"
launch 2 --steps 6 --micro 3 --gas 2 --stage 3 --save-dir "$work/ck" --save-at 3 --exit-after-save || fail "stage-3 save"
if [ "$available" -ge 3 ]; then
  launch 3 --steps 6 --micro 2 --gas 2 --stage 3 --load-dir "$work/ck" --out "$work/reshard.pt" \
    || { cat "$work/log"; fail "stage-3 resume on 3 ranks"; }
  compare "2 ranks -> 3 ranks (stage 3)" "$work/reshard.pt" "$work/reference.pt" 1e-5
fi

# 3. A rank dies while saving: the job fails, `latest` still names the previous checkpoint, and it loads.
rm -rf "$work/ck"
common=(--steps 6 --micro 2 --stage 2 --print-losses)
launch 2 "${common[@]}" --out "$work/full.pt" || fail "uninterrupted run"
launch 2 "${common[@]}" --save-dir "$work/ck" --save-at 2 --exit-after-save || fail "first save"
DS_CHECKPOINT_FAULT=after_write:1 launch 2 "${common[@]}" --load-dir "$work/ck" --save-dir "$work/ck" --save-at 4 \
  && fail "the crashed save reported success" || ok "save with a rank killed mid-way fails the job (exit $?)"
[ "$(cat "$work/ck/latest")" = global_step2 ] && ok "latest still names global_step2" || fail "latest moved"
[ ! -e "$work/ck/global_step4" ] && ok "no partial global_step4 published" || fail "global_step4 exists"
launch 2 "${common[@]}" --load-dir "$work/ck" --out "$work/after_crash.pt" || { cat "$work/log"; fail "load after crash"; }
grep -q "resumed from .*global_step2 at step 2" "$work/log" && ok "previous checkpoint loads" || fail "did not resume at 2"
compare "weights after crash + resume" "$work/after_crash.pt" "$work/full.pt" 0

# 4. Consolidation: ds_to_fp32 turns a stage 1/2/3 checkpoint (2 ranks) into one fp32 state dict equal to the
#    weights of a one-process stage-0 run at the same step; PyTorch's torch.load reads it.
"$train" --steps 6 --stop-at 3 --micro 8 --out "$work/ref3.pt" >/dev/null 2>&1
for stage in 1 2 3; do
  rm -rf "$work/ck"
  launch 2 --steps 6 --micro 2 --gas 2 --stage $stage --save-dir "$work/ck" --save-at 3 --exit-after-save \
    || fail "stage-$stage save for consolidation"
  "$build/bin/ds_to_fp32" "$work/ck" "$work/fp32.pt" >"$work/log" 2>&1 || { cat "$work/log"; fail "ds_to_fp32 stage $stage"; }
  "$train" --flatten-state-dict "$work/fp32.pt" "$work/fp32_flat.pt"
  compare "ds_to_fp32 of a stage-$stage checkpoint vs stage 0" "$work/fp32_flat.pt" "$work/ref3.pt" 1e-5
done
if python3 -c 'import torch' 2>/dev/null; then
  python3 -c "import torch, sys; d = torch.load(sys.argv[1], weights_only=True); assert d['fc1.weight'].shape == (13, 7) and d['fc1.weight'].dtype == torch.float32, d" \
    "$work/fp32.pt" 2>/dev/null && ok "torch.load reads the consolidated state dict" || fail "torch.load cannot read it"
fi

# save_16bit_model under ZeRO-3 (bf16): the gathered 16-bit weights equal the consolidated fp32 ones rounded.
launch 2 --steps 3 --micro 2 --stage 3 --dtype bf16 --save-16bit "$work/hf" --save-dir "$work/ck16" --save-at 3 \
  || { cat "$work/log"; fail "save_16bit_model"; }
"$build/bin/ds_to_fp32" "$work/ck16" "$work/fp32_16.pt" >/dev/null 2>&1 || fail "ds_to_fp32 of the bf16 run"
if python3 -c 'import torch' 2>/dev/null; then
  python3 - "$work/hf/pytorch_model.bin" "$work/fp32_16.pt" <<'PY' && ok "save_16bit_model: bf16 weights = fp32 masters rounded" || fail "save_16bit_model"
import sys, torch
half = torch.load(sys.argv[1], weights_only=True)
full = torch.load(sys.argv[2], weights_only=True)
assert half.keys() == full.keys(), (half.keys(), full.keys())
for k in half:
    assert half[k].dtype == torch.bfloat16, (k, half[k].dtype)
    assert torch.equal(half[k], full[k].to(torch.bfloat16)), k
PY
fi

# 5. No checkpoint: DeepSpeed's warning, nothing loaded.
launch 1 --steps 2 --load-dir "$work/empty"
code=$?
[ "$code" -eq 3 ] && grep -q "Unable to find latest file at" "$work/log" && ok "missing checkpoint warns" \
  || fail "missing checkpoint: exit $code"
exit $((failures > 0))
