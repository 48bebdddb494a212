#!/usr/bin/env bash
# Run ON a several-GPU machine (nvidia-h200-x2 / -x4; carry .devdeps and .whl) for issue #15, one phase per call
# (each fits the device tool's 10-minute limit). Logs, tables and results.jsonl go to $OUT.
#
#   bash scripts/device/multi_gpu.sh tests      build, ctest -L gpu on every visible GPU (the NCCL variants run)
#   bash scripts/device/multi_gpu.sh suite      GPT-2 MODEL (124M) on 1, 2, 4 GPUs: ours ZeRO 0-3, DeepSpeed 0.19.8
#                                               ZeRO 0-3 (overlap_comm), DDP, FSDP2 (bench/run_gpt2_suite.sh)
#   bash scripts/device/multi_gpu.sh same       the same, ours on the reference ops (DS_REFERENCE_*=1): identical
#                                               kernels to DeepSpeed's PyTorch model
#   bash scripts/device/multi_gpu.sh offload    the 3.8B model with offload_optimizer on all GPUs, stages 2 and 3,
#                                               ours and DeepSpeed
#   bash scripts/device/multi_gpu.sh zero3      the largest model the GPUs train with ZeRO-3 and no offload
#                                               (default 64 × 5120: 20.4B parameters), with the estimate beside it
#   bash scripts/device/multi_gpu.sh reductions the reducer's bound on reductions in flight (docs/zero.md,
#                                               "Memory"): MODEL (1.5B) at STAGES (2 3) on all GPUs with the bound
#                                               (DS_REDUCTIONS_IN_FLIGHT 2, the default) and without (0): peak, tok/s
# Knobs: MODEL (124M), GPUS ("1 2 4", counts above the machine's are skipped), STAGES ("0 1 2 3"), STEPS (20),
# WARMUP (10), IMPLS (suite: "ours deepspeed ddp fsdp2"), BIG_LAYERS (64), BIG_EMBD (5120), BIG_HEADS (40).
set -uo pipefail
source "$(dirname "$0")/env.sh"
what=${1:-tests}
ngpu=$(nvidia-smi -L | wc -l)
describe_machine
bash scripts/device/build.sh >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
stamp "built ($ngpu GPUs)"
suite() {  # suite NAME ENV...: one suite run into /tmp/NAME, appended to $out
  local name=$1; shift
  env OUT=/tmp/$name MODELS=${MODEL:-124M} GPUS="${GPUS:-1 2 4}" STAGES="${STAGES:-0 1 2 3}" STEPS=${STEPS:-20} \
    WARMUP=${WARMUP:-10} RUN_TIMEOUT=${RUN_TIMEOUT:-180} BUDGET_S=${BUDGET_S:-480} "$@" bash bench/run_gpt2_suite.sh \
    2>&1 | grep -E "^\[" | tail -20
  cat /tmp/$name/results.jsonl >>"$out/results.jsonl"
  cat /tmp/$name/runs.log >>"$out/runs.log"
}
case $what in
  tests)
    (cd build-dev && ctest -L gpu --output-on-failure >"$out/ctest_gpu.log" 2>&1)
    grep -E "tests passed|\*\*\*|Failed |Not Run" "$out/ctest_gpu.log" | head -40
    ;;
  suite)
    suite suite IMPLS="${IMPLS:-ours deepspeed ddp fsdp2}" ZERO_EXTRA='{"overlap_comm": true}'
    ;;
  same)
    DS_REFERENCE_CROSS_ENTROPY=1 DS_REFERENCE_ADD_LAYER_NORM=1 DS_REFERENCE_BIAS_GELU=1 \
      suite same IMPLS="ours deepspeed" ZERO_EXTRA='{"overlap_comm": true}'
    ;;
  offload)
    offload='{"offload_optimizer": {"device": "cpu", "pin_memory": true}}'
    MODEL=3.8B suite offload IMPLS="ours deepspeed" GPUS="$ngpu" STAGES="2 3" STEPS=3 WARMUP=3 AC_3_8B=1 \
      RUN_TIMEOUT=300 ZERO_EXTRA="$offload"
    ;;
  zero3)
    # Each rank builds the model in fp32 on the host before ZeRO-3 partitions it: 4 × 82 GB at 20.4B, which an
    # x4 machine's 512 GiB holds.
    layers=${BIG_LAYERS:-64} embd=${BIG_EMBD:-5120} heads=${BIG_HEADS:-40}
    [ -f /tmp/tokens.bin ] || python3 bench/gpt2_suite_tools.py tokens /tmp/tokens.bin --tokens $((1 << 24)) >/dev/null
    params=$(python3 -c "print(12 * $layers * $embd**2 + 13 * $layers * $embd + 50304 * $embd + 1024 * $embd)")
    build-dev/bin/deepspeed_estimate --deepspeed_config scripts/device/ds_config_gpt_zero3.json --params "$params" \
      --gpus-per-node "$ngpu" | tee "$out/estimate_zero3.txt" | tail -8
    build-dev/bin/deepspeed --num_gpus "$ngpu" --master_port 29650 build-dev/examples/gpt2 --n_layer "$layers" \
      --n_embd "$embd" --n_head "$heads" --vocab 50304 --block_size 1024 --seq_len 1024 --data /tmp/tokens.bin \
      --data-format uint16 --max-steps 6 --warmup-steps 2 --log-interval 1 --activation-checkpointing \
      --deepspeed_config scripts/device/ds_config_gpt_zero3.json >"$out/zero3_big.log" 2>&1
    echo "GPT $params parameters, ZeRO-3 on $ngpu GPUs: exit $?"
    grep -E "^step|estimated|Model states|rror" "$out/zero3_big.log" | tail -14
    ;;
  reductions)
    [ -f /tmp/tokens.bin ] || python3 bench/gpt2_suite_tools.py tokens /tmp/tokens.bin --tokens $((1 << 24)) >/dev/null
    model=${MODEL:-1.5B}
    for stage in ${STAGES:-2 3}; do
      python3 bench/gpt2_suite_tools.py config examples/gpt2/ds_config_124M.json "/tmp/cfg_reductions_$stage.json" \
        --micro 8 --gas 1 --world "$ngpu" --stage "$stage" --grad-accum-dtype "" --zero-extra ""
      for n in 2 0; do
        log="$out/reductions_${model}_z${stage}_$n.log"
        DS_REDUCTIONS_IN_FLIGHT=$n build-dev/bin/deepspeed --num_gpus "$ngpu" --master_port $((29600 + 10 * stage + n)) \
          build-dev/examples/gpt2 --deepspeed_config "/tmp/cfg_reductions_$stage.json" --model "$model" --seq_len 1024 \
          --data /tmp/tokens.bin --data-format uint16 --max-steps 25 --warmup-steps 10 --log-interval 15 \
          --memory-phases 3 >"$log" 2>&1
        rc=$?
        echo "$model stage $stage, DS_REDUCTIONS_IN_FLIGHT=$n: exit $rc $(grep -E '^\{.*"bench":"gpt2"' "$log" | tail -1 |
          python3 -c 'import json,sys; r=json.loads(sys.stdin.read() or "{}"); print("%.0f tok/s, peak %.2f GiB" % (r["tok_per_s"], r["peak_mem_gib_max"]) if "tok_per_s" in r else "")')"
      done
    done
    ;;
  *) echo "multi_gpu.sh: unknown phase '$what' (tests, suite, same, offload, zero3, reductions)" >&2; exit 2 ;;
esac
[ -s "$out/results.jsonl" ] && python3 bench/gpt2_suite_tools.py table "$out/results.jsonl" | tee "$out/table.md" | tail -24
stamp "done"
cd "$out" && tar czf /tmp/all.tgz . && rm -rf "$out"/* && mv /tmp/all.tgz "$out/all.tgz"
