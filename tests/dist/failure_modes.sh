#!/usr/bin/env bash
# How a job fails: one line naming what is wrong, the right exit code, no hang, no stack trace.
# Usage: failure_modes.sh BUILD_DIR PORT
set -uo pipefail
build=$1 port=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
failures=0
check() {  # check NAME EXPECTED_CODE PATTERN -- command...
  local name=$1 expected=$2 pattern=$3
  shift 4
  local start=$SECONDS
  "$@" >"$work/out" 2>"$work/err"
  local code=$?
  local errors
  errors=$(grep -c "deepspeed: error\|: error:" "$work/err")
  if [ "$code" -ne "$expected" ] || ! grep -q -- "$pattern" "$work/err" || grep -q "frame #\|Exception raised from" "$work/err"; then
    echo "FAIL $name: exit $code (want $expected), stderr:"; cat "$work/err"; failures=$((failures + 1))
  else
    echo "ok   $name: exit $code in $((SECONDS - start)) s, $errors error line(s): $(grep -m1 error "$work/err")"
  fi
}

# A rank that never joins a collective: the others time out naming the collective and their rank.
DEEPSPEED_TIMEOUT=0.05 check timeout 1 "collective broadcast #1 .* failed on rank 0: .*Timed out" -- \
  "$build/bin/deepspeed" --num_gpus 2 --master_port "$port" "$build/tests/dp_train" --stall-rank 1

# Config errors: exit 2, one line naming the file and the key.
printf '{"train_batch_size": 4, "zero_optimization": {"stgae": 1}}' >"$work/typo.json"
check config_typo 2 'typo.json: zero_optimization.stgae: unknown key (did you mean "zero_optimization.stage"?)' -- \
  "$build/bin/deepspeed" --num_gpus 2 --master_port $((port + 1)) "$build/tests/dp_train" --deepspeed_config "$work/typo.json"
printf '{"train_batch_size": 5, "train_micro_batch_size_per_gpu": 2, "optimizer": {"type": "SGD", "params": {"lr": 0.1}}}' >"$work/triad.json"
check batch_triad 2 "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu \* gradient_acc_step \* world_size 5 != 2 \* 1 \* 2" -- \
  "$build/bin/deepspeed" --num_gpus 2 --master_port $((port + 2)) "$build/tests/dp_train" --deepspeed_config "$work/triad.json"
check missing_config 2 "cannot read config file '$work/absent.json'" -- \
  "$build/tests/dp_train" --deepspeed_config "$work/absent.json"
check bad_flag 2 "error: .*--steps" -- "$build/tests/dp_train" --steps many
check launcher_flag 2 "deepspeed: error" -- "$build/bin/deepspeed" --num_gpus two "$build/tests/dp_train"
DS_REDUCTIONS_IN_FLIGHT=two check reductions_in_flight 2 'DS_REDUCTIONS_IN_FLIGHT: expected a count of buckets (0 or more), got "two"' -- \
  "$build/tests/dp_train" --steps 1 --micro 2 --stage 2
exit $((failures > 0))
