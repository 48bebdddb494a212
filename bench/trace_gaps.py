#!/usr/bin/env python3
"""Where a profiled step's device time is lost: reads a Chrome trace written by `gpt2 --profile-trace` (Kineto)
and prints, for the device's idle gaps and for its memsets, the host operator that launched the work after the
gap (or the memset), and every host call that blocked on the device (synchronizations, blocking copies).

    python3 bench/trace_gaps.py trace.json [--min-gap-us 50] [--top 15]

Only reads the trace; nothing here changes what is measured.
"""
import argparse
import bisect
import collections
import gzip
import json


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["traceEvents"]


class HostStacks:
    """The enclosing host operators (cpu_op events) of a moment on a thread."""

    def __init__(self, ops):
        self.by_tid = collections.defaultdict(list)
        for e in ops:
            self.by_tid[e["tid"]].append(e)
        for evs in self.by_tid.values():
            evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        self.starts = {tid: [e["ts"] for e in evs] for tid, evs in self.by_tid.items()}

    def stack(self, tid, ts, depth=4):
        evs = self.by_tid.get(tid, [])
        i = bisect.bisect_right(self.starts.get(tid, []), ts)
        chain = [e["name"] for e in evs[max(0, i - 400):i] if e["ts"] <= ts <= e["ts"] + e["dur"]]
        return " > ".join(chain[-depth:]) or "(no operator)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--min-gap-us", type=float, default=50.0)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    events = [e for e in load(a.trace) if e.get("ph") == "X"]
    ops = [e for e in events if e.get("cat") == "cpu_op"]
    runtime = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")]
    device = sorted((e for e in events if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy")),
                    key=lambda e: e["ts"])
    launch_of = {e["args"].get("correlation"): e for e in runtime if "args" in e}
    stacks = HostStacks(ops)

    def launcher(e, depth=4):
        r = launch_of.get(e.get("args", {}).get("correlation"))
        return stacks.stack(r["tid"], r["ts"], depth) if r else "(launch not in trace)"

    busy = sum(e["dur"] for e in device)
    span = device[-1]["ts"] + device[-1]["dur"] - device[0]["ts"] if device else 0
    print(f"device events {len(device)}, busy {busy / 1e3:.2f} ms of {span / 1e3:.2f} ms")

    # Memsets and small copies by the host operator that asked for them.
    for cat in ("gpu_memset", "gpu_memcpy"):
        rows = collections.Counter()
        time = collections.Counter()
        for e in device:
            if e.get("cat") == cat:
                key = launcher(e, 3)
                rows[key] += 1
                time[key] += e["dur"]
        print(f"\n{cat}: {sum(rows.values())} in the trace, by launching operator")
        for key, n in rows.most_common(a.top):
            print(f"  {n:6d}  {time[key] / 1e3:8.3f} ms  {key}")

    # Gaps: what the host was doing when the device went idle, and what it launched next.
    gaps = []
    end = None
    for e in device:
        if end is not None and e["ts"] - end >= a.min_gap_us:
            gaps.append((e["ts"] - end, e))
        end = max(end or 0, e["ts"] + e["dur"])
    gaps.sort(key=lambda g: -g[0])
    total = sum(g for g, _ in gaps)
    print(f"\ngaps >= {a.min_gap_us:g} us: {len(gaps)}, {total / 1e3:.2f} ms in all; largest:")
    for g, e in gaps[: a.top]:
        r = launch_of.get(e.get("args", {}).get("correlation"))
        lag = f", launched {(e['ts'] - r['ts']) / 1e3:.3f} ms before it ran" if r else ""
        print(f"  {g / 1e3:7.3f} ms before {e['name'][:60]}{lag}\n            launched by {launcher(e, 5)}")

    # Host calls that wait for the device.
    waits = collections.Counter()
    wait_time = collections.Counter()
    for r in runtime:
        name = r["name"]
        if any(s in name for s in ("Synchronize", "cudaMemcpy", "cudaStreamWait", "cudaHostAlloc", "cudaFreeHost",
                                   "cudaMalloc", "cudaFree")):
            if name.startswith("cudaMemcpyAsync") or name.startswith("cudaStreamWaitEvent"):
                if r["dur"] < 20:
                    continue
            key = f"{name} <- {stacks.stack(r['tid'], r['ts'], 3)}"
            waits[key] += 1
            wait_time[key] += r["dur"]
    print("\nhost calls that can wait for the device (count, host ms):")
    for key, t in wait_time.most_common(a.top):
        print(f"  {waits[key]:6d}  {t / 1e3:8.3f} ms  {key}")


if __name__ == "__main__":
    main()
