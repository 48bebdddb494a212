#!/usr/bin/env python3
"""Reads a monitored run's TensorBoard event file with Python's tensorboard (EventAccumulator) and its CSV
files, and checks both against what the run printed (rank 0's "step N loss X" lines from tests/dp_train).

Usage: check_events.py LOG_DIR JOB_NAME RUN_LOG GLOBAL_BATCH STEPS [--fp16] [--timers]
Exits 1 with the reason on the first mismatch."""
import csv
import glob
import math
import os
import re
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def main():
    log_dir, job, run_log, global_batch, steps = sys.argv[1:6]
    flags = set(sys.argv[6:])
    global_batch, steps = int(global_batch), int(steps)
    printed = {}
    with open(run_log) as f:
        for line in f:
            m = re.match(r"step (\d+) loss (\S+)", line)
            if m:
                printed[int(m.group(1))] = float(m.group(2))
    if len(printed) != steps:
        fail(f"expected {steps} printed losses, found {len(printed)}")

    files = glob.glob(os.path.join(log_dir, "tb", job, "events.out.tfevents.*"))
    if len(files) != 1:
        fail(f"expected one event file in {log_dir}/tb/{job}, found {files}")
    acc = EventAccumulator(files[0], size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected_tags = {"Train/Samples/train_loss", "Train/Samples/lr"}
    if "--fp16" in flags:
        expected_tags.add("Train/Samples/loss_scale")
    if "--timers" in flags:
        expected_tags |= {f"Train/Samples/elapsed_time_ms_{t}"
                          for t in ("forward", "backward", "backward_inner", "backward_allreduce", "step")}
    if tags != expected_tags:
        fail(f"scalar tags {sorted(tags)} != {sorted(expected_tags)}")

    samples = [global_batch * s for s in range(1, steps + 1)]
    losses = acc.Scalars("Train/Samples/train_loss")
    if [e.step for e in losses] != samples:
        fail(f"train_loss steps {[e.step for e in losses]} != {samples}")
    for s, e in zip(range(1, steps + 1), losses):
        # simple_value is a float32; the run printed the window's mean of the float32 losses.
        if not math.isclose(e.value, printed[s], rel_tol=1e-6, abs_tol=1e-9):
            fail(f"step {s}: event loss {e.value!r} != printed {printed[s]!r}")
    for tag in tags:
        if [e.step for e in acc.Scalars(tag)] != samples:
            fail(f"{tag}: steps {[e.step for e in acc.Scalars(tag)]} != {samples}")
    if "--timers" in flags:
        if not all(e.value > 0 for e in acc.Scalars("Train/Samples/elapsed_time_ms_forward")):
            fail("forward times must be positive")

    # The CSV monitor holds the same values at full precision.
    for tag in tags:
        path = os.path.join(log_dir, "csv", job, tag.replace("/", "_") + ".csv")
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if rows[0] != ["step", tag.split("/")[-1]]:
            fail(f"{path}: header {rows[0]}")
        csv_steps = [int(r[0]) for r in rows[1:]]
        if csv_steps != samples:
            fail(f"{path}: steps {csv_steps} != {samples}")
        for r, e in zip(rows[1:], acc.Scalars(tag)):
            if not math.isclose(float(r[1]), e.value, rel_tol=1e-6, abs_tol=1e-6):
                fail(f"{path}: {r[1]} != event {e.value}")
    print(f"{len(tags)} scalar curves x {steps} steps read back by tensorboard "
          f"{__import__('tensorboard').__version__}; CSV agrees; losses match the printed ones")


if __name__ == "__main__":
    main()
