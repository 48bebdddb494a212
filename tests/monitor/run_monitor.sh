#!/usr/bin/env bash
# The monitors on a 2-rank Gloo run through the real launcher: rank 0's TensorBoard event file read back by
# Python's tensorboard with the losses the run printed, the CSV files, the comms_logger summary, the step
# lines' progress and memory fields; and with monitors off, no files at all.
# Usage: run_monitor.sh BUILD_DIR PORT
set -uo pipefail
build=$(cd "$1" && pwd) port=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../dist/dp_lib.sh"
python=${PYTHON:-python3}

# fp16 (loss_scale events), GAS 2 (the loss is the window's mean), 5 optimizer steps of 2 × 2 × 4 samples.
mkdir -p "$work/on" && cd "$work/on"
if launch 2 --steps 5 --micro 4 --gas 2 --dtype fp16 --print-losses --monitor-dir "$work/mon" \
  --out "$work/on/params.pt"; then
  ok "monitored run"
else
  cat "$work/log"; fail "monitored run"
fi
cp "$work/log" "$work/on.log"
if out=$("$python" "$here/check_events.py" "$work/mon" dp "$work/on.log" 16 5 --fp16 --timers); then ok "$out";
else echo "$out"; fail "event file / CSV check"; fi
grep -q "^Comm. Op            Message Size        Count" "$work/on.log" && ok "comms_logger summary table" \
  || fail "no comms_logger summary"
grep -q "^all_reduce$" "$work/on.log" && ok "all_reduce rows in the summary" || fail "no all_reduce record"
grep -qE "step=5, skipped=0, lr=.*, progress=5/5 \(100.0%\), samples/sec=[0-9.]+, host_RSS=[0-9.]+ GB, pinned=0.0 GB" \
  "$work/on.log" && ok "step line: progress, rate, memory" || { grep "step=" "$work/on.log"; fail "step line fields"; }
# Only rank 0 prints step lines and writes files.
[ "$(grep -c '\] step=5, ' "$work/on.log")" = 1 ] && ok "one step=5 line (rank 0)" || fail "step lines on other ranks"

# Monitors off: nothing written anywhere, no summary.
mkdir -p "$work/off" && cd "$work/off"
launch 2 --steps 2 --micro 4 --gas 1 --out "$work/params_off.pt" || { cat "$work/log"; fail "plain run"; }
[ -z "$(ls -A "$work/off")" ] && ok "no files without monitors" || { ls -la "$work/off"; fail "files written without monitors"; }
grep -q "Comm. Op" "$work/log" && fail "comms summary without comms_logger" || ok "no comms summary when off"

# At ZeRO stages 1-3 wall_clock_breakdown adds DeepSpeed's ZeRO optimizer timers after each optimizer step.
mkdir -p "$work/z2" && cd "$work/z2"
launch 2 --steps 3 --micro 2 --stage 2 --monitor-dir "$work/mon_z2" || { cat "$work/log"; fail "stage 2 run"; }
timer_lines=$(grep -cE '\] time \(ms\) \| optimizer_allgather: [0-9.]+ \| optimizer_gradients: [0-9.]+ \| optimizer_step: [0-9.]+$' "$work/log")
[ "$timer_lines" = 3 ] && ok "stage 2: one optimizer timer line per step (rank 0)" \
  || { grep "time (ms)" "$work/log"; fail "stage 2: $timer_lines optimizer timer lines, expected 3"; }

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
