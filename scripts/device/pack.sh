#!/usr/bin/env bash
# Run HERE (a developer machine with scripts/setup.sh done) before using the GPU machines, which have LibTorch,
# CUDA, NCCL, cmake and ninja but no package registry. Copies the header-only dependencies, googletest's
# sources, zlib's header and library and the Fashion-MNIST files into .devdeps/ (git-ignored), which the
# device tool carries. Nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.devdeps
rm -rf "$out"
mkdir -p "$out/include" "$out/lib" "$out/fashion-mnist"
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/gloo "$out/include/"
cp /usr/include/zlib.h /usr/include/zconf.h "$out/include/"
cp -L /usr/lib/x86_64-linux-gnu/libz.so "$out/lib/libz.so"
cp -r /usr/src/googletest "$out/googletest"
cp /usr/share/datasets/fashion-mnist/*.gz "$out/fashion-mnist/"
du -sh "$out"
