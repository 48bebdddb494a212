#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps) for issue #13 (monitoring): build, `ctest -L gpu`, then the GPT-2 124M
# row on one GPU (micro-batch 32, seq 1024, bf16) without monitors and with tensorboard + csv_monitor +
# comms_logger, interleaved three times each (the overhead target compares their means, measured in the same
# call), then once with everything on (also wall_clock_breakdown, memory_breakdown and the flops profiler at
# step 5). The event file, CSVs, flops profile and logs go to $OUT; the event file is checked afterwards with
# Python's tensorboard on the developer machine (the GPU image has no tensorboard).
#
#   bash scripts/device/monitor_bench.sh [tests|bench|all]      (default all)
set -uo pipefail
source "$(dirname "$0")/env.sh"
describe_machine
what=${1:-all}
bash scripts/device/build.sh ${BUILD_TARGETS:-} >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }
stamp "built"
if [ "$what" != bench ]; then
  (cd build-dev && ctest -L gpu --output-on-failure --timeout 300 >"$out/ctest_gpu.log" 2>&1)
  grep -E "tests passed|\*\*\*|Failed|Not Run" "$out/ctest_gpu.log" | head -40
  # The monitor, comms-logger and profiler component tests (CPU-labelled) on this machine's build too.
  (cd build-dev && ctest -R "Crc32c|CsvSink|RecordWriter|TensorBoardSink|Monitor\.|CommsLogger|StepReport|FlopsProfiler" \
    --output-on-failure >"$out/ctest_monitor_units.log" 2>&1)
  grep -E "tests passed|\*\*\*Failed" "$out/ctest_monitor_units.log"
  stamp "tests"
fi
[ "$what" = tests ] && exit 0

work=/tmp/monitor_bench
rm -rf "$work" && mkdir -p "$work/mon"
tools="python3 bench/gpt2_suite_tools.py"
$tools tokens "$work/tokens.bin" --tokens $((1 << 24)) >/dev/null
$tools config examples/gpt2/ds_config_124M.json "$work/base.json" --micro 32 --gas 1 --world 1 --stage 0 \
  --grad-accum-dtype "" --zero-extra ""
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
base = json.load(open(f"{work}/base.json"))
mon = dict(base, tensorboard={"enabled": True, "output_path": f"{work}/mon/tb", "job_name": "gpt2"},
           csv_monitor={"enabled": True, "output_path": f"{work}/mon/csv", "job_name": "gpt2"},
           comms_logger={"enabled": True})
everything = dict(mon, wall_clock_breakdown=True, memory_breakdown=True, steps_per_print=20,
                  tensorboard={"enabled": True, "output_path": f"{work}/all/tb", "job_name": "gpt2"},
                  csv_monitor={"enabled": True, "output_path": f"{work}/all/csv", "job_name": "gpt2"},
                  flops_profiler={"enabled": True, "profile_step": 5, "module_depth": 2, "top_modules": 3,
                                  "detailed": False, "output_file": f"{work}/all/flops_profile.txt"})
for name, cfg in (("mon", mon), ("all", everything)):
    json.dump(cfg, open(f"{work}/{name}.json", "w"), indent=1)
PY
steps=${STEPS:-100} warm=${WARM:-20}
port=29650
run() {  # run NAME CONFIG: one 124M run, its JSON summary line appended to $out/results.jsonl
  port=$((port + 1))
  build-dev/bin/deepspeed --num_gpus 1 --master_port $port build-dev/examples/gpt2 --deepspeed_config "$work/$2.json" \
    --model 124M --seq_len 1024 --max-steps $((warm + steps)) --log-interval "$steps" --warmup-steps "$warm" \
    --data "$work/tokens.bin" --data-format uint16 >"$out/$1.log" 2>&1
  local rc=$?
  local line
  line=$(grep -E '^\{.*"bench":"gpt2"' "$out/$1.log" | tail -1)
  echo "{\"run\": \"$1\", \"rc\": $rc, \"summary\": ${line:-null}}" >>"$out/results.jsonl"
  stamp "$1: exit $rc $(echo "$line" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read() or "{}"); print("%.0f tok/s" % r["tok_per_s"] if "tok_per_s" in r else "")' 2>/dev/null)"
}
for i in 1 2 3; do
  run "base_$i" base
  run "mon_$i" mon
done
run everything all
python3 - "$out/results.jsonl" <<'PY' | tee "$out/overhead.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = lambda prefix: [r["summary"]["tok_per_s"] for r in rows if r["run"].startswith(prefix) and r["summary"]]
base, mon = rate("base_"), rate("mon_")
print("base tok/s:", [round(x) for x in base], "mean", round(statistics.mean(base)))
print("tensorboard+csv+comms_logger tok/s:", [round(x) for x in mon], "mean", round(statistics.mean(mon)))
print("overhead: %.2f %%" % (100 * (1 - statistics.mean(mon) / statistics.mean(base))))
print("spread of base runs: %.2f %%" % (100 * (max(base) - min(base)) / statistics.mean(base)))
every = [r for r in rows if r["run"] == "everything"]
if every and every[0]["summary"]:
    s = every[0]["summary"]
    print("everything on: %.0f tok/s, MFU %s" % (s["tok_per_s"], s.get("mfu")))
PY
# One archive: the device tool brings back a limited number of files.
tar -C "$work" -czf "$out/monitor_files.tgz" mon all
tar -C "$out" -czf /tmp/logs.tgz --exclude monitor_files.tgz . && mv /tmp/logs.tgz "$out/logs.tgz"
grep -E "step=|MA=|Comm. Op" "$out/everything.log" | head -8
cat "$work/all/flops_profile.txt" 2>/dev/null | head -40
stamp "bench"
