#!/usr/bin/env bash
# Run ON a one-GPU machine (carry .devdeps and .whl): issue #12's throughput targets on the 3.8B preset, stage 2
# + offload_optimizer, gradient_clipping 1.0, DeepSpeed 0.19.8 and ours on ONE machine. DeepSpeed's 3.8B run
# alone takes minutes (model built on the CPU, deepspeed.initialize with offload), so the set is split into
# three parts that must be called back to back, each within the device's idle window, so that the lease (and
# the machine, its build and DeepSpeed's JIT-built ops) is kept:
#   PART=1: our build beside DeepSpeed's ops; DeepSpeed GAS 1; ours GAS 1 ratio 1 super_offload
#   PART=2: the offload GPU tests and core_test's CUDA cases; ours GAS 1 ratio 0.5; ours no offload GAS 4
#   PART=3: DeepSpeed GAS 4; ours GAS 4 ratio 0.5; ours GAS 4 ratio 1 super_offload
#   PART=after (one call, .devdeps only): the offload GPU tests, then ours GAS 1 super_offload and GAS 4 ratio 0.5
#   PART=peaks, then PART=peaks2 on the same machine (.devdeps only): where the device peaks are (--memory-phases)
#     for the 10B stage 3 run (with the offload GPU tests first), GAS 4 ratio 0.5, GAS 1 super_offload
#   PART=trace (.devdeps only): the same three runs with DS_MEMORY_TRACE=2 (what the peaks are made of) and
#     core_test's CUDA cases
#   PART=lead, then PART=lead10 (.devdeps only; two calls, each builds): after a change to backward's buffers
#     (the landing lead): the offload GPU tests, GAS 1 super_offload and GAS 4 ratio 0.5 with DS_MEMORY_TRACE=2
#     (traced steps are warm-up steps, not timed); then the 10B stage 3 run and GAS 1 super_offload again
# Each part's archives come back under $OUT/<run>/all.tgz; machine.txt tells the parts' machine apart.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/device-logs}
mkdir -p "$OUT"
# DeepSpeed's JIT-built ops in the (ignored, kept) build tree: built in part 1, loaded as they are in part 3.
export TORCH_EXTENSIONS_DIR=$PWD/build-dev/torch_extensions
common="ADAM_BENCH=0 BREAKDOWN=0"
gas1="STEPS=6 WARMUP=6"
gas4="STEPS=4 WARMUP=4"
profile() {  # <name> <env assignments...>
  local name=$1; shift
  echo "== $name: $*"
  env OUT="$OUT/$name" $common "$@" bash scripts/device/offload_profile.sh 2>&1
}
hostname >"$OUT/host.txt"; nvidia-smi --query-gpu=uuid --format=csv,noheader >>"$OUT/host.txt"; cat "$OUT/host.txt"
case "${PART:?PART=1|2|3|after|peaks|peaks2|trace|lead|lead10}" in
  1)
    profile ds1 $gas1 IMPLS=deepspeed RUNS=1.0:1 RUN_TIMEOUT=330
    profile super1 $gas1 SKIP_BUILD=1 SUPER=1 RUNS=1.0:1 RUN_TIMEOUT=140
    ;;
  2)
    profile half1 $gas1 SKIP_BUILD=1 CHECK=1 RATIO=0.5 RUNS=1.0:1 RUN_TIMEOUT=150
    profile stage0_4 $gas4 SKIP_BUILD=1 STAGES=0 RUNS=1.0:4 RUN_TIMEOUT=150
    ;;
  3)
    profile ds4 $gas4 SKIP_BUILD=1 IMPLS=deepspeed RUNS=1.0:4 RUN_TIMEOUT=330
    profile half4 $gas4 SKIP_BUILD=1 RATIO=0.5 RUNS=1.0:4 RUN_TIMEOUT=130
    profile super4 $gas4 SKIP_BUILD=1 SUPER=1 RUNS=1.0:4 RUN_TIMEOUT=130
    ;;
  after)
    # After a change to the one-GPU paths: the offload GPU tests, then the GAS 1 and GAS 4 runs it touches.
    profile super1 $gas1 CHECK=1 SUPER=1 RUNS=1.0:1 RUN_TIMEOUT=140
    profile half4 $gas4 SKIP_BUILD=1 RATIO=0.5 RUNS=1.0:4 RUN_TIMEOUT=130
    ;;
  peaks)
    profile peak10 STEPS=3 WARMUP=3 CHECK=1 MODEL=10B STAGES=3 PARAM=1 RATIO=0.6 BUCKET=20000000 RUNS=1.0:1 \
      MEMORY_PHASES=3 RUN_TIMEOUT=280
    profile half4 STEPS=2 WARMUP=2 SKIP_BUILD=1 RATIO=0.5 RUNS=1.0:4 MEMORY_PHASES=2 RUN_TIMEOUT=110
    ;;
  trace)
    export DS_MEMORY_TRACE=2
    profile trace10 STEPS=2 WARMUP=2 MODEL=10B STAGES=3 PARAM=1 RATIO=0.6 BUCKET=20000000 RUNS=1.0:1 \
      MEMORY_PHASES=3 RUN_TIMEOUT=240
    build-dev/tests/core_test --gtest_filter='*Cuda*' 2>&1 | grep -E "^\[ +(OK|FAILED|PASSED) " | tee "$OUT/core_test_cuda.txt"
    profile trace_super1 STEPS=3 WARMUP=3 SKIP_BUILD=1 SUPER=1 RUNS=1.0:1 MEMORY_PHASES=3 RUN_TIMEOUT=120
    profile trace_half4 STEPS=2 WARMUP=2 SKIP_BUILD=1 RATIO=0.5 RUNS=1.0:4 MEMORY_PHASES=2 RUN_TIMEOUT=100
    ;;
  lead)
    export DS_MEMORY_TRACE=2
    profile super1 $gas1 CHECK=1 SUPER=1 RUNS=1.0:1 MEMORY_PHASES=3 RUN_TIMEOUT=150
    profile half4 $gas4 SKIP_BUILD=1 RATIO=0.5 RUNS=1.0:4 MEMORY_PHASES=2 RUN_TIMEOUT=130
    ;;
  lead10)
    export DS_MEMORY_TRACE=2
    profile peak10 STEPS=3 WARMUP=3 MODEL=10B STAGES=3 PARAM=1 RATIO=0.6 BUCKET=20000000 RUNS=1.0:1 \
      MEMORY_PHASES=3 RUN_TIMEOUT=260
    profile super1 $gas1 SKIP_BUILD=1 SUPER=1 RUNS=1.0:1 MEMORY_PHASES=3 RUN_TIMEOUT=130
    ;;
  peaks2)
    profile super1 $gas1 SKIP_BUILD=1 SUPER=1 RUNS=1.0:1 MEMORY_PHASES=3 RUN_TIMEOUT=140
    ;;
esac
