#!/usr/bin/env bash
# Fetches NVIDIA's CUDA 13.0 headers (cuda.h, cudaTypedefs.h, nvml.h) from pinned PyPI wheels into
# $1 (default native/build/cuda-include). The wheels are verified by sha256 and cached in
# ${EMUV_CACHE_DIR:-$HOME/.cache/emuv}; nothing of NVIDIA's is committed to the repository.
# The wheels are manylinux x86_64 files, but only their headers are used, so any host architecture works.
set -euo pipefail
DEST=${1:-"$(cd "$(dirname "$0")/.." && pwd)/build/cuda-include"}
CACHE=${EMUV_CACHE_DIR:-"${HOME:-/tmp}/.cache/emuv"}
PY=${PYTHON:-python3}

# name==version  wheel-file  sha256  header-prefix-in-wheel
WHEELS=(
  "nvidia-cuda-runtime==13.0.96 nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548 nvidia/cu13/include/"
  "nvidia-nvml-dev==13.0.87 nvidia_nvml_dev-13.0.87-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 082871368275cf6620fc900f55d8eaf2563b263a38a00a5168e9650bce963ba1 nvidia/cu13/include/"
)
HEADERS="cuda.h cudaTypedefs.h nvml.h"

if [ -f "$DEST/.complete" ]; then exit 0; fi
mkdir -p "$CACHE" "$DEST"
for entry in "${WHEELS[@]}"; do
  read -r spec file sum prefix <<<"$entry"
  if [ ! -f "$CACHE/$file" ] || ! echo "$sum  $CACHE/$file" | sha256sum -c --quiet - 2>/dev/null; then
    rm -f "$CACHE/$file"
    echo "fetch-cuda-headers: downloading $spec" >&2
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
      --python-version 3.11 --dest "$CACHE" "$spec"
  fi
  if ! echo "$sum  $CACHE/$file" | sha256sum -c --quiet -; then
    echo "fetch-cuda-headers: sha256 mismatch for $file" >&2; exit 1
  fi
  "$PY" - "$CACHE/$file" "$prefix" "$DEST" $HEADERS <<'PYEOF'
import sys, zipfile, os
wheel, prefix, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        member = prefix + n
        if member in z.namelist():
            with open(os.path.join(dest, n), 'wb') as f:
                f.write(z.read(member))
PYEOF
done
for h in $HEADERS; do
  [ -f "$DEST/$h" ] || { echo "fetch-cuda-headers: $h missing after extraction" >&2; exit 1; }
done
touch "$DEST/.complete"
