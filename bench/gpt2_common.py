"""Shared pieces of the Python GPT-2 baselines (gpt2_pytorch.py, gpt2_deepspeed.py).

Everything here mirrors examples/gpt2/ of deepspeed.cpp, so the baselines train *the same model on the same
data with the same arithmetic*:

- the model (model.cpp): pre-LayerNorm blocks, causal SDPA, GELU(tanh), LM head tied to the token embedding,
  GPT-2's init (N(0, 0.02), zero biases, residual projections N(0, 0.02/sqrt(2L))), dropout 0 by default.
  Modules are constructed and initialised in the C++ order, so with the same seed on the CPU the initial
  weights are bit-identical to LibTorch's (same mt19937 generator, same kernels);
- presets and FLOPs (gpt_config.h): vocab 50304, flops_per_token = 6N + 12*L*d*T with N = all parameters
  except the position embedding; MFU against 989e12 per GPU;
- data (data.h/.cpp): llm.c / raw uint16 / byte token files, windows of seq_len+1 tokens, sequential or
  SplitMix64-random window starts, read in PyTorch's DistributedSampler order (shuffle, seed, epoch);
  plus "random" (tokens drawn on the device, no file at all);
- the schedule: DeepSpeed's WarmupCosineLR / WarmupLR / WarmupDecayLR (docs/lr_schedules.md), so the
  PyTorch baselines need no DeepSpeed.

No numpy: the device image has it, this repository's CI machine may not.
"""

from __future__ import annotations

import argparse
import json
import math
import mmap
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass, asdict
from typing import Iterator, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

H100_BF16_PEAK_FLOPS = 989e12  # dense bf16 tensor-core peak of one H100 SXM, as gpt_config.h
INIT_STD = 0.02
RESULT_KEY = "gpt2"  # every result line is a JSON object with "bench": "gpt2"


# ----------------------------------------------------------------------------------------------------------
# Shapes and FLOPs (gpt_config.h)
# ----------------------------------------------------------------------------------------------------------

@dataclass
class GPTConfig:
    vocab_size: int = 50304
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    activation_checkpointing: bool = False


PRESETS = {
    "124M": (12, 12, 768), "gpt2": (12, 12, 768),
    "350M": (24, 16, 1024), "gpt2-medium": (24, 16, 1024),
    "774M": (36, 20, 1280), "gpt2-large": (36, 20, 1280),
    "1.5B": (48, 25, 1600), "gpt2-xl": (48, 25, 1600),
}


def preset(name: str) -> GPTConfig:
    if name == "tiny":  # main.cpp's CPU smoke model
        return GPTConfig(vocab_size=50304, block_size=64, n_layer=2, n_head=2, n_embd=64)
    if name not in PRESETS:
        raise SystemExit(f"--model: unknown model \"{name}\" (expected one of {', '.join(PRESETS)}, tiny)")
    L, H, d = PRESETS[name]
    return GPTConfig(n_layer=L, n_head=H, n_embd=d)


def num_parameters(c: GPTConfig, include_position_embedding: bool = True) -> int:
    d = c.n_embd
    return (c.vocab_size * d + (c.block_size * d if include_position_embedding else 0)
            + c.n_layer * (12 * d * d + 13 * d) + 2 * d)


def flops_per_token(c: GPTConfig, seq_len: int) -> float:
    n = float(num_parameters(c, include_position_embedding=False))
    return 6.0 * n + 12.0 * c.n_layer * c.n_embd * seq_len


def mfu(fpt: float, tok_per_s: float, num_gpus: int, peak: float = H100_BF16_PEAK_FLOPS) -> float:
    return fpt * tok_per_s / (peak * num_gpus)


# ----------------------------------------------------------------------------------------------------------
# The model (model.cpp). Construction order = RNG order = LibTorch's.
# ----------------------------------------------------------------------------------------------------------

def _linear(fan_in: int, fan_out: int, std: float) -> nn.Linear:
    lin = nn.Linear(fan_in, fan_out)  # consumes the RNG like torch::nn::Linear (kaiming_uniform_, uniform_)
    with torch.no_grad():
        nn.init.normal_(lin.weight, 0.0, std)
        nn.init.zeros_(lin.bias)
    return lin


def _residual_std(c: GPTConfig) -> float:
    return INIT_STD / math.sqrt(2.0 * c.n_layer)


class CausalSelfAttention(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = c.n_head, c.n_embd, c.dropout
        self.c_attn = _linear(c.n_embd, 3 * c.n_embd, INIT_STD)
        self.c_proj = _linear(c.n_embd, c.n_embd, _residual_std(c))
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        hd = d // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, self.n_head, hd).transpose(1, 2) for z in (q, k, v))  # [B, H, T, hd]
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, d)
        return self.resid_dropout(self.c_proj(y))


class Mlp(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.c_fc = _linear(c.n_embd, 4 * c.n_embd, INIT_STD)
        self.c_proj = _linear(4 * c.n_embd, c.n_embd, _residual_std(c))
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, eps=1e-5)
        self.mlp = Mlp(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attn(self.ln_1(x))
        return h + self.mlp(self.ln_2(h))


class GPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        if min(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd) <= 0:
            raise SystemExit("gpt2: vocab, block_size, n_layer, n_head and n_embd must be positive")
        if c.n_embd % c.n_head:
            raise SystemExit(f"gpt2: n_embd {c.n_embd} is not divisible by n_head {c.n_head}")
        self.config = c
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        with torch.no_grad():
            nn.init.normal_(self.wte.weight, 0.0, INIT_STD)
            nn.init.normal_(self.wpe.weight, 0.0, INIT_STD)
        self.drop = nn.Dropout(c.dropout)
        self.h = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd, eps=1e-5)
        # Recomputation of each block in backward; gpt2_deepspeed.py swaps in deepspeed.checkpointing.checkpoint.
        self.checkpoint_fn = None

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.size(1)
        if t > self.config.block_size:
            raise ValueError(f"gpt2: sequence of {t} tokens exceeds block_size {self.config.block_size}")
        pos = torch.arange(t, device=idx.device, dtype=torch.long)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            if self.config.activation_checkpointing and self.training and torch.is_grad_enabled():
                if self.checkpoint_fn is not None:
                    x = self.checkpoint_fn(block, x)
                else:
                    x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        # LM head = the token embedding, transposed (one Parameter, both uses accumulate into its gradient).
        return F.linear(self.ln_f(x), self.wte.weight)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, computed in float32 whatever the logits' dtype (model.cpp's lm_loss)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def param_groups(model: nn.Module, weight_decay: float) -> List[dict]:
    """Weight decay on matrices (dim >= 2: linear weights, embeddings) only, as main.cpp does."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() de-duplicates the tied weight


# ----------------------------------------------------------------------------------------------------------
# Data (data.h / data.cpp, sampler.cpp, dataloader.cpp)
# ----------------------------------------------------------------------------------------------------------

LLMC_MAGIC = 20240520
LLMC_HEADER_BYTES = 256 * 4
_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64, data.cpp's stateless (seed, index) -> offset map."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class TokenFile:
    """A memory-mapped token file: llm.c (.bin with header), raw uint16, or bytes (vocabulary 256)."""

    def __init__(self, path: str, fmt: str = "auto"):
        self.path = path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise SystemExit(f"'{path}' is empty")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private, writable: no torch warning
        header = torch.frombuffer(self._map, dtype=torch.int32, count=3) if size >= 12 else None
        magic = int(header[0]) if header is not None else 0
        if fmt == "auto":
            fmt = "llmc" if magic == LLMC_MAGIC else ("uint16" if path.endswith(".bin") else "bytes")
        offset, width = 0, 1
        if fmt == "llmc":
            if magic != LLMC_MAGIC:
                raise SystemExit(f"'{path}' is not an llm.c token file (magic {magic}, expected {LLMC_MAGIC})")
            version, count = int(header[1]), int(header[2])
            width = {1: 2, 2: 4}.get(version, 0)
            if not width:
                raise SystemExit(f"'{path}': unknown llm.c version {version}")
            offset = LLMC_HEADER_BYTES
            if size - offset != count * width:
                raise SystemExit(f"'{path}': header says {count} tokens, the file holds {(size - offset) // width}")
        elif fmt == "uint16":
            width = 2
            if size % 2:
                raise SystemExit(f"'{path}': {size} bytes is not a whole number of uint16 tokens")
        elif fmt != "bytes":
            raise SystemExit(f"unknown token format \"{fmt}\" (expected auto, llmc, uint16 or bytes)")
        self.format = fmt
        n = (size - offset) // width
        # int16/int32 views; tokens are unsigned, fixed up in read().
        dtype = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[width]
        self.tokens = torch.frombuffer(self._map, dtype=dtype, offset=offset, count=n)
        self.width = width
        self.size = n

    def read(self, start: int, length: int) -> torch.Tensor:
        t = self.tokens[start:start + length].to(torch.int64)
        if self.width == 2:
            t &= 0xFFFF
        elif self.width == 4:
            t &= 0xFFFFFFFF
        return t


class TokenWindows:
    """Window i: seq_len+1 tokens starting at i*seq_len (sequential) or at SplitMix64(seed, i) (random)."""

    def __init__(self, file: TokenFile, seq_len: int, sampling: str, seed: int, vocab_size: int):
        if file.size < seq_len + 1:
            raise SystemExit(f"'{file.path}' holds {file.size} tokens, fewer than one window of {seq_len + 1}")
        self.file, self.seq_len, self.sampling, self.seed, self.vocab = file, seq_len, sampling, seed, vocab_size
        self.num_windows = (file.size - 1) // seq_len

    def start(self, i: int) -> int:
        if self.sampling == "sequential":
            return i * self.seq_len
        starts = self.file.size - self.seq_len
        return _mix(((self.seed * 0x100000001B3) & _MASK64) ^ _mix(i)) % starts

    def batch(self, indices: List[int]):
        w = torch.stack([self.file.read(self.start(i), self.seq_len + 1) for i in indices])
        if self.vocab and int(w.max()) >= self.vocab:
            raise SystemExit(f"'{self.file.path}' holds token {int(w.max())}, outside the vocabulary of {self.vocab}")
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def sampler_indices(n: int, world: int, rank: int, seed: int, epoch: int) -> List[int]:
    """torch.utils.data.DistributedSampler(shuffle=True, seed, drop_last=False): ours is the same."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    order = torch.randperm(n, generator=g).tolist()
    total = (n + world - 1) // world * world
    padded = [order[i % n] for i in range(total)]
    return padded[rank:total:world]


class Batches:
    """Endless micro-batches [B, T] (x, y) for one rank, on `device`.

    data == "random": tokens drawn on the device (uniform in [0, min(vocab, 50257))), no host work at all.
    Otherwise a token file read as our engine's DataLoader reads it (DistributedSampler order, consecutive
    micro-batches, the last one of an epoch partial, then the next epoch).
    """

    def __init__(self, data: str, data_format: str, sampling: str, seq_len: int, micro_batch: int, vocab: int,
                 seed: int, world: int, rank: int, device: torch.device):
        self.device, self.B, self.T = device, micro_batch, seq_len
        self.random = data == "random"
        if self.random:
            self.high = min(vocab, 50257)
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(seed * 1000003 + rank)
            return
        self.windows = TokenWindows(TokenFile(data, data_format), seq_len, sampling, seed, vocab)
        self.world, self.rank, self.seed, self.epoch = world, rank, seed, 0
        self.pin = device.type == "cuda"

    def describe(self) -> str:
        if self.random:
            return f"random tokens in [0, {self.high}) drawn on {self.device}"
        w = self.windows
        return f"{w.file.path} ({w.file.format}, {w.file.size} tokens, {w.num_windows} windows, {w.sampling})"

    def __iter__(self) -> Iterator:
        if self.random:
            while True:
                w = torch.randint(0, self.high, (self.B, self.T + 1), device=self.device, generator=self.gen)
                yield w[:, :-1], w[:, 1:]
        while True:
            idx = sampler_indices(self.windows.num_windows, self.world, self.rank, self.seed, self.epoch)
            for i in range(0, len(idx), self.B):
                x, y = self.windows.batch(idx[i:i + self.B])
                if self.pin:
                    x, y = x.pin_memory(), y.pin_memory()
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            self.epoch += 1


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
