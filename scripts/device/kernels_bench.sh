#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps) for issue #14 (transformer kernels): build, the ops' GPU tests, the SDPA
# backend table at GPT-2's shapes (bench/sdpa_bench), and GPT-2 rows per attention backend (and with the fused
# kernels on and off where they exist), all in one call so the rows compare. Logs and tables go to $OUT.
#
#   MODELS="124M 350M" ATTN="auto cudnn fa3" STEPS=60 WARM=20 bash scripts/device/kernels_bench.sh
# VARIANTS: default (every fused op; since 2026-12-05 the example's --linear ops with the timed GEMMs, so
# ops_linear, gemm_tuned and the *_tuned variants add only their other switches), untuned (DS_GEMM_TUNED=0:
# ops::linear on LibTorch's GEMMs and the column-sum kernel), aten_linear (--linear aten with DS_GEMM_TUNED=0:
# the default before 2026-12-05), reference (none: DS_REFERENCE_ADD_LAYER_NORM=1 DS_REFERENCE_BIAS_GELU=1),
# ref_ln / ref_gelu / ref_adam (one op on its reference: DS_REFERENCE_ADAM=1 is LibTorch's fused Adam with the
# separate clip and copy passes), ops_linear (--linear ops: the biased projections through ops::linear),
# tput_nosync (timers.throughput.synchronized false: no device synchronization around each micro-step),
# host_norm (DS_HOST_GRAD_NORM=1: the gradient norm read on the host before the update, as before),
# step_behind (DS_STEP_BEHIND_FORWARD=1: the optimizer step in parts on a side stream behind the next forward),
# stage1 / stage2 / stage3 (the same run at that ZeRO stage: the device Adam over master shards).
# TESTS="core_test:*Cuda*:*Gpu* adam_device_gpu_test": GPU test binaries run directly (an optional gtest filter
# after the colon), after the ops' tests.
# ce_staged (DS_CROSS_ENTROPY_STAGED=1: the cross-entropy row kept in shared memory between its passes),
# no_unroll (DS_BIAS_GELU_UNROLL=1: the bias + GELU kernels with one load in flight per thread, the default before
# 2026-12-05's eighth session), ln_unpipelined (DS_ADD_LAYER_NORM_PIPELINED=0: the LayerNorm backward without
# dh_out prefetched, likewise), ln_wide / ln_wide2 (DS_ADD_LAYER_NORM_WIDE=1 / 2: the LayerNorm backward with
# one 16-byte pack a thread, one or two rows' loads ahead), gemm_memset (DS_GEMM_MEMSET_FREE=0: every GEMM
# algorithm offered within LibTorch's cuBLASLt workspace and run with it, a memset before each launch on Hopper;
# the default before the eleventh session of 2026-12-05),
# linear_epilogue (--linear ops with DS_LINEAR_EPILOGUE=1: the bias gradients in cuBLASLt's GEMM epilogue),
# experiments (all of them), gemm_tuned (--linear ops with DS_GEMM_TUNED=1: every GEMM of the linear layers with
# the fastest algorithm cuBLASLt offers for its shape of those that give the heuristic's first's bits, timed in
# the first step), gemm_tuned_any (DS_GEMM_TUNED=any: the fastest of all, whatever their order of addition),
# experiments_tuned (both),
# mlp_epilogue (DS_MLP_EPILOGUE=1: the MLP as ops::gelu_mlp, bias and GELU in cuBLASLt's GEMM epilogues),
# mlp_epilogue_tuned (that with gemm_tuned), gelu_tanhf / gelu_tanhf_tuned (DS_BIAS_GELU_TANHF=1: 16-bit bias + GELU
# on tanhf's form, the kernels before the σ form; alone and with gemm_tuned), ln_split / ln_split_tuned
# (DS_ADD_LAYER_NORM_SPLIT=1: the LayerNorm backward in two passes; alone and with gemm_tuned; measured slower),
# ref_norm / ref_norm_tuned (DS_REFERENCE_GRAD_NORM=1: the gradient norm through _foreach_norm, as before the
# one-pass kernel became the default; alone and with gemm_tuned), ref_chunks / ref_chunks_tuned
# (DS_REFERENCE_LINEAR_CHUNKS=1: c_attn's q, k, v split by autograd, a cat and a separate bias-gradient pass in
# backward, as before ops::linear_chunks became the default; alone and with gemm_tuned), bias_kernel_tuned
# (gemm_tuned with DS_LINEAR_BIAS_KERNEL=1: the biased layers' bias gradients from the column-sum kernel, their
# weight GEMMs without the BGRADB epilogue), qkv_attention (DS_QKV_ATTENTION=1, the default since 2026-12-05's
# twelfth session: c_attn as ops::linear and ops::qkv_attention, cuDNN's backward writing dq, dk, dv into c_attn's
# output gradient: no joining pass, the bias gradient from the weight GEMM's epilogue), ref_qkv (DS_QKV_ATTENTION=0:
# linear_chunks and SDPA, as before), qkv_bias_kernel (qkv_attention with DS_LINEAR_BIAS_KERNEL=1: the bias
# gradients from the column-sum kernel instead).
# PROFILE_MODELS="1.5B": one more run of each, profiled over 5 steps after the warm-up (device time per kernel
# category, the top kernels, the idle time and its largest gaps), per PROFILE_VARIANTS (default: default).
# TRACE=1: those runs also write a Chrome trace, read by bench/trace_gaps.py (which host operator launched the
# work after each idle gap and each memset; the host calls that wait for the device); the trace comes back gzipped.
# sdpa_bench, gemm_bench, gemm_launch_probe and ops_bench run where BUILD_TARGETS built them (SDPA=0, GEMM=0,
# PROBE=0, OPS=0 skip them).
set -uo pipefail
source "$(dirname "$0")/env.sh"
describe_machine
bash scripts/device/build.sh ${BUILD_TARGETS:-} >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }
stamp "built"
# The binaries directly (ctest starts CUDA once per case: 95 cases took minutes); they print each case's error.
for t in add_layer_norm_gpu_test bias_gelu_gpu_test cross_entropy_gpu_test; do
  [ -x build-dev/tests/$t ] && build-dev/tests/$t >"$out/$t.log" 2>&1
  [ -f "$out/$t.log" ] && grep -E "PASSED|FAILED" "$out/$t.log" | sed "s/^/$t: /"
done
for spec in ${TESTS:-}; do
  t=${spec%%:*} filter=""
  [ "$t" != "$spec" ] && filter="--gtest_filter=${spec#*:}"
  timeout 120 build-dev/tests/$t $filter >"$out/$t.log" 2>&1
  echo "$t: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/$t.log" | tr '\n' ' ')"
done
if [ "${SDPA:-1}" = 1 ] && [ -x build-dev/bench/sdpa_bench ]; then
  build-dev/bench/sdpa_bench --iters 30 | tee "$out/sdpa.md"
  stamp "sdpa_bench"
fi
# bench/gemm_bench, where built (BUILD_TARGETS naming gemm_bench; GEMM=0 skips it): the step's GEMMs for MODELS
# as LibTorch runs them against every algorithm cuBLASLt's heuristic offers, and BGRADB against mm + sum.
if [ "${GEMM:-1}" = 1 ] && [ -x build-dev/bench/gemm_bench ]; then
  build-dev/bench/gemm_bench --models "${MODELS:-124M}" >"$out/gemm.md" 2>&1
  stamp "gemm_bench: exit $? $(grep -E '^[0-9.]+[MB]: GEMMs' "$out/gemm.md" | tr '\n' ' ')"
fi
# bench/gemm_launch_probe, where built (PROBE=0 skips it): the device activities and back-to-back time of each
# GEMM call for MODELS, algorithm by algorithm, with and without a workspace.
if [ "${PROBE:-1}" = 1 ] && [ -x build-dev/bench/gemm_launch_probe ]; then
  build-dev/bench/gemm_launch_probe --models "${MODELS:-124M}" >"$out/gemm_probe.md" 2>&1
  stamp "gemm_launch_probe: exit $?"
fi
# bench/ops_bench, where built (BUILD_TARGETS naming ops_bench; OPS=0 skips it): each memory-bound kernel of ops/
# alone beside what it replaces, at MODELS' shapes (time and the op's bytes per second).
if [ "${OPS:-1}" = 1 ] && [ -x build-dev/bench/ops_bench ]; then
  build-dev/bench/ops_bench --models "${MODELS:-124M}" >"$out/ops.md" 2>&1
  stamp "ops_bench: exit $?"
fi

work=/tmp/kernels_bench
mkdir -p "$work"
tools="python3 bench/gpt2_suite_tools.py"
[ -f "$work/tokens.bin" ] || $tools tokens "$work/tokens.bin" --tokens $((1 << 24)) >/dev/null
steps=${STEPS:-60} warm=${WARM:-20}
port=29750
# Sets env_extra, args_extra and cfg for variant $1 of model $2 (micro-batch $3).
variant_settings() {
  local variant=$1 model=$2 micro=$3
  env_extra=() args_extra=() cfg="$work/cfg_$model.json"
  case $variant in
    default) ;;
    reference) env_extra=(DS_REFERENCE_ADD_LAYER_NORM=1 DS_REFERENCE_BIAS_GELU=1) ;;
    ref_ln) env_extra=(DS_REFERENCE_ADD_LAYER_NORM=1) ;;
    ref_gelu) env_extra=(DS_REFERENCE_BIAS_GELU=1) ;;
    ref_adam) env_extra=(DS_REFERENCE_ADAM=1) ;;
    ce_staged) env_extra=(DS_CROSS_ENTROPY_STAGED=1) ;;
    no_unroll) env_extra=(DS_BIAS_GELU_UNROLL=1) ;;
    ln_unpipelined) env_extra=(DS_ADD_LAYER_NORM_PIPELINED=0) ;;
    ln_wide) env_extra=(DS_ADD_LAYER_NORM_WIDE=1) ;;
    ln_wide2) env_extra=(DS_ADD_LAYER_NORM_WIDE=2) ;;
    gemm_memset) env_extra=(DS_GEMM_MEMSET_FREE=0) ;;
    linear_epilogue) env_extra=(DS_LINEAR_EPILOGUE=1) args_extra=(--linear ops) ;;
    experiments) env_extra=(DS_CROSS_ENTROPY_STAGED=1 DS_LINEAR_EPILOGUE=1)
      args_extra=(--linear ops) ;;
    ops_linear) args_extra=(--linear ops) ;;
    gemm_tuned) env_extra=(DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    gemm_tuned_any) env_extra=(DS_GEMM_TUNED=any) args_extra=(--linear ops) ;;
    untuned) env_extra=(DS_GEMM_TUNED=0) ;;
    aten_linear) env_extra=(DS_GEMM_TUNED=0) args_extra=(--linear aten) ;;
    mlp_epilogue) env_extra=(DS_MLP_EPILOGUE=1) ;;
    mlp_epilogue_tuned) env_extra=(DS_MLP_EPILOGUE=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    gelu_tanhf) env_extra=(DS_BIAS_GELU_TANHF=1) ;;
    ln_split) env_extra=(DS_ADD_LAYER_NORM_SPLIT=1) ;;
    ln_split_tuned) env_extra=(DS_ADD_LAYER_NORM_SPLIT=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    gelu_tanhf_tuned) env_extra=(DS_BIAS_GELU_TANHF=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    ref_norm) env_extra=(DS_REFERENCE_GRAD_NORM=1) ;;
    ref_norm_tuned) env_extra=(DS_REFERENCE_GRAD_NORM=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    qkv_attention) env_extra=(DS_QKV_ATTENTION=1) ;;  # the default since the twelfth session
    ref_qkv) env_extra=(DS_QKV_ATTENTION=0) ;;
    qkv_bias_kernel) env_extra=(DS_QKV_ATTENTION=1 DS_LINEAR_BIAS_KERNEL=1) ;;
    ref_chunks) env_extra=(DS_REFERENCE_LINEAR_CHUNKS=1) ;;
    ref_chunks_tuned) env_extra=(DS_REFERENCE_LINEAR_CHUNKS=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    bias_kernel_tuned) env_extra=(DS_LINEAR_BIAS_KERNEL=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    experiments_tuned) env_extra=(DS_CROSS_ENTROPY_STAGED=1 DS_LINEAR_EPILOGUE=1 DS_GEMM_TUNED=1) args_extra=(--linear ops) ;;
    stage[123])
      $tools config examples/gpt2/ds_config_124M.json "$work/cfg_${model}_$variant.json" --micro "$micro" --gas 1 \
        --world 1 --stage "${variant#stage}" --grad-accum-dtype "" --zero-extra ""
      cfg=$work/cfg_${model}_$variant.json ;;
    host_norm) env_extra=(DS_HOST_GRAD_NORM=1) ;;  # the gradient norm read on the host before the update
    step_behind) env_extra=(DS_STEP_BEHIND_FORWARD=1) ;;  # the optimizer step behind the next forward
    tput_nosync)  # the throughput timer off the device: host clock only
      python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["timers"]={"throughput":{"synchronized":False}}; json.dump(c,open(sys.argv[2],"w"))' \
        "$cfg" "$work/cfg_${model}_nosync.json"
      cfg=$work/cfg_${model}_nosync.json ;;
    *) echo "kernels_bench.sh: unknown variant '$variant'" >&2; return 1 ;;
  esac
}
micro_of() { case $1 in 124M) echo 32 ;; 350M) echo 16 ;; *) echo 8 ;; esac; }
# PROFILE_MODELS=none: no profiled run, as in bench/run_gpt2_suite.sh.
profile_models=${PROFILE_MODELS:-}
[ "$profile_models" = none ] && profile_models=""
for model in ${MODELS:-124M} $profile_models; do
  $tools config examples/gpt2/ds_config_124M.json "$work/cfg_$model.json" --micro "$(micro_of "$model")" --gas 1 \
    --world 1 --stage 0 --grad-accum-dtype "" --zero-extra ""
done
for model in ${MODELS:-124M}; do
  micro=$(micro_of "$model")
  for attn in ${ATTN:-auto cudnn fa3}; do
    for variant in ${VARIANTS:-default}; do
      port=$((port + 1))
      name="gpt2_${model}_${attn}_${variant}"
      variant_settings "$variant" "$model" "$micro" || continue
      env "${env_extra[@]}" build-dev/bin/deepspeed --num_gpus 1 --master_port $port build-dev/examples/gpt2 \
        --deepspeed_config "$cfg" --model "$model" --seq_len 1024 --max-steps $((warm + steps)) \
        --log-interval "$steps" --warmup-steps "$warm" --attention "$attn" --data "$work/tokens.bin" \
        --data-format uint16 "${args_extra[@]}" >"$out/$name.log" 2>&1
      rc=$?
      line=$(grep -E '^\{.*"bench":"gpt2"' "$out/$name.log" | tail -1)
      echo "{\"run\": \"$name\", \"rc\": $rc, \"summary\": ${line:-null}}" >>"$out/kernels_results.jsonl"
      stamp "$name: exit $rc $(echo "$line" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read() or "{}"); print("%.0f tok/s, MFU %.1f%%, loss_last %.4f" % (r["tok_per_s"], 100*r["mfu"], r["loss_last"]) if "tok_per_s" in r else "")' 2>/dev/null)"
    done
  done
done
# PROFILE_VARIANTS (default: default): the profiled runs, one per model and variant.
for model in $profile_models; do
  for variant in ${PROFILE_VARIANTS:-default}; do
    port=$((port + 1))
    variant_settings "$variant" "$model" "$(micro_of "$model")" || continue
    env "${env_extra[@]}" build-dev/bin/deepspeed --num_gpus 1 --master_port $port build-dev/examples/gpt2 \
      --deepspeed_config "$cfg" --model "$model" --seq_len 1024 --max-steps $((warm + 5)) \
      --log-interval 5 --warmup-steps "$warm" --profile-steps 5 --data "$work/tokens.bin" --data-format uint16 \
      "${args_extra[@]}" ${TRACE:+--profile-trace "$work/trace_${model}_$variant.json"} \
      >"$out/profile_${model}_$variant.log" 2>&1
    stamp "profile $model $variant: exit $?"
    if [ -n "${TRACE:-}" ] && [ -f "$work/trace_${model}_$variant.json" ]; then
      python3 bench/trace_gaps.py "$work/trace_${model}_$variant.json" >"$out/gaps_${model}_$variant.txt" 2>&1
      head -80 "$out/gaps_${model}_$variant.txt"
      gzip -c "$work/trace_${model}_$variant.json" >"$work/trace.json.gz"
      [ "$(stat -c %s "$work/trace.json.gz")" -lt 15000000 ] && mv "$work/trace.json.gz" "$out/trace_${model}_$variant.json.gz"
    fi
    grep -vE "^\[|^step|^\{" "$out/profile_${model}_$variant.log" | head -60
  done
done
stamp "kernels bench"
cd "$out" && tar czf /tmp/all.tgz . && rm -rf "$out"/* && mv /tmp/all.tgz "$out/all.tgz"
