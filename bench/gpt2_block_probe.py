"""Where a GPT-2 block's step time goes, op by op, on one GPU (issue #6's "where the time goes").

Times forward + backward of the pieces of one pre-LayerNorm block at a model's shapes (bf16, the token count
of the suite's micro-batch) and the whole block in eager and under torch.compile, whose difference is what
kernel fusion can win per block. CUDA events, median of --iters after --warmup.

    python3 bench/gpt2_block_probe.py --model 124M
"""
import argparse
import statistics

import torch
import torch.nn.functional as F

SHAPES = {"124M": (768, 12, 12, 32), "350M": (1024, 16, 24, 16), "1.5B": (1600, 25, 48, 8)}


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


class Block(torch.nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.c_attn, self.attn_proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.c_fc, self.mlp_proj = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, 2)
        heads = lambda z: z.view(b, t, self.h, d // self.h).transpose(1, 2)
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="124M", choices=sorted(SHAPES))
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args()
    d, h, layers, micro = SHAPES[a.model]
    n = micro * a.seq
    dev, dt = "cuda", torch.bfloat16
    torch.manual_seed(0)
    rows = []

    def row(name, fn, per_step=layers):
        ms = timed(fn, a.warmup, a.iters)
        rows.append((name, ms, ms * per_step))

    x = torch.randn(n, d, device=dev, dtype=dt, requires_grad=True)
    r = torch.randn(n, d, device=dev, dtype=dt, requires_grad=True)
    g = torch.randn(n, d, device=dev, dtype=dt)
    ln = torch.nn.LayerNorm(d, device=dev, dtype=dt)

    def ln_fb():
        ln(x).backward(g)
    row("LayerNorm fwd+bwd", ln_fb, 2 * layers)

    def add_ln_fb():
        s = x + r
        torch.autograd.backward([s, ln(s)], [g, g])
    row("residual add + LayerNorm fwd+bwd", add_ln_fb, 2 * layers)

    def add_fb():
        (x + r).backward(g)
    row("residual add fwd+bwd", add_fb, 2 * layers)

    fc = torch.nn.Linear(d, 4 * d, device=dev, dtype=dt)
    g4 = torch.randn(n, 4 * d, device=dev, dtype=dt)

    def fc_fb():
        fc(x).backward(g4)
    row("c_fc linear fwd+bwd", fc_fb)

    def fc_gelu_fb():
        F.gelu(fc(x), approximate="tanh").backward(g4)
    row("c_fc linear + GELU fwd+bwd", fc_gelu_fb)

    h4 = torch.randn(n, 4 * d, device=dev, dtype=dt, requires_grad=True)

    def gelu_fb():
        F.gelu(h4, approximate="tanh").backward(g4)
    row("GELU(tanh) fwd+bwd alone", gelu_fb)

    with torch.no_grad():
        row("c_fc addmm fwd only", lambda: fc(x))
        row("c_fc addmm + GELU fwd only", lambda: F.gelu(fc(x), approximate="tanh"))
        row("c_fc _addmm_activation(gelu) fwd only", lambda: torch._addmm_activation(fc.bias, x, fc.weight.t(), use_gelu=True))

    def bias_grad():
        g4.sum(0)
    row("bias grad (column sum of [N, 4d])", bias_grad)

    blk = Block(d, h).to(dev, dt)
    xb = torch.randn(micro, a.seq, d, device=dev, dtype=dt, requires_grad=True)
    gb = torch.randn(micro, a.seq, d, device=dev, dtype=dt)

    def blk_fb(m):
        return lambda: m(xb).backward(gb)
    row("block fwd+bwd eager", blk_fb(blk))
    row("block fwd+bwd torch.compile", blk_fb(torch.compile(blk)))

    qkv = [torch.randn(micro, h, a.seq, d // h, device=dev, dtype=dt, requires_grad=True) for _ in range(3)]
    go = torch.randn(micro, h, a.seq, d // h, device=dev, dtype=dt)

    def sdpa_fb():
        F.scaled_dot_product_attention(*qkv, is_causal=True).backward(go)
    row("SDPA causal fwd+bwd", sdpa_fb)

    print(f"probe: {a.model}: d {d}, heads {h}, {layers} layers, {n} tokens per micro-batch, bf16, "
          f"{torch.cuda.get_device_name()}")
    print("probe: | op | ms per call | ms per step (x calls) |")
    print("probe: |---|---|---|")
    for name, ms, step in rows:
        print(f"probe: | {name} | {ms:.3f} | {step:.2f} |")


if __name__ == "__main__":
    main()
