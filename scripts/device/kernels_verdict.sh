#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps) for issue #14's verdict: all three sizes in one call of the suite, ours,
# eager and torch.compile with both PyTorch recipes. Cold, torch.compile's compiles alone (~420 s on an H200,
# more on an H100: 1.5B amp past 170 s) and the build do not fit one 600 s call with the rest, so the verdict
# takes two calls on one warm machine:
#
#   PHASE=warm  bash scripts/device/kernels_verdict.sh   # build; the GPU tests in VERDICT_TESTS; bench/ops_bench
#                                                         # (OPS=0 skips it: the memory-bound kernels and their
#                                                         # switches against a plain copy); compile each size
#                                                         # with both recipes for 2+2 steps so inductor's
#                                                         # caches hold their graphs and kernels
#   PHASE=suite bash scripts/device/kernels_verdict.sh   # then, within the idle window: the suite, one call
#
# The issue's card is an H200: PHASE=warm exits 3 at once on any other card (ANY_CARD=1 goes on anyway), so a
# session can hand that machine back and try again for the price of a start. In PHASE=warm no compile starts
# later than CALL_BUDGET_S (default 540) seconds into the call, build and ops_bench counted.
# WARM_JOBS=2 (the default on a card of 100 GiB or more): the warm-up runs the two recipes side by side, one
# suite each (two 1.5B compiles take ~92 GiB); WARM_JOBS=1: one after the other.
# MODELS (default "1.5B 350M 124M") and, in PHASE=suite, IMPLS (default "ours eager compile") narrow a check.
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
phase=${PHASE:?PHASE=warm or PHASE=suite}
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "card: $card"
if [ "$phase" = warm ] && [[ "$card" != *H200* ]] && [ "${ANY_CARD:-0}" != 1 ]; then
  echo "not an H200: nothing run (ANY_CARD=1 runs anyway)"
  exit 3
fi
models=${MODELS:-1.5B 350M 124M}
common=(PT_PRECISION="amp bf16-master" MODELS="$models" PROFILE_MODELS=none)
out=${OUT:-$PWD/device-logs}
mkdir -p "$out"
case "$phase" in
  warm)
    tests=${VERDICT_TESTS-bias_gelu_gpu_test add_layer_norm_gpu_test step_behind_forward_gpu_test}
    ops_target=""
    [ "${OPS:-1}" = 1 ] && ops_target=ops_bench
    bash scripts/device/build.sh gpt2 deepspeed_launcher $ops_target $tests >"$out/build.txt" 2>&1 \
      || { tail -30 "$out/build.txt"; exit 1; }
    echo "built: $(( $(date +%s) - start )) s"
    for t in $tests; do
      build-dev/tests/$t >"$out/$t.log" 2>&1
      echo "$t: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/$t.log" | tr '\n' ' ')"
      grep -E '^\[  FAILED  \]' "$out/$t.log" | head -5
    done
    if [ "${OPS:-1}" = 1 ]; then
      timeout 60 build-dev/bench/ops_bench --models "1.5B 124M" >"$out/ops.md" 2>&1
      echo "ops_bench: exit $?"; cat "$out/ops.md"
    fi
    mem_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
    jobs=${WARM_JOBS:-$(( mem_mib >= 102400 ? 2 : 1 ))}
    budget=$(( ${CALL_BUDGET_S:-540} - ($(date +%s) - start) ))
    echo "warm-up: $jobs at a time, no compile started after $budget s more"
    if [ "$jobs" -ge 2 ]; then
      for prec in amp bf16-master; do
        env PT_PRECISION="$prec" MODELS="$models" GPUS=1 IMPLS=compile STEPS=2 WARMUP=2 PROFILE_MODELS=none \
          BUDGET_S="$budget" RUN_TIMEOUT=200 WORK="/tmp/gpt2_warm_$prec" OUT="$out/warm_$prec" \
          bash bench/run_gpt2_suite.sh >"$out/warm_$prec.txt" 2>&1 &
      done
      wait
      for prec in amp bf16-master; do grep -E "^\[[0-9]+ s\]" "$out/warm_$prec.txt" | sed "s/^/$prec /"; done
    else
      env "${common[@]}" TESTS=none IMPLS="compile" STEPS=2 WARMUP=2 CALL_BUDGET_S="$budget" RUN_TIMEOUT=200 \
        bash scripts/device/kernels_suite.sh
      cat "$out/summary.txt"
    fi
    echo "warm phase: $(( $(date +%s) - start )) s"
    # At most 8 files come back from a call: the loose logs go into one archive.
    (cd "$out" && tar czf /tmp/warm.tgz --exclude=summary.txt --exclude='*.tgz' . &&
      find . -mindepth 1 -type f ! -name summary.txt ! -name '*.tgz' -delete && find . -mindepth 1 -type d -empty -delete &&
      mv /tmp/warm.tgz warm.tgz) ;;
  suite)
    env "${common[@]}" TESTS=none IMPLS="${IMPLS:-ours eager compile}" BUDGET_S=${BUDGET_S:-540} RUN_TIMEOUT=200 \
      bash scripts/device/kernels_suite.sh
    cat "$out/summary.txt" ;;
  *) echo "PHASE must be warm or suite, got '$phase'"; exit 2 ;;
esac
ls -la /tmp/torchinductor_root 2>/dev/null | head -3; du -sh /tmp/torchinductor_root 2>/dev/null
