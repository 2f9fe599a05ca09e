#!/usr/bin/env bash
# emuv GPU validation on one H100: emulate an 8 GiB GeForce (7.5 GiB VRAM share, 28 GiB virtual) and
# check the pass criteria (docs/interposer.md §8, "What only a GPU can verify").
#
# Usage, from the repository root, after `make -C native` (x86-64; the GPU machine has no network, so
# build here and carry native/build):
#   bash test/gpu/emuv_gpu_validate.sh [OUT_DIR]
# Needs: nvidia-smi, python3 with torch, transformers, accelerate, cupy, cuda-bindings.
# Runs about 6 minutes; exits non-zero when a pass criterion fails. Never part of CI.
set -uo pipefail
OUT_DIR=${1:-${EMUV_GPU_OUT:-./gpu-results}}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
export EMUV_GPU_OUT="$OUT_DIR" PYTHONUNBUFFERED=1
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
S="$HERE/emuv_gpu_validate.py"; PY=python3
rm -f "$OUT_DIR/results.jsonl"
phase() { local name=$1 t=$2; shift 2; echo "=== $name"; timeout "$t" "$@" >"$OUT_DIR/$name.log" 2>&1; echo "rc=$?"; tail -n 3 "$OUT_DIR/$name.log"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv | tee "$OUT_DIR/gpu.txt"
$PY -c "import torch,transformers,accelerate,cupy;print(torch.__version__,transformers.__version__,accelerate.__version__,cupy.__version__)"

# The interposer laid out as the agent does on a node: shims + private links to the real driver.
REAL_CUDA=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
REAL_NVML=$(ldconfig -p | awk '/libnvidia-ml\.so\.1 /{print $NF; exit}')
LIB="$OUT_DIR/emuv-lib"
bash "$ROOT/native/scripts/install-shim.sh" "$LIB" "$REAL_CUDA" "$REAL_NVML" "$ROOT/native/build/lib"
echo "real driver: $REAL_CUDA, $REAL_NVML"

phase micro 120 $PY "$S" micro
phase gpu 150 $PY "$S" gpu

# A context alone, to subtract from the whole-GPU trace.
ctx_before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
$PY -c "import torch,time,subprocess; torch.zeros(1,device='cuda'); torch.cuda.synchronize(); print(subprocess.check_output(['nvidia-smi','--query-gpu=memory.used','--format=csv,noheader,nounits']).decode().split()[0])" >"$OUT_DIR/ctx.txt"
export EMUV_CONTEXT_MIB=$(( $(cat "$OUT_DIR/ctx.txt") - ctx_before ))

nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 >"$OUT_DIR/vram_trace.csv" & W=$!
E=(env "LD_PRELOAD=$LIB/libemuv-cuda.so:$LIB/libemuv-nvml.so" EMUV_CONTRACT_VERSION=1 EMUV_VRAM_SHARE=7680Mi
   EMUV_LIMIT_BYTES=28Gi EMUV_VRAM_MODE=fixed "EMUV_STATS_FILE=$OUT_DIR/emuv-stats.bin" EMUV_LOG_LEVEL=info)
phase emuv_default 180 "${E[@]}" $PY "$S" emuv
phase emuv_expandable 180 "${E[@]}" PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True $PY "$S" emuv
phase emuv_warmup 180 "${E[@]}" WARMUP=1 $PY "$S" emuv
kill "$W" 2>/dev/null
export EMUV_PEAK_VRAM_MIB=$(( $(sort -n "$OUT_DIR/vram_trace.csv" | tail -1) - ctx_before ))
echo "peak GPU memory.used during emuv phases: $EMUV_PEAK_VRAM_MIB MiB (context alone: $EMUV_CONTEXT_MIB MiB)"
"${E[@]}" nvidia-smi --query-gpu=memory.total,memory.used --format=csv >"$OUT_DIR/nvidia-smi-virtual.txt" 2>&1
cat "$OUT_DIR/nvidia-smi-virtual.txt"

phase accel 200 $PY "$S" accel
$PY "$S" verdict
