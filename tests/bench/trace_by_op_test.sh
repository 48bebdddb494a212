#!/usr/bin/env bash
# bench/trace_by_op.py on a hand-made Chrome trace: kernel time is owned by the op whose "External id" it
# carries, labelled with the autograd node around that op (innermost, also when nodes nest), per step.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/trace.json" <<'JSON'
{"traceEvents": [
 {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "tid": 1, "ts": 10, "dur": 5, "args": {"External id": 1}},
 {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: AddmmBackward0", "tid": 2, "ts": 100, "dur": 50, "args": {"External id": 2}},
 {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "tid": 2, "ts": 110, "dur": 5, "args": {"External id": 3}},
 {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: CheckpointBackward", "tid": 2, "ts": 200, "dur": 100, "args": {"External id": 4}},
 {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: GeluBackward0", "tid": 2, "ts": 210, "dur": 10, "args": {"External id": 5}},
 {"ph": "X", "cat": "cpu_op", "name": "aten::gelu", "tid": 2, "ts": 250, "dur": 5, "args": {"External id": 6}},
 {"ph": "X", "cat": "kernel", "name": "gemm_a", "tid": 7, "ts": 20, "dur": 3000, "args": {"External id": 1}},
 {"ph": "X", "cat": "kernel", "name": "gemm_b", "tid": 7, "ts": 120, "dur": 1000, "args": {"External id": 3}},
 {"ph": "X", "cat": "kernel", "name": "gemm_c", "tid": 7, "ts": 130, "dur": 3000, "args": {"External id": 3}},
 {"ph": "X", "cat": "kernel", "name": "gelu_kernel", "tid": 7, "ts": 260, "dur": 1000, "args": {"External id": 6}},
 {"ph": "X", "cat": "kernel", "name": "orphan", "tid": 7, "ts": 400, "dur": 2000, "args": {}}
]}
JSON
python3 "$src/bench/trace_by_op.py" "$work/trace.json" --steps 2 >"$work/out.md" 2>"$work/err" ||
  { cat "$work/err"; echo "FAIL: trace_by_op exited with an error"; exit 1; }
fail=0
expect() {
  if grep -qF -- "$1" "$work/out.md"; then echo "ok   $1"; else echo "FAIL missing: $1"; fail=1; fi
}
expect "trace: 5 device events, 5.0 ms/step over 2 step(s)"
expect "| AddmmBackward0 › aten::mm | 2.00 | 40.0% | 1 | gemm_c |"
expect "| forward / step › aten::addmm | 1.50 | 30.0% | 0.5 | gemm_a |"
expect "| CheckpointBackward › aten::gelu | 0.50 | 10.0% | 0.5 | gelu_kernel |"
expect "| (no op) | 1.00 | 20.0% | 0.5 | orphan |"
[ "$fail" = 0 ] || { cat "$work/out.md"; exit 1; }
