# Sourced by the scripts run ON a GPU machine: the repository root as the working directory, $out (= $OUT,
# where logs come back), the image's LibTorch and CUDA on PATH, NVLink multicast off, and stamp() for timings.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-$PWD/device-logs}
mkdir -p "$out"
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export LD_LIBRARY_PATH=$PWD/.devdeps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # the monitor's protobuf runtime
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
# The card, driver and host CPU, into $out/machine.txt and on standard output (the closing notes quote it).
describe_machine() {
  {
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
    lscpu | grep -E "Model name|^CPU\(s\)"
  } >"$out/machine.txt" 2>&1
  cat "$out/machine.txt"
}
