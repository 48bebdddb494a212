#!/usr/bin/env bash
# bench/kernel_sass.py on one small kernel file: the table names its kernels with their registers and counts,
# and against the same revision nothing has changed. Skipped (77) without nvcc or a cuobjdump.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v "${NVCC:-nvcc}" >/dev/null || { echo "no nvcc: skipped"; exit 77; }
out=$(python3 "$src/bench/kernel_sass.py" src/zero/grad_convert_kernel.cu 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
  echo "$out"
  if [[ "$out" == *"no cuobjdump"* ]]; then echo "skipped"; exit 77; fi
  exit 1
fi
echo "$out"
# One row per kernel: | source | `name` | registers | instructions | MUFU | LDG | ... with a nonzero count.
echo "$out" | grep -qE '^\| grad_convert_kernel\.cu \| `[^`]+` \| [1-9][0-9]* \| [1-9][0-9]* \|' ||
  { echo "FAIL: no kernel row with registers and instructions"; exit 1; }
# Against HEAD, where the file is as committed: nothing changed.
if git -C "$src" diff --quiet HEAD -- src/zero/grad_convert_kernel.cu src/util 2>/dev/null; then
  same=$(cd "$src" && python3 bench/kernel_sass.py --base HEAD src/zero/grad_convert_kernel.cu 2>&1) ||
    { echo "$same"; exit 1; }
  echo "$same" | grep -q "^0 of [1-9][0-9]* kernels changed against HEAD" ||
    { echo "$same"; echo "FAIL: the file's kernels changed against HEAD in a clean comparison"; exit 1; }
fi
echo "ok"
