#!/usr/bin/env bash
# Installs what deepspeed.cpp needs on a Debian 12 machine (Debian packages, LibTorch 2.11 from PyPI) and
# builds it into ./build. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ ccache git python3-pip nlohmann-json3-dev libcli11-dev googletest libgtest-dev
          libgloo-dev zlib1g-dev dataset-fashion-mnist libprotobuf-dev protobuf-compiler libisal-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.11.0")' 2>/dev/null; then
  echo "setup: installing torch==2.11.0 from PyPI (LibTorch headers and libraries)"
  "$python" -m pip install --quiet torch==2.11.0
fi
# Python's tensorboard reads back the event files our TensorBoard monitor writes (tests/monitor/).
if ! "$python" -c 'import tensorboard' 2>/dev/null; then
  echo "setup: installing tensorboard from PyPI (the tests read our event files back with it)"
  "$python" -m pip install --quiet tensorboard
fi

# cuDNN's graph API, header-only (ops::qkv_attention's backward; its library is the one LibTorch brings).
# (sed reads pip's whole output: grep -q would close the pipe early and pipefail count pip's broken pipe.)
frontend=$("$python" -m pip show nvidia-cudnn-frontend 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$frontend" != 1.16.0 ]; then
  echo "setup: installing nvidia-cudnn-frontend==1.16.0 from PyPI (cuDNN's graph API headers)"
  "$python" -m pip install --quiet --no-deps nvidia-cudnn-frontend==1.16.0
fi

# The CUDA toolkit is optional: with it, the NCCL path is compiled too (it runs only where GPUs exist).
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v "$python")"
fi
cmake --build "$build" -j "$(nproc)"
