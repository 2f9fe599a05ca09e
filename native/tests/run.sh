#!/usr/bin/env bash
# Runs every native test; prints PASS/FAIL lines and a final "native: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
B=build
ENVDIR=$B/testenv
PRE="$ENVDIR/libemuv-cuda.so:$ENVDIR/libemuv-nvml.so"
pass=0 fail=0
OUT=$(mktemp)
TMPDIR=$(mktemp -d /tmp/emuv-native-tests.XXXXXX)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

run() { # run NAME TIMEOUT ENV... -- CMD...
  local name=$1 to=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout "$to" "$@" >"$OUT" 2>"$OUT.err"
  local rc=$?
  local p f
  p=$(grep -c '^PASS ' "$OUT"); f=$(grep -c '^FAIL ' "$OUT")
  sed "s/^/[$name] /" "$OUT"
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; echo "FAIL [$name] exited with status $rc"
  fi
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then sed "s/^/[$name] stderr: /" "$OUT.err" | tail -n 30; fi
  pass=$((pass + p)); fail=$((fail + f))
}

for t in "$@"; do :; done
run unit 60 -- $B/tests/test_unit
run placement 60 -- $B/tests/test_placement
run golden 60 -- $B/tests/test_golden $B/tests/golden-v1.bin ../test/fixtures/stats/golden-v1.bin
run sim 60 -- $B/tests/test_sim $B/sim/libcuda.so.1 $B/sim/libnvidia-ml.so.1
run loader 60 LD_PRELOAD=$PRE -- $B/tests/test_loader $B/sim/libcuda.so.1
run linked 60 LD_PRELOAD=$PRE -- $B/tests/test_linked
run replay 60 LD_PRELOAD=$PRE -- $B/tests/test_replay $B/sim/libcuda.so.1 ../test/fixtures/cudart*-getprocaddress-requests.tsv
run split 60 LD_PRELOAD=$PRE -- $B/tests/test_split
run split-zerocopy 60 LD_PRELOAD=$PRE -- $B/tests/test_split zerocopy
for b in auto pinned managed; do run backend-$b 60 LD_PRELOAD=$PRE -- $B/tests/test_backend $b; done
run expandable 60 LD_PRELOAD=$PRE -- $B/tests/test_expandable numa
run expandable-host 60 LD_PRELOAD=$PRE -- $B/tests/test_expandable host
run expandable-none 60 LD_PRELOAD=$PRE -- $B/tests/test_expandable none
run deny-once 60 LD_PRELOAD=$PRE -- $B/tests/test_deny
run async 60 LD_PRELOAD=$PRE -- $B/tests/test_async
run report 60 LD_PRELOAD=$PRE -- $B/tests/test_report
run nvml-only 60 LD_PRELOAD=$ENVDIR/libemuv-nvml.so LD_LIBRARY_PATH=$B/sim -- $B/tests/test_nvml_only
run dlonly 60 LD_PRELOAD=$PRE EMUV_VRAM_SHARE=2Gi EMUV_LIMIT_BYTES=6Gi EMUV_SIM_VRAM=80Gi -- $B/tests/test_dlonly
run procs 60 LD_PRELOAD=$PRE -- $B/tests/test_procs
run fork 60 LD_PRELOAD=$PRE -- $B/tests/test_fork
run protected 60 LD_PRELOAD=$PRE -- $B/tests/test_protected
run statsfile 120 LD_PRELOAD=$PRE -- $B/tests/test_statsfile
run killalloc 120 LD_PRELOAD=$PRE -- $B/tests/test_killalloc
run truncate 120 LD_PRELOAD=$PRE -- $B/tests/test_truncate
run fuzz 120 ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 -- $B/tests/test_fuzz tests/corpus
for m in v2 foreign-stats locked outside; do
  run safety-$m 60 LD_PRELOAD=$PRE -- $B/tests/test_safety $m
  lines=$(grep -c '^emuv: ' "$OUT.err"); other=$(grep -vc '^emuv: ' "$OUT.err")
  want=1; [ "$m" = outside ] && want=0
  if [ "$lines" -eq "$want" ] && [ "$other" -eq 0 ]; then echo "PASS [safety-$m] exactly $want emuv: line(s) on stderr"; pass=$((pass + 1))
  else echo "FAIL [safety-$m] $lines emuv: lines, $other other lines on stderr"; cat "$OUT.err"; fail=$((fail + 1)); fi
done

# A Python consumer (ctypes, as pynvml and Triton's launcher load the libraries): sees the virtual values.
if command -v python3 >/dev/null; then
  run python-ctypes 60 LD_PRELOAD=$PRE EMUV_VRAM_SHARE=1Gi EMUV_LIMIT_BYTES=12Gi EMUV_SIM_VRAM=8Gi -- python3 -c '
import ctypes
cu = ctypes.CDLL("libcuda.so.1"); nv = ctypes.CDLL("libnvidia-ml.so.1")
f, t = ctypes.c_size_t(), ctypes.c_size_t()
assert cu.cuInit(0) == 0 and cu.cuMemGetInfo_v2(ctypes.byref(f), ctypes.byref(t)) == 0
class Mem(ctypes.Structure): _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]
d, m = ctypes.c_void_p(), Mem()
assert nv.nvmlInit_v2() == 0 and nv.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(d)) == 0
assert nv.nvmlDeviceGetMemoryInfo(d, ctypes.byref(m)) == 0
ok = t.value == 12 << 30 and m.total == 12 << 30 and m.free == f.value
print(("PASS" if ok else "FAIL") + " ctypes (pynvml-style) sees the virtual total through both shims: %d / %d" % (t.value, m.total))
'
fi

# Static checks on the built shims: exports are exactly hooks.def (+ emuv_shim_report), no constructors.
check() { if eval "$2"; then echo "PASS [static] $1"; pass=$((pass + 1)); else echo "FAIL [static] $1"; fail=$((fail + 1)); fi; }
want=$( (grep -o '^EMUV_HOOK([A-Za-z0-9_]*' src/hooks.def | sed 's/EMUV_HOOK(//'; echo emuv_shim_report) | sort)
have=$(nm -D --defined-only $B/lib/libemuv-cuda.so | awk '{print $3}' | sort)
check "libemuv-cuda.so exports exactly the hooks.def list" '[ "$want" = "$have" ]'
check "libemuv-nvml.so exports only the two NVML memory queries" \
  '[ "$(nm -D --defined-only $B/lib/libemuv-nvml.so | awk "{print \$3}" | sort | tr "\n" " ")" = "nvmlDeviceGetMemoryInfo nvmlDeviceGetMemoryInfo_v2 " ]'
for l in $B/lib/libemuv-cuda.so $B/lib/libemuv-nvml.so; do
  # the only .init_array entry allowed is the toolchain's frame_dummy (8 bytes); no .ctors/.fini_array of ours
  sz=$(readelf -WS "$l" | awk '$2==".init_array" {print $6}')
  check "$(basename $l): no constructors (.init_array holds only the toolchain's entry)" '[ "$((16#${sz:-0}))" -le 8 ]'
  check "$(basename $l): SONAME and private DT_NEEDED" \
    'readelf -d "$l" | grep -q "SONAME.*lib\(cuda\|nvidia-ml\).so.1" && readelf -d "$l" | grep -q "NEEDED.*libemuv-real-\(cuda\|nvml\).so" && readelf -d "$l" | grep -q "RUNPATH.*\$ORIGIN"'
done

run stress 300 LD_PRELOAD=$PRE -- $B/tests/test_stress 100000
run stress-asan-ubsan 300 LD_PRELOAD=$B/asan/env/libemuv-cuda.so ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 -- $B/tests/test_stress_asan 100000
run stress-tsan 300 LD_PRELOAD=$B/tsan/env/libemuv-cuda.so TSAN_OPTIONS=halt_on_error=1:exitcode=66 -- $B/tests/test_stress_tsan 100000

rm -f "$OUT" "$OUT.err"
echo "native: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
