/* A program linked against libcuda.so.1 at build time (like Triton's launcher, -lcuda): its direct
 * calls bind to the preloaded shim because the shim carries the SONAME. */
#include "t.h"
int main(void) {
  setenv("EMUV_VRAM_SHARE", "1Gi", 1);
  setenv("EMUV_LIMIT_BYTES", "5Gi", 1);
  TEST("direct calls of a -lcuda program reach the hooks") {
    CHECK(cuInit(0) == CUDA_SUCCESS);
    size_t f = 0, t = 0, tm = 0;
    CHECK(cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS);
    CHECK_EQ_U64(t, 5 * GiB);
    CHECK(cuDeviceTotalMem_v2(&tm, 0) == CUDA_SUCCESS);
    CHECK_EQ_U64(tm, 5 * GiB);
  }
  T_DONE();
}
