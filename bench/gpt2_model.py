"""GPT-2 for the Python baselines: examples/gpt2/model.cpp and gpt_config.h of deepspeed.cpp, line for line.

Pre-LayerNorm blocks, causal SDPA, GELU(tanh), LM head tied to the token embedding, GPT-2's init (N(0, 0.02),
zero biases, residual projections N(0, 0.02/sqrt(2L))), dropout 0 by default. Modules are constructed and
initialised in the C++ order, so with the same seed on the CPU the initial weights are bit-identical to
LibTorch's (same mt19937 generator, same kernels). Presets and FLOPs: vocab 50304, flops_per_token = 6N +
12*L*d*T with N = all parameters except the position embedding; MFU against 989e12 per GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

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
    "3.8B": (32, 24, 3072), "10B": (50, 32, 4096),  # GPT-style shapes for the ZeRO-Offload benchmark
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
