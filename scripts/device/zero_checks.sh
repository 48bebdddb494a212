#!/usr/bin/env bash
# Run ON a GPU machine (carry .devdeps): build, every CPU and GPU test, then the benchmarks of issues 2–4:
# the tutorial example on all GPUs, ZeRO 0/1/2 memory and step time on a ~1.07B-parameter bf16 model, the
# optimizer step (fused vs per-tensor, 124M and 1.5B), and the CPU Adam step. Logs and tables under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/device-logs}
mkdir -p "$out"
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv >"$out/gpus.csv" 2>&1
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Socket" >"$out/cpu.txt"
start=$(date +%s)
bash scripts/device/build.sh >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  (cd build-dev && ctest -L gpu --output-on-failure >"$out/ctest_gpu.log" 2>&1)
  grep -E "tests passed|\*\*\*|Failed" "$out/ctest_gpu.log" | head -20
  (cd build-dev && ctest -L cpu -j 16 --output-on-failure >"$out/ctest_cpu.log" 2>&1)
  grep -E "tests passed|\*\*\*Failed" "$out/ctest_cpu.log" | head -20
fi
bin=build-dev/bin/deepspeed
{
  echo "## ZeRO on $ngpu GPUs: 64 x Linear(4096, 4096), bf16, AdamW, micro 8"
  echo "| stage | GPUs | Ψ | model states GiB (measured) | formula GiB | ratio | peak GiB | ms/step | samples/s |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for stage in 0 1 2; do
    $bin --num_gpus "$ngpu" --master_port $((29500 + stage)) build-dev/bench/zero_bench --stage $stage --steps 12 2>&1 | grep "^|"
  done
} | tee "$out/zero_bench.md"
if [ "${SKIP_OPT:-0}" != 1 ]; then
  for m in 124M 1.5B; do build-dev/bench/optimizer_step_bench --model $m --steps 20; done 2>&1 | tee "$out/optimizer_step.md"
  [ -x build-dev/bench/cpu_adam_bench ] && build-dev/bench/cpu_adam_bench --threads 16 2>&1 | tee "$out/cpu_adam.md"
fi
