#!/usr/bin/env bash
# Run ON a GPU machine through the device tool (carry .devdeps): build, the CPU suite, the GPU-labelled tests,
# and the tutorial example on every GPU over NCCL. Logs go to $OUT (or ./device-logs).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/device-logs}
mkdir -p "$out"
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv >"$out/gpus.csv" 2>&1
ngpu=$(nvidia-smi -L | wc -l)
start=$(date +%s)
bash scripts/device/build.sh >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
(cd build-dev && ctest -L cpu -j 8 --output-on-failure >"$out/ctest_cpu.log" 2>&1); echo "ctest cpu: $(tail -n 3 "$out/ctest_cpu.log" | head -n 1)"; grep -E "tests passed|Failed|\*\*\*" "$out/ctest_cpu.log" | head -20
(cd build-dev && ctest -L gpu --output-on-failure >"$out/ctest_gpu.log" 2>&1); grep -E "tests passed|Failed|Passed|\*\*\*" "$out/ctest_gpu.log" | head -20
./build-dev/bin/deepspeed --num_gpus "$ngpu" ./build-dev/examples/cifar10 --deepspeed_config examples/cifar10/ds_config.json \
  --epochs 3 --data-dir .devdeps/fashion-mnist >"$out/cifar10_${ngpu}gpu.log" 2>&1
echo "cifar10 on $ngpu GPUs: exit $?"
grep -E "mode=|NCCL|backend|global_step=10000|Accuracy|error|Error" "$out/cifar10_${ngpu}gpu.log" | head -20
