#!/usr/bin/env bash
# Run HERE (a machine with PyPI and a python3 that imports torch), before a GPU run of bench/run_gpt2_suite.sh:
# puts into .whl/ (git-ignored; the device tool carries it) the wheels that real DeepSpeed needs on the GPU
# machine, which has no package registry: Python 3.12, manylinux x86_64.
#
#   - deepspeed itself: PyPI has only an sdist, so we build a pure-Python wheel from it with DS_BUILD_OPS=0
#     (no CUDA compile here; DeepSpeed JIT-builds FusedAdam on the GPU machine, see run_gpt2_suite.sh);
#   - the Requires-Dist entries of deepspeed that the device image lacks (KINDS.md's package list):
#     hjson, pydantic (+ pydantic-core, annotated-types, typing-inspection, and typing-extensions for
#     pydantic's lower bound). einops, msgpack, ninja, numpy, packaging, psutil, py-cpuinfo, torch, tqdm and
#     nvidia-ml-py are in the image already.
#
# On the device:  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/../.."
DS_VERSION=${DS_VERSION:-0.19.8}
# name==version, one version each (two versions of one package stop the whole install on the device).
DEPS=(hjson==3.1.0 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.8.0 typing-inspection==0.4.5
      typing-extensions==4.16.0)
# What the device image has (KINDS.md, "Python packages already there"), for the Requires-Dist check below.
ON_DEVICE="einops msgpack ninja numpy packaging psutil py-cpuinfo torch tqdm nvidia-ml-py"

out=.whl
mkdir -p "$out"
grep -qxF '/.whl/' .gitignore 2>/dev/null || grep -qxF '/.whl/' .git/info/exclude 2>/dev/null \
  || echo '/.whl/' >>"$(git rev-parse --git-common-dir)/info/exclude"
# Drop older copies of the packages we fetch (one version of each).
for p in deepspeed hjson pydantic pydantic_core annotated_types typing_inspection typing_extensions; do
  rm -f "$out/$p"-[0-9]*.whl
done

plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps "${plat[@]}" -d "$out" "${DEPS[@]}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download -q --no-deps "${plat[@]}" -d "$out" "deepspeed==$DS_VERSION" 2>/dev/null; then
  echo "deepspeed $DS_VERSION: no wheel on PyPI, building one from the sdist (DS_BUILD_OPS=0)"
  python3 -m pip download -q --no-deps --no-binary=:all: -d "$tmp" "deepspeed==$DS_VERSION"
  # setup.py imports torch: build without isolation in a throwaway venv that sees this python's torch.
  python3 -m venv --system-site-packages "$tmp/venv"
  "$tmp/venv/bin/pip" install -q wheel setuptools
  DS_BUILD_OPS=0 DS_ACCELERATOR=cuda "$tmp/venv/bin/pip" wheel -q --no-deps --no-build-isolation -w "$out" \
    "$tmp/deepspeed-$DS_VERSION.tar.gz" >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log"; exit 1; }
fi

# Every hard requirement of deepspeed must be packed here or be in the image.
norm() { tr 'A-Z_.' 'a-z--'; }
have=$(ls "$out" | sed -E 's/-[0-9].*//' | norm)
missing=0
for req in $(unzip -p "$out"/deepspeed-"$DS_VERSION"-*.whl '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
             | sed -E 's/^Requires-Dist: *//; s/[ ;<>=!~\[(].*//' | norm); do
  if ! grep -qxF "$req" <<<"$have" && [[ " $ON_DEVICE " != *" $req "* ]]; then
    echo "deepspeed needs $req: neither packed nor listed as on the device"; missing=1
  fi
done
ls -l "$out"/{deepspeed,hjson,pydantic,pydantic_core,annotated_types,typing_inspection,typing_extensions}-[0-9]*.whl \
  | awk '{printf "%9d  %s\n", $5, $NF}'
du -sh "$out"
exit $missing
