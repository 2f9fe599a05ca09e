#!/usr/bin/env bash
# Lays out an interposer directory the way the node agent does on a GPU node:
#   DEST/libemuv-cuda.so, DEST/libemuv-nvml.so           copies of the shims (their RUNPATH is $ORIGIN)
#   DEST/libemuv-real-cuda.so -> REAL_CUDA                the real driver under the private name
#   DEST/libemuv-real-nvml.so -> REAL_NVML
# Usage: install-shim.sh DEST REAL_CUDA REAL_NVML [SHIM_DIR]
# The tests use it with the simulated driver; on a GPU node REAL_CUDA is the container path of the real
# libcuda.so.1 (e.g. /usr/lib/x86_64-linux-gnu/libcuda.so.1, injected by the NVIDIA container toolkit).
set -euo pipefail
DEST=$1 REAL_CUDA=$2 REAL_NVML=$3
SHIMS=${4:-"$(cd "$(dirname "$0")/.." && pwd)/build/lib"}
mkdir -p "$DEST"
cp -f "$SHIMS/libemuv-cuda.so" "$SHIMS/libemuv-nvml.so" "$DEST/"
ln -sfn "$REAL_CUDA" "$DEST/libemuv-real-cuda.so"
ln -sfn "$REAL_NVML" "$DEST/libemuv-real-nvml.so"
