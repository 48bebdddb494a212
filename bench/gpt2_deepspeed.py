#!/usr/bin/env python3
"""GPT-2 trained by real DeepSpeed (PyPI `deepspeed`): the DeepSpeed rows of the GPT-2 benchmark (issue #6).

Same model, data, seed and ds_config file as deepspeed.cpp's examples/gpt2 (see gpt2_model.py, gpt2_data.py); DeepSpeed
does what the config says: bf16 casts the module, the optimizer section builds DeepSpeed's FusedAdam (JIT
built on first use; `--optimizer torch-fused` passes torch.optim.AdamW(fused=True) instead), the scheduler
section builds DeepSpeed's schedule, zero_optimization.stage picks the ZeRO optimizer.

  python3 -m torch.distributed.run --standalone --nproc_per_node 2 bench/gpt2_deepspeed.py \
      --deepspeed_config examples/gpt2/ds_config_124M.json --zero-stage 1 --grad-accum 1 --max-steps 30
  deepspeed --num_gpus 2 bench/gpt2_deepspeed.py ...          # DeepSpeed's own launcher works too
  DS_ACCELERATOR=cpu python3 bench/gpt2_deepspeed.py --model tiny --optimizer torch-fused ...   # CPU, gloo

Prints main.cpp-style "step ..." lines on rank 0 and, last, ONE JSON result line (gpt2_common.result_line).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_common as C  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--zero-stage", type=int, default=None, choices=[0, 1, 2, 3],
                    help="override zero_optimization.stage of the config")
    ap.add_argument("--optimizer", default="ds", choices=["ds", "torch-fused"],
                    help="ds: the config's optimizer section (DeepSpeed's FusedAdam); torch-fused: "
                         "torch.optim.AdamW(fused=True) with the section's hyperparameters as a client optimizer")
    ap.add_argument("--grad-accum-dtype", default=None, choices=["fp32", "bf16", "fp16"],
                    help="set data_types.grad_accum_dtype (DeepSpeed 0.19.8's default: the model dtype)")
    args = ap.parse_args()

    if "RANK" not in os.environ:  # a single process without a launcher: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT", "29592"))
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])

    import deepspeed
    import deepspeed.comm as dcomm
    from deepspeed.accelerator import get_accelerator

    accel = get_accelerator()
    if accel.device_name() == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    ds = C.load_ds_config(args, world)
    if args.zero_stage is not None:
        ds.setdefault("zero_optimization", {})["stage"] = args.zero_stage
    if args.grad_accum_dtype:
        ds.setdefault("data_types", {})["grad_accum_dtype"] = args.grad_accum_dtype
    stage = int(ds.get("zero_optimization", {}).get("stage", 0))
    cfg = C.model_config(args)
    seq_len = args.seq_len or cfg.block_size
    if seq_len > cfg.block_size:
        raise SystemExit(f"--seq_len {seq_len} exceeds the block_size {cfg.block_size}")
    micro, gas = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
    warmup = C.default_warmup(args.max_steps, args.warmup_steps)

    # Built on the CPU from the seed (bit-identical to LibTorch's weights); DeepSpeed moves and casts it.
    torch.manual_seed(args.seed)
    t_build = time.perf_counter()
    model = C.GPT(cfg)
    print(f"setup: model built on the CPU in {time.perf_counter() - t_build:.1f} s", file=sys.stderr, flush=True)
    n_params = C.count_parameters(model)
    adamw, lr, betas, eps, wd = C.optimizer_hparams(ds)
    groups = C.param_groups(model, wd)
    client_opt = None
    if args.optimizer == "torch-fused":
        ds.pop("optimizer", None)
        cls = torch.optim.AdamW if adamw else torch.optim.Adam
        client_opt = cls(groups, lr=lr, betas=betas, eps=eps, fused=True)
    t_init = time.perf_counter()
    engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=groups, optimizer=client_opt,
                                                    config=ds)
    print(f"setup: deepspeed.initialize took {time.perf_counter() - t_init:.1f} s", file=sys.stderr, flush=True)
    if cfg.activation_checkpointing:
        deepspeed.checkpointing.configure(None, deepspeed_config=ds)
        model.checkpoint_fn = deepspeed.checkpointing.checkpoint
    device = engine.device if isinstance(engine.device, torch.device) else torch.device(engine.device)
    torch.manual_seed(args.seed + rank)
    rank0 = rank == 0

    def all_reduce_sum(values):
        if world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dcomm.all_reduce(t)
        return t.tolist()

    source = C.Batches(args.data, args.data_format, args.sampling, seq_len, micro, cfg.vocab_size, args.seed,
                       world, rank, device)
    batches = iter(source)
    basic = type(getattr(engine, "basic_optimizer", None) or optimizer).__name__
    wrapper = type(engine.optimizer).__name__
    if rank0:
        print(f"gpt2 [deepspeed {deepspeed.__version__}]: {args.model}, {cfg.n_layer} layers, d={cfg.n_embd}, "
              f"{cfg.n_head} heads, vocab {cfg.vocab_size}, seq_len {seq_len}, {n_params / 1e6:.2f}M parameters, "
              f"{C.flops_per_token(cfg, seq_len):.3g} FLOPs/token, ZeRO stage {stage}, world {world}, micro {micro} "
              f"x accum {gas}, optimizer {basic} in {wrapper}, activation checkpointing "
              f"{'on' if cfg.activation_checkpointing else 'off'}", flush=True)
        print(f"gpt2: data {source.describe()}", flush=True)

    tokens_per_step = micro * gas * world * seq_len
    timer = C.StepTimer(args.max_steps, warmup, args.log_interval, tokens_per_step,
                        C.flops_per_token(cfg, seq_len), world, device, rank0, all_reduce_sum,
                        lambda: engine.get_lr()[0])
    engine.train()
    for step in range(1, args.max_steps + 1):
        for _ in range(gas):
            x, y = next(batches)
            loss = C.lm_loss(engine(x), y)
            engine.backward(loss)
            engine.step()
            timer.add_loss(loss)
        timer.end_step(step)

    peak = C.peak_memory_gib(device)
    t = torch.tensor([peak], dtype=torch.float64, device=device)
    peaks = [peak]
    if world > 1:
        out = [torch.zeros_like(t) for _ in range(world)]
        dcomm.all_gather(out, t)
        peaks = [float(o.item()) for o in out]
    if rank0:
        model_dtype, accum_dtype = engine.get_data_types()
        C.emit(C.result_line("deepspeed", args, cfg, ds, world, timer, n_params, peaks, device,
                             precision=str(model_dtype).replace("torch.", ""), zero_stage=stage,
                             grad_accum_dtype=str(accum_dtype).replace("torch.", ""),
                             optimizer=f"{basic} in {wrapper}", deepspeed=deepspeed.__version__), args.json_out)
    dcomm.barrier()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
