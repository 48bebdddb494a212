#!/usr/bin/env python3
"""GPT-2 trained by plain PyTorch: the baseline rows of the GPT-2 benchmark (issue #6).

The model, data, batch, optimizer, schedule, clipping and FLOPs formula are deepspeed.cpp's examples/gpt2
(see gpt2_model.py, gpt2_data.py); the batch, optimizer and schedule come from the same ds_config file.

  # one GPU, eager or torch.compile
  python3 bench/gpt2_pytorch.py --mode eager   --deepspeed_config examples/gpt2/ds_config_124M.json \
      --model 124M --grad-accum 1 --max-steps 30 --warmup-steps 10
  python3 bench/gpt2_pytorch.py --mode compile ...
  # N GPUs (torch.distributed.run ships with torch; no internet needed)
  python3 -m torch.distributed.run --standalone --nproc_per_node 4 bench/gpt2_pytorch.py --mode ddp ...
  python3 -m torch.distributed.run --standalone --nproc_per_node 4 bench/gpt2_pytorch.py --mode fsdp2 ...

Precision (--precision):
  amp          (default when the config enables bf16) fp32 parameters, bf16 autocast, fp32 gradients, fused
               AdamW on the fp32 parameters: the standard PyTorch recipe (nanoGPT's). Memory per parameter
               is the same 16 B of model states as ours; LayerNorm/softmax-side ops run in fp32 under autocast.
  bf16-master  what our engine does: bf16 weights (everything runs in bf16), bf16 gradients, a hand-written
               fp32 master copy updated by fused AdamW and copied back after each step.
  fp32         no mixed precision (the config has no bf16).
FSDP2 always uses its own MixedPrecisionPolicy for bf16 (param_dtype bf16, reduce_dtype fp32): sharded fp32
parameters, bf16 compute, which is ZeRO-3 (reshard_after_forward=True, FSDP2's default) or ZeRO-2-like
(--fsdp-reshard-after-forward 0).

Prints main.cpp-style "step ..." lines on rank 0 and, last, ONE JSON result line (see gpt2_common.result_line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_common as C  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--mode", default="eager", choices=["eager", "compile", "ddp", "fsdp2"])
    ap.add_argument("--compile", action="store_true", help="torch.compile on top of ddp/fsdp2 (implied by --mode compile)")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default, max-autotune, ...)")
    ap.add_argument("--precision", default="auto", choices=["auto", "amp", "bf16-master", "fp32"])
    ap.add_argument("--fsdp-reshard-after-forward", type=int, default=1, choices=[0, 1])
    ap.add_argument("--ddp-bucket-mb", type=float, default=25.0)
    args = ap.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    distributed = args.mode in ("ddp", "fsdp2")
    if not distributed and world > 1:
        raise SystemExit(f"--mode {args.mode} runs one process; use ddp or fsdp2 under torch.distributed.run")
    dev_type = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(dev_type, local_rank) if dev_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if distributed:
        if "RANK" not in os.environ:  # a single process without a launcher: a group of one
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                              MASTER_PORT=os.environ.get("MASTER_PORT", "29591"))
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    rank0 = rank == 0

    ds = C.load_ds_config(args, world)
    cfg = C.model_config(args)
    seq_len = args.seq_len or cfg.block_size
    if seq_len > cfg.block_size:
        raise SystemExit(f"--seq_len {seq_len} exceeds the block_size {cfg.block_size}")
    bf16 = bool(ds.get("bf16", {}).get("enabled", False) or ds.get("bfloat16", {}).get("enabled", False))
    precision = args.precision if args.precision != "auto" else ("amp" if bf16 else "fp32")
    if args.mode == "fsdp2" and precision == "bf16-master":
        raise SystemExit("--precision bf16-master: FSDP2 has its own mixed precision; use amp (MixedPrecisionPolicy)")
    micro, gas = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
    warmup = C.default_warmup(args.max_steps, args.warmup_steps)
    use_compile = args.mode == "compile" or args.compile

    # Built on the CPU from the seed, as main.cpp does (bit-identical to LibTorch's weights), then moved.
    torch.manual_seed(args.seed)
    model = C.GPT(cfg)
    n_params = C.count_parameters(model)
    model.to(device)
    adamw, lr, betas, eps, wd = C.optimizer_hparams(ds)

    masters = None
    if precision == "bf16-master":
        params = list(model.parameters())
        masters = [p.detach().clone().float() for p in params]
        model.to(torch.bfloat16)
        params = list(model.parameters())
        groups = [{"params": [m for p, m in zip(params, masters) if p.dim() >= 2], "weight_decay": wd},
                  {"params": [m for p, m in zip(params, masters) if p.dim() < 2], "weight_decay": 0.0}]
    else:
        groups = None  # after wrapping (FSDP2 replaces the parameters by DTensors)

    if args.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                    bucket_cap_mb=args.ddp_bucket_mb)
    elif args.mode == "fsdp2":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if precision == "amp" else MixedPrecisionPolicy())
        reshard = bool(args.fsdp_reshard_after_forward)
        for block in model.h:
            fully_shard(block, mp_policy=mp, reshard_after_forward=reshard)
        fully_shard(model, mp_policy=mp, reshard_after_forward=reshard)
    inner = model.module if args.mode == "ddp" else model
    if groups is None:
        groups = C.param_groups(inner, wd)
    opt_cls = torch.optim.AdamW if adamw else torch.optim.Adam
    optimizer = opt_cls(groups, lr=lr, betas=betas, eps=eps, fused=True)
    schedule = C.DsSchedule(optimizer, ds.get("scheduler"))
    clip = float(ds.get("gradient_clipping", 0.0) or 0.0)
    fwd = torch.compile(model, mode=args.compile_mode) if use_compile else model
    torch.manual_seed(args.seed + rank)  # dropout masks differ per rank

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                if precision == "amp" and args.mode != "fsdp2" else contextlib.nullcontext())
    source = C.Batches(args.data, args.data_format, args.sampling, seq_len, micro, cfg.vocab_size,
                       args.seed, world, rank, device)
    batches = iter(source)

    def all_reduce_sum(values):
        if not distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    impl = {"eager": "pytorch-eager", "compile": "pytorch-compile", "ddp": "pytorch-ddp",
            "fsdp2": "pytorch-fsdp2"}[args.mode] + ("-compile" if args.compile and distributed else "")
    if rank0:
        print(f"gpt2 [{impl}]: {args.model}, {cfg.n_layer} layers, d={cfg.n_embd}, {cfg.n_head} heads, vocab "
              f"{cfg.vocab_size}, seq_len {seq_len}, {n_params / 1e6:.2f}M parameters, "
              f"{C.flops_per_token(cfg, seq_len):.3g} FLOPs/token, precision {precision}, world {world}, "
              f"micro {micro} x accum {gas}, activation checkpointing {'on' if cfg.activation_checkpointing else 'off'}",
              flush=True)
        print(f"gpt2: data {source.describe()}", flush=True)

    tokens_per_step = micro * gas * world * seq_len
    timer = C.StepTimer(args.max_steps, warmup, args.log_interval, tokens_per_step,
                        C.flops_per_token(cfg, seq_len), world, device, rank0, all_reduce_sum,
                        lambda: optimizer.param_groups[0]["lr"])
    model.train()
    model_params = list(inner.parameters())
    for step in range(1, args.max_steps + 1):
        for m in range(gas):
            x, y = next(batches)
            last = m == gas - 1
            if args.mode == "ddp" and not last:
                sync_ctx = model.no_sync()
            else:
                sync_ctx = contextlib.nullcontext()
            if args.mode == "fsdp2":
                model.set_requires_gradient_sync(last)
            with sync_ctx:
                with autocast:
                    loss = C.lm_loss(fwd(x), y)
                (loss / gas).backward()
            timer.add_loss(loss)
        if masters is not None:
            for p, mp_ in zip(model_params, masters):
                mp_.grad = p.grad.float()
                p.grad = None
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([q for g in optimizer.param_groups for q in g["params"]], clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if masters is not None:
            with torch.no_grad():
                torch._foreach_copy_(model_params, masters)
        timer.end_step(step)

    peak = C.peak_memory_gib(device)
    peaks = [peak]
    if distributed:
        t = torch.tensor([peak], dtype=torch.float64, device=device)
        out = [torch.zeros_like(t) for _ in range(world)]
        dist.all_gather(out, t)
        peaks = [float(o.item()) for o in out]
    if rank0:
        C.emit(C.result_line(impl, args, cfg, ds, world, timer, n_params, peaks, device, precision=precision,
                             zero_stage=None, optimizer=f"torch.optim.{opt_cls.__name__}(fused=True)",
                             compile=use_compile,
                             fsdp_reshard_after_forward=bool(args.fsdp_reshard_after_forward)
                             if args.mode == "fsdp2" else None), args.json_out)
    if distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
