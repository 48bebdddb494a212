"""Device time per launching op, from a Chrome trace written by the GPT-2 example's --profile-trace.

Kineto tags each kernel with the "External id" of the innermost op that launched it; this groups kernel time
by that op, and by the autograd node around it in backward, so a kernel name like "elementwise_kernel" gets an
owner. Prints a Markdown table.

    python3 bench/trace_by_op.py trace_124M.json[.gz] --steps 5 [--top 25]
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--steps", type=int, default=1, help="profiled steps, to report per step")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    events = load(a.trace)
    ops, kernels = {}, []
    autograd_nodes = collections.defaultdict(list)  # tid -> [(start, end, name)]
    for e in events:
        if e.get("ph") != "X":
            continue
        cat, args = e.get("cat", ""), e.get("args", {})
        if cat == "cpu_op":
            if "External id" in args:
                ops[args["External id"]] = e
            if e["name"].startswith("autograd::engine::evaluate_function: "):
                autograd_nodes[e["tid"]].append((e["ts"], e["ts"] + e["dur"], e["name"].split(": ", 1)[1]))
        elif cat in ("kernel", "gpu_memcpy", "gpu_memset"):
            kernels.append(e)
    for spans in autograd_nodes.values():
        spans.sort()
    starts = {tid: [s[0] for s in spans] for tid, spans in autograd_nodes.items()}

    def node_of(op):
        spans, keys = autograd_nodes.get(op["tid"], []), starts.get(op["tid"], [])
        i = bisect.bisect_right(keys, op["ts"]) - 1
        # The innermost containing node starts last; reentrant backward (activation checkpointing) nests nodes,
        # so walk back past those that ended before the op.
        while i >= 0:
            start, end, name = spans[i]
            if start <= op["ts"] <= end:
                return name
            i -= 1
        return "forward / step"

    by_op = collections.Counter()
    calls = collections.Counter()
    by_kernel = collections.defaultdict(collections.Counter)  # owner -> kernel name -> time
    total = 0.0
    for k in kernels:
        op = ops.get(k.get("args", {}).get("External id"))
        owner = f"{node_of(op)} › {op['name']}" if op else "(no op)"
        by_op[owner] += k["dur"]
        calls[owner] += 1
        by_kernel[owner][k["name"]] += k["dur"]
        total += k["dur"]
    per = max(a.steps, 1) * 1000.0
    print(f"trace: {len(kernels)} device events, {total / per:.1f} ms/step over {a.steps} step(s)")
    print("trace: | autograd node › launching op | ms/step | share | calls/step | its longest kernel |")
    print("trace: |---|---|---|---|---|")
    for owner, us in by_op.most_common(a.top):
        kernel = by_kernel[owner].most_common(1)[0][0].replace("|", "/")[:70]
        print(f"trace: | {owner} | {us / per:.2f} | {100 * us / total:.1f}% | {calls[owner] / a.steps:g} | {kernel} |")


if __name__ == "__main__":
    main()
