#!/usr/bin/env bash
# The real-user-space test layer: NVIDIA's cudart 12 and 13, PyTorch, CuPy, cuda-bindings and
# nvidia-ml-py through the interposer on the simulated driver (test_realsw.py says what is checked).
# Creates or reuses the cached Python environment (setup.sh), builds the native side, lays the shim out
# as the node agent does, then runs pytest. Prints "realsw: N passed, M failed, K skipped" last.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/test/realsw
fail() { echo "realsw: $*" >&2; echo "realsw: 0 passed, 1 failed"; exit 1; }

venv=$(bash "$here/setup.sh") || fail "could not create the Python environment (see above)"
make -s -C "$root/native" all recorder >/dev/null || fail "native build failed"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
lib=$(mktemp -d /tmp/emuv-realsw-lib.XXXXXX)
trap 'rm -rf "$lib"' EXIT
sim=$root/native/build/sim
bash "$root/native/scripts/install-shim.sh" "$lib" "$sim/libcuda.so.1" "$sim/libnvidia-ml.so.1" >/dev/null

export EMUV_REALSW_SHIM_DIR=$lib EMUV_REALSW_SIM=$sim/libcuda.so.1 EMUV_REALSW_SIM_DIR=$sim
export EMUV_REALSW_RECORDER_DIR=$root/native/build/recorder
export EMUV_REALSW_CUDART13=$site/nvidia/cu13/lib/libcudart.so.13
export EMUV_REALSW_CUDART12=$site/nvidia/cuda_runtime/lib/libcudart.so.12
export EMUV_REALSW_FIXTURE13=cudart13.2.86-getprocaddress-requests.tsv
export EMUV_REALSW_FIXTURE12=cudart12.4.127-getprocaddress-requests.tsv
out=$(mktemp)
"$venv/bin/python" -m pytest -p no:cacheprovider -q -rfE "$here" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
# pytest's summary: "N passed", "M failed", "K error(s)" in any order on its last line
last=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$out" | tail -n1)
p=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
f=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
e=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+' || echo 0)
s=$(grep -oE '[0-9]+ skipped' <<<"$last" | grep -oE '[0-9]+' || echo 0)
rm -f "$out"
f=$((f + e))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "realsw: $p passed, $f failed, $s skipped"
exit $((f > 0))
