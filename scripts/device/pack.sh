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
# The TensorBoard monitor: protobuf's headers, runtime and protoc (with its library), ISA-L's CRC32C.
mkdir -p "$out/include/google" "$out/bin"
cp -r /usr/include/google/protobuf "$out/include/google/"
cp -r /usr/include/isa-l /usr/include/isa-l.h "$out/include/"
cp /usr/bin/protoc "$out/bin/protoc"
for lib in libprotobuf.so.32 libprotoc.so.32 libisal.so.2; do cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$out/lib/$lib"; done
ln -s libprotobuf.so.32 "$out/lib/libprotobuf.so"
ln -s libisal.so.2 "$out/lib/libisal.so"
cp /usr/share/datasets/fashion-mnist/*.gz "$out/fashion-mnist/"
# cuDNN's graph API headers (scripts/setup.sh installs them from PyPI), for ops::qkv_attention.
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp -r "$site"/include/cudnn_frontend* "$site/include/cudnn_backend_base.h" "$out/include/"
du -sh "$out"
