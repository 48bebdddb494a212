#!/usr/bin/env bash
# Builds the library and the CPU tests with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and
# runs `ctest -L cpu` there (every multi-rank test too: the launcher starts sanitized ranks). Not part of CI's
# time budget: a cold build takes about half an hour on 2 cores. Needs scripts/setup.sh to have run.
#
#   bash scripts/sanitize.sh                 # build + all CPU tests
#   bash scripts/sanitize.sh -R zero         # build + the tests matching a ctest regex
#
# LibTorch itself is not instrumented, so the runtime options below turn off what only works with an
# instrumented whole program: leak checking (LibTorch keeps global allocations alive to exit) and container
# overflow (libstdc++ containers built without ASan annotations cross the boundary). UBSan's vptr check needs
# LibTorch's type information to be instrumented as well, so it is off too; every other UBSan check is on
# and fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-asan}
python=${PYTHON:-python3}
sanitize="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v "$python")" \
    -DCMAKE_CXX_FLAGS="$sanitize" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" -DDS_BUILD_BENCH=OFF -DDS_WITH_CUDA_OPS=OFF
fi
cmake --build "$build" -j "$(nproc)"
export ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:abort_on_error=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}
# The tests install (cmake --install) and build a consumer project: sanitized flags do not carry into it.
ctest --test-dir "$build" -L cpu -E package_find_package --output-on-failure -j2 "$@"
