# Sourced by the multi-rank test scripts that drive tests/dp_train: a scratch directory, the launcher's
# environment for Gloo CPU ranks (DS_ACCELERATOR=cuda to run them on GPUs), and the ok/fail/launch/compare
# helpers. Set `build` and `port` before sourcing; `failures` counts the FAIL lines.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} OMP_NUM_THREADS=1 DS_KILL_GRACE_SECONDS=2
train=$build/tests/dp_train
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
launch() {  # launch RANKS args...: one job on the next port, its output in $work/log
  local ranks=$1
  shift
  port=$((port + 1))
  "$build/bin/deepspeed" --num_gpus "$ranks" --master_port "$port" "$train" "$@" >"$work/log" 2>&1
}
compare() {  # compare NAME A B RTOL
  if out=$("$train" --compare "$2" "$3" --rtol "$4"); then ok "$1: $out"; else fail "$1: $out"; fi
}
