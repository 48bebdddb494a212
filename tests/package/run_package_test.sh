#!/usr/bin/env bash
# cmake --install, then a separate project does find_package(DeepSpeedCpp) and trains through it.
set -euo pipefail
build=$1 source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
cmake -S "$source/tests/package" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$(grep -m1 '^DS_CCACHE:' "$build/CMakeCache.txt" | cut -d= -f2)" >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
DS_ACCELERATOR=cpu "$work/consumer/consumer" || { echo "run_package_test: the consumer failed (exit $?)"; exit 1; }
test -x "$work/prefix/bin/deepspeed" || { echo "run_package_test: no bin/deepspeed in the installed prefix"; exit 1; }
