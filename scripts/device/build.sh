#!/usr/bin/env bash
# Run ON the GPU machine (through the device tool, carrying .devdeps): configures and builds into build-dev/
# against the machine's own LibTorch (/opt/torch/.venv). Prints nothing but errors and a summary. CMAKE_EXTRA: more
# -D options for the first configure (e.g. -DDS_CUDNN_FRONTEND=OFF).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
deps=$PWD/.devdeps
export LD_LIBRARY_PATH=$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # protoc and the monitor's runtime
if [ ! -f build-dev/build.ninja ]; then
  cmake -S . -B build-dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DDS_DEPS_DIR="$deps" \
    -DPython3_EXECUTABLE="$(command -v python3)" -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DZLIB_INCLUDE_DIR="$deps/include" -DZLIB_LIBRARY="$deps/lib/libz.so" \
    -DProtobuf_PROTOC_EXECUTABLE="$deps/bin/protoc" -DProtobuf_INCLUDE_DIR="$deps/include" \
    -DProtobuf_LIBRARY="$deps/lib/libprotobuf.so" -DDS_ISAL_INCLUDE="$deps/include" \
    -DDS_ISAL_LIBRARY="$deps/lib/libisal.so" ${CMAKE_EXTRA:-} >build-dev.cmake.log 2>&1 \
    || { tail -40 build-dev.cmake.log; exit 1; }
fi
ninja -C build-dev "$@" >build-dev.ninja.log 2>&1 || { grep -E "error|Error" -A5 build-dev.ninja.log | head -80; exit 1; }
echo "build-dev: ok ($(grep -c '^\[' build-dev.ninja.log) steps)"
