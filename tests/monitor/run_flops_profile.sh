#!/usr/bin/env bash
# The flops profiler driven by the engine: the seed's CIFAR network on Fashion-MNIST (1×28×28 images), GAS 2,
# one process. The profile is written once, for the step DeepSpeed profiles, with the network's closed-form
# parameter and MAC counts (the per-operator formulas are checked exactly in tests/unit/flops_profiler_test).
# Usage: run_flops_profile.sh BUILD_DIR
set -uo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
if [ ! -d /usr/share/datasets/fashion-mnist ]; then echo "skipped: needs dataset-fashion-mnist"; exit 77; fi

micro=8
cat >"$work/ds_config.json" <<JSON
{
  "train_micro_batch_size_per_gpu": $micro,
  "gradient_accumulation_steps": 2,
  "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
  "flops_profiler": {"enabled": true, "profile_step": 1, "module_depth": -1, "top_modules": 1, "detailed": true,
                     "output_file": "$work/profile/flops.txt"}
}
JSON
cd "$work"
"$build/examples/cifar10" --deepspeed_config "$work/ds_config.json" --max-steps 8 >"$work/log" 2>&1 \
  || { cat "$work/log"; fail "cifar10 run"; }
report="$work/profile/flops.txt"
[ -f "$report" ] && ok "report written to output_file" || { cat "$work/log"; fail "no $report"; exit 1; }

# Closed form for 1×28×28 inputs: conv1 1→6 k5 (24×24 out), pool, conv2 6→16 k5 (8×8 out), pool,
# fc1 256→120, fc2 120→84, fc3 84→10. MACs per sample and parameters:
macs_per_sample=$((6 * 24 * 24 * 25 + 16 * 8 * 8 * 150 + 256 * 120 + 120 * 84 + 84 * 10))
params=$((6 * 25 + 6 + 16 * 150 + 16 + 256 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10))
# DeepSpeed's number_to_string: two decimals and the unit prefix.
fmt() { python3 -c "import sys; v=float(sys.argv[1]); u=[(1e12,' T'),(1e9,' G'),(1e6,' M'),(1e3,' K')]
print(next(('{:g}'.format(round(v/s,2))+p for s,p in u if v>=s), '{:g} '.format(round(v,2))))" "$1"; }
expect_line() {  # expect_line LABEL VALUE
  if grep -qE "^$1 +$2 *\$" "$report"; then ok "$1 $2"; else fail "expected '$1 $2' in:"; grep -E "^$1" "$report"; fi
}
expect_line "params per GPU:" "$(fmt $params)"
expect_line "fwd MACs per GPU:" "$(fmt $((macs_per_sample * micro)))MACs"
expect_line "batch size per GPU:" "$micro"
grep -q "^Profile Summary at step 2:" "$report" && ok "profiled step 2 (global_steps == profile_step 1, then stepped)" \
  || { grep "Profile Summary" "$report"; fail "wrong step"; }
[ "$(grep -c "DeepSpeed Flops Profiler" "$report")" -ge 1 ] && ok "DeepSpeed's banner" || fail "no banner"
grep -qE "^bwd latency: +[0-9.]+ [mu]?s" "$report" && ok "backward latency from the engine's timers" \
  || fail "no bwd latency"
grep -q "Aggregated Profile per GPU" "$report" && grep -q "Detailed Profile per GPU" "$report" \
  && ok "aggregated and detailed profiles" || fail "missing profile sections"
[ "$(grep -c "Profile Summary" "$report")" = 1 ] && ok "one profile (not one per micro-step)" || fail "several profiles"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
