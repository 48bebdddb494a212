#!/usr/bin/env python3
"""Helpers of bench/run_gpt2_suite.sh (no numpy, no DeepSpeed):

  config   SRC OUT --micro M --gas G --world N --stage S [--grad-accum-dtype D] [--zero-extra JSON]
           the ds_config both engines read for one run: SRC's optimizer/scheduler/bf16/clipping, the batch
           triad resolved for N ranks (train_batch_size = M*G*N), zero_optimization.stage = S
  tokens   OUT [--tokens N] [--vocab V] [--seed S]   a raw uint16 token file of uniform random tokens
  parse-cpp LOG --model M --world N --stage S --micro M --gas G --seq-len T --max-steps K --log-interval I
           deepspeed.cpp's examples/gpt2 log -> the JSON result line (the same fields as the Python baselines).
           Uses the program's own JSON line when it prints one ({"bench": "gpt2", ...}), else the last
           "step ..." line, which covers exactly the last I steps (warm-up = K - I steps)
  table    RESULTS.jsonl   the issue's targets, then the markdown table (printed last)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_common as C  # noqa: E402

# deepspeed.cpp's config reader rejects unknown keys, so a derived config carries only keys both read.
KEEP = ("steps_per_print", "gradient_clipping", "bf16", "bfloat16", "fp16", "optimizer", "scheduler",
        "activation_checkpointing", "data_types", "communication_data_type", "prescale_gradients",
        "gradient_predivide_factor", "wall_clock_breakdown")


def cmd_config(a):
    with open(a.src) as f:
        src = json.load(f)
    out = {k: src[k] for k in KEEP if k in src}
    out["train_batch_size"] = a.micro * a.gas * a.world
    out["train_micro_batch_size_per_gpu"] = a.micro
    out["gradient_accumulation_steps"] = a.gas
    out["steps_per_print"] = 1000000  # DeepSpeed's own progress lines would cost syncs inside the timing
    zero = dict(src.get("zero_optimization", {}) if isinstance(src.get("zero_optimization"), dict) else {})
    zero["stage"] = a.stage
    if a.zero_extra:
        zero.update(json.loads(a.zero_extra))
    out["zero_optimization"] = zero
    if a.grad_accum_dtype:
        out.setdefault("data_types", {})["grad_accum_dtype"] = a.grad_accum_dtype
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


def cmd_tokens(a):
    import ctypes
    import torch
    g = torch.Generator().manual_seed(a.seed)
    t = torch.randint(0, a.vocab, (a.tokens,), generator=g, dtype=torch.int32).to(torch.int16)  # uint16 bits
    with open(a.out, "wb") as f:
        f.write(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))


STEP_RE = re.compile(r"^step (\d+)/(\d+) \| loss ([\d.naninf]+) \| lr \S+ \| (\d+) tok/s \| MFU (\S+) \| "
                     r"([\d.]+) ms/step \| peak mem ([\d.]+) GiB(?: \| host peak ([\d.]+) GiB)?")


def cmd_parse_cpp(a):
    text = open(a.log, errors="replace").read().splitlines()
    for line in reversed(text):  # the program's own summary line, when it prints one
        s = line.strip()
        if s.startswith("{") and '"bench"' in s:
            try:
                r = json.loads(s)
            except ValueError:
                continue
            if r.get("bench") == C.RESULT_KEY:
                # The row is what the suite ran (e.g. "deepspeed.cpp (experiments)"), not the program's own name.
                r["impl"] = a.impl
                print(json.dumps(r))
                return
    steps = [m for m in (STEP_RE.match(l.strip()) for l in text) if m]
    cfg = C.preset(a.model)
    for k in ("n_layer", "n_embd", "n_head"):
        if getattr(a, k):
            setattr(cfg, k, getattr(a, k))
    fpt = C.flops_per_token(cfg, a.seq_len)
    r = {"bench": C.RESULT_KEY, "impl": a.impl, "model": a.model, "n_layer": cfg.n_layer, "n_embd": cfg.n_embd,
         "n_head": cfg.n_head, "vocab": cfg.vocab_size, "n_params": C.num_parameters(cfg), "world_size": a.world,
         "zero_stage": a.stage, "micro_batch": a.micro, "grad_accum": a.gas,
         "global_batch": a.micro * a.gas * a.world, "seq_len": a.seq_len,
         "tokens_per_step": a.micro * a.gas * a.world * a.seq_len, "flops_per_token": fpt,
         "activation_checkpointing": a.activation_checkpointing, "source": "step lines", "tag": a.tag}
    last = steps[-1] if steps else None
    if not last or int(last.group(1)) != a.max_steps or int(last.group(1)) - a.log_interval <= 0:
        tail = [l for l in text if l.strip()][-3:]
        r["error"] = "no final step line" + (": " + " / ".join(tail)[-300:] if tail else "")
        print(json.dumps(r))
        return
    tok_s = float(last.group(4))
    mfu_s = last.group(5)
    r.update({
        "warmup_steps": a.max_steps - a.log_interval, "timed_steps": a.log_interval,
        "step_ms": float(last.group(6)), "tok_per_s": tok_s, "tok_per_s_per_gpu": tok_s / a.world,
        "mfu": float(mfu_s.rstrip("%")) / 100 if mfu_s.endswith("%") else None,
        "peak_mem_gib": [float(last.group(7))], "peak_mem_gib_max": float(last.group(7)),
        "peak_host_gib": float(last.group(8)) if last.group(8) else None,
        "peak_mem_note": "rank 0 only",
        "loss_first": float(steps[0].group(3)) if int(steps[0].group(1)) == 1 else None,
        "loss_last": float(last.group(3)),
    })
    print(json.dumps(r))


# ---------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------

ORDER = ["deepspeed.cpp", "deepspeed.cpp (experiments)", "deepspeed.cpp (reference CE)", "libtorch-loop", "libtorch-loop-graph", "pytorch-eager", "pytorch-compile", "deepspeed", "pytorch-ddp",
         "pytorch-ddp-compile", "pytorch-fsdp2", "pytorch-fsdp2-compile"]
MODEL_ORDER = ["tiny", "124M", "gpt2", "350M", "gpt2-medium", "774M", "gpt2-large", "1.5B", "gpt2-xl"]


def _key(r):
    m = r.get("model", "")
    return (MODEL_ORDER.index(m) if m in MODEL_ORDER else 99, m, r.get("world_size", 0),
            ORDER.index(r["impl"]) if r.get("impl") in ORDER else 99,
            -1 if r.get("zero_stage") is None else r["zero_stage"], r.get("tag", ""))


def _ok(r):
    return not r.get("error") and r.get("tok_per_s")


def _find(rows, model, world, impl, stage="any", tag=None):
    for r in rows:
        if (r.get("model") == model and r.get("world_size") == world and r.get("impl") == impl and _ok(r)
                and (stage == "any" or r.get("zero_stage") == stage) and (tag is None or r.get("tag", "") == tag)):
            return r
    return None


def _name(r):
    s = r["impl"]
    if r.get("impl") in ("deepspeed.cpp", "deepspeed") and r.get("zero_stage") is not None:
        s += f" z{r['zero_stage']}"
    if r.get("precision") and r["impl"].startswith("pytorch") and r["precision"] != "amp":
        s += f" ({r['precision']})"
    if r.get("tag"):
        s += f" [{r['tag']}]"
    return s


def _baseline(rows, r):
    """The row group's baseline: 1 GPU -> PyTorch eager; N GPUs -> DeepSpeed at its lowest measured ZeRO
    stage (normally 0), else DDP."""
    m, w = r.get("model"), r.get("world_size")
    if w == 1:
        return _find(rows, m, 1, "pytorch-eager", tag="")
    for stage in (0, 1, 2, 3):
        r0 = _find(rows, m, w, "deepspeed", stage)
        if r0:
            return r0
    return _find(rows, m, w, "pytorch-ddp", tag="")


# Issue #14 (transformer kernels): ours over torch.compile's faster recipe (both, amp and bf16-master, should be
# in the call), MFU at 350M and 1.5B, and the losses beside the compiled run's within bf16 noise.
ISSUE14_RATIO = {"124M": 1.3, "350M": 1.15, "1.5B": 1.15}
ISSUE14_MFU = {"350M": 0.50, "1.5B": 0.50}
# Two bf16 runs of the same model round differently from the first GEMM on: measured 4e-5 apart at step 1 and
# at most 0.0021 at step 40 (H200, 2026-12-05); 0.01 separates that from a wrong gradient.
ISSUE14_LOSS_TOLERANCE = 0.01
RECIPES = ("amp", "bf16-master")


def _issue14_checks(rows, models):
    checks = []
    for m in models:
        if m not in ISSUE14_RATIO:
            continue
        compiled = [r for r in rows if r.get("model") == m and r.get("world_size") == 1 and _ok(r)
                    and r.get("impl") == "pytorch-compile" and not r.get("tag")]
        ours = [(label, _find(rows, m, 1, impl)) for label, impl in
                (("ours", "deepspeed.cpp"), ("ours with the opt-in switches", "deepspeed.cpp (experiments)"))]
        ours = [(label, r) for label, r in ours if r]
        if not compiled and not ours:
            continue
        measured = sorted({r.get("precision", "amp") for r in compiled})
        missing = [p for p in RECIPES if p not in measured]
        checks.append((f"{m}: torch.compile recipes measured", ", ".join(measured) or "none", ", ".join(RECIPES),
                       "PASS" if not missing else "partial: " + ", ".join(missing) + " not run"))
        best = max(compiled, key=lambda r: r["tok_per_s"]) if compiled else None
        best_name = f"torch.compile ({best.get('precision', 'amp')})" if best else "torch.compile"
        target = ISSUE14_RATIO[m]
        if not ours:
            checks.append((f"{m}: ours / {best_name}", "—", f"≥ {target:g}", "not measured"))
        for label, r in ours:
            if best:
                ratio = r["tok_per_s"] / best["tok_per_s"]
                checks.append((f"{m}: {label} / {best_name}", f"{ratio:.3f}", f"≥ {target:g}",
                               "PASS" if ratio >= target else "FAIL"))
            else:
                checks.append((f"{m}: {label} / torch.compile", "—", f"≥ {target:g}", "not measured"))
            if m in ISSUE14_MFU and r.get("mfu") is not None:
                floor = ISSUE14_MFU[m]
                checks.append((f"{m}: {label} MFU", f"{100 * r['mfu']:.1f} %", f"≥ {100 * floor:.0f} %",
                               "PASS" if r["mfu"] >= floor else "FAIL"))
            if best:
                for key, what in (("loss_first", "first step"), ("loss_last", "last logged step")):
                    a, b = r.get(key), best.get(key)
                    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                        delta = abs(a - b)
                        checks.append((f"{m}: {label}, loss at the {what} − {best_name}'s", f"{delta:.4f}",
                                       f"≤ {ISSUE14_LOSS_TOLERANCE:g}",
                                       "PASS" if delta <= ISSUE14_LOSS_TOLERANCE else "FAIL"))
    return checks


def _print_checks(title, checks):
    print(f"### {title}\n")
    print("| check | measured | target | verdict |")
    print("|---|---|---|---|")
    for c in checks:
        print("| " + " | ".join(c) + " |")
    print()


def cmd_table(a):
    rows = []
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    rows.sort(key=_key)
    models = []
    for r in rows:
        if r.get("model") not in models:
            models.append(r.get("model"))

    # Targets of issue #6.
    checks = []

    def check(what, num, den, target, higher=True):
        if num and den:
            ratio = num["tok_per_s"] / den["tok_per_s"]
            ok = ratio >= target if higher else ratio <= target
            checks.append((what, f"{ratio:.3f}", ("≥ " if higher else "≤ ") + f"{target:g}", "PASS" if ok else "FAIL"))
        else:
            checks.append((what, "—", ("≥ " if higher else "≤ ") + f"{target:g}", "not measured"))

    for m in models:
        ours1 = _find(rows, m, 1, "deepspeed.cpp")
        check(f"{m} 1 GPU: ours / PyTorch eager", ours1, _find(rows, m, 1, "pytorch-eager", tag=""), 1.3)
        check(f"{m} 1 GPU: ours / torch.compile", ours1, _find(rows, m, 1, "pytorch-compile", tag=""), 1.0)
        exp1 = _find(rows, m, 1, "deepspeed.cpp (experiments)")
        if exp1:
            check(f"{m} 1 GPU: ours with the experiments / torch.compile", exp1,
                  _find(rows, m, 1, "pytorch-compile", tag=""), 1.0)
            check(f"{m} 1 GPU: ours with the experiments / ours", exp1, ours1, 1.0)
        loop = _find(rows, m, 1, "libtorch-loop")
        if ours1 and loop:
            ratio = loop["tok_per_s"] / ours1["tok_per_s"]
            checks.append((f"{m} 1 GPU: hand-written LibTorch loop / ours (engine overhead)", f"{ratio:.3f}",
                           "≤ 1.03", "PASS" if ratio <= 1.03 else "FAIL"))
        else:
            checks.append((f"{m} 1 GPU: hand-written LibTorch loop / ours (engine overhead)", "—", "≤ 1.03",
                           "not measured" + ("" if loop else " (no libtorch-loop binary)")))
        worlds = sorted({r["world_size"] for r in rows if r.get("model") == m and r.get("world_size", 1) > 1})
        for w in worlds:
            for s in (0, 1, 2, 3):
                o, d = _find(rows, m, w, "deepspeed.cpp", s), _find(rows, m, w, "deepspeed", s)
                # A stage that was attempted (even if a run failed) keeps its line, marked "not measured".
                tried = any(r.get("model") == m and r.get("world_size") == w and r.get("zero_stage") == s
                            and r.get("impl") in ("deepspeed.cpp", "deepspeed") for r in rows)
                if tried:
                    check(f"{m} {w} GPUs ZeRO-{s}: ours / DeepSpeed", o, d, 1.2)
            for s in (1, 2, 3):  # the issue: ≥ 95 % of one GPU at 4 GPUs for stages 1–2, ≥ 90 % for stage 3
                o = _find(rows, m, w, "deepspeed.cpp", s)
                if o and ours1:
                    eff = o["tok_per_s_per_gpu"] / ours1["tok_per_s"]
                    floor = 0.90 if s == 3 else 0.95
                    target = f"≥ {floor:.2f}" if w == 4 else f"(≥ {floor:.2f} at 4)"
                    verdict = ("PASS" if eff >= floor else "FAIL") if w == 4 else "info"
                    checks.append((f"{m} ZeRO-{s}: ours per-GPU tok/s at {w} GPUs / 1 GPU", f"{eff:.3f}", target,
                                   verdict))

    _print_checks("Targets (issue #6)", checks)
    kernel_checks = _issue14_checks(rows, models)
    if kernel_checks:
        _print_checks("Targets (issue #14: one GPU, against the faster torch.compile recipe)", kernel_checks)
    dev = next((r.get("device") for r in rows if r.get("device")), "?")
    tv = next((r.get("torch") for r in rows if r.get("torch")), "?")
    dsv = next((r.get("deepspeed") for r in rows if r.get("deepspeed")), None)
    print(f"### GPT-2 throughput ({dev}; torch {tv}" + (f"; deepspeed {dsv}" if dsv else "") + ")\n")
    print("`vs base`: tok/s over the row group's baseline (1 GPU: PyTorch eager; N GPUs: DeepSpeed ZeRO-0, "
          "or its lowest stage measured). "
          "MFU against 989 TFLOP/s per GPU. Peak GiB: max over ranks (ours: rank 0).\n")
    print("| model | GPUs | implementation | micro×accum | tok/s | tok/s/GPU | MFU | peak GiB | ms/step | loss@1 | vs base |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = _name(r)
        mb = f"{r.get('micro_batch', '?')}×{r.get('grad_accum', '?')}"
        if not _ok(r):
            err = str(r.get("error", "no result"))[:120].replace("|", "/")
            print(f"| {r.get('model')} | {r.get('world_size')} | {name} | {mb} | — | — | — | — | — | — | {err} |")
            continue
        base = _baseline(rows, r)
        vs = f"{r['tok_per_s'] / base['tok_per_s']:.2f}×" if base else "—"
        mfu_s = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        loss = f"{r['loss_first']:.3f}" if isinstance(r.get("loss_first"), (int, float)) else "—"
        ms = f"{r['step_ms']:.1f}" if r.get("step_ms") else "—"
        print(f"| {r.get('model')} | {r.get('world_size')} | {name} | {mb} | {r['tok_per_s']:,.0f} | "
              f"{r['tok_per_s_per_gpu']:,.0f} | {mfu_s} | {r.get('peak_mem_gib_max', float('nan')):.2f} | {ms} | "
              f"{loss} | {vs} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("config")
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--micro", type=int, required=True)
    p.add_argument("--gas", type=int, default=1)
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--stage", type=int, default=0)
    p.add_argument("--grad-accum-dtype", default="")
    p.add_argument("--zero-extra", default="")
    p.set_defaults(fn=cmd_config)
    p = sub.add_parser("tokens")
    p.add_argument("out")
    p.add_argument("--tokens", type=int, default=1 << 24)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(fn=cmd_tokens)
    p = sub.add_parser("parse-cpp")
    p.add_argument("log")
    p.add_argument("--impl", default="deepspeed.cpp")
    p.add_argument("--model", required=True)
    p.add_argument("--n_layer", type=int)
    p.add_argument("--n_embd", type=int)
    p.add_argument("--n_head", type=int)
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--stage", type=int, default=0)
    p.add_argument("--micro", type=int, required=True)
    p.add_argument("--gas", type=int, default=1)
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--max-steps", type=int, required=True)
    p.add_argument("--log-interval", type=int, required=True)
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--tag", default="")
    p.set_defaults(fn=cmd_parse_cpp)
    p = sub.add_parser("table")
    p.add_argument("results")
    p.set_defaults(fn=cmd_table)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
