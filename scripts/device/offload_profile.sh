#!/usr/bin/env bash
# Run ON a one-GPU machine (carry .devdeps): where an offloaded step's time goes (issue #12). The host's CPU Adam
# bandwidth (bench/cpu_adam_bench), then the 3.8B preset at stage 2 + offload_optimizer with wall_clock_breakdown
# (DeepSpeed's fwd/bwd/step and optimizer_gradients/_step/_allgather lines), with and without clipping.
# Everything under $OUT comes back as one archive, all.tgz.
#   CLIPS="1.0 0" GASES="1" STAGES=2 IMPLS=ours STEPS=3 WARMUP=2 bash scripts/device/offload_profile.sh
# RATIO (1) is offload_optimizer.ratio; PARAM=1 adds offload_param (stage 3: weight shards on the host); MODEL
# (3.8B) is the example's preset, trained with activation checkpointing; BUCKET sets reduce_bucket_size (the
# granularity of ratio: whole buckets of every group, and at stage 3 each unit is a group). BREAKDOWN=0 leaves wall_clock_breakdown off (its timers synchronise the device between phases).
# CHECK=1 first runs the offload GPU tests (ctest -R offload -L gpu) and core_test's CUDA cases; ADAM_BENCH=0 skips cpu_adam_bench;
# IMPLS="deepspeed" runs DeepSpeed 0.19.8 (carry .whl) on the same configs. SUPER=1 sets
# offload_optimizer.super_offload (ours: speculative host updates with clipping; leave it off for DeepSpeed);
# PERC sets its cpuadam_cores_perc (the speculative updates' share of the threads). SKIP_BUILD=1 skips our build
# (a DeepSpeed-only call). Each run's log is under $OUT/<run>/logs while it runs, so a call cut short still shows it.
set -uo pipefail
source "$(dirname "$0")/env.sh"
STEPS=${STEPS:-3} WARMUP=${WARMUP:-2} CLIPS=${CLIPS:-1.0 0} GASES=${GASES:-1} STAGES=${STAGES:-2}
IMPLS=${IMPLS:-ours}
describe_machine
ds_prebuild=""
if [[ "$IMPLS" == *deepspeed* ]] && ls .whl/*.whl >/dev/null 2>&1; then
  export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$out/torch_extensions}  # left out of the archive (size)
  # DeepSpeed JIT-builds FusedAdam and CPUAdam on first use (minutes each, which pushed whole calls past the
  # device's 600 s limit): build them into the extension cache while ours compiles; the suite then loads them.
  (
    arch=${TORCH_CUDA_ARCH_LIST:-9.0}; export TORCH_CUDA_ARCH_LIST=${arch//a/}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site python3 -c "from deepspeed.ops.op_builder import FusedAdamBuilder, CPUAdamBuilder
FusedAdamBuilder().load(); CPUAdamBuilder().load()"
  ) >"$out/ds_prebuild.log" 2>&1 &
  ds_prebuild=$!
fi
# core_test for CHECK=1's CUDA cases (device optimizers against the host's), also in a later SKIP_BUILD=1 call.
[ "${SKIP_BUILD:-0}" = 1 ] || bash scripts/device/build.sh gpt2 deepspeed_launcher deepspeed_estimate cpu_adam_bench \
  zero_init_memory core_test >"$out/build.log" 2>&1 \
  || { cat "$out/build.log"; exit 1; }
stamp "built"
if [ -n "$ds_prebuild" ]; then
  wait "$ds_prebuild" || { echo "DeepSpeed op pre-build failed:"; tail -5 "$out/ds_prebuild.log"; }
  stamp "DeepSpeed's FusedAdam and CPUAdam built"
fi
free -g | head -2
if [ "${CHECK:-0}" = 1 ]; then
  (cd build-dev && ctest -R "offload|on_host" -L gpu --output-on-failure >"$out/ctest_offload.log" 2>&1)
  grep -E "ok: |FAIL|tests passed|Failed|Passed" "$out/ctest_offload.log" | head -24
  build-dev/tests/core_test --gtest_filter='*Cuda*' 2>&1 | tee "$out/core_test_cuda.log" | grep -E "^\[ +(OK|FAILED|SKIPPED|PASSED) "
  stamp "offload GPU tests"
fi
if [ "${ADAM_BENCH:-1}" = 1 ]; then
  build-dev/bench/cpu_adam_bench --threads "$(nproc)" --sizes 128M,1G --iters 3 >"$out/cpu_adam_bench.txt" 2>&1
  tail -20 "$out/cpu_adam_bench.txt"
  stamp "cpu_adam_bench"
fi
param=""
[ "${PARAM:-0}" = 1 ] && param=", \"offload_param\": {\"device\": \"cpu\", \"pin_memory\": true}"
[ -n "${BUCKET:-}" ] && param="$param, \"reduce_bucket_size\": $BUCKET"
super=""
[ "${SUPER:-0}" = 1 ] && super=', "super_offload": true'
[ -n "${PERC:-}" ] && super="$super, \"cpuadam_cores_perc\": $PERC"
offload="{\"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true, \"ratio\": ${RATIO:-1}$super}$param}"
model=${MODEL:-3.8B}
# RUNS="clip:gas ..." picks single pairs instead of CLIPS × GASES.
pairs=${RUNS:-$(for c in $CLIPS; do for g in $GASES; do echo -n "$c:$g "; done; done)}
for pair in $pairs; do
  clip=${pair%%:*} gas=${pair##*:}
  cfg=/tmp/ds_clip_$clip.json
  python3 - "$clip" "$cfg" "${BREAKDOWN:-1}" <<'PY'
import json, sys
c = json.load(open("examples/gpt2/ds_config_124M.json"))
c["gradient_clipping"] = float(sys.argv[1]); c["wall_clock_breakdown"] = sys.argv[3] == "1"
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
  for stage in $STAGES; do
    name=${model}_s${stage}_clip${clip}_gas$gas
    extra=$offload; [ "$stage" = 0 ] && extra=""
    # The suite writes under $out so that its logs come back even when the call's time limit cuts it short.
    env OUT=$out/$name MODELS=$model GPUS=1 STEPS=$STEPS WARMUP=$WARMUP "AC_${model//./_}=1" RUN_TIMEOUT=${RUN_TIMEOUT:-200} \
      BUDGET_S=900 IMPLS="$IMPLS" DS_1GPU=1 GAS=$gas STAGES_1GPU=$stage ZERO_EXTRA="$extra" DS_CONFIG=$cfg \
      bash bench/run_gpt2_suite.sh 2>&1 | grep -E "^\[" | tail -4
    cat $out/$name/results.jsonl >>"$out/results.jsonl"
    grep -E "time \(ms\)|Model states|memory phases|step=|ZeRO-3:|super_offload|norm" $out/$name/runs.log | tail -16
  done
done
[ -s "$out/results.jsonl" ] && python3 bench/gpt2_suite_tools.py table "$out/results.jsonl" | tee "$out/table.md" | tail -10
stamp "done"
# The JIT-built DeepSpeed ops (tens of MB) stay behind: with them the archive is over what a call brings back.
cd "$out" && tar czf /tmp/all.tgz --exclude=./torch_extensions . && rm -rf "$out"/* && mv /tmp/all.tgz "$out/all.tgz"
