/* Link-time stand-in for the real driver: built as libemuv-real-cuda.so / libemuv-real-nvml.so so the
 * linker records that private name in DT_NEEDED. Never shipped; at run time the name is a symlink to the
 * container's real libcuda.so.1 / libnvidia-ml.so.1 (see docs/interposer.md). */
int emuv_real_stub;
