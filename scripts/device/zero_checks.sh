#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps): build, the GPU-labelled tests, the tutorial example on 2 GPUs, and the
# benchmarks of issues 3–4: ZeRO 0/1/2 memory and step time on a ~1.07B-parameter bf16 model on 2 and 4 GPUs
# (as many as the machine has), the optimizer step (fused vs per-tensor, 124M and 1.5B), the CPU Adam step.
# Logs and tables go to $OUT.
set -uo pipefail
source "$(dirname "$0")/env.sh"
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv >"$out/gpus.csv" 2>&1
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Socket" >"$out/cpu.txt"
bash scripts/device/build.sh >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
stamp "built"
(cd build-dev && ctest -L gpu --output-on-failure >"$out/ctest_gpu.log" 2>&1)
grep -E "tests passed|\*\*\*|Failed  |Passed" "$out/ctest_gpu.log" | head -40
for t in build-dev/tests/*test; do "$t" --gtest_filter='*Cuda*:*Gpu*' 2>&1 | grep -E "^\[  (PASSED|FAILED|  OK|SKIPPED) " ; done | sort | uniq -c | head
stamp "gpu tests"
bin=build-dev/bin/deepspeed
[ "${SKIP_CIFAR:-0}" = 1 ] || $bin --num_gpus 2 build-dev/examples/cifar10 --deepspeed_config examples/cifar10/ds_config.json --epochs 3 \
  --data-dir .devdeps/fashion-mnist >"$out/cifar10_2gpu.log" 2>&1
echo "cifar10 on 2 GPUs: exit $?; $(grep -E 'Accuracy' "$out/cifar10_2gpu.log")"
grep -E "global_step=10000" "$out/cifar10_2gpu.log"
stamp "cifar10"
{
  echo "## ZeRO: 64 x Linear(4096, 4096) (no bias), bf16, bf16 grad accumulation, AdamW, micro 8 per GPU"
  echo "| stage | GPUs | Ψ | model states GiB (measured) | formula GiB | measured/formula | peak GiB | ms/step | samples/s |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for n in ${ZERO_GPUS:-2 $ngpu}; do
    for stage in 0 1 2 3; do
      $bin --num_gpus "$n" --master_port $((29500 + n * 10 + stage)) build-dev/bench/zero_bench --stage $stage --steps 12 2>&1 \
        | grep -E "^\||error" 
    done
    [ "$n" = "$ngpu" ] && break
  done
} | tee "$out/zero_bench.md"
stamp "zero bench"
# A GPT-style model that does not fit one GPU without ZeRO (32 x 4096: 6.65B parameters, 16 bytes each = 106 GB
# of model states), trained with ZeRO-3 over all GPUs, activation checkpointing, bf16.
[ "${SKIP_GPT:-0}" = 1 ] || [ -f /tmp/tokens.bin ] || python3 bench/gpt2_suite_tools.py tokens /tmp/tokens.bin --tokens $((1 << 24)) >/dev/null
[ "${SKIP_GPT:-0}" = 1 ] || $bin --num_gpus "$ngpu" --master_port 29600 build-dev/examples/gpt2 --n_layer 32 --n_embd 4096 --n_head 32 \
  --vocab 50304 --block_size 1024 --seq_len 1024 --data /tmp/tokens.bin --data-format uint16 --max-steps 6 \
  --warmup-steps 2 --log-interval 1 --activation-checkpointing --deepspeed_config scripts/device/ds_config_gpt_zero3.json \
  >"$out/gpt_zero3_6b.log" 2>&1
echo "GPT 6.6B ZeRO-3 on $ngpu GPUs: exit $?"
grep -E "^step|^\{|ZeRO-3|rror" "$out/gpt_zero3_6b.log" | tail -12
stamp "zero-3 gpt"
if [ "${RUN_OPT_BENCH:-0}" = 1 ]; then
  for m in 124M 1.5B; do build-dev/bench/optimizer_step_bench --model $m --steps 20; done 2>&1 | tee "$out/optimizer_step.md"
  build-dev/bench/cpu_adam_bench --threads 16 >"$out/cpu_adam.md" 2>&1; tail -20 "$out/cpu_adam.md"
fi
