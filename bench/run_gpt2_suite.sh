#!/usr/bin/env bash
# GPT-2 benchmark suite of issue #6, run ON the GPU machine in one call, after scripts/device/build.sh:
#
#   bash scripts/device/build.sh && bash bench/run_gpt2_suite.sh        (device tool: carry .devdeps and .whl)
#
# For each model and GPU count it trains the same GPT-2 with
#   1 GPU : deepspeed.cpp (ours) [, ours with the reference cross-entropy: IMPLS+=ours_refce], the hand-written
#           LibTorch loop (if build-dev/bench/gpt2_libtorch_loop exists),
#           PyTorch eager, torch.compile [, DeepSpeed ZeRO-0 with DS_1GPU=1]
#   N GPUs: ours ZeRO 0-3, DeepSpeed ZeRO 0-3 (interleaved), PyTorch DDP, PyTorch FSDP2
# from the same derived ds_config (same micro-batch, accumulation, optimizer, schedule, clipping, bf16) on the
# same random-token file, with the same warm-up and timed steps. Every run leaves one JSON line in
# $OUT/results.jsonl; the logs go to $OUT/runs.log; the issue's targets and the table are printed last (and
# written to $OUT/table.md).
#
# Knobs (environment):
#   MODELS="124M"          models (124M 350M 774M 1.5B)        GPUS="1 4 2"     GPU counts, in this order
#                                                                               (those above the machine's skipped)
#   IMPLS="ours loop eager compile deepspeed ddp fsdp2"   (+ ours_refce; + profile: ours' kernel-time table,
#                          1 GPU, into $OUT/profile_<model>.md, with the kernel time by launching op;
#                          PROFILE_MODELS="1.5B" limits it to those models, PROFILE_TOP=20 rows by op;
#                          + loop_graph: the loop again with --cuda-graph, each micro-batch's forward and
#                          backward replayed as a CUDA graph, for what the kernel launches cost, 1 GPU;
#                          + ours_exp: ours on 1 GPU with the kernel experiments that are off by default,
#                          EXP_ENV / EXP_ARGS below; PROFILE_EXP=1 profiles that run instead of the default)
#   EXP_ENV="DS_CROSS_ENTROPY_STAGED=1 DS_LINEAR_EPILOGUE=1"
#   EXP_ARGS=""            (the example's own flags for ours_exp, e.g. "--linear aten")
#   STAGES="0 1 2 3"       ZeRO stages for N > 1        STAGES_1GPU="0"   ZeRO stages on 1 GPU (e.g. "2" with offload)
#   STEPS=20 WARMUP=10     timed / warm-up optimizer steps (warm-up rounded up to a multiple of STEPS)
#   SEQ_LEN=1024 GAS=1     sequence length, gradient accumulation steps
#   MICRO_124M=32 MICRO_350M=16 MICRO_774M=12 MICRO_1_5B=8   micro-batch per GPU
#   AC_1_5B=0 (AC_<model>=1: activation checkpointing for that model)
#   DS_CONFIG=examples/gpt2/ds_config_124M.json   optimizer/scheduler/bf16/clipping source
#   GRAD_ACCUM_DTYPE=""    "" = each engine's default; bf16 or fp32 sets data_types.grad_accum_dtype for all
#   ZERO_EXTRA=''          JSON merged into zero_optimization for both engines, e.g. '{"overlap_comm": true}'
#   DS_OPTIMIZER=ds        ds (DeepSpeed FusedAdam, JIT-built once up front) or torch-fused
#   PT_PRECISION=amp       amp or bf16-master for the PyTorch eager/compile/DDP rows; "amp bf16-master" runs the 1-GPU
#                          eager and compile rows with each recipe (issue #14 compares against the faster one;
#                          DDP takes the first)
#   DS_1GPU=0              1: also DeepSpeed ZeRO-0 on one GPU
#   MEMORY_PHASES=0        N: ours prints the device peak of forward / backward / step in its first N steps
#   BUDGET_S=520           no run starts after this many seconds (the table is still printed)
#   RUN_TIMEOUT=180        seconds per run
#   WORK=/tmp/gpt2_suite   scratch (configs, tokens), emptied first: another one for a suite run beside this one
#   BUILD=build-dev        our build tree (bin/deepspeed, examples/gpt2)    PYTHON=python3
#   CPU=1 NGPU=2           dry run on a CPU machine (Gloo, DS_ACCELERATOR=cpu), e.g. with
#                          MODELS=tiny SEQ_LEN=64 MICRO_tiny=8 DS_OPTIMIZER=torch-fused BUILD=build
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/bench-logs}
mkdir -p "$out"
work=${WORK:-/tmp/gpt2_suite}  # its own per suite running beside another (configs, tokens)
rm -rf "$work"
mkdir -p "$work"
# Each run's log is written under $OUT as it runs: a device call cut short by its time limit still brings it back.
logs=$out/logs
rm -rf "$logs"
mkdir -p "$logs"
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# DeepSpeed's op builder parses the list as numbers: "9.0a" (the device image's value) breaks its JIT build.
arch=${TORCH_CUDA_ARCH_LIST:-9.0}
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=${arch//a/}

MODELS=${MODELS:-124M}
GPUS=${GPUS:-1 4 2}
IMPLS=${IMPLS:-ours loop eager compile deepspeed ddp fsdp2}
STAGES=${STAGES:-0 1 2 3}
STAGES_1GPU=${STAGES_1GPU:-0}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-10}
SEQ_LEN=${SEQ_LEN:-1024}
GAS=${GAS:-1}
DS_CONFIG=${DS_CONFIG:-examples/gpt2/ds_config_124M.json}
GRAD_ACCUM_DTYPE=${GRAD_ACCUM_DTYPE:-}
ZERO_EXTRA=${ZERO_EXTRA:-}
DS_OPTIMIZER=${DS_OPTIMIZER:-ds}
PT_PRECISION=${PT_PRECISION:-amp}
DS_1GPU=${DS_1GPU:-0}
BUDGET_S=${BUDGET_S:-520}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
BUILD=${BUILD:-build-dev}
LOOP_BIN=${LOOP_BIN:-$BUILD/bench/gpt2_libtorch_loop}
PYTHON=${PYTHON:-python3}
CPU=${CPU:-0}
read -r -a exp_env <<<"${EXP_ENV-DS_CROSS_ENTROPY_STAGED=1 DS_LINEAR_EPILOGUE=1}"
read -r -a exp_args <<<"${EXP_ARGS-}"
profile_env=()
[ "${PROFILE_EXP:-0}" = 1 ] && profile_env=("${exp_env[@]}")

t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
stamp() { echo "[$(elapsed) s] $*"; }
has() { [[ " $IMPLS " == *" $1 "* ]]; }
results=$out/results.jsonl
: >"$results"
tools="$PYTHON bench/gpt2_suite_tools.py"
devflag=()
if [ "$CPU" = 1 ]; then
  ngpu=${NGPU:-2}; export DS_ACCELERATOR=cpu; devflag=(--device cpu)
else
  ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
fi
{
  [ "$CPU" = 1 ] || nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1
  $PYTHON -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
  echo "MODELS=$MODELS GPUS=$GPUS IMPLS=$IMPLS STAGES=$STAGES STEPS=$STEPS WARMUP=$WARMUP SEQ_LEN=$SEQ_LEN GAS=$GAS"
  echo "DS_CONFIG=$DS_CONFIG GRAD_ACCUM_DTYPE=$GRAD_ACCUM_DTYPE ZERO_EXTRA=$ZERO_EXTRA DS_OPTIMIZER=$DS_OPTIMIZER PT_PRECISION=$PT_PRECISION"
} >"$out/env.txt" 2>&1
cat "$out/env.txt"
gpus=""
for n in $GPUS; do [ "$n" -le "$ngpu" ] && gpus="$gpus $n"; done
[ -n "$gpus" ] || { echo "no usable GPU count in GPUS=$GPUS (machine has $ngpu)"; exit 1; }

# Warm-up rounded up to a multiple of STEPS: our example's last log line then covers exactly the timed steps.
k=$(( (WARMUP + STEPS - 1) / STEPS )); [ "$k" -ge 1 ] || k=1
warm=$(( k * STEPS ))
max_steps=$(( warm + STEPS ))

# DeepSpeed from the carried wheels (scripts/device/pack_deepspeed_wheels.sh).
if has deepspeed; then
  if ! $PYTHON -c "import deepspeed" >/dev/null 2>&1 && ls .whl/*.whl >/dev/null 2>&1; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      >"$work/pip.log" 2>&1 || { echo "pip install of .whl failed:"; tail -5 "$work/pip.log"; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  if ! $PYTHON -c "import deepspeed" >"$work/ds_import.log" 2>&1; then
    echo "deepspeed is not importable (carry .whl): DeepSpeed rows skipped"; tail -3 "$work/ds_import.log"
    IMPLS=${IMPLS//deepspeed/}
  elif [ "$DS_OPTIMIZER" = ds ]; then
    # DeepSpeed JIT-builds FusedAdam on first use; build it once here, outside every timed run.
    stamp "building DeepSpeed's FusedAdam (JIT, sm_${TORCH_CUDA_ARCH_LIST})"
    if ! timeout 300 $PYTHON -c "from deepspeed.ops.op_builder import FusedAdamBuilder; FusedAdamBuilder().load()" \
        >"$work/fused_adam_build.log" 2>&1; then
      echo "FusedAdam JIT build failed; DeepSpeed runs use torch.optim.AdamW(fused=True) (DS_OPTIMIZER=torch-fused):"
      grep -iE "error" "$work/fused_adam_build.log" | head -5
      DS_OPTIMIZER=torch-fused
    fi
    stamp "FusedAdam ready (DS_OPTIMIZER=$DS_OPTIMIZER)"
  fi
  if [[ "$ZERO_EXTRA" == *offload_optimizer* ]]; then
    # With offload DeepSpeed steps on the CPU with DeepSpeedCPUAdam, JIT-built on first use: build it here.
    stamp "building DeepSpeed's CPUAdam (JIT)"
    timeout 300 $PYTHON -c "from deepspeed.ops.op_builder import CPUAdamBuilder; CPUAdamBuilder().load()" \
      >"$work/cpu_adam_build.log" 2>&1 || { echo "CPUAdam JIT build failed:"; grep -iE "error" "$work/cpu_adam_build.log" | head -5; }
    stamp "CPUAdam ready"
  fi
fi

tokens=$work/tokens.bin
$tools tokens "$tokens" --tokens $((1 << 24))

# Our example prints the JSON summary line itself once it has --warmup-steps (proposed in
# docs/benchmarks_gpt2.md); until then parse-cpp reads its last "step" line.
ours_extra=()
if "$BUILD/examples/gpt2" --help 2>/dev/null | grep -q -- "--warmup-steps"; then ours_extra=(--warmup-steps "$warm"); fi
# MEMORY_PHASES=N: ours prints the device peak of forward / backward / step over its first N steps.
[ "${MEMORY_PHASES:-0}" -gt 0 ] && ours_extra+=(--memory-phases "$MEMORY_PHASES")
loop_extra=()
if [ -x "$LOOP_BIN" ] && "$LOOP_BIN" --help 2>/dev/null | grep -q -- "--warmup-steps"; then loop_extra=(--warmup-steps "$warm"); fi

run_idx=0
# run NAME command...  (the globals impl, model, n, stage, micro say what runs; ours and the loop are parsed
# by parse-cpp, the Python rows print their JSON line themselves)
run() {
  local name=$1; shift
  run_idx=$((run_idx + 1))
  local log=$logs/$(printf %02d $run_idx)_$name.log
  if [ "$(elapsed)" -ge "$BUDGET_S" ]; then
    stamp "skip $name (time budget $BUDGET_S s spent)"
    echo "{\"bench\": \"gpt2\", \"impl\": \"$impl\", \"model\": \"$model\", \"world_size\": $n, \"zero_stage\": ${stage:-null}, \"micro_batch\": $micro, \"grad_accum\": $GAS, \"error\": \"skipped: time budget\"}" >>"$results"
    return
  fi
  local s0=$(date +%s)
  { echo "### $name: $*"; } >"$log"
  timeout -k 20 "$RUN_TIMEOUT" "$@" >>"$log" 2>&1
  local rc=$?
  local line
  if [[ "$impl" == deepspeed.cpp* ]] || [[ "$impl" == libtorch-loop* ]]; then
    line=$($tools parse-cpp "$log" --impl "$impl" --model "$model" --world "$n" --stage "${stage:-0}" --micro "$micro" \
      --gas "$GAS" --seq-len "$SEQ_LEN" --max-steps "$max_steps" --log-interval "$STEPS" $ac_flag)
  else
    line=$(grep -E '^\{"bench": "gpt2"' "$log" | tail -1)
  fi
  if [ -z "$line" ] || { [ $rc -ne 0 ] && [[ "$line" != *tok_per_s\"* ]]; }; then
    local why
    why=$(grep -E "Error|error|OutOfMemory|out of memory|Killed" "$log" | tail -1 | cut -c1-150 | tr -d '"\\')
    [ $rc -eq 124 ] && why="timeout after $RUN_TIMEOUT s; $why"
    line="{\"bench\": \"gpt2\", \"impl\": \"$impl\", \"model\": \"$model\", \"world_size\": $n, \"zero_stage\": ${stage:-null}, \"micro_batch\": $micro, \"grad_accum\": $GAS, \"error\": \"exit $rc: $why\"}"
  fi
  echo "$line" >>"$results"
  stamp "$name: exit $rc, $(( $(date +%s) - s0 )) s: $(echo "$line" | $PYTHON -c 'import json,sys; r=json.loads(sys.stdin.read()); print(r.get("error") or "%.0f tok/s, MFU %s, peak %.2f GiB" % (r["tok_per_s"], "%.1f%%" % (100*r["mfu"]) if r.get("mfu") is not None else "n/a", r.get("peak_mem_gib_max") or 0))' 2>/dev/null)"
}

port=29600
# Order: what the issue's targets need first (1 GPU: ours, loop, eager, compile; then ours and DeepSpeed per
# ZeRO stage for each GPU count, the largest count first with the default GPUS), DDP and FSDP2 last, so a
# spent BUDGET_S drops the extras first.
pyconf() {  # the derived config of the PyTorch rows: the batch, optimizer, schedule, clipping, bf16 of the others
  cfg=$work/ds_${model}_${n}_pytorch.json
  $tools config "$DS_CONFIG" "$cfg" --micro "$micro" --gas "$GAS" --world "$n" --stage 0
}
for model in $MODELS; do
  mkey=${model//./_}
  micro_var=MICRO_$mkey; ac_var=AC_$mkey
  case $model in 124M|gpt2) dmicro=32;; 350M|gpt2-medium) dmicro=16;; 774M|gpt2-large) dmicro=12;; *) dmicro=8;; esac
  micro=${!micro_var:-$dmicro}
  ac_flag=""; [ "${!ac_var:-0}" = 1 ] && ac_flag="--activation-checkpointing"
  common=(--model "$model" --seq_len "$SEQ_LEN" --max-steps "$max_steps" --log-interval "$STEPS")
  pyargs=("${common[@]}" --warmup-steps "$warm" --data "$tokens" --data-format uint16 "${devflag[@]}" $ac_flag)
  for n in $gpus; do
    stamp "== $model, $n GPU(s), micro $micro x accum $GAS, seq $SEQ_LEN, $warm warm-up + $STEPS timed steps"
    if [ "$n" = 1 ]; then stages_here=$STAGES_1GPU; else stages_here=$STAGES; fi
    for stage in $stages_here; do
      cfg=$work/ds_${model}_${n}_z${stage}.json
      $tools config "$DS_CONFIG" "$cfg" --micro "$micro" --gas "$GAS" --world "$n" --stage "$stage" \
        --grad-accum-dtype "$GRAD_ACCUM_DTYPE" --zero-extra "$ZERO_EXTRA"
      if has ours; then
        impl=deepspeed.cpp; port=$((port + 1))
        run "ours_${model}_${n}gpu_z$stage" "$BUILD/bin/deepspeed" --num_gpus "$n" --master_port "$port" \
          "$BUILD/examples/gpt2" --deepspeed_config "$cfg" "${common[@]}" --data "$tokens" --data-format uint16 \
          "${ours_extra[@]}" $ac_flag
      fi
      if [ "$n" = 1 ] && has ours_exp; then  # the same run with the experiments: beside ours, on the same machine
        impl="deepspeed.cpp (experiments)"; port=$((port + 1))
        run "ours_exp_${model}" env "${exp_env[@]}" "$BUILD/bin/deepspeed" --num_gpus 1 --master_port "$port" \
          "$BUILD/examples/gpt2" --deepspeed_config "$cfg" "${common[@]}" --data "$tokens" --data-format uint16 \
          "${ours_extra[@]}" "${exp_args[@]}" $ac_flag
      fi
      if [ "$n" = 1 ] && has profile && [[ " ${PROFILE_MODELS:-$MODELS} " == *" $model "* ]] &&
         [ "$(elapsed)" -lt "$BUDGET_S" ]; then
        # Where ours spends a step: LibTorch's profiler over 5 steps after the warm-up (not a result row).
        port=$((port + 1))
        stamp "profile_${model}: ours${profile_env:+ with the experiments}, 5 steps"
        profile_args=()
        [ ${#profile_env[@]} -gt 0 ] && profile_args=("${exp_args[@]}")
        timeout -k 20 "$RUN_TIMEOUT" env "${profile_env[@]}" "$BUILD/bin/deepspeed" --num_gpus 1 --master_port "$port" \
          "$BUILD/examples/gpt2" "${profile_args[@]}" \
          --deepspeed_config "$cfg" --model "$model" --seq_len "$SEQ_LEN" --max-steps $((warm + 5)) \
          --log-interval "$warm" --warmup-steps "$warm" --profile-steps 5 --data "$tokens" --data-format uint16 \
          --profile-trace "$work/trace_${model}.json" $ac_flag >"$work/profile_${model}.log" 2>&1
        sed -n 's/^profile: //p' "$work/profile_${model}.log" | tee "$out/profile_${model}.md"
        # The same 5 steps by launching op (who owns each kernel), appended to the table.
        [ -f "$work/trace_${model}.json" ] && $PYTHON bench/trace_by_op.py "$work/trace_${model}.json" --steps 5 \
          --top ${PROFILE_TOP:-20} | sed -n 's/^trace: //p' | tee -a "$out/profile_${model}.md"
      fi
      if [ "$n" = 1 ] && has ours_refce; then  # ours with the upcast cross-entropy: what the fused loss gains
        impl="deepspeed.cpp (reference CE)"; port=$((port + 1))
        DS_REFERENCE_CROSS_ENTROPY=1 run "ours_refce_${model}" "$BUILD/bin/deepspeed" --num_gpus 1 --master_port "$port" \
          "$BUILD/examples/gpt2" --deepspeed_config "$cfg" "${common[@]}" --data "$tokens" --data-format uint16 \
          "${ours_extra[@]}" $ac_flag
      fi
      if [ "$n" = 1 ] && has loop && [ -x "$LOOP_BIN" ]; then
        impl=libtorch-loop
        run "loop_${model}" "$LOOP_BIN" --deepspeed_config "$cfg" "${common[@]}" --data "$tokens" --data-format uint16 \
          "${loop_extra[@]}" "${devflag[@]}" $ac_flag
      fi
      if [ "$n" = 1 ] && has loop_graph && [ -x "$LOOP_BIN" ] && [ "$CPU" != 1 ]; then
        impl=libtorch-loop-graph
        run "loop_graph_${model}" "$LOOP_BIN" --deepspeed_config "$cfg" "${common[@]}" --data "$tokens" \
          --data-format uint16 "${loop_extra[@]}" "${devflag[@]}" $ac_flag --cuda-graph
      fi
      if has deepspeed && { [ "$n" -gt 1 ] || [ "$DS_1GPU" = 1 ]; }; then
        impl=deepspeed
        run "deepspeed_${model}_${n}gpu_z$stage" $PYTHON -m torch.distributed.run --standalone --nproc_per_node "$n" \
          bench/gpt2_deepspeed.py --deepspeed_config "$cfg" "${pyargs[@]}" --optimizer "$DS_OPTIMIZER"
      fi
    done
    stage=""
    if [ "$n" = 1 ]; then
      pyconf
      read -r -a recipes <<<"$PT_PRECISION"
      for mode in eager compile; do
        has $mode || continue
        impl=pytorch-$mode
        for prec in "${recipes[@]}"; do
          name=${mode}_${model}; [ ${#recipes[@]} -gt 1 ] && name+=_$prec
          run "$name" $PYTHON bench/gpt2_pytorch.py --mode $mode --deepspeed_config "$cfg" "${pyargs[@]}" \
            --precision "$prec"
        done
      done
    fi
  done
  for n in $gpus; do
    [ "$n" -gt 1 ] || continue
    stage=""
    pyconf
    for mode in ddp fsdp2; do
      has $mode || continue
      impl=pytorch-$mode
      prec=${PT_PRECISION%% *}; [ $mode = fsdp2 ] && prec=amp
      run "${mode}_${model}_${n}gpu" $PYTHON -m torch.distributed.run --standalone --nproc_per_node "$n" \
        bench/gpt2_pytorch.py --mode $mode --deepspeed_config "$cfg" "${pyargs[@]}" --precision "$prec"
    done
  done
done

for f in "$logs"/[0-9]*.log; do [ -f "$f" ] && { cat "$f"; echo; }; done >"$out/runs.log"
[ -f "$work/fused_adam_build.log" ] && cp "$work/fused_adam_build.log" "$out/fused_adam_build.log"
stamp "done"
echo
$tools table "$results" | tee "$out/table.md"
