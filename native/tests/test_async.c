/* Stream-ordered allocations: within the share from the device pool, beyond it from emuv's host pool;
 * a capturing stream is never redirected. */
#include "t.h"

int main(void) {
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-async-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  setenv("EMUV_VRAM_SHARE", "16Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "64Mi", 1);
  setenv("EMUV_OOM_RETRY", "off", 1);
  setenv("EMUV_STATS_FILE", path, 1);
  struct cu c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  CUstream s = NULL, cap = NULL;
  CUdeviceptr a = 0, b = 0, g = 0;
  c.StreamCreate(&s, 0);
  c.StreamCreate(&cap, 0);
  PFN_cuMemAllocAsync_v11020_ptsz ptsz = (PFN_cuMemAllocAsync_v11020_ptsz)t_sym(c.h, "cuMemAllocAsync_ptsz");
  PFN_cuMemFreeAsync_v11020_ptsz fptsz = (PFN_cuMemFreeAsync_v11020_ptsz)t_sym(c.h, "cuMemFreeAsync_ptsz");

  TEST("within the share: device pool") {
    CHECK(c.MemAllocAsync(&a, 12 * MiB, s) == CUDA_SUCCESS);
    CHECK(sim_location(a) == CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK_EQ_U64(st->tot[0].vram_used, 12 * MiB);
  }
  TEST("over the share: emuv's host pool (per-thread variant)") {
    CHECK(ptsz(&b, 8 * MiB, s) == CUDA_SUCCESS);
    CHECK(sim_location(b) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
    CHECK_EQ_U64(st->tot[0].host_used, 8 * MiB);
    CHECK_EQ_U64(st->tot[0].spill_events, 1);
  }
  TEST("a capturing stream is passed through untouched and untracked") {
    CHECK(c.StreamBeginCapture(cap, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_SUCCESS);
    CHECK(c.MemAllocAsync(&g, 8 * MiB, cap) == CUDA_SUCCESS);
    CHECK(sim_location(g) == CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK_EQ_U64(st->tot[0].total_used, 20 * MiB);
    CHECK(c.MemFreeAsync(g, cap) == CUDA_SUCCESS);
    CUgraph gr;
    CHECK(c.StreamEndCapture(cap, &gr) == CUDA_SUCCESS);
  }
  TEST("the limit holds for async allocations too") {
    CUdeviceptr x = 0;
    CHECK(c.MemAllocAsync(&x, 60 * MiB, s) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(st->tot[0].oom_events, 1);
  }
  TEST("cuMemFreeAsync returns both kinds to the budget") {
    CHECK(c.MemFreeAsync(a, s) == CUDA_SUCCESS);
    CHECK(fptsz(b, s) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
  }
  TEST("a user pool with a host location is charged as host memory, not VRAM") {
    PFN_cuMemPoolCreate_v11020 pc = (PFN_cuMemPoolCreate_v11020)t_sym(c.h, "cuMemPoolCreate");
    PFN_cuMemPoolDestroy_v11020 pd = (PFN_cuMemPoolDestroy_v11020)t_sym(c.h, "cuMemPoolDestroy");
    PFN_cuMemAllocFromPoolAsync_v11020 fp = (PFN_cuMemAllocFromPoolAsync_v11020)t_sym(c.h, "cuMemAllocFromPoolAsync");
    CUmemPoolProps pp = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_HOST_NUMA, .id = 0}};
    CUmemoryPool pool = NULL;
    CUdeviceptr x = 0;
    CHECK(pc(&pool, &pp) == CUDA_SUCCESS);
    CHECK(fp(&x, 4 * MiB, pool, s) == CUDA_SUCCESS);
    CHECK(sim_location(x) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 4 * MiB);
    CHECK(c.MemFreeAsync(x, s) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK(pd(pool) == CUDA_SUCCESS);
  }
  TEST("releasing the last primary-context reference drops the accounting with the memory") {
    PFN_cuDevicePrimaryCtxRetain_v7000 retain = (PFN_cuDevicePrimaryCtxRetain_v7000)t_sym(c.h, "cuDevicePrimaryCtxRetain");
    PFN_cuDevicePrimaryCtxRelease_v11000 release = (PFN_cuDevicePrimaryCtxRelease_v11000)t_sym(c.h, "cuDevicePrimaryCtxRelease_v2");
    CUcontext ctx, ctx2;
    CHECK(retain(&ctx, 0) == CUDA_SUCCESS);
    CHECK(retain(&ctx2, 0) == CUDA_SUCCESS);
    CUdeviceptr x = 0;
    CHECK(c.MemAlloc(&x, 8 * MiB) == CUDA_SUCCESS);
    CHECK(release(0) == CUDA_SUCCESS); /* one reference left: still counted */
    CHECK_EQ_U64(st->tot[0].vram_used, 8 * MiB);
    CHECK(release(0) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
  }
  TEST("the 7000 ABIs cudart asks for (cudaDeviceReset) give every byte back: reset and last release") {
    /* cudart 13 resolves cuDevicePrimaryCtxReset and cuDevicePrimaryCtxRelease at version 7000, the ABI
     * before _v2; before both were hooked, a reset left all of the container's accounting in place. */
    PFN_cuDevicePrimaryCtxRetain_v7000 retain = (PFN_cuDevicePrimaryCtxRetain_v7000)t_sym(c.h, "cuDevicePrimaryCtxRetain");
    void *reset = NULL, *release = NULL;
    CHECK(c.GetProcAddress_v2("cuDevicePrimaryCtxReset", &reset, 7000, 0, NULL) == CUDA_SUCCESS && reset != NULL);
    CHECK(c.GetProcAddress_v2("cuDevicePrimaryCtxRelease", &release, 7000, 0, NULL) == CUDA_SUCCESS && release != NULL);
    CUcontext ctx;
    CUdeviceptr x = 0, y = 0;
    CHECK(retain(&ctx, 0) == CUDA_SUCCESS);
    CHECK(c.MemAlloc(&x, 8 * MiB) == CUDA_SUCCESS);
    CHECK(c.MemAlloc(&y, 32 * MiB) == CUDA_SUCCESS); /* past the 16 MiB share: part of it spills */
    CHECK(st->tot[0].host_used > 0);
    CHECK(((PFN_cuDevicePrimaryCtxReset_v7000)reset)(0) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK(c.MemAlloc(&x, 8 * MiB) == CUDA_SUCCESS);
    CHECK(((PFN_cuDevicePrimaryCtxRelease_v7000)release)(0) == CUDA_SUCCESS); /* the last reference */
    CHECK_EQ_U64(st->tot[0].total_used, 0);
  }
  T_DONE();
}
