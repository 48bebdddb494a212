"""Shared pieces of the Python GPT-2 baselines (gpt2_pytorch.py, gpt2_deepspeed.py), beside the model
(gpt2_model.py) and the data (gpt2_data.py), which this module re-exports.

Everything here mirrors examples/gpt2/ of deepspeed.cpp, so the baselines train *the same model on the same
data with the same arithmetic*: the schedule is DeepSpeed's WarmupCosineLR / WarmupLR / WarmupDecayLR
(docs/lr_schedules.md), so the PyTorch baselines need no DeepSpeed; the flags are main.cpp's; the result line
is the one our example prints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import sys
import time
from typing import List, Optional

import torch

from gpt2_data import *  # noqa: F401,F403,E402  (re-exported: C.Batches, ...)
from gpt2_model import *  # noqa: F401,F403,E402  (re-exported: C.GPT, C.preset, ...)

# ----------------------------------------------------------------------------------------------------------
# DeepSpeed's schedules (deepspeed/runtime/lr_schedules.py; docs/lr_schedules.md), for the PyTorch baselines
# ----------------------------------------------------------------------------------------------------------

class DsSchedule:
    """Writes DeepSpeed's lr into every param group: at construction (t = -1) and after each step()."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler_cfg: Optional[dict]):
        self.opt = optimizer
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.type = (scheduler_cfg or {}).get("type")
        self.p = dict((scheduler_cfg or {}).get("params", {}))
        if self.type not in (None, "WarmupCosineLR", "WarmupLR", "WarmupDecayLR"):
            print(f"[gpt2] scheduler {self.type} is not reproduced here; the lr stays constant", file=sys.stderr)
            self.type = None
        self.t = -1
        self._write()

    def _fraction(self, t: int, W: int) -> float:
        if self.p.get("warmup_type", "log") == "log":
            return math.log(t + 1) / math.log(W)
        return t / W

    def lrs(self) -> List[float]:
        t, p = self.t, self.p
        if self.type is None:
            return list(self.base)
        W = max(2, int(p.get("warmup_num_steps", 1000)))
        if self.type == "WarmupCosineLR":
            if t < 0:
                return [0.0 for _ in self.base]
            T = int(p["total_num_steps"])
            wmin = float(p.get("warmup_min_ratio", 0.0))
            cmin = float(p.get("cos_min_ratio", 0.0001))
            if t < W:
                ratio = wmin + (1.0 - wmin) * self._fraction(t, W)
            else:
                prog = min(1.0, (t - W + 1) / max(1, T - W))
                ratio = max(0.0, cmin + (1.0 - cmin) * (1 + math.cos(math.pi * prog)) / 2)
            return [b * ratio for b in self.base]
        # WarmupLR / WarmupDecayLR
        lo = float(p.get("warmup_min_lr", 0.0))
        hi = p.get("warmup_max_lr", None if self.type == "WarmupLR" else 0.001)
        his = list(self.base) if hi is None else [float(hi)] * len(self.base)
        if t < 0:
            gamma = 0.0
        elif t < W:
            gamma = self._fraction(t, W)
        elif self.type == "WarmupDecayLR":
            T = int(p["total_num_steps"])
            gamma = max(0.0, (T - t) / max(1, T - W))
        else:
            gamma = 1.0
        return [lo + (h - lo) * gamma for h in his]

    def _write(self):
        for g, lr in zip(self.opt.param_groups, self.lrs()):
            g["lr"] = lr

    def step(self):
        self.t += 1
        self._write()


# ----------------------------------------------------------------------------------------------------------
# Flags shared by both baselines (main.cpp's, plus the benchmark's)
# ----------------------------------------------------------------------------------------------------------

def add_common_args(ap: argparse.ArgumentParser):
    ap.add_argument("--model", default="124M", help="124M (default), 350M, 774M, 1.5B, gpt2[-medium|-large|-xl], tiny")
    ap.add_argument("--n_layer", type=int)
    ap.add_argument("--n_embd", type=int)
    ap.add_argument("--n_head", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--block_size", type=int)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--data", default="random",
                    help="'random' (default: tokens drawn on the device) or a token/text file as main.cpp reads")
    ap.add_argument("--data-format", default="auto", choices=["auto", "llmc", "uint16", "bytes"])
    ap.add_argument("--sampling", default="random", choices=["random", "sequential"])
    ap.add_argument("--seq_len", type=int, default=0, help="tokens per sample (default: block_size)")
    ap.add_argument("--max-steps", type=int, default=20, help="optimizer steps in all, warm-up included")
    ap.add_argument("--warmup-steps", type=int, default=None,
                    help="steps excluded from timing (default: min(5, max_steps // 2))")
    ap.add_argument("--log-interval", type=int, default=10)
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--deepspeed_config", "--deepspeed-config", dest="deepspeed_config", default=None,
                    help="ds_config JSON: batch, optimizer, scheduler, clipping and bf16 come from it")
    ap.add_argument("--micro-batch", type=int, default=None, help="override train_micro_batch_size_per_gpu")
    ap.add_argument("--grad-accum", type=int, default=None,
                    help="override gradient accumulation (train_batch_size = micro * accum * world)")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--json-out", default=None, help="also append the result line to this file")
    ap.add_argument("--tag", default="", help="free text copied into the result line")
    ap.add_argument("--local_rank", type=int, default=-1, help="(launchers)")


def resolved_format(data: str, fmt: str) -> str:
    """data.cpp's kAuto rule: llm.c if the file starts with its magic, raw uint16 for a .bin name, else bytes."""
    if data == "random" or fmt != "auto":
        return fmt
    with open(data, "rb") as f:
        head = f.read(4)
    if len(head) == 4 and int.from_bytes(head, "little", signed=True) == LLMC_MAGIC:
        return "llmc"
    return "uint16" if data.endswith(".bin") else "bytes"


def model_config(args) -> GPTConfig:
    c = preset(args.model)
    if resolved_format(args.data, args.data_format) == "bytes":
        c.vocab_size = 256  # as main.cpp: byte-level text
    for k in ("n_layer", "n_embd", "n_head", "block_size"):
        if getattr(args, k) is not None:
            setattr(c, k, getattr(args, k))
    if args.vocab is not None:
        c.vocab_size = args.vocab
    c.dropout = args.dropout
    c.activation_checkpointing = args.activation_checkpointing
    return c


DEFAULT_DS_CONFIG = {
    "train_micro_batch_size_per_gpu": 8,
    "gradient_accumulation_steps": 1,
    "gradient_clipping": 1.0,
    "bf16": {"enabled": True},
    "optimizer": {"type": "AdamW", "params": {"lr": 6e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}},
}


def load_ds_config(args, world: int) -> dict:
    """The ds_config, with the batch triad resolved for `world` ranks and the --micro-batch/--grad-accum
    overrides applied (DeepSpeed's rule: train_batch_size = micro * accumulation * world)."""
    if args.deepspeed_config:
        with open(args.deepspeed_config) as f:
            cfg = json.load(f)
    else:
        cfg = json.loads(json.dumps(DEFAULT_DS_CONFIG))
    tb, mb, ga = (cfg.get("train_batch_size"), cfg.get("train_micro_batch_size_per_gpu"),
                  cfg.get("gradient_accumulation_steps"))
    if args.micro_batch is not None or args.grad_accum is not None:
        mb = args.micro_batch if args.micro_batch is not None else (mb or 1)
        ga = args.grad_accum if args.grad_accum is not None else (ga or 1)
        tb = None
    if tb is not None and mb is not None:
        if tb % (mb * world):
            raise SystemExit(f"train_batch_size {tb} is not divisible by micro {mb} x {world} ranks")
        ga = tb // (mb * world)
    elif tb is not None and ga is not None:
        mb = tb // (ga * world)
    mb, ga = mb or 1, ga or 1
    cfg.pop("gradient_accumulation_steps", None)
    cfg["train_micro_batch_size_per_gpu"] = mb
    cfg["gradient_accumulation_steps"] = ga
    cfg["train_batch_size"] = mb * ga * world
    return cfg


def optimizer_hparams(cfg: dict):
    """(AdamW-mode?, lr, betas, eps, weight_decay) from the ds_config's optimizer section."""
    opt = cfg.get("optimizer") or DEFAULT_DS_CONFIG["optimizer"]
    typ = opt.get("type", "AdamW").lower()
    p = opt.get("params", {})
    if typ not in ("adam", "adamw"):
        raise SystemExit(f"optimizer {opt.get('type')}: the baselines implement Adam/AdamW only")
    adamw = typ == "adamw" or bool(p.get("adam_w_mode", True))  # DeepSpeed's "Adam" is AdamW unless told
    return adamw, float(p.get("lr", 1e-3)), tuple(p.get("betas", (0.9, 0.999))), float(p.get("eps", 1e-8)), \
        float(p.get("weight_decay", 0.0))


# ----------------------------------------------------------------------------------------------------------
# Measurement and the result line
# ----------------------------------------------------------------------------------------------------------

def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, this process's RSS


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {socket.gethostname()})"


class StepTimer:
    """Times steps warmup+1 .. max_steps (host-synchronised at both ends) and logs main.cpp-style lines.

    Logging follows main.cpp: at step 1, every log_interval steps and at the last step, the mean loss over
    ranks and micro-batches since the previous line (a device sync + an all-reduce, as ours does)."""

    def __init__(self, max_steps: int, warmup: int, log_interval: int, tokens_per_step: int, fpt: float,
                 world: int, device: torch.device, rank0: bool, all_reduce_sum, lr_fn):
        self.max_steps, self.warmup, self.log_interval = max_steps, warmup, log_interval
        self.tokens_per_step, self.fpt, self.world, self.device = tokens_per_step, fpt, world, device
        self.rank0, self.all_reduce_sum, self.lr_fn = rank0, all_reduce_sum, lr_fn
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        self.micro = 0
        self.loss_first = None
        self.loss_last = None
        self.t_start = None
        self.elapsed = None
        sync(device)
        self.t_interval = time.perf_counter()
        self.last_logged = 0

    def add_loss(self, loss: torch.Tensor):
        self.loss_sum += loss.detach().float()
        self.micro += 1

    def end_step(self, step: int):
        if step == 1 or step % self.log_interval == 0 or step == self.max_steps:
            sync(self.device)
            now = time.perf_counter()
            secs = now - self.t_interval
            loss_all, micro_all = self.all_reduce_sum([float(self.loss_sum.item()), float(self.micro)])
            loss = loss_all / max(micro_all, 1)
            if step == 1:
                self.loss_first = loss
            self.loss_last = loss
            n = step - self.last_logged
            tok_s = self.tokens_per_step * n / secs
            if self.rank0:
                m = f"{100 * mfu(self.fpt, tok_s, self.world):.1f}%" if self.device.type == "cuda" else "n/a"
                print(f"step {step}/{self.max_steps} | loss {loss:.4f} | lr {self.lr_fn():.4e} | {tok_s:.0f} tok/s"
                      f" | MFU {m} | {1e3 * secs / n:.1f} ms/step | peak mem {peak_memory_gib(self.device):.2f} GiB",
                      flush=True)
            self.loss_sum.zero_()
            self.micro = 0
            self.last_logged = step
            self.t_interval = time.perf_counter()  # the logging itself is outside the next interval
        if step == self.warmup:
            sync(self.device)
            self.t_start = time.perf_counter()
        if step == self.max_steps:
            sync(self.device)
            self.elapsed = time.perf_counter() - self.t_start if self.t_start is not None else None


def result_line(impl: str, args, cfg: GPTConfig, ds: dict, world: int, timer: StepTimer, n_params: int,
                peaks: List[float], device: torch.device, **extra) -> dict:
    seq_len = args.seq_len or cfg.block_size
    timed = timer.max_steps - timer.warmup
    tok_s = (timer.tokens_per_step * timed / timer.elapsed) if timer.elapsed else None
    fpt = flops_per_token(cfg, seq_len)
    r = {
        "bench": RESULT_KEY,
        "impl": impl,
        "model": args.model,
        "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "vocab": cfg.vocab_size,
        "n_params": n_params,
        "world_size": world,
        "micro_batch": ds["train_micro_batch_size_per_gpu"],
        "grad_accum": ds["gradient_accumulation_steps"],
        "global_batch": ds["train_batch_size"],
        "seq_len": seq_len,
        "tokens_per_step": timer.tokens_per_step,
        "warmup_steps": timer.warmup,
        "timed_steps": timed,
        "step_ms": 1e3 * timer.elapsed / timed if timer.elapsed else None,
        "tok_per_s": tok_s,
        "tok_per_s_per_gpu": tok_s / world if tok_s else None,
        "flops_per_token": fpt,
        "mfu": mfu(fpt, tok_s, world) if (tok_s and device.type == "cuda") else None,
        "peak_mem_gib": [round(p, 3) for p in peaks],
        "peak_mem_gib_max": round(max(peaks), 3),
        "loss_first": timer.loss_first,
        "loss_last": timer.loss_last,
        "activation_checkpointing": cfg.activation_checkpointing,
        "data": args.data,
        "device": device_name(device),
        "torch": torch.__version__,
        "tag": args.tag,
    }
    r.update(extra)
    return r


def emit(result: dict, json_out: Optional[str]):
    line = json.dumps(result, sort_keys=False)
    print(line, flush=True)
    if json_out:
        with open(json_out, "a") as f:
            f.write(line + "\n")


def default_warmup(max_steps: int, warmup: Optional[int]) -> int:
    w = min(5, max_steps // 2) if warmup is None else warmup
    if not 0 < w < max_steps:
        raise SystemExit(f"--warmup-steps {w}: need 0 < warmup < max-steps ({max_steps}) to time anything")
    return w
